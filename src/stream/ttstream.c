/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * ttstream.c - TtMsgStream: one pack per time tick common to all channels.
 *
 * Each channel is read until it delivers a TimeTick newer than the last
 * emitted pack; non-tick messages go to one buffer in arrival order. When
 * every channel's latest tick has the same timestamp T, the messages with
 * end_ts <= T leave the buffer as a pack (begin_ts = previous T, end_ts = T);
 * channels behind the newest tick read on while the others wait. Messages
 * read past a channel's tick stay in that channel's queue (read-ahead).
 *
 * Positions make restarts exact: a channel's end position is its first
 * message still buffered (else the tick itself), stamped T. Seeking there
 * replays from it inclusive and drops what is at or before T, so a consumer
 * that checkpoints end positions sees every message once.
 */
#include "config.h"
#include "stream/stream.h"
#include "common/error.h"
#include "common/os.h"

#include <stdlib.h>
#include <string.h>

static void chan_reset(lmq_schan *ch) {
  for (size_t i = ch->qhead; i < ch->qlen; i++)
    lmq_tsmsg_unref(ch->inq[i]);
  ch->qhead = ch->qlen = 0;
  ch->has_tick = 0;
  ch->skipping = 0;
  ch->has_start = 0;
  lmq_msg_position_clear(&ch->tick_pos);
  lmq_msg_position_clear(&ch->start);
}

void lmq__tt_clear(lmq_msgstream *s) {
  for (size_t i = 0; i < s->nbuf; i++)
    lmq_tsmsg_unref(s->buf[i]);
  s->nbuf = 0;
  for (size_t c = 0; c < s->nch; c++)
    chan_reset(&s->ch[c]);
}

static int q_push(void *arg, lmq_tsmsg *m) {
  lmq_schan *ch = arg;
  if (ch->qhead == ch->qlen)
    ch->qhead = ch->qlen = 0;
  if (ch->qlen == ch->qcap) {
    if (ch->qhead) { /* compact before growing */
      memmove(ch->inq, ch->inq + ch->qhead,
              (ch->qlen - ch->qhead) * sizeof *ch->inq);
      ch->qlen -= ch->qhead;
      ch->qhead = 0;
    }
    if (ch->qlen == ch->qcap) {
      size_t nc = ch->qcap ? ch->qcap * 2 : 256;
      lmq_tsmsg **nq = realloc(ch->inq, nc * sizeof *nq);
      if (!nq) {
        lmq_tsmsg_unref(m);
        return lmq__error(LMQ_ENOMEM, "ttstream: out of memory");
      }
      ch->inq = nq;
      ch->qcap = nc;
    }
  }
  ch->inq[ch->qlen++] = m;
  return 0;
}

static int buf_push(lmq_msgstream *s, lmq_tsmsg *m) {
  if (s->nbuf == s->capbuf) {
    size_t nc = s->capbuf ? s->capbuf * 2 : 1024;
    lmq_tsmsg **nb = realloc(s->buf, nc * sizeof *nb);
    if (!nb)
      return lmq__error(LMQ_ENOMEM, "ttstream: out of memory");
    s->buf = nb;
    s->capbuf = nc;
  }
  s->buf[s->nbuf++] = m;
  return 0;
}

static int max_tick(const lmq_msgstream *s, uint64_t *t) {
  int any = 0;
  for (size_t c = 0; c < s->nch; c++)
    if (s->ch[c].has_tick && (!any || s->ch[c].tick > *t)) {
      *t = s->ch[c].tick;
      any = 1;
    }
  return any;
}

/* Does channel c have to read on before the next pack? */
static int needing(const lmq_msgstream *s, size_t c) {
  uint64_t t = 0;
  return !s->ch[c].has_tick || (max_tick(s, &t) && s->ch[c].tick < t);
}

static int can_emit(const lmq_msgstream *s) {
  for (size_t c = 0; c < s->nch; c++)
    if (!s->ch[c].has_tick || s->ch[c].tick != s->ch[0].tick)
      return 0;
  return 1;
}

/* Process channel c's queue until it delivers a tick > last_ts that is not
 * behind any other channel's (a channel that missed a tick reads on to the
 * newest one instead of waiting forever). Returns 1 if it consumed
 * anything, 0 if not, or an error. */
