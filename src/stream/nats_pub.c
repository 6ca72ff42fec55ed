/* nats_pub.c - pipelined JetStream publishing (see nats_pub.h).
 *
 * One call sends its messages with js_PublishMsgAsync and waits once with
 * js_PublishAsyncComplete. Every message carries two headers:
 *   Nats-Msg-Id              "<publisher nuid>-<number>", unique per message
 *                            of this publisher (the stream's duplicate window
 *                            drops a second copy of a resent message);
 *   Nats-Expected-Last-Msg-Id the previous message's ID, except for the first
 *                            message sent in a round.
 * The second header chains the messages of a round: the server stores
 * message i+1 only if message i is the last one in the stream, so whatever
 * fails (a leader dies, a publish is refused) nothing after it is stored,
 * and what was stored is a prefix of the call in order. A round that stops
 * early is followed by another from the first message not stored (which
 * heads the new chain, so a concurrent producer's message in between does
 * not block the rest), until every message is stored, one is refused for
 * good, or the call's budget is spent.
 *
 * Contexts: the acknowledgement callback is set per jsCtx and
 * js_PublishAsyncComplete waits for everything pending on its context, so
 * each call takes a context of its own from a pool (created on demand, kept
 * until the publisher is destroyed). The callback runs on libnats's thread
 * and records results in the call that currently owns its context, under
 * the context's mutex; a late acknowledgement (after its call gave up on it)
 * finds no call or a number outside the call's range and is dropped. The
 * contexts outlive every callback that can reach them: pending messages are
 * taken back (js_PublishAsyncGetPendingList) before a call ends, so libnats
 * has nothing left to call back for.
 */
#include "stream/nats_pub.h"

#include "common/os.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NP_MAX_PENDING 65536 /* async publishes in flight per context */
#define NP_STALL_MS 1000     /* wait for room when that many are in flight */
#define NP_BACKOFF_FIRST_MS 20
#define NP_BACKOFF_MAX_MS 250
#define NP_INFO_WAIT_MS 1000 /* does the stream still exist? */
#define NP_SLICE_MS 100      /* acknowledgement waits check the connection */
#define NP_DOWN_MS 2000      /* disconnected this long: give up */
#define NP_QUIET_MS 1000     /* no answer at all this long: send again */

enum { ST_NONE = 0, ST_STORED, ST_RETRY, ST_FINAL };

typedef struct np_call {
  uint64_t base; /* number of message 0 */
  size_t n;
  uint64_t *seq;
  unsigned char *state;
  natsStatus *st;
  jsErrCode *je;
  size_t answers;  /* acknowledgements and refusals received */
  size_t text_at; /* index whose failure text is kept */
  char text[160];
} np_call;

typedef struct np_ctx {
  struct np_ctx *next_free;
  struct np_ctx *next_all;
  jsCtx *js;
  pthread_mutex_t mu;
  np_call *cur; /* the call using this context, or NULL */
} np_ctx;

struct lmq_npub {
  natsConnection *nc;
  pthread_mutex_t mu;
  np_ctx *free_list;
  np_ctx *all;
  char prefix[40];
  _Atomic uint64_t next_num;
};

/* ------------------------------------------------------------ results */

/* Refusals that a resend cannot change. */
static int is_final(natsStatus st, jsErrCode je) {
  switch (je) {
  case JSStreamNotFoundErr:
  case JSStreamNotMatchErr:
  case JSStreamMessageExceedsMaximumErr:
  case JSStreamSealedErr:
    return 1;
  default:
    break;
  }
  return st == NATS_MAX_PAYLOAD || st == NATS_INVALID_ARG || st == NATS_NOT_PERMITTED ||
         st == NATS_NO_MEMORY;
}

