/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Retention under sustained load: it runs on its own clock, not only when
 * the applier is idle, so a producer that never pauses cannot push the
 * retained data far past the limit.
 */
#include "util.h"
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

Test(retention, keeps_up_with_a_producer_that_never_pauses, .timeout = 60) {
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.map_size = (uint64_t)512 << 20;
  o.apply_interval_ms = 5;
  o.apply_bytes = 1 << 20;
  o.max_unapplied = 4 << 20;
  o.retention_bytes = 2 << 20;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  static char payload[1024];
  memset(payload, 'x', sizeof payload);
  lmq_buf b[16];
  for (int i = 0; i < 16; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  uint64_t end = now_ms() + 4000, next_sample = now_ms() + 500, worst = 0;
  uint64_t produced = 0;
  while (now_ms() < end) {
    cr_assert_eq(lmq_produce(env, "c", b, 16, NULL, LMQ_SYNC_NONE), 0, "%s",
                 lmq_errmsg());
    produced += sizeof b / sizeof b[0] * sizeof payload;
    if (now_ms() >= next_sample) { /* after a first second of warm-up */
      lmq_channel_stats s;
      cr_assert_eq(lmq_channel_stats_get(&s, env, "c"), 0);
      if (s.bytes > worst && now_ms() > end - 3000)
        worst = s.bytes;
      next_sample = now_ms() + 50;
    }
  }
  cr_assert_gt(produced, (uint64_t)64 << 20, "produced only %llu bytes: too slow "
               "to mean much", (unsigned long long)produced);
  /* Limit + unapplied (max_unapplied) + one second of retention's clock
   * would be unbounded by rate; what must hold is limit + what is not yet
   * applied + one apply's worth, with a margin for the sampling. */
  uint64_t bound = o.retention_bytes + o.max_unapplied + o.apply_bytes + (4 << 20);
  cr_assert_leq(worst, bound, "retained %llu bytes against a %llu limit (bound "
                "%llu) while producing %llu bytes", (unsigned long long)worst,
                (unsigned long long)o.retention_bytes, (unsigned long long)bound,
                (unsigned long long)produced);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* A group left behind by retention reports where it will resume (it used
 * to report its old cursor, below the channel's first ID, until it next
 * consumed), and its lag counts what is retained. */
Test(retention, a_group_behind_retention_reports_where_it_resumes) {
  char *dir = tmpdir_new();
  lmq_env *env = open_env(dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  char payload[1000];
  memset(payload, 'x', sizeof payload);
  for (int i = 0; i < 100; i++) {
    lmq_buf b = {payload, sizeof payload};
    cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_NONE), 0);
  }
  cr_assert_eq(lmq_channel_set_retention(env, "c", 0, 20000), 0);
  cr_assert_eq(lmq_env_checkpoint(env), 0);
  lmq_channel_stats cs;
  for (int i = 0; i < 300; i++) { /* retention runs on the applier's clock */
    cr_assert_eq(lmq_channel_stats_get(&cs, env, "c"), 0);
    if (cs.messages <= 20)
      break;
    usleep(10000);
  }
  cr_assert_leq(cs.messages, 20, "retention left %llu messages",
                (unsigned long long)cs.messages);
  lmq_group_stats gs;
  cr_assert_eq(lmq_group_stats_get(&gs, env, "c", "g"), 0);
  cr_assert_eq(gs.cursor, cs.first_id, "stats cursor %llu, first retained %llu",
               (unsigned long long)gs.cursor, (unsigned long long)cs.first_id);
  cr_assert_eq(gs.lag, cs.messages);
  lmq_msgs *m;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 1000, 0), (int)cs.messages);
  cr_assert_eq(lmq_msgs_at(m, 0)->id, cs.first_id);
  lmq_msgs_free(m);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

static lmq_env *fill_map(char **dirp, const char *const *chans, int nch) {
  *dirp = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.map_size = 2 << 20;
  o.apply_interval_ms = 5;
  o.apply_bytes = 64 << 10;
  /* The backlog the map cannot take stays small: a destroy frees about
   * half the map (~900 KiB), and the other channel's queued records must
   * fit in it, or the applier fills the freed pages again within a few ms
   * and the map is rightly full once more. With max_unapplied at 64 MiB
   * the producer queued 2-40 MiB before it saw LMQ_EMAPFULL, and whether
   * produces_again() caught the few ms when the map had room was luck
   * (it missed them once in CI). */
  o.max_unapplied = 256 << 10;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, *dirp, &o), 0, "%s", lmq_errmsg());
  for (int i = 0; i < nch; i++)
    cr_assert_eq(lmq_channel_create(env, chans[i]), 0);
  static char payload[3000];
  memset(payload, 'x', sizeof payload);
  lmq_buf b = {payload, sizeof payload};
  int rc = 0;
  uint64_t end = now_ms() + 20000;
  for (int i = 0; rc == 0 && now_ms() < end; i++) {
    rc = lmq_produce(env, chans[i % nch], &b, 1, NULL, LMQ_SYNC_NONE);
    if (rc == 0 && i % 64 == 0)
      usleep(1000);
  }
  cr_assert_eq(rc, LMQ_EMAPFULL, "the map never filled: %d %s", rc, lmq_errmsg());
  usleep(100000);
  return env;
}

