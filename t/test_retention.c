/*
 * Retention under sustained load: it runs on its own clock, not only when
 * the applier is idle, so a producer that never pauses cannot push the
 * retained data far past the limit.
 */
#include "util.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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
