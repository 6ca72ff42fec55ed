/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * env.c - opening a data directory, recovery, the applier thread,
 * checkpoints, closing and env-wide stats.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


LMQ_API uint64_t lmq_id_time(lmq_id id) { return id >> LMQ_ID_LOGICAL_BITS; }
LMQ_API lmq_id lmq_id_from_time(uint64_t ms) {
  return (lmq_id)ms << LMQ_ID_LOGICAL_BITS;
}

int lmq__mdb_code(int rc, const char *what) {
  switch (rc) {
  case MDB_MAP_FULL:
    return lmq__error(LMQ_EMAPFULL, "%s: LMDB map is full (raise map_size)", what);
  case ENOMEM:
    return lmq__error(LMQ_ENOMEM, "%s: out of memory", what);
  case ENOSPC:
  case EDQUOT:
    return lmq__error(LMQ_ENOSPC, "%s: no space left on device", what);
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH:
    return lmq__error(LMQ_ECORRUPT, "%s: %s", what, mdb_strerror(rc));
  case EACCES:
    return lmq__error(LMQ_ENOTSUP, "%s: the env is open read-only", what);
  case MDB_DBS_FULL:
    return lmq__error(LMQ_ELIMIT, "%s: more channels than the max_channels "
                      "option allows (raise max_channels)", what);
  case MDB_READERS_FULL:
    return lmq__error(LMQ_ELIMIT, "%s: too many concurrent readers", what);
  default:
    return lmq__error(LMQ_EIO, "%s: %s", what, mdb_strerror(rc));
  }
}

lmq_meta *lmq__env_meta(lmq_env *env) { return env ? env->meta : NULL; }

/* Live envs, so that a call on a closed handle is an error, not a crash. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static lmq_env **live;
static size_t nlive, live_cap;

static int live_add(lmq_env *env) {
  pthread_mutex_lock(&live_mu);
  if (nlive == live_cap) {
    size_t nc = live_cap ? live_cap * 2 : 8;
    lmq_env **n = realloc(live, nc * sizeof *n);
    if (!n) {
      pthread_mutex_unlock(&live_mu);
      return -1;
    }
    live = n;
    live_cap = nc;
  }
  live[nlive++] = env;
  pthread_mutex_unlock(&live_mu);
  return 0;
}

/* Remove env; returns 1 if it was live. */
static int live_remove(lmq_env *env) {
  int found = 0;
  pthread_mutex_lock(&live_mu);
  for (size_t i = 0; i < nlive; i++)
    if (live[i] == env) {
      live[i] = live[--nlive];
      found = 1;
      break;
    }
  if (nlive == 0) {
    free(live);
    live = NULL;
    live_cap = 0;
  }
  pthread_mutex_unlock(&live_mu);
  return found;
}

int lmq__env_check(lmq_env *env) {
  if (!env)
    return lmq__error(LMQ_EINVAL, "env is NULL");
  int found = 0;
  pthread_mutex_lock(&live_mu);
  for (size_t i = 0; i < nlive; i++)
    if (live[i] == env) {
      found = 1;
      break;
    }
  pthread_mutex_unlock(&live_mu);
  if (!found || atomic_load(&env->closed))
    return lmq__error(LMQ_ECLOSED, "env handle is closed");
  return 0;
}

int lmq__env_writable(lmq_env *env, const char *what) {
  if (env->opt.flags & LMQ_OPEN_RDONLY)
    return lmq__error(LMQ_ENOTSUP, "%s: the env is open read-only "
                      "(LMQ_OPEN_RDONLY)", what);
  return 0;
}

int lmq__mdb_durable(lmq_env *env, const char *what) {
  int rc = mdb_env_sync(env->mdb, 1);
  return rc ? lmq__mdb_code(rc, what) : 0;
}

/* --------------------------------------------------------------------- */
/* Open / close                                                          */