static void note_failure(np_call *c, size_t i, natsStatus st, jsErrCode je,
                         const char *text) {
  c->state[i] = is_final(st, je) ? ST_FINAL : ST_RETRY;
  c->st[i] = st;
  c->je[i] = je;
  if (i <= c->text_at) {
    c->text_at = i;
    snprintf(c->text, sizeof c->text, "%s", text && *text ? text : natsStatus_GetText(st));
  }
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
                   void *closure) {
  (void)js;
  np_ctx *x = closure;
  const char *mid = NULL;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &mid) == NATS_OK && mid) {
    const char *dash = strrchr(mid, '-');
    uint64_t num = dash ? strtoull(dash + 1, NULL, 10) : 0;
    pthread_mutex_lock(&x->mu);
    np_call *c = x->cur;
    if (c && dash && num >= c->base && num - c->base < c->n) {
      size_t i = (size_t)(num - c->base);
      c->answers++;
      if (pa) {
        c->state[i] = ST_STORED;
        c->seq[i] = pa->Sequence;
      } else if (pae && c->state[i] != ST_STORED) {
        note_failure(c, i, pae->Err, pae->ErrCode, pae->ErrText);
      }
    }
    pthread_mutex_unlock(&x->mu);
  }
  natsMsg_Destroy(msg);
}

/* ----------------------------------------------------------- contexts */

static np_ctx *ctx_take(lmq_npub *p) {
  pthread_mutex_lock(&p->mu);
  np_ctx *x = p->free_list;
  if (x)
    p->free_list = x->next_free;
  pthread_mutex_unlock(&p->mu);
  if (x)
    return x;
  x = calloc(1, sizeof *x);
  if (!x)
    return NULL;
  pthread_mutex_init(&x->mu, NULL);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = NP_MAX_PENDING;
  jo.PublishAsync.StallWait = NP_STALL_MS;
  jo.PublishAsync.AckHandler = on_ack;
  jo.PublishAsync.AckHandlerClosure = x;
  if (natsConnection_JetStream(&x->js, p->nc, &jo) != NATS_OK) {
    pthread_mutex_destroy(&x->mu);
    free(x);
    return NULL;
  }
  pthread_mutex_lock(&p->mu);
  x->next_all = p->all;
  p->all = x;
  pthread_mutex_unlock(&p->mu);
  return x;
}

static void ctx_give(lmq_npub *p, np_ctx *x) {
  pthread_mutex_lock(&p->mu);
  x->next_free = p->free_list;
  p->free_list = x;
  pthread_mutex_unlock(&p->mu);
}

int lmq__npub_create(lmq_npub **out, natsConnection *nc) {
  lmq_npub *p = calloc(1, sizeof *p);
  if (!p)
    return LMQ_ENOMEM;
  char *inbox = NULL;
  /* A NUID (22 random characters) makes the message IDs unique to us. */
  if (natsInbox_Create(&inbox) != NATS_OK) {
    free(p);
    return LMQ_ENOMEM;
  }
  const char *dot = strrchr(inbox, '.');
  snprintf(p->prefix, sizeof p->prefix, "lmq%s", dot ? dot + 1 : inbox);
  natsInbox_Destroy(inbox);
  p->nc = nc;
  pthread_mutex_init(&p->mu, NULL);
  atomic_init(&p->next_num, 1);
  *out = p;
  return 0;
}

