/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Recovery: where the WAL really ends. Segment rolls into recycled spares,
 * torn tails (cut, reported), corruption of synced data (open fails with
 * LMQ_ECORRUPT and changes nothing; LMQ_OPEN_SALVAGE skips exactly the
 * damage and reports it), missing segments, a WAL without its data.mdb.
 *
 * Each scenario writes its WAL in a forked child that ends with _exit()
 * without closing the env: a process crash, so no checkpoint runs and the
 * records stay in the WAL for the parent to damage and reopen.
 */
#define _GNU_SOURCE
#include "util.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Options that keep everything in the WAL (nothing applied to LMDB). */
static lmq_env_options wal_only(void) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  /* The tests below find records by segment: keep small synced writes in
   * one (zero-filled segments have tests of their own). */
  o.flags = LMQ_OPEN_NO_WAL_ZERO_FILL;
  o.map_size = (uint64_t)64 << 20;
  o.wal_segment_size = 64 << 10;
  o.apply_interval_ms = 600000;
  o.apply_bytes = (uint64_t)1 << 30;
  o.max_unapplied = (uint64_t)1 << 30;
  o.checkpoint_bytes = (uint64_t)1 << 30;
  return o;
}

typedef void (*child_fn)(lmq_env *env);

/* Run fn on dir in a child that "crashes" (exits without closing). */
static void in_crashing_child(const char *dir, const lmq_env_options *o,
                              child_fn fn) {
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    lmq_env *env;
    if (lmq_env_open(&env, dir, o) || lmq_channel_create(env, "c")) {
      fprintf(stderr, "child open: %s\n", lmq_errmsg());
      _exit(1);
    }
    fn(env);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (%d)", st);
}

static void produce_n(lmq_env *env, int n, size_t len) {
  char *buf = malloc(len + 32);
  for (int i = 0; i < n; i++) {
    memset(buf, 'a' + i % 26, len);
    int l = snprintf(buf, 32, "m%04d", i);
    buf[l] = ' ';
    lmq_buf b = {buf, len};
    if (lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS)) {
      fprintf(stderr, "produce: %s\n", lmq_errmsg());
      _exit(2);
    }
  }
  free(buf);
}

static void hundred(lmq_env *env) { produce_n(env, 100, 100); }

/* The n-th (0-based) WAL segment file of dir, by name order; its size. */
static off_t segment(const char *dir, int nth, char *path, size_t len) {
  char wal[4096];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  struct dirent **ents;
  int n = scandir(wal, &ents, NULL, alphasort), k = 0;
  cr_assert_geq(n, 0);
  off_t size = -1;
  for (int i = 0; i < n; i++) {
    if (strlen(ents[i]->d_name) == 20 && size < 0 && k++ == nth) {
      snprintf(path, len, "%s/%s", wal, ents[i]->d_name);
      struct stat st;
      cr_assert_eq(stat(path, &st), 0);
      size = st.st_size;
    }
    free(ents[i]);
  }
  free(ents);
  cr_assert_geq(size, 0, "no WAL segment #%d in %s", nth, wal);
  return size;
}

static int nsegments(const char *dir) {
  char wal[4096];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  DIR *d = opendir(wal);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    n += strlen(de->d_name) == 20;
  closedir(d);
  return n;
}

/* Offset of the first occurrence of s in the file at path. */
static off_t find_in(const char *path, const char *s) {
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  static char buf[1 << 20];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  cr_assert_gt(n, 0);
  char *at = memmem(buf, (size_t)n, s, strlen(s));
  cr_assert_not_null(at, "'%s' not in %s", s, path);
  return at - buf;
}

static void flip(const char *path, off_t at) {
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  unsigned char c;
  cr_assert_eq(pread(fd, &c, 1, at), 1);
  c ^= 0x10;
  cr_assert_eq(pwrite(fd, &c, 1, at), 1);
  close(fd);
}

