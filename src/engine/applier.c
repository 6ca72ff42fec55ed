/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * applier.c - the applier thread: moves written WAL chunks into LMDB,
 * runs checkpoints, interval fsyncs, retention and auto-commit.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int apply_chunks(lmq_env *env, chunk *list, uint64_t epoch) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (rc)
    return lmq__mdb_code(rc, "apply");
  chunk *last = NULL;
  /* One cursor per run of records of the same channel: with one message per
   * record (single-message produce) opening a cursor per record was a large
   * share of the apply. */
  MDB_cursor *cur = NULL;
  lmq_chan *cur_ch = NULL;
  for (chunk *c = list; c; c = c->next) {
    last = c;
    for (size_t i = 0; i < c->nrecs; i++) {
      rec_ref *r = &c->recs[i];
      lmq_chan *ch = r->ch;
      /* A channel being destroyed is applied like any other: until its
       * drop is committed a crash must find every acknowledged message of
       * it. Once the drop is committed (dropped is set inside that write
       * transaction, so no apply transaction can be open meanwhile), its
       * sub-database is gone and its records are skipped: recovery would
       * skip them too, the channel being gone. */
      if (atomic_load(&ch->dropped))
        continue;
      if (ch != cur_ch) {
        if (cur)
          mdb_cursor_close(cur);
        cur = NULL;
        cur_ch = NULL;
        if ((rc = mdb_cursor_open(txn, ch->dbi, &cur)))
          goto fail;
        cur_ch = ch;
      }
      if (ch->apply_epoch != epoch) {
        /* First record of the channel in this transaction: ordinals go on
         * from the last key's (see key.h). */
        if ((rc = lmq__key_next_ord(cur, &ch->apply_ord)))
          goto fail;
        ch->apply_epoch = epoch;
        ch->apply_add = 0;
        ch->apply_written = 0;
      }
      if ((rc = lmq__store_append(cur, r->first_id, &ch->apply_ord, c->buf + r->off,
                                  r->count, env->run_max)))
        goto fail;
      ch->apply_add += r->bytes;
    }
  }
  if (cur)
    mdb_cursor_close(cur);
  cur = NULL;
  /* Persist the counters of every channel touched, once each. */
  for (chunk *c = list; c; c = c->next)
    for (size_t i = 0; i < c->nrecs; i++) {
      lmq_chan *ch = c->recs[i].ch;
      if (ch->apply_written || atomic_load(&ch->dropped))
        continue;
      ch->apply_written = 1;
      if ((rc = lmq__chan_sys_put(env, txn, ch, ch->abytes + ch->apply_add)))
        goto fail;
    }
  {
    uint64_t ap[2] = {last->seg, last->end_off};
    if ((rc = lmq__sys_put(txn, env->sysdbi, SYS_APPLIED, ap, 2)))
      goto fail;
    lmq_id hwm;
    pthread_mutex_lock(&env->wal_mu);
    hwm = env->last_id;
    pthread_mutex_unlock(&env->wal_mu);
    if ((rc = lmq__sys_put(txn, env->sysdbi, SYS_HWM, &hwm, 1)))
      goto fail;
  }
  lmq__mdb_pages_ahead(env);
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
  if (cur)
    mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  for (chunk *c = list; c; c = c->next)
    for (size_t i = 0; i < c->nrecs; i++) {
      c->recs[i].ch->apply_written = 0;
      c->recs[i].ch->apply_add = 0;
      c->recs[i].ch->apply_epoch = 0;
    }
  return lmq__mdb_code(rc, "apply");
}


int lmq__checkpoint(lmq_env *env) {
  int rc = mdb_env_sync(env->mdb, 1);
  if (rc)
    return lmq__mdb_code(rc, "checkpoint sync");
  lmq__committer_kick(env); /* mirror the ID high-water mark, off this thread */
  /* Every segment before the applied one is fully in LMDB now. */
  uint64_t *segs;
  size_t n;
  if ((rc = lmq__wal_list(&segs, &n, env->waldir)))
    return rc;
  char path[PATH_MAX];
  uint64_t freed = 0;
  size_t retired = 0;
  for (size_t i = 0; i < n; i++) {
    if (segs[i] >= env->applied_seg)
      break;
    lmq__wal_seg_path(path, sizeof path, env->waldir, segs[i]);
    struct stat st;
    if (stat(path, &st) == 0)
      freed += (uint64_t)st.st_size;
    lmq__wal_retire(env, path);
    retired++;
  }
  free(segs);
  /* Not needed for correctness (a retired name that comes back lies before
   * the applied position and is skipped), but it keeps spare.N and the
   * segment names consistent on disk. */
  if (retired && (rc = lmq__wal_sync_dir(env)))
    return rc;
  pthread_mutex_lock(&env->io_mu);
  env->wal_live_bytes = env->wal_live_bytes > freed ? env->wal_live_bytes - freed : 0;
  pthread_mutex_unlock(&env->io_mu);
  env->ckpt_bytes = 0;
  return 0;
}