void lmq__npub_destroy(lmq_npub *p) {
  if (!p)
    return;
  for (np_ctx *x = p->all, *nx; x; x = nx) {
    nx = x->next_all;
    jsCtx_Destroy(x->js);
    pthread_mutex_destroy(&x->mu);
    free(x);
  }
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* -------------------------------------------------------------- calls */

static uint64_t now_ms(void) { return lmq__mono_ns() / 1000000; }

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void msg_id(char *out, size_t cap, const lmq_npub *p, uint64_t num) {
  snprintf(out, cap, "%s-%" PRIu64, p->prefix, num);
}

/* Send messages h.. of the call; stop at the first that cannot be sent. */
static void round_send(lmq_npub *p, np_ctx *x, np_call *c, const char *subj,
                       const char *stream, const lmq_buf *msgs, size_t h,
                       int64_t wait_ms) {
  char id[64], prev[64];
  for (size_t i = h; i < c->n; i++) {
    pthread_mutex_lock(&x->mu);
    c->state[i] = ST_NONE;
    pthread_mutex_unlock(&x->mu);
    msg_id(id, sizeof id, p, c->base + i);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.ExpectStream = stream;
    po.MaxWait = wait_ms;
    if (i > h) {
      msg_id(prev, sizeof prev, p, c->base + i - 1);
      po.ExpectLastMsgId = prev;
    }
    natsMsg *m = NULL;
    natsStatus s = msgs[i].len > INT32_MAX
                       ? NATS_MAX_PAYLOAD
                       : natsMsg_Create(&m, subj, NULL, msgs[i].data, (int)msgs[i].len);
    if (s == NATS_OK)
      s = js_PublishMsgAsync(x->js, &m, &po);
    natsMsg_Destroy(m); /* NULL once the library took it */
    if (s != NATS_OK) {
      pthread_mutex_lock(&x->mu);
      note_failure(c, i, s, 0, nats_GetLastError(NULL));
      pthread_mutex_unlock(&x->mu);
      return;
    }
  }
}

/* Wait for the round's acknowledgements until *deadline, in slices, and take
 * back what did not come. The round ends early when nothing at all was
 * answered for NP_QUIET_MS (a hung or dead leader: what is pending is sent
 * again, to whoever leads by then), or when the connection stays down for
 * NP_DOWN_MS (then the call ends: with one server nothing will answer; in a
 * cluster the client is on another server well within that). */
static void round_wait(lmq_npub *p, np_ctx *x, np_call *c, uint64_t *deadline) {
  uint64_t down_since = 0, quiet_since = now_ms();
  size_t answers = 0;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= *deadline)
      break;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = (int64_t)(*deadline - now < NP_SLICE_MS ? *deadline - now : NP_SLICE_MS);
    if (js_PublishAsyncComplete(x->js, &po) == NATS_OK)
      return;
    pthread_mutex_lock(&x->mu);
    size_t a = c->answers;
    pthread_mutex_unlock(&x->mu);
    now = now_ms();
    if (a != answers) {
      answers = a;
      quiet_since = now;
    } else if (now - quiet_since >= NP_QUIET_MS) {
      break;
    }
    if (natsConnection_Status(p->nc) == NATS_CONN_STATUS_CONNECTED) {
      down_since = 0;
    } else if (!down_since) {
      down_since = now;
    } else if (now - down_since >= NP_DOWN_MS) {
      *deadline = now; /* give up: the server is gone */
      break;
    }
  }
  natsMsgList left;
  memset(&left, 0, sizeof left);
  if (js_PublishAsyncGetPendingList(&left, x->js) == NATS_OK)
    natsMsgList_Destroy(&left);
  pthread_mutex_lock(&x->mu);
  for (size_t i = 0; i < c->n; i++)
    if (c->state[i] == ST_NONE)
      note_failure(c, i, natsConnection_Status(p->nc) == NATS_CONN_STATUS_CONNECTED
                             ? NATS_TIMEOUT
                             : NATS_CONNECTION_DISCONNECTED,
                   0, "no acknowledgement in time");
  pthread_mutex_unlock(&x->mu);
}

/* No responders can mean a leader election or a deleted stream: ask. */
static int stream_gone(np_ctx *x, const char *stream) {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = NP_INFO_WAIT_MS;
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus s = js_GetStreamInfo(&si, x->js, stream, &jo, &je);
  jsStreamInfo_Destroy(si);
  return je == JSStreamNotFoundErr || (s == NATS_NOT_FOUND && !je);
}

