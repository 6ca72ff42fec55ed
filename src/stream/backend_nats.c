/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* backend_nats.c - the stream backend over NATS JetStream (libnats), built
 * with --with-nats.
 *
 * Mapping:
 *   channel C  -> stream "lmq_<esc(C)>" with the one subject "lmq.C", file
 *                 storage, limits retention (nothing is deleted by
 *                 consumption);
 *   message ID -> the stream sequence JetStream assigned (1, 2, ...);
 *   group G    -> durable pull consumer "<esc(G)>" on that stream with
 *                 AckPolicy All, so acking message N acks everything <= N,
 *                 and the group's cursor: key "lmq_<esc(C)>.<esc(G)>" of
 *                 the Key-Value bucket "lmq_cursors" (nats_cursor.c);
 *   commit     -> a synchronous ack of the last message handed out, then a
 *                 write of its sequence to the cursor.
 * esc() keeps [A-Za-z0-9-] and writes '.' and '_' as "_2E" and "_5F", so
 * distinct lmq names give distinct JetStream names.
 *
 * Cursor: lmq's commit means "everything consumed so far is done", and a
 * commit that returned 0 is never undone by the loss of one node of an R3
 * cluster. The durable's ack alone cannot promise that: its leader answers
 * the ack (and updates its own state) before the ack's raft proposal is
 * committed, so a leader killed right after can come back, as another
 * node, with an older ack floor. A stream publish is answered only once a
 * quorum stored it, so commit also writes the sequence to the cursor
 * bucket (R = the backend's replica count, history 1) and returns 0 only
 * when that write was acknowledged. The ack still matters: it keeps the
 * consumer's own state close, and is the position when no cursor was
 * written. R1 writes the cursor too: one server has no failover, but it
 * writes a consumer's ack state to disk lazily while it writes a stream's
 * messages as it stores them, so the cursor also survives a SIGKILLed
 * server (one more round trip per commit; docs/deploy.md has the cost).
 * A cursor records the channel stream's creation time: a channel destroyed
 * and created again under the same name never inherits an old cursor
 * (channel_destroy also purges its cursors, best effort).
 *
 * subscribe() starts the group after the later of the durable's ack floor
 * and the cursor (a cursor write that failed leaves the ack floor ahead:
 * that commit's outcome was unknown, either is right). Messages handed out
 * but not committed stay unacknowledged; JetStream would only redeliver
 * them after AckWait, so subscribe() recreates the durable at that position
 * + 1 when it has unacknowledged messages or would deliver from elsewhere;
 * a missing durable is added there (or per `start` when there is no cursor
 * either). A restart therefore redelivers exactly the uncommitted messages
 * (at-least-once). AckWait is long (1 h) and MaxAckPending unlimited because
 * a stream may consume for a long time between commits; a redelivery that
 * still shows up within a session (sequence <= the last one handed out) is
 * dropped.
 *
 * seek(id) first writes id - 1 to the cursor, then deletes the durable and
 * adds it again with DeliverByStartSequence = id: the new position is
 * stored at once (not at the next commit) and uncommitted acks of the old
 * consumer are dropped. A seek whose cursor write fails changes nothing
 * (the refusal's code), or, when the write was not answered, returns
 * LMQ_EUNKNOWN with the durable untouched: a later subscribe may then
 * start at id (a forward seek) or at the old position (a backward one).
 *
 * fd: an eventfd, readable while the highest stored sequence is above the
 * consumer's position. A second, ephemeral *ordered push* consumer
 * (HeadersOnly, DeliverNew) on the stream runs a callback on libnats's
 * thread for every message stored after the subscription opened; the
 * callback records its sequence and writes the eventfd. consume() clears
 * the eventfd *before* it fetches and sets it again if stored messages
 * remain, so the descriptor is level-triggered without lost wake-ups. A
 * pull consumer can lag the notifier by a moment; consume(timeout 0) then
 * waits up to NB_CATCH_UP_MS for what the notifier saw. (A stream whose
 * messages were removed by hand could leave the fd readable: lmq never
 * removes messages from a channel's stream.)
 *
 * Threads: the connection and JetStream context are shared and thread-safe;
 * a subscription is used by one thread at a time (plus libnats's callback
 * thread, which only writes the eventfd). libnats's global state stays
 * until the application calls nats_Close(); this adapter never calls it
 * because other code in the process may use libnats.
 *
 * Errors: an unreachable or lost server gives LMQ_EUNAVAIL (calls fail at
 * once while the client is reconnecting; a call in flight when the
 * connection drops returns within NB_API_WAIT_MS), a JetStream API timeout
 * LMQ_ETIMEDOUT, an unknown stream LMQ_ENOCHANNEL, an unknown consumer
 * LMQ_ENOGROUP, a payload above the server's max_payload LMQ_ETOOBIG, other
 * server refusals LMQ_EPROTO. A commit whose ack was not answered, or whose
 * cursor write failed or was not answered, within NB_API_WAIT_MS in all is
 * LMQ_EUNKNOWN; the subscription keeps what it would commit, and the next
 * commit sends both again.
 *
 * Produce (nats_pub.c): a call's messages are published pipelined and the
 * call waits once for all acknowledgements, resending with the same
 * Nats-Msg-Id what a leader change or a lost connection left unanswered,
 * for up to NB_PRODUCE_MS. What was stored is a prefix of the call, in
 * order; on a failure ids holds the IDs of that prefix and 0 after it, and
 * the code says whether the rest was refused (not stored: the server's
 * reason) or not acknowledged in time (LMQ_EUNKNOWN: the messages from the
 * first unacknowledged one on may or may not be stored).
 *
 * Durability is the server's: a publish is acknowledged once the stream's
 * replicas have it in memory (R3: a quorum of two); nats-server 2.9 fsyncs
 * its files only every two minutes (docs/deploy.md). Streams are created
 * with the backend's replica count, file storage and a two-minute duplicate
 * window. The backend has no metadata store (ops->meta returns NULL); the
 * channel service takes one from the factory. */
#include "common/error.h"
#include "common/os.h"
#include "config.h"
#include "stream/backend.h"
#include "stream/nats_cursor.h"
#include "stream/nats_pub.h"

#include <nats/nats.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NB_API_WAIT_MS 5000 /* JetStream API requests and sync acks */
#define NB_ACK_WAIT_NS (3600LL * 1000000000LL)
#define NB_DUP_WINDOW_NS (120LL * 1000000000LL) /* JetStream's default, stated */
#define NB_PRODUCE_MS 10000 /* a produce call, resends included: > an election */
#define NB_MAX_SERVERS 16
#define NB_PING_MS 1000
#define NB_RECONNECT_MS 2000 /* see connected() */
#define NB_NAME_MAX 200        /* escaped stream/consumer names */
#define NB_NOTE_WAIT_MS 500    /* see js_note */
#define NB_CATCH_UP_MS 200     /* see "fd" above */
#define NB_FETCH_SLICE_MS 1000 /* an endless consume fetches in slices */
/* libnats does not send a MaxAckPending <= 0 ("unlimited"), and the
 * server default (1000) would stall a stream that commits rarely. */
#define NB_MAX_ACK_PENDING (1LL << 30)

typedef struct nats_backend {
  lmq_backend base;
  natsConnection *nc;
  jsCtx *js;
  lmq_npub *pub;  /* pipelined publishing */
  lmq_ncur *cur;  /* committed cursors (nats_cursor.c) */
  int replicas;   /* of the streams this backend creates */
  int produce_ms; /* budget of one produce call, resends included */
  /* For the notifiers only: libnats deletes an ordered consumer when it is
   * unsubscribed, waiting this context's (short) API timeout, so that
   * unsubscribing while the server is away does not hang. */
  jsCtx *js_note;
} nats_backend;

typedef struct nats_sub {
  nats_backend *b;
  char *channel;
  char stream[NB_NAME_MAX + 8];
  char durable[NB_NAME_MAX + 8];
  char *subject;
  int64_t created;        /* the stream's creation time: its incarnation */
  natsSubscription *pull; /* bound to the durable */
  natsSubscription *note; /* ordered push consumer, wakes efd */
  int efd;
  pthread_mutex_t note_mu; /* note's completion, see note_stop */
  pthread_cond_t note_cv;
  int note_done;
  _Atomic uint64_t stored; /* highest sequence known stored (notifier) */
  uint64_t last;           /* the consumer's position: highest sequence delivered */
  char *ack_to;            /* reply subject of that message: commit acks it */
  lmq_bmsg *arr;           /* reused between batches */
  size_t cap;
} nats_sub;

typedef struct nats_batch {
  natsMsgList list;
} nats_batch;

/* ------------------------------------------------------------- errors */

static int code_of(natsStatus s, jsErrCode je, natsConnection *nc) {
  if (je == JSStreamNotFoundErr)
    return LMQ_ENOCHANNEL;
  if (je == JSConsumerNotFoundErr)
    return LMQ_ENOGROUP;
  switch (s) {
  case NATS_NO_MEMORY:
    return LMQ_ENOMEM;
  case NATS_MAX_PAYLOAD:
    return LMQ_ETOOBIG;
  case NATS_INVALID_ARG:
    return LMQ_EINVAL;
  case NATS_NOT_PERMITTED:
  case NATS_CONNECTION_AUTH_FAILED:
    return LMQ_EAUTH;
  case NATS_NO_SERVER:
  case NATS_CONNECTION_CLOSED:
  case NATS_CONNECTION_DISCONNECTED:
  case NATS_STALE_CONNECTION:
  case NATS_IO_ERROR:
  case NATS_SYS_ERROR:
  case NATS_NO_RESPONDERS:
    return LMQ_EUNAVAIL;
  case NATS_TIMEOUT:
    return nc && natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED
               ? LMQ_EUNAVAIL
               : LMQ_ETIMEDOUT;
  default:
    return LMQ_EPROTO;
  }
}

/* Set lmq's message from a failed libnats call and return its code. */
static int nerr(natsStatus s, jsErrCode je, natsConnection *nc, const char *what,
                const char *name) {
  natsStatus ls = NATS_OK;
  const char *detail = nats_GetLastError(&ls);
  return lmq__error(code_of(s, je, nc), "nats backend: %s '%.64s': %s%s%.200s", what,
                    name ? name : "", natsStatus_GetText(s),
                    detail && *detail ? ": " : "", detail ? detail : "");
}

/* While the client is reconnecting, wait up to NB_RECONNECT_MS for it (in a
 * cluster it moves to another server within a second), then fail rather
 * than wait for a JetStream timeout. */
static int connected(nats_backend *b, const char *what, const char *name) {
  uint64_t end = lmq__mono_ns() + (uint64_t)NB_RECONNECT_MS * 1000000;
  for (;;) {
    natsConnStatus st = natsConnection_Status(b->nc);
    if (st == NATS_CONN_STATUS_CONNECTED)
      return 0;
    if (st == NATS_CONN_STATUS_CLOSED || lmq__mono_ns() >= end)
      break;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return lmq__error(LMQ_EUNAVAIL,
                    "nats backend: %s '%.64s': not connected to any server", what,
                    name ? name : "");
}

/* -------------------------------------------------------------- names */

static int esc(char *out, size_t cap, const char *prefix, const char *name) {
  size_t o = (size_t)snprintf(out, cap, "%s", prefix);
  for (const char *p = name; *p; p++) {
    if (o + 4 >= cap)
      return lmq__error(LMQ_EINVAL,
                        "nats backend: name '%.64s...' is too "
                        "long for JetStream",
                        name);
    if (*p == '.' || *p == '_')
      o += (size_t)snprintf(out + o, cap - o, "_%02X", (unsigned char)*p);
    else
      out[o++] = *p;
  }
  out[o] = 0;
  return 0;
}

static int stream_name(char out[NB_NAME_MAX + 8], const char *ch) {
  int rc = lmq__name_check("channel", ch);
  return rc ? rc : esc(out, NB_NAME_MAX, "lmq_", ch);
}

static char *subject_of(const char *ch) {
  size_t n = strlen(ch) + 5;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "lmq.%s", ch);
  return s;
}

/* ----------------------------------------------------------- channels */

static nats_backend *nb(lmq_backend *b) { return (nats_backend *)b; }

static int n_channel_create(lmq_backend *bb, const char *ch) {
  nats_backend *b = nb(bb);
  char name[NB_NAME_MAX + 8];
  int rc = stream_name(name, ch);
  if (rc || (rc = connected(b, "channel_create", ch)))
    return rc;
  char *subj = subject_of(ch);
  if (!subj)
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  const char *subjects[1] = {subj};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_LimitsPolicy;
  cfg.Replicas = b->replicas;
  /* Resent publishes (same Nats-Msg-Id) within this window are dropped. */
  cfg.Duplicates = NB_DUP_WINDOW_NS;
  /* A cluster that is still forming (or electing) has "no suitable peers"
   * for a replicated stream for a moment: try again within the API budget.
   * With fewer nodes up than replicas it stays so, and the call fails. */
  uint64_t end = lmq__mono_ns() + (uint64_t)NB_API_WAIT_MS * 1000000;
  jsErrCode je = 0;
  natsStatus s;
  for (;;) {
    jsStreamInfo *si = NULL;
    je = 0;
    s = js_AddStream(&si, b->js, &cfg, NULL, &je);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || (je != JSClusterNoPeersErr && je != JSClusterNotAvailErr) ||
        lmq__mono_ns() >= end)
      break;
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
  }
  free(subj);
  if (s == NATS_OK || je == JSStreamNameExistErr)
    return 0;
  return nerr(s, je, b->nc, "channel_create", ch);
}

static int n_channel_destroy(lmq_backend *bb, const char *ch) {
  nats_backend *b = nb(bb);
  char name[NB_NAME_MAX + 8];
  int rc = stream_name(name, ch);
  if (rc || (rc = connected(b, "channel_destroy", ch)))
    return rc;
  jsErrCode je = 0;
  natsStatus s = js_DeleteStream(b->js, name, NULL, &je);
  if (s == NATS_OK) {
    /* Best effort: a channel created again under this name is another
     * incarnation (a new creation time), which ignores these cursors. */
    jsErrCode pje = 0;
    lmq__ncur_drop(b->cur, name, &pje);
    return 0;
  }
  if (s == NATS_NOT_FOUND && !je)
    je = JSStreamNotFoundErr;
  return nerr(s, je, b->nc, "channel_destroy", ch);
}

/* Publish a call's messages pipelined (nats_pub.c): one round trip per
 * call. What was stored is a prefix of the call; ids says which. */
static int n_produce(lmq_backend *bb, const char *ch, const lmq_buf *msgs, size_t n,
                     uint64_t *ids) {
  nats_backend *b = nb(bb);
  if (ids && n)
    memset(ids, 0, n * sizeof *ids); /* nothing stored until acknowledged */
  if (n && !msgs)
    return lmq__error(LMQ_EINVAL, "nats backend: produce: msgs is NULL");
  char name[NB_NAME_MAX + 8];
  int rc = stream_name(name, ch);
  if (rc || (rc = connected(b, "produce", ch)))
    return rc;
  for (size_t i = 0; i < n; i++)
    if (msgs[i].len > INT32_MAX)
      return lmq__error(LMQ_ETOOBIG, "nats backend: produce: message %zu is too "
                                     "large", i);
  char *subj = subject_of(ch);
  if (!subj)
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  lmq_npub_fail f;
  rc = lmq__npub_publish(b->pub, subj, name, msgs, n, ids, b->produce_ms, &f);
  free(subj);
  if (rc == 1)
    return 0;
  if (rc < 0)
    return lmq__error(rc, "nats backend: produce: out of memory");
  jsErrCode je = f.je;
  /* No responders to the last try: no stream stores the subject. */
  if (f.st == NATS_NO_RESPONDERS && !je &&
      natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED)
    je = JSStreamNotFoundErr;
  int unknown = f.maybe && !je;
  return lmq__error(unknown ? LMQ_EUNKNOWN : code_of(f.st, je, b->nc),
                    "nats backend: produce '%.64s': the first %zu of %zu messages "
                    "stored, message %zu %s: %s (%s)%s",
                    ch, f.index, n, f.index, unknown ? "not acknowledged" : "refused",
                    natsStatus_GetText(f.st), f.text,
                    unknown ? "; the messages from it on may or may not be stored"
                            : "; nothing after it was stored");
}

static int n_latest(lmq_backend *bb, const char *ch, uint64_t *id) {
  nats_backend *b = nb(bb);
  char name[NB_NAME_MAX + 8];
  int rc = stream_name(name, ch);
  if (rc || (rc = connected(b, "latest", ch)))
    return rc;
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus s = js_GetStreamInfo(&si, b->js, name, NULL, &je);
  if (s != NATS_OK) {
    if (s == NATS_NOT_FOUND && !je)
      je = JSStreamNotFoundErr;
    return nerr(s, je, b->nc, "latest", ch);
  }
  uint64_t last = si->State.LastSeq, msgs = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  if (!msgs)
    return lmq__error(LMQ_EEMPTY, "nats backend: channel '%.64s' is empty", ch);
  *id = last;
  return 0;
}

/* ------------------------------------------------------ subscriptions */

/* The durable's configuration, starting as pol says (seq: for
 * DeliverByStartSequence). */
static void durable_config(nats_sub *s, jsConsumerConfig *cc, jsDeliverPolicy pol,
                           uint64_t seq) {
  jsConsumerConfig_Init(cc);
  cc->Durable = s->durable;
  cc->AckPolicy = js_AckAll;
  cc->AckWait = NB_ACK_WAIT_NS;
  cc->MaxAckPending = NB_MAX_ACK_PENDING;
  cc->MaxDeliver = -1;
  cc->FilterSubject = s->subject;
  cc->DeliverPolicy = pol;
  if (pol == js_DeliverByStartSequence)
    cc->OptStartSeq = seq;
}

static natsStatus durable_try_add(nats_sub *s, jsDeliverPolicy pol, uint64_t seq,
                                  jsErrCode *je) {
  jsConsumerConfig cc;
  durable_config(s, &cc, pol, seq);
  jsConsumerInfo *ci = NULL;
  natsStatus st = js_AddConsumer(&ci, s->b->js, s->stream, &cc, NULL, je);
  jsConsumerInfo_Destroy(ci);
  return st;
}

/* Add the durable with the given start (seq 0: policy as given). */
static int durable_add(nats_sub *s, jsDeliverPolicy pol, uint64_t seq) {
  jsErrCode je = 0;
  natsStatus st = durable_try_add(s, pol, seq, &je);
  return st == NATS_OK ? 0 : nerr(st, je, s->b->nc, "add consumer", s->durable);
}

/* Delete the durable and add it at seq (0: from the start). A delete that
 * was answered can leave the old consumer in place for a moment on a
 * cluster (seen after a failover): the add is then refused as "name already
 * in use", and both are tried again within NB_API_WAIT_MS. */
static int durable_recreate(nats_sub *s, uint64_t seq) {
  uint64_t end = lmq__mono_ns() + (uint64_t)NB_API_WAIT_MS * 1000000;
  for (;;) {
    jsErrCode je = 0;
    natsStatus st = js_DeleteConsumer(s->b->js, s->stream, s->durable, NULL, &je);
    if (st != NATS_OK && st != NATS_NOT_FOUND && je != JSConsumerNotFoundErr)
      return nerr(st, je, s->b->nc, "delete consumer", s->durable);
    je = 0;
    st = seq ? durable_try_add(s, js_DeliverByStartSequence, seq, &je)
             : durable_try_add(s, js_DeliverAll, 0, &je);
    if (st == NATS_OK)
      return 0;
    if (je != JSConsumerNameExistErr || lmq__mono_ns() >= end)
      return nerr(st, je, s->b->nc, "add consumer", s->durable);
    nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
  }
}

static int pull_bind(nats_sub *s) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = s->stream;
  so.Consumer = s->durable;
  so.ManualAck = true;
  jsErrCode je = 0;
  natsStatus st =
      js_PullSubscribe(&s->pull, s->b->js, s->subject, s->durable, NULL, &so, &je);
  if (st != NATS_OK) {
    s->pull = NULL;
    return nerr(st, je, s->b->nc, "bind consumer", s->durable);
  }
  return 0;
}

/* Only destroys the local subscription: the durable was not created by
 * js_PullSubscribe, so libnats leaves it on the server. */
static void pull_drop(nats_sub *s) {
  if (!s->pull)
    return;
  natsSubscription_Unsubscribe(s->pull);
  natsSubscription_Destroy(s->pull);
  s->pull = NULL;
}

static void efd_set(int fd) {
  uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  (void)r; /* EAGAIN: already readable */
}

static void efd_clear(int fd) {
  uint64_t v;
  ssize_t r = read(fd, &v, sizeof v);
  (void)r;
}

/* Level-triggered: readable iff something stored is beyond the position. */
static void efd_update(nats_sub *s) {
  if (atomic_load(&s->stored) > s->last)
    efd_set(s->efd);
}

/* The consumer's position and the stream's last sequence, from the
 * server, after the durable was (re)created or bound. */
static int position_load(nats_sub *s) {
  jsConsumerInfo *ci = NULL;
  jsErrCode je = 0;
  natsStatus st = js_GetConsumerInfo(&ci, s->b->js, s->stream, s->durable, NULL, &je);
  if (st != NATS_OK)
    return nerr(st, je, s->b->nc, "consumer info", s->durable);
  s->last = ci->Delivered.Stream;
  uint64_t top = ci->Delivered.Stream + ci->NumPending, cur = atomic_load(&s->stored);
  while (top > cur && !atomic_compare_exchange_weak(&s->stored, &cur, top))
    ;
  jsConsumerInfo_Destroy(ci);
  return 0;
}

/* The stream's last sequence into s->stored. */
static int stored_load(nats_sub *s) {
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus st = js_GetStreamInfo(&si, s->b->js, s->stream, NULL, &je);
  if (st != NATS_OK)
    return nerr(st, je, s->b->nc, "consume", s->channel);
  uint64_t top = si->State.LastSeq, cur = atomic_load(&s->stored);
  while (top > cur && !atomic_compare_exchange_weak(&s->stored, &cur, top))
    ;
  jsStreamInfo_Destroy(si);
  return 0;
}

static void on_note(natsConnection *nc, natsSubscription *sub, natsMsg *msg,
                    void *closure) {
  (void)nc;
  (void)sub;
  nats_sub *s = closure;
  jsMsgMetaData *md = NULL;
  if (natsMsg_GetMetaData(&md, msg) == NATS_OK) {
    uint64_t seq = md->Sequence.Stream, cur = atomic_load(&s->stored);
    while (seq > cur && !atomic_compare_exchange_weak(&s->stored, &cur, seq))
      ;
    jsMsgMetaData_Destroy(md);
  }
  efd_set(s->efd);
  natsMsg_Destroy(msg);
}

static void on_note_done(void *closure) {
  nats_sub *s = closure;
  pthread_mutex_lock(&s->note_mu);
  s->note_done = 1;
  pthread_cond_broadcast(&s->note_cv);
  pthread_mutex_unlock(&s->note_mu);
}

static int note_start(nats_sub *s) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = s->stream;
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverNew;
  so.Config.HeadersOnly = true;
  jsErrCode je = 0;
  natsStatus st =
      js_Subscribe(&s->note, s->b->js_note, s->subject, on_note, s, NULL, &so, &je);
  if (st == NATS_OK)
    st = natsSubscription_SetOnCompleteCB(s->note, on_note_done, s);
  if (st != NATS_OK) {
    int rc = nerr(st, je, s->b->nc, "watch channel", s->channel);
    if (s->note) {
      natsSubscription_Unsubscribe(s->note);
      natsSubscription_Destroy(s->note);
      s->note = NULL;
    }
    return rc;
  }
  return 0;
}

/* Stop the notifier and wait (bounded) until its callback can no longer
 * run, so that the eventfd and the nats_sub can go. Wait whatever the
 * unsubscribe returns: a subscription the library already closed (the
 * ordered consumer gives up when its stream is deleted) refuses the
 * unsubscribe, yet its completion callback is still queued on the
 * delivery thread. Returns 0 once the callback has run, -1 if it did not
 * within 5 s (then the caller must not free what the callback touches). */
static int note_stop(nats_sub *s) {
  if (!s->note)
    return 0;
  natsSubscription_Unsubscribe(s->note);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 5;
  pthread_mutex_lock(&s->note_mu);
  while (!s->note_done)
    if (pthread_cond_timedwait(&s->note_cv, &s->note_mu, &ts) == ETIMEDOUT)
      break;
  int done = s->note_done;
  pthread_mutex_unlock(&s->note_mu);
  natsSubscription_Destroy(s->note);
  s->note = NULL;
  return done ? 0 : -1;
}

static void sub_free(nats_sub *s) {
  if (!s)
    return;
  int stuck = note_stop(s);
  pull_drop(s);
  if (stuck) {
    /* The notifier may still call back into s: keep s and its eventfd
     * (a bounded leak) rather than let a late callback write freed memory. */
    free(s->arr);
    s->arr = NULL;
    return;
  }
  if (s->efd >= 0)
    close(s->efd);
  pthread_mutex_destroy(&s->note_mu);
  pthread_cond_destroy(&s->note_cv);
  free(s->channel);
  free(s->subject);
  free(s->ack_to);
  free(s->arr);
  free(s);
}

/*
 * Where the group starts. Its committed position is the later of the
 * consumer's ack floor and its cursor in the bucket (nats_cursor.c): the ack
 * floor alone can be older than a commit that returned 0 once the
 * consumer's leader changed, and the cursor can be older than the ack floor
 * after a commit whose cursor write failed (outcome unknown: either is
 * right). The durable is recreated at that position + 1 unless it would
 * deliver from there anyway (its unacknowledged messages would only come
 * again after AckWait); a missing durable is added there, or as `start`
 * says when the group has no cursor either.
 */
static int start_resolve(nats_sub *s, int start) {
  nats_backend *b = s->b;
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus st = js_GetStreamInfo(&si, b->js, s->stream, NULL, &je);
  if (st != NATS_OK) {
    if (st == NATS_NOT_FOUND && !je)
      je = JSStreamNotFoundErr;
    return nerr(st, je, b->nc, "subscribe", s->channel);
  }
  s->created = si->Created;
  jsStreamInfo_Destroy(si);
  int found = 0;
  uint64_t kv = 0;
  je = 0;
  if ((st = lmq__ncur_ensure(b->cur)) != NATS_OK ||
      (st = lmq__ncur_get(b->cur, s->stream, s->durable, s->created, &found, &kv,
                          &je)) != NATS_OK)
    return nerr(st, je, b->nc, "subscribe: read the cursor of group", s->durable);
  jsConsumerInfo *ci = NULL;
  je = 0;
  st = js_GetConsumerInfo(&ci, b->js, s->stream, s->durable, NULL, &je);
  if (st == NATS_OK) {
    uint64_t floor = ci->AckFloor.Stream, next = ci->Delivered.Stream + 1;
    int pending = ci->NumAckPending > 0;
    jsConsumerInfo_Destroy(ci);
    uint64_t from = (found && kv > floor ? kv : floor) + 1;
    return pending || from != next ? durable_recreate(s, from) : 0;
  }
  if ((st == NATS_NOT_FOUND || je == JSConsumerNotFoundErr) && je != JSStreamNotFoundErr)
    return found ? durable_add(s, js_DeliverByStartSequence, kv + 1)
                 : durable_add(s, start == LMQ_START_LATEST ? js_DeliverNew : js_DeliverAll,
                               0);
  return nerr(st, je, b->nc, "subscribe", s->channel);
}

static int n_subscribe(lmq_backend *bb, lmq_bsub **out, const char *ch,
                       const char *group, int start) {
  nats_backend *b = nb(bb);
  if (!out || !group)
    return lmq__error(LMQ_EINVAL, "nats backend: subscribe: NULL argument");
  int rc = lmq__name_check("group", group);
  if (rc || (rc = connected(b, "subscribe", ch)))
    return rc;
  nats_sub *s = calloc(1, sizeof *s);
  if (!s)
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  s->b = b;
  s->efd = -1;
  pthread_mutex_init(&s->note_mu, NULL);
  pthread_cond_init(&s->note_cv, NULL);
  if ((rc = stream_name(s->stream, ch)) ||
      (rc = esc(s->durable, NB_NAME_MAX, "", group)))
    goto fail;
  if (!(s->channel = strdup(ch)) || !(s->subject = subject_of(ch))) {
    rc = lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
    goto fail;
  }
  if ((s->efd = lmq__event_new()) < 0) {
    rc = lmq__error(lmq__errno_code(errno), "nats backend: eventfd: %s",
                    strerror(errno));
    goto fail;
  }
  /* The notifier first: a message stored after this point wakes the fd. */
  if ((rc = note_start(s)))
    goto fail;
  if ((rc = start_resolve(s, start)))
    goto fail;
  if ((rc = pull_bind(s)) || (rc = position_load(s)))
    goto fail;
  efd_update(s);
  *out = (lmq_bsub *)s;
  return 0;
fail:
  sub_free(s);
  return rc;
}

static int ensure_cap(nats_sub *s, size_t n) {
  if (n <= s->cap)
    return 0;
  lmq_bmsg *na = realloc(s->arr, n * sizeof *na);
  if (!na)
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  s->arr = na;
  s->cap = n;
  return 0;
}

static natsStatus fetch_raw(nats_sub *s, natsMsgList *l, int batch,
                            int timeout_ms) {
  if (timeout_ms > 0)
    return natsSubscription_Fetch(l, s->pull, batch, timeout_ms, NULL);
  jsFetchRequest fr;
  jsFetchRequest_Init(&fr);
  fr.Batch = batch;
  /* NoWait alone: with an Expires as well, nats-server 2.9 holds the
   * request until it expires when nothing is stored. */
  fr.NoWait = true;
  return natsSubscription_FetchRequest(l, s->pull, &fr);
}

/* Move src's messages to the end of dst (capacity cap) and free src's array
 * (libnats allocates it with calloc). */
static void list_move(natsMsg **dst, int *n, natsMsgList *src) {
  for (int i = 0; i < src->Count; i++)
    dst[(*n)++] = src->Msgs[i];
  free(src->Msgs);
  memset(src, 0, sizeof *src);
}

/*
 * One fetch: timeout_ms 0 takes what is stored now, > 0 waits that long
 * for the first message. NATS_TIMEOUT / NATS_NOT_FOUND mean none.
 *
 * libnats 3.4.1 can overrun the array it collects into when messages of an
 * earlier pull request are already queued in the subscription when a fetch
 * starts (a test crashed in natsMsgList_Destroy on a list of 267 messages
 * for a batch of 256). Such leftovers are taken one per fetch, which cannot
 * overrun; the rest of the batch is then fetched normally, with nothing
 * queued, and the two are merged.
 */
static natsStatus fetch(nats_sub *s, natsMsgList *l, int batch, int timeout_ms) {
  int pending = 0, pbytes = 0;
  if (natsSubscription_GetPending(s->pull, &pending, &pbytes) != NATS_OK ||
      pending <= 0)
    return fetch_raw(s, l, batch, timeout_ms);
  memset(l, 0, sizeof *l);
  natsMsg **msgs = calloc((size_t)batch, sizeof *msgs);
  if (!msgs)
    return NATS_NO_MEMORY;
  int n = 0;
  natsStatus st = NATS_OK;
  while (n < batch && pending > 0) {
    natsMsgList one;
    st = fetch_raw(s, &one, 1, 0);
    if (st != NATS_OK || one.Count != 1) {
      natsMsgList_Destroy(&one);
      break;
    }
    list_move(msgs, &n, &one);
    if (natsSubscription_GetPending(s->pull, &pending, &pbytes) != NATS_OK)
      break;
  }
  if (n < batch && pending <= 0) {
    natsMsgList rest;
    natsStatus st2 = fetch_raw(s, &rest, batch - n, n ? 0 : timeout_ms);
    if (st2 == NATS_OK && rest.Count <= batch - n)
      list_move(msgs, &n, &rest);
    else
      natsMsgList_Destroy(&rest);
    if (!n)
      st = st2;
  }
  if (!n) {
    free(msgs);
    return st == NATS_OK ? NATS_TIMEOUT : st;
  }
  l->Msgs = msgs;
  l->Count = n;
  return NATS_OK;
}

static int n_consume(lmq_bsub *bs, lmq_bbatch *out, size_t max, int timeout_ms) {
  nats_sub *s = (nats_sub *)bs;
  memset(out, 0, sizeof *out);
  if (!max)
    return 0;
  if (!s->pull)
    return lmq__error(LMQ_EFAILED,
                      "nats backend: subscription '%.64s' lost "
                      "its consumer in a failed seek",
                      s->durable);
  int rc = connected(s->b, "consume", s->channel);
  if (rc)
    return rc;
  int batch = max > 4096 ? 4096 : (int)max;
  nats_batch *nbt = calloc(1, sizeof *nbt);
  if (!nbt || (rc = ensure_cap(s, (size_t)batch))) {
    free(nbt);
    return rc ? rc : lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  }
  uint64_t deadline =
      lmq__mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000;
  efd_clear(s->efd);
  natsStatus st;
  int want = batch; /* how many a waiting fetch asks for */
  for (;;) {
    st = fetch(s, &nbt->list, batch, 0);
    if (st == NATS_OK && nbt->list.Count > 0)
      break;
    natsMsgList_Destroy(&nbt->list);
    if (st != NATS_OK && st != NATS_TIMEOUT && st != NATS_NOT_FOUND)
      break;
    int left;
    if (timeout_ms < 0) {
      left = NB_FETCH_SLICE_MS;
    } else if (timeout_ms == 0) {
      /* Stored but not yet visible to the pull consumer (or to the
       * notifier): ask the stream, and wait for what it has. */
      if (atomic_load(&s->stored) <= s->last &&
          ((rc = stored_load(s)) || atomic_load(&s->stored) <= s->last))
        break;
      /* Wait for what is stored, not for a whole batch: a fetch of N
       * returns when N are there or the wait ends, so one message used
       * to take the whole catch-up wait (~200 ms). */
      uint64_t stored = atomic_load(&s->stored) - s->last;
      if (stored < (uint64_t)want)
        want = (int)stored;
      left = NB_CATCH_UP_MS;
      timeout_ms = NB_CATCH_UP_MS;
      deadline = lmq__mono_ns() + (uint64_t)left * 1000000;
    } else {
      uint64_t now = lmq__mono_ns();
      if (now >= deadline)
        break;
      left = (int)((deadline - now + 999999) / 1000000);
    }
    st = fetch(s, &nbt->list, want, left);
    if (st == NATS_OK && nbt->list.Count > 0)
      break;
    natsMsgList_Destroy(&nbt->list);
    if (st != NATS_OK && st != NATS_TIMEOUT && st != NATS_NOT_FOUND)
      break;
    if (timeout_ms >= 0 && lmq__mono_ns() >= deadline)
      break;
  }
  /* An empty wait: say so if the channel went away meanwhile. */
  if (!rc && timeout_ms != 0 && nbt->list.Count == 0 &&
      (st == NATS_TIMEOUT || st == NATS_NOT_FOUND))
    rc = stored_load(s);
  if (rc) {
    free(nbt);
    efd_update(s);
    return rc;
  }
  if (st != NATS_OK && st != NATS_TIMEOUT && st != NATS_NOT_FOUND) {
    free(nbt);
    /* A fetch on a deleted stream/consumer ends here. */
    efd_update(s);
    return nerr(st, 0, s->b->nc, "consume", s->channel);
  }
  size_t n = 0;
  const char *reply = NULL;
  for (int i = 0; i < nbt->list.Count; i++) {
    natsMsg *m = nbt->list.Msgs[i];
    jsMsgMetaData *md = NULL;
    if (natsMsg_GetMetaData(&md, m) != NATS_OK)
      continue; /* not a stream message (a status): nothing to hand out */
    uint64_t seq = md->Sequence.Stream;
    jsMsgMetaData_Destroy(md);
    if (seq <= s->last)
      continue; /* redelivered within this session */
    s->last = seq;
    reply = natsMsg_GetReply(m);
    s->arr[n++] = (lmq_bmsg){seq, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)};
  }
  if (reply) {
    char *r = strdup(reply);
    if (!r) {
      natsMsgList_Destroy(&nbt->list);
      free(nbt);
      return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
    }
    free(s->ack_to);
    s->ack_to = r;
  }
  efd_update(s);
  out->msgs = s->arr;
  out->n = n;
  out->priv = nbt;
  return 0;
}

