/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * wal_seg.c - WAL segment files: creating, rolling, recycling (spare.N) and
 * retiring them.
 *
 * Durability of names: a segment is created (or a spare renamed to it) and
 * DIR/wal is fsynced before any record goes into it, so a record that
 * fdatasync made durable is always reachable by its name. A segment rolls
 * only after an END record and an fdatasync: a later segment existing on
 * disk proves every earlier one is complete (recovery relies on it).
 *
 * Overwriting beats appending: an fdatasync after an append must commit
 * the file's new size and blocks to the journal as well, one after an
 * overwrite of allocated blocks writes only the data (on this machine's
 * ext4, 4 KiB + fdatasync: ~5,600/s appending, ~9,200/s overwriting;
 * bench/README.md). Retired segments are kept as spares and overwritten.
 * A new env has none, so when small synced writes append as fast as the
 * disk syncs (sync_dense) the applier zero-fills a spare
 * (lmq__wal_spare_make) and the next write rolls to it
 * (lmq__wal_roll_early). Batched, unsynced or slow writes never pay for
 * the zeros. Zeros and a recycled file's old records (another
 * segment's magic and seed) read as the end of the log.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SPARES 2
#define DENSE_BYTES ((uint64_t)16 << 10)
#define DENSE_SYNCS_MAX 64u /* fewer for small segments: segment / 8 KiB */
#define ZERO_STEP 4096 /* zero-fill page by page: small page-cache folios,
                          so later small writes dirty small folios */
#define ZERO_SYNC ((uint64_t)256 << 10) /* ...and sync every 256 KiB */

static void spare_path(char *buf, size_t len, const char *waldir, int i) {
  snprintf(buf, len, "%s/spare.%d", waldir, i);
}

static void spare_tmp_path(char *buf, size_t len, const char *waldir) {
  snprintf(buf, len, "%s/spare.tmp", waldir);
}

void lmq__wal_spares_scan(lmq_env *env) {
  char path[PATH_MAX];
  spare_tmp_path(path, sizeof path, env->waldir);
  unlink(path); /* a spare cut short by a crash */
  env->nspares = 0;
  for (int i = 0; i < MAX_SPARES; i++) {
    spare_path(path, sizeof path, env->waldir, i);
    if (access(path, F_OK) != 0)
      break;
    env->nspares = i + 1;
  }
}

/* Keep the file as a spare for a later segment, or delete it. The caller
 * fsyncs DIR/wal afterwards (lmq__wal_sync_dir): until then the old name
 * may come back after a power loss, which is harmless, because a segment
 * is retired only once it lies wholly before the durable applied position. */
