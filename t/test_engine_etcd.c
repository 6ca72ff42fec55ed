/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * The engine with its metadata (group cursors, channel records) in a real
 * etcd that the test starts itself on free loopback ports.
 */
#include "util.h"
#include "lmq_stream.h"
#include "etcd_harness.h"
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static etcd_harness eh;
static char *dir;
static char uri[128];

static void setup(void) {
  memset(&eh, 0, sizeof eh);
  cr_assert_eq(eh_start(&eh, NULL), 0, "cannot start etcd: %s", eh.err);
  snprintf(uri, sizeof uri, "etcd://127.0.0.1:%d/lmq/test?timeout_ms=2000", eh.port);
  dir = tmpdir_new();
}
static void teardown(void) {
  eh_destroy(&eh);
  tmpdir_rm(dir);
}
TestSuite(engine_etcd, .init = setup, .fini = teardown, .timeout = 120);

static lmq_env *open_etcd(void) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = uri;
  o.autocommit_ms = 10;
  lmq_env *env = NULL;
  int rc = lmq_env_open(&env, dir, &o);
  cr_assert_eq(rc, 0, "open with %s: %s", uri, lmq_errmsg());
  return env;
}

Test(engine_etcd, groups_resume_at_committed_positions_after_reopen) {
  lmq_env *env = open_etcd();
  char g[16];
  cr_assert_eq(lmq_channel_create(env, "c"), 0, "%s", lmq_errmsg());
  for (int i = 0; i < 20; i++) {
    snprintf(g, sizeof g, "g%d", i);
    cr_assert_eq(lmq_group_create(env, "c", g, LMQ_START_EARLIEST), 0, "%s",
                 lmq_errmsg());
  }
  for (int i = 0; i < 30; i++) {
    char s[8];
    snprintf(s, sizeof s, "%d", i);
    put_str(env, "c", s);
  }
  /* Group i consumes i messages; auto-commit (and close) persist that. */
  for (int i = 0; i < 20; i++) {
    snprintf(g, sizeof g, "g%d", i);
    if (i) {
      lmq_msgs *m;
      cr_assert_eq(lmq_consume(&m, env, "c", g, (size_t)i, 0), i);
      lmq_msgs_free(m);
    }
  }
  lmq_env_close(env);
  /* The cursors are in etcd, under the URI's prefix. */
  char resp[4096];
  int st = eh_post(&eh, "/v3/kv/range",
                   "{\"key\":\"L2xtcS90ZXN0L2dyb3VwL2MvZzE1\"}", NULL, resp,
                   sizeof resp);
  cr_assert_eq(st, 200);
  cr_assert(strstr(resp, "\"kvs\""), "group cursor not in etcd: %s", resp);
  env = open_etcd();
  for (int i = 0; i < 20; i++) {
    snprintf(g, sizeof g, "g%d", i);
    lmq_msgs *m;
    cr_assert_eq(lmq_consume(&m, env, "c", g, 1, 0), 1);
    char want[8];
    snprintf(want, sizeof want, "%d", i);
    const lmq_msg *x = lmq_msgs_at(m, 0);
    cr_assert(x->len == strlen(want) && !memcmp(x->data, want, x->len),
              "group %s resumed at '%.*s', want '%s'", g, (int)x->len,
              (const char *)x->data, want);
    lmq_msgs_free(m);
  }
  lmq_env_close(env);
}

