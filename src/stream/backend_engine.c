/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* backend_engine.c - the stream backend over the lmq engine (include/lmq.h). */
#include "config.h"
#include "stream/backend.h"
#include "common/error.h"
#include "engine/engine.h"

#include <stdlib.h>
#include <string.h>

typedef struct eng_backend {
  lmq_backend base;
  lmq_env *env;
  int own_env;
} eng_backend;

/* A subscription is a consumer handle (include/lmq.h, "Handles"): no name
 * lookups per consume. */
typedef struct eng_sub {
  lmq_consumer *c;
  lmq_bmsg *arr; /* reused between batches */
  size_t cap;
} eng_sub;

static lmq_env *env_of(lmq_backend *b) { return ((eng_backend *)b)->env; }

static int e_channel_create(lmq_backend *b, const char *ch) {
  return lmq_channel_create(env_of(b), ch);
}

static int e_channel_destroy(lmq_backend *b, const char *ch) {
  return lmq_channel_destroy(env_of(b), ch);
}

static int e_produce(lmq_backend *b, const char *ch, const lmq_buf *msgs,
                     size_t n, uint64_t *ids) {
  return lmq_produce(env_of(b), ch, msgs, n, ids, LMQ_SYNC_DEFAULT);
}



static int e_latest(lmq_backend *b, const char *ch, uint64_t *id) {
  lmq_id v = 0;
  int rc = lmq_latest_id(&v, env_of(b), ch);
  if (rc == 0)
    *id = v;
  return rc;
}

static int e_subscribe(lmq_backend *b, lmq_bsub **out, const char *ch,
                       const char *group, int start) {
  int rc = lmq_group_create(env_of(b), ch, group, start);
  if (rc)
    return rc;
  eng_sub *s = calloc(1, sizeof *s);
  if (!s)
    return lmq__error(LMQ_ENOMEM, "subscribe: out of memory");
  lmq_channel *h = NULL;
  rc = lmq_channel_open(&h, env_of(b), ch);
  if (!rc)
    rc = lmq_consumer_open(&s->c, h, group);
  lmq_channel_close(h); /* the consumer handle holds what it needs */
  if (rc) {
    free(s);
    return rc;
  }
  *out = (lmq_bsub *)s;
  return 0;
}

static int e_consume(lmq_bsub *bs, lmq_bbatch *out, size_t max,
                     int timeout_ms) {
  eng_sub *s = (eng_sub *)bs;
  lmq_msgs *msgs = NULL;
  memset(out, 0, sizeof *out);
  int n = lmq_consumer_consume(&msgs, s->c, max, timeout_ms);
  if (n < 0) {
    lmq_msgs_free(msgs);
    return n;
  }
  if ((size_t)n > s->cap) {
    lmq_bmsg *na = realloc(s->arr, (size_t)n * sizeof *na);
    if (!na) {
      lmq_msgs_free(msgs);
      return lmq__error(LMQ_ENOMEM, "consume: out of memory");
    }
    s->arr = na;
    s->cap = (size_t)n;
  }
  for (int i = 0; i < n; i++) {
    const lmq_msg *m = lmq_msgs_at(msgs, (size_t)i);
    s->arr[i].id = m->id;
    s->arr[i].data = m->data;
    s->arr[i].len = m->len;
  }
  out->msgs = s->arr;
  out->n = (size_t)n;
  out->priv = msgs;
  return 0;
}

static void e_batch_free(lmq_bsub *bs, lmq_bbatch *batch) {
  (void)bs;
  lmq_msgs_free(batch->priv);
  memset(batch, 0, sizeof *batch);
}

static int e_fd(lmq_bsub *bs, int *fd) {
  eng_sub *s = (eng_sub *)bs;
  return lmq_consumer_fd(fd, s->c);
}

static int e_seek(lmq_bsub *bs, uint64_t id) {
  eng_sub *s = (eng_sub *)bs;
  return lmq_consumer_seek(s->c, id);
}

static int e_commit(lmq_bsub *bs) {
  eng_sub *s = (eng_sub *)bs;
  return lmq_consumer_commit(s->c);
}

static void e_unsubscribe(lmq_bsub *bs) {
  eng_sub *s = (eng_sub *)bs;
  if (!s)
    return;
  /* What this subscriber read but nobody committed goes to the group's
   * next consumer (the channel or group may be gone: nothing to do). */
  lmq_consumer_rewind(s->c);
  lmq_consumer_close(s->c);
  free(s->arr);
  free(s);
}

static lmq_meta *e_meta(lmq_backend *b) { return lmq__env_meta(env_of(b)); }

static void e_close(lmq_backend *b) {
  eng_backend *e = (eng_backend *)b;
  if (!e)
    return;
  if (e->own_env)
    lmq_env_close(e->env);
  free(e);
}

static const lmq_backend_ops engine_ops = {
    "engine",    e_channel_create, e_channel_destroy, e_produce,
    e_latest,    e_subscribe,      e_consume,         e_batch_free,
    e_fd,        e_seek,           e_commit,          e_unsubscribe,
    e_meta,      e_close,
};

lmq_env *lmq__backend_engine_env(lmq_backend *b) {
  return b && b->ops == &engine_ops ? env_of(b) : NULL;
}

int lmq__backend_engine_open(lmq_backend **out, lmq_env *env, int own_env) {
  eng_backend *e = calloc(1, sizeof *e);
  if (!e)
    return lmq__error(LMQ_ENOMEM, "backend: out of memory");
  e->base.ops = &engine_ops;
  e->env = env;
  e->own_env = own_env;
  *out = &e->base;
  return 0;
}
