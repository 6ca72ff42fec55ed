/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * walscan.c - reading a WAL without recovering it: lmq_wal_scan() (lmq wal
 * dump, lmq verify) and the pending-byte count of a read-only open.
 *
 * The torn-versus-corrupt rules are recovery's (recover.c): after the
 * applied position, damage is corruption when a later segment exists (a
 * segment rolls only after its END was synced) or a later MARK of the same
 * segment says bytes past the damage had been synced; otherwise it is a torn
 * tail that recovery cuts. Damage before the applied position is reported
 * but never corruption: those records are in LMDB already.
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
#include <unistd.h>

typedef struct scan_ctx {
  uint64_t aseg, aoff; /* LMDB's applied position */
  lmq_wal_fn fn;
  void *arg;
} scan_ctx;

static int is_applied(const scan_ctx *c, uint64_t seg, uint64_t off) {
  return seg < c->aseg || (seg == c->aseg && off < c->aoff);
}

static int emit_damage(const scan_ctx *c, uint64_t seg, uint64_t off,
                       uint64_t bytes, int corrupt) {
  lmq_wal_entry e;
  memset(&e, 0, sizeof e);
  e.size = sizeof e;
  e.kind = LMQ_WAL_DAMAGE;
  e.segment = seg;
  e.offset = off;
  e.bytes = bytes;
  e.applied = is_applied(c, seg, off);
  e.corrupt = corrupt && !e.applied;
  return c->fn(c->arg, &e);
}

static int emit_rec(const scan_ctx *c, uint64_t seg, size_t off,
                    const unsigned char *at, const lmq_wal_rec *r) {
  lmq_wal_entry e;
  memset(&e, 0, sizeof e);
  e.size = sizeof e;
  e.kind = r->type == LMQ_WAL_REC_PRODUCE ? LMQ_WAL_PRODUCE
           : r->type == LMQ_WAL_REC_MARK  ? LMQ_WAL_MARK
                                          : LMQ_WAL_END;
  e.segment = seg;
  e.offset = off;
  e.bytes = r->size;
  e.checksum = lmq__get64(at + r->size - LMQ_WAL_TRAILER);
  e.arg = r->arg;
  e.applied = is_applied(c, seg, off);
  if (r->type == LMQ_WAL_REC_PRODUCE) {
    e.channel = r->name;
    e.channel_len = r->name_len;
    e.incarnation = r->incarnation;
    e.first_id = r->first_id;
    e.count = r->count;
    e.payload_bytes = r->msgs_len - 4ull * r->count;
  }
  return c->fn(c->arg, &e);
}

/* The first valid record after x (0: none); *synced_past if a MARK among
 * the valid records after x names an offset past x. */
static size_t next_valid(const unsigned char *buf, size_t len, size_t x,
                         uint64_t seg, int *synced_past) {
  size_t first = 0;
  uint32_t magic = lmq__wal_magic(seg);
  *synced_past = 0;
  for (size_t y = x + 1; y + LMQ_WAL_HDR <= len;) {
    lmq_wal_rec rec;
    if (lmq__get32(buf + y) != magic ||
        lmq__wal_decode(&rec, buf + y, len - y, seg) != LMQ_WAL_OK) {
      y++;
      continue;
    }
    if (!first)
      first = y;
    if (rec.type == LMQ_WAL_REC_MARK && rec.arg > x)
      *synced_past = 1;
    y += rec.size;
  }
  return first;
}

