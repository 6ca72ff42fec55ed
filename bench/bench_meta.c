/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * bench_meta - consumer-group cursor commits per second, embedded metadata
 * store vs etcd (one commit per call, and batched with lmq_group_commit_all).
 * Starts its own etcd on free loopback ports (t/etcd_harness.c).
 *
 *   bench_meta [-g GROUPS] [-r RUNS]
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "etcd_harness.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_meta: %s: %s\n", what, lmq_errmsg());
  exit(1);
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Returns commits/s for single commits (*single) and batched (*batched). */
static void measure(const char *uri, int groups, int runs, double *single,
                    double *batched) {
  char dir[] = "/tmp/lmq-bmeta-XXXXXX";
  if (!mkdtemp(dir))
    die("mkdtemp");
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = uri;
  lmq_env *env;
  if (lmq_env_open(&env, dir, &o) || lmq_channel_create(env, "c"))
    die("open");
  char g[32];
  for (int i = 0; i < groups; i++) {
    snprintf(g, sizeof g, "g%d", i);
    if (lmq_group_create(env, "c", g, LMQ_START_EARLIEST))
      die("group");
  }
  lmq_buf b = {"x", 1};
  for (int i = 0; i < 2 * runs + 2; i++)
    if (lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_NONE))
      die("produce");
  double vs[64], vb[64];
  for (int r = 0; r < runs; r++) {
    /* Every group consumes one message, then commits on its own. */
    for (int i = 0; i < groups; i++) {
      snprintf(g, sizeof g, "g%d", i);
      lmq_msgs *m;
      if (lmq_consume(&m, env, "c", g, 1, 0) != 1)
        die("consume");
      lmq_msgs_free(m);
    }
    double t0 = now_s();
    for (int i = 0; i < groups; i++) {
      snprintf(g, sizeof g, "g%d", i);
      if (lmq_group_commit(env, "c", g))
        die("commit");
    }
    vs[r] = groups / (now_s() - t0);
    /* Again, committed all at once. */
    for (int i = 0; i < groups; i++) {
      snprintf(g, sizeof g, "g%d", i);
      lmq_msgs *m;
      if (lmq_consume(&m, env, "c", g, 1, 0) != 1)
        die("consume");
      lmq_msgs_free(m);
    }
    t0 = now_s();
    if (lmq_group_commit_all(env))
      die("commit_all");
    vb[r] = groups / (now_s() - t0);
  }
  lmq_env_close(env);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  qsort(vs, (size_t)runs, sizeof *vs, cmp_d);
  qsort(vb, (size_t)runs, sizeof *vb, cmp_d);
  *single = vs[runs / 2];
  *batched = vb[runs / 2];
}

int main(int argc, char **argv) {
  int groups = 1000, runs = 5, opt;
  while ((opt = getopt(argc, argv, "g:r:")) != -1) {
    if (opt == 'g')
      groups = atoi(optarg);
    else if (opt == 'r')
      runs = atoi(optarg);
    else {
      fprintf(stderr, "usage: bench_meta [-g GROUPS] [-r RUNS]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 64)
    runs = 5;
  double es, eb, cs, cb;
  measure(NULL, groups, runs, &es, &eb);
  etcd_harness h;
  memset(&h, 0, sizeof h);
  if (eh_start(&h, NULL)) {
    fprintf(stderr, "bench_meta: cannot start etcd: %s\n", h.err);
    return 1;
  }
  char uri[128];
  snprintf(uri, sizeof uri, "etcd://127.0.0.1:%d/bench", h.port);
  measure(uri, groups, runs, &cs, &cb);
  eh_destroy(&h);
  printf("cursor commits/s (%d groups, median of %d runs)\n", groups, runs);
  printf("%-10s %14s %14s %10s\n", "store", "one per call", "commit_all", "batch gain");
  printf("%-10s %14.0f %14.0f %9.1fx\n", "embedded", es, eb, eb / es);
  printf("%-10s %14.0f %14.0f %9.1fx\n", "etcd", cs, cb, cb / cs);
  return 0;
}
