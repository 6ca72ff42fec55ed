/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* msg.c - messages (TsMsg), positions and packs. */
#include "config.h"
#include "stream/msg.h"
#include "common/error.h"
#include "lmq_msg.pb-c.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

LMQ_API int lmq_tsmsg_create(lmq_tsmsg **out, int64_t type, void *body,
                             lmq_body_free_fn body_free) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "tsmsg_create: out is NULL");
  *out = NULL;
  if (type < 0 || type > LMQ__TYPE_MAX)
    return lmq__error(LMQ_EINVAL, "message type %lld is out of range",
                      (long long)type);
  lmq_tsmsg *m = calloc(1, sizeof *m);
  if (!m)
    return lmq__error(LMQ_ENOMEM, "tsmsg_create: out of memory");
  atomic_init(&m->refs, 1);
  m->type = (uint32_t)type;
  m->body = body;
  m->body_free = body_free;
  *out = m;
  return 0;
}

LMQ_API void lmq_msg_body_free_proto(void *body) {
  if (body)
    protobuf_c_message_free_unpacked(body, NULL);
}

LMQ_API lmq_tsmsg *lmq_tsmsg_ref(lmq_tsmsg *m) {
  if (m)
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

LMQ_API void lmq_tsmsg_unref(lmq_tsmsg *m) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (m->body_free && m->body)
    m->body_free(m->body);
  if (!(m->inl & LMQ__INL_KEYS))
    free(m->hash_keys);
  if (!(m->inl & LMQ__INL_TP))
    free(m->traceparent);
  if (!(m->inl & LMQ__INL_POS))
    lmq_msg_position_clear(&m->pos);
  lmq_tsmsg_unref(m->parent);
  if (m->slab)
    lmq__slab_release(m->slab);
  else
    free(m);
}

/* First accesses of lazy bodies serialize on one of these (by address). */
static pthread_mutex_t lazy_mu[16] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER};

void *lmq__tsmsg_body(const lmq_tsmsg *cm) {
  lmq_tsmsg *m = (lmq_tsmsg *)cm; /* decoding once is not a visible change */
  int st = atomic_load_explicit(&m->lazy, memory_order_acquire);
  if (st == LMQ__LAZY_NONE)
    return m->body;
  if (st == LMQ__LAZY_FAILED) {
    lmq__error(LMQ_ECORRUPT, "the body of message %lld (type %u) does not "
               "decode", (long long)m->id, m->type);
    return NULL;
  }
  pthread_mutex_t *mu = &lazy_mu[((uintptr_t)m >> 6) & 15];
  pthread_mutex_lock(mu);
  if (atomic_load_explicit(&m->lazy, memory_order_relaxed) == LMQ__LAZY_PENDING) {
    void *body = NULL;
    lmq_body_free_fn bfree = NULL;
    int rc = m->raw_decode(&body, &bfree, m->raw, m->rawlen, m->raw_arg);
    if (rc == 0) {
      m->body = body;
      m->body_free = bfree;
    }
    /* Out of memory is not corruption: the next access tries again. */
    if (rc != LMQ_ENOMEM)
      atomic_store_explicit(&m->lazy, rc ? LMQ__LAZY_FAILED : LMQ__LAZY_NONE,
                            memory_order_release);
  }
  void *b = atomic_load_explicit(&m->lazy, memory_order_relaxed) ==
                    LMQ__LAZY_NONE
                ? m->body
                : NULL;
  pthread_mutex_unlock(mu);
  return b;
}

LMQ_API uint32_t lmq_tsmsg_type(const lmq_tsmsg *m) { return m->type; }
LMQ_API int64_t lmq_tsmsg_id(const lmq_tsmsg *m) { return m->id; }
LMQ_API uint64_t lmq_tsmsg_timestamp(const lmq_tsmsg *m) {
  return m->timestamp;
}
LMQ_API uint64_t lmq_tsmsg_begin_ts(const lmq_tsmsg *m) { return m->begin_ts; }
LMQ_API uint64_t lmq_tsmsg_end_ts(const lmq_tsmsg *m) { return m->end_ts; }
LMQ_API int64_t lmq_tsmsg_source_id(const lmq_tsmsg *m) {
  return m->source_id;
}
LMQ_API const uint32_t *lmq_tsmsg_hash_keys(const lmq_tsmsg *m, size_t *n) {
  if (n)
    *n = m->nhash;
  return m->hash_keys;
}
LMQ_API const char *lmq_tsmsg_traceparent(const lmq_tsmsg *m) {
  return m->traceparent;
}
LMQ_API const lmq_msg_position *lmq_tsmsg_position(const lmq_tsmsg *m) {
  return m->has_pos ? &m->pos : NULL;
}
LMQ_API size_t lmq_tsmsg_size(const lmq_tsmsg *m) { return m->size; }
LMQ_API void *lmq_tsmsg_body(const lmq_tsmsg *m) { return lmq__tsmsg_body(m); }

