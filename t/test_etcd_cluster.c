/*
 * The engine's cursors in a 3-member etcd cluster the test starts
 * (t/etcd_cluster.c): the driver fails over to the other endpoints when the
 * leader is killed, committed cursors stay intact, and a commit whose answer
 * never came is LMQ_EUNKNOWN (not LMQ_EUNAVAIL, which means "not applied").
 * The failover time is printed to stderr ("failover: ...").
 */
#include "util.h"
#include "etcd_cluster.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ec_cluster ec;
static char *dir;
static char uri[384];

static void setup(void) {
  ec_start(&ec);
  dir = tmpdir_new();
}
static void teardown(void) {
  ec_stop(&ec);
  tmpdir_rm(dir);
}
TestSuite(etcd_cluster, .init = setup, .fini = teardown, .timeout = 90);

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static lmq_env *open_cluster_env(int timeout_ms) {
  snprintf(uri, sizeof uri, "etcd://%s/lmq/ctest?timeout_ms=%d", ec.endpoints, timeout_ms);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = uri;
  lmq_env *env = NULL;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "open with %s: %s", uri, lmq_errmsg());
  return env;
}

/* Consume n from group g; the payloads are "0", "1", ...: check that they
 * continue at *next and advance it. */
static void take(lmq_env *env, const char *g, int n, long *next) {
  lmq_msgs *m = NULL;
  int got = lmq_consume(&m, env, "c", g, (size_t)n, 1000);
  cr_assert_eq(got, n, "%s: consumed %d of %d: %s", g, got, n, lmq_errmsg());
  for (int i = 0; i < n; i++, (*next)++) {
    const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
    char t[16];
    snprintf(t, sizeof t, "%.*s", (int)x->len, (const char *)x->data);
    cr_assert_eq(atol(t), *next, "%s: message %s where %ld was due", g, t, *next);
  }
  lmq_msgs_free(m);
}

Test(etcd_cluster, cursor_commits_fail_over_when_the_leader_is_killed) {
  enum { G = 4, N = 600, STEP = 5, ROUNDS = 100, KILL_AT = 30 };
  lmq_env *env = open_cluster_env(5000);
  cr_assert_eq(lmq_channel_create(env, "c"), 0, "%s", lmq_errmsg());
  char g[G][8];
  for (int i = 0; i < G; i++) {
    snprintf(g[i], sizeof g[i], "g%d", i);
    cr_assert_eq(lmq_group_create(env, "c", g[i], LMQ_START_EARLIEST), 0, "%s",
                 lmq_errmsg());
  }
  for (int i = 0; i < N; i++) {
    char s[16];
    snprintf(s, sizeof s, "%d", i);
    put_str(env, "c", s);
  }
  int leader = ec_leader(&ec, 5000);
  cr_assert_geq(leader, 0, "no etcd leader");
  long next[G] = {0};
  long long t_kill = 0, failover = -1;
  int errors = 0;
  for (int r = 0; r < ROUNDS; r++) {
    if (r == KILL_AT) {
      ec_kill(&ec, leader);
      t_kill = mono_ms();
    }
    for (int i = 0; i < G; i++) {
      take(env, g[i], STEP, &next[i]);
      int rc = lmq_group_commit(env, "c", g[i]);
      if (rc) {
        /* Only "not applied" or "unknown": never a wrong answer. */
        cr_assert(rc == LMQ_EUNAVAIL || rc == LMQ_EUNKNOWN, "%d %s", rc, lmq_errmsg());
        if (getenv("LMQ_TEST_VERBOSE"))
          fprintf(stderr, "commit %s: %s\n", g[i], lmq_errmsg());
        errors++;
      } else if (t_kill && failover < 0) {
        failover = mono_ms() - t_kill;
      }
    }
  }
  cr_assert_geq(failover, 0, "no commit succeeded after the leader was killed");
  int now_leader = ec_leader(&ec, 5000);
  fprintf(stderr, "failover: the first cursor commit after killing etcd leader m%d took "
                  "%lld ms (new leader m%d, %d commits failed)\n",
          leader, failover, now_leader, errors);
  /* Everything consumed is committed now (a failed commit left its group
   * marked as moved; this commits it). */
  cr_assert_eq(lmq_group_commit_all(env), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
  /* The killed member rejoins; the cursors read back exactly. */
  ec_restart(&ec, leader);
  env = open_cluster_env(5000);
  for (int i = 0; i < G; i++) {
    long at = (long)ROUNDS * STEP;
    cr_assert_eq(next[i], at);
    take(env, g[i], 1, &at);
  }
  lmq_env_close(env);
}

Test(etcd_cluster, a_commit_without_an_answer_is_eunknown_one_never_sent_is_eunavail) {
  lmq_env *env = open_cluster_env(1500);
  cr_assert_eq(lmq_channel_create(env, "c"), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  for (int i = 0; i < 20; i++) {
    char s[16];
    snprintf(s, sizeof s, "%d", i);
    put_str(env, "c", s);
  }
  long next = 0;
  take(env, "g", 3, &next);
  cr_assert_eq(lmq_group_commit(env, "c", "g"), 0, "%s", lmq_errmsg());
  /* Every member hangs: the request is sent, no answer comes back. */
  take(env, "g", 2, &next);
  for (int i = 0; i < EC_MEMBERS; i++)
    ec_pause(&ec, i);
  long long t0 = mono_ms();
  int rc = lmq_group_commit(env, "c", "g");
  long long took = mono_ms() - t0;
  for (int i = 0; i < EC_MEMBERS; i++)
    ec_resume(&ec, i);
  cr_assert_eq(rc, LMQ_EUNKNOWN, "%d %s", rc, lmq_errmsg());
  cr_assert(strstr(lmq_errmsg(), "outcome unknown"), "%s", lmq_errmsg());
  cr_assert_lt(took, 3000, "took %lld ms with timeout_ms=1500", took);
  /* Committing again is safe, and works once they answer. */
  rc = -1;
  for (long long end = mono_ms() + 10000; rc && mono_ms() < end;)
    rc = lmq_group_commit(env, "c", "g");
  cr_assert_eq(rc, 0, "%s", lmq_errmsg());
  /* Every member gone: nothing can be sent, so nothing was applied. */
  take(env, "g", 4, &next);
  for (int i = 0; i < EC_MEMBERS; i++)
    ec_kill(&ec, i);
  rc = lmq_group_commit(env, "c", "g");
  cr_assert_eq(rc, LMQ_EUNAVAIL, "%d %s", rc, lmq_errmsg());
  lmq_env_close(env);
}
