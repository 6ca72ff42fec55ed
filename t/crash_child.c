/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * crash_child - a producer the crash tests SIGKILL at random moments.
 *   crash_child DIR SEQ_BASE THREADS APPLY_INTERVAL_MS [roll]
 * Each thread produces batches of 1..4 messages to channel "crash" with
 * ALWAYS sync; after each produce returns it writes one line per message
 * "ID THREAD SEQ\n" to stdout (a pipe: small writes are atomic), so the
 * parent knows exactly what was acknowledged.
 *
 * With "roll": 64 KiB WAL segments and 128 KiB checkpoints (segments roll
 * and spares are recycled within a round), payloads up to ~3 KiB, and one
 * more thread that creates channel "side", produces to it and destroys it,
 * over and over, logging (each line one write):
 *   c GEN / C GEN      before / after lmq_channel_create("side")
 *   d GEN / D GEN      before / after lmq_channel_destroy("side")
 *   S ID GEN SEQ       a message acknowledged in side generation GEN
 * Side payloads are built like the others with THREAD = 1000 + GEN % 1000.
 */
#include "lmq.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lmq_env *env;
static long seq_base;
static int pad_mult = 1; /* "roll": payloads ~30x longer */

/* Payload: "T<thread> S<seq> H<hash>" padded with a pattern. */
static size_t payload(char *buf, int t, long s) {
  unsigned h = (unsigned)(t * 2654435761u) ^ (unsigned)(s * 40503u);
  int n = snprintf(buf, 64, "T%d S%ld H%08x ", t, s, h);
  size_t len = (size_t)n + (size_t)(s % 97) * (size_t)pad_mult;
  for (size_t i = (size_t)n; i < len; i++)
    buf[i] = (char)('a' + (i + (size_t)s) % 26);
  return len;
}

static void *run(void *arg) {
  int t = (int)(long)arg;
  long s = seq_base;
  static _Thread_local char bufs[4][4096];
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

static void say(const char *fmt, long a, long b, long c) {
  char line[128];
  int len = snprintf(line, sizeof line, fmt, a, b, c);
  if (write(1, line, (size_t)len) != len)
    exit(4);
}

/* "roll": create, fill and destroy channel "side", over and over. */
static void *side(void *arg) {
  (void)arg;
  long gen = seq_base / 1000, s = seq_base;
  static char bufs[4][4096];
  for (;; gen++) {
    say("c %ld\n", gen, 0, 0);
    if (lmq_channel_create(env, "side") != 0) {
      fprintf(stderr, "create side: %s\n", lmq_errmsg());
      exit(3);
    }
    say("C %ld\n", gen, 0, 0);
    for (int k = 0; k < 1 + (int)(s % 5); k++) {
      int n = 1 + (int)(s % 4);
      lmq_buf b[4];
      for (int i = 0; i < n; i++)
        b[i] = (lmq_buf){bufs[i], payload(bufs[i], 1000 + (int)(gen % 1000), s + i)};
      lmq_id ids[4];
      if (lmq_produce(env, "side", b, (size_t)n, ids, LMQ_SYNC_ALWAYS) != 0) {
        fprintf(stderr, "produce side: %s\n", lmq_errmsg());
        exit(3);
      }
      for (int i = 0; i < n; i++)
        say("S %ld %ld %ld\n", (long)ids[i], gen, s + i);
      s += n;
    }
    say("d %ld\n", gen, 0, 0);
    if (lmq_channel_destroy(env, "side") != 0) {
      fprintf(stderr, "destroy side: %s\n", lmq_errmsg());
      exit(3);
    }
    say("D %ld\n", gen, 0, 0);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 6 && strcmp(argv[5], "roll") == 0)) {
    fprintf(stderr, "usage: crash_child DIR SEQ_BASE THREADS APPLY_MS [roll]\n");
    return 2;
  }
  seq_base = atol(argv[2]);
  int threads = atoi(argv[3]);
  int roll = argc == 6;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.map_size = (uint64_t)256 << 20;
  if (roll) {
    pad_mult = 30;
    o.wal_segment_size = 64 << 10;
    o.checkpoint_bytes = 128 << 10;
  }
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
  pthread_t st;
  if (roll)
    pthread_create(&st, NULL, side, NULL);
  for (;;)
    pause();
}
