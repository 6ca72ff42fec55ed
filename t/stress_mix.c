/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * stress_mix - eight threads mixing every call on shared channels: produce,
 * consume, seek, commit, ack, group create/destroy, channel destroy and
 * re-create, stats. Run under ThreadSanitizer in CI (a plain TAP program:
 * Criterion cannot start under TSan). Checks:
 *  - nothing crosses channels or incarnations: every payload names the
 *    channel and generation it was produced to, and a consumer only ever
 *    sees its own channel's current generation... or an older one of the
 *    same name only if it was read before the re-create;
 *  - after close and reopen, exactly the groups and channels that existed
 *    at close exist: no destroyed group or channel comes back.
 * Runs on the embedded store, then on a private etcd when one can be
 * started (t/etcd_harness.c), for STRESS_SECONDS (default 3) each.
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "etcd_harness.h"

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS 8
#define NCHAN 4
#define NGROUP 6

static lmq_env *env;
static atomic_int failures, stop;
static atomic_long ops;
static atomic_long gen[NCHAN]; /* bumped before each re-create */
static pthread_mutex_t ddl = PTHREAD_MUTEX_INITIALIZER; /* serializes re-creates */

#define FAIL(...)                                                              \
  do {                                                                         \
    fprintf(stderr, __VA_ARGS__);                                              \
    fprintf(stderr, " (%s)\n", lmq_errmsg());                                  \
    atomic_fetch_add(&failures, 1);                                            \
  } while (0)

/* Expected errors when racing destroys: the thing is gone. */
static int gone(int rc) { return rc == LMQ_ENOCHANNEL || rc == LMQ_ENOGROUP; }

static void one_op(unsigned *seed) {
  int c = (int)(rand_r(seed) % NCHAN);
  char ch[8], g[8];
  snprintf(ch, sizeof ch, "m%d", c);
  snprintf(g, sizeof g, "g%d", (int)(rand_r(seed) % NGROUP));
  int r = (int)(rand_r(seed) % 100), rc = 0;
  if (r < 40) {
    char p[64];
    lmq_buf b[4];
    int n = 1 + (int)(rand_r(seed) % 4);
    long gn = atomic_load(&gen[c]);
    int len = snprintf(p, sizeof p, "%s/%ld", ch, gn);
    for (int i = 0; i < n; i++)
      b[i] = (lmq_buf){p, (size_t)len};
    rc = lmq_produce(env, ch, b, (size_t)n, NULL,
                     r < 5 ? LMQ_SYNC_ALWAYS : LMQ_SYNC_NONE);
    if (rc && !gone(rc))
      FAIL("produce %s: %d", ch, rc);
  } else if (r < 65) {
    lmq_msgs *m = NULL;
    long before = atomic_load(&gen[c]);
    int n = lmq_consume(&m, env, ch, g, 32, rand_r(seed) % 3);
    long after = atomic_load(&gen[c]);
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      char s[64];
      size_t l = x->len < 63 ? x->len : 63;
      memcpy(s, x->data, l);
      s[l] = '\0';
      char pc[8];
      long pg;
      if (sscanf(s, "%7[^/]/%ld", pc, &pg) != 2 || strcmp(pc, ch))
        FAIL("consumed '%s' from channel %s", s, ch);
      else if (pg > after || pg < before - 1)
        FAIL("consumed generation %ld of %s while it was at %ld..%ld", pg, ch,
             before, after);
    }
    lmq_msgs_free(m);
    if (n < 0 && !gone(n))
      FAIL("consume %s/%s: %d", ch, g, n);
  } else if (r < 72) {
    rc = lmq_group_commit(env, ch, g);
  } else if (r < 77) {
    rc = rand_r(seed) % 2 ? lmq_seek_earliest(env, ch, g) : lmq_seek_latest(env, ch, g);
  } else if (r < 82) {
    lmq_id id;
    if (lmq_latest_id(&id, env, ch) == 0)
      rc = rand_r(seed) % 2 ? lmq_seek(env, ch, g, id + (rand_r(seed) % 3))
                            : lmq_ack(env, ch, g, id);
  } else if (r < 90) {
    rc = lmq_group_create(env, ch, g, (int)(rand_r(seed) % 2));
  } else if (r < 96) {
    rc = lmq_group_destroy(env, ch, g);
  } else if (r < 98) {
    lmq_group_stats gs;
    lmq_channel_stats cs;
    lmq_group_stats_get(&gs, env, ch, g);
    lmq_channel_stats_get(&cs, env, ch);
  } else if (c == NCHAN - 1) {
    /* Only the last channel is destroyed and re-created. */
    pthread_mutex_lock(&ddl);
    rc = lmq_channel_destroy(env, ch);
    atomic_fetch_add(&gen[c], 1);
    if (!rc || gone(rc))
      rc = lmq_channel_create(env, ch);
    pthread_mutex_unlock(&ddl);
  } else {
    rc = lmq_group_commit_all(env);
  }
  if (rc && !gone(rc))
    FAIL("op %d on %s/%s: %d", r, ch, g, rc);
  atomic_fetch_add(&ops, 1);
}

