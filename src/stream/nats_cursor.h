/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* nats_cursor.h - the committed position of each group of the NATS backend,
 * kept in a JetStream Key-Value bucket (see nats_cursor.c). The functions
 * return libnats's status and the JetStream error code (when there is one),
 * for the backend to turn into lmq's codes. */
#ifndef LMQ_STREAM_NATS_CURSOR_H
#define LMQ_STREAM_NATS_CURSOR_H
#include <nats/nats.h>
#include <stdint.h>

#define LMQ_NCUR_BUCKET "lmq_cursors"

typedef struct lmq_ncur lmq_ncur;

/* A store over js (not owned) whose bucket, when this store has to create
 * it, gets `replicas` replicas. The bucket is created at first use
 * (lmq__ncur_ensure or a write). NULL when out of memory. */
lmq_ncur *lmq__ncur_create(jsCtx *js, int replicas);
void lmq__ncur_destroy(lmq_ncur *c);

/* The cursor of group `durable` on channel stream `stream` whose creation
 * time is `created` (the stream's incarnation): *found 0 when there is none
 * (no bucket, no key, a removed key, or a key written for an earlier stream
 * of that name), else 1 and *seq the committed stream sequence. Read
 * from the bucket's stream leader, never from a possibly lagging replica. */
natsStatus lmq__ncur_get(lmq_ncur *c, const char *stream, const char *durable,
                         int64_t created, int *found, uint64_t *seq, jsErrCode *je);

/* Create the bucket unless this store already knows it exists (retrying
 * for up to 5 s while a cluster cannot place it yet). */
natsStatus lmq__ncur_ensure(lmq_ncur *c);

/* Store seq as the cursor, waiting up to wait_ms for the bucket's
 * acknowledgement, which comes once its replicas stored it (a quorum on
 * R3). Creates the bucket if needed. NATS_TIMEOUT: it may or may not be
 * stored. */
natsStatus lmq__ncur_put(lmq_ncur *c, const char *stream, const char *durable,
                         int64_t created, uint64_t seq, int wait_ms, jsErrCode *je);

/* Remove every cursor of stream (its channel was destroyed). */
natsStatus lmq__ncur_drop(lmq_ncur *c, const char *stream, jsErrCode *je);
#endif