/* Copy the caller's options (version 1, 2 or 3) into *o. */
static int take_options(lmq_env_options *o, const lmq_env_options *in) {
  lmq_env_options def = LMQ_ENV_OPTIONS_INIT;
  *o = def;
  if (!in)
    return 0;
  if (in->version == 1)
    memcpy(o, in, offsetof(lmq_env_options, flags)); /* v1 ends before flags */
  else if (in->version == 2) /* v2 ends before memory_limit */
    memcpy(o, in, offsetof(lmq_env_options, memory_limit));
  else if (in->version == LMQ_ENV_OPTIONS_VERSION)
    *o = *in;
  else
    return lmq__error(LMQ_EINVAL, "options version %u, expected %u (use "
                      "LMQ_ENV_OPTIONS_INIT)", in->version, LMQ_ENV_OPTIONS_VERSION);
  o->version = LMQ_ENV_OPTIONS_VERSION;
  if (!o->max_message_size)
    o->max_message_size = def.max_message_size;
  return 0;
}

static int check_options(const lmq_env_options *o) {
  if (o->sync < LMQ_SYNC_ALWAYS || o->sync > LMQ_SYNC_NONE)
    return lmq__error(LMQ_EINVAL, "sync policy %d is not ALWAYS, INTERVAL or NONE",
                      o->sync);
  if (o->sync == LMQ_SYNC_INTERVAL && o->sync_interval_ms == 0)
    return lmq__error(LMQ_EINVAL, "sync_interval_ms must be > 0");
  if (o->map_size < ((uint64_t)1 << 20))
    return lmq__error(LMQ_EINVAL, "map_size must be at least 1 MiB");
  if (o->max_channels < 1 || o->max_channels > 32000)
    return lmq__error(LMQ_EINVAL, "max_channels must be 1..32000");
  if (o->max_message_size > (256u << 20))
    return lmq__error(LMQ_EINVAL, "max_message_size must be at most 256 MiB");
  if (o->wal_segment_size < (1u << 16))
    return lmq__error(LMQ_EINVAL, "wal_segment_size must be at least 64 KiB");
  if (o->apply_bytes == 0 || o->max_unapplied < o->apply_bytes)
    return lmq__error(LMQ_EINVAL, "need 0 < apply_bytes <= max_unapplied");
  const unsigned known = LMQ_OPEN_SALVAGE | LMQ_OPEN_RDONLY | LMQ_OPEN_NOCREATE |
                         LMQ_OPEN_NO_WAL_ZERO_FILL;
  if (o->flags & ~known)
    return lmq__error(LMQ_EINVAL, "unknown flags 0x%x", o->flags & ~known);
  if ((o->flags & LMQ_OPEN_RDONLY) && (o->flags & LMQ_OPEN_SALVAGE))
    return lmq__error(LMQ_EINVAL, "LMQ_OPEN_SALVAGE needs a read-write open "
                      "(it is about recovery, which a read-only open skips)");
  return 0;
}

static void env_free(lmq_env *env) {
  if (env->meta)
    lmq_meta_close(env->meta);
  lmq__chan_free_all(env);
  if (env->mdb)
    mdb_env_close(env->mdb);
  if (env->wal_fd >= 0)
    close(env->wal_fd);
  if (env->pending)
    lmq__chunk_unref(env, env->pending);
  if (env->next_chunk)
    lmq__chunk_unref(env, env->next_chunk);
  lmq__chunk_free_all(env);
  lmq__mem_teardown(env);
  lmq__unlock_dir(env->lockfd);
  pthread_mutex_destroy(&env->reg_mu);
  pthread_mutex_destroy(&env->ddl_mu);
  pthread_mutex_destroy(&env->commit_all_mu);
  pthread_mutex_destroy(&env->cm_mu);
  pthread_cond_destroy(&env->cm_cond);
  pthread_cond_destroy(&env->reg_cond);
  pthread_mutex_destroy(&env->wal_mu);
  pthread_cond_destroy(&env->wal_cond);
  pthread_mutex_destroy(&env->io_mu);
  pthread_mutex_destroy(&env->app_mu);
  pthread_cond_destroy(&env->app_cond);
  pthread_cond_destroy(&env->app_done);
  pthread_cond_destroy(&env->linger_cond);
  pthread_mutex_destroy(&env->free_mu);
  free(env->htab);
  free(env->dir);
  free(env->waldir);
  free(env);
}

static void cond_init_mono(pthread_cond_t *c) {
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(c, &a);
  pthread_condattr_destroy(&a);
}