/* Produce until it works again (the env resumes by itself), or 10 s. */
static void produces_again(lmq_env *env, const char *ch) {
  char x[100];
  memset(x, 'y', sizeof x);
  lmq_buf b = {x, sizeof x};
  uint64_t end = now_ms() + 10000;
  int rc;
  while ((rc = lmq_produce(env, ch, &b, 1, NULL, LMQ_SYNC_NONE)) == LMQ_EMAPFULL &&
         now_ms() < end)
    usleep(20000);
  cr_assert_eq(rc, 0, "still %d (%s) 10 s after space was freed", rc, lmq_errmsg());
}

typedef struct destroyer {
  lmq_env *env;
  int rc, done;
} destroyer;

static void *destroy_b(void *arg) {
  destroyer *d = arg;
  d->rc = lmq_channel_destroy(d->env, "b");
  __atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* Destroying a channel frees its pages and the env resumes without a
 * reopen. It used to hang: destroy waited for the channel's records queued
 * for the applier, which could not apply them on a full map (2 of 3 runs
 * never returned in an outside test). */
Test(retention, a_full_map_recovers_when_a_channel_is_destroyed, .timeout = 90) {
  char *dir;
  const char *chans[2] = {"a", "b"};
  lmq_env *env = fill_map(&dir, chans, 2);
  destroyer d = {env, 0, 0};
  pthread_t t;
  pthread_create(&t, NULL, destroy_b, &d);
  uint64_t end = now_ms() + 15000;
  while (!__atomic_load_n(&d.done, __ATOMIC_ACQUIRE)) {
    cr_assert_lt(now_ms(), end, "lmq_channel_destroy did not return in 15 s");
    usleep(10000);
  }
  pthread_join(t, NULL);
  cr_assert_eq(d.rc, 0, "destroy: %d %s", d.rc, lmq_errmsg());
  produces_again(env, "a");
  lmq_env_close(env);
  /* Nothing of "b" comes back; "a" opens fine. */
  env = open_env(dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_exists(env, "b"), 0);
  cr_assert_eq(lmq_channel_exists(env, "a"), 1);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* A full map with nothing to free costs next to no CPU: the failing apply
 * is retried with a backoff (it used to retry every 20 ms forever, ~42 % of
 * a core with the default map), and the env still resumes at once when
 * space is freed (the freeing call wakes the applier). */
Test(retention, a_wedged_env_burns_no_cpu, .timeout = 90) {
  char *dir;
  const char *chans[1] = {"a"};
  lmq_env *env = fill_map(&dir, chans, 1);
  usleep(500000);
  struct timespec a, b;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  uint64_t t0 = now_ms();
  sleep(3);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  double cpu = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  double wall = (double)(now_ms() - t0) / 1e3;
  cr_log_info("wedged: %.1f ms of CPU in %.1f s", cpu * 1e3, wall);
  /* With this small map a failing apply is cheap: the old 20 ms retry loop
   * cost 13 ms of CPU in these 3 s (~0.45 %); the backoff ~0.3 ms. */
  cr_assert_lt(cpu / wall, 0.002, "a wedged env used %.2f%% of a core",
               100 * cpu / wall);
  uint64_t s0 = now_ms();
  cr_assert_eq(lmq_channel_set_retention(env, "a", 0, 256 << 10), 0, "%s",
               lmq_errmsg());
  produces_again(env, "a");
  cr_log_info("resumed %llu ms after the retention change",
              (unsigned long long)(now_ms() - s0));
  cr_assert_lt(now_ms() - s0, 900, "the env resumed only after the backoff");
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(retention, a_full_map_recovers_when_retention_frees_space, .timeout = 90) {
  char *dir;
  const char *chans[1] = {"a"};
  lmq_env *env = fill_map(&dir, chans, 1);
  cr_assert_eq(lmq_channel_set_retention(env, "a", 0, 256 << 10), 0, "%s",
               lmq_errmsg());
  produces_again(env, "a");
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* INTERVAL fsyncs happen on their schedule while a producer never pauses
 * (they used to run only when the applier was idle). */
Test(retention, interval_fsyncs_keep_their_schedule_under_load, .timeout = 60) {
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_INTERVAL;
  o.sync_interval_ms = 50;
  o.wal_segment_size = (uint64_t)4 << 30; /* no roll (a roll syncs too) */
  o.checkpoint_bytes = (uint64_t)8 << 30;
  o.map_size = (uint64_t)4 << 30;
  o.apply_interval_ms = 5;
  o.apply_bytes = 1 << 20;
  o.max_unapplied = 4 << 20;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  static char payload[1024];
  memset(payload, 'x', sizeof payload);
  lmq_buf b[16];
  for (int i = 0; i < 16; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  lmq_env_stats s0, s1;
  cr_assert_eq(lmq_env_stats_get(&s0, env), 0);
  uint64_t t0 = now_ms(), end = t0 + 2000;
  while (now_ms() < end)
    cr_assert_eq(lmq_produce(env, "c", b, 16, NULL, LMQ_SYNC_DEFAULT), 0, "%s",
                 lmq_errmsg());
  uint64_t ms = now_ms() - t0;
  cr_assert_eq(lmq_env_stats_get(&s1, env), 0);
  uint64_t syncs = s1.fsyncs - s0.fsyncs, due = ms / o.sync_interval_ms;
  /* No segment rolls here: these are the interval fsyncs; at least half
   * of those due. */
  cr_assert_geq(syncs, due / 2, "%llu fsyncs in %llu ms of INTERVAL(%u ms) produce",
                (unsigned long long)syncs, (unsigned long long)ms, o.sync_interval_ms);
  lmq_env_close(env);
  tmpdir_rm(dir);
}
