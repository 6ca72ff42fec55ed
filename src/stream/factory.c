/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* factory.c - the stream factory: parameters, and the backend and
 * dispatcher its streams share. */
#include "config.h"
#include "stream/stream.h"
#include "stream/backend_module.h"
#include "common/error.h"

#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct lmq_stream_factory {
  pthread_mutex_t mu;
  char *backend;
  char *dir;
  char *nats_url; /* backend "nats"; NULL: the loopback default */
  int nats_replicas;
  char *meta_uri; /* the channel service's store; NULL: see lmq__factory_meta */
  int sync;
  uint64_t memlimit; /* engine.memory_limit; 0 = none */
  int mem;
  size_t rbuf;
  lmq_env *env;          /* borrowed */
  lmq_dispatcher *disp;  /* borrowed */
  lmq_stream_ctx *ctx;   /* opened on first use */
};

void lmq__ctx_unref(lmq_stream_ctx *c) {
  if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  if (c->be)
    c->be->ops->close(c->be);
  if (c->own_disp)
    lmq_dispatcher_destroy(c->disp);
  free(c);
}

LMQ_API int lmq_stream_factory_create(lmq_stream_factory **out) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "factory_create: out is NULL");
  lmq_stream_factory *f = calloc(1, sizeof *f);
  if (!f || !(f->backend = strdup("engine"))) {
    free(f);
    return lmq__error(LMQ_ENOMEM, "factory_create: out of memory");
  }
  pthread_mutex_init(&f->mu, NULL);
  f->rbuf = 1024;
  f->nats_replicas = 1;
  f->sync = LMQ_SYNC_DEFAULT;
  *out = f;
  return 0;
}

LMQ_API void lmq_stream_factory_destroy(lmq_stream_factory *f) {
  if (!f)
    return;
  lmq__ctx_unref(f->ctx);
  free(f->backend);
  free(f->dir);
  free(f->nats_url);
  free(f->meta_uri);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

static int set_locked(lmq_stream_factory *f, const char *key,
                      const char *value) {
  if (!strcmp(key, "backend")) {
    static const char *const built[] = {
        "engine",
#ifdef LMQ_HAVE_ROCKSDB
        "rocksdb",
#endif
#ifdef LMQ_HAVE_NATS
        "nats",
#endif
    };
    size_t k = 0;
    while (k < sizeof built / sizeof *built && strcmp(value, built[k]))
      k++;
    if (k == sizeof built / sizeof *built)
      return lmq__error(LMQ_EINVAL,
                        "backend '%.64s' is not built in (have: engine"
#ifdef LMQ_HAVE_ROCKSDB
                        ", rocksdb"
#endif
#ifdef LMQ_HAVE_NATS
                        ", nats"
#endif
                        ")",
                        value);
    char *v = strdup(value);
    if (!v)
      return lmq__error(LMQ_ENOMEM, "factory_set: out of memory");
    free(f->backend);
    f->backend = v;
    return 0;
  }
  if (!strcmp(key, "engine.dir")) {
    char *d = strdup(value);
    if (!d)
      return lmq__error(LMQ_ENOMEM, "factory_set: out of memory");
    free(f->dir);
    f->dir = d;
    return 0;
  }
  if (!strcmp(key, "nats.url")) {
    char *u = strdup(value);
    if (!u)
      return lmq__error(LMQ_ENOMEM, "factory_set: out of memory");
    free(f->nats_url);
    f->nats_url = u;
    return 0;
  }
  if (!strcmp(key, "meta.uri")) {
    if (*value && strncmp(value, "etcd://", 7) && strncmp(value, "etcds://", 8))
      return lmq__error(LMQ_EINVAL, "meta.uri '%.64s': expected etcd://... or "
                                    "etcds://... (or \"\" for the default)",
                        value);
    char *u = *value ? strdup(value) : NULL;
    if (*value && !u)
      return lmq__error(LMQ_ENOMEM, "factory_set: out of memory");
    free(f->meta_uri);
    f->meta_uri = u;
    return 0;
  }
  if (!strcmp(key, "nats.replicas")) {
    if (strcmp(value, "1") && strcmp(value, "3") && strcmp(value, "5"))
      return lmq__error(LMQ_EINVAL, "nats.replicas '%.32s': expected 1, 3 or 5",
                        value);
    f->nats_replicas = atoi(value);
    return 0;
  }
  if (!strcmp(key, "engine.sync")) {
    if (!strcmp(value, "always"))
      f->sync = LMQ_SYNC_ALWAYS;
    else if (!strcmp(value, "interval"))
      f->sync = LMQ_SYNC_INTERVAL;
    else if (!strcmp(value, "none"))
      f->sync = LMQ_SYNC_NONE;
    else
      return lmq__error(LMQ_EINVAL,
                        "engine.sync '%.32s': expected always, interval or "
                        "none",
                        value);
    return 0;
  }
  if (!strcmp(key, "engine.memory_limit")) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' ||
        (v && v < ((unsigned long long)1 << 20)))
      return lmq__error(LMQ_EINVAL, "engine.memory_limit '%.32s': expected 0 "
                        "or bytes >= 1048576", value);
    f->memlimit = v;
    return 0;
  }
  if (!strcmp(key, "dispatcher")) {
    if (!strcmp(value, "proto"))
      f->mem = 0;
    else if (!strcmp(value, "mem"))
      f->mem = 1;
    else
      return lmq__error(LMQ_EINVAL,
                        "dispatcher '%.32s': expected proto or mem", value);
    return 0;
  }
  if (!strcmp(key, "receive_buffer")) {
    char *end;
    unsigned long v = strtoul(value, &end, 10);
    if (!*value || *end || v < 1 || v > 1048576)
      return lmq__error(LMQ_EINVAL,
                        "receive_buffer '%.32s': expected 1..1048576", value);
    f->rbuf = v;
    return 0;
  }
  return lmq__error(LMQ_EINVAL,
                    "unknown stream parameter '%.64s' (known: backend, "
                    "engine.dir, engine.sync, engine.memory_limit, nats.url, "
                    "nats.replicas, meta.uri, "
                    "dispatcher, "
                    "receive_buffer)",
                    key);
}

