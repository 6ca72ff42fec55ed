/*
 * env.c - opening a data directory, recovery, the applier thread,
 * checkpoints, closing and env-wide stats.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SYS_APPLIED "applied"
#define SYS_HWM "hwm"
#define SYS_INCARNATION "incarnation"

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
  case MDB_DBS_FULL:
    return lmq__error(LMQ_ELIMIT, "%s: too many channels (raise max_channels)",
                      what);
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

static int sys_get_u64s(MDB_txn *txn, MDB_dbi dbi, const char *key,
                        uint64_t *v, int n) {
  MDB_val k = {strlen(key), (void *)key}, d;
  int rc = mdb_get(txn, dbi, &k, &d);
  if (rc)
    return rc;
  if (d.mv_size < (size_t)n * 8)
    return MDB_CORRUPTED;
  for (int i = 0; i < n; i++)
    v[i] = lmq__get64((unsigned char *)d.mv_data + 8 * i);
  return 0;
}

static int sys_put_u64s(MDB_txn *txn, MDB_dbi dbi, const char *key,
                        const uint64_t *v, int n) {
  unsigned char buf[64];
  for (int i = 0; i < n; i++)
    lmq__put64(buf + 8 * i, v[i]);
  MDB_val k = {strlen(key), (void *)key}, d = {(size_t)n * 8, buf};
  return mdb_put(txn, dbi, &k, &d, 0);
}


/* --------------------------------------------------------------------- */
/* Recovery                                                              */

typedef struct replay_chan {
  lmq_chan *ch;
  lmq_id last_key;
} replay_chan;

static int replay_record(lmq_env *env, MDB_txn *txn, const lmq_wal_rec *rec) {
  lmq_chan *ch = lmq__chan_lookup_locked(env, rec->name, rec->name_len);
  if (!ch || ch->incarnation != rec->incarnation)
    return 0; /* the channel was destroyed (and maybe re-created) since */
  /* The applied position is exact, but never let a replay duplicate. */
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, ch->dbi, &cur);
  if (rc)
    return rc;
  MDB_val k, v;
  lmq_id last = 0;
  if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8)
    last = lmq__get64be(k.mv_data);
  size_t pos = 0;
  const unsigned char *data;
  uint32_t len;
  lmq_id id = rec->first_id;
  while (lmq__wal_rec_next(rec, &pos, &data, &len)) {
    if (id > last) {
      unsigned char kb[8];
      lmq__put64be(kb, id);
      k.mv_size = 8;
      k.mv_data = kb;
      v.mv_size = len;
      v.mv_data = (void *)data;
      if ((rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND))) {
        mdb_cursor_close(cur);
        return rc;
      }
      ch->abytes += len;
    }
    if (id > ch->last_id)
      ch->last_id = id;
    if (id > env->last_id)
      env->last_id = id;
    id++;
  }
  mdb_cursor_close(cur);
  return 0;
}

static int read_file(unsigned char **out, size_t *len, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  size_t n = (size_t)st.st_size;
  unsigned char *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return ENOMEM;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  *out = buf;
  *len = got;
  return 0;
}

/*
 * Replay WAL segments after the applied position into LMDB, stop at the
 * first invalid record (torn or corrupt tail), sync LMDB, then delete every
 * old segment: the env starts with a fresh WAL segment.
 */
