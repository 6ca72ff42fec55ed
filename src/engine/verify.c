/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * verify.c - lmq_verify(): check a data directory without changing it.
 *
 * It opens the env read-only (which loads and range-checks the channel
 * records, the ID high-water mark and every group cursor), reads every page
 * of every channel's sub-database and of "#sys"/"#meta" through cursors (LMDB
 * reports a damaged page as MDB_CORRUPTED or MDB_PAGE_NOTFOUND), checks each
 * key is a valid message ID not above the channel's recorded newest, and
 * walks the WAL with recovery's torn-versus-corrupt rules (walscan.c).
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void problem(lmq_verify_report *r, const char *fmt, ...)
    LMQ__PRINTF(2, 3);
static void problem(lmq_verify_report *r, const char *fmt, ...) {
  if (!r->problems++) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->first_problem, sizeof r->first_problem, fmt, ap);
    va_end(ap);
  }
}

/* Read every entry of dbi; for a channel (ch != NULL) check the keys. */
static void walk_db(lmq_verify_report *r, MDB_txn *txn, MDB_dbi dbi,
                    const char *what, const lmq_chan *ch) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc) {
    problem(r, "%s: %s", what, mdb_strerror(rc));
    return;
  }
  MDB_val k, v;
  lmq_id prev = 0;
  uint64_t ord, prev_ord = 0;
  int has_prev_ord = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!ch)
      continue;
    lmq__entry e;
    lmq_id id = lmq__entry_get(&e, &k, &v) ? 0 : e.id;
    if (id == 0 || id > LMQ_ID_MAX || id <= prev ||
        e.count - 1 > LMQ_ID_MAX - id) {
      problem(r, "channel '%s': bad message key (size %zu, id %" PRIu64 ")",
              ch->name, k.mv_size, id);
      break;
    }
    /* Ordinals of the messages present are consecutive (key.h): group lag
     * is computed from them. */
    int has_ord = lmq__key_ord(&k, &ord);
    if (has_ord && has_prev_ord && ord != prev_ord) {
      problem(r, "channel '%s': message %" PRIu64 " has ordinal %" PRIu64
              ", expected %" PRIu64, ch->name, id, ord, prev_ord);
      break;
    }
    /* A run holds exactly its count of messages (store.h). */
    uint64_t eb;
    if (lmq__entry_bytes(&e, &eb)) {
      problem(r, "channel '%s': the run of %" PRIu32 " messages at %" PRIu64
              " is malformed", ch->name, e.count, id);
      break;
    }
    has_prev_ord = has_ord;
    prev_ord = has_ord ? ord + e.count : 0; /* the next entry's */
    prev = id + e.count - 1;
    r->messages += e.count;
    r->bytes += eb;
  }
  if (rc && rc != MDB_NOTFOUND)
    problem(r, "%s: %s", what, mdb_strerror(rc));
  else if (ch && prev > ch->last_id)
    problem(r, "channel '%s': message %" PRIu64 " is above the recorded newest "
            "%" PRIu64, ch->name, prev, ch->last_id);
  mdb_cursor_close(cur);
}

static void check_lmdb(lmq_verify_report *r, lmq_env *env) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
  if (rc) {
    problem(r, "LMDB: %s", mdb_strerror(rc));
    return;
  }
  walk_db(r, txn, env->sysdbi, "#sys", NULL);
  MDB_dbi mdbi;
  if (mdb_dbi_open(txn, "#meta", 0, &mdbi) == 0)
    walk_db(r, txn, mdbi, "#meta", NULL);
  size_t n = 0;
  lmq_chan **list = lmq__chan_snapshot(env, &n, 0);
  if (!list && n) {
    problem(r, "out of memory");
  }
  for (size_t i = 0; list && i < n; i++) {
    r->channels++;
    walk_db(r, txn, list[i]->dbi, list[i]->name, list[i]);
    char **groups = NULL;
    size_t ng = 0;
    if (lmq_group_list(&groups, &ng, env, list[i]->name) == 0)
      r->groups += ng;
    lmq_strv_free(groups);
  }
  if (list)
    lmq__chan_release(env, list, n);
  mdb_txn_abort(txn);
}

static int wal_entry(void *arg, const lmq_wal_entry *e) {
  void **a = arg;
  lmq_verify_report *r = a[0];
  uint64_t *last_seg = a[1];
  if (*last_seg != e->segment + 1) {
    *last_seg = e->segment + 1;
    r->wal_segments++;
  }
  if (e->kind == LMQ_WAL_DAMAGE) {
    if (e->corrupt)
      problem(r, "wal/%016" PRIu64 ".log is corrupt at offset %" PRIu64
              " (%" PRIu64 " bytes do not verify and acknowledged data "
              "follows)", e->segment, e->offset, e->bytes);
    else if (!e->applied)
      r->torn_bytes += e->bytes;
    return 0;
  }
  r->wal_records++;
  if (!e->applied && e->kind == LMQ_WAL_PRODUCE)
    r->wal_unapplied += e->bytes;
  return 0;
}

static int verify_once(lmq_verify_report *out, const char *dir) {
  lmq_verify_report r = LMQ_VERIFY_REPORT_INIT;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.flags = LMQ_OPEN_RDONLY;
  lmq_env *env = NULL;
  uint64_t aseg = 0, aoff = 0;
  int rc = lmq_env_open(&env, dir, &o);
  if (rc == LMQ_ECORRUPT) {
    problem(&r, "%s", lmq_errmsg());
  } else if (rc) {
    *out = r;
    return rc;
  } else {
    aseg = env->applied_seg;
    aoff = env->applied_off;
    check_lmdb(&r, env);
  }
  uint64_t last_seg = 0;
  void *a[2] = {&r, &last_seg};
  if (env) {
    rc = lmq__wal_scan(env->waldir, aseg, aoff, 0, wal_entry, a);
    lmq_env_close(env);
  } else {
    char waldir[4096];
    snprintf(waldir, sizeof waldir, "%s/wal", dir);
    rc = lmq__wal_scan(waldir, aseg, aoff, 0, wal_entry, a);
  }
  *out = r;
  if (rc)
    return rc;
  if (r.problems)
    return lmq__error(LMQ_ECORRUPT, "%s", r.first_problem);
  return 0;
}

/*
 * Beside a running writer the applied position is read before the WAL, so
 * a checkpoint in between can retire a segment the scan then misses (or the
 * applier can move past what was read): a problem is reported only if it is
 * still there when the whole check is made again.
 */
LMQ_API int lmq_verify(lmq_verify_report *out, const char *dir) {
  lmq__error_clear();
  if (!out || out->size < sizeof *out)
    return lmq__error(LMQ_EINVAL, "out is NULL or out->size is too small "
                      "(use LMQ_VERIFY_REPORT_INIT)");
  if (!dir || !*dir)
    return lmq__error(LMQ_EINVAL, "dir is NULL or empty");
  int rc = LMQ_ECORRUPT;
  for (int attempt = 0; attempt < 3 && rc == LMQ_ECORRUPT; attempt++)
    rc = verify_once(out, dir);
  return rc;
}
