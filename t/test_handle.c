/*
 * Channel and consumer handles: the same behaviour as the name-based calls,
 * and what happens to a handle whose channel or group is destroyed while
 * it is held (calls fail cleanly, the handle still closes, a destroy does
 * not wait for open handles, and a re-created channel of the same name is
 * not reached through the old handle).
 */
#define _GNU_SOURCE
#include "util.h"
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dir;
static lmq_env *env;

static void setup(void) {
  dir = tmpdir_new();
  env = open_env(dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
}
static void teardown(void) {
  lmq_env_close(env);
  tmpdir_rm(dir);
}

static int hput(lmq_channel *h, const char *s, lmq_id *id) {
  lmq_buf b = {s, strlen(s)};
  return lmq_channel_produce(h, &b, 1, id, LMQ_SYNC_DEFAULT);
}

Test(handle, produce_and_consume_match_the_name_based_calls, .init = setup,
     .fini = teardown) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_str_eq(lmq_channel_name(h), "c");
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  cr_assert_str_eq(lmq_consumer_group(c), "g");
  lmq_id a, b, latest;
  cr_assert_eq(hput(h, "one", &a), 0);
  b = put_str(env, "c", "two"); /* by name: the same channel */
  cr_assert_gt(b, a);
  cr_assert_eq(lmq_channel_latest_id(&latest, h), 0);
  cr_assert_eq(latest, b);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), 2);
  cr_assert_eq(lmq_msgs_at(m, 0)->id, a);
  cr_assert_eq(memcmp(lmq_msgs_at(m, 1)->data, "two", 3), 0);
  lmq_msgs_free(m);
  /* The consumer handle and the name share the group's cursor. */
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 10, 0), 0);
  lmq_msgs_free(m);
  cr_assert_eq(lmq_consumer_commit(c), 0);
  lmq_group_stats st;
  cr_assert_eq(lmq_group_stats_get(&st, env, "c", "g"), 0);
  cr_assert_eq(st.committed, b + 1);
  cr_assert_eq(lmq_consumer_seek(c, a), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), 2);
  lmq_msgs_free(m);
  cr_assert_eq(lmq_consumer_rewind(c), 0); /* back to the seek's commit */
  cr_assert_eq(lmq_consumer_consume(&m, c, 1, 0), 1);
  cr_assert_eq(lmq_msgs_at(m, 0)->id, a);
  lmq_msgs_free(m);
  cr_assert_eq(lmq_consumer_ack(c, b), 0);
  cr_assert_eq(lmq_group_stats_get(&st, env, "c", "g"), 0);
  cr_assert_eq(st.committed, b + 1);
  cr_assert_eq(lmq_consumer_seek_latest(c), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), 0);
  lmq_msgs_free(m);
  cr_assert_eq(lmq_consumer_seek_earliest(c), 0);
  cr_assert_eq(lmq_consumer_seek_time(c, lmq_id_time(b)), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), lmq_id_time(a) == lmq_id_time(b) ? 2 : 1);
  lmq_msgs_free(m);
  int fd = -1;
  cr_assert_eq(lmq_consumer_fd(&fd, c), 0);
  cr_assert_geq(fd, 0);
  lmq_consumer_close(c);
  lmq_channel_close(h);
}

