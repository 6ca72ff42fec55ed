/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* The RocksDB (RocksMQ-layout) store: RocksMQ's own test behaviours. */
#include "stream/rocksmq.h"
#include "util.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char *dir;
static lmq_rmq *rmq;

static void setup(void) {
  dir = tmpdir_new();
  cr_assert_eq(lmq__rmq_open(&rmq, dir, LMQ_SYNC_ALWAYS), 0, "%s", lmq__rmq_errmsg());
}
static void teardown(void) {
  lmq__rmq_close(rmq);
  rmq = NULL;
  tmpdir_rm(dir);
}
static void reopen(void) {
  lmq__rmq_close(rmq);
  cr_assert_eq(lmq__rmq_open(&rmq, dir, LMQ_SYNC_ALWAYS), 0, "%s", lmq__rmq_errmsg());
}

static lmq_id put(const char *ch, const char *s) {
  lmq_buf b = {s, strlen(s)};
  lmq_id id;
  cr_assert_eq(lmq__rmq_produce(rmq, ch, &b, 1, &id, LMQ_SYNC_DEFAULT), 0, "%s",
               lmq__rmq_errmsg());
  return id;
}

static lmq_rmq_msgs *take(const char *ch, const char *g, size_t max, int expect) {
  lmq_rmq_msgs *m = NULL;
  int n = lmq__rmq_consume(&m, rmq, ch, g, max, 0);
  cr_assert_eq(n, expect, "consume %s/%s: got %d want %d (%s)", ch, g, n, expect,
               n < 0 ? lmq__rmq_errmsg() : "");
  return m;
}

static void assert_msg(const lmq_rmq_msgs *m, size_t i, const char *s) {
  cr_assert_lt(i, m->n);
  cr_assert_eq(m->msgs[i].len, strlen(s), "msg %zu length %zu, want '%s'", i,
               m->msgs[i].len, s);
  cr_assert(!memcmp(m->msgs[i].data, s, m->msgs[i].len), "msg %zu differs from '%s'", i,
            s);
}

TestSuite(rocksdb, .init = setup, .fini = teardown, .timeout = 60);

Test(rocksdb, produce_then_consume_in_order) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c1"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c1", "g", LMQ_START_EARLIEST), 0);
  lmq_buf b[3] = {{"a", 1}, {"bb", 2}, {"ccc", 3}};
  lmq_id ids[3];
  cr_assert_eq(lmq__rmq_produce(rmq, "c1", b, 3, ids, LMQ_SYNC_DEFAULT), 0);
  cr_assert(ids[0] < ids[1] && ids[1] < ids[2]);
  lmq_id later = put("c1", "dddd");
  cr_assert_gt(later, ids[2]);
  lmq_rmq_msgs *m = take("c1", "g", 10, 4);
  assert_msg(m, 0, "a");
  assert_msg(m, 1, "bb");
  assert_msg(m, 2, "ccc");
  assert_msg(m, 3, "dddd");
  for (int i = 0; i < 3; i++)
    cr_assert_eq(m->msgs[i].id, ids[i]);
  lmq__rmq_msgs_free(m);
  lmq__rmq_msgs_free(take("c1", "g", 10, 0));
}

Test(rocksdb, consume_in_small_batches_keeps_order) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  char s[16];
  for (int i = 0; i < 25; i++) {
    snprintf(s, sizeof s, "m%d", i);
    put("c", s);
  }
  int seen = 0;
  lmq_id prev = 0;
  for (int round = 0; round < 5; round++) {
    lmq_rmq_msgs *m = take("c", "g", 5, 5);
    for (size_t i = 0; i < m->n; i++, seen++) {
      snprintf(s, sizeof s, "m%d", seen);
      assert_msg(m, i, s);
      cr_assert_gt(m->msgs[i].id, prev);
      prev = m->msgs[i].id;
    }
    lmq__rmq_msgs_free(m);
  }
  cr_assert_eq(seen, 25);
}

Test(rocksdb, eleven_groups_each_get_all_ten_messages) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  char g[16], s[16];
  for (int i = 0; i < 11; i++) {
    snprintf(g, sizeof g, "g%d", i);
    cr_assert_eq(lmq__rmq_group_create(rmq, "c", g, LMQ_START_EARLIEST), 0);
  }
  for (int i = 0; i < 10; i++) {
    snprintf(s, sizeof s, "msg_%d", i);
    put("c", s);
  }
  for (int i = 0; i < 11; i++) {
    snprintf(g, sizeof g, "g%d", i);
    lmq_rmq_msgs *m = take("c", g, 100, 10);
    for (int j = 0; j < 10; j++) {
      snprintf(s, sizeof s, "msg_%d", j);
      assert_msg(m, (size_t)j, s);
    }
    lmq__rmq_msgs_free(m);
  }
}