static void *worker(void *arg) {
  unsigned seed = (unsigned)(long)arg * 7919u + 1;
  while (!atomic_load(&stop))
    one_op(&seed);
  return NULL;
}

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w) {
  (void)s; (void)f; (void)w;
  return remove(p);
}

/* What exists: bit (c * NGROUP + g) for groups, plus channel bits. */
typedef struct state {
  int chan[NCHAN];
  int group[NCHAN][NGROUP];
} state;

static void snapshot(state *s) {
  for (int c = 0; c < NCHAN; c++) {
    char ch[8], g[8];
    snprintf(ch, sizeof ch, "m%d", c);
    s->chan[c] = lmq_channel_exists(env, ch) == 1;
    for (int i = 0; i < NGROUP; i++) {
      snprintf(g, sizeof g, "g%d", i);
      s->group[c][i] = s->chan[c] && lmq_group_exists(env, ch, g) == 1;
    }
  }
}

static int run(int test, const char *name, const char *meta_uri, int seconds) {
  char dir[] = "/tmp/lmq-mix-XXXXXX";
  if (!mkdtemp(dir)) {
    printf("not ok %d - %s: mkdtemp\n", test, name);
    return 1;
  }
  atomic_store(&failures, 0);
  atomic_store(&ops, 0);
  atomic_store(&stop, 0);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.map_size = (uint64_t)256 << 20;
  o.sync = LMQ_SYNC_NONE;
  o.autocommit_ms = 20;
  o.apply_interval_ms = 2;
  o.wal_segment_size = 1 << 16;
  o.checkpoint_bytes = 1 << 17;
  o.meta_uri = meta_uri;
  if (lmq_env_open(&env, dir, &o)) {
    printf("not ok %d - %s: open: %s\n", test, name, lmq_errmsg());
    return 1;
  }
  for (int c = 0; c < NCHAN; c++) {
    char ch[8];
    snprintf(ch, sizeof ch, "m%d", c);
    if (lmq_channel_create(env, ch))
      FAIL("create %s", ch);
  }
  pthread_t t[THREADS];
  for (long i = 0; i < THREADS; i++)
    pthread_create(&t[i], NULL, worker, (void *)i);
  sleep((unsigned)seconds);
  atomic_store(&stop, 1);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  state before, after;
  snapshot(&before);
  lmq_env_close(env);
  if (lmq_env_open(&env, dir, &o)) {
    FAIL("reopen");
  } else {
    snapshot(&after);
    for (int c = 0; c < NCHAN; c++) {
      if (before.chan[c] != after.chan[c])
        FAIL("channel m%d: %s before close, %s after reopen", c,
             before.chan[c] ? "present" : "gone", after.chan[c] ? "present" : "gone");
      for (int g = 0; g < NGROUP; g++)
        if (before.group[c][g] != after.group[c][g])
          FAIL("group m%d/g%d: %s before close, %s after reopen", c, g,
               before.group[c][g] ? "present" : "destroyed",
               after.group[c][g] ? "present" : "gone");
    }
    lmq_env_close(env);
  }
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  int f = atomic_load(&failures);
  printf("%s %d - %s: %ld operations from %d threads%s\n", f ? "not ok" : "ok",
         test, name, atomic_load(&ops), THREADS, f ? " (see stderr)" : "");
  return f != 0;
}

int main(void) {
  const char *s = getenv("STRESS_SECONDS");
  int seconds = s && *s ? atoi(s) : 3;
  printf("TAP version 13\n1..2\n");
  int bad = run(1, "embedded store", NULL, seconds);
#ifdef LMQ_NO_ETCD
  printf("ok 2 - etcd # SKIP built --without-etcd\n");
  return bad;
#endif
  etcd_harness eh;
  memset(&eh, 0, sizeof eh);
  if (eh_start(&eh, NULL) == 0) {
    char uri[128];
    snprintf(uri, sizeof uri, "etcd://127.0.0.1:%d/mix?timeout_ms=5000", eh.port);
    bad |= run(2, "etcd", uri, seconds);
    eh_destroy(&eh);
  } else {
    printf("not ok 2 - etcd: cannot start etcd: %s\n", eh.err);
    bad = 1;
  }
  return bad;
}