/* A digest of every file under dir except the lock files. */
static unsigned long long dir_digest(const char *dir) {
  unsigned long long h = 1469598103934665603ull;
  const char *names[] = {"data.mdb", "wal"};
  for (int i = 0; i < 2; i++) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    struct dirent **ents = NULL;
    int n = i == 1 ? scandir(p, &ents, NULL, alphasort) : 1;
    for (int j = 0; j < n; j++) {
      char f[8192];
      if (i == 1) {
        snprintf(f, sizeof f, "%s/%s", p, ents[j]->d_name);
        for (const char *c = ents[j]->d_name; *c; c++)
          h = (h ^ (unsigned char)*c) * 1099511628211ull;
        free(ents[j]);
      } else {
        snprintf(f, sizeof f, "%s", p);
      }
      int fd = open(f, O_RDONLY);
      if (fd < 0)
        continue;
      unsigned char buf[65536];
      ssize_t r;
      while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t k = 0; k < r; k++)
          h = (h ^ buf[k]) * 1099511628211ull;
      close(fd);
    }
    free(ents);
  }
  return h;
}

/* Consume channel c from the start; returns how many, checks order and
 * that each payload is an intact "mNNNN" message. */
static int count_intact(lmq_env *env, int *first_missing) {
  cr_assert_eq(lmq_group_create(env, "c", "chk", LMQ_START_EARLIEST), 0);
  int n = 0, expect = 0;
  *first_missing = -1;
  lmq_id prev = 0;
  for (;;) {
    lmq_msgs *m;
    int got = lmq_consume(&m, env, "c", "chk", 64, 0);
    cr_assert_geq(got, 0, "%s", lmq_errmsg());
    for (int i = 0; i < got; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      cr_assert_gt(x->id, prev);
      prev = x->id;
      int k;
      cr_assert(x->len >= 5 && sscanf(x->data, "m%4d", &k) == 1, "bad payload");
      const char *p = x->data;
      for (size_t j = 6; j < x->len; j++)
        cr_assert_eq(p[j], 'a' + k % 26, "payload %d corrupt at %zu", k, j);
      if (k != expect && *first_missing < 0)
        *first_missing = expect;
      expect = k + 1;
      n++;
    }
    lmq_msgs_free(m);
    if (got == 0)
      break;
  }
  return n;
}

static void six_big(lmq_env *env) {
  for (int i = 40; i < 46; i++) {
    char *buf = malloc(40000);
    memset(buf, 'a' + i % 26, 40000);
    int l = snprintf(buf, 32, "m%04d", i);
    buf[l] = ' ';
    lmq_buf b = {buf, 40000};
    if (lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS))
      _exit(2);
    free(buf);
  }
}

/* On the old code 41 of 46 came back: recovery stopped at the stale bytes
 * after the one record in the first recycled segment and retired the rest. */