Test(rocksdb, seek_to_the_fiftieth_of_a_hundred) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_id ids[100];
  char s[16];
  for (int i = 0; i < 100; i++) {
    snprintf(s, sizeof s, "%d", i);
    ids[i] = put("c", s);
  }
  cr_assert_eq(lmq__rmq_seek(rmq, "c", "g", ids[50]), 0);
  lmq_rmq_msgs *m = take("c", "g", 1, 1);
  cr_assert_eq(m->msgs[0].id, ids[50]);
  assert_msg(m, 0, "50");
  lmq__rmq_msgs_free(m);
  /* Backward too. */
  cr_assert_eq(lmq__rmq_seek(rmq, "c", "g", ids[3]), 0);
  m = take("c", "g", 1000, 97);
  assert_msg(m, 0, "3");
  assert_msg(m, 96, "99");
  lmq__rmq_msgs_free(m);
  /* Before the first lands on the first. */
  cr_assert_eq(lmq__rmq_seek(rmq, "c", "g", 1), 0);
  m = take("c", "g", 1, 1);
  cr_assert_eq(m->msgs[0].id, ids[0]);
  lmq__rmq_msgs_free(m);
}

Test(rocksdb, prefix_channels_do_not_leak) {
  /* "a" is a prefix of "a1"; "a-" and "a." sort before "a/" and "a0". */
  const char *names[] = {"a", "a1", "a-", "a.", "ab", "a0"};
  for (int i = 0; i < 6; i++) {
    cr_assert_eq(lmq__rmq_channel_create(rmq, names[i]), 0);
    cr_assert_eq(lmq__rmq_group_create(rmq, names[i], "g", LMQ_START_EARLIEST), 0);
  }
  for (int i = 0; i < 6; i++)
    for (int j = 0; j <= i; j++)
      put(names[i], names[i]);
  for (int i = 0; i < 6; i++) {
    lmq_rmq_msgs *m = take(names[i], "g", 100, i + 1);
    for (size_t j = 0; j < m->n; j++)
      assert_msg(m, j, names[i]);
    lmq__rmq_msgs_free(m);
    lmq_id last;
    cr_assert_eq(lmq__rmq_latest_id(&last, rmq, names[i]), 0);
  }
  /* Destroying "a" leaves "a1" and friends whole. */
  cr_assert_eq(lmq__rmq_channel_destroy(rmq, "a"), 0);
  cr_assert_eq(lmq__rmq_channel_exists(rmq, "a"), 0);
  reopen();
  cr_assert_eq(lmq__rmq_seek_earliest(rmq, "a1", "g"), 0);
  lmq__rmq_msgs_free(take("a1", "g", 100, 2));
  cr_assert_eq(lmq__rmq_seek_earliest(rmq, "a-", "g"), 0);
  lmq__rmq_msgs_free(take("a-", "g", 100, 3));
  cr_assert_eq(lmq__rmq_channel_create(rmq, "a"), 0);
  lmq_id last;
  cr_assert_eq(lmq__rmq_latest_id(&last, rmq, "a"), LMQ_EEMPTY);
  cr_assert_eq(lmq__rmq_group_create(rmq, "a", "g", LMQ_START_EARLIEST), 0);
  lmq__rmq_msgs_free(take("a", "g", 100, 0));
}

Test(rocksdb, empty_payloads) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_buf b[3] = {{NULL, 0}, {"x", 1}, {"", 0}};
  cr_assert_eq(lmq__rmq_produce(rmq, "c", b, 3, NULL, LMQ_SYNC_DEFAULT), 0);
  lmq_rmq_msgs *m = take("c", "g", 10, 3);
  cr_assert_eq(m->msgs[0].len, 0);
  assert_msg(m, 1, "x");
  cr_assert_eq(m->msgs[2].len, 0);
  lmq__rmq_msgs_free(m);
  /* A batch of only empty payloads. */
  cr_assert_eq(lmq__rmq_produce(rmq, "c", b, 1, NULL, LMQ_SYNC_DEFAULT), 0);
  m = take("c", "g", 10, 1);
  cr_assert_eq(m->msgs[0].len, 0);
  lmq__rmq_msgs_free(m);
}

Test(rocksdb, seek_to_latest_sees_only_newer) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  for (int i = 0; i < 5; i++)
    put("c", "old");
  cr_assert_eq(lmq__rmq_seek_latest(rmq, "c", "g"), 0);
  lmq__rmq_msgs_free(take("c", "g", 10, 0));
  put("c", "new");
  lmq_rmq_msgs *m = take("c", "g", 10, 1);
  assert_msg(m, 0, "new");
  lmq__rmq_msgs_free(m);
  /* A group created at latest behaves the same. */
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "late", LMQ_START_LATEST), 0);
  lmq__rmq_msgs_free(take("c", "late", 10, 0));
  put("c", "newer");
  m = take("c", "late", 10, 1);
  assert_msg(m, 0, "newer");
  lmq__rmq_msgs_free(m);
}

Test(rocksdb, latest_on_empty_channel_is_eempty) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  lmq_id id = 0;
  cr_assert_eq(lmq__rmq_latest_id(&id, rmq, "c"), LMQ_EEMPTY);
  cr_assert_eq(lmq__rmq_latest_id(&id, rmq, "nope"), LMQ_ENOCHANNEL);
  lmq_id put_id = put("c", "x");
  cr_assert_eq(lmq__rmq_latest_id(&id, rmq, "c"), 0);
  cr_assert_eq(id, put_id);
}

