/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * demo_stream.c - the stream half of `lmq demo`: several producer threads
 * write Insert messages (10 rows each, split across channels by the
 * default repack) and time ticks to N channels; a TtMsgStream consumes them
 * and checks every pack; packs/s and messages/s are printed.
 */
#define _POSIX_C_SOURCE 200809L
#include "lmq.h"
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"
#include "cli/demo.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHANNELS 8
#define PRODUCERS 4
#define ROUNDS 200
#define PER_ROUND 250 /* Inserts per producer per round */
#define ROWS 10
#define TS_PER_ROUND ((uint64_t)PRODUCERS * PER_ROUND)

static lmq_stream_factory *factory;
static const char *chan_names[CHANNELS];
static pthread_barrier_t round_done;
static int demo_failed;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, int rc) {
  fprintf(stderr, "lmq demo: %s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  demo_failed = 1;
}

/* An Insert of ROWS rows whose row r goes to channel (seed + r) % CHANNELS. */
static lmq_tsmsg *make_insert(unsigned seed) {
  Lmqpb__InsertRequest *b = malloc(sizeof *b);
  Lmqpb__FieldData *pk = malloc(sizeof *pk);
  if (!b || !pk) {
    free(b);
    free(pk);
    return NULL;
  }
  lmqpb__insert_request__init(b);
  lmqpb__field_data__init(pk);
  b->collection_name = strdup("orders");
  b->num_rows = ROWS;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = ROWS;
  b->row_ids = malloc(ROWS * sizeof *b->row_ids);
  b->timestamps = malloc(ROWS * sizeof *b->timestamps);
  b->hash_values = malloc(ROWS * sizeof *b->hash_values);
  pk->field_name = strdup("amount");
  pk->type = LMQPB__DATA_TYPE__Int64;
  pk->n_long_data = ROWS;
  pk->long_data = malloc(ROWS * sizeof *pk->long_data);
  b->fields_data = malloc(sizeof *b->fields_data);
  if (b->fields_data) {
    b->fields_data[0] = pk;
    b->n_fields_data = 1;
  } else {
    free(pk->field_name);
    free(pk->long_data);
    free(pk);
    pk = NULL;
  }
  lmq_tsmsg *m = NULL;
  if (!pk || !b->collection_name || !b->row_ids || !b->timestamps ||
      !b->hash_values || !pk->field_name || !pk->long_data) {
    lmq_msg_body_free_proto(b);
    return NULL;
  }
  for (int r = 0; r < ROWS; r++) {
    b->row_ids[r] = (int64_t)seed * ROWS + r;
    b->timestamps[r] = 0;
    b->hash_values[r] = seed + (unsigned)r;
    pk->long_data[r] = r * 100;
  }
  if (lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto)) {
    lmq_msg_body_free_proto(b);
    return NULL;
  }
  if (lmq_tsmsg_set_hash_keys(m, b->hash_values, ROWS)) {
    lmq_tsmsg_unref(m);
    return NULL;
  }
  return m;
}

static void *producer(void *arg) {
  long p = (long)arg;
  lmq_msgstream *s = NULL;
  lmq_msg_pack *pk = NULL, *tk = NULL;
  int rc;
  if ((rc = lmq_msgstream_create(&s, factory)) ||
      (rc = lmq_msgstream_as_producer(s, chan_names, CHANNELS)) ||
      (rc = lmq_msg_pack_create(&pk)) || (rc = lmq_msg_pack_create(&tk))) {
    fail("producer", rc);
    goto out;
  }
  for (int i = 0; i < PER_ROUND; i++) {
    lmq_tsmsg *m = make_insert((unsigned)(p * PER_ROUND + i));
    if (!m || lmq_msg_pack_append(pk, m)) {
      lmq_tsmsg_unref(m);
      fail("insert", LMQ_ENOMEM);
      goto out;
    }
  }
  lmq_tsmsg *tick = NULL;
  if (p == 0 && ((rc = lmq_tsmsg_new_time_tick(&tick, 0, 0, 1)) ||
                 (rc = lmq_msg_pack_append(tk, tick)))) {
    lmq_tsmsg_unref(tick);
    fail("tick", rc);
    goto out;
  }
  for (int r = 0; r < ROUNDS; r++) {
    uint64_t base = (uint64_t)r * TS_PER_ROUND;
    for (int i = 0; i < PER_ROUND && !demo_failed; i++) {
      lmq_tsmsg_set_id(pk->msgs[i], (int64_t)(base + (uint64_t)p * PER_ROUND + (uint64_t)i + 1));
      lmq_tsmsg_set_timestamp(pk->msgs[i], base + (uint64_t)p * PER_ROUND + (uint64_t)i + 1);
    }
    if (!demo_failed && (rc = lmq_msgstream_produce(s, pk)))
      fail("produce", rc);
    /* Everyone's round-r messages are written before the tick that closes
     * the round goes out: that is what a time tick promises. */
    pthread_barrier_wait(&round_done);
    if (p == 0 && !demo_failed) {
      lmq_tsmsg_set_id(tick, -(int64_t)r - 1);
      lmq_tsmsg_set_timestamp(tick, base + TS_PER_ROUND);
      if ((rc = lmq_msgstream_broadcast(NULL, NULL, s, tk)))
        fail("broadcast", rc);
    }
  }
out:
  lmq_msg_pack_destroy(pk);
  lmq_msg_pack_destroy(tk);
  lmq_msgstream_close(s);
  return NULL;
}