Test(recovery, rolls_into_recycled_spares_lose_nothing) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  o.checkpoint_bytes = 128 << 10;
  o.apply_interval_ms = 5;
  o.apply_bytes = 64 << 10;
  o.max_unapplied = 1 << 20;
  /* Fill segments and close: the checkpoint leaves spare.N files full of
   * old records. */
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  for (int i = 0; i < 40; i++) {
    char buf[4000];
    memset(buf, 'a' + i % 26, sizeof buf);
    int l = snprintf(buf, 32, "m%04d", i);
    buf[l] = ' ';
    lmq_buf b = {buf, sizeof buf};
    cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS), 0);
  }
  lmq_env_close(env);
  char sp[4096];
  snprintf(sp, sizeof sp, "%s/wal/spare.0", dir);
  cr_assert_eq(access(sp, F_OK), 0, "no spare segment to recycle");
  /* Now roll into them with 40 KiB messages, kept in the WAL, and crash:
   * each recycled segment holds one new record, then stale bytes. */
  o = wal_only();
  in_crashing_child(dir, &o, six_big);
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  int missing, n = count_intact(env, &missing);
  cr_assert_eq(n, 46, "%d of 46 messages after rolling into recycled segments "
               "(first missing: %d)", n, missing);
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  cr_assert_eq(lmq_env_recovery_get(&r, env), 0);
  cr_assert_eq(r.records, 6, "%s", r.summary);
  cr_assert_eq(r.cut_bytes, 0, "a clean end was reported as a cut: %s", r.summary);
  cr_assert_eq(r.salvaged_regions, 0);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(recovery, flipped_byte_in_synced_data_fails_open_and_changes_nothing) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  in_crashing_child(dir, &o, hundred);
  char seg[8192];
  off_t size = segment(dir, 0, seg, sizeof seg);
  off_t at = find_in(seg, "m0050") + 20; /* inside message 50's payload */
  flip(seg, at);
  unsigned long long before = dir_digest(dir);
  lmq_env *env = NULL;
  int rc = lmq_env_open(&env, dir, &o);
  cr_assert_eq(rc, LMQ_ECORRUPT, "open of a WAL damaged in the middle: %d (%s)",
               rc, lmq_errmsg());
  cr_assert_not_null(strstr(lmq_errmsg(), "wal/0"), "%s", lmq_errmsg());
  cr_assert_not_null(strstr(lmq_errmsg(), "offset"), "%s", lmq_errmsg());
  cr_assert_eq(dir_digest(dir), before, "a failed open changed the files");
  /* Salvage: everything but the damaged record, and a report saying so. */
  o.flags = LMQ_OPEN_SALVAGE;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  cr_assert_eq(lmq_env_recovery_get(&r, env), 0);
  cr_assert_eq(r.salvaged_regions, 1, "%s", r.summary);
  cr_assert_gt(r.salvaged_bytes, 0);
  cr_assert_leq(r.bad_offset, (uint64_t)at);
  cr_assert_lt(at, size);
  cr_assert_not_null(strstr(r.summary, "SALVAGE"), "%s", r.summary);
  int missing, n = count_intact(env, &missing);
  cr_assert_eq(n, 99, "salvage kept %d of the 99 undamaged messages", n);
  cr_assert_eq(missing, 50);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(recovery, torn_tail_is_cut_and_reported) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  in_crashing_child(dir, &o, hundred);
  char seg[8192];
  off_t size = segment(dir, 0, seg, sizeof seg);
  cr_assert_eq(truncate(seg, size - 30), 0);
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  cr_assert_eq(lmq_env_recovery_get(&r, env), 0);
  cr_assert_gt(r.cut_bytes, 0, "nothing reported cut: '%s'", r.summary);
  cr_assert_eq(r.cut_offset + r.cut_bytes, (uint64_t)size - 30);
  cr_assert_eq(r.records, 99, "%s", r.summary);
  cr_assert_not_null(strstr(r.summary, "torn"), "%s", r.summary);
  int missing, n = count_intact(env, &missing);
  cr_assert_eq(n, 99);
  cr_assert_eq(missing, -1);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

static void roll_many(lmq_env *env) { produce_n(env, 12, 20000); }

Test(recovery, damage_in_a_complete_segment_is_corruption) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  in_crashing_child(dir, &o, roll_many);
  cr_assert_geq(nsegments(dir), 3);
  /* Damage the END-less tail of the first segment: a later segment exists,
   * so that segment was complete and synced when the next was made. */
  char seg[8192];
  off_t size = segment(dir, 0, seg, sizeof seg);
  cr_assert_eq(truncate(seg, size - 10), 0);
  lmq_env *env = NULL;
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_ECORRUPT, "%s", lmq_errmsg());
  o.flags = LMQ_OPEN_SALVAGE;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  int missing, n = count_intact(env, &missing);
  cr_assert_geq(n, 10, "salvage kept only %d messages", n);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(recovery, missing_segment_is_corruption) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  in_crashing_child(dir, &o, roll_many);
  cr_assert_geq(nsegments(dir), 3);
  char seg[8192];
  segment(dir, 1, seg, sizeof seg);
  cr_assert_eq(unlink(seg), 0);
  lmq_env *env = NULL;
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_ECORRUPT, "%s", lmq_errmsg());
  cr_assert_not_null(strstr(lmq_errmsg(), "missing"), "%s", lmq_errmsg());
  tmpdir_rm(dir);
}

Test(recovery, wal_without_data_mdb_is_not_started_afresh) {
  char *dir = tmpdir_new();
  lmq_env_options o = wal_only();
  in_crashing_child(dir, &o, hundred);
  char p[4096];
  snprintf(p, sizeof p, "%s/data.mdb", dir);
  cr_assert_eq(unlink(p), 0);
  lmq_env *env = NULL;
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_ECORRUPT, "%s", lmq_errmsg());
  cr_assert_eq(access(p, F_OK), -1, "a fresh data.mdb was made over the WAL");
  tmpdir_rm(dir);
}