static int recover(lmq_env *env) {
  uint64_t *segs = NULL;
  size_t nseg = 0;
  int rc = lmq__wal_list(&segs, &nseg, env->waldir);
  if (rc)
    return rc;
  MDB_txn *txn = NULL;
  uint64_t ap[2] = {0, 0};
  char path[PATH_MAX];
  uint64_t max_seg = env->applied_seg;
  int stopped = 0;
  size_t txn_bytes = 0;
  ap[0] = env->applied_seg;
  ap[1] = env->applied_off;
  for (size_t i = 0; i < nseg; i++) {
    if (segs[i] > max_seg)
      max_seg = segs[i];
    if (segs[i] < ap[0] || stopped)
      continue;
    lmq__wal_seg_path(path, sizeof path, env->waldir, segs[i]);
    unsigned char *buf = NULL;
    size_t len = 0;
    int e = read_file(&buf, &len, path);
    if (e) {
      rc = lmq__error(lmq__errno_code(e), "read WAL %s: %s", path, strerror(e));
      goto out;
    }
    size_t off = segs[i] == ap[0] ? ap[1] : 0;
    while (off < len) {
      lmq_wal_rec rec;
      if (!lmq__wal_decode(&rec, buf + off, len - off, segs[i])) {
        /* A torn or corrupt tail: everything after it is discarded. */
        stopped = 1;
        break;
      }
      if (!txn && (e = mdb_txn_begin(env->mdb, NULL, 0, &txn))) {
        free(buf);
        rc = lmq__mdb_code(e, "recovery");
        goto out;
      }
      pthread_mutex_lock(&env->reg_mu);
      e = replay_record(env, txn, &rec);
      pthread_mutex_unlock(&env->reg_mu);
      if (e) {
        free(buf);
        rc = lmq__mdb_code(e, "recovery replay");
        goto out;
      }
      off += rec.size;
      txn_bytes += rec.size;
      if (txn_bytes > ((size_t)64 << 20)) {
        /* Keep replay transactions bounded; the applied position is only
         * moved at the end, and replay_record skips what is already in. */
        if ((e = mdb_txn_commit(txn))) {
          txn = NULL;
          free(buf);
          rc = lmq__mdb_code(e, "recovery commit");
          goto out;
        }
        txn = NULL;
        txn_bytes = 0;
      }
    }
    free(buf);
  }
  /* New WAL starts after every existing segment. */
  env->wal_seg = max_seg + 1;
  if (!txn && (rc = mdb_txn_begin(env->mdb, NULL, 0, &txn))) {
    txn = NULL;
    rc = lmq__mdb_code(rc, "recovery");
    goto out;
  }
  {
    uint64_t nap[2] = {env->wal_seg, 0};
    int e = sys_put_u64s(txn, env->sysdbi, SYS_APPLIED, nap, 2);
    if (!e)
      e = sys_put_u64s(txn, env->sysdbi, SYS_HWM, &env->last_id, 1);
    pthread_mutex_lock(&env->reg_mu);
    for (size_t h = 0; h < env->hcap && !e; h++)
      for (lmq_chan *ch = env->htab[h]; ch && !e; ch = ch->hnext) {
        e = lmq__chan_sys_put(env, txn, ch, ch->abytes);
      }
    pthread_mutex_unlock(&env->reg_mu);
    if (e) {
      mdb_txn_abort(txn);
      txn = NULL;
      rc = lmq__mdb_code(e, "recovery");
      goto out;
    }
    e = mdb_txn_commit(txn);
    txn = NULL;
    if (e) {
      rc = lmq__mdb_code(e, "recovery commit");
      goto out;
    }
    if ((e = mdb_env_sync(env->mdb, 1))) {
      rc = lmq__mdb_code(e, "recovery sync");
      goto out;
    }
    env->applied_seg = nap[0];
    env->applied_off = 0;
  }
  for (size_t i = 0; i < nseg; i++) {
    lmq__wal_seg_path(path, sizeof path, env->waldir, segs[i]);
    lmq__wal_retire(env, path);
  }
  rc = 0;
out:
  if (txn)
    mdb_txn_abort(txn);
  free(segs);
  return rc;
}

/* --------------------------------------------------------------------- */
/* WAL segment files                                                     */

/* Open a new segment (called at open and by the leader when rolling). */
#define MAX_SPARES 2

static void spare_path(char *buf, size_t len, const char *waldir, int i) {
  snprintf(buf, len, "%s/spare.%d", waldir, i);
}

/* Count the spare files present (at open). */
static void spares_scan(lmq_env *env) {
  char path[PATH_MAX];
  env->nspares = 0;
  for (int i = 0; i < MAX_SPARES; i++) {
    spare_path(path, sizeof path, env->waldir, i);
    if (access(path, F_OK) == 0)
      env->nspares = i + 1;
    else
      break;
  }
}

void lmq__wal_retire(lmq_env *env, const char *path) {
  char sp[PATH_MAX];
  pthread_mutex_lock(&env->io_mu);
  if (env->nspares < MAX_SPARES) {
    spare_path(sp, sizeof sp, env->waldir, env->nspares);
    if (rename(path, sp) == 0) {
      env->nspares++;
      pthread_mutex_unlock(&env->io_mu);
      return;
    }
  }
  pthread_mutex_unlock(&env->io_mu);
  unlink(path);
}

