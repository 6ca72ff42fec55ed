/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * recover.c - recovery on open: find where the WAL really ends, then replay
 * it after the applied position into LMDB.
 *
 * Two passes, so that a failure changes nothing:
 *  1. scan: read every segment from the applied position on and decide,
 *     per segment, which byte ranges hold the log. A segment ends at its END
 *     record. A segment without one ends at its first invalid record, and
 *     then the damage is either
 *       - a torn tail: nothing after it proves it was synced (no later
 *         segment exists, no later MARK names an offset past it): cut, as
 *         only unsynced (never acknowledged under ALWAYS) data can be there;
 *       - corruption: a later segment exists (segments roll only after an
 *         END and an fdatasync) or a later MARK says the damaged bytes had
 *         been synced. lmq_env_open fails with LMQ_ECORRUPT naming the
 *         place, unless LMQ_OPEN_SALVAGE asks to skip the damaged bytes.
 *  2. replay the ranges into LMDB, make it durable, and only then retire
 *     the segments: the env starts on a fresh segment.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A byte range of one segment that holds valid records to replay. */
typedef struct range {
  uint64_t seg;
  size_t from, to;
} range;

typedef struct plan {
  range *r;
  size_t n, cap;
} plan;

static int plan_add(plan *p, uint64_t seg, size_t from, size_t to) {
  if (from >= to)
    return 0;
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 16;
    range *nr = realloc(p->r, nc * sizeof *nr);
    if (!nr)
      return lmq__error(LMQ_ENOMEM, "out of memory");
    p->r = nr;
    p->cap = nc;
  }
  p->r[p->n++] = (range){seg, from, to};
  return 0;
}

static int read_seg(unsigned char **buf, size_t *len, lmq_env *env, uint64_t seg) {
  char path[PATH_MAX];
  lmq__wal_seg_path(path, sizeof path, env->waldir, seg);
  return lmq__read_file(buf, len, path, "WAL ", 0);
}

/* What follows a damaged spot at x: valid records of this segment found by
 * scanning byte by byte (a resync, as the length at x cannot be trusted). */
typedef struct after_bad {
  size_t first;     /* offset of the first valid record after x (0: none) */
  size_t last_end;  /* end of the last valid record found (x if none) */
  uint64_t records; /* valid records found */
  int synced_past;  /* a MARK says bytes past x had been synced */
} after_bad;

static void scan_after(after_bad *a, const unsigned char *buf, size_t len,
                       size_t x, uint64_t seg) {
  memset(a, 0, sizeof *a);
  a->last_end = x;
  uint32_t magic = lmq__wal_magic(seg);
  size_t y = x + 1;
  while (y + LMQ_WAL_HDR <= len) {
    lmq_wal_rec rec;
    if (lmq__get32(buf + y) != magic ||
        lmq__wal_decode(&rec, buf + y, len - y, seg) != LMQ_WAL_OK) {
      y++;
      continue;
    }
    if (!a->first)
      a->first = y;
    a->records++;
    a->last_end = y + rec.size;
    if (rec.type == LMQ_WAL_REC_MARK && rec.arg > x)
      a->synced_past = 1;
    y += rec.size;
  }
}

static void seg_name(char *buf, size_t len, uint64_t seg) {
  snprintf(buf, len, "wal/%016" PRIu64 ".log", seg);
}

/* Record a damaged region (salvage) or fail (no salvage). */
static int damaged(lmq_env *env, uint64_t seg, size_t off, uint64_t bytes,
                   const char *why) {
  lmq_recovery_report *rep = &env->recovery;
  char name[64];
  seg_name(name, sizeof name, seg);
  if (!(env->opt.flags & LMQ_OPEN_SALVAGE))
    return lmq__error(LMQ_ECORRUPT,
                      "%s/%s is corrupt at offset %zu (%s): data that had been "
                      "synced is damaged, so acknowledged messages may be "
                      "lost; nothing was changed. Open with LMQ_OPEN_SALVAGE "
                      "(lmq --salvage) to skip the damaged bytes",
                      env->dir, name, off, why);
  if (!rep->salvaged_regions) {
    rep->bad_segment = seg;
    rep->bad_offset = off;
  }
  rep->salvaged_regions++;
  rep->salvaged_bytes += bytes;
  return 0;
}