static void n_batch_free(lmq_bsub *bs, lmq_bbatch *batch) {
  (void)bs;
  nats_batch *nbt = batch->priv;
  if (nbt) {
    natsMsgList_Destroy(&nbt->list);
    free(nbt);
  }
  memset(batch, 0, sizeof *batch);
}

static int n_fd(lmq_bsub *bs, int *fd) {
  *fd = ((nats_sub *)bs)->efd;
  return 0;
}

static int n_seek(lmq_bsub *bs, uint64_t id) {
  nats_sub *s = (nats_sub *)bs;
  int rc = connected(s->b, "seek", s->channel);
  if (rc)
    return rc;
  /* The cursor first, so that a later subscribe starts here (it takes the
   * later of cursor and ack floor, and the new durable's ack floor is
   * id - 1). When this write fails the durable is left as it is. */
  jsErrCode je = 0;
  uint64_t before = id ? id - 1 : 0;
  natsStatus st = lmq__ncur_put(s->b->cur, s->stream, s->durable, s->created, before,
                                NB_API_WAIT_MS, &je);
  if (st == NATS_TIMEOUT) {
    nerr(st, je, s->b->nc, "seek", s->durable);
    return lmq__error(LMQ_EUNKNOWN,
                      "nats backend: seek '%.64s': the cursor write was not acknowledged "
                      "in %d ms: a later subscribe may or may not start at %llu",
                      s->durable, NB_API_WAIT_MS, (unsigned long long)id);
  }
  if (st != NATS_OK)
    return nerr(st, je, s->b->nc, "seek: write the cursor of group", s->durable);
  pull_drop(s);
  free(s->ack_to);
  s->ack_to = NULL;
  efd_clear(s->efd);
  if ((rc = durable_recreate(s, id)) || (rc = pull_bind(s)) || (rc = position_load(s)))
    return rc;
  efd_update(s);
  return 0;
}