void lmq__wal_retire(lmq_env *env, const char *path) {
  char sp[PATH_MAX];
  /* A segment rolled early is short: writes into it would append again. */
  struct stat st;
  int full = stat(path, &st) == 0 &&
             (uint64_t)st.st_size >= env->opt.wal_segment_size / 4 * 3;
  pthread_mutex_lock(&env->io_mu);
  if (full && env->nspares < MAX_SPARES) {
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

int lmq__wal_sync_dir(lmq_env *env) {
  int e = lmq__sync_dir(env->waldir);
  if (e)
    return lmq__error(lmq__errno_code(e), "fsync %s: %s", env->waldir,
                      strerror(e));
  return 0;
}

/* Called with io_mu held (or before the env is shared). */
int lmq__wal_open_seg(lmq_env *env, uint64_t seq) {
  char path[PATH_MAX], sp[PATH_MAX];
  lmq__wal_seg_path(path, sizeof path, env->waldir, seq);
  int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  /* Reuse a spare: overwriting allocated blocks makes each fdatasync
   * cheaper than appending (no size or extent change to journal). Its old
   * records carry another segment's magic and seed: they read as "no
   * record here", never as records of this segment. */
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
  int rc = lmq__wal_sync_dir(env);
  if (rc) {
    close(fd);
    return rc;
  }
  struct stat st;
  env->wal_alloc_end = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  env->wal_seg_syncs = 0;
  env->seg_gap_ns = env->seg_sync_ns = 0;
  if (env->wal_fd >= 0)
    close(env->wal_fd);
  env->wal_fd = fd;
  env->wal_seg = seq;
  env->wal_off = 0;
  env->wal_synced_off = 0;
  env->wal_mark_off = 0;
  env->wal_ended = 0;
  return 0;
}

/* Small synced writes are appending to this segment (io_mu held), and
 * the disk's sync rate is what holds the producers back: in this segment
 * the time between syncs is under half the time in them (one thread in a
 * loop), or producers queue behind the syncs (records per sync: 30 with
 * 32 threads, where waking them makes the gaps as long as a sync).
 * Producers slower than the disk would gain little, and the zero fill's
 * writes would make some of them wait: in the open-loop latency run
 * (2,000 synced produces a second, one record per sync, gaps as long as
 * the syncs) filling a 16 MiB spare took p99 from 446 us to 1.8 ms and
 * p99.9 from 1.5 to 15 ms. */
static int sync_dense(const lmq_env *env) {
  uint64_t min = env->opt.wal_segment_size >> 13;
  if (min > DENSE_SYNCS_MAX)
    min = DENSE_SYNCS_MAX;
  return env->wal_off > env->wal_alloc_end && env->wal_seg_syncs >= min &&
         env->wal_off < env->wal_seg_syncs * DENSE_BYTES &&
         (env->seg_gap_ns * 2 < env->seg_sync_ns || env->sync_recs_avg >= 3 * 16);
}

int lmq__wal_roll_early(const lmq_env *env) {
  return env->nspares > 0 && !env->wal_ended && sync_dense(env);
}

/*
 * Make a zero-filled spare (the applier, no lock held): written as
 * spare.tmp page by page and fdatasynced before it is renamed to spare.N,
 * so a spare is always whole. Its name need not be durable: a spare lost
 * to a power loss is only a spare less, and the directory is fsynced when
 * a segment is made of it. Errors (a full disk) are not reported: the WAL
 * goes on appending, and no zero fill is tried again until the next
 * segment.
 */
void lmq__wal_spare_make(lmq_env *env) {
  if (!atomic_exchange(&env->spare_wanted, 0))
    return;
  pthread_mutex_lock(&env->io_mu);
  int have = env->nspares;
  pthread_mutex_unlock(&env->io_mu);
  if (have)
    return;
  char tmp[PATH_MAX], sp[PATH_MAX];
  spare_tmp_path(tmp, sizeof tmp, env->waldir);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    goto failed; /* e.g. out of inodes or descriptors: not every sync */
  static const unsigned char zero[ZERO_STEP];
  uint64_t size = env->opt.wal_segment_size;
  int e = 0;
  for (uint64_t off = 0; off < size && !e; off += ZERO_STEP) {
    e = lmq__pwrite_all(fd, zero, size - off < ZERO_STEP ? size - off : ZERO_STEP,
                        (off_t)off);
    /* In steps: one sync of the whole segment held the disk for tens of
     * milliseconds, and synced produces queued behind it. */
    if (!e && (off + ZERO_STEP) % ZERO_SYNC == 0)
      e = lmq__datasync(fd);
  }
  if (!e)
    e = lmq__datasync(fd);
  close(fd);
  if (!e) {
    pthread_mutex_lock(&env->io_mu);
    if (env->nspares < MAX_SPARES) {
      spare_path(sp, sizeof sp, env->waldir, env->nspares);
      if (rename(tmp, sp) == 0) {
        env->nspares++;
        pthread_mutex_unlock(&env->io_mu);
        return;
      }
    }
    pthread_mutex_unlock(&env->io_mu);
  }
  unlink(tmp);
failed:
  pthread_mutex_lock(&env->io_mu);
  env->spare_failed_seg = env->wal_seg; /* retried in the next segment */
  pthread_mutex_unlock(&env->io_mu);
}

/* fdatasync the current segment; on failure the env is failed for good
 * (the kernel may have dropped the dirty pages). io_mu held. */
int lmq__wal_sync(lmq_env *env) {
  uint64_t upto = env->wal_off;
  uint64_t t0 = lmq__mono_ns();
  int e = lmq__datasync(env->wal_fd);
  uint64_t dt = lmq__mono_ns() - t0;
  if (env->wal_seg_syncs) /* the first one's gap is the roll's */
    env->seg_gap_ns += t0 > env->last_sync_ns ? t0 - env->last_sync_ns : 0;
  env->seg_sync_ns += dt;
  if (e) {
    atomic_store(&env->failed, 1);
    return lmq__error(lmq__errno_code(e) == LMQ_ENOSPC ? LMQ_ENOSPC : LMQ_EIO,
                      "WAL fdatasync: %s", strerror(e));
  }
  uint64_t avg = atomic_load_explicit(&env->sync_ns_avg, memory_order_relaxed);
  atomic_store_explicit(&env->sync_ns_avg, avg ? (avg * 7 + dt) / 8 : dt,
                        memory_order_relaxed);
  env->wal_synced_off = upto;
  env->wal_seg_syncs++;
  int none = 0; /* 1: wanted, 2: the applier was woken for it */
  if (env->nspares == 0 && !(env->opt.flags & LMQ_OPEN_NO_WAL_ZERO_FILL) &&
      env->spare_failed_seg != env->wal_seg && sync_dense(env))
    atomic_compare_exchange_strong(&env->spare_wanted, &none, 1);
  env->interval_dirty = 0;
  env->last_sync_ns = lmq__mono_ns();
  atomic_fetch_add(&env->st_fsyncs, 1);
  return 0;
}

/*
 * Roll to the next segment (io_mu held): write an END record, fdatasync,
 * then create the next segment. A crash at any point leaves either the old
 * segment as the tail (END torn or missing: nothing after it was written)
 * or a complete old segment followed by the new one.
 */
int lmq__wal_roll(lmq_env *env) {
  if (env->wal_ended) /* an earlier roll could not create the next one */
    return lmq__wal_open_seg(env, env->wal_seg + 1);
  unsigned char end[LMQ_WAL_CTL_SIZE];
  lmq__wal_ctl(end, LMQ_WAL_REC_END, env->wal_seg + 1, env->wal_seg);
  int e = lmq__pwrite_all(env->wal_fd, end, sizeof end, (off_t)env->wal_off);
  if (e) {
    if (ftruncate(env->wal_fd, (off_t)env->wal_off) != 0)
      atomic_store(&env->failed, 1);
    return lmq__error(lmq__errno_code(e), "WAL write: %s", strerror(e));
  }
  env->wal_off += sizeof end;
  env->wal_live_bytes += sizeof end;
  int rc = lmq__wal_sync(env);
  if (rc)
    return rc;
  /* Nothing may follow the END in this segment from now on. */
  env->wal_ended = 1;
  return lmq__wal_open_seg(env, env->wal_seg + 1);
}

void lmq__wal_seg_path(char *buf, size_t len, const char *waldir, uint64_t seq) {
  snprintf(buf, len, "%s/%016" PRIu64 ".log", waldir, seq);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

int lmq__wal_list(uint64_t **out, size_t *n, const char *waldir) {
  DIR *d = opendir(waldir);
  if (!d)
    return lmq__error(lmq__errno_code(errno), "opendir %s: %s", waldir,
                      strerror(errno));
  size_t cnt = 0, cap = 0;
  uint64_t *arr = NULL;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *s = de->d_name;
    size_t l = strlen(s);
    if (l != 20 || strcmp(s + 16, ".log"))
      continue;
    uint64_t v = 0;
    int ok = 1;
    for (int i = 0; i < 16; i++) {
      if (s[i] < '0' || s[i] > '9') {
        ok = 0;
        break;
      }
      v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (!ok)
      continue;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 8;
      uint64_t *na = realloc(arr, cap * sizeof *na);
      if (!na) {
        free(arr);
        closedir(d);
        return lmq__error(LMQ_ENOMEM, "out of memory");
      }
      arr = na;
    }
    arr[cnt++] = v;
  }
  closedir(d);
  if (cnt)
    qsort(arr, cnt, sizeof *arr, cmp_u64);
  *out = arr;
  *n = cnt;
  return 0;
}
