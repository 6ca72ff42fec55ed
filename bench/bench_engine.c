/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * bench_engine - engine throughput next to the machine's own fsync rate.
 *
 *   bench_engine [-r RUNS] [-s SECONDS] [-c CSVFILE] [-d TMPDIR]
 *
 * Every figure is the median of RUNS runs (default 3), each in a fresh data
 * directory, with min-max. 100-byte messages throughout.
 */
#define _GNU_SOURCE
#include "lmq.h"

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double secs = 1.5;
static const char *tmpbase = NULL;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st; (void)f; (void)w;
  return remove(p);
}

static char *fresh_dir(void) {
  const char *b = tmpbase ? tmpbase : getenv("TMPDIR");
  char *p = malloc(4096);
  snprintf(p, 4096, "%s/lmq-bench-XXXXXX", b && *b ? b : "/var/tmp");
  if (!mkdtemp(p)) {
    perror("mkdtemp");
    exit(1);
  }
  return p;
}

static void drop_dir(char *p) {
  nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(p);
}

static lmq_env *open_env(const char *dir, int sync) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = sync;
  o.map_size = (uint64_t)4 << 30;
  lmq_env *env;
  if (lmq_env_open(&env, dir, &o)) {
    fprintf(stderr, "open: %s\n", lmq_errmsg());
    exit(1);
  }
  return env;
}

static void check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "%s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
    exit(1);
  }
}

/* ---------------------------------------------------------- measures */

static double m_fsync(void) {
  char *d = fresh_dir();
  char path[4200];
  snprintf(path, sizeof path, "%s/f", d);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  char buf[4096];
  memset(buf, 'f', sizeof buf);
  long n = 0;
  double t0 = now_s(), t;
  do {
    if (pwrite(fd, buf, sizeof buf, (off_t)n * 4096) != 4096 || fdatasync(fd)) {
      perror("fsync bench");
      exit(1);
    }
    n++;
  } while ((t = now_s() - t0) < secs);
  close(fd);
  drop_dir(d);
  return (double)n / t;
}

static double m_batched(int nch) {
  char *d = fresh_dir();
  lmq_env *env = open_env(d, LMQ_SYNC_ALWAYS);
  char name[32];
  for (int c = 0; c < nch; c++) {
    snprintf(name, sizeof name, "ch%d", c);
    check(lmq_channel_create(env, name), "create");
  }
  static char payload[100];
  static lmq_buf b[1000];
  for (int i = 0; i < 1000; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  long n = 0;
  double t0 = now_s(), t;
  do {
    snprintf(name, sizeof name, "ch%ld", n % nch);
    check(lmq_produce(env, name, b, 1000, NULL, LMQ_SYNC_ALWAYS), "produce");
    n++;
  } while ((t = now_s() - t0) < secs);
  lmq_env_close(env);
  drop_dir(d);
  return (double)n * 1000 / t;
}

typedef struct {
  lmq_env *env;
  atomic_int *stop;
  long count;
  int sync;
} pargs;

static void *single_producer(void *arg) {
  pargs *a = arg;
  char payload[100];
  memset(payload, 's', sizeof payload);
  lmq_buf b = {payload, sizeof payload};
  while (!atomic_load(a->stop)) {
    check(lmq_produce(a->env, "c", &b, 1, NULL, a->sync), "produce");
    a->count++;
  }
  return NULL;
}

static double m_single(int threads, int sync) {
  char *d = fresh_dir();
  lmq_env *env = open_env(d, sync);
  check(lmq_channel_create(env, "c"), "create");
  atomic_int stop = 0;
  pthread_t th[64];
  pargs a[64];
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    a[i] = (pargs){env, &stop, 0, sync};
    pthread_create(&th[i], NULL, single_producer, &a[i]);
  }
  struct timespec ts = {(time_t)secs, (long)((secs - (long)secs) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += a[i].count;
  }
  double t = now_s() - t0;
  lmq_env_close(env);
  drop_dir(d);
  return (double)total / t;
}

/* Consume N messages in batches of 1000; from LMDB (applied) or the tail. */
static double m_consume(int applied) {
  char *d = fresh_dir();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.map_size = (uint64_t)4 << 30;
  if (!applied) { /* keep everything in the in-memory tail */
    o.apply_interval_ms = 600000;
    o.apply_bytes = (uint64_t)1 << 30;
    o.max_unapplied = (uint64_t)1 << 30;
  }
  lmq_env *env;
  check(lmq_env_open(&env, d, &o), "open");
  check(lmq_channel_create(env, "c"), "create");
  check(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), "group");
  static char payload[100];
  static lmq_buf b[1000];
  for (int i = 0; i < 1000; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  const long total = 2000000;
  for (long i = 0; i < total / 1000; i++)
    check(lmq_produce(env, "c", b, 1000, NULL, LMQ_SYNC_NONE), "produce");
  if (applied)
    check(lmq_env_checkpoint(env), "checkpoint");
  long got = 0;
  double t0 = now_s();
  while (got < total) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "c", "g", 1000, 0);
    check(n, "consume");
    got += n;
    lmq_msgs_free(m);
    if (n == 0)
      break;
  }
  double t = now_s() - t0;
  lmq_env_close(env);
  drop_dir(d);
  return (double)got / t;
}

