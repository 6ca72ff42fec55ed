/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * stress_threads - many threads on one env at once: producers with mixed
 * sync policies, consumers sharing groups, seekers, a channel being
 * destroyed and re-created, stats readers, checkpoints and auto-commit.
 * Checks that no message is consumed twice within a group between seeks
 * and that every produced message reaches the stable group exactly once.
 *
 * A plain program emitting TAP (not Criterion) so that it also runs under
 * ThreadSanitizer (`./configure --enable-tsan && make check
 * TESTS=t/stress_threads`), where Criterion's fork arena cannot start.
 */
#define _GNU_SOURCE
#include "lmq.h"

#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRODUCERS 6
#define PER_PRODUCER 3000
#define CONSUMERS 4

static lmq_env *env;
static atomic_int failures, producers_done;
static atomic_long consumed_stable;
static unsigned char *seen; /* per message index, in the stable group */

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, __VA_ARGS__);                                              \
    fprintf(stderr, " (%s)\n", lmq_errmsg());                                  \
    atomic_fetch_add(&failures, 1);                                            \
  } while (0)

static void *producer(void *arg) {
  long p = (long)arg;
  int syncs[] = {LMQ_SYNC_ALWAYS, LMQ_SYNC_NONE, LMQ_SYNC_INTERVAL};
  for (int i = 0; i < PER_PRODUCER;) {
    int n = 1 + (i % 7);
    if (i + n > PER_PRODUCER)
      n = PER_PRODUCER - i;
    char bufs[8][16];
    lmq_buf b[8];
    for (int j = 0; j < n; j++) {
      long idx = p * PER_PRODUCER + i + j;
      snprintf(bufs[j], sizeof bufs[j], "%ld", idx);
      b[j] = (lmq_buf){bufs[j], strlen(bufs[j])};
    }
    if (lmq_produce(env, "main", b, (size_t)n, NULL, syncs[i % 3]))
      FAIL("produce");
    /* Churn on a second channel that is destroyed under our feet. */
    lmq_buf x = {"x", 1};
    int rc = lmq_produce(env, "churn", &x, 1, NULL, LMQ_SYNC_NONE);
    if (rc && rc != LMQ_ENOCHANNEL)
      FAIL("produce churn %d", rc);
    i += n;
  }
  atomic_fetch_add(&producers_done, 1);
  return NULL;
}

static void *consumer(void *arg) {
  (void)arg;
  for (;;) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "main", "stable", 64, 20);
    if (n < 0) {
      FAIL("consume");
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      char s[32];
      memcpy(s, x->data, x->len);
      s[x->len] = '\0';
      long idx = atol(s);
      if (idx < 0 || idx >= PRODUCERS * PER_PRODUCER)
        FAIL("bad payload %s", s);
      else if (__atomic_exchange_n(&seen[idx], 1, __ATOMIC_RELAXED))
        FAIL("message %ld consumed twice", idx);
    }
    lmq_msgs_free(m);
    if (atomic_fetch_add(&consumed_stable, n) + n >= PRODUCERS * PER_PRODUCER)
      return NULL;
    if (n == 0 && atomic_load(&producers_done) == PRODUCERS &&
        atomic_load(&consumed_stable) >= PRODUCERS * PER_PRODUCER)
      return NULL;
  }
}

static void *chaos(void *arg) {
  (void)arg;
  int fd = -1;
  lmq_group_fd(&fd, env, "main", "seeker");
  while (atomic_load(&producers_done) < PRODUCERS) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "main", "seeker", 100, 0);
    if (n < 0)
      FAIL("seeker consume");
    if (n > 0 && rand() % 4 == 0)
      lmq_seek(env, "main", "seeker", lmq_msgs_at(m, 0)->id);
    lmq_msgs_free(m);
    if (rand() % 50 == 0)
      lmq_seek_earliest(env, "main", "seeker");
    if (rand() % 50 == 0)
      lmq_seek_latest(env, "main", "seeker");
    struct pollfd p = {fd, POLLIN, 0};
    poll(&p, 1, 0);
    lmq_channel_stats cs;
    lmq_group_stats gs;
    lmq_env_stats es;
    lmq_channel_stats_get(&cs, env, "main");
    lmq_group_stats_get(&gs, env, "main", "stable");
    lmq_env_stats_get(&es, env);
    if (rand() % 20 == 0) {
      lmq_channel_destroy(env, "churn");
      lmq_channel_create(env, "churn");
      lmq_group_create(env, "churn", "g", LMQ_START_EARLIEST);
    }
    if (rand() % 40 == 0)
      lmq_env_checkpoint(env);
    lmq_id id;
    lmq_latest_id(&id, env, "main");
    usleep(1000);
  }
  return NULL;
}

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) {
  (void)s; (void)f; (void)w;
  return remove(p);
}

int main(void) {
  printf("TAP version 13\n1..1\n");
  char dir[] = "/tmp/lmq-stress-XXXXXX";
  if (!mkdtemp(dir)) {
    printf("not ok 1 - mkdtemp\n");
    return 1;
  }
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.map_size = (uint64_t)256 << 20;
  o.autocommit_ms = 5;
  o.apply_interval_ms = 2;
  o.sync_interval_ms = 3;
  o.wal_segment_size = 1 << 16;
  o.checkpoint_bytes = 1 << 17;
  if (lmq_env_open(&env, dir, &o) || lmq_channel_create(env, "main") ||
      lmq_channel_create(env, "churn") ||
      lmq_group_create(env, "main", "stable", LMQ_START_EARLIEST) ||
      lmq_group_create(env, "main", "seeker", LMQ_START_EARLIEST)) {
    printf("not ok 1 - open: %s\n", lmq_errmsg());
    return 1;
  }
  seen = calloc(PRODUCERS * PER_PRODUCER, 1);
  pthread_t pt[PRODUCERS], ct[CONSUMERS], xt;
  for (long i = 0; i < PRODUCERS; i++)
    pthread_create(&pt[i], NULL, producer, (void *)i);
  for (long i = 0; i < CONSUMERS; i++)
    pthread_create(&ct[i], NULL, consumer, NULL);
  pthread_create(&xt, NULL, chaos, NULL);
  for (int i = 0; i < PRODUCERS; i++)
    pthread_join(pt[i], NULL);
  for (int i = 0; i < CONSUMERS; i++)
    pthread_join(ct[i], NULL);
  pthread_join(xt, NULL);
  long missing = 0;
  for (long i = 0; i < PRODUCERS * PER_PRODUCER; i++)
    missing += !seen[i];
  if (missing)
    FAIL("%ld messages never reached the stable group", missing);
  lmq_env_close(env);
  /* Reopen: the stable group's committed cursor is at the end. */
  if (lmq_env_open(&env, dir, &o) == 0) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "main", "stable", 10, 0);
    if (n != 0)
      FAIL("stable group resumed with %d old messages", n);
    lmq_msgs_free(m);
    lmq_env_close(env);
  } else {
    FAIL("reopen");
  }
  free(seen);
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  int f = atomic_load(&failures);
  printf("%s 1 - threads_share_an_env_without_loss_or_duplicates%s\n",
         f ? "not ok" : "ok", f ? " (see stderr)" : "");
  return f ? 1 : 0;
}
