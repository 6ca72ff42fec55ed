/*
 * Retention under sustained load: it runs on its own clock, not only when
 * the applier is idle, so a producer that never pauses cannot push the
 * retained data far past the limit.
 */
#include "util.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
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