LMQ_API void lmq_tsmsg_set_id(lmq_tsmsg *m, int64_t id) { m->id = id; }
LMQ_API void lmq_tsmsg_set_timestamp(lmq_tsmsg *m, uint64_t ts) {
  m->timestamp = m->begin_ts = m->end_ts = ts;
}
LMQ_API int lmq_tsmsg_set_time_range(lmq_tsmsg *m, uint64_t begin_ts,
                                     uint64_t end_ts) {
  if (!m || begin_ts > end_ts)
    return lmq__error(LMQ_EINVAL, "time range: begin %llu > end %llu",
                      (unsigned long long)begin_ts,
                      (unsigned long long)end_ts);
  m->begin_ts = begin_ts;
  m->end_ts = end_ts;
  return 0;
}
LMQ_API void lmq_tsmsg_set_source_id(lmq_tsmsg *m, int64_t source_id) {
  m->source_id = source_id;
}

LMQ_API int lmq_tsmsg_set_hash_keys(lmq_tsmsg *m, const uint32_t *keys,
                                    size_t n) {
  if (!m || (n && !keys))
    return lmq__error(LMQ_EINVAL, "set_hash_keys: NULL argument");
  uint32_t *k = NULL;
  if (n) {
    k = malloc(n * sizeof *k);
    if (!k)
      return lmq__error(LMQ_ENOMEM, "set_hash_keys: out of memory");
    memcpy(k, keys, n * sizeof *k);
  }
  if (!(m->inl & LMQ__INL_KEYS))
    free(m->hash_keys);
  m->inl &= ~LMQ__INL_KEYS;
  m->hash_keys = k;
  m->nhash = n;
  return 0;
}

static int is_lhex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int hex_run(const char *s, size_t n) {
  int nonzero = 0;
  for (size_t i = 0; i < n; i++) {
    if (!is_lhex(s[i]))
      return -1;
    nonzero |= s[i] != '0';
  }
  return nonzero;
}

/* version "00" layout: 2-32-16-2 lower-case hex, IDs not all zero; other
 * versions may append fields after another '-'. Version ff is invalid. */
int lmq__traceparent_check(const char *tp) {
  size_t n = strnlen(tp, 256);
  if (n < 55 || n >= 256 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
      hex_run(tp, 2) < 0 || hex_run(tp + 3, 32) <= 0 ||
      hex_run(tp + 36, 16) <= 0 || hex_run(tp + 53, 2) < 0 ||
      (tp[0] == 'f' && tp[1] == 'f') ||
      (n > 55 && (tp[0] == '0' && tp[1] == '0')) || (n > 55 && tp[55] != '-'))
    return lmq__error(LMQ_EINVAL,
                      "traceparent '%.64s' is not "
                      "<2 hex>-<32 hex>-<16 hex>-<2 hex> (W3C trace context)",
                      tp);
  return 0;
}

LMQ_API int lmq_tsmsg_set_traceparent(lmq_tsmsg *m, const char *tp) {
  if (!m)
    return lmq__error(LMQ_EINVAL, "set_traceparent: NULL message");
  char *c = NULL;
  if (tp) {
    int rc = lmq__traceparent_check(tp);
    if (rc)
      return rc;
    if (!(c = strdup(tp)))
      return lmq__error(LMQ_ENOMEM, "set_traceparent: out of memory");
  }
  if (!(m->inl & LMQ__INL_TP))
    free(m->traceparent);
  m->inl &= ~LMQ__INL_TP;
  m->traceparent = c;
  return 0;
}

LMQ_API int lmq_tsmsg_set_position(lmq_tsmsg *m, const lmq_msg_position *pos) {
  if (!m)
    return lmq__error(LMQ_EINVAL, "set_position: NULL message");
  lmq_msg_position c = {0};
  if (pos) {
    int rc = lmq_msg_position_copy(&c, pos);
    if (rc)
      return rc;
  }
  if (!(m->inl & LMQ__INL_POS))
    lmq_msg_position_clear(&m->pos);
  m->inl &= ~LMQ__INL_POS;
  m->pos = c;
  m->has_pos = pos != NULL;
  return 0;
}