LMQ_API int lmq_stream_factory_set(lmq_stream_factory *f, const char *key,
                                   const char *value) {
  if (!f || !key || !value)
    return lmq__error(LMQ_EINVAL, "factory_set: NULL argument");
  pthread_mutex_lock(&f->mu);
  int rc = f->ctx ? lmq__error(LMQ_EBUSY, "factory_set: streams exist already")
                  : set_locked(f, key, value);
  pthread_mutex_unlock(&f->mu);
  return rc;
}

LMQ_API int lmq_stream_factory_set_env(lmq_stream_factory *f, lmq_env *env) {
  if (!f || !env)
    return lmq__error(LMQ_EINVAL, "factory_set_env: NULL argument");
  pthread_mutex_lock(&f->mu);
  int rc = 0;
  if (f->ctx)
    rc = lmq__error(LMQ_EBUSY, "factory_set_env: streams exist already");
  else
    f->env = env;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

LMQ_API int lmq_stream_factory_set_dispatcher(lmq_stream_factory *f,
                                              lmq_dispatcher *d) {
  if (!f || !d)
    return lmq__error(LMQ_EINVAL, "factory_set_dispatcher: NULL argument");
  pthread_mutex_lock(&f->mu);
  int rc = 0;
  if (f->ctx)
    rc = lmq__error(LMQ_EBUSY, "factory_set_dispatcher: streams exist "
                               "already");
  else
    f->disp = d;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int ctx_open(lmq_stream_ctx **out, lmq_stream_factory *f) {
  lmq_stream_ctx *c = calloc(1, sizeof *c);
  if (!c)
    return lmq__error(LMQ_ENOMEM, "stream: out of memory");
  atomic_init(&c->refs, 1);
  c->rbuf = f->rbuf;
  int rc = 0;
  if (f->disp) {
    c->disp = f->disp;
  } else {
    rc = f->mem ? lmq_dispatcher_create_mem(&c->disp)
                : lmq_dispatcher_create_proto(&c->disp);
    c->own_disp = 1;
    if (rc)
      goto fail;
  }
#ifdef LMQ_HAVE_ROCKSDB
  if (!strcmp(f->backend, "rocksdb")) {
    /* The RocksDB store lives in engine.dir; engine.sync is its policy. */
    if (!f->dir) {
      rc = lmq__error(LMQ_EINVAL, "stream factory: backend rocksdb needs "
                                  "engine.dir");
      goto fail;
    }
    if ((rc = lmq__backend_rocksdb_load(&c->be, f->dir, f->sync)))
      goto fail;
    *out = c;
    return 0;
  }
#endif
#ifdef LMQ_HAVE_NATS
  if (!strcmp(f->backend, "nats")) {
    /* engine.dir and engine.sync do not apply: the server stores. */
    if ((rc = lmq__backend_nats_open(&c->be, f->nats_url
                                                 ? f->nats_url
                                                 : "nats://127.0.0.1:4222",
                                      f->nats_replicas)))
      goto fail;
    *out = c;
    return 0;
  }
#endif
  lmq_env *env = f->env;
  int own = 0;
  if (!env) {
    if (!f->dir) {
      rc = lmq__error(LMQ_EINVAL, "stream factory: set engine.dir or an env");
      goto fail;
    }
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    if (f->sync != LMQ_SYNC_DEFAULT)
      o.sync = f->sync;
    /* The limit needs messages of at most 1/16 of it (lmq.h). */
    o.memory_limit = f->memlimit;
    if (f->memlimit && o.max_message_size > f->memlimit / 16)
      o.max_message_size = (uint32_t)(f->memlimit / 16);
    if ((rc = lmq_env_open(&env, f->dir, &o)))
      goto fail;
    own = 1;
  }
  if ((rc = lmq__backend_engine_open(&c->be, env, own))) {
    if (own)
      lmq_env_close(env);
    goto fail;
  }
  *out = c;
  return 0;
fail:
  lmq__ctx_unref(c);
  return rc;
}

int lmq__factory_ctx(lmq_stream_ctx **out, lmq_stream_factory *f) {
  if (!f)
    return lmq__error(LMQ_EINVAL, "stream factory is NULL");
  pthread_mutex_lock(&f->mu);
  int rc = f->ctx ? 0 : ctx_open(&f->ctx, f);
  if (rc == 0) {
    atomic_fetch_add(&f->ctx->refs, 1);
    *out = f->ctx;
  }
  pthread_mutex_unlock(&f->mu);
  return rc;
}

int lmq__factory_meta(lmq_meta **out, void **file_env, int *owned,
                      lmq_stream_factory *f, lmq_backend *be) {
  *out = NULL;
  *file_env = NULL;
  *owned = 0;
  pthread_mutex_lock(&f->mu);
  char *uri = f->meta_uri ? strdup(f->meta_uri) : NULL;
  char *dir = f->dir ? strdup(f->dir) : NULL;
  int oom = (f->meta_uri && !uri) || (f->dir && !dir);
  pthread_mutex_unlock(&f->mu);
  int rc = 0;
  if (oom) {
    rc = lmq__error(LMQ_ENOMEM, "stream factory: out of memory");
  } else if (uri) {
    /* Shared by every process that names the same etcd namespace. */
    if (!(rc = lmq_meta_open(out, uri, NULL)))
      *owned = 1;
  } else if (be->ops->meta && (*out = be->ops->meta(be))) {
    rc = 0; /* the engine's own store: borrowed */
  } else if (dir) {
    size_t n = strlen(dir) + sizeof "/lmq-meta";
    char *path = malloc(n);
    if (!path) {
      rc = lmq__error(LMQ_ENOMEM, "stream factory: out of memory");
    } else {
      snprintf(path, n, "%s/lmq-meta", dir);
      if (!(rc = lmq__meta_file_open(out, file_env, path)))
        *owned = 1;
      free(path);
    }
  } else {
    rc = lmq__error(LMQ_EINVAL,
                    "the %s backend keeps no metadata: set meta.uri "
                    "(etcd://...) or engine.dir for the channel service",
                    be->ops->name);
  }
  free(uri);
  free(dir);
  return rc;
}
