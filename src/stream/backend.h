/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * backend.h - what the stream layer needs from a message store. One adapter
 * per store: the lmq engine (backend_engine.c); NATS JetStream and RocksDB
 * adapters implement the same table.
 *
 * Model: named channels of messages with 64-bit IDs that increase within a
 * channel; per channel, named consumer groups with a cursor. Every function
 * returns 0 or a negative LMQ_E* code and sets lmq__error()'s message.
 * A backend is shared by the streams of one factory (reference counted by
 * the caller) and must be thread-safe; a subscription is used by one thread.
 */
#ifndef LMQ_STREAM_BACKEND_H
#define LMQ_STREAM_BACKEND_H

#include "lmq.h"
#include "meta/meta.h"

#include <stddef.h>
#include <stdint.h>

typedef struct lmq_backend lmq_backend;
typedef struct lmq_bsub lmq_bsub;

/* One consumed message; data is valid until the batch is freed. */
typedef struct lmq_bmsg {
  uint64_t id;
  const void *data;
  size_t len;
} lmq_bmsg;

typedef struct lmq_bbatch {
  const lmq_bmsg *msgs;
  size_t n;
  void *priv; /* the adapter's */
} lmq_bbatch;

typedef struct lmq_backend_ops {
  const char *name;
  /* Create a channel; an existing one is not an error. */
  int (*channel_create)(lmq_backend *b, const char *channel);
  /* LMQ_ENOCHANNEL when it does not exist. */
  int (*channel_destroy)(lmq_backend *b, const char *channel);
  /* Append n messages in order, atomically if the store can; ids (may be
   * NULL) receives their IDs. Payloads are copied. */
  int (*produce)(lmq_backend *b, const char *channel, const lmq_buf *msgs,
                 size_t n, uint64_t *ids);
  /* Newest ID, or LMQ_EEMPTY. */
  int (*latest)(lmq_backend *b, const char *channel, uint64_t *id);
  /* Open group on channel (creating it at earliest/latest if new; an
   * existing group keeps its cursor). start is enum lmq_start. */
  int (*subscribe)(lmq_backend *b, lmq_bsub **out, const char *channel,
                   const char *group, int start);
  /* Up to max messages after the cursor, advancing it; timeout_ms as in
   * lmq_consume (0 polls). 0 messages on timeout is not an error. */
  int (*consume)(lmq_bsub *s, lmq_bbatch *out, size_t max, int timeout_ms);
  void (*batch_free)(lmq_bsub *s, lmq_bbatch *batch);
  /* A descriptor readable while the group has messages to consume
   * (level-triggered), owned by the adapter. */
  int (*fd)(lmq_bsub *s, int *fd);
  /* The next consume starts at the first message with ID >= id. */
  int (*seek)(lmq_bsub *s, uint64_t id);
  /* Persist the cursor (everything consumed so far is done). */
  int (*commit)(lmq_bsub *s);
  void (*unsubscribe)(lmq_bsub *s);
  /* The metadata store behind the backend, or NULL (optional). */
  lmq_meta *(*meta)(lmq_backend *b);
  void (*close)(lmq_backend *b);
} lmq_backend_ops;

struct lmq_backend {
  const lmq_backend_ops *ops;
};

/* The engine adapter over an open env (borrowed unless own_env). */
int lmq__backend_engine_open(lmq_backend **out, lmq_env *env, int own_env);
/* b's env if b is the engine adapter, else NULL: streams then produce
 * through channel handles (include/lmq.h, "Handles"), closed before b. */
lmq_env *lmq__backend_engine_env(lmq_backend *b);

/* The RocksDB adapter (backend_rocksdb.c, only with --with-rocksdb): opens
 * a RocksMQ-layout store in dir with sync an enum lmq_sync. It has no
 * metadata store (ops->meta returns NULL). Closed by ops->close. */
int lmq__backend_rocksdb_open(lmq_backend **out, const char *dir, int sync);

#ifdef LMQ_HAVE_NATS
/* The NATS JetStream adapter (backend_nats.c, only with libnats): connects
 * to url (e.g. "nats://127.0.0.1:4222", or several servers of one cluster
 * separated by commas) and checks that JetStream answers. Streams it creates
 * have `replicas` replicas (1..5).
 * Channels are streams, groups durable pull consumers, IDs stream
 * sequences; see the file's comment for cursor, seek and fd semantics.
 * Errors: LMQ_EINVAL, LMQ_ENOMEM, LMQ_EUNAVAIL (no server, or no JetStream
 * on it), LMQ_EAUTH. No metadata store (ops->meta returns NULL). Closed by
 * ops->close; libnats's global state is left to the application. */
int lmq__backend_nats_open(lmq_backend **out, const char *url, int replicas);
#endif

#endif