int lmq__demo_stream(const char *dir) {
  static char names[CHANNELS][32];
  for (int c = 0; c < CHANNELS; c++) {
    snprintf(names[c], sizeof names[c], "insert-%d", c);
    chan_names[c] = names[c];
  }
  int rc;
  if ((rc = lmq_stream_factory_create(&factory)) ||
      (rc = lmq_stream_factory_set(factory, "engine.dir", dir)) ||
      (rc = lmq_stream_factory_set(factory, "engine.sync", "interval")) ||
      (rc = lmq_stream_factory_set(factory, "receive_buffer", "4096"))) {
    fail("factory", rc);
    lmq_stream_factory_destroy(factory);
    return 1;
  }
  lmq_msgstream *c = NULL;
  if ((rc = lmq_ttmsgstream_create(&c, factory)) ||
      (rc = lmq_msgstream_as_consumer(c, chan_names, CHANNELS, "indexer",
                                      LMQ_SUB_EARLIEST))) {
    fail("consumer", rc);
    lmq_msgstream_close(c);
    lmq_stream_factory_destroy(factory);
    return 1;
  }
  printf("\nstreams: %d producer threads -> %d channels (Inserts of %d rows, "
         "split by row hash), a time tick every %llu timestamps; one "
         "TtMsgStream reads them\n",
         PRODUCERS, CHANNELS, ROWS, (unsigned long long)TS_PER_ROUND);
  pthread_barrier_init(&round_done, NULL, PRODUCERS);
  pthread_t th[PRODUCERS];
  double t0 = now_s();
  for (long p = 0; p < PRODUCERS; p++)
    pthread_create(&th[p], NULL, producer, (void *)p);
  uint64_t msgs = 0, rows = 0, packs = 0, prev_end = 0;
  while (packs < ROUNDS && !demo_failed) {
    lmq_msg_pack *k = NULL;
    if ((rc = lmq_msgstream_consume(&k, c, 10000))) {
      fail("consume", rc);
      break;
    }
    if (k->begin_ts != prev_end || k->end_ts != prev_end + TS_PER_ROUND) {
      fprintf(stderr, "lmq demo: pack (%llu,%llu] out of step\n",
              (unsigned long long)k->begin_ts, (unsigned long long)k->end_ts);
      demo_failed = 1;
    }
    for (size_t i = 0; i < k->nmsgs; i++) {
      uint64_t ts = lmq_tsmsg_timestamp(k->msgs[i]);
      if (ts <= k->begin_ts || ts > k->end_ts)
        demo_failed = 1;
      const Lmqpb__InsertRequest *b = lmq_tsmsg_body(k->msgs[i]);
      rows += b ? b->num_rows : 0;
    }
    msgs += k->nmsgs;
    prev_end = k->end_ts;
    packs++;
    if (packs % 50 == 0)
      printf("  pack %3llu: (%llu, %llu] %zu messages\n",
             (unsigned long long)packs, (unsigned long long)k->begin_ts,
             (unsigned long long)k->end_ts, k->nmsgs);
    lmq_msg_pack_destroy(k);
  }
  double dt = now_s() - t0;
  for (int p = 0; p < PRODUCERS; p++)
    pthread_join(th[p], NULL);
  pthread_barrier_destroy(&round_done);
  lmq_msgstream_close(c);
  lmq_stream_factory_destroy(factory);
  if (demo_failed)
    return 1;
  printf("consumed %llu packs, %llu messages (%llu rows) in %.2f s: %.0f packs/s, "
         "%.0f msg/s, %.0f rows/s; every message inside its pack's interval\n",
         (unsigned long long)packs, (unsigned long long)msgs,
         (unsigned long long)rows, dt, packs / dt, msgs / dt, rows / dt);
  return rows == (uint64_t)ROUNDS * PRODUCERS * PER_ROUND * ROWS ? 0 : 1;
}
