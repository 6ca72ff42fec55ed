/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fault injection: allocation failures (a countdown malloc in this test
 * program, which the library's calls resolve to) and I/O failures (a real
 * RLIMIT_FSIZE, so writes past the limit fail with EFBIG).
 */
#define _GNU_SOURCE
#include "util.h"
#include <criterion/criterion.h>
#include <signal.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failmalloc.h"

#ifndef NO_FAILMALLOC

/* Run op with the Nth allocation failing, for N = 0, 1, ... until op
 * succeeds with no failure injected. Each failure must be a clean error. */
static void each_allocation(const char *what, int (*op)(void *), void *arg,
                            void (*undo)(void *)) {
  for (long n = 0; n < 100000; n++) {
    failures = 0;
    fail_countdown = n;
    int rc = op(arg);
    fail_countdown = -1;
    if (failures == 0) {
      cr_assert_eq(rc, 0, "%s failed without an injected failure: %s", what,
                   lmq_errmsg());
      return;
    }
    cr_assert(rc <= 0, "%s returned %d", what, rc);
    if (undo)
      undo(arg);
  }
  cr_assert_fail("%s never succeeded", what);
}

struct ctx {
  char *dir;
  lmq_env *env;
};

static int op_open(void *a) {
  struct ctx *c = a;
  int rc = lmq_env_open(&c->env, c->dir, NULL);
  if (rc == 0) {
    /* channel + produce + consume inside the same countdown */
    if ((rc = lmq_channel_create(c->env, "c")) == 0 &&
        (rc = lmq_group_create(c->env, "c", "g", LMQ_START_EARLIEST)) == 0) {
      lmq_buf b = {"payload", 7};
      rc = lmq_produce(c->env, "c", &b, 1, NULL, LMQ_SYNC_NONE);
    }
    if (rc == 0) {
      lmq_msgs *m = NULL;
      int n = lmq_consume(&m, c->env, "c", "g", 10, 0);
      lmq_msgs_free(m);
      rc = n < 0 ? n : 0;
    }
    lmq_env_close(c->env);
    c->env = NULL;
  }
  return rc;
}

Test(faults, every_allocation_failure_in_open_produce_consume_is_clean,
     .timeout = 300) {
  struct ctx c = {tmpdir_new(), NULL};
  each_allocation("open/produce/consume", op_open, &c, NULL);
  /* Whatever failed on the way, the directory opens and is consistent. */
  lmq_env *env = open_env(c.dir, LMQ_SYNC_ALWAYS);
  cr_assert_eq(lmq_channel_exists(env, "c"), 1);
  lmq_env_close(env);
  tmpdir_rm(c.dir);
}

/*
 * A produce whose allocations fail either fails cleanly or is delivered:
 * a group reading along never skips an acknowledged message. (The tail
 * entry used to be allocated after the write: when that failed the message
 * was acknowledged, missing from the tail while later ones were in it, and
 * the group's cursor jumped past it.)
 */