LMQ_API int lmq_tsmsg_new_time_tick(lmq_tsmsg **out, int64_t id, uint64_t ts,
                                    int64_t source_id) {
  Lmqpb__Empty *b = malloc(sizeof *b);
  if (!b)
    return lmq__error(LMQ_ENOMEM, "time tick: out of memory");
  lmqpb__empty__init(b);
  int rc = lmq_tsmsg_create(out, LMQ_MSG_TIME_TICK, b, lmq_msg_body_free_proto);
  if (rc) {
    free(b);
    return rc;
  }
  lmq_tsmsg_set_id(*out, id);
  lmq_tsmsg_set_timestamp(*out, ts);
  lmq_tsmsg_set_source_id(*out, source_id);
  return 0;
}

/* ------------------------------------------------------------ positions */

LMQ_API int lmq_msg_position_copy(lmq_msg_position *dst,
                                  const lmq_msg_position *src) {
  if (!dst || !src)
    return lmq__error(LMQ_EINVAL, "position_copy: NULL argument");
  lmq_msg_position p = {0};
  p.timestamp = src->timestamp;
  if ((src->channel && !(p.channel = strdup(src->channel))) ||
      (src->group && !(p.group = strdup(src->group))))
    goto oom;
  if (src->msg_id_len) {
    if (!src->msg_id) {
      lmq_msg_position_clear(&p);
      return lmq__error(LMQ_EINVAL, "position_copy: msg_id is NULL");
    }
    if (!(p.msg_id = malloc(src->msg_id_len)))
      goto oom;
    memcpy(p.msg_id, src->msg_id, src->msg_id_len);
    p.msg_id_len = src->msg_id_len;
  }
  *dst = p;
  return 0;
oom:
  lmq_msg_position_clear(&p);
  return lmq__error(LMQ_ENOMEM, "position_copy: out of memory");
}

LMQ_API void lmq_msg_position_clear(lmq_msg_position *p) {
  if (!p)
    return;
  free(p->channel);
  free(p->msg_id);
  free(p->group);
  memset(p, 0, sizeof *p);
}

LMQ_API void lmq_msg_positions_free(lmq_msg_position *p, size_t n) {
  if (!p)
    return;
  for (size_t i = 0; i < n; i++)
    lmq_msg_position_clear(&p[i]);
  free(p);
}

int lmq__pos_set(lmq_msg_position *p, const char *channel, const char *group,
                 uint64_t id, uint64_t ts) {
  memset(p, 0, sizeof *p);
  p->channel = strdup(channel);
  p->group = group ? strdup(group) : NULL;
  p->msg_id = malloc(8);
  if (!p->channel || (group && !p->group) || !p->msg_id) {
    lmq_msg_position_clear(p);
    return lmq__error(LMQ_ENOMEM, "position: out of memory");
  }
  for (int i = 0; i < 8; i++)
    p->msg_id[i] = (unsigned char)(id >> (56 - 8 * i));
  p->msg_id_len = 8;
  p->timestamp = ts;
  return 0;
}

int lmq__pos_id(uint64_t *id, const lmq_msg_position *p) {
  if (p->msg_id_len != 8 || !p->msg_id)
    return lmq__error(LMQ_EINVAL,
                      "position on '%.64s': message ID has %zu bytes, "
                      "expected 8",
                      p->channel ? p->channel : "", p->msg_id_len);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p->msg_id[i];
  *id = v;
  return 0;
}

LMQ_API int lmq_msg_positions_marshal(unsigned char **out, size_t *len,
                                      const lmq_msg_position *p, size_t n) {
  if (!out || !len || (n && !p))
    return lmq__error(LMQ_EINVAL, "positions_marshal: NULL argument");
  /* A sequence of length-delimited MsgPosition messages (field 1 of an
   * implicit repeated wrapper), so that the result is itself protobuf. */
  size_t total = 0;
  Lmqpb__MsgPosition *pb = calloc(n ? n : 1, sizeof *pb);
  if (!pb)
    return lmq__error(LMQ_ENOMEM, "positions_marshal: out of memory");
  for (size_t i = 0; i < n; i++) {
    lmqpb__msg_position__init(&pb[i]);
    pb[i].channel_name = p[i].channel ? p[i].channel : "";
    pb[i].msg_group = p[i].group ? p[i].group : "";
    pb[i].msg_id.data = p[i].msg_id;
    pb[i].msg_id.len = p[i].msg_id_len;
    pb[i].timestamp = p[i].timestamp;
    size_t s = lmqpb__msg_position__get_packed_size(&pb[i]);
    total += 1 + 10 + s;
  }
  unsigned char *buf = malloc(total ? total : 1);
  if (!buf) {
    free(pb);
    return lmq__error(LMQ_ENOMEM, "positions_marshal: out of memory");
  }
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    size_t s = lmqpb__msg_position__get_packed_size(&pb[i]);
    buf[off++] = 0x0a; /* field 1, length-delimited */
    size_t v = s;
    do {
      buf[off++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>= 7;
    } while (v);
    off += lmqpb__msg_position__pack(&pb[i], buf + off);
  }
  free(pb);
  *out = buf;
  *len = off;
  return 0;
}