/*
 * Scan segment seg (k-th of the listed ones; later_exists when a higher
 * segment is on disk) from off. Adds its replay ranges to pl. Sets *tail
 * when the log ends inside this segment.
 */
static int scan_seg(lmq_env *env, plan *pl, uint64_t seg, size_t off,
                    int later_exists, int *tail) {
  unsigned char *buf;
  size_t len;
  int rc = read_seg(&buf, &len, env, seg);
  if (rc)
    return rc;
  lmq_recovery_report *rep = &env->recovery;
  rep->segments++;
  if (off > len) {
    /* Records can be applied to LMDB before their WAL bytes are synced
     * (INTERVAL, NONE), and that apply can become durable when their bytes
     * do not: then the segment ends before the applied position, and what
     * was lost is in LMDB. Not so if a later segment exists: this one was
     * synced whole when it rolled. */
    if (later_exists)
      rc = damaged(env, seg, len, off - len, "shorter than the applied position, "
                   "though a later segment exists");
    else
      *tail = 1;
    free(buf);
    return rc;
  }
  size_t start = off;
  while (!rc) {
    lmq_wal_rec rec;
    int d = lmq__wal_decode(&rec, buf + off, len - off, seg);
    if (d == LMQ_WAL_OK) {
      off += rec.size;
      if (rec.type == LMQ_WAL_REC_END) {
        rc = plan_add(pl, seg, start, off);
        break; /* complete: the log goes on in the next segment */
      }
      continue;
    }
    /* The segment has no (valid) END: the log stops at off here. */
    if ((rc = plan_add(pl, seg, start, off)))
      break;
    after_bad a;
    scan_after(&a, buf, len, off, seg);
    if (!later_exists && !a.synced_past) {
      /* A torn tail, or simply the end. */
      size_t cut_end = a.last_end;
      if (d == LMQ_WAL_TORN && len - off >= LMQ_WAL_HDR) {
        uint64_t claimed = LMQ_WAL_HDR + (uint64_t)lmq__get32(buf + off + 4) +
                           LMQ_WAL_TRAILER;
        uint64_t e = claimed > len - off ? len : off + claimed;
        if (e > cut_end)
          cut_end = (size_t)e;
      }
      if (cut_end > off) {
        rep->cut_segment = seg;
        rep->cut_offset = off;
        rep->cut_bytes = cut_end - off;
        rep->cut_records = a.records;
      }
      *tail = 1;
      break;
    }
    const char *why = later_exists ? "a later segment exists, so this one was "
                                     "complete and synced"
                                   : "a later record says it was synced";
    if (a.first) {
      rc = damaged(env, seg, off, a.first - off, why);
      start = off = a.first;
      continue;
    }
    rc = damaged(env, seg, off, len - off, why);
    break;
  }
  free(buf);
  return rc;
}

/* Pass 1: the ranges of the log after the applied position. */
static int scan(lmq_env *env, plan *pl, const uint64_t *segs, size_t nseg) {
  uint64_t aseg = env->applied_seg, aoff = env->applied_off;
  size_t k = 0;
  while (k < nseg && segs[k] < aseg)
    k++;
  int present = k < nseg && segs[k] == aseg;
  if (aseg && !present && (aoff > 0 || k < nseg)) {
    /* The segment holding the applied position is gone, though data after
     * the applied offset, or a later segment, shows it existed. */
    int rc = damaged(env, aseg, (size_t)aoff, 0,
                     "the segment holding the applied position is missing");
    if (rc)
      return rc;
  }
  for (; k < nseg; k++) {
    if (k > 0 && segs[k - 1] >= aseg && segs[k] != segs[k - 1] + 1) {
      int rc = damaged(env, segs[k - 1] + 1, 0, 0,
                       "the segment is missing, though a later one exists");
      if (rc)
        return rc;
    }
    int tail = 0;
    size_t off = segs[k] == aseg ? (size_t)aoff : 0;
    int rc = scan_seg(env, pl, segs[k], off, k + 1 < nseg, &tail);
    if (rc)
      return rc;
    if (tail)
      break;
  }
  return 0;
}