static int process(lmq_msgstream *s, size_t c) {
  lmq_schan *ch = &s->ch[c];
  int did = 0;
  while (ch->qhead < ch->qlen && needing(s, c)) {
    lmq_tsmsg *m = ch->inq[ch->qhead++];
    did = 1;
    int rc;
    if (!ch->has_start) {
      if ((rc = lmq_msg_position_copy(&ch->start, &m->pos))) {
        lmq_tsmsg_unref(m);
        return rc;
      }
      ch->start.timestamp = s->last_ts;
      ch->has_start = 1;
    }
    if (m->type == LMQ_MSG_TIME_TICK) {
      lmq_msg_position_clear(&ch->tick_pos);
      rc = lmq_msg_position_copy(&ch->tick_pos, &m->pos);
      if (rc == 0 && m->end_ts > s->last_ts) {
        ch->has_tick = 1;
        ch->tick = m->end_ts;
        ch->skipping = 0;
      }
      lmq_tsmsg_unref(m);
      if (rc)
        return rc;
      continue;
    }
    if (ch->skipping && m->end_ts <= ch->skip_ts) {
      lmq_tsmsg_unref(m); /* replayed, delivered before the seek position */
      continue;
    }
    if ((rc = buf_push(s, m))) {
      lmq_tsmsg_unref(m);
      return rc;
    }
  }
  return did;
}

/* Set of (channel, message ID) of the Insert/Delete messages in a pack. */
typedef struct idset {
  int64_t *ids;
  unsigned *chans; /* channel + 1; 0 = empty slot */
  size_t cap;
} idset;

/* 1 if added, 0 if it was there already. */
static int idset_add(idset *st, unsigned chan, int64_t id) {
  uint64_t k = ((uint64_t)id ^ (uint64_t)chan << 40) * 0x9e3779b97f4a7c15ULL;
  size_t i = (size_t)(k >> 20) & (st->cap - 1);
  for (; st->chans[i]; i = (i + 1) & (st->cap - 1))
    if (st->ids[i] == id && st->chans[i] == chan + 1)
      return 0;
  st->chans[i] = chan + 1;
  st->ids[i] = id;
  return 1;
}

static int emit(lmq_msg_pack **out, lmq_msgstream *s) {
  uint64_t T = s->ch[0].tick;
  lmq_msg_pack *p = NULL;
  int rc = lmq_msg_pack_create(&p);
  if (rc)
    return rc;
  p->begin_ts = s->last_ts;
  p->end_ts = T;
  size_t ndup = 0;
  for (size_t i = 0; i < s->nbuf; i++)
    ndup += s->buf[i]->end_ts <= T;
  idset st = {0};
  st.cap = 16;
  while (st.cap < ndup * 2)
    st.cap *= 2;
  st.ids = malloc(st.cap * sizeof *st.ids);
  st.chans = calloc(st.cap, sizeof *st.chans);
  p->start_positions = calloc(s->nch, sizeof *p->start_positions);
  p->end_positions = calloc(s->nch, sizeof *p->end_positions);
  if (!st.ids || !st.chans || !p->start_positions || !p->end_positions ||
      (ndup && !(p->msgs = malloc(ndup * sizeof *p->msgs)))) {
    rc = lmq__error(LMQ_ENOMEM, "ttstream: out of memory");
    goto fail;
  }
  p->cap_ = ndup;
  /* Positions first: nothing below may fail once messages have moved. */
  for (size_t c = 0; c < s->nch; c++) {
    lmq_schan *ch = &s->ch[c];
    const lmq_msg_position *endp = &ch->tick_pos;
    for (size_t i = 0; i < s->nbuf; i++)
      if (s->buf[i]->chan == c && s->buf[i]->end_ts > T) {
        endp = &s->buf[i]->pos;
        break;
      }
    if ((rc = lmq_msg_position_copy(&p->start_positions[c], &ch->start)))
      goto fail;
    p->nstart++;
    p->start_positions[c].timestamp = s->last_ts;
    if ((rc = lmq_msg_position_copy(&p->end_positions[c], endp)))
      goto fail;
    p->nend++;
    p->end_positions[c].timestamp = T;
  }
  for (size_t c = 0; c < s->nch; c++) {
    lmq_schan *ch = &s->ch[c];
    lmq_msg_position np = {0};
    if ((rc = lmq_msg_position_copy(&np, &p->end_positions[c])))
      goto fail;
    lmq_msg_position_clear(&ch->start);
    ch->start = np;
    ch->has_start = 1;
    ch->has_tick = 0;
  }
  size_t keep = 0;
  for (size_t i = 0; i < s->nbuf; i++) {
    lmq_tsmsg *m = s->buf[i];
    if (m->end_ts > T) {
      s->buf[keep++] = m;
      continue;
    }
    if ((m->type == LMQ_MSG_INSERT || m->type == LMQ_MSG_DELETE) &&
        !idset_add(&st, m->chan, m->id)) {
      lmq_tsmsg_unref(m); /* the same message delivered twice */
      continue;
    }
    p->msgs[p->nmsgs++] = m;
  }
  s->nbuf = keep;
  s->last_ts = T;
  free(st.ids);
  free(st.chans);
  *out = p;
  return 0;
fail:
  free(st.ids);
  free(st.chans);
  lmq_msg_pack_destroy(p);
  return rc;
}

