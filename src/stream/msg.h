/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* msg.h - the message object shared by the stream layer (not installed). */
#ifndef LMQ_STREAM_MSG_H
#define LMQ_STREAM_MSG_H

#include "lmq_stream.h"
#include "stream/slab.h"

#include <stdatomic.h>

struct lmq_tsmsg {
  atomic_uint refs;
  uint32_t type;
  int64_t id;
  uint64_t timestamp, begin_ts, end_ts;
  int64_t source_id;
  uint32_t *hash_keys;
  size_t nhash;
  char *traceparent;
  int has_pos;
  lmq_msg_position pos;
  size_t size;
  void *body;
  lmq_body_free_fn body_free;
  lmq_tsmsg *parent; /* a mem-dispatched copy shares its parent's body */
  /* stream bookkeeping (set by consumers) */
  unsigned chan; /* index of the channel it was read from */
  /* What lives inside the message's own allocation (LMQ__INL_*): set by
   * lmq__msg_unmarshal_lazy, cleared when a setter replaces the field. */
  unsigned inl;
  /* The slab the message was carved from (slab.h), or NULL: its own
   * allocation. */
  lmq__slab *slab;
  /* A body still encoded (lazy): decoded on first access by
   * lmq__tsmsg_body(), with the full validation of an eager decode. */
  atomic_int lazy;          /* LMQ__LAZY_*: read without a lock */
  const unsigned char *raw; /* the encoded body (inside the allocation) */
  size_t rawlen;
  int (*raw_decode)(void **body, lmq_body_free_fn *body_free,
                    const void *data, size_t len, void *arg);
  void *raw_arg;
};

#define LMQ__INL_KEYS 0x1u
#define LMQ__INL_TP 0x2u
#define LMQ__INL_POS 0x4u

enum { LMQ__LAZY_NONE = 0, LMQ__LAZY_PENDING = 1, LMQ__LAZY_FAILED = 2 };

/* m's body, decoding it first if it is still encoded: NULL when it has
 * none or does not decode (lmq_errmsg says why). Thread-safe. */
void *lmq__tsmsg_body(const lmq_tsmsg *m);

#define LMQ__TYPE_MAX 0xffffffffLL

/* Append to the pack without the public argument checks. */
int lmq__pack_push(lmq_msg_pack *p, lmq_tsmsg *m);
/* Build a position: copies channel and group, ID as 8 bytes big-endian. */
int lmq__pos_set(lmq_msg_position *p, const char *channel, const char *group,
                 uint64_t id, uint64_t ts);
/* Parse 8-byte big-endian ID bytes; LMQ_EINVAL if the length is wrong. */
int lmq__pos_id(uint64_t *id, const lmq_msg_position *p);
/*
 * The decode of a stream's read (dispatcher.c): like lmq_msg_unmarshal,
 * with the envelope fully checked, but the body kept encoded until first
 * access, and the position (channel, group, id; timestamp = end_ts), hash
 * keys and trace context in the message's single block: carved from the
 * reader's slab when slab is not NULL (slab.h), else its own malloc.
 */
int lmq__msg_unmarshal_lazy(lmq_tsmsg **out, lmq_dispatcher *d,
                            lmq__slab_cur *slab, const void *data, size_t len,
                            const char *channel, const char *group, uint64_t id);
/* Marshal msgs[0..n) into one malloc'ed buffer *out (freed by the caller);
 * bufs[i] points into it. The same bytes and errors as lmq_msg_marshal
 * per message; on failure nothing is allocated. */
int lmq__msg_marshal_many(unsigned char **out, lmq_buf *bufs,
                          lmq_dispatcher *d, lmq_tsmsg *const *msgs, size_t n);
/* Validate a W3C traceparent: 0 or LMQ_EINVAL. */
int lmq__traceparent_check(const char *tp);

#endif