/* Called with io_mu held (or before the env is shared). */
int lmq__wal_open_seg(lmq_env *env, uint64_t seq) {
  char path[PATH_MAX], sp[PATH_MAX];
  lmq__wal_seg_path(path, sizeof path, env->waldir, seq);
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  /* Reuse a spare: overwriting allocated blocks makes each fdatasync
   * cheaper than appending (no size or extent change to journal). Its old
   * records carry another segment's checksum seed, so they never verify. */
  if (env->nspares > 0) {
    spare_path(sp, sizeof sp, env->waldir, env->nspares - 1);
    if (rename(sp, path) == 0) {
      env->nspares--;
      flags &= ~O_TRUNC;
    }
  }
  int fd = open(path, flags, 0644);
  if (fd < 0)
    return lmq__error(lmq__errno_code(errno), "create WAL %s: %s", path,
                      strerror(errno));
  int e = lmq__sync_dir(env->waldir);
  if (e) {
    close(fd);
    return lmq__error(lmq__errno_code(e), "sync %s: %s", env->waldir,
                      strerror(e));
  }
  if (env->wal_fd >= 0)
    close(env->wal_fd);
  env->wal_fd = fd;
  env->wal_seg = seq;
  env->wal_off = 0;
  env->wal_synced_off = 0;
  return 0;
}

/* --------------------------------------------------------------------- */
/* Applier                                                               */

static int apply_chunks(lmq_env *env, chunk *list, uint64_t epoch) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (rc)
    return lmq__mdb_code(rc, "apply");
  chunk *last = NULL;
  for (chunk *c = list; c; c = c->next) {
    last = c;
    for (size_t i = 0; i < c->nrecs; i++) {
      rec_ref *r = &c->recs[i];
      lmq_chan *ch = r->ch;
      if (atomic_load(&ch->dead))
        continue;
      MDB_cursor *cur;
      if ((rc = mdb_cursor_open(txn, ch->dbi, &cur)))
        goto fail;
      const unsigned char *p = c->buf + r->off;
      for (uint32_t j = 0; j < r->count; j++) {
        unsigned char kb[8];
        uint32_t len = lmq__get32(p);
        lmq__put64be(kb, r->first_id + j);
        MDB_val k = {8, kb}, v = {len, (void *)(p + 4)};
        if ((rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND))) {
          mdb_cursor_close(cur);
          goto fail;
        }
        p += 4 + len;
      }
      mdb_cursor_close(cur);
      if (ch->apply_epoch != epoch) {
        ch->apply_epoch = epoch;
        ch->apply_add = 0;
        ch->apply_written = 0;
      }
      ch->apply_add += r->bytes;
    }
  }
  /* Persist the counters of every channel touched, once each. */
  for (chunk *c = list; c; c = c->next)
    for (size_t i = 0; i < c->nrecs; i++) {
      lmq_chan *ch = c->recs[i].ch;
      if (atomic_load(&ch->dead) || ch->apply_written)
        continue;
      ch->apply_written = 1;
      if ((rc = lmq__chan_sys_put(env, txn, ch, ch->abytes + ch->apply_add)))
        goto fail;
    }
  {
    uint64_t ap[2] = {last->seg, last->end_off};
    if ((rc = sys_put_u64s(txn, env->sysdbi, SYS_APPLIED, ap, 2)))
      goto fail;
    lmq_id hwm;
    pthread_mutex_lock(&env->wal_mu);
    hwm = env->last_id;
    pthread_mutex_unlock(&env->wal_mu);
    if ((rc = sys_put_u64s(txn, env->sysdbi, SYS_HWM, &hwm, 1)))
      goto fail;
  }
  rc = mdb_txn_commit(txn);
  /* Whether or not the commit worked, reset the per-apply marks; only a
   * successful commit moves the counters. */
  for (chunk *c = list; c; c = c->next)
    for (size_t i = 0; i < c->nrecs; i++) {
      lmq_chan *ch = c->recs[i].ch;
      if (ch->apply_epoch == epoch && ch->apply_written) {
        if (!rc)
          ch->abytes += ch->apply_add;
        ch->apply_written = 0;
        ch->apply_add = 0;
      }
    }
  if (rc)
    return lmq__mdb_code(rc, "apply commit");
  pthread_mutex_lock(&env->app_mu);
  env->applied_seg = last->seg;
  env->applied_off = last->end_off;
  pthread_mutex_unlock(&env->app_mu);
  return 0;
