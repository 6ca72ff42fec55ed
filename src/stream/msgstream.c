/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * msgstream.c - MsgStream: producer (repack, produce, broadcast) and the
 * plain consumer; the pieces TtMsgStream shares (channel reads, the epoll
 * set behind the stream's fd).
 */
#include "config.h"
#include "stream/stream.h"
#include "stream/repack.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int stream_new(lmq_msgstream **out, lmq_stream_factory *f, int tt) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "msgstream_create: out is NULL");
  *out = NULL;
  lmq_msgstream *s = calloc(1, sizeof *s);
  if (!s)
    return lmq__error(LMQ_ENOMEM, "msgstream_create: out of memory");
  s->tt = tt;
  s->epfd = s->readyfd = -1;
  int rc = lmq__factory_ctx(&s->ctx, f);
  if (rc) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

LMQ_API int lmq_msgstream_create(lmq_msgstream **out, lmq_stream_factory *f) {
  return stream_new(out, f, 0);
}

LMQ_API int lmq_ttmsgstream_create(lmq_msgstream **out,
                                   lmq_stream_factory *f) {
  return stream_new(out, f, 1);
}

static void strv_free(char **v, size_t n) {
  if (!v)
    return;
  for (size_t i = 0; i < n; i++)
    free(v[i]);
  free(v);
}

static void phand_close(lmq_channel **h, size_t n) {
  if (!h)
    return;
  for (size_t i = 0; i < n; i++)
    lmq_channel_close(h[i]);
  free(h);
}

LMQ_API void lmq_msgstream_close(lmq_msgstream *s) {
  if (!s)
    return;
  lmq__tt_clear(s);
  free(s->buf);
  for (size_t c = 0; c < s->nch; c++) {
    lmq_schan *ch = &s->ch[c];
    /* A plain consumer has handed out everything it read: persist that --
     * unless a kept batch still holds messages it did not hand out; then
     * leave the cursor uncommitted so they are delivered again. */
    if (!s->tt && ch->sub && !ch->has_pend)
      s->ctx->be->ops->commit(ch->sub);
    if (ch->sub)
      lmq__stream_pend_drop(s, c);
    if (ch->sub)
      s->ctx->be->ops->unsubscribe(ch->sub);
    free(ch->inq);
    lmq_msg_position_clear(&ch->start);
    lmq_msg_position_clear(&ch->tick_pos);
    free(ch->name);
  }
  free(s->ch);
  if (s->epfd >= 0)
    close(s->epfd);
  if (s->readyfd >= 0)
    close(s->readyfd);
  phand_close(s->phand, s->npch);
  strv_free(s->pch, s->npch);
  free(s->subname);
  lmq__slab_cur_drop(&s->slab); /* messages still alive keep their slabs */
  lmq__ctx_unref(s->ctx);
  free(s);
}

static int names_copy(char ***out, const char *const *names, size_t n,
                      const char *what) {
  if (!names || n == 0)
    return lmq__error(LMQ_EINVAL, "%s: no channels", what);
  char **v = calloc(n, sizeof *v);
  if (!v)
    return lmq__error(LMQ_ENOMEM, "%s: out of memory", what);
  for (size_t i = 0; i < n; i++) {
    int rc = lmq__name_check("channel", names[i]);
    for (size_t j = 0; rc == 0 && j < i; j++)
      if (!strcmp(names[i], names[j]))
        rc = lmq__error(LMQ_EINVAL, "%s: channel '%s' is listed twice", what,
                        names[i]);
    if (rc == 0 && !(v[i] = strdup(names[i])))
      rc = lmq__error(LMQ_ENOMEM, "%s: out of memory", what);
    if (rc) {
      strv_free(v, n);
      return rc;
    }
  }
  *out = v;
  return 0;
}

/* ------------------------------------------------------------- producer */

LMQ_API int lmq_msgstream_as_producer(lmq_msgstream *s,
                                      const char *const *channels, size_t n) {
  if (!s)
    return lmq__error(LMQ_EINVAL, "as_producer: stream is NULL");
  if (s->pch)
    return lmq__error(LMQ_EINVAL, "as_producer: already a producer");
  char **v = NULL;
  int rc = names_copy(&v, channels, n, "as_producer");
  if (rc)
    return rc;
  lmq_backend *be = s->ctx->be;
  lmq_env *env = lmq__backend_engine_env(be);
  lmq_channel **h = NULL;
  if (env && !(h = calloc(n, sizeof *h))) {
    strv_free(v, n);
    return lmq__error(LMQ_ENOMEM, "as_producer: out of memory");
  }
  for (size_t i = 0; i < n; i++)
    if ((rc = be->ops->channel_create(be, v[i])) ||
        (h && (rc = lmq_channel_open(&h[i], env, v[i])))) {
      phand_close(h, n);
      strv_free(v, n);
      return rc;
    }
  s->pch = v;
  s->phand = h;
  s->npch = n;
  return 0;
}

/* Produce to producer channel c: through its handle when there is one. */
static int produce_to(lmq_msgstream *s, size_t c, const lmq_buf *bufs,
                      size_t n, uint64_t *ids) {
  lmq_backend *be = s->ctx->be;
  if (s->phand)
    return lmq_channel_produce(s->phand[c], bufs, n, ids, LMQ_SYNC_DEFAULT);
  return be->ops->produce(be, s->pch[c], bufs, n, ids);
}

LMQ_API int lmq_msgstream_set_repack(lmq_msgstream *s, lmq_repack_fn fn,
                                     void *arg) {
  if (!s)
    return lmq__error(LMQ_EINVAL, "set_repack: stream is NULL");
  s->repack = fn;
  s->repack_arg = arg;
  return 0;
}

LMQ_API int lmq_msgstream_produce(lmq_msgstream *s, const lmq_msg_pack *pack) {
  if (!s || !pack || (pack->nmsgs && !pack->msgs))
    return lmq__error(LMQ_EINVAL, "produce: NULL argument");
  if (!s->pch)
    return lmq__error(LMQ_EINVAL, "produce: call as_producer first");
  if (pack->nmsgs == 0)
    return 0;
  lmq_repack_out o = {0};
  lmq_buf *bufs = NULL;
  size_t *order = NULL;
  lmq_tsmsg **ms = NULL;
  unsigned char *wire = NULL; /* every message's bytes, one buffer */
  int rc = lmq__repack_run(&o, s->npch, s->repack, s->repack_arg, pack->msgs,
                           pack->nmsgs);
  if (rc)
    goto done;
  /* Marshal everything first, so that a bad message sends nothing. */
  bufs = calloc(o.n ? o.n : 1, sizeof *bufs);
  order = malloc((o.n ? o.n : 1) * sizeof *order);
  ms = malloc((o.n ? o.n : 1) * sizeof *ms);
  if (!bufs || !order || !ms) {
    rc = lmq__error(LMQ_ENOMEM, "produce: out of memory");
    goto done;
  }
  /* Group the routes by channel, keeping routing order within each. */
  size_t k = 0;
  for (size_t c = 0; c < s->npch; c++)
    for (size_t i = 0; i < o.n; i++)
      if ((size_t)o.routes[i].channel == c) {
        ms[k] = o.routes[i].msg;
        order[k++] = c;
      }
  if ((rc = lmq__msg_marshal_many(&wire, bufs, s->ctx->disp, ms, k)))
    goto done;
  for (size_t i = 0; i < k && rc == 0;) {
    size_t j = i;
    while (j < k && order[j] == order[i])
      j++;
    rc = produce_to(s, order[i], &bufs[i], j - i, NULL);
    i = j;
  }
done:
  free(wire);
  free(bufs);
  free(ms);
  free(order);
  lmq__repack_out_free(&o);
  return rc;
}

LMQ_API int lmq_msgstream_broadcast(lmq_msg_position **ids, size_t *nids,
                                    lmq_msgstream *s, const lmq_msg_pack *pack) {
  if (ids)
    *ids = NULL;
  if (nids)
    *nids = 0;
  if (!s || !pack || (pack->nmsgs && !pack->msgs))
    return lmq__error(LMQ_EINVAL, "broadcast: NULL argument");
  if (!s->pch)
    return lmq__error(LMQ_EINVAL, "broadcast: call as_producer first");
  size_t n = pack->nmsgs;
  if (n == 0)
    return 0;
  lmq_buf *bufs = calloc(n, sizeof *bufs);
  uint64_t *idv = malloc(n * sizeof *idv);
  unsigned char *wire = NULL;
  lmq_msg_position *pos = NULL;
  size_t npos = 0;
  int rc = 0;
  if (!bufs || !idv) {
    rc = lmq__error(LMQ_ENOMEM, "broadcast: out of memory");
    goto done;
  }
  if (ids && !(pos = calloc(s->npch * n, sizeof *pos))) {
    rc = lmq__error(LMQ_ENOMEM, "broadcast: out of memory");
    goto done;
  }
  if ((rc = lmq__msg_marshal_many(&wire, bufs, s->ctx->disp, pack->msgs, n)))
    goto done;
  for (size_t c = 0; c < s->npch; c++) {
    if ((rc = produce_to(s, c, bufs, n, idv)))
      goto done;
    for (size_t i = 0; pos && i < n; i++, npos++)
      if ((rc = lmq__pos_set(&pos[npos], s->pch[c], NULL, idv[i],
                             pack->msgs[i]->end_ts)))
        goto done;
  }
  if (ids) {
    *ids = pos;
    pos = NULL;
    if (nids)
      *nids = npos;
  }
done:
  lmq_msg_positions_free(pos, npos);
  free(wire);
  free(bufs);
  free(idv);
  return rc;
}

/* ------------------------------------------------------------- consumer */

int lmq__stream_watch(lmq_msgstream *s, size_t c, int on) {
  lmq_schan *ch = &s->ch[c];
  if (!!on == ch->in_set)
    return 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c};
  if (epoll_ctl(s->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, ch->fd, &ev) &&
      !(on && errno == EEXIST) && !(!on && errno == ENOENT))
    return lmq__error(lmq__errno_code(errno), "epoll_ctl: %s", strerror(errno));
  ch->in_set = !!on;
  return 0;
}