Test(faults, allocation_failures_never_make_a_group_skip_a_message,
     .timeout = 60) {
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.apply_interval_ms = 600000; /* keep everything in the tail */
  o.apply_bytes = (uint64_t)1 << 30;
  o.max_unapplied = (uint64_t)1 << 30;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_buf b[300];
  char pay[300][8];
  for (int i = 0; i < 300; i++) {
    snprintf(pay[i], sizeof pay[i], "%d", i);
    b[i] = (lmq_buf){pay[i], strlen(pay[i])};
  }
  /* Every allocation of every produce fails in turn (the countdown walks
   * 0, 1, ... until a produce needs no more), over enough rounds that the
   * channel's tail grows several times: the growth that used to happen at
   * publish time is among the allocations that fail. */
  static lmq_id acked[40 * 301 * 64];
  size_t nacked = 0, got = 0, attempts = 0;
  for (int round = 0; round < 40; round++)
  for (long n = 0;; n++) {
    lmq_id ids[300];
    failures = 0;
    fail_countdown = n;
    int rc = lmq_produce(env, "c", b, 300, ids, LMQ_SYNC_NONE);
    fail_countdown = -1;
    attempts++;
    if (rc == 0)
      for (int i = 0; i < 300; i++)
        acked[nacked++] = ids[i];
    else
      cr_assert_eq(rc, LMQ_ENOMEM, "produce: %d %s", rc, lmq_errmsg());
    int last = rc == 0 && failures == 0; /* it needed fewer than n */
    cr_assert_eq(lmq_produce(env, "c", b, 1, ids, LMQ_SYNC_NONE), 0);
    acked[nacked++] = ids[0];
    lmq_msgs *m;
    int k;
    while ((k = lmq_consume(&m, env, "c", "g", 1000, 0)) > 0) {
      for (int i = 0; i < k; i++) {
        cr_assert_lt(got, nacked);
        cr_assert_eq(lmq_msgs_at(m, (size_t)i)->id, acked[got],
                     "round %d, allocation %ld failing: the group skipped "
                     "acknowledged message %llu", round, n,
                     (unsigned long long)acked[got]);
        got++;
      }
      lmq_msgs_free(m);
    }
    cr_assert_geq(k, 0);
    if (last)
      break;
  }
  cr_log_info("%zu produce attempts, %zu messages acknowledged and consumed",
              attempts, nacked);
  cr_assert_eq(got, nacked);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* The channel records of "c" in the closed env's LMDB: its sub-database,
 * "#sys" record and metadata record, all present or all absent (asserted);
 * returns 1 if present. *inc receives the incarnation counter. */
static int records_of_c(const char *dir, uint64_t *inc) {
  int sub = lmdb_peek(dir, NULL, "d:c", NULL, 0, NULL);
  int sys = lmdb_peek(dir, "#sys", "c:c", NULL, 0, NULL);
  unsigned char m[24], b[8] = {0};
  size_t ml = 0;
  int meta = lmdb_peek(dir, "#meta", "chan/c", m, sizeof m, &ml);
  cr_assert(sub == sys && sys == meta, "sub-database %d, #sys record %d, "
            "metadata record %d: a create is all or nothing", sub, sys, meta);
  lmdb_peek(dir, "#sys", "incarnation", b, sizeof b, NULL);
  *inc = get_le64(b);
  if (meta) {
    cr_assert_eq(ml, 24);
    cr_assert_eq(get_le64(m), 1, "metadata record version %llu",
                 (unsigned long long)get_le64(m));
    cr_assert_eq(get_le64(m + 16), *inc, "metadata record of another incarnation");
  }
  return meta;
}

/* Every allocation of a create fails in turn (LMDB's own among them, and
 * those of the metadata ops written in its transaction): a failed create
 * leaves no sub-database, "#sys" record or metadata record, and does not
 * move the incarnation counter. */
Test(faults, a_create_that_runs_out_of_memory_leaves_nothing_behind,
     .timeout = 120) {
  char *dir = tmpdir_new();
  lmq_env *env = open_env(dir, LMQ_SYNC_ALWAYS);
  cr_assert_eq(lmq_channel_create(env, "a"), 0);
  lmq_env_close(env);
  uint64_t inc, now;
  cr_assert_eq(records_of_c(dir, &inc), 0);
  long failed = 0;
  for (long n = 0;; n++) {
    env = open_env(dir, LMQ_SYNC_ALWAYS);
    failures = 0;
    fail_countdown = n;
    int rc = lmq_channel_create(env, "c");
    fail_countdown = -1;
    int last = failures == 0;
    cr_assert(rc == 0 || rc == LMQ_ENOMEM, "create: %d %s", rc, lmq_errmsg());
    cr_assert_eq(lmq_channel_exists(env, "c"), rc == 0);
    if (rc == 0) /* (what failed was not needed) */
      cr_assert_eq(lmq_channel_destroy(env, "c"), 0);
    lmq_env_close(env);
    if (last)
      cr_assert_eq(rc, 0, "create failed without an injected failure");
    failed += rc != 0;
    cr_assert_eq(records_of_c(dir, &now), 0);
    cr_assert_eq(now, rc ? inc : inc + 1, "incarnation counter %llu after a "
                 "%s create, was %llu", (unsigned long long)now,
                 rc ? "failed" : "successful", (unsigned long long)inc);
    inc = now;
    if (last)
      break;
  }
  cr_log_info("%ld creates failed cleanly", failed);
  cr_assert_gt(failed, 3, "only %ld creates failed", failed);
  env = open_env(dir, LMQ_SYNC_ALWAYS);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  lmq_env_close(env);
  cr_assert_eq(records_of_c(dir, &now), 1);
  cr_assert_eq(now, inc + 1);
  tmpdir_rm(dir);
}
#endif

/* In a forked child: open dir with channel "c" and group "g", then limit
 * the size of any file written to 4 MiB (writes past it fail, EFBIG).
 * Exits 10 if the open fails. */
static lmq_env *child_open_limited(const char *dir, const lmq_env_options *o) {
  signal(SIGXFSZ, SIG_IGN);
  lmq_env *env;
  if (lmq_env_open(&env, dir, o) || lmq_channel_create(env, "c") ||
      lmq_group_create(env, "c", "g", LMQ_START_EARLIEST))
    _exit(10);
  struct rlimit rl = {(rlim_t)4 << 20, RLIM_INFINITY};
  setrlimit(RLIMIT_FSIZE, &rl);
  return env;
}

static void child_unlimit(void) {
  struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_FSIZE, &rl);
}