static int n_commit(lmq_bsub *bs) {
  nats_sub *s = (nats_sub *)bs;
  if (!s->ack_to)
    return 0;
  uint64_t t0 = lmq__mono_ns();
  natsMsg *reply = NULL;
  natsStatus st =
      natsConnection_RequestString(&reply, s->b->nc, s->ack_to, "+ACK", NB_API_WAIT_MS);
  natsMsg_Destroy(reply);
  /* Sent but not answered: the consumer may or may not have it. */
  if (st == NATS_TIMEOUT) {
    nerr(st, 0, s->b->nc, "commit", s->durable);
    return lmq__error(LMQ_EUNKNOWN, "nats backend: commit '%.64s': no answer in %d ms: "
                                    "outcome unknown",
                      s->durable, NB_API_WAIT_MS);
  }
  if (st != NATS_OK)
    return nerr(st, 0, s->b->nc, "commit", s->durable);
  /* The consumer's leader has the ack; the cursor makes it durable. What is
   * left of the call's budget bounds the write. */
  uint64_t spent_ms = (lmq__mono_ns() - t0) / 1000000;
  int left = spent_ms < NB_API_WAIT_MS ? NB_API_WAIT_MS - (int)spent_ms : 1;
  jsErrCode je = 0;
  st = lmq__ncur_put(s->b->cur, s->stream, s->durable, s->created, s->last, left, &je);
  if (st != NATS_OK) {
    nerr(st, je, s->b->nc, "commit", s->durable);
    return lmq__error(LMQ_EUNKNOWN,
                      "nats backend: commit '%.64s': acknowledged by the consumer but the "
                      "cursor write failed (%s): outcome unknown",
                      s->durable, natsStatus_GetText(st));
  }
  free(s->ack_to);
  s->ack_to = NULL;
  return 0;
}

