/*
 * crash_child - a producer the crash tests SIGKILL at random moments.
 *   crash_child DIR SEQ_BASE THREADS APPLY_INTERVAL_MS
 * Each thread produces batches of 1..4 messages to channel "crash" with
 * ALWAYS sync; after each produce returns it writes one line per message
 * "ID THREAD SEQ\n" to stdout (a pipe: small writes are atomic), so the
 * parent knows exactly what was acknowledged.
 */
#include "lmq.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lmq_env *env;
static long seq_base;

/* Payload: "T<thread> S<seq> H<hash>" padded with a pattern. */
static size_t payload(char *buf, int t, long s) {
  unsigned h = (unsigned)(t * 2654435761u) ^ (unsigned)(s * 40503u);
  int n = snprintf(buf, 64, "T%d S%ld H%08x ", t, s, h);
  size_t len = (size_t)n + (size_t)(s % 97);
  for (size_t i = (size_t)n; i < len; i++)
    buf[i] = (char)('a' + (i + (size_t)s) % 26);
  return len;
}

static void *run(void *arg) {
  int t = (int)(long)arg;
  long s = seq_base;
  char bufs[4][256];
  for (;;) {
    int n = 1 + (int)(s % 4);
    lmq_buf b[4];
    for (int i = 0; i < n; i++)
      b[i] = (lmq_buf){bufs[i], payload(bufs[i], t, s + i)};
    lmq_id ids[4];
    if (lmq_produce(env, "crash", b, (size_t)n, ids, LMQ_SYNC_ALWAYS) != 0) {
      fprintf(stderr, "produce: %s\n", lmq_errmsg());
      exit(3);
    }
    char line[512];
    int len = 0;
    for (int i = 0; i < n; i++)
      len += snprintf(line + len, sizeof line - (size_t)len, "%llu %d %ld\n",
                      (unsigned long long)ids[i], t, s + i);
    if (write(1, line, (size_t)len) != len)
      exit(4);
    s += n;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: crash_child DIR SEQ_BASE THREADS APPLY_MS\n");
    return 2;
  }
  seq_base = atol(argv[2]);
  int threads = atoi(argv[3]);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.map_size = (uint64_t)256 << 20;
  o.apply_interval_ms = (unsigned)atoi(argv[4]);
  if (o.apply_interval_ms > 1000) { /* keep everything in the WAL */
    o.apply_bytes = (uint64_t)1 << 30;
    o.max_unapplied = (uint64_t)1 << 30;
  }
  if (lmq_env_open(&env, argv[1], &o) != 0 || lmq_channel_create(env, "crash")) {
    fprintf(stderr, "open: %s\n", lmq_errmsg());
    return 1;
  }
  if (write(1, "ready\n", 6) != 6)
    return 4;
  pthread_t th[64];
  for (int i = 0; i < threads && i < 64; i++)
    pthread_create(&th[i], NULL, run, (void *)(long)i);
  for (;;)
    pause();
}
