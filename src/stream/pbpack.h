/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * pbpack.h - a one-pass protobuf encoder (see pbpack.c).
 */
#ifndef LMQ_STREAM_PBPACK_H
#define LMQ_STREAM_PBPACK_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* A growable output buffer: p (malloc'ed, may be NULL while cap is 0) holds
 * len bytes. The caller frees p. */
typedef struct lmq__pbuf {
  unsigned char *p;
  size_t len, cap;
} lmq__pbuf;

/* A message type's fields read once (and the types it nests): what
 * packing needs. NULL when out of memory. Read-only once built: one plan
 * may serve many threads. */
typedef struct lmq__pb_plan lmq__pb_plan;
lmq__pb_plan *lmq__pb_plan_new(const ProtobufCMessageDescriptor *d);
void lmq__pb_plan_free(lmq__pb_plan *pl); /* NULL accepted */

/* Append m's encoding (exactly protobuf_c_message_pack's bytes) to b; m
 * must be of the plan's type. 0, or -1 when out of memory or of another
 * type (b->len is then as it was). Not thread-safe for one b; m is only
 * read. */
int lmq__pb_pack_plan(lmq__pbuf *b, const lmq__pb_plan *pl,
                      const ProtobufCMessage *m);
/* The same with a plan built for this call (slower; for one-off use). */
int lmq__pb_pack(lmq__pbuf *b, const ProtobufCMessage *m);

/* Make room for more bytes after b->len: 0, or -1 when out of memory. */
int lmq__pb_reserve(lmq__pbuf *b, size_t more);

#endif