/* One segment's records and damage. */
static int scan_one(const scan_ctx *c, const unsigned char *buf, size_t len,
                    uint64_t seg, int later_exists) {
  size_t off = 0;
  int rc = 0;
  while (!rc && off < len) {
    lmq_wal_rec rec;
    int d = lmq__wal_decode(&rec, buf + off, len - off, seg);
    if (d == LMQ_WAL_OK) {
      if ((rc = emit_rec(c, seg, off, buf + off, &rec)))
        return rc;
      off += rec.size;
      if (rec.type == LMQ_WAL_REC_END)
        return 0; /* what follows is stale bytes of the file's earlier life */
      continue;
    }
    int synced_past;
    size_t nxt = next_valid(buf, len, off, seg, &synced_past);
    int corrupt = later_exists || synced_past;
    if (!nxt && d == LMQ_WAL_NONE && !later_exists)
      return 0; /* the end of the log: zero fill or a recycled file's past */
    if (!nxt && d == LMQ_WAL_NONE && is_applied(c, seg, off))
      return 0; /* an applied segment's end: recovery never reads it */
    size_t end = nxt ? nxt : len;
    if (!nxt && d == LMQ_WAL_TORN && len - off >= LMQ_WAL_HDR && !corrupt) {
      /* A torn tail: as long as the torn record claims (capped at EOF). */
      uint64_t claimed = LMQ_WAL_HDR + (uint64_t)lmq__get32(buf + off + 4) +
                         LMQ_WAL_TRAILER;
      end = claimed > len - off ? len : off + (size_t)claimed;
    }
    if ((rc = emit_damage(c, seg, off, end - off, corrupt)))
      return rc;
    if (!nxt)
      return 0;
    off = nxt;
  }
  return rc;
}

int lmq__wal_scan(const char *waldir, uint64_t aseg, uint64_t aoff,
                  int skip_applied, lmq_wal_fn fn, void *arg) {
  uint64_t *segs = NULL;
  size_t n = 0;
  struct stat st;
  if (stat(waldir, &st) != 0 && errno == ENOENT)
    return 0; /* no WAL directory: no WAL */
  int rc = lmq__wal_list(&segs, &n, waldir);
  if (rc)
    return rc;
  scan_ctx c = {aseg, aoff, fn, arg};
  size_t k = 0;
  if (skip_applied)
    while (k < n && segs[k] < aseg)
      k++;
  if (aseg && aoff > 0 && !(k < n && segs[k] == aseg) &&
      (rc = emit_damage(&c, aseg, aoff, 0, 1)))
    goto out; /* the segment holding the applied position is missing */
  for (; k < n; k++) {
    if (k > 0 && segs[k - 1] >= aseg && segs[k] != segs[k - 1] + 1 &&
        (rc = emit_damage(&c, segs[k - 1] + 1, 0, 0, 1)))
      goto out; /* a missing segment, though a later one exists */
    char path[PATH_MAX];
    lmq__wal_seg_path(path, sizeof path, waldir, segs[k]);
    unsigned char *buf = NULL;
    size_t len = 0;
    if ((rc = lmq__read_file(&buf, &len, path, "", 1))) {
      if (rc == LMQ_ENOTFOUND) { /* retired meanwhile by a live writer */
        lmq__error_clear();
        rc = 0;
        continue;
      }
      goto out;
    }
    rc = scan_one(&c, buf, len, segs[k], k + 1 < n);
    free(buf);
    if (rc)
      goto out;
  }
out:
  free(segs);
  return rc;
}

static int count_pending(void *arg, const lmq_wal_entry *e) {
  if (e->kind == LMQ_WAL_PRODUCE && !e->applied)
    *(uint64_t *)arg += e->bytes;
  return 0;
}

int lmq__rdonly_pending(lmq_env *env) {
  uint64_t bytes = 0;
  int rc = lmq__wal_scan(env->waldir, env->applied_seg, env->applied_off, 1,
                         count_pending, &bytes);
  env->unapplied = bytes;
  return rc;
}

LMQ_API int lmq_wal_scan(const char *dir, lmq_wal_fn fn, void *arg) {
  lmq__error_clear();
  if (!dir || !*dir || !fn)
    return lmq__error(LMQ_EINVAL, "lmq_wal_scan: NULL dir or fn");
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.flags = LMQ_OPEN_RDONLY;
  lmq_env *env;
  uint64_t aseg = 0, aoff = 0;
  int rc = lmq_env_open(&env, dir, &o);
  if (rc == 0) {
    aseg = env->applied_seg;
    aoff = env->applied_off;
    lmq_env_close(env);
  } else if (rc != LMQ_ECORRUPT) {
    return rc; /* no env there; an unreadable LMDB still lets us read the WAL */
  }
  char waldir[PATH_MAX];
  if (snprintf(waldir, sizeof waldir, "%s/wal", dir) >= (int)sizeof waldir)
    return lmq__error(LMQ_EINVAL, "path too long");
  lmq__error_clear();
  return lmq__wal_scan(waldir, aseg, aoff, 0, fn, arg);
}