Test(handle, bad_arguments_are_errors, .init = setup, .fini = teardown) {
  lmq_channel *h = (lmq_channel *)1;
  cr_assert_eq(lmq_channel_open(&h, env, "nope"), LMQ_ENOCHANNEL);
  cr_assert_null(h);
  cr_assert_eq(lmq_channel_open(&h, env, "a/b"), LMQ_EINVAL);
  cr_assert_eq(lmq_channel_open(NULL, env, "c"), LMQ_EINVAL);
  cr_assert_eq(lmq_channel_open(&h, NULL, "c"), LMQ_EINVAL);
  lmq_buf b = {"x", 1};
  cr_assert_eq(lmq_channel_produce(NULL, &b, 1, NULL, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_channel_produce(h, NULL, 1, NULL, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_channel_produce(h, &b, 0, NULL, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_channel_produce(h, &b, 1, NULL, 99), LMQ_EINVAL);
  lmq_id id;
  cr_assert_eq(lmq_channel_latest_id(&id, h), LMQ_EEMPTY);
  lmq_consumer *c = (lmq_consumer *)1;
  cr_assert_eq(lmq_consumer_open(&c, h, "nope"), LMQ_ENOGROUP);
  cr_assert_null(c);
  cr_assert_eq(lmq_consumer_open(&c, h, ""), LMQ_EINVAL);
  cr_assert_eq(lmq_consumer_open(&c, NULL, "g"), LMQ_EINVAL);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consumer_consume(&m, NULL, 1, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_consumer_commit(NULL), LMQ_EINVAL);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 0, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_consumer_ack(c, 0), LMQ_EINVAL);
  cr_assert_eq(lmq_consumer_seek_time(c, UINT64_MAX), LMQ_EINVAL);
  lmq_consumer_close(c);
  lmq_channel_close(h);
  lmq_channel_close(NULL);
  lmq_consumer_close(NULL);
  cr_assert_null(lmq_channel_name(NULL));
}

/* The handle outlives its channel: every call fails with ENOCHANNEL, the
 * destroy did not wait for the handle, close still works, and a new
 * channel of the same name is not reached through the old handle. */
Test(handle, produce_through_a_stale_handle_is_enochannel, .init = setup,
     .fini = teardown, .timeout = 20) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  cr_assert_eq(hput(h, "before", NULL), 0);
  cr_assert_eq(lmq_channel_destroy(env, "c"), 0); /* handles held: no wait */
  cr_assert_eq(hput(h, "after", NULL), LMQ_ENOCHANNEL);
  lmq_id id;
  cr_assert_eq(lmq_channel_latest_id(&id, h), LMQ_ENOCHANNEL);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), LMQ_ENOCHANNEL);
  cr_assert_null(m);
  cr_assert_eq(lmq_consumer_commit(c), LMQ_ENOCHANNEL);
  cr_assert_eq(lmq_consumer_seek_earliest(c), LMQ_ENOCHANNEL);
  int fd;
  cr_assert_eq(lmq_consumer_fd(&fd, c), LMQ_ENOCHANNEL);
  lmq_consumer *c2 = NULL;
  cr_assert_eq(lmq_consumer_open(&c2, h, "g"), LMQ_ENOCHANNEL);
  /* Re-created under the same name: a different channel. */
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(hput(h, "again", NULL), LMQ_ENOCHANNEL);
  lmq_channel *h2 = NULL;
  cr_assert_eq(lmq_channel_open(&h2, env, "c"), 0);
  cr_assert_eq(hput(h2, "new", NULL), 0);
  lmq_channel_stats cs;
  cr_assert_eq(lmq_channel_stats_get(&cs, env, "c"), 0);
  cr_assert_eq(cs.messages, 1);
  lmq_consumer_close(c);
  lmq_channel_close(h);
  lmq_channel_close(h2);
}

Test(handle, destroyed_group_is_enogroup_through_its_handle, .init = setup,
     .fini = teardown) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  lmq_channel_close(h); /* the consumer does not need the channel handle */
  put_str(env, "c", "x");
  cr_assert_eq(lmq_group_destroy(env, "c", "g"), 0);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), LMQ_ENOGROUP);
  cr_assert_eq(lmq_consumer_commit(c), LMQ_ENOGROUP);
  cr_assert_eq(lmq_consumer_ack(c, 1), LMQ_ENOGROUP);
  cr_assert_eq(lmq_consumer_seek_latest(c), LMQ_ENOGROUP);
  cr_assert_eq(lmq_consumer_rewind(c), LMQ_ENOGROUP);
  int fd;
  cr_assert_eq(lmq_consumer_fd(&fd, c), LMQ_ENOGROUP);
  /* A new group of that name is not the handle's. */
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 0), LMQ_ENOGROUP);
  cr_assert_eq(lmq_group_stats_get(&(lmq_group_stats){0}, env, "c", "g"), 0);
  lmq_consumer_close(c);
}

typedef struct blocker {
  lmq_consumer *c;
  int rc;
} blocker;

static void *block_consume(void *arg) {
  blocker *b = arg;
  lmq_msgs *m = NULL;
  b->rc = lmq_consumer_consume(&m, b->c, 10, 10000);
  lmq_msgs_free(m);
  return NULL;
}

/* A consumer blocked inside a handle call wakes with ENOCHANNEL, and the
 * destroy waits for it to leave (not for the handle to close). */
Test(handle, destroy_wakes_a_consumer_blocked_in_a_handle_call, .init = setup,
     .fini = teardown, .timeout = 20) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_LATEST), 0);
  blocker b = {NULL, 1};
  cr_assert_eq(lmq_consumer_open(&b.c, h, "g"), 0);
  pthread_t t;
  pthread_create(&t, NULL, block_consume, &b);
  usleep(100000);
  cr_assert_eq(lmq_channel_destroy(env, "c"), 0);
  pthread_join(t, NULL);
  cr_assert_eq(b.rc, LMQ_ENOCHANNEL);
  lmq_consumer_close(b.c);
  lmq_channel_close(h);
}

typedef struct racer {
  lmq_channel *h;
  atomic_int *stop;
  atomic_long ok, gone;
  int bad;
} racer;