fail:
  mdb_txn_abort(txn);
  for (chunk *c = list; c; c = c->next)
    for (size_t i = 0; i < c->nrecs; i++) {
      c->recs[i].ch->apply_written = 0;
      c->recs[i].ch->apply_add = 0;
      c->recs[i].ch->apply_epoch = 0;
    }
  return lmq__mdb_code(rc, "apply");
}

static int checkpoint(lmq_env *env) {
  int rc = mdb_env_sync(env->mdb, 1);
  if (rc)
    return lmq__mdb_code(rc, "checkpoint sync");
  /* Every segment before the applied one is fully in LMDB now. */
  uint64_t *segs;
  size_t n;
  if ((rc = lmq__wal_list(&segs, &n, env->waldir)))
    return rc;
  char path[PATH_MAX];
  uint64_t freed = 0;
  for (size_t i = 0; i < n; i++) {
    if (segs[i] >= env->applied_seg)
      break;
    lmq__wal_seg_path(path, sizeof path, env->waldir, segs[i]);
    struct stat st;
    if (stat(path, &st) == 0)
      freed += (uint64_t)st.st_size;
    lmq__wal_retire(env, path);
  }
  free(segs);
  pthread_mutex_lock(&env->io_mu);
  env->wal_live_bytes = env->wal_live_bytes > freed ? env->wal_live_bytes - freed : 0;
  pthread_mutex_unlock(&env->io_mu);
  env->ckpt_bytes = 0;
  return 0;
}

static void interval_sync(lmq_env *env, uint64_t now) {
  pthread_mutex_lock(&env->io_mu);
  if (env->wal_fd >= 0 && env->wal_synced_off < env->wal_off &&
      now - env->last_sync_ns >= (uint64_t)env->opt.sync_interval_ms * 1000000u) {
    uint64_t upto = env->wal_off;
    if (lmq__datasync(env->wal_fd) == 0) {
      env->wal_synced_off = upto;
      atomic_fetch_add(&env->st_fsyncs, 1);
    } else {
      atomic_store(&env->failed, 1);
    }
    env->last_sync_ns = now;
  }
  pthread_mutex_unlock(&env->io_mu);
}

