/* commit_latency.h - the NATS tests' commit-latency loop (t/test_nats.c on
 * one server, t/test_nats_cluster.c on three replicas): consume one
 * message and commit it, n times, each commit timed; every commit must
 * succeed. Prints "commit latency: <label>, ..." on stderr (docs/deploy.md
 * quotes it): a figure, not a check. */
#ifndef LMQ_T_COMMIT_LATENCY_H
#define LMQ_T_COMMIT_LATENCY_H
#include "stream/backend.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int cl_cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* sub has at least n messages to consume; n <= 1000. */
static void commit_latency(const lmq_backend *be, lmq_bsub *sub, int n, const char *label) {
  static long long us[1000];
  cr_assert(n > 0 && n <= 1000);
  for (int i = 0; i < n; i++) {
    lmq_bbatch bt;
    cr_assert_eq(be->ops->consume(sub, &bt, 1, 3000), 0, "%s", lmq_errmsg());
    cr_assert_eq(bt.n, 1);
    be->ops->batch_free(sub, &bt);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(be->ops->commit(sub), 0, "commit %d: %s", i, lmq_errmsg());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    us[i] = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
  }
  qsort(us, (size_t)n, sizeof us[0], cl_cmp_ll);
  long long sum = 0;
  for (int i = 0; i < n; i++)
    sum += us[i];
  fprintf(stderr, "commit latency: %s, %d commits of one message: median %lld us, p90 %lld "
                  "us, max %lld us, mean %lld us\n",
          label, n, us[n / 2], us[n * 9 / 10], us[n - 1], sum / n);
}
#endif