Test(recovery, leftover_of_an_interrupted_creation_is_ignored) {
  char *dir = tmpdir_new();
  char p[4096];
  /* A crash while building data.mdb.new leaves it half-written and no
   * data.mdb: the next open builds a new one. */
  snprintf(p, sizeof p, "%s/env", dir);
  cr_assert_eq(mkdir(p, 0755), 0);
  snprintf(p, sizeof p, "%s/env/data.mdb.new", dir);
  FILE *f = fopen(p, "w");
  fputs("garbage", f);
  fclose(f);
  snprintf(p, sizeof p, "%s/env", dir);
  lmq_env *env = open_env(p, LMQ_SYNC_ALWAYS);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  put_str(env, "c", "m0000 ");
  lmq_env_close(env);
  env = open_env(p, LMQ_SYNC_ALWAYS);
  lmq_id id;
  cr_assert_eq(lmq_latest_id(&id, env, "c"), 0);
  lmq_env_close(env);
  snprintf(p, sizeof p, "%s/env/data.mdb.new", dir);
  cr_assert_eq(access(p, F_OK), -1);
  tmpdir_rm(dir);
}

/* The version-1 options struct (before `flags`) is still accepted. */
typedef struct v1_options {
  unsigned version;
  int sync;
  unsigned sync_interval_ms;
  uint64_t map_size;
  unsigned max_channels;
  uint32_t max_message_size;
  uint64_t wal_segment_size;
  unsigned apply_interval_ms;
  uint64_t apply_bytes, max_unapplied, checkpoint_bytes;
  unsigned autocommit_ms;
  uint64_t retention_ms, retention_bytes;
  const char *meta_uri;
} v1_options;

Test(recovery, version_1_options_still_open) {
  char *dir = tmpdir_new();
  lmq_env_options cur = LMQ_ENV_OPTIONS_INIT;
  v1_options *v1 = malloc(sizeof *v1); /* exactly v1's size: ASan sees overreads */
  memcpy(v1, &cur, sizeof *v1);
  v1->version = 1;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, (const lmq_env_options *)v1), 0, "%s",
               lmq_errmsg());
  lmq_env_close(env);
  free(v1);
  tmpdir_rm(dir);
}

/* ---- Zero-filled segments (wal_seg.c): small synced writes that append
 * to a new segment make the applier zero-fill a spare, and the WAL moves
 * to it. What is written there must come back like anywhere else. */

/* Zero-filled spares on, in 1 MiB segments: the spare must be made while
 * the first segment fills (~6,000 small synced produces), which leaves the
 * applier time to make it on a loaded machine. */
static lmq_env_options zero_fill(void) {
  lmq_env_options o = wal_only();
  o.flags = 0;
  o.wal_segment_size = 1 << 20;
  return o;
}

static void wal_path(char *buf, size_t len, const char *dir, const char *name) {
  snprintf(buf, len, "%s/wal/%s", dir, name);
}

/* Small ALWAYS produces until the WAL has moved on to segment 2 (the
 * zero-filled spare), then 20 more; the count goes to DIR/count. */
static const char *g_dir;
static void until_zero_filled(lmq_env *env) {
  char seg2[4096], cnt[4096];
  wal_path(seg2, sizeof seg2, g_dir, "0000000000000002.log");
  int n = 0, after = -1;
  char buf[100];
  while (n < 9999 && (after < 0 || n < after + 20)) {
    memset(buf, 'a' + n % 26, sizeof buf);
    int l = snprintf(buf, 32, "m%04d", n);
    buf[l] = ' ';
    lmq_buf b = {buf, sizeof buf};
    if (lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS))
      _exit(2);
    n++;
    if (after < 0 && access(seg2, F_OK) == 0)
      after = n;
    /* No pause here to let the applier run: time between syncs counts
     * against them being dense, and the move needs them dense when the
     * spare is ready (a 10 ms pause every 50 produces made this test fail
     * under load). The producer sleeps in fdatasync most of the time. */
  }
  snprintf(cnt, sizeof cnt, "%s/count", g_dir);
  FILE *f = fopen(cnt, "w");
  if (!f || fprintf(f, "%d %d\n", n, after) < 0 || fclose(f))
    _exit(3);
}