Test(rocksdb, reopen_resumes_at_committed_cursor) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  char s[16];
  lmq_id last = 0;
  for (int i = 0; i < 10; i++) {
    snprintf(s, sizeof s, "%d", i);
    last = put("c", s);
  }
  lmq__rmq_msgs_free(take("c", "g", 4, 4));
  cr_assert_eq(lmq__rmq_group_commit(rmq, "c", "g"), 0);
  lmq__rmq_msgs_free(take("c", "g", 3, 3)); /* consumed, not committed */
  reopen();
  lmq_rmq_msgs *m = take("c", "g", 100, 6);
  assert_msg(m, 0, "4");
  assert_msg(m, 5, "9");
  lmq__rmq_msgs_free(m);
  /* IDs keep increasing after a reopen. */
  cr_assert_gt(put("c", "after"), last);
  lmq_id latest;
  cr_assert_eq(lmq__rmq_latest_id(&latest, rmq, "c"), 0);
  cr_assert_gt(latest, last);
}

static void *late_producer(void *arg) {
  (void)arg;
  struct timespec ts = {0, 50 * 1000000};
  nanosleep(&ts, NULL);
  lmq_buf b = {"wake", 4};
  lmq__rmq_produce(rmq, "c", &b, 1, NULL, LMQ_SYNC_DEFAULT);
  return NULL;
}

Test(rocksdb, blocking_consume_wakes_and_times_out) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_EARLIEST), 0);
  int fd;
  cr_assert_eq(lmq__rmq_group_fd(&fd, rmq, "c", "g"), 0);
  struct pollfd p = {fd, POLLIN, 0};
  cr_assert_eq(poll(&p, 1, 0), 0, "fd readable with nothing to consume");
  lmq_rmq_msgs *m;
  uint64_t t0 = now_ms();
  cr_assert_eq(lmq__rmq_consume(&m, rmq, "c", "g", 10, 100), 0);
  cr_assert_geq(now_ms() - t0, 90);
  lmq__rmq_msgs_free(m);
  pthread_t th;
  pthread_create(&th, NULL, late_producer, NULL);
  cr_assert_eq(lmq__rmq_consume(&m, rmq, "c", "g", 10, 10000), 1);
  assert_msg(m, 0, "wake");
  lmq__rmq_msgs_free(m);
  pthread_join(th, NULL);
  cr_assert_eq(poll(&p, 1, 0), 0, "fd stays readable after catching up");
  put("c", "x");
  cr_assert_eq(poll(&p, 1, 0), 1, "fd not readable after produce");
}

Test(rocksdb, bad_input_is_an_error) {
  lmq_buf b = {"x", 1};
  cr_assert_eq(lmq__rmq_channel_create(rmq, "a/b"), LMQ_EINVAL);
  cr_assert_eq(lmq__rmq_channel_create(rmq, ""), LMQ_EINVAL);
  cr_assert_eq(lmq__rmq_channel_create(rmq, NULL), LMQ_EINVAL);
  cr_assert_eq(lmq__rmq_produce(rmq, "nope", &b, 1, NULL, 0), LMQ_ENOCHANNEL);
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_produce(rmq, "c", &b, 0, NULL, 0), LMQ_EINVAL);
  lmq_rmq_msgs *m;
  cr_assert_eq(lmq__rmq_consume(&m, rmq, "c", "nog", 1, 0), LMQ_ENOGROUP);
  cr_assert_eq(lmq__rmq_group_destroy(rmq, "c", "nog"), LMQ_ENOGROUP);
  cr_assert_eq(lmq__rmq_channel_destroy(rmq, "nope"), LMQ_ENOCHANNEL);
  lmq_rmq *second;
  cr_assert_eq(lmq__rmq_open(&second, dir, LMQ_SYNC_ALWAYS), LMQ_EBUSY, "%s",
               lmq__rmq_errmsg());
}

/* Seek past the newest message = from the next one produced. IDs follow the
 * clock, so one produced in the same millisecond as a seek to "newest + 10"
 * used to be skipped (9 of 10 Milvus-style trials). */
Test(rocksdb, seek_past_the_end_delivers_the_next_message) {
  cr_assert_eq(lmq__rmq_channel_create(rmq, "c"), 0);
  cr_assert_eq(lmq__rmq_group_create(rmq, "c", "g", LMQ_START_LATEST), 0);
  int missed = 0;
  for (int i = 0; i < 100; i++) {
    lmq_id last = put("c", "old");
    cr_assert_eq(lmq__rmq_seek(rmq, "c", "g", last + 10), 0);
    lmq_id id = put("c", "new");
    lmq_rmq_msgs *m = NULL;
    int n = lmq__rmq_consume(&m, rmq, "c", "g", 10, 0);
    cr_assert_geq(n, 0);
    if (n != 1 || m->msgs[0].id != id)
      missed++;
    lmq__rmq_msgs_free(m);
  }
  cr_assert_eq(missed, 0, "%d of 100 messages after a seek past the end missed",
               missed);
}
