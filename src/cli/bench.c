/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * bench.c - `lmq bench`: a produce workload (N messages of B bytes in
 * batches over C channels, under a sync policy), then one group consuming
 * everything, with a progress line and a summary (rates, batch latency
 * percentiles, fsyncs). Runs in DIR (created; must not hold an env) or in
 * a temporary directory removed afterwards.
 */
#define _GNU_SOURCE
#include "config.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w) {
  (void)s;
  (void)f;
  (void)w;
  return remove(p);
}

typedef struct bopts {
  uint64_t messages, size, batch, channels;
  int sync, consume;
} bopts;

static int run(lmq_env *env, const bopts *o) {
  int rc = 0;
  char ch[32];
  for (uint64_t c = 0; c < o->channels && !rc; c++) {
    snprintf(ch, sizeof ch, "bench-%llu", (unsigned long long)c);
    if (!(rc = lmq_channel_create(env, ch)))
      rc = lmq_group_create(env, ch, "bench", LMQ_START_EARLIEST);
  }
  if (rc)
    return cli_fail("bench setup", rc);
  unsigned char *payload = malloc(o->size ? o->size : 1);
  lmq_buf *b = malloc(o->batch * sizeof *b);
  uint64_t nb = (o->messages + o->batch - 1) / o->batch;
  double *lat = malloc((nb ? nb : 1) * sizeof *lat);
  if (!payload || !b || !lat) {
    free(payload);
    free(b);
    free(lat);
    return cli_fail("bench", LMQ_ENOMEM);
  }
  for (uint64_t i = 0; i < o->size; i++)
    payload[i] = (unsigned char)('a' + i % 26);
  for (uint64_t i = 0; i < o->batch; i++)
    b[i] = (lmq_buf){payload, o->size};
  lmq_env_stats s0, s1;
  lmq_env_stats_get(&s0, env);
  double t0 = cli_now();
  uint64_t done = 0;
  for (uint64_t k = 0; k < nb && !rc; k++) {
    size_t n = (size_t)(o->messages - done < o->batch ? o->messages - done : o->batch);
    snprintf(ch, sizeof ch, "bench-%llu", (unsigned long long)(k % o->channels));
    double t = cli_now();
    rc = lmq_produce(env, ch, b, n, NULL, LMQ_SYNC_DEFAULT);
    lat[k] = cli_now() - t;
    done += n;
    cli_progress("produce: %llu/%llu messages, %.0f msg/s", (unsigned long long)done,
                 (unsigned long long)o->messages, (double)done / (cli_now() - t0));
  }
  double pt = cli_now() - t0;
  cli_progress_end();
  lmq_env_stats_get(&s1, env);
  if (rc) {
    free(payload);
    free(b);
    free(lat);
    return cli_fail("bench produce", rc);
  }
  qsort(lat, nb, sizeof *lat, cmp_d);
  double mb = (double)o->messages * (double)o->size / 1e6;
  printf("produce  %llu msgs x %llu B in batches of %llu over %llu channel(s), "
         "sync=%s\n",
         (unsigned long long)o->messages, (unsigned long long)o->size,
         (unsigned long long)o->batch, (unsigned long long)o->channels,
         o->sync == LMQ_SYNC_ALWAYS ? "always"
         : o->sync == LMQ_SYNC_INTERVAL ? "interval" : "none");
  printf("         %.2f s  %.0f msg/s  %.1f MB/s  batch latency p50 %.3f ms  "
         "p99 %.3f ms  max %.3f ms\n",
         pt, (double)o->messages / pt, mb / pt, lat[nb / 2] * 1e3,
         lat[nb * 99 / 100] * 1e3, lat[nb - 1] * 1e3);
  printf("         %llu fsyncs, %llu WAL writes\n",
         (unsigned long long)(s1.fsyncs - s0.fsyncs),
         (unsigned long long)(s1.commits - s0.commits));
  free(payload);
  free(b);
  free(lat);
  if (!o->consume)
    return EXIT_OK;
  t0 = cli_now();
  uint64_t got = 0;
  for (uint64_t c = 0; c < o->channels && !rc; c++) {
    snprintf(ch, sizeof ch, "bench-%llu", (unsigned long long)c);
    for (;;) {
      lmq_msgs *m;
      int n = lmq_consume(&m, env, ch, "bench", 4096, 0);
      if (n < 0) {
        rc = n;
        break;
      }
      lmq_msgs_free(m);
      if (!n)
        break;
      got += (uint64_t)n;
      cli_progress("consume: %llu/%llu messages", (unsigned long long)got,
                   (unsigned long long)o->messages);
    }
    if (!rc)
      rc = lmq_group_commit(env, ch, "bench");
  }
  double ct = cli_now() - t0;
  cli_progress_end();
  if (rc)
    return cli_fail("bench consume", rc);
  printf("consume  %llu msgs in %.2f s  %.0f msg/s  %.1f MB/s\n",
         (unsigned long long)got, ct, (double)got / ct,
         (double)got * (double)o->size / 1e6 / ct);
  if (got != o->messages) {
    fprintf(stderr, "lmq: bench: consumed %llu of %llu messages\n",
            (unsigned long long)got, (unsigned long long)o->messages);
    return EXIT_ERROR;
  }
  return EXIT_OK;
}

int cmd_bench(args *a) {
  bopts o = {100000, 100, 1000, 1, LMQ_SYNC_ALWAYS, 1};
  const char *dir = NULL, *v;
  int r;
  while (a->i < a->argc) {
    uint64_t *num = NULL;
    const char *name = a->argv[a->i];
    if ((r = opt_value(a, "--messages", &v)))
      num = &o.messages;
    else if ((r = opt_value(a, "--size", &v)))
      num = &o.size;
    else if ((r = opt_value(a, "--batch", &v)))
      num = &o.batch;
    else if ((r = opt_value(a, "--channels", &v)))
      num = &o.channels;
    else if ((r = opt_value(a, "--sync", &v))) {
      if (r < 0 || cli_parse_sync(&o.sync, v))
        return cli_usage_error("--sync takes always, interval or none");
      continue;
    } else if (opt_flag(a, "--no-consume")) {
      o.consume = 0;
      continue;
    } else if (name[0] == '-' || dir) {
      return cli_usage_error("bad argument '%s'", name);
    } else {
      dir = arg_next(a);
      continue;
    }
    if (r < 0 || cli_parse_u64(num, v) || !*num)
      return cli_usage_error("%s needs a number >= 1", name);
  }
  if (o.size > (4u << 20) || o.batch > 1000000 || o.channels > 1000)
    return cli_usage_error("bench: --size <= 4 MiB, --batch <= 1e6, "
                           "--channels <= 1000");
  char tmp[] = "/tmp/lmq-bench-XXXXXX";
  int own = !dir;
  if (own) {
    if (!mkdtemp(tmp)) {
      perror("lmq: bench: mkdtemp");
      return EXIT_IO;
    }
    dir = tmp;
  } else {
    char p[4096];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    if (access(p, F_OK) == 0)
      return cli_usage_error("bench: %s already holds an env; give a new "
                             "directory", dir);
  }
  g_cli.sync = o.sync;
  lmq_env *env;
  int st = cli_open(&env, dir, OPEN_CREATE);
  if (!st) {
    st = run(env, &o);
    lmq_env_close(env);
  }
  if (own)
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return st;
}
