/*
 * stress_handles - channel and consumer handles shared by threads while the
 * channel is destroyed and re-created under them: producers and consumers
 * calling through handles get 0, LMQ_ENOCHANNEL or LMQ_ENOGROUP and
 * nothing else, reopen their handles, and never crash, hang or race (run
 * under ThreadSanitizer too). Every message produced to the stable channel
 * through a shared handle is consumed through a consumer handle exactly
 * once.
 *
 * A plain program emitting TAP (not Criterion), like stress_threads, so
 * that it runs under ThreadSanitizer.
 */
#define _GNU_SOURCE
#include "lmq.h"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRODUCERS 4
#define PER_PRODUCER 2000
#define ROUNDS 30

static lmq_env *env;
static lmq_channel *stable; /* shared by every producer */
static atomic_int failures, done;
static unsigned char seen[PRODUCERS * PER_PRODUCER];

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, __VA_ARGS__);                                              \
    fprintf(stderr, " (%s)\n", lmq_errmsg());                                  \
    atomic_fetch_add(&failures, 1);                                            \
  } while (0)

static int gone(int rc) { return rc == LMQ_ENOCHANNEL || rc == LMQ_ENOGROUP; }

static void *producer(void *arg) {
  int p = (int)(intptr_t)arg;
  lmq_channel *churn = NULL;
  for (int i = 0; i < PER_PRODUCER; i++) {
    uint32_t v = (uint32_t)(p * PER_PRODUCER + i);
    lmq_buf b = {&v, sizeof v};
    int rc = lmq_channel_produce(stable, &b, 1, NULL, LMQ_SYNC_NONE);
    if (rc)
      FAIL("produce to stable: %d", rc);
    if (!churn && (rc = lmq_channel_open(&churn, env, "churn")) && !gone(rc))
      FAIL("open churn: %d", rc);
    if (churn && (rc = lmq_channel_produce(churn, &b, 1, NULL, LMQ_SYNC_NONE))) {
      if (!gone(rc))
        FAIL("produce to churn: %d", rc);
      lmq_channel_close(churn); /* destroyed: reopen the next one */
      churn = NULL;
    }
  }
  lmq_channel_close(churn);
  atomic_fetch_add(&done, 1);
  return NULL;
}

static void *stable_consumer(void *arg) {
  lmq_consumer *c = arg;
  long got = 0;
  while (got < PRODUCERS * PER_PRODUCER) {
    lmq_msgs *m = NULL;
    int n = lmq_consumer_consume(&m, c, 64, 50);
    if (n < 0) {
      FAIL("consume stable: %d", n);
      break;
    }
    for (int i = 0; i < n; i++) {
      uint32_t v;
      memcpy(&v, lmq_msgs_at(m, (size_t)i)->data, sizeof v);
      if (v >= PRODUCERS * PER_PRODUCER || seen[v]++)
        FAIL("message %u seen twice or out of range", v);
    }
    got += n;
    lmq_msgs_free(m);
    if (n == 0 && atomic_load(&done) == PRODUCERS + 1 && got < PRODUCERS * PER_PRODUCER) {
      FAIL("only %ld of %d messages arrived", got, PRODUCERS * PER_PRODUCER);
      break;
    }
  }
  return NULL;
}

static void *churn_consumer(void *arg) {
  (void)arg;
  while (atomic_load(&done) < PRODUCERS + 1) {
    lmq_channel *h = NULL;
    lmq_consumer *c = NULL;
    int rc = lmq_channel_open(&h, env, "churn");
    if (!rc)
      rc = lmq_consumer_open(&c, h, "g");
    lmq_channel_close(h);
    if (rc) {
      if (!gone(rc))
        FAIL("open churn consumer: %d", rc);
      usleep(200);
      continue;
    }
    for (;;) {
      lmq_msgs *m = NULL;
      int n = lmq_consumer_consume(&m, c, 32, 5);
      lmq_msgs_free(m);
      if (n < 0) {
        if (!gone(n))
          FAIL("consume churn: %d", n);
        break;
      }
      if ((rc = lmq_consumer_commit(c)) && !gone(rc))
        FAIL("commit churn: %d", rc);
      if (atomic_load(&done) >= PRODUCERS + 1)
        break;
    }
    lmq_consumer_close(c);
  }
  return NULL;
}

static void *destroyer(void *arg) {
  (void)arg;
  for (int r = 0; r < ROUNDS; r++) {
    usleep(2000);
    int rc = lmq_channel_destroy(env, "churn");
    if (rc)
      FAIL("destroy churn: %d", rc);
    if ((rc = lmq_channel_create(env, "churn")) ||
        (rc = lmq_group_create(env, "churn", "g", LMQ_START_EARLIEST)))
      FAIL("re-create churn: %d", rc);
  }
  atomic_fetch_add(&done, 1);
  return NULL;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st, (void)f, (void)w;
  return remove(p);
}

int main(void) {
  char dir[] = "/tmp/lmq-stress-handles-XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  printf("1..1\n");
  if (lmq_env_open(&env, dir, &o) || lmq_channel_create(env, "stable") ||
      lmq_group_create(env, "stable", "g", LMQ_START_EARLIEST) ||
      lmq_channel_create(env, "churn") ||
      lmq_group_create(env, "churn", "g", LMQ_START_EARLIEST) ||
      lmq_channel_open(&stable, env, "stable")) {
    printf("Bail out! setup: %s\n", lmq_errmsg());
    return 1;
  }
  lmq_consumer *sc = NULL;
  if (lmq_consumer_open(&sc, stable, "g")) {
    printf("Bail out! consumer: %s\n", lmq_errmsg());
    return 1;
  }
  pthread_t pt[PRODUCERS], ct, cc, dt;
  for (int i = 0; i < PRODUCERS; i++)
    pthread_create(&pt[i], NULL, producer, (void *)(intptr_t)i);
  pthread_create(&ct, NULL, stable_consumer, sc);
  pthread_create(&cc, NULL, churn_consumer, NULL);
  pthread_create(&dt, NULL, destroyer, NULL);
  for (int i = 0; i < PRODUCERS; i++)
    pthread_join(pt[i], NULL);
  pthread_join(dt, NULL);
  pthread_join(ct, NULL);
  pthread_join(cc, NULL);
  lmq_consumer_close(sc);
  lmq_channel_close(stable);
  lmq_env_close(env);
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  int f = atomic_load(&failures);
  printf("%s 1 - handles_survive_destroy_and_recreate_under_threads%s\n",
         f ? "not ok" : "ok", f ? " (see stderr)" : "");
  return f ? 1 : 0;
}