static void *applier_main(void *arg) {
  lmq_env *env = arg;
  uint64_t epoch = 0, last_commit = lmq__mono_ns(), last_retention = 0;
  pthread_mutex_lock(&env->app_mu);
  for (;;) {
    uint64_t now = lmq__mono_ns();
    uint64_t interval = (uint64_t)env->opt.apply_interval_ms * 1000000u;
    int want_flush = env->flush_req > env->flush_done;
    int due = env->aq_head &&
              (env->unapplied >= env->opt.apply_bytes || want_flush ||
               env->stop || now - env->aq_head->queued_ns >= interval);
    if (!due && !want_flush) {
      if (env->stop)
        break;
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t wait_ns = interval ? interval : 1000000u;
      if (env->opt.sync == LMQ_SYNC_INTERVAL &&
          (uint64_t)env->opt.sync_interval_ms * 1000000u < wait_ns)
        wait_ns = (uint64_t)env->opt.sync_interval_ms * 1000000u + 1;
      ts.tv_sec += (time_t)(wait_ns / 1000000000u);
      ts.tv_nsec += (long)(wait_ns % 1000000000u);
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&env->app_cond, &env->app_mu, &ts);
      pthread_mutex_unlock(&env->app_mu);
      now = lmq__mono_ns();
      interval_sync(env, now);
      if (now - last_retention >= 1000000000u) {
        lmq__chan_retention(env, lmq__now_ms());
        last_retention = now;
      }
      if (env->opt.autocommit_ms &&
          now - last_commit >= (uint64_t)env->opt.autocommit_ms * 1000000u) {
        lmq__groups_commit_all(env);
        last_commit = now;
      }
      pthread_mutex_lock(&env->app_mu);
      continue;
    }
    uint64_t req = env->flush_req;
    int want_ckpt = env->ckpt_req > env->flush_done;
    chunk *list = env->aq_head;
    env->aq_head = env->aq_tail = NULL;
    pthread_mutex_unlock(&env->app_mu);

    int rc = 0;
    uint64_t bytes = 0;
    if (list) {
      rc = apply_chunks(env, list, ++epoch);
      if (rc == 0) {
        chunk *c = list;
        while (c) {
          chunk *next = c->next;
          for (size_t i = 0; i < c->nrecs; i++) {
            lmq__chan_trim(c->recs[i].ch, c->recs[i].first_id + c->recs[i].count - 1);
            lmq__chan_put(env, c->recs[i].ch);
            c->recs[i].ch = NULL;
          }
          bytes += c->len;
          lmq__chunk_unref(env, c);
          c = next;
        }
        env->ckpt_bytes += bytes;
      }
    }
    /* Checkpoints run only here, so segments are retired by one thread. A
     * failed checkpoint is reported but loses nothing: the WAL stays. */
    int crc = 0;
    if (!rc && (want_ckpt || env->ckpt_bytes >= env->opt.checkpoint_bytes))
      crc = checkpoint(env);
    pthread_mutex_lock(&env->app_mu);
    if (list && rc) {
      /* Put the chunks back in front: they stay in the tails and the WAL,
       * and the apply is retried on the next round. */
      chunk *t = list;
      while (t->next)
        t = t->next;
      t->next = env->aq_head;
      env->aq_head = list;
      if (!env->aq_tail)
        env->aq_tail = t;
    }
    env->app_err = rc ? rc : crc;
    env->unapplied -= bytes;
    if (want_flush)
      env->flush_done = req; /* done, or failed: the flusher reads app_err */
    pthread_cond_broadcast(&env->app_done);
    if (rc && !env->stop) {
      /* Back off a little before retrying a failing apply. */
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 20 * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&env->app_cond, &env->app_mu, &ts);
    }
    if (env->stop && !env->aq_head)
      break;
    if (env->stop && rc)
      break; /* cannot make progress; close reports it */
  }
  pthread_mutex_unlock(&env->app_mu);
  return NULL;
}

int lmq__apply_flush(lmq_env *env, int ckpt) {
  int rc = lmq__wal_barrier(env);
  if (rc)
    return rc;
  pthread_mutex_lock(&env->app_mu);
  uint64_t req = ++env->flush_req;
  if (ckpt)
    env->ckpt_req = req;
  pthread_cond_signal(&env->app_cond);
  while (env->flush_done < req)
    pthread_cond_wait(&env->app_done, &env->app_mu);
  rc = env->app_err;
  pthread_mutex_unlock(&env->app_mu);
  if (rc)
    return lmq__error(rc, "applying the WAL to LMDB failed: %s",
                      lmq_strerror(rc));
  return 0;
}

/* --------------------------------------------------------------------- */
/* Open / close                                                          */

static int check_options(const lmq_env_options *o) {
  if (o->version != LMQ_ENV_OPTIONS_VERSION)
    return lmq__error(LMQ_EINVAL, "options version %u, expected %u (use "
                      "LMQ_ENV_OPTIONS_INIT)", o->version, LMQ_ENV_OPTIONS_VERSION);
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
  return 0;
}

static int mkdir_p(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST)
    return 0;
  return lmq__error(lmq__errno_code(errno), "mkdir %s: %s", path, strerror(errno));
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
  lmq__chunk_free_all(env);
  lmq__unlock_dir(env->lockfd);
  pthread_mutex_destroy(&env->reg_mu);
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

static void env_shutdown(lmq_env *env);