Test(engine_etcd, etcd_down_makes_commits_fail_cleanly_and_recover) {
  lmq_env *env = open_etcd();
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  put_str(env, "c", "a");
  put_str(env, "c", "b");
  lmq_msgs *m;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 1, 0), 1);
  lmq_msgs_free(m);
  cr_assert_eq(eh_stop(&eh), 0);
  uint64_t t0 = now_ms();
  int rc = lmq_group_commit(env, "c", "g");
  uint64_t dt = now_ms() - t0;
  cr_assert_eq(rc, LMQ_EUNAVAIL, "commit with etcd down: %d %s", rc, lmq_errmsg());
  cr_assert_lt(dt, 6000, "took %llu ms", (unsigned long long)dt);
  /* Producing and consuming do not depend on etcd. */
  put_str(env, "c", "c");
  cr_assert_eq(eh_restart(&eh), 0, "%s", eh.err);
  cr_assert_eq(lmq_group_commit(env, "c", "g"), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
  env = open_etcd();
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 10, 0), 2);
  lmq_msgs_free(m);
  lmq_env_close(env);
}

Test(engine_etcd, unreachable_etcd_at_open_is_eunavail) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  char bad[128];
  snprintf(bad, sizeof bad, "etcd://127.0.0.1:%d/x?timeout_ms=500", eh_free_port());
  o.meta_uri = bad;
  lmq_env *env = NULL;
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_EUNAVAIL, "%s", lmq_errmsg());
  cr_assert_null(env);
}

Test(engine_etcd, ids_stay_above_the_stores_high_water_mark_after_data_loss) {
  lmq_env *env = open_etcd();
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  /* Make the clock irrelevant: push IDs far into the future first. */
  lmq_id last = 0;
  for (int i = 0; i < 5; i++)
    last = put_str(env, "c", "x");
  lmq_env_checkpoint(env);
  lmq_env_close(env);
  /* The data directory is lost; the shared store is not. */
  tmpdir_rm(dir);
  dir = tmpdir_new();
  env = open_etcd();
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  lmq_id next = put_str(env, "c", "y");
  cr_assert_gt(next, last);
  lmq_env_close(env);
}

/* Auto-commit and the high-water-mark mirror used to run on the applier,
 * holding group mutexes across etcd retries: with etcd away, consumers of a
 * dirty group waited for the whole timeout (1.8-2.0 s with 2 s) and the WAL
 * apply stalled. A failed seek also moved the cursor, and a failed channel
 * create left the channel in place. */
Test(engine_etcd, etcd_away_stalls_nothing_and_failed_calls_change_nothing) {
  lmq_env *env = open_etcd();
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  for (int i = 0; i < 3000; i++) {
    lmq_buf b = {"x", 1};
    cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_NONE), 0);
  }
  cr_assert_eq(eh_stop(&eh), 0);
  uint64_t worst_c = 0, worst_p = 0, end = now_ms() + 2500;
  while (now_ms() < end) {
    uint64_t t0 = now_ms();
    lmq_msgs *m;
    cr_assert_eq(lmq_consume(&m, env, "c", "g", 1, 0), 1, "%s", lmq_errmsg());
    lmq_msgs_free(m);
    uint64_t t1 = now_ms();
    lmq_buf b = {"y", 1};
    cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_NONE), 0);
    uint64_t t2 = now_ms();
    if (t1 - t0 > worst_c)
      worst_c = t1 - t0;
    if (t2 - t1 > worst_p)
      worst_p = t2 - t1;
    usleep(2000);
  }
  cr_assert_lt(worst_c, 500, "a consume waited %llu ms on etcd",
               (unsigned long long)worst_c);
  cr_assert_lt(worst_p, 500, "a produce waited %llu ms on etcd",
               (unsigned long long)worst_p);
  lmq_group_stats before, after;
  cr_assert_eq(lmq_group_stats_get(&before, env, "c", "g"), 0);
  cr_assert_eq(lmq_seek_earliest(env, "c", "g"), LMQ_EUNAVAIL);
  cr_assert_eq(lmq_group_stats_get(&after, env, "c", "g"), 0);
  cr_assert_eq(after.cursor, before.cursor, "a failed seek moved the cursor");
  cr_assert_eq(lmq_channel_create(env, "d"), LMQ_EUNAVAIL, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_exists(env, "d"), 0, "a failed create left 'd'");
  cr_assert_eq(eh_restart(&eh), 0, "%s", eh.err);
  lmq_env_close(env);
  env = open_etcd();
  cr_assert_eq(lmq_channel_exists(env, "d"), 0, "'d' exists after reopen");
  lmq_env_close(env);
}

