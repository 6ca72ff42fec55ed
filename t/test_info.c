/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * The growable info structs: they report what the fixed stats structs
 * report, plus their own fields, and never write past the size the caller
 * says it knows (a program built against an older, shorter struct).
 */
#include "util.h"
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

static char *dir;
static lmq_env *env;

static void setup(void) {
  dir = tmpdir_new();
  env = open_env(dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_buf b[10];
  for (int i = 0; i < 10; i++)
    b[i] = (lmq_buf){"m", 1};
  cr_assert_eq(lmq_produce(env, "c", b, 10, NULL, LMQ_SYNC_NONE), 0);
}
static void teardown(void) {
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(info, group_info_matches_group_stats, .init = setup, .fini = teardown) {
  lmq_msgs *m;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 4, 0), 4);
  lmq_msgs_free(m);
  lmq_group_stats st;
  cr_assert_eq(lmq_group_stats_get(&st, env, "c", "g"), 0);
  lmq_group_info gi = LMQ_GROUP_INFO_INIT;
  cr_assert_eq(lmq_group_info_get(&gi, env, "c", "g"), 0, "%s", lmq_errmsg());
  cr_assert_eq(gi.size, sizeof gi);
  cr_assert_eq(gi.cursor, st.cursor);
  cr_assert_eq(gi.committed, st.committed);
  cr_assert_eq(gi.lag, 6);
  cr_assert_eq(gi.uncommitted, 1);
  cr_assert_eq(lmq_group_commit(env, "c", "g"), 0);
  cr_assert_eq(lmq_group_info_get(&gi, env, "c", "g"), 0);
  cr_assert_eq(gi.uncommitted, 0);
  cr_assert_eq(lmq_group_info_get(&gi, env, "c", "nope"), LMQ_ENOGROUP);
}

Test(info, env_info_adds_the_memory_figures, .init = setup, .fini = teardown) {
  lmq_env_info ei = LMQ_ENV_INFO_INIT;
  cr_assert_eq(lmq_env_info_get(&ei, env), 0, "%s", lmq_errmsg());
  lmq_env_stats st;
  cr_assert_eq(lmq_env_stats_get(&st, env), 0);
  cr_assert_eq(ei.channels, st.channels);
  cr_assert_eq(ei.map_size, st.map_size);
  cr_assert_geq(ei.produced, 10);
  lmq_env_options def = LMQ_ENV_OPTIONS_INIT;
  cr_assert_eq(ei.max_unapplied, def.max_unapplied);
  cr_assert_leq(ei.unapplied_memory, ei.max_unapplied + (1u << 20));
}

/* A caller that knows a shorter struct: nothing past its size is written,
 * and the size it gets back is the one it gave. */
Test(info, an_older_shorter_struct_is_not_overrun, .init = setup, .fini = teardown) {
  struct {
    lmq_env_info info;
    unsigned char guard[64];
  } e;
  memset(&e, 0xA5, sizeof e);
  e.info.size = (uint32_t)offsetof(lmq_env_info, unapplied_memory);
  cr_assert_eq(lmq_env_info_get(&e.info, env), 0, "%s", lmq_errmsg());
  cr_assert_eq(e.info.size, offsetof(lmq_env_info, unapplied_memory));
  const unsigned char *p = (const unsigned char *)&e.info;
  for (size_t i = offsetof(lmq_env_info, unapplied_memory); i < sizeof e; i++)
    cr_assert_eq(p[i], 0xA5, "byte %zu past the caller's size was written", i);
  cr_assert_eq(e.info.channels, 1);
  lmq_group_info gi;
  memset(&gi, 0xA5, sizeof gi);
  gi.size = 4; /* too small to hold anything */
  cr_assert_eq(lmq_group_info_get(&gi, env, "c", "g"), LMQ_EINVAL);
  cr_assert_eq(lmq_env_info_get(NULL, env), LMQ_EINVAL);
}