/* ---------------------------------------------------------- driver */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  const char *name, *unit;
  double (*fn)(int, int);
  int a, b;
} measure;

static double f_fsync(int a, int b) { (void)a; (void)b; return m_fsync(); }
static double f_batched(int a, int b) { (void)b; return m_batched(a); }
static double f_single(int a, int b) { return m_single(a, b); }
static double f_consume(int a, int b) { (void)b; return m_consume(a); }

int main(int argc, char **argv) {
  int runs = 3;
  const char *csv = NULL;
  int opt;
  while ((opt = getopt(argc, argv, "r:s:c:d:")) != -1) {
    if (opt == 'r')
      runs = atoi(optarg);
    else if (opt == 's')
      secs = atof(optarg);
    else if (opt == 'c')
      csv = optarg;
    else if (opt == 'd')
      tmpbase = optarg;
    else {
      fprintf(stderr, "usage: bench_engine [-r RUNS] [-s SECONDS] [-c CSV] [-d DIR]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 99)
    runs = 3;
  measure ms[] = {
      {"fdatasync_4k_append", "ops/s", f_fsync, 0, 0},
      {"batched_1000x100B_always_1ch", "msg/s", f_batched, 1, 0},
      {"batched_1000x100B_always_256ch", "msg/s", f_batched, 256, 0},
      {"single_always_1thread", "msg/s", f_single, 1, LMQ_SYNC_ALWAYS},
      {"single_always_32threads", "msg/s", f_single, 32, LMQ_SYNC_ALWAYS},
      {"single_none_1thread", "msg/s", f_single, 1, LMQ_SYNC_NONE},
      {"hot_consume_lmdb", "msg/s", f_consume, 1, 0},
      {"hot_consume_tail", "msg/s", f_consume, 0, 0},
  };
  size_t nm = sizeof ms / sizeof *ms;
  double med[16];
  FILE *out = csv ? fopen(csv, "w") : NULL;
  if (out)
    fprintf(out, "measure,unit,median,min,max,runs\n");
  printf("%-32s %14s %14s %14s\n", "measure", "median", "min", "max");
  for (size_t i = 0; i < nm; i++) {
    double v[99];
    for (int r = 0; r < runs; r++)
      v[r] = ms[i].fn(ms[i].a, ms[i].b);
    qsort(v, (size_t)runs, sizeof *v, cmp_d);
    med[i] = v[runs / 2];
    printf("%-32s %14.0f %14.0f %14.0f %s\n", ms[i].name, med[i], v[0],
           v[runs - 1], ms[i].unit);
    fflush(stdout);
    if (out)
      fprintf(out, "%s,%s,%.0f,%.0f,%.0f,%d\n", ms[i].name, ms[i].unit, med[i], v[0],
              v[runs - 1], runs);
  }
  printf("\nratios (same run):\n");
  printf("  32-thread / 1-thread durable single-message produce: %.1fx\n",
         med[4] / med[3]);
  printf("  1-thread durable produce / fdatasync rate: %.2f\n", med[3] / med[0]);
  printf("  batched durable produce, fsyncs per second needed at 1000 msg/call: "
         "%.0f (%.0f%% of the fdatasync rate)\n",
         med[1] / 1000, 100 * med[1] / 1000 / med[0]);
  if (out)
    fclose(out);
  return 0;
}
