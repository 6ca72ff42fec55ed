/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* backend_rocksdb.c - the stream backend over the RocksMQ-layout store
 * (rocksmq.h), built with --with-rocksdb. It has no metadata store, so the
 * channel service is not available on it (ops->meta returns NULL). */
#include "config.h"
#include "stream/backend.h"
#include "stream/rocksmq.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

typedef struct rdb_backend {
  lmq_backend base;
  lmq_rmq *rmq;
} rdb_backend;

typedef struct rdb_sub {
  lmq_rmq *rmq;
  char *channel, *group;
  lmq_bmsg *arr; /* reused between batches */
  size_t cap;
} rdb_sub;

static lmq_rmq *rmq_of(lmq_backend *b) { return ((rdb_backend *)b)->rmq; }

/* Carry the store's detailed message over to lmq's per-thread one. */
static int pass(int rc) {
  return rc < 0 ? lmq__error(rc, "rocksdb backend: %s", lmq__rmq_errmsg()) : rc;
}

static int r_channel_create(lmq_backend *b, const char *ch) {
  return pass(lmq__rmq_channel_create(rmq_of(b), ch));
}

static int r_channel_destroy(lmq_backend *b, const char *ch) {
  return pass(lmq__rmq_channel_destroy(rmq_of(b), ch));
}

static int r_produce(lmq_backend *b, const char *ch, const lmq_buf *msgs, size_t n,
                     uint64_t *ids) {
  return pass(lmq__rmq_produce(rmq_of(b), ch, msgs, n, ids, LMQ_SYNC_DEFAULT));
}

static int r_latest(lmq_backend *b, const char *ch, uint64_t *id) {
  lmq_id v = 0;
  int rc = lmq__rmq_latest_id(&v, rmq_of(b), ch);
  if (rc == 0)
    *id = v;
  return pass(rc);
}

static int r_subscribe(lmq_backend *b, lmq_bsub **out, const char *ch,
                       const char *group, int start) {
  int rc = lmq__rmq_group_create(rmq_of(b), ch, group, start);
  if (rc)
    return pass(rc);
  rdb_sub *s = calloc(1, sizeof *s);
  if (!s || !(s->channel = strdup(ch)) || !(s->group = strdup(group))) {
    if (s)
      free(s->channel);
    free(s);
    return lmq__error(LMQ_ENOMEM, "subscribe: out of memory");
  }
  s->rmq = rmq_of(b);
  *out = (lmq_bsub *)s;
  return 0;
}

static int r_consume(lmq_bsub *bs, lmq_bbatch *out, size_t max, int timeout_ms) {
  rdb_sub *s = (rdb_sub *)bs;
  lmq_rmq_msgs *m = NULL;
  memset(out, 0, sizeof *out);
  int n = lmq__rmq_consume(&m, s->rmq, s->channel, s->group, max, timeout_ms);
  if (n < 0)
    return pass(n);
  if (m->n > s->cap) {
    lmq_bmsg *na = realloc(s->arr, m->n * sizeof *na);
    if (!na) {
      lmq__rmq_msgs_free(m);
      return lmq__error(LMQ_ENOMEM, "consume: out of memory");
    }
    s->arr = na;
    s->cap = m->n;
  }
  for (size_t i = 0; i < m->n; i++)
    s->arr[i] = (lmq_bmsg){m->msgs[i].id, m->msgs[i].data, m->msgs[i].len};
  out->msgs = s->arr;
  out->n = m->n;
  out->priv = m;
  return 0;
}

static void r_batch_free(lmq_bsub *bs, lmq_bbatch *batch) {
  (void)bs;
  lmq__rmq_msgs_free(batch->priv);
  memset(batch, 0, sizeof *batch);
}

static int r_fd(lmq_bsub *bs, int *fd) {
  rdb_sub *s = (rdb_sub *)bs;
  return pass(lmq__rmq_group_fd(fd, s->rmq, s->channel, s->group));
}

static int r_seek(lmq_bsub *bs, uint64_t id) {
  rdb_sub *s = (rdb_sub *)bs;
  return pass(lmq__rmq_seek(s->rmq, s->channel, s->group, id));
}

static int r_commit(lmq_bsub *bs) {
  rdb_sub *s = (rdb_sub *)bs;
  return pass(lmq__rmq_group_commit(s->rmq, s->channel, s->group));
}

static void r_unsubscribe(lmq_bsub *bs) {
  rdb_sub *s = (rdb_sub *)bs;
  if (!s)
    return;
  /* Uncommitted reads go to the group's next consumer (see the engine's). */
  lmq__rmq_group_rewind(s->rmq, s->channel, s->group);
  free(s->channel);
  free(s->group);
  free(s->arr);
  free(s);
}

static lmq_meta *r_meta(lmq_backend *b) {
  (void)b;
  return NULL;
}

static void r_close(lmq_backend *b) {
  rdb_backend *r = (rdb_backend *)b;
  if (!r)
    return;
  lmq__rmq_close(r->rmq);
  free(r);
}

static const lmq_backend_ops rocksdb_ops = {
    "rocksdb", r_channel_create, r_channel_destroy, r_produce,
    r_latest,  r_subscribe,      r_consume,         r_batch_free,
    r_fd,      r_seek,           r_commit,          r_unsubscribe,
    r_meta,    r_close,
};

int lmq__backend_rocksdb_open(lmq_backend **out, const char *dir, int sync) {
  if (!out || !dir)
    return lmq__error(LMQ_EINVAL, "rocksdb backend: NULL out or dir");
  rdb_backend *r = calloc(1, sizeof *r);
  if (!r)
    return lmq__error(LMQ_ENOMEM, "rocksdb backend: out of memory");
  int rc = lmq__rmq_open(&r->rmq, dir, sync);
  if (rc) {
    free(r);
    return pass(rc);
  }
  r->base.ops = &rocksdb_ops;
  *out = &r->base;
  return 0;
}