/* Could a consume make progress without new input? */
static int more_ready(lmq_msgstream *s) {
  if (can_emit(s))
    return 1;
  for (size_t c = 0; c < s->nch; c++)
    if (s->ch[c].qhead < s->ch[c].qlen && needing(s, c))
      return 1;
  return 0;
}

int lmq__tt_consume(lmq_msg_pack **out, lmq_msgstream *s, int timeout_ms) {
  uint64_t deadline =
      lmq__mono_ns() + (timeout_ms > 0 ? (uint64_t)timeout_ms * 1000000 : 0);
  lmq__stream_ready(s, 0);
  int rc;
  for (;;) {
    if (can_emit(s)) {
      rc = emit(out, s);
      lmq__stream_ready(s, rc == 0 && more_ready(s));
      return rc;
    }
    int progress = 0;
    for (size_t c = 0; c < s->nch; c++) {
      if (!needing(s, c))
        continue;
      lmq_schan *ch = &s->ch[c];
      if (ch->qhead == ch->qlen) {
        int n = lmq__stream_read(s, c, q_push, ch);
        lmq__stream_take(s, c); /* what q_push took is in the queue */
        if (n < 0)
          return n;
        progress |= n > 0;
      }
      if ((rc = process(s, c)) < 0)
        return rc;
      progress |= rc;
    }
    /* Only channels that must read on may wake us. */
    for (size_t c = 0; c < s->nch; c++)
      if ((rc = lmq__stream_watch(s, c, needing(s, c))))
        return rc;
    if (progress)
      continue;
    int left = lmq__remaining_ms(deadline, timeout_ms);
    if (left == 0)
      return LMQ_ETIMEDOUT;
    if ((rc = lmq__stream_wait(s, left)) < 0)
      return rc;
  }
}

int lmq__tt_seek(lmq_msgstream *s, const lmq_msg_position *p, size_t n) {
  /* Every channel needs exactly one position. */
  int *idx = calloc(s->nch, sizeof *idx);
  if (!idx)
    return lmq__error(LMQ_ENOMEM, "seek: out of memory");
  for (size_t c = 0; c < s->nch; c++)
    idx[c] = -1;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    size_t c = 0;
    while (strcmp(p[i].channel, s->ch[c].name))
      c++;
    if (idx[c] >= 0)
      rc = lmq__error(LMQ_EINVAL, "seek: two positions for channel '%s'",
                      s->ch[c].name);
    idx[c] = (int)i;
  }
  for (size_t c = 0; c < s->nch && rc == 0; c++)
    if (idx[c] < 0)
      rc = lmq__error(LMQ_EINVAL,
                      "seek: a TtMsgStream needs a position for every "
                      "channel; '%s' has none",
                      s->ch[c].name);
  if (rc) {
    free(idx);
    return rc;
  }
  lmq__tt_clear(s);
  uint64_t last = 0;
  for (size_t c = 0; c < s->nch && rc == 0; c++) {
    const lmq_msg_position *pos = &p[idx[c]];
    lmq_schan *ch = &s->ch[c];
    uint64_t id = 0;
    lmq__pos_id(&id, pos);
    lmq__stream_pend_drop(s, c);
    if ((rc = s->ctx->be->ops->seek(ch->sub, id)) ||
        (rc = lmq_msg_position_copy(&ch->start, pos)))
      break;
    ch->has_start = 1;
    ch->skipping = 1;
    ch->skip_ts = pos->timestamp;
    if (pos->timestamp > last)
      last = pos->timestamp;
  }
  s->last_ts = last;
  free(idx);
  lmq__stream_ready(s, 0);
  return rc;
}