static lmq_env *env_alloc(const char *dir, const lmq_env_options *o) {
  lmq_env *env = calloc(1, sizeof *env);
  if (!env)
    return NULL;
  env->opt = *o;
  env->opt.meta_uri = NULL; /* not kept: the caller owns the string */
  env->lockfd = -1;
  env->wal_fd = -1;
  pthread_mutex_init(&env->reg_mu, NULL);
  pthread_mutex_init(&env->ddl_mu, NULL);
  pthread_mutex_init(&env->commit_all_mu, NULL);
  pthread_mutex_init(&env->cm_mu, NULL);
  cond_init_mono(&env->cm_cond);
  pthread_cond_init(&env->reg_cond, NULL);
  pthread_mutex_init(&env->wal_mu, NULL);
  pthread_cond_init(&env->wal_cond, NULL);
  pthread_mutex_init(&env->io_mu, NULL);
  pthread_mutex_init(&env->app_mu, NULL);
  pthread_mutex_init(&env->free_mu, NULL);
  cond_init_mono(&env->linger_cond);
  cond_init_mono(&env->app_cond);
  pthread_cond_init(&env->app_done, NULL);
  env->hcap = 64;
  env->htab = calloc(env->hcap, sizeof *env->htab);
  size_t dl = strlen(dir);
  env->dir = strdup(dir);
  env->waldir = malloc(dl + 5);
  if (!env->htab || !env->dir || !env->waldir) {
    env_free(env);
    return NULL;
  }
  snprintf(env->waldir, dl + 5, "%s/wal", dir);
  return env;
}

/* Open LMDB and load "#sys": the applied position, the ID high-water mark
 * and the channels. */
static int open_lmdb(lmq_env *env) {
  int rc = mdb_env_create(&env->mdb);
  if (rc) {
    env->mdb = NULL;
    return lmq__mdb_code(rc, "mdb_env_create");
  }
  int ro = (env->opt.flags & LMQ_OPEN_RDONLY) != 0;
  /* A reader does not know the writer's max_channels: allow the most. The
   * map size is the one stored in the file (0 = keep it). */
  mdb_env_set_maxdbs(env->mdb, ro ? 32004 : env->opt.max_channels + 4);
  if (!ro)
    mdb_env_set_mapsize(env->mdb, (size_t)env->opt.map_size);
  mdb_env_set_maxreaders(env->mdb, 1022);
  /* NOMETASYNC: each apply commit syncs data pages but not the meta page,
   * so a power loss can at most undo the last apply (the WAL still has it);
   * checkpoints sync fully before WAL segments are retired, and calls
   * documented as durable end with lmq__mdb_durable(). */
  unsigned mflags = MDB_NOTLS | (ro ? MDB_RDONLY : MDB_NOMETASYNC);
  if (ro) {
    /* No reader table yet means no LMDB user has opened the directory
     * since it was made (LMDB leaves lock.mdb behind): read without one
     * rather than create it. A writer starting meanwhile is the one case
     * this does not cover. */
    char lock[PATH_MAX];
    snprintf(lock, sizeof lock, "%s/lock.mdb", env->dir);
    if (access(lock, F_OK) != 0)
      mflags |= MDB_NOLOCK;
  }
  if ((rc = mdb_env_open(env->mdb, env->dir, mflags, 0644)))
    return lmq__mdb_code(rc, "open LMDB");
  MDB_stat mst;
  if ((rc = mdb_env_stat(env->mdb, &mst)))
    return lmq__mdb_code(rc, "open LMDB");
  env->run_max = lmq__store_run_max(mst.ms_psize);
  MDB_txn *txn;
  if ((rc = mdb_txn_begin(env->mdb, NULL, ro ? MDB_RDONLY : 0, &txn)))
    return lmq__mdb_code(rc, "open");
  rc = mdb_dbi_open(txn, "#sys", ro ? 0 : MDB_CREATE, &env->sysdbi);
  if (rc == MDB_NOTFOUND)
    rc = MDB_INVALID; /* every env has it: this is not one */
  uint64_t ap[2] = {0, 0}, hwm = 0;
  if (!rc) {
    int e = lmq__sys_get(txn, env->sysdbi, SYS_APPLIED, ap, 2);
    if (e && e != MDB_NOTFOUND)
      rc = e;
    e = lmq__sys_get(txn, env->sysdbi, SYS_HWM, &hwm, 1);
    if (e && e != MDB_NOTFOUND)
      rc = e;
  }
  if (!rc)
    rc = lmq__chan_load_all(env, txn);
  if (rc) {
    mdb_txn_abort(txn);
    return lmq__is_lmq_code(rc) ? rc : lmq__mdb_code(rc, "open");
  }
  if (!ro)
    lmq__mdb_pages_ahead(env); /* before any commit appends pages */
  if ((rc = mdb_txn_commit(txn)))
    return lmq__mdb_code(rc, "open");
  env->applied_seg = ap[0];
  env->applied_off = ap[1];
  if (hwm > LMQ_ID_MAX || env->last_id > LMQ_ID_MAX)
    return lmq__error(LMQ_ECORRUPT, "%s/data.mdb: stored message ID %llu is out "
                      "of range", env->dir, (unsigned long long)
                      (hwm > env->last_id ? hwm : env->last_id));
  if (hwm > env->last_id)
    env->last_id = hwm;
  return 0;
}