static void n_unsubscribe(lmq_bsub *bs) { sub_free((nats_sub *)bs); }

static lmq_meta *n_meta(lmq_backend *b) {
  (void)b;
  return NULL;
}

static void n_close(lmq_backend *bb) {
  nats_backend *b = nb(bb);
  if (!b)
    return;
  jsCtx_Destroy(b->js);
  jsCtx_Destroy(b->js_note);
  if (b->nc)
    natsConnection_Close(b->nc);
  /* After the close: no publish is pending, nothing can call back. */
  lmq__npub_destroy(b->pub);
  lmq__ncur_destroy(b->cur);
  natsConnection_Destroy(b->nc);
  free(b);
}

static const lmq_backend_ops nats_ops = {
    "nats",   n_channel_create, n_channel_destroy, n_produce,
    n_latest, n_subscribe,      n_consume,         n_batch_free,
    n_fd,     n_seek,           n_commit,          n_unsubscribe,
    n_meta,   n_close,
};

/* Split "nats://a:1,nats://b:2" into at most NB_MAX_SERVERS URLs (in buf). */
static int url_split(const char **urls, int *n, char *buf) {
  *n = 0;
  for (char *save = NULL, *u = strtok_r(buf, ",", &save); u;
       u = strtok_r(NULL, ",", &save)) {
    while (*u == ' ')
      u++;
    if (!*u)
      continue;
    if (*n == NB_MAX_SERVERS)
      return lmq__error(LMQ_EINVAL, "nats backend: more than %d servers in nats.url",
                        NB_MAX_SERVERS);
    urls[(*n)++] = u;
  }
  if (!*n)
    return lmq__error(LMQ_EINVAL, "nats backend: nats.url names no server");
  return 0;
}

