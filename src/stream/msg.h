/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* msg.h - the message object shared by the stream layer (not installed). */
#ifndef LMQ_STREAM_MSG_H
#define LMQ_STREAM_MSG_H

#include "lmq_stream.h"

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
};

#define LMQ__TYPE_MAX 0xffffffffLL

/* Append to the pack without the public argument checks. */
int lmq__pack_push(lmq_msg_pack *p, lmq_tsmsg *m);
/* Build a position: copies channel and group, ID as 8 bytes big-endian. */
int lmq__pos_set(lmq_msg_position *p, const char *channel, const char *group,
                 uint64_t id, uint64_t ts);
/* Parse 8-byte big-endian ID bytes; LMQ_EINVAL if the length is wrong. */
int lmq__pos_id(uint64_t *id, const lmq_msg_position *p);
/* Validate a W3C traceparent: 0 or LMQ_EINVAL. */
int lmq__traceparent_check(const char *tp);

#endif