/* The metadata store, and the ID high-water mark mirrored in it. */
static int open_meta(lmq_env *env, const char *uri) {
  int rc = lmq_meta_open(&env->meta, uri, env->mdb);
  if (rc) {
    env->meta = NULL;
    return rc;
  }
  void *v = NULL;
  size_t vl = 0;
  int g = lmq_meta_get(env->meta, &v, &vl, NULL, META_HWM, strlen(META_HWM));
  if (g == 0 && vl == 8 && lmq__get64(v) > LMQ_ID_MAX) {
    unsigned long long bad = lmq__get64(v);
    free(v);
    return lmq__error(LMQ_ECORRUPT, "metadata store: ID high-water mark %llu is "
                      "out of range", bad);
  }
  if (g == 0 && vl == 8) {
    env->meta_hwm = lmq__get64(v);
    if (env->meta_hwm > env->last_id)
      env->last_id = env->meta_hwm;
  }
  free(v);
  return g && g != LMQ_ENOTFOUND ? g : 0;
}

static int load_groups(lmq_env *env) {
  int rc = 0;
  pthread_mutex_lock(&env->reg_mu);
  for (size_t h = 0; h < env->hcap && !rc; h++)
    for (lmq_chan *ch = env->htab[h]; ch && !rc; ch = ch->hnext)
      rc = lmq__groups_load(env, ch);
  pthread_mutex_unlock(&env->reg_mu);
  return rc;
}

static void env_shutdown(lmq_env *env);

LMQ_API int lmq_env_open(lmq_env **out, const char *dir,
                         const lmq_env_options *opts) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "lmq_env_open: out is NULL");
  *out = NULL;
  if (!dir || !*dir)
    return lmq__error(LMQ_EINVAL, "lmq_env_open: directory is NULL or empty");
  lmq_env_options o;
  int rc = take_options(&o, opts);
  if (rc || (rc = check_options(&o)))
    return rc;
  lmq_env *env = env_alloc(dir, &o);
  if (!env)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  if ((rc = lmq__mem_setup(env))) {
    env_free(env);
    return rc;
  }
  const char *uri = opts ? opts->meta_uri : NULL;
  char *rec = NULL;
  if ((rc = lmq__envdir_prepare(env)) || (rc = open_lmdb(env)))
    goto fail;
  if ((o.flags & LMQ_OPEN_RDONLY) && (!uri || !*uri))
    uri = rec = lmq__meta_uri_recorded(env); /* see metauri.c */
  if (!(o.flags & LMQ_OPEN_RDONLY) && (rc = lmq__meta_uri_check(env, uri)))
    goto fail;
  rc = open_meta(env, uri);
  free(rec);
  if (rc || (!(o.flags & LMQ_OPEN_RDONLY) && (rc = lmq__meta_uri_record(env, uri))))
    goto fail;
  if (o.flags & LMQ_OPEN_RDONLY) {
    if ((rc = load_groups(env)) || (rc = lmq__rdonly_pending(env)))
      goto fail;
    if (live_add(env)) {
      rc = lmq__error(LMQ_ENOMEM, "out of memory");
      goto fail;
    }
    *out = env;
    return 0;
  }
  lmq__wal_spares_scan(env);
  if ((rc = lmq__recover(env)) || (rc = load_groups(env)) ||
      (rc = lmq__wal_open_seg(env, env->wal_seg)))
    goto fail;
  env->last_ckpt_seg = env->wal_seg;
  env->pending = lmq__chunk_new(env, 1);
  if (!env->pending) {
    rc = lmq__error(LMQ_ENOMEM, "out of memory");
    goto fail;
  }
  env->last_sync_ns = lmq__mono_ns();
  if (pthread_create(&env->applier, NULL, lmq__applier_main, env) != 0) {
    rc = lmq__error(LMQ_ENOMEM, "cannot start the applier thread");
    goto fail;
  }
  env->applier_started = 1;
  if (lmq__committer_start(env)) {
    rc = lmq__error(LMQ_ENOMEM, "cannot start the committer thread");
    env_shutdown(env);
    return rc;
  }
  if (live_add(env)) {
    rc = lmq__error(LMQ_ENOMEM, "out of memory");
    env_shutdown(env);
    return rc;
  }
  *out = env;
  return 0;
