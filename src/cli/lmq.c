/*
 * lmq - command-line tool over the public API.
 *
 *   lmq demo DIR                      engine and TtMsgStream demo with timings
 *   lmq create DIR CHANNEL...         create channels
 *   lmq destroy DIR CHANNEL...        destroy channels
 *   lmq channels DIR                  list channels with stats
 *   lmq produce DIR CHANNEL [MSG...]  produce MSGs (or stdin lines)
 *   lmq consume DIR CHANNEL GROUP [N] consume up to N (default 10), commit
 *   lmq stats DIR                     env stats
 */
#define _POSIX_C_SOURCE 200809L
#include "lmq.h"
#include "cli/demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "lmq: %s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  return 1;
}

static int usage(void) {
  fprintf(stderr,
          "usage: lmq [--salvage] COMMAND DIR ...\n"
          "       lmq demo DIR\n"
          "       lmq create|destroy DIR CHANNEL...\n"
          "       lmq channels DIR\n"
          "       lmq produce DIR CHANNEL [MESSAGE...]   (stdin lines if none)\n"
          "       lmq consume DIR CHANNEL GROUP [MAX]\n"
          "       lmq stats DIR\n");
  return 2;
}

/* ---------------------------------------------------------------- demo */

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

/* ------------------------------------------------------------- commands */

/* Open dir; say on stderr when recovery cut a torn tail or skipped damage. */
static int open_dir(lmq_env **env, const char *dir, unsigned flags) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.flags = flags;
  int rc = lmq_env_open(env, dir, &o);
  if (rc)
    return fail("open", rc);
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  if (lmq_env_recovery_get(&r, *env) == 0 && (r.cut_bytes || r.salvaged_regions))
    fprintf(stderr, "lmq: recovery: %s\n", r.summary);
  return 0;
}

int main(int argc, char **argv) {
  unsigned flags = 0;
  if (argc > 1 && !strcmp(argv[1], "--salvage")) {
    flags |= LMQ_OPEN_SALVAGE;
    argv++;
    argc--;
  }
  if (argc < 3)
    return usage();
  const char *cmd = argv[1], *dir = argv[2];
  if (!strcmp(cmd, "demo"))
    return demo(dir);
  lmq_env *env;
  if (open_dir(&env, dir, flags))
    return 1;
  int rc = 0, status = 0;
  if (!strcmp(cmd, "create") || !strcmp(cmd, "destroy")) {
    for (int i = 3; i < argc && !rc; i++)
      rc = cmd[0] == 'c' ? lmq_channel_create(env, argv[i])
                         : lmq_channel_destroy(env, argv[i]);
    if (rc)
      status = fail(cmd, rc);
  } else if (!strcmp(cmd, "channels")) {
    char **names;
    size_t n;
    if ((rc = lmq_channel_list(&names, &n, env)))
      status = fail("list", rc);
    else {
      for (size_t i = 0; i < n; i++) {
        lmq_channel_stats cs;
        lmq_channel_stats_get(&cs, env, names[i]);
        printf("%s\t%llu messages\t%llu bytes\n", names[i],
               (unsigned long long)cs.messages, (unsigned long long)cs.bytes);
      }
      lmq_strv_free(names);
    }
  } else if (!strcmp(cmd, "produce") && argc >= 4) {
    lmq_id id;
    if (argc > 4) {
      for (int i = 4; i < argc && !rc; i++) {
        lmq_buf b = {argv[i], strlen(argv[i])};
        if (!(rc = lmq_produce(env, argv[3], &b, 1, &id, 0)))
          printf("%llu\n", (unsigned long long)id);
      }
    } else {
      char *line = NULL;
      size_t cap = 0;
      ssize_t n;
      while (!rc && (n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
          n--;
        lmq_buf b = {line, (size_t)n};
        if (!(rc = lmq_produce(env, argv[3], &b, 1, &id, 0)))
          printf("%llu\n", (unsigned long long)id);
      }
      free(line);
    }
    if (rc)
      status = fail("produce", rc);
  } else if (!strcmp(cmd, "consume") && argc >= 5) {
    size_t max = argc > 5 ? (size_t)strtoul(argv[5], NULL, 10) : 10;
    lmq_msgs *m;
    if ((rc = lmq_group_create(env, argv[3], argv[4], LMQ_START_EARLIEST)))
      status = fail("group", rc);
    else if ((rc = lmq_consume(&m, env, argv[3], argv[4], max ? max : 1, 0)) < 0)
      status = fail("consume", rc);
    else {
      for (size_t i = 0; i < lmq_msgs_count(m); i++) {
        const lmq_msg *x = lmq_msgs_at(m, i);
        printf("%llu\t%.*s\n", (unsigned long long)x->id, (int)x->len,
               (const char *)x->data);
      }
      lmq_msgs_free(m);
      if ((rc = lmq_group_commit(env, argv[3], argv[4])))
        status = fail("commit", rc);
    }
  } else if (!strcmp(cmd, "stats")) {
    lmq_env_stats s;
    lmq_env_stats_get(&s, env);
    printf("channels %llu\nwal_bytes %llu\nwal_segment %llu\napplied %llu:%llu\n"
           "map_used %llu\nmap_size %llu\n",
           (unsigned long long)s.channels, (unsigned long long)s.wal_bytes,
           (unsigned long long)s.wal_segment, (unsigned long long)s.applied_segment,
           (unsigned long long)s.applied_offset, (unsigned long long)s.map_used,
           (unsigned long long)s.map_size);
  } else {
    status = usage();
  }
  lmq_env_close(env);
  return status;
}