/* Messages group "g" of channel "c" gets from here on (-1 on an error). */
static long child_count(lmq_env *env) {
  long got = 0;
  for (;;) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "c", "g", 10000, 0);
    lmq_msgs_free(m);
    if (n < 0)
      return -1;
    if (n == 0)
      return got;
    got += n;
  }
}

/* In a child: limit file size so the WAL (and LMDB) writes fail, check the
 * errors are clean, lift the limit and check the env works and lost nothing. */
Test(faults, write_failures_are_errors_and_the_env_recovers, .timeout = 120) {
  char *dir = tmpdir_new();
  pid_t pid = fork();
  if (pid == 0) {
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    o.map_size = (uint64_t)64 << 20;
    o.wal_segment_size = (uint64_t)8 << 20;
    lmq_env *env = child_open_limited(dir, &o);
    static char p[1000];
    lmq_buf b[100];
    for (int i = 0; i < 100; i++)
      b[i] = (lmq_buf){p, sizeof p};
    long acked = 0;
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)
      if ((rc = lmq_produce(env, "c", b, 100, NULL, LMQ_SYNC_ALWAYS)) == 0)
        acked += 100;
    if (rc == 0)
      _exit(11); /* the limit never bit */
    if (rc != LMQ_EIO && rc != LMQ_ENOSPC && rc != LMQ_EFAILED && rc != LMQ_EMAPFULL)
      _exit(12);
    if (!*lmq_errmsg())
      _exit(13);
    child_unlimit();
    /* The WAL write failed cleanly (truncated back), so the env continues,
     * unless it was an fsync failure, which requires a reopen. */
    rc = lmq_produce(env, "c", b, 1, NULL, LMQ_SYNC_ALWAYS);
    if (rc == LMQ_EFAILED) {
      lmq_env_close(env);
      if (lmq_env_open(&env, dir, &o))
        _exit(14);
      rc = lmq_produce(env, "c", b, 1, NULL, LMQ_SYNC_ALWAYS);
    }
    if (rc)
      _exit(15);
    acked += 1;
    lmq_env_close(env);
    if (lmq_env_open(&env, dir, &o))
      _exit(16);
    long got = child_count(env);
    if (got < 0)
      _exit(17);
    lmq_env_close(env);
    _exit(got >= acked ? 0 : 18);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st), "child crashed (status %d)", st);
  cr_assert_eq(WEXITSTATUS(st), 0, "child failed at step %d", WEXITSTATUS(st));
  tmpdir_rm(dir);
}

/* A zero fill of a spare segment (wal_seg.c) that fails, here at a 4 MiB
 * file size limit below the 8 MiB segment size, leaves no spare behind and
 * costs the producers nothing: the WAL goes on appending. */
Test(faults, a_failed_zero_fill_is_harmless, .timeout = 60) {
  char *dir = tmpdir_new();
  pid_t pid = fork();
  if (pid == 0) {
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    o.wal_segment_size = (uint64_t)8 << 20;
    lmq_env *env = child_open_limited(dir, &o);
    static char p[100];
    lmq_buf b = {p, sizeof p};
    for (int i = 0; i < 400; i++) {
      if (lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS))
        _exit(11);
      if (i >= 100 && i % 50 == 49) /* back to back first: the disk's */
        usleep(20000); /* sync rate limits them, so a zero fill is tried */
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/wal/spare.0", dir);
    if (access(path, F_OK) == 0)
      _exit(12); /* a spare of 8 MiB cannot have been written */
    snprintf(path, sizeof path, "%s/wal/spare.tmp", dir);
    if (access(path, F_OK) == 0)
      _exit(13);
    lmq_env_close(env);
    child_unlimit();
    if (lmq_env_open(&env, dir, &o))
      _exit(14);
    long got = child_count(env);
    lmq_env_close(env);
    _exit(got == 400 ? 0 : 16);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st), "child crashed (status %d)", st);
  cr_assert_eq(WEXITSTATUS(st), 0, "child failed at step %d", WEXITSTATUS(st));
  tmpdir_rm(dir);
}