LMQ_API int lmq_env_open(lmq_env **out, const char *dir,
                         const lmq_env_options *opts) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "lmq_env_open: out is NULL");
  *out = NULL;
  if (!dir || !*dir)
    return lmq__error(LMQ_EINVAL, "lmq_env_open: directory is NULL or empty");
  lmq_env_options def = LMQ_ENV_OPTIONS_INIT;
  const lmq_env_options *o = opts ? opts : &def;
  int rc = check_options(o);
  if (rc)
    return rc;
  lmq_env *env = calloc(1, sizeof *env);
  if (!env)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  env->opt = *o;
  if (!env->opt.max_message_size)
    env->opt.max_message_size = def.max_message_size;
  env->opt.meta_uri = NULL; /* not kept: the caller owns the string */
  env->lockfd = -1;
  env->wal_fd = -1;
  pthread_mutex_init(&env->reg_mu, NULL);
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
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  snprintf(env->waldir, dl + 5, "%s/wal", dir);

  char path[PATH_MAX];
  if ((rc = mkdir_p(dir)) || (rc = mkdir_p(env->waldir)))
    goto fail;
  snprintf(path, sizeof path, "%s/LOCK", dir);
  if ((rc = lmq__lock_dir(&env->lockfd, path)))
    goto fail;

  if ((rc = mdb_env_create(&env->mdb))) {
    env->mdb = NULL;
    rc = lmq__mdb_code(rc, "mdb_env_create");
    goto fail;
  }
  mdb_env_set_maxdbs(env->mdb, o->max_channels + 4);
  mdb_env_set_mapsize(env->mdb, (size_t)o->map_size);
  mdb_env_set_maxreaders(env->mdb, 1022);
  /* NOMETASYNC: each apply commit syncs data pages but not the meta page,
   * so a power loss can at most undo the last apply (the WAL still has it);
   * checkpoints sync fully before WAL segments are deleted. */
  rc = mdb_env_open(env->mdb, dir, MDB_NOSUBDIR * 0 | MDB_NOTLS | MDB_NOMETASYNC,
                    0644);
  if (rc) {
    rc = lmq__mdb_code(rc, "open LMDB");
    goto fail;
  }
  {
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(env->mdb, NULL, 0, &txn))) {
      rc = lmq__mdb_code(rc, "open");
      goto fail;
    }
    rc = mdb_dbi_open(txn, "#sys", MDB_CREATE, &env->sysdbi);
    uint64_t ap[2] = {0, 0}, hwm = 0;
    if (!rc) {
      int e = sys_get_u64s(txn, env->sysdbi, SYS_APPLIED, ap, 2);
      if (e && e != MDB_NOTFOUND)
        rc = e;
      e = sys_get_u64s(txn, env->sysdbi, SYS_HWM, &hwm, 1);
      if (e && e != MDB_NOTFOUND)
        rc = e;
    }
    if (!rc)
      rc = lmq__chan_load_all(env, txn);
    if (rc) {
      mdb_txn_abort(txn);
      if (rc < 0)
        goto fail;
      rc = lmq__mdb_code(rc, "open");
      goto fail;
    }
    if ((rc = mdb_txn_commit(txn))) {
      rc = lmq__mdb_code(rc, "open");
      goto fail;
    }
    env->applied_seg = ap[0];
    env->applied_off = ap[1];
    if (hwm > env->last_id)
      env->last_id = hwm;
  }
  if ((rc = lmq_meta_open(&env->meta, o->meta_uri, env->mdb))) {
    env->meta = NULL;
    goto fail;
  }
  spares_scan(env);
  if ((rc = recover(env)))
    goto fail;
  {
    /* Groups come from the metadata store. */
    pthread_mutex_lock(&env->reg_mu);
    for (size_t h = 0; h < env->hcap && !rc; h++)
      for (lmq_chan *ch = env->htab[h]; ch && !rc; ch = ch->hnext)
        rc = lmq__groups_load(env, ch);
    pthread_mutex_unlock(&env->reg_mu);
    if (rc)
      goto fail;
  }
  if ((rc = lmq__wal_open_seg(env, env->wal_seg)))
    goto fail;
  env->last_ckpt_seg = env->wal_seg;
  env->pending = lmq__chunk_new(env, 1);
  if (!env->pending) {
    rc = lmq__error(LMQ_ENOMEM, "out of memory");
    goto fail;
  }
  env->last_sync_ns = lmq__mono_ns();
  if (pthread_create(&env->applier, NULL, applier_main, env) != 0) {
    rc = lmq__error(LMQ_ENOMEM, "cannot start the applier thread");
    goto fail;
  }
  env->applier_started = 1;
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
    if (!env->app_err && !atomic_load(&env->failed))
      checkpoint(env);
  }
  /* Chunks the applier could not take (apply failing) keep their data in
   * the WAL; recovery replays them on the next open. */
  for (chunk *c = env->aq_head; c;) {
    chunk *n = c->next;
    for (size_t i = 0; i < c->nrecs; i++)
      if (c->recs[i].ch)
        lmq__chan_put(env, c->recs[i].ch);
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
  return lmq__apply_flush(env, 1);
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