int lmq__backend_nats_open(lmq_backend **out, const char *url, int replicas) {
  if (!out || !url)
    return lmq__error(LMQ_EINVAL, "nats backend: NULL out or url");
  if (replicas < 1 || replicas > 5)
    return lmq__error(LMQ_EINVAL, "nats backend: replicas %d is not in 1..5", replicas);
  char *buf = strdup(url);
  const char *urls[NB_MAX_SERVERS];
  int nurl = 0, rc;
  if (!buf)
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  if ((rc = url_split(urls, &nurl, buf))) {
    free(buf);
    return rc;
  }
  nats_backend *b = calloc(1, sizeof *b);
  if (!b) {
    free(buf);
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  }
  b->base.ops = &nats_ops;
  b->replicas = replicas;
  b->produce_ms = NB_PRODUCE_MS;
  natsOptions *o = NULL;
  natsStatus s = natsOptions_Create(&o);
  if (s == NATS_OK)
    s = natsOptions_SetServers(o, urls, nurl);
  if (s == NATS_OK)
    s = natsOptions_SetName(o, "lmq");
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(o, 2000); /* connect */
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(o, 250);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(o, -1);
  /* A server that hangs (not one that closes the socket) is noticed after
   * two unanswered pings, and the client moves to another server. */
  if (s == NATS_OK)
    s = natsOptions_SetPingInterval(o, NB_PING_MS);
  if (s == NATS_OK)
    s = natsOptions_SetMaxPingsOut(o, 2);
  if (s == NATS_OK)
    s = natsConnection_Connect(&b->nc, o);
  natsOptions_Destroy(o);
  free(buf);
  if (s != NATS_OK) {
    rc = nerr(s, 0, NULL, "connect", url);
    b->nc = NULL;
    n_close(&b->base);
    return rc;
  }
  if ((rc = lmq__npub_create(&b->pub, b->nc))) {
    n_close(&b->base);
    return lmq__error(rc, "nats backend: out of memory");
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = NB_API_WAIT_MS;
  s = natsConnection_JetStream(&b->js, b->nc, &jo);
  jo.Wait = NB_NOTE_WAIT_MS;
  if (s == NATS_OK)
    s = natsConnection_JetStream(&b->js_note, b->nc, &jo);
  if (s != NATS_OK) {
    rc = nerr(s, 0, b->nc, "jetstream", url);
    n_close(&b->base);
    return rc;
  }
  if (!(b->cur = lmq__ncur_create(b->js, replicas))) {
    n_close(&b->base);
    return lmq__error(LMQ_ENOMEM, "nats backend: out of memory");
  }
  /* Fail now, not at first use, when the server runs without -js. */
  jsAccountInfo *ai = NULL;
  jsErrCode je = 0;
  s = js_GetAccountInfo(&ai, b->js, NULL, &je);
  jsAccountInfo_Destroy(ai);
  if (s != NATS_OK) {
    rc = nerr(s, je, b->nc, "jetstream account", url);
    n_close(&b->base);
    return rc;
  }
  *out = &b->base;
  return 0;
}