LMQ_API int lmq_msg_positions_unmarshal(lmq_msg_position **out, size_t *n,
                                        const void *data, size_t len) {
  if (!out || !n || (len && !data))
    return lmq__error(LMQ_EINVAL, "positions_unmarshal: NULL argument");
  *out = NULL;
  *n = 0;
  const unsigned char *b = data;
  size_t off = 0, cnt = 0, cap = 0;
  lmq_msg_position *arr = NULL;
  int rc = 0;
  while (off < len) {
    if (b[off++] != 0x0a) {
      rc = lmq__error(LMQ_ECORRUPT, "positions: bad tag at byte %zu", off - 1);
      goto fail;
    }
    uint64_t s = 0;
    int shift = 0;
    for (;;) {
      if (off >= len || shift > 56) {
        rc = lmq__error(LMQ_ECORRUPT, "positions: bad length varint");
        goto fail;
      }
      unsigned char c = b[off++];
      s |= (uint64_t)(c & 0x7f) << shift;
      shift += 7;
      if (!(c & 0x80))
        break;
    }
    if (s > len - off) {
      rc = lmq__error(LMQ_ECORRUPT, "positions: truncated entry");
      goto fail;
    }
    Lmqpb__MsgPosition *pb = lmqpb__msg_position__unpack(NULL, s, b + off);
    off += s;
    if (!pb) {
      rc = lmq__error(LMQ_ECORRUPT, "positions: entry does not decode");
      goto fail;
    }
    if (cnt == cap) {
      size_t nc = cap ? cap * 2 : 4;
      lmq_msg_position *na = realloc(arr, nc * sizeof *na);
      if (!na) {
        lmqpb__msg_position__free_unpacked(pb, NULL);
        rc = lmq__error(LMQ_ENOMEM, "positions: out of memory");
        goto fail;
      }
      arr = na;
      cap = nc;
    }
    lmq_msg_position src = {pb->channel_name, pb->msg_id.data, pb->msg_id.len,
                            pb->msg_group[0] ? pb->msg_group : NULL,
                            pb->timestamp};
    rc = lmq_msg_position_copy(&arr[cnt], &src);
    lmqpb__msg_position__free_unpacked(pb, NULL);
    if (rc)
      goto fail;
    cnt++;
  }
  *out = arr;
  *n = cnt;
  return 0;
fail:
  lmq_msg_positions_free(arr, cnt);
  return rc;
}

/* ---------------------------------------------------------------- packs */

LMQ_API int lmq_msg_pack_create(lmq_msg_pack **out) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "pack_create: out is NULL");
  if (!(*out = calloc(1, sizeof **out)))
    return lmq__error(LMQ_ENOMEM, "pack_create: out of memory");
  return 0;
}

int lmq__pack_push(lmq_msg_pack *p, lmq_tsmsg *m) {
  if (p->nmsgs == p->cap_) {
    size_t nc = p->cap_ ? p->cap_ * 2 : 8;
    lmq_tsmsg **na = realloc(p->msgs, nc * sizeof *na);
    if (!na)
      return lmq__error(LMQ_ENOMEM, "pack: out of memory");
    p->msgs = na;
    p->cap_ = nc;
  }
  p->msgs[p->nmsgs++] = m;
  return 0;
}

LMQ_API int lmq_msg_pack_append(lmq_msg_pack *p, lmq_tsmsg *m) {
  if (!p || !m)
    return lmq__error(LMQ_EINVAL, "pack_append: NULL argument");
  return lmq__pack_push(p, m);
}

LMQ_API void lmq_msg_pack_destroy(lmq_msg_pack *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->nmsgs; i++)
    lmq_tsmsg_unref(p->msgs[i]);
  free(p->msgs);
  lmq_msg_positions_free(p->start_positions, p->nstart);
  lmq_msg_positions_free(p->end_positions, p->nend);
  free(p);
}