fail:
  env_free(env);
  return rc;
}

static void env_shutdown(lmq_env *env) {
  atomic_store(&env->closed, 1);
  lmq__committer_stop(env);
  if (env->applier_started) {
    lmq__apply_flush(env, 0);
    if (env->opt.autocommit_ms) /* explicit-commit users keep control */
      lmq__groups_commit_all(env);
    pthread_mutex_lock(&env->app_mu);
    env->stop = 1;
    env->flush_req++;
    pthread_cond_signal(&env->app_cond);
    pthread_mutex_unlock(&env->app_mu);
    pthread_join(env->applier, NULL);
    if (!env->app_err && !atomic_load(&env->failed) && !lmq__checkpoint(env))
      lmq__mirror_hwm(env); /* the committer is gone: do it here */
  }
  /* Chunks the applier could not take (apply failing) keep their data in
   * the WAL; recovery replays them on the next open. */
  for (chunk *c = env->aq_head; c;) {
    chunk *n = c->next;
    for (size_t i = 0; i < c->nrecs; i++)
      if (c->recs[i].ch)
        lmq__chan_put_queued(env, c->recs[i].ch);
    c->nrecs = 0;
    lmq__chunk_unref(env, c);
    c = n;
  }
  env->aq_head = NULL;
  env_free(env);
}

LMQ_API void lmq_env_close(lmq_env *env) {
  /* A handle that is not live (NULL, closed already) is ignored without
   * being touched. */
  if (env && live_remove(env))
    env_shutdown(env);
}

LMQ_API int lmq_env_checkpoint(lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (atomic_load(&env->closed))
    return lmq__error(LMQ_ECLOSED, "env is closed");
  int rc = lmq__env_writable(env, "checkpoint");
  return rc ? rc : lmq__apply_flush(env, 1);
}

LMQ_API int lmq_env_recovery_get(lmq_recovery_report *out, lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!out || out->size < offsetof(lmq_recovery_report, summary))
    return lmq__error(LMQ_EINVAL, "out is NULL or out->size is too small "
                      "(use LMQ_RECOVERY_REPORT_INIT)");
  size_t n = out->size < sizeof *out ? out->size : sizeof *out;
  memcpy(out, &env->recovery, n);
  out->size = (uint32_t)n;
  if (n == sizeof *out)
    out->summary[sizeof out->summary - 1] = '\0';
  return 0;
}

LMQ_API int lmq_env_stats_get(lmq_env_stats *out, lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&env->io_mu);
  out->wal_bytes = env->wal_live_bytes;
  out->wal_segment = env->wal_seg;
  pthread_mutex_unlock(&env->io_mu);
  pthread_mutex_lock(&env->app_mu);
  out->applied_segment = env->applied_seg;
  out->applied_offset = env->applied_off;
  out->unapplied_bytes = env->unapplied;
  pthread_mutex_unlock(&env->app_mu);
  out->fsyncs = atomic_load(&env->st_fsyncs);
  out->commits = atomic_load(&env->st_commits);
  out->produced = atomic_load(&env->st_produced);
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env->mdb, &info);
  mdb_env_stat(env->mdb, &st);
  out->map_size = info.me_mapsize;
  out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
  pthread_mutex_lock(&env->reg_mu);
  out->channels = env->nchans;
  pthread_mutex_unlock(&env->reg_mu);
  return 0;
}

