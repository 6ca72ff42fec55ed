/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * demo.c - `lmq demo DIR`: the engine (batched and concurrent producers,
 * two groups) and then the TtMsgStream (demo_stream.c), with rates.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "cli/cli.h"
#include "cli/demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc) { return cli_fail(what, rc); }

#define now_s cli_now


#define DEMO_CHANNELS 4
#define DEMO_PRODUCERS 8

static lmq_env *demo_env;

static void *demo_producer(void *arg) {
  long p = (long)arg;
  char ch[32], payload[100];
  snprintf(ch, sizeof ch, "orders-%ld", p % DEMO_CHANNELS);
  memset(payload, 'x', sizeof payload);
  for (int i = 0; i < 2000; i++) {
    int n = snprintf(payload, sizeof payload, "producer %ld order %d", p, i);
    payload[n] = ' ';
    lmq_buf b = {payload, sizeof payload};
    if (lmq_produce(demo_env, ch, &b, 1, NULL, LMQ_SYNC_DEFAULT) != 0)
      return (void *)1;
  }
  return NULL;
}

static int demo(const char *dir) {
  int rc;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.map_size = (uint64_t)512 << 20;
  if ((rc = lmq_env_open(&demo_env, dir, &o)))
    return fail("open", rc);
  printf("lmq %s demo in %s (embedded engine, sync=ALWAYS)\n", LMQ_VERSION_STRING,
         dir);
  char ch[32];
  for (int c = 0; c < DEMO_CHANNELS; c++) {
    snprintf(ch, sizeof ch, "orders-%d", c);
    if ((rc = lmq_channel_create(demo_env, ch)) ||
        (rc = lmq_group_create(demo_env, ch, "billing", LMQ_START_EARLIEST)) ||
        (rc = lmq_group_create(demo_env, ch, "shipping", LMQ_START_EARLIEST)))
      return fail("create", rc);
  }
  printf("created %d channels, each with groups 'billing' and 'shipping'\n",
         DEMO_CHANNELS);

  /* 1. Batched durable produce. */
  enum { BATCH = 1000, BATCHES = 200 };
  lmq_buf *b = malloc(BATCH * sizeof *b);
  char payload[100];
  memset(payload, 'p', sizeof payload);
  for (int i = 0; i < BATCH; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  double t0 = now_s();
  for (int i = 0; i < BATCHES; i++) {
    snprintf(ch, sizeof ch, "orders-%d", i % DEMO_CHANNELS);
    if ((rc = lmq_produce(demo_env, ch, b, BATCH, NULL, LMQ_SYNC_ALWAYS)))
      return fail("produce", rc);
  }
  double dt = now_s() - t0;
  free(b);
  printf("batched produce: %d x %d messages of 100 B, fsync'd: %.0f msg/s\n",
         BATCHES, BATCH, BATCHES * BATCH / dt);

  /* 2. Concurrent single-message producers share fsyncs (group commit). */
  lmq_env_stats s0, s1;
  lmq_env_stats_get(&s0, demo_env);
  pthread_t th[DEMO_PRODUCERS];
  t0 = now_s();
  for (long p = 0; p < DEMO_PRODUCERS; p++)
    pthread_create(&th[p], NULL, demo_producer, (void *)p);
  int bad = 0;
  for (int p = 0; p < DEMO_PRODUCERS; p++) {
    void *r;
    pthread_join(th[p], &r);
    bad |= r != NULL;
  }
  dt = now_s() - t0;
  if (bad)
    return fail("produce", LMQ_EIO);
  lmq_env_stats_get(&s1, demo_env);
  printf("%d producer threads, one message per call, fsync'd: %.0f msg/s "
         "(%.1f messages per fsync)\n",
         DEMO_PRODUCERS, DEMO_PRODUCERS * 2000 / dt,
         (double)(s1.produced - s0.produced) /
             (double)(s1.fsyncs - s0.fsyncs ? s1.fsyncs - s0.fsyncs : 1));

  /* 3. Consume with two groups per channel. */
  const char *groups[] = {"billing", "shipping"};
  uint64_t total = 0;
  t0 = now_s();
  for (int g = 0; g < 2; g++)
    for (int c = 0; c < DEMO_CHANNELS; c++) {
      snprintf(ch, sizeof ch, "orders-%d", c);
      for (;;) {
        lmq_msgs *m;
        int n = lmq_consume(&m, demo_env, ch, groups[g], 4096, 0);
        if (n < 0)
          return fail("consume", n);
        lmq_msgs_free(m);
        total += (uint64_t)n;
        if (n == 0)
          break;
      }
      if ((rc = lmq_group_commit(demo_env, ch, groups[g])))
        return fail("commit", rc);
    }
  dt = now_s() - t0;
  printf("consumed %llu messages across %d channels x 2 groups: %.0f msg/s\n",
         (unsigned long long)total, DEMO_CHANNELS, total / dt);

  /* 4. Where things stand. */
  for (int c = 0; c < DEMO_CHANNELS; c++) {
    lmq_channel_stats cs;
    lmq_group_stats gs;
    snprintf(ch, sizeof ch, "orders-%d", c);
    lmq_channel_stats_get(&cs, demo_env, ch);
    lmq_group_stats_get(&gs, demo_env, ch, "billing");
    printf("  %-9s %7llu msgs %9llu B  billing lag %llu\n", ch,
           (unsigned long long)cs.messages, (unsigned long long)cs.bytes,
           (unsigned long long)gs.lag);
  }
  lmq_env_stats_get(&s1, demo_env);
  printf("env: %llu fsyncs for %llu produced messages, WAL %llu B, LMDB %llu B "
         "in use\n",
         (unsigned long long)s1.fsyncs, (unsigned long long)s1.produced,
         (unsigned long long)s1.wal_bytes, (unsigned long long)s1.map_used);
  lmq_env_close(demo_env);

  /* The stream layer, in its own data directory under dir. */
  char sdir[4096];
  snprintf(sdir, sizeof sdir, "%s/streams", dir);
  if (lmq__demo_stream(sdir))
    return 1;
  printf("demo done\n");
  return 0;
}


int cmd_demo(args *a) {
  const char *dir = arg_next(a);
  if (!dir || a->i < a->argc)
    return cli_usage_error("usage: lmq demo DIR");
  return demo(dir);
}