void lmq__stream_ready(lmq_msgstream *s, int on) {
  if (on)
    lmq__event_set(s->readyfd);
  else
    lmq__event_clear(s->readyfd);
}

int lmq__stream_wait(lmq_msgstream *s, int timeout_ms) {
  struct epoll_event ev[8];
  int n = epoll_wait(s->epfd, ev, 8, timeout_ms);
  if (n < 0 && errno != EINTR)
    return lmq__error(LMQ_EIO, "epoll_wait: %s", strerror(errno));
  return n > 0;
}

int lmq__remaining_ms(uint64_t deadline_ns, int timeout_ms) {
  if (timeout_ms < 0)
    return -1;
  uint64_t now = lmq__mono_ns();
  if (now >= deadline_ns)
    return 0;
  uint64_t ms = (deadline_ns - now + 999999) / 1000000;
  return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

LMQ_API int lmq_msgstream_as_consumer(lmq_msgstream *s,
                                      const char *const *channels, size_t n,
                                      const char *subname, int start) {
  if (!s)
    return lmq__error(LMQ_EINVAL, "as_consumer: stream is NULL");
  if (s->ch)
    return lmq__error(LMQ_EINVAL, "as_consumer: already a consumer");
  if (start != LMQ_SUB_EARLIEST && start != LMQ_SUB_LATEST)
    return lmq__error(LMQ_EINVAL, "as_consumer: start must be "
                                  "LMQ_SUB_EARLIEST or LMQ_SUB_LATEST");
  int rc = lmq__name_check("subscription", subname);
  if (rc)
    return rc;
  char **v = NULL;
  if ((rc = names_copy(&v, channels, n, "as_consumer")))
    return rc;
  const lmq_backend_ops *ops = s->ctx->be->ops;
  s->ch = calloc(n, sizeof *s->ch);
  s->subname = strdup(subname);
  if (!s->ch || !s->subname) {
    rc = lmq__error(LMQ_ENOMEM, "as_consumer: out of memory");
    goto fail;
  }
  s->nch = n;
  for (size_t c = 0; c < n; c++) {
    s->ch[c].name = v[c];
    v[c] = NULL;
    s->ch[c].fd = -1;
  }
  if ((s->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
      (s->readyfd = lmq__event_new()) < 0) {
    rc = lmq__error(lmq__errno_code(errno), "as_consumer: %s",
                    strerror(errno));
    goto fail;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->readyfd, &ev)) {
    rc = lmq__error(LMQ_EIO, "epoll_ctl: %s", strerror(errno));
    goto fail;
  }
  for (size_t c = 0; c < n; c++) {
    lmq_schan *ch = &s->ch[c];
    if ((rc = ops->channel_create(s->ctx->be, ch->name)) ||
        (rc = ops->subscribe(s->ctx->be, &ch->sub, ch->name, subname,
                             start == LMQ_SUB_LATEST ? LMQ_START_LATEST
                                                     : LMQ_START_EARLIEST)) ||
        (rc = ops->fd(ch->sub, &ch->fd)) || (rc = lmq__stream_watch(s, c, 1)))
      goto fail;
  }
  strv_free(v, n);
  return 0;
fail:
  strv_free(v, n);
  for (size_t c = 0; s->ch && c < s->nch; c++) {
    if (s->ch[c].sub)
      ops->unsubscribe(s->ch[c].sub);
    free(s->ch[c].name);
  }
  free(s->ch);
  s->ch = NULL;
  s->nch = 0;
  free(s->subname);
  s->subname = NULL;
  if (s->epfd >= 0)
    close(s->epfd);
  if (s->readyfd >= 0)
    close(s->readyfd);
  s->epfd = s->readyfd = -1;
  return rc;
}

/*
 * Read channel c's next messages into fn. The backend's cursor moves past a
 * whole batch at once; if taking one of them fails (out of memory) the
 * batch is kept and the next call resumes at that message, so nothing the
 * backend handed over is dropped. A message that does not decode is
 * skipped (a stream must not stall on one bad message) -- but running out
 * of memory while decoding is a failure, not a bad message.
 */
int lmq__stream_read(lmq_msgstream *s, size_t c,
                     int (*fn)(void *arg, lmq_tsmsg *m), void *arg) {
  lmq_schan *ch = &s->ch[c];
  const lmq_backend_ops *ops = s->ctx->be->ops;
  int rc;
  if (!ch->has_pend) {
    if ((rc = ops->consume(ch->sub, &ch->pend, s->ctx->rbuf, 0)))
      return rc;
    ch->pend_at = ch->pend_taken = 0;
    ch->has_pend = 1;
  }
  lmq_bbatch *b = &ch->pend;
  size_t start = ch->pend_taken, i = start;
  for (rc = 0; i < b->n && rc == 0; i++) {
    lmq_tsmsg *m = NULL;
    /* The envelope is checked now; the body when it is first used. */
    int u = lmq__msg_unmarshal_lazy(&m, s->ctx->disp, &s->slab, b->msgs[i].data,
                                    b->msgs[i].len, ch->name, s->subname,
                                    b->msgs[i].id);
    if (u == LMQ_ENOMEM) {
      rc = u;
      break;
    }
    if (u)
      continue; /* corrupt: skipped */
    m->chan = (unsigned)c;
    if ((rc = fn(arg, m))) /* fn disposed of m */
      break;
  }
  ch->pend_taken = i; /* on a failure, message i is tried again */
  if (rc)
    return rc;
  size_t n = i - start;
  return (int)(n > 0x7fffffff ? 0x7fffffff : n);
}

void lmq__stream_take(lmq_msgstream *s, size_t c) {
  lmq_schan *ch = &s->ch[c];
  if (!ch->has_pend)
    return;
  ch->pend_at = ch->pend_taken;
  if (ch->pend_at == ch->pend.n)
    lmq__stream_pend_drop(s, c);
}

void lmq__stream_untake(lmq_msgstream *s, size_t c) {
  lmq_schan *ch = &s->ch[c];
  if (ch->has_pend)
    ch->pend_taken = ch->pend_at;
}

/* Drop a kept batch (close, seek: the backend cursor moves anyway). */
void lmq__stream_pend_drop(lmq_msgstream *s, size_t c) {
  lmq_schan *ch = &s->ch[c];
  if (ch->has_pend) {
    s->ctx->be->ops->batch_free(ch->sub, &ch->pend);
    ch->has_pend = 0;
  }
}

static int plain_add(void *arg, lmq_tsmsg *m) {
  lmq_msg_pack *p = arg;
  int rc = lmq__pack_push(p, m);
  if (rc)
    lmq_tsmsg_unref(m);
  return rc;
}

/* Positions of the first and last message per channel. */
static int plain_positions(lmq_msgstream *s, lmq_msg_pack *p) {
  p->start_positions = calloc(s->nch, sizeof *p->start_positions);
  p->end_positions = calloc(s->nch, sizeof *p->end_positions);
  if (!p->start_positions || !p->end_positions)
    return lmq__error(LMQ_ENOMEM, "consume: out of memory");
  p->begin_ts = UINT64_MAX;
  for (size_t c = 0; c < s->nch; c++) {
    const lmq_tsmsg *first = NULL, *last = NULL;
    for (size_t i = 0; i < p->nmsgs; i++)
      if (p->msgs[i]->chan == c) {
        if (!first)
          first = p->msgs[i];
        last = p->msgs[i];
      }
    if (!first)
      continue;
    int rc;
    if ((rc = lmq_msg_position_copy(&p->start_positions[p->nstart],
                                    &first->pos)))
      return rc;
    p->nstart++;
    if ((rc = lmq_msg_position_copy(&p->end_positions[p->nend], &last->pos)))
      return rc;
    p->nend++;
  }
  for (size_t i = 0; i < p->nmsgs; i++) {
    if (p->msgs[i]->begin_ts < p->begin_ts)
      p->begin_ts = p->msgs[i]->begin_ts;
    if (p->msgs[i]->end_ts > p->end_ts)
      p->end_ts = p->msgs[i]->end_ts;
  }
  return 0;
}

static void take_all(lmq_msgstream *s) {
  for (size_t c = 0; c < s->nch; c++)
    lmq__stream_take(s, c);
}

/*
 * A plain pack: what is there now on every channel. What goes into it is
 * taken from the kept backend batches only once the pack is complete; if
 * building it fails, it is all given back and delivered by a later call.
 */
static int plain_consume(lmq_msg_pack **out, lmq_msgstream *s,
                         int timeout_ms) {
  uint64_t deadline =
      lmq__mono_ns() + (timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000 : 0);
  lmq_msg_pack *p = NULL;
  int rc = lmq_msg_pack_create(&p);
  if (rc)
    return rc;
  for (;;) {
    size_t read = 0;
    int failed = 0;
    for (size_t k = 0; k < s->nch; k++) {
      size_t c = (s->rr + k) % s->nch;
      int n = lmq__stream_read(s, c, plain_add, p);
      if (n < 0) {
        /* Hand out what the pack holds (the failure comes back on the
         * next call if it lasts); the rest stays kept for next time. */
        if (p->nmsgs) {
          failed = 1;
          break;
        }
        rc = n;
        goto fail;
      }
      read += (size_t)n;
    }
    s->rr = (s->rr + 1) % s->nch;
    if (p->nmsgs || failed)
      break;
    take_all(s); /* corrupt ones skipped: gone for good */
    /* Every message read was corrupt: keep going without waiting. */
    if (read)
      continue;
    int left = lmq__remaining_ms(deadline, timeout_ms);
    if (left == 0) {
      rc = LMQ_ETIMEDOUT;
      goto fail;
    }
    if ((rc = lmq__stream_wait(s, left)) < 0)
      goto fail;
  }
  if ((rc = plain_positions(s, p)))
    goto fail;
  take_all(s);
  *out = p;
  return 0;
fail:
  /* Nothing of this pack reaches the caller: give it all back. */
  for (size_t c = 0; c < s->nch; c++)
    lmq__stream_untake(s, c);
  lmq_msg_pack_destroy(p);
  return rc;
}

LMQ_API int lmq_msgstream_consume(lmq_msg_pack **out, lmq_msgstream *s,
                                  int timeout_ms) {
  if (!out || !s)
    return lmq__error(LMQ_EINVAL, "consume: NULL argument");
  *out = NULL;
  if (!s->ch)
    return lmq__error(LMQ_EINVAL, "consume: call as_consumer first");
  return s->tt ? lmq__tt_consume(out, s, timeout_ms)
               : plain_consume(out, s, timeout_ms);
}

LMQ_API int lmq_msgstream_fd(int *out, lmq_msgstream *s) {
  if (!out || !s)
    return lmq__error(LMQ_EINVAL, "msgstream_fd: NULL argument");
  if (!s->ch)
    return lmq__error(LMQ_EINVAL, "msgstream_fd: call as_consumer first");
  *out = s->epfd;
  return 0;
}

static int chan_index(const lmq_msgstream *s, const lmq_msg_position *p) {
  for (size_t c = 0; c < s->nch; c++)
    if (p->channel && !strcmp(p->channel, s->ch[c].name))
      return (int)c;
  return lmq__error(LMQ_EINVAL, "seek: '%.64s' is not a channel of this "
                                "consumer",
                    p->channel ? p->channel : "(null)");
}

LMQ_API int lmq_msgstream_seek(lmq_msgstream *s,
                               const lmq_msg_position *positions, size_t n) {
  if (!s || (n && !positions))
    return lmq__error(LMQ_EINVAL, "seek: NULL argument");
  if (!s->ch)
    return lmq__error(LMQ_EINVAL, "seek: call as_consumer first");
  uint64_t id;
  for (size_t i = 0; i < n; i++) {
    int rc = chan_index(s, &positions[i]);
    if (rc < 0 || (rc = lmq__pos_id(&id, &positions[i])))
      return rc;
  }
  if (s->tt)
    return lmq__tt_seek(s, positions, n);
  for (size_t i = 0; i < n; i++) {
    int c = chan_index(s, &positions[i]);
    lmq__pos_id(&id, &positions[i]);
    /* A plain stream resumes after the position. */
    lmq__stream_pend_drop(s, (size_t)c);
    int rc = s->ctx->be->ops->seek(s->ch[c].sub, id + 1);
    if (rc)
      return rc;
  }
  return 0;
}