static void zero_filled_run(const char *dir, int *n, int *after) {
  g_dir = dir;
  lmq_env_options o = zero_fill();
  in_crashing_child(dir, &o, until_zero_filled);
  char cnt[4096];
  snprintf(cnt, sizeof cnt, "%s/count", dir);
  FILE *f = fopen(cnt, "r");
  cr_assert_not_null(f);
  cr_assert_eq(fscanf(f, "%d %d", n, after), 2);
  fclose(f);
  unlink(cnt);
  cr_assert_geq(*after, 0, "the WAL never moved to a zero-filled segment "
                "(%d small synced produces)", *n);
  /* The segment it moved to is a whole spare: allocated, zero-filled. */
  char seg2[4096];
  wal_path(seg2, sizeof seg2, dir, "0000000000000002.log");
  struct stat st;
  cr_assert_eq(stat(seg2, &st), 0);
  cr_assert_eq(st.st_size, (off_t)o.wal_segment_size);
  cr_assert_geq((uint64_t)st.st_blocks * 512, o.wal_segment_size,
                "the spare is not allocated");
}

Test(recovery, small_synced_writes_move_to_a_zero_filled_segment_and_lose_nothing) {
  char *dir = tmpdir_new();
  int n, after;
  zero_filled_run(dir, &n, &after);
  lmq_env_options o = zero_fill();
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  cr_assert_eq(lmq_env_recovery_get(&r, env), 0);
  cr_assert_eq(r.cut_bytes, 0, "the zeros were taken for a torn tail: %s",
               r.summary);
  int missing, got = count_intact(env, &missing);
  cr_assert_eq(got, n, "%d of %d messages (first missing %d)", got, n, missing);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(recovery, a_torn_tail_in_a_zero_filled_segment_is_cut) {
  char *dir = tmpdir_new();
  int n, after;
  zero_filled_run(dir, &n, &after);
  /* The last record's last 30 bytes never reached the disk: zeros. */
  char seg2[4096], last[16];
  wal_path(seg2, sizeof seg2, dir, "0000000000000002.log");
  snprintf(last, sizeof last, "m%04d", n - 1);
  off_t at = find_in(seg2, last) + 100 - 30;
  int fd = open(seg2, O_WRONLY);
  static const char zeros[30];
  cr_assert_eq(pwrite(fd, zeros, sizeof zeros, at), (ssize_t)sizeof zeros);
  close(fd);
  lmq_env_options o = zero_fill();
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  cr_assert_eq(lmq_env_recovery_get(&r, env), 0);
  cr_assert_gt(r.cut_bytes, 0, "nothing reported cut: '%s'", r.summary);
  cr_assert_eq(r.cut_segment, 2, "%s", r.summary);
  int missing, got = count_intact(env, &missing);
  cr_assert_eq(got, n - 1, "%d of %d messages", got, n - 1);
  cr_assert_eq(missing, -1);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* Batched synced produces (over 16 KiB a sync) and unsynced ones never
 * pay for zeros. */
Test(recovery, batched_or_unsynced_writes_zero_fill_nothing) {
  char *dir = tmpdir_new();
  lmq_env_options o = zero_fill();
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  static char payload[200][100];
  lmq_buf b[200];
  for (int i = 0; i < 200; i++)
    b[i] = (lmq_buf){payload[i], sizeof payload[i]};
  for (int i = 0; i < 40; i++)
    cr_assert_eq(lmq_produce(env, "c", b, 200, NULL, LMQ_SYNC_ALWAYS), 0, "%s",
                 lmq_errmsg());
  for (int i = 0; i < 2000; i++)
    cr_assert_eq(lmq_produce(env, "c", b, 1, NULL, LMQ_SYNC_NONE), 0, "%s",
                 lmq_errmsg());
  usleep(300 * 1000); /* the applier would have made a spare by now */
  char p[4096];
  wal_path(p, sizeof p, dir, "spare.0");
  cr_assert_neq(access(p, F_OK), 0, "a spare was zero-filled");
  wal_path(p, sizeof p, dir, "spare.tmp");
  cr_assert_neq(access(p, F_OK), 0, "a spare is being zero-filled");
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(recovery, a_spare_cut_short_by_a_crash_is_removed_at_open) {
  char *dir = tmpdir_new();
  lmq_env_options o = zero_fill();
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
  char p[4096];
  wal_path(p, sizeof p, dir, "spare.tmp");
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs("half a spare", f);
  fclose(f);
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_neq(access(p, F_OK), 0, "spare.tmp is still there");
  lmq_env_close(env);
  tmpdir_rm(dir);
}