static int call_init(np_call *c, size_t n) {
  memset(c, 0, sizeof *c);
  c->n = n;
  c->text_at = SIZE_MAX;
  c->seq = calloc(n ? n : 1, sizeof *c->seq);
  c->state = calloc(n ? n : 1, 1);
  c->st = calloc(n ? n : 1, sizeof *c->st);
  c->je = calloc(n ? n : 1, sizeof *c->je);
  return c->seq && c->state && c->st && c->je ? 0 : LMQ_ENOMEM;
}

static void call_free(np_call *c) {
  free(c->seq);
  free(c->state);
  free(c->st);
  free(c->je);
}

static size_t first_unstored(const np_call *c) {
  size_t h = 0;
  while (h < c->n && c->state[h] == ST_STORED)
    h++;
  return h;
}

int lmq__npub_publish(lmq_npub *p, const char *subj, const char *stream,
                      const lmq_buf *msgs, size_t n, uint64_t *ids, int budget_ms,
                      lmq_npub_fail *fail) {
  memset(fail, 0, sizeof *fail);
  if (ids)
    memset(ids, 0, n * sizeof *ids);
  if (!n)
    return 1;
  np_call c;
  np_ctx *x = NULL;
  if (call_init(&c, n) || !(x = ctx_take(p))) {
    call_free(&c);
    return LMQ_ENOMEM;
  }
  c.base = atomic_fetch_add(&p->next_num, n);
  pthread_mutex_lock(&x->mu);
  x->cur = &c;
  pthread_mutex_unlock(&x->mu);
  uint64_t deadline = now_ms() + (uint64_t)(budget_ms > 0 ? budget_ms : 1);
  long backoff = NP_BACKOFF_FIRST_MS;
  size_t h = 0;
  for (;;) {
    uint64_t now = now_ms();
    int64_t left = now < deadline ? (int64_t)(deadline - now) : 0;
    round_send(p, x, &c, subj, stream, msgs, h, left);
    round_wait(p, x, &c, &deadline);
    pthread_mutex_lock(&x->mu);
    h = first_unstored(&c);
    int done = h == n || c.state[h] == ST_FINAL;
    natsStatus st = h < n ? c.st[h] : NATS_OK;
    jsErrCode je = h < n ? c.je[h] : 0;
    pthread_mutex_unlock(&x->mu);
    if (done || now_ms() >= deadline)
      break;
    if (st == NATS_NO_RESPONDERS && stream_gone(x, stream)) {
      pthread_mutex_lock(&x->mu);
      note_failure(&c, h, NATS_NOT_FOUND, JSStreamNotFoundErr, "stream not found");
      pthread_mutex_unlock(&x->mu);
      break;
    }
    /* A concurrent producer's message got between two of ours: start a new
     * chain at once. Anything else: wait a little (election, reconnect). */
    if (je != JSStreamWrongLastMsgIDErr) {
      uint64_t t = now_ms(), rest = t < deadline ? deadline - t : 0;
      nap_ms((long)((uint64_t)backoff < rest ? (uint64_t)backoff : rest));
      backoff = backoff * 2 > NP_BACKOFF_MAX_MS ? NP_BACKOFF_MAX_MS : backoff * 2;
    }
  }
  pthread_mutex_lock(&x->mu);
  x->cur = NULL; /* late acknowledgements are dropped from here on */
  h = first_unstored(&c);
  if (h < n) {
    fail->index = h;
    fail->st = c.st[h] ? c.st[h] : NATS_TIMEOUT;
    fail->je = c.je[h];
    snprintf(fail->text, sizeof fail->text, "%s", c.text_at == h ? c.text : "");
  }
  pthread_mutex_unlock(&x->mu);
  /* Only the stored prefix is reported: a message after the first missing
   * one cannot have been stored (the chain), whatever a late ack said. */
  if (ids)
    for (size_t i = 0; i < h; i++)
      ids[i] = c.seq[i];
  ctx_give(p, x);
  call_free(&c);
  return h == n;
}