static void interval_sync(lmq_env *env, uint64_t now) {
  pthread_mutex_lock(&env->io_mu);
  if (env->wal_fd >= 0 && env->interval_dirty &&
      env->wal_synced_off < env->wal_off &&
      now - env->last_sync_ns >= (uint64_t)env->opt.sync_interval_ms * 1000000u)
    lmq__wal_sync(env); /* a failure fails the env; producers see it */
  pthread_mutex_unlock(&env->io_mu);
}

/* The bytes of the queue's chunks queued at or before `cutoff` (the ones
 * that have aged past the lull limit). app_mu held. */
static uint64_t aged_bytes(const lmq_env *env, uint64_t cutoff) {
  uint64_t bytes = 0;
  for (const chunk *c = env->aq_head; c && c->queued_ns <= cutoff; c = c->next)
    bytes += c->len;
  return bytes;
}

/*
 * The next batch to apply: the whole queue when a flush (or close) wants
 * everything, else a prefix of at most limit bytes (at least one chunk;
 * apply_bytes, or less for a paced apply), so that transactions stay
 * bounded and retention interleaves with applies. app_mu held.
 */
static chunk *take_batch(lmq_env *env, int all, uint64_t limit) {
  chunk *list = env->aq_head;
  if (!list)
    return NULL;
  if (all) {
    env->aq_head = env->aq_tail = NULL;
    return list;
  }
  chunk *last = list;
  uint64_t bytes = list->len;
  while (last->next && bytes + last->next->len <= limit) {
    last = last->next;
    bytes += last->len;
  }
  env->aq_head = last->next;
  if (!env->aq_head)
    env->aq_tail = NULL;
  last->next = NULL;
  return list;
}

/* Interval fsyncs and retention, on their own clocks (no lock held).
 * Returns the bytes retention freed. */
static uint64_t duties(lmq_env *env, uint64_t *last_retention, int map_full) {
  uint64_t now = lmq__mono_ns();
  interval_sync(env, now);
  lmq__wal_spare_make(env);
  /* Age limits are checked once a second; a byte limit as soon as an apply
   * crossed it, so what is retained stays within the limit plus about one
   * apply at any produce rate. */
  uint64_t every = map_full ? 20000000u : 1000000000u;
  uint64_t freed = 0;
  if (now - *last_retention >= every || lmq__chan_over_limit(env)) {
    lmq__chan_retention(env, lmq__now_ms(), &freed);
    /* On a full map the apply that failed can use the freed pages only
     * once two more transactions have committed (see lmq__sys_touch). */
    if (map_full && freed) {
      lmq__sys_touch(env);
      lmq__sys_touch(env);
    }
    *last_retention = now;
  }
  return freed;
}

/* A timed apply waits for a lull: apply_interval_ms with no new chunk
 * queued. Every apply commit fdatasyncs data.mdb (MDB_NOMETASYNC), and that
 * sync shares the disk with the WAL's: under a steady synced load at a low
 * rate (2000 single-message produces a second), applying every
 * apply_interval_ms put an LMDB sync (often with a journal commit, as the
 * file grows) next to a WAL sync 20 times a second, and those produces made
 * the latency tail. Nothing needs the applies sooner: the WAL is the
 * durable copy, consumers read the tails, and under load apply_bytes and
 * max_unapplied / 2 (lmq__apply_due) still start an apply, which keeps
 * memory, retention and recovery bounded as before. A queue that never
 * sees a lull is applied at the latest when its oldest chunk has waited
 * this many apply intervals (5 s by default), so a read-only opener is
 * never that far behind. */
#define APPLY_LULL_MAX 100u
/* Such an apply is paced: at most one every APPLY_PACE_NS, taking the
 * chunks that have aged past the limit, but at least APPLY_PACE_MIN bytes
 * (and at most apply_bytes). A steady stream that never pauses is then
 * applied in pieces spread out at its own rate, ~70 KB four times a second
 * at 2000 141-byte messages a second, rather than 5 s of it (1.4 MB) at
 * once: a WAL sync that meets an apply's sync waits for ~0.5 ms of writes
 * instead of ~10 ms. In bench_suite's latency row lmq's p99.9 over
 * RocksDB's went from 1.06 to 0.80 (medians of three alternating runs,
 * bench/README.md). Above apply_bytes / 5 s (0.8 MB/s by default)
 * apply_bytes starts the applies before anything ages, as before. */
#define APPLY_PACE_NS 250000000u
#define APPLY_PACE_MIN ((uint64_t)64 << 10)
/* Once the queue has been empty this long after a load, the memory the load
 * used is given back (lmq__chunk_trim). */
#define TRIM_IDLE_NS 1000000000u
/* A failing apply (full map, full disk) is retried after this, doubling up
 * to the maximum: a wedged env costs next to no CPU, and anything that can
 * free space (destroy, retention settings, close) wakes the applier. */
#define RETRY_MIN_MS 20
#define RETRY_MAX_MS 1000

