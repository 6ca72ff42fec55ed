/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* Bad input gets an error code and a message, never a crash. */
#include "util.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static lmq_env *env;
static void setup(void) {
  dir = tmpdir_new();
  env = open_env(dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
}
static void teardown(void) {
  lmq_env_close(env);
  tmpdir_rm(dir);
}
TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 30);

#define EXPECT(call, code)                                                     \
  do {                                                                         \
    int rc_ = (call);                                                          \
    cr_assert_eq(rc_, (code), "%s returned %d (%s), want %s", #call, rc_,      \
                 lmq_strerror(rc_), lmq_strerror(code));                       \
    cr_assert_neq(lmq_errmsg()[0], '\0', "%s left no message", #call);         \
  } while (0)

Test(badinput, null_handles_and_outputs_are_einval) {
  lmq_buf b = {"x", 1};
  lmq_msgs *m;
  lmq_id id;
  EXPECT(lmq_env_open(NULL, dir, NULL), LMQ_EINVAL);
  lmq_env *e;
  EXPECT(lmq_env_open(&e, NULL, NULL), LMQ_EINVAL);
  EXPECT(lmq_env_open(&e, "", NULL), LMQ_EINVAL);
  EXPECT(lmq_channel_create(NULL, "c"), LMQ_EINVAL);
  EXPECT(lmq_produce(NULL, "c", &b, 1, NULL, 0), LMQ_EINVAL);
  EXPECT(lmq_produce(env, "c", NULL, 1, NULL, 0), LMQ_EINVAL);
  EXPECT(lmq_produce(env, "c", &b, 0, NULL, 0), LMQ_EINVAL);
  lmq_buf nul = {NULL, 3};
  EXPECT(lmq_produce(env, "c", &nul, 1, NULL, 0), LMQ_EINVAL);
  EXPECT(lmq_produce(env, "c", &b, 1, NULL, 42), LMQ_EINVAL);
  EXPECT(lmq_consume(NULL, env, "c", "g", 1, 0), LMQ_EINVAL);
  EXPECT(lmq_consume(&m, env, "c", "g", 0, 0), LMQ_EINVAL);
  EXPECT(lmq_consume(&m, NULL, "c", "g", 1, 0), LMQ_EINVAL);
  EXPECT(lmq_latest_id(NULL, env, "c"), LMQ_EINVAL);
  EXPECT(lmq_latest_id(&id, env, NULL), LMQ_EINVAL);
  EXPECT(lmq_group_create(env, "c", "g2", 7), LMQ_EINVAL);
  EXPECT(lmq_channel_list(NULL, NULL, env), LMQ_EINVAL);
  EXPECT(lmq_env_stats_get(NULL, env), LMQ_EINVAL);
  lmq_env_close(NULL);
  lmq_msgs_free(NULL);
  lmq_strv_free(NULL);
  cr_assert_eq(lmq_msgs_count(NULL), 0);
  cr_assert_null(lmq_msgs_at(NULL, 0));
}

Test(badinput, invalid_names_are_einval_with_a_message) {
  char longname[300];
  memset(longname, 'a', sizeof longname - 1);
  longname[299] = '\0';
  const char *bad[] = {"", "a/b", "has space", "tab\t", "\xc3\xa9t\xc3\xa9", longname,
                       "semi;colon", "c:x"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    EXPECT(lmq_channel_create(env, bad[i]), LMQ_EINVAL);
    EXPECT(lmq_group_create(env, "c", bad[i], LMQ_START_EARLIEST), LMQ_EINVAL);
  }
  EXPECT(lmq_channel_create(env, NULL), LMQ_EINVAL);
  cr_assert(strstr(lmq_errmsg(), "NULL"));
  longname[255] = '\0'; /* exactly 255 bytes is fine */
  cr_assert_eq(lmq_channel_create(env, longname), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "A.b_c-9"), 0);
}

Test(badinput, unknown_channel_or_group_is_reported) {
  lmq_buf b = {"x", 1};
  lmq_msgs *m;
  EXPECT(lmq_produce(env, "nope", &b, 1, NULL, 0), LMQ_ENOCHANNEL);
  cr_assert(strstr(lmq_errmsg(), "nope"));
  EXPECT(lmq_consume(&m, env, "nope", "g", 1, 0), LMQ_ENOCHANNEL);
  EXPECT(lmq_consume(&m, env, "c", "nope", 1, 0), LMQ_ENOGROUP);
  EXPECT(lmq_seek(env, "c", "nope", 1), LMQ_ENOGROUP);
  EXPECT(lmq_group_commit(env, "c", "nope"), LMQ_ENOGROUP);
  EXPECT(lmq_group_create(env, "nope", "g", LMQ_START_EARLIEST), LMQ_ENOCHANNEL);
  EXPECT(lmq_group_destroy(env, "c", "nope"), LMQ_ENOGROUP);
  EXPECT(lmq_channel_destroy(env, "nope"), LMQ_ENOCHANNEL);
  cr_assert_eq(lmq_channel_exists(env, "nope"), 0);
  cr_assert_eq(lmq_group_exists(env, "c", "nope"), 0);
}

Test(badinput, oversize_message_is_etoobig_and_stores_nothing) {
  lmq_env_close(env);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.max_message_size = 1000;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0);
  char *big = calloc(1, 1001);
  lmq_buf b[2] = {{"ok", 2}, {big, 1001}};
  EXPECT(lmq_produce(env, "c", b, 2, NULL, 0), LMQ_ETOOBIG);
  lmq_buf fit = {big, 1000};
  cr_assert_eq(lmq_produce(env, "c", &fit, 1, NULL, 0), 0);
  lmq_msgs *m;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 10, 0), 1, "the batch was atomic");
  lmq_msgs_free(m);
  free(big);
}

Test(badinput, bad_options_are_einval) {
  lmq_env *e;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.version = 99;
  EXPECT(lmq_env_open(&e, dir, &o), LMQ_EINVAL);
  o = (lmq_env_options)LMQ_ENV_OPTIONS_INIT;
  o.sync = 9;
  EXPECT(lmq_env_open(&e, dir, &o), LMQ_EINVAL);
  o = (lmq_env_options)LMQ_ENV_OPTIONS_INIT;
  o.map_size = 10;
  EXPECT(lmq_env_open(&e, dir, &o), LMQ_EINVAL);
  o = (lmq_env_options)LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = "zookeeper://x";
  lmq_env_close(env); /* release the directory so the URI is what fails */
  env = NULL;
  EXPECT(lmq_env_open(&e, dir, &o), LMQ_EINVAL);
  env = open_env(dir, LMQ_SYNC_NONE);
}

Test(badinput, use_after_close_is_eclosed) {
  lmq_env *e = env;
  lmq_env_close(env);
  env = NULL;
  lmq_buf b = {"x", 1};
  lmq_msgs *m;
  EXPECT(lmq_produce(e, "c", &b, 1, NULL, 0), LMQ_ECLOSED);
  EXPECT(lmq_consume(&m, e, "c", "g", 1, 0), LMQ_ECLOSED);
  EXPECT(lmq_channel_create(e, "d"), LMQ_ECLOSED);
  EXPECT(lmq_env_checkpoint(e), LMQ_ECLOSED);
  lmq_env_close(e); /* a second close is ignored */
}

Test(badinput, a_non_directory_path_is_an_io_error) {
  lmq_env *e;
  int rc = lmq_env_open(&e, "/proc/version/x", NULL);
  cr_assert(rc == LMQ_EIO || rc == LMQ_ENOSPC, "rc %d", rc);
  cr_assert_neq(lmq_errmsg()[0], '\0');
}