static void *produce_until_gone(void *arg) {
  racer *r = arg;
  char s[16] = "m";
  while (!atomic_load(r->stop)) {
    int rc = hput(r->h, s, NULL);
    if (rc == 0)
      r->ok++;
    else if (rc == LMQ_ENOCHANNEL)
      r->gone++;
    else
      r->bad = rc;
  }
  return NULL;
}

/* Producers hammer one handle while the channel is destroyed and
 * re-created: each call either succeeds or is ENOCHANNEL, nothing crashes
 * or hangs, and nothing reaches the re-created channel. */
Test(handle, destroy_while_producers_use_the_handle, .init = setup,
     .fini = teardown, .timeout = 60) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  atomic_int stop = 0;
  racer r[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    r[i].h = h;
    r[i].stop = &stop;
    atomic_init(&r[i].ok, 0);
    atomic_init(&r[i].gone, 0);
    r[i].bad = 0;
    pthread_create(&t[i], NULL, produce_until_gone, &r[i]);
  }
  /* Destroy once produces are going through (a synced produce can take
   * long on a busy disk: a fixed sleep sometimes saw none), and stop once
   * some calls have found the channel gone. */
  for (int w = 0; w < 2000 && !atomic_load(&r[0].ok) && !atomic_load(&r[1].ok); w++)
    usleep(10000);
  cr_assert_eq(lmq_channel_destroy(env, "c"), 0);
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  for (int w = 0; w < 2000 && !atomic_load(&r[0].gone) && !atomic_load(&r[1].gone) &&
                  !atomic_load(&r[2].gone) && !atomic_load(&r[3].gone); w++)
    usleep(10000);
  usleep(20000);
  atomic_store(&stop, 1);
  long ok = 0, gone = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(r[i].bad, 0, "unexpected error %d", r[i].bad);
    ok += r[i].ok;
    gone += r[i].gone;
  }
  cr_assert_gt(ok, 0);
  cr_assert_gt(gone, 0);
  lmq_channel_stats cs;
  cr_assert_eq(lmq_channel_stats_get(&cs, env, "c"), 0);
  cr_assert_eq(cs.messages, 0);
  cr_assert_eq(cs.last_id, 0);
  lmq_channel_close(h);
}

/* Handles survive a channel with messages applied to LMDB and reopened
 * data (the handle reads LMDB, not only the tail). */
Test(handle, consume_reads_applied_messages, .init = setup, .fini = teardown) {
  lmq_channel *h = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_buf v[100];
  for (int i = 0; i < 100; i++)
    v[i] = (lmq_buf){"p", 1};
  lmq_id ids[100];
  cr_assert_eq(lmq_channel_produce(h, v, 100, ids, LMQ_SYNC_ALWAYS), 0);
  cr_assert_eq(lmq_env_checkpoint(env), 0);
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consumer_consume(&m, c, 1000, 0), 100);
  cr_assert_eq(lmq_msgs_at(m, 99)->id, ids[99]);
  lmq_msgs_free(m);
  lmq_consumer_close(c);
  lmq_channel_close(h);
}

/* A group created at the earliest of an empty channel has cursor 0; a
 * consume with a timeout used to spin forever on it (found by
 * t/stress_handles). Both the name and the handle must time out. */
Test(handle, consume_on_an_empty_channel_times_out, .init = setup,
     .fini = teardown, .timeout = 20) {
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_msgs *m = NULL;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 10, 50), 0);
  lmq_msgs_free(m);
  lmq_channel *h = NULL;
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0);
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0);
  cr_assert_eq(lmq_consumer_consume(&m, c, 10, 50), 0);
  lmq_msgs_free(m);
  lmq_consumer_close(c);
  lmq_channel_close(h);
}

/* A read-only env (LMQ_OPEN_RDONLY) refuses every write through a handle as
 * through a name, and still reads. */
Test(handle, a_read_only_env_refuses_writes_through_handles, .init = setup,
     .fini = teardown) {
  lmq_buf b = {"x", 1};
  cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_ALWAYS), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_env_close(env);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.flags = LMQ_OPEN_RDONLY;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_channel *h = NULL;
  lmq_consumer *c = NULL;
  cr_assert_eq(lmq_channel_open(&h, env, "c"), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_consumer_open(&c, h, "g"), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_produce(h, &b, 1, NULL, LMQ_SYNC_DEFAULT), LMQ_ENOTSUP);
  cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_DEFAULT), LMQ_ENOTSUP);
  cr_assert_eq(lmq_consumer_commit(c), LMQ_ENOTSUP);
  cr_assert_eq(lmq_consumer_ack(c, 1), LMQ_ENOTSUP);
  cr_assert_eq(lmq_consumer_seek_earliest(c), LMQ_ENOTSUP);
  lmq_id latest = 0;
  cr_assert_eq(lmq_channel_latest_id(&latest, h), 0);
  cr_assert_neq(latest, 0);
  lmq_consumer_close(c);
  lmq_channel_close(h);
}