void *lmq__applier_main(void *arg) {
  lmq_env *env = arg;
  uint64_t epoch = 0, last_retention = 0, last_work = lmq__mono_ns(), last_paced = 0;
  unsigned retry_ms = RETRY_MIN_MS;
  pthread_mutex_lock(&env->app_mu);
  for (;;) {
    uint64_t now = lmq__mono_ns();
    uint64_t interval = (uint64_t)env->opt.apply_interval_ms * 1000000u;
    uint64_t age = interval * APPLY_LULL_MAX;
    int want_flush = env->flush_req > env->flush_done;
    /* Due in full: by size, flush, close or a lull. Else due only by the
     * queue's age, and then paced. */
    int full = want_flush || env->stop ||
               (env->aq_head && (lmq__apply_due(env) ||
                                 now - env->aq_tail->queued_ns >= interval));
    int aged = env->aq_head && now - env->aq_head->queued_ns >= age;
    int due = env->aq_head && (full || (aged && now - last_paced >= APPLY_PACE_NS));
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
      int trim = !env->aq_head && env->freed_since_trim &&
                 lmq__mono_ns() - last_work >= TRIM_IDLE_NS;
      if (trim)
        env->freed_since_trim = 0;
      pthread_mutex_unlock(&env->app_mu);
      duties(env, &last_retention, 0);
      if (trim)
        lmq__chunk_trim(env);
      pthread_mutex_lock(&env->app_mu);
      continue;
    }
    uint64_t req = env->flush_req;
    int want_ckpt = env->ckpt_req > env->flush_done;
    uint64_t limit = env->opt.apply_bytes;
    if (!full) {
      limit = aged_bytes(env, now > age ? now - age : 0);
      if (limit < APPLY_PACE_MIN)
        limit = APPLY_PACE_MIN;
      if (limit > env->opt.apply_bytes)
        limit = env->opt.apply_bytes;
      last_paced = now;
    }
    chunk *list = take_batch(env, want_flush || env->stop, limit);
    pthread_mutex_unlock(&env->app_mu);

    int rc = 0;
    uint64_t bytes = 0, mem = 0;
    if (list) {
      rc = apply_chunks(env, list, ++epoch);
      if (rc == 0) {
        chunk *c = list;
        while (c) {
          chunk *next = c->next;
          for (size_t i = 0; i < c->nrecs; i++) {
            lmq__chan_trim(c->recs[i].ch, c->recs[i].first_id + c->recs[i].count - 1);
            lmq__chan_put_queued(env, c->recs[i].ch);
            c->recs[i].ch = NULL;
          }
          bytes += c->len;
          mem += c->mem;
          lmq__chunk_unref(env, c);
          c = next;
        }
        env->ckpt_bytes += bytes;
        lmq__mem_applied(env, mem);
      }
    }
    /* Checkpoints run only here, so segments are retired by one thread. A
     * failed checkpoint is reported but loses nothing: the WAL stays. */
    int crc = 0;
    if (!rc && (want_ckpt || env->ckpt_bytes >= env->opt.checkpoint_bytes))
      crc = lmq__checkpoint(env);
    /* Under load the idle branch above never runs: do the timed duties
     * between applies too, and run retention at once when the map is full,
     * as it is what frees the pages the failing apply needs. */
    uint64_t freed = duties(env, &last_retention, rc == LMQ_EMAPFULL);
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
    env->unapplied_mem -= mem;
    env->freed_since_trim += mem;
    last_work = lmq__mono_ns();
    if (want_flush)
      env->flush_done = req; /* done, or failed: the flusher reads app_err */
    pthread_cond_broadcast(&env->app_done);
    if (rc == LMQ_EMAPFULL && freed) {
      retry_ms = RETRY_MIN_MS; /* retention made room: retry at once */
    } else if (rc && !env->stop) {
      /* Back off before retrying a failing apply (see RETRY_MAX_MS). */
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)retry_ms * 1000000u;
      ts.tv_sec += (time_t)(ns / 1000000000u);
      ts.tv_nsec = (long)(ns % 1000000000u);
      pthread_cond_timedwait(&env->app_cond, &env->app_mu, &ts);
      retry_ms = retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : retry_ms * 2;
    } else if (!rc) {
      retry_ms = RETRY_MIN_MS;
    }
    if (env->stop && !env->aq_head)
      break;
    if (env->stop && rc)
      break; /* cannot make progress; close reports it */
  }
  pthread_mutex_unlock(&env->app_mu);
  return NULL;
}

void lmq__applier_kick(lmq_env *env) {
  pthread_mutex_lock(&env->app_mu);
  pthread_cond_signal(&env->app_cond);
  pthread_mutex_unlock(&env->app_mu);
}

void lmq__applier_room_freed(lmq_env *env) {
  pthread_mutex_lock(&env->app_mu);
  int full = env->app_err == LMQ_EMAPFULL;
  pthread_mutex_unlock(&env->app_mu);
  /* A destroy used to be followed by the metadata store's own commits,
   * which happened to do this; it is one transaction now. */
  if (full) {
    lmq__sys_touch(env);
    lmq__sys_touch(env);
  }
  lmq__applier_kick(env);
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