static int replay_record(lmq_env *env, MDB_txn *txn, const lmq_wal_rec *rec) {
  lmq_recovery_report *rep = &env->recovery;
  /* IDs are never reused, not even those of a destroyed channel. */
  lmq_id lastid = rec->first_id + rec->count - 1;
  if (lastid > env->last_id)
    env->last_id = lastid;
  pthread_mutex_lock(&env->reg_mu);
  lmq_chan *ch = lmq__chan_lookup_locked(env, rec->name, rec->name_len);
  pthread_mutex_unlock(&env->reg_mu);
  if (!ch || ch->incarnation != rec->incarnation) {
    rep->dropped_records++; /* destroyed (and maybe re-created) since */
    return 0;
  }
  rep->records++;
  /* The applied position is exact, but never let a replay duplicate. */
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, ch->dbi, &cur);
  if (rc)
    return rc;
  MDB_val k, v;
  lmq_id last = 0;
  uint64_t ord = 0;
  if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && lmq__key_valid(&k))
    last = lmq__key_last_id(&k);
  if ((rc = lmq__key_next_ord(cur, &ord))) {
    mdb_cursor_close(cur);
    return rc;
  }
  size_t pos = 0, at = 0, from = 0;
  const unsigned char *data;
  uint32_t len, n = 0;
  lmq_id id = rec->first_id, from_id = 0;
  while (!rc && (at = pos, lmq__wal_rec_next(rec, &pos, &data, &len))) {
    if (id > last) {
      if (!rec->varlen) { /* u32 lengths (an older lmq's WAL): one by one */
        rc = lmq__store_put1(cur, id, &ord, data, len);
      } else if (!n) {
        from = at; /* where this message's length starts */
        from_id = id;
      }
      n++;
      ch->abytes += len;
      rep->messages++;
    }
    if (id > ch->last_id)
      ch->last_id = id;
    id++;
  }
  /* The messages not yet stored, as the applier stores them (store.h). */
  if (!rc && rec->varlen && n)
    rc = lmq__store_append(cur, from_id, &ord, rec->msgs + from, n, env->run_max);
  mdb_cursor_close(cur);
  return rc;
}

/* Pass 2: replay the planned ranges; bounded transactions. */
static int replay(lmq_env *env, const plan *pl, MDB_txn **txnp) {
  unsigned char *buf = NULL;
  size_t len = 0;
  uint64_t have = UINT64_MAX;
  size_t txn_bytes = 0;
  int rc = 0;
  for (size_t i = 0; i < pl->n && !rc; i++) {
    const range *r = &pl->r[i];
    if (r->seg != have) {
      free(buf);
      buf = NULL;
      if ((rc = read_seg(&buf, &len, env, r->seg)))
        break;
      have = r->seg;
    }
    size_t off = r->from;
    while (off < r->to && off < len) {
      lmq_wal_rec rec;
      if (lmq__wal_decode(&rec, buf + off, len - off, r->seg) != LMQ_WAL_OK) {
        rc = lmq__error(LMQ_EIO, "WAL segment %" PRIu64 " changed during "
                        "recovery (offset %zu)", r->seg, off);
        break;
      }
      off += rec.size;
      env->recovery.bytes += rec.size;
      if (rec.type != LMQ_WAL_REC_PRODUCE)
        continue;
      int e;
      if (!*txnp && (e = mdb_txn_begin(env->mdb, NULL, 0, txnp))) {
        *txnp = NULL;
        rc = lmq__mdb_code(e, "recovery");
        break;
      }
      if ((e = replay_record(env, *txnp, &rec))) {
        rc = lmq__mdb_code(e, "recovery replay");
        break;
      }
      txn_bytes += rec.size;
      if (txn_bytes > ((size_t)64 << 20)) {
        /* Keep replay transactions bounded; the applied position moves
         * only at the end, and replay_record skips what is already in. */
        e = mdb_txn_commit(*txnp);
        *txnp = NULL;
        txn_bytes = 0;
        if (e)
          rc = lmq__mdb_code(e, "recovery commit");
      }
    }
  }
  free(buf);
  return rc;
}