typedef struct racer {
  lmq_env *env;
  char group[16];
  int kind;
} racer;

static void *seek_or_commit_until_gone(void *arg) {
  racer *r = arg;
  for (;;) {
    int rc = r->kind ? lmq_seek_earliest(r->env, "c", r->group)
                     : lmq_group_commit(r->env, "c", r->group);
    if (rc == LMQ_ENOGROUP)
      return NULL;
    lmq_msgs *m;
    if (lmq_consume(&m, r->env, "c", r->group, 1, 0) >= 0)
      lmq_msgs_free(m);
  }
}

/* A seek or commit racing lmq_group_destroy persisted the cursor after the
 * destroy deleted it: with etcd, 9 of 100 destroyed groups (seek) and 6 of
 * 100 (commit) existed again after a reopen in an outside test. */
Test(engine_etcd, destroyed_groups_stay_destroyed_when_seeks_and_commits_race) {
  lmq_env *env = open_etcd();
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  for (int i = 0; i < 20; i++)
    put_str(env, "c", "x");
  racer r[40];
  for (int i = 0; i < 40; i++) {
    r[i].env = env;
    snprintf(r[i].group, sizeof r[i].group, "g%d", i);
    r[i].kind = i % 2;
    cr_assert_eq(lmq_group_create(env, "c", r[i].group, LMQ_START_EARLIEST), 0);
    pthread_t t;
    pthread_create(&t, NULL, seek_or_commit_until_gone, &r[i]);
    usleep((useconds_t)(1000 + rand() % 3000));
    cr_assert_eq(lmq_group_destroy(env, "c", r[i].group), 0, "%s", lmq_errmsg());
    pthread_join(t, NULL);
  }
  lmq_env_close(env);
  env = open_etcd();
  int back = 0;
  for (int i = 0; i < 40; i++)
    back += lmq_group_exists(env, "c", r[i].group) == 1;
  cr_assert_eq(back, 0, "%d of 40 destroyed groups came back after a reopen", back);
  lmq_env_close(env);
}

/* lmq_chansvc_create_channels promises 1..4096 names but sent n + 1
 * operations in one etcd transaction, which etcd refuses above 128. */
Test(engine_etcd, the_channel_service_creates_hundreds_of_channels_on_etcd) {
  lmq_env *env = open_etcd();
  lmq_stream_factory *f = NULL;
  cr_assert_eq(lmq_stream_factory_create(&f), 0);
  cr_assert_eq(lmq_stream_factory_set_env(f, env), 0);
  lmq_chansvc *svc = NULL;
  cr_assert_eq(lmq_chansvc_create(&svc, f), 0, "%s", lmq_errmsg());
  lmq_channel_owner o = {"proxy", "127.0.0.1:19530", "many"};
  char **names = NULL;
  cr_assert_eq(lmq_chansvc_create_channels(&names, svc, &o, 300), 0, "%s",
               lmq_errmsg());
  size_t n = 0;
  while (names[n])
    n++;
  cr_assert_eq(n, 300);
  lmq_channel_desc *d = NULL;
  cr_assert_eq(lmq_chansvc_describe_channels(&d, svc, (const char *const *)names, n),
               0, "%s", lmq_errmsg());
  cr_assert_str_eq(d[299].role, "proxy");
  lmq_channel_descs_free(d, n);
  cr_assert_eq(lmq_channel_exists(env, names[150]), 1);
  cr_assert_eq(lmq_chansvc_destroy_channels(svc, (const char *const *)names, n), 0,
               "%s", lmq_errmsg());
  lmq_strv_free(names);
  lmq_chansvc_destroy(svc);
  lmq_stream_factory_destroy(f);
  lmq_env_close(env);
}