static void summarize(lmq_env *env) {
  lmq_recovery_report *r = &env->recovery;
  char *s = r->summary;
  size_t n = sizeof r->summary, l = 0;
  if (r->records || r->dropped_records)
    l += (size_t)snprintf(s + l, n - l, "replayed %" PRIu64 " WAL records (%" PRIu64
                          " messages) from %" PRIu64 " segments",
                          r->records, r->messages, r->segments);
  if (r->cut_bytes && l < n)
    l += (size_t)snprintf(s + l, n - l, "%scut a torn tail at segment %" PRIu64
                          " offset %" PRIu64 " (%" PRIu64 " bytes, %" PRIu64
                          " later records never synced)",
                          l ? "; " : "", r->cut_segment, r->cut_offset,
                          r->cut_bytes, r->cut_records);
  if (r->salvaged_regions && l < n)
    snprintf(s + l, n - l, "%sSALVAGE skipped %" PRIu64 " damaged regions (%" PRIu64
             " bytes), the first at segment %" PRIu64 " offset %" PRIu64,
             l ? "; " : "", r->salvaged_regions, r->salvaged_bytes,
             r->bad_segment, r->bad_offset);
}

/* Pass 2's end: the applied position moves to a fresh segment, with the
 * high-water mark and every channel's record, durably. */
static int finish(lmq_env *env, MDB_txn *txn, uint64_t new_seg) {
  int e = 0;
  if (!txn && (e = mdb_txn_begin(env->mdb, NULL, 0, &txn)))
    return lmq__mdb_code(e, "recovery");
  uint64_t nap[2] = {new_seg, 0};
  e = lmq__sys_put(txn, env->sysdbi, SYS_APPLIED, nap, 2);
  if (!e)
    e = lmq__sys_put(txn, env->sysdbi, SYS_HWM, &env->last_id, 1);
  pthread_mutex_lock(&env->reg_mu);
  for (size_t h = 0; h < env->hcap && !e; h++)
    for (lmq_chan *ch = env->htab[h]; ch && !e; ch = ch->hnext)
      e = lmq__chan_sys_put(env, txn, ch, ch->abytes);
  pthread_mutex_unlock(&env->reg_mu);
  if (e) {
    mdb_txn_abort(txn);
    return lmq__mdb_code(e, "recovery");
  }
  if ((e = mdb_txn_commit(txn)))
    return lmq__mdb_code(e, "recovery commit");
  int rc = lmq__mdb_durable(env, "recovery");
  if (rc)
    return rc;
  env->applied_seg = new_seg;
  env->applied_off = 0;
  return 0;
}

int lmq__recover(lmq_env *env) {
  uint64_t *segs = NULL;
  size_t nseg = 0;
  plan pl = {0};
  MDB_txn *txn = NULL;
  memset(&env->recovery, 0, sizeof env->recovery);
  env->recovery.size = sizeof env->recovery;
  int rc = lmq__wal_list(&segs, &nseg, env->waldir);
  if (!rc)
    rc = scan(env, &pl, segs, nseg);
  if (!rc)
    rc = replay(env, &pl, &txn);
  uint64_t max_seg = env->applied_seg;
  for (size_t i = 0; i < nseg; i++)
    if (segs[i] > max_seg)
      max_seg = segs[i];
  if (!rc) {
    rc = finish(env, txn, max_seg + 1);
    txn = NULL;
  }
  if (!rc) {
    /* Only now may segments go: recovery has succeeded and is durable. */
    char path[PATH_MAX];
    for (size_t i = 0; i < nseg; i++) {
      lmq__wal_seg_path(path, sizeof path, env->waldir, segs[i]);
      lmq__wal_retire(env, path);
    }
    if (nseg)
      rc = lmq__wal_sync_dir(env);
    env->wal_seg = max_seg + 1;
    summarize(env);
  }
  if (txn)
    mdb_txn_abort(txn);
  free(pl.r);
  free(segs);
  return rc;
}
