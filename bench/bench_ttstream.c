/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * bench_ttstream - TtMsgStream end to end over the engine.
 *
 *   bench_ttstream [-n MESSAGES] [-c CHANNELS] [-t TICK_EVERY] [-y SYNC]
 *                  [-d TMPDIR]
 *
 * A producer thread sends Insert messages of 10 rows (row IDs, timestamps,
 * hash values, an int64 and an 8-float vector column), each routed whole to
 * one of CHANNELS channels (default 16) by the default repack, in produce
 * calls of TICK_EVERY messages (default 1000), each followed by a TimeTick
 * broadcast to every channel. The main thread consumes with a TtMsgStream
 * over all channels, checking that each pack holds exactly the messages of
 * its tick interval. Reports msg/s and packs/s end to end, then consumes the
 * same data again from the start (backlog: decode + alignment only).
 * SYNC is the engine's policy: none (default), interval or always.
 */
#define _GNU_SOURCE
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROWS 10
#define DIM 8

static size_t nmsgs = 1000000, nch = 16, every = 1000;
static const char *sync_policy = "none";

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st, (void)f, (void)w;
  return remove(p);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_ttstream: %s: %s (%s)\n", what, lmq_strerror(rc),
          lmq_errmsg());
  exit(1);
}

/* An Insert of ROWS rows, all with hash value key. */
static lmq_tsmsg *make_insert(uint32_t key) {
  Lmqpb__InsertRequest *b = calloc(1, sizeof *b);
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("bench");
  b->shard_name = strdup("");
  b->db_name = strdup("");
  b->partition_name = strdup("");
  b->num_rows = ROWS;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = ROWS;
  b->row_ids = malloc(ROWS * sizeof *b->row_ids);
  b->timestamps = malloc(ROWS * sizeof *b->timestamps);
  b->hash_values = malloc(ROWS * sizeof *b->hash_values);
  Lmqpb__FieldData *pk = calloc(1, sizeof *pk), *vec = calloc(1, sizeof *vec);
  lmqpb__field_data__init(pk);
  lmqpb__field_data__init(vec);
  pk->field_name = strdup("pk");
  pk->type = LMQPB__DATA_TYPE__Int64;
  pk->n_long_data = ROWS;
  pk->long_data = malloc(ROWS * sizeof *pk->long_data);
  vec->field_name = strdup("vec");
  vec->type = LMQPB__DATA_TYPE__FloatVector;
  vec->dim = DIM;
  vec->n_float_vector = ROWS * DIM;
  vec->float_vector = malloc(ROWS * DIM * sizeof(float));
  for (int r = 0; r < ROWS; r++) {
    b->row_ids[r] = r;
    b->timestamps[r] = 0;
    b->hash_values[r] = key;
    pk->long_data[r] = r * 7;
    for (int d = 0; d < DIM; d++)
      vec->float_vector[r * DIM + d] = (float)(r + d) / 8.0f;
  }
  b->n_fields_data = 2;
  b->fields_data = malloc(2 * sizeof *b->fields_data);
  b->fields_data[0] = pk;
  b->fields_data[1] = vec;
  lmq_tsmsg *m = NULL;
  int rc = lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto);
  if (rc)
    die("tsmsg_create", rc);
  rc = lmq_tsmsg_set_hash_keys(m, b->hash_values, ROWS);
  if (rc)
    die("set_hash_keys", rc);
  return m;
}

typedef struct prod_arg {
  lmq_msgstream *p;
  double t_end;
} prod_arg;

static void *producer(void *arg) {
  prod_arg *a = arg;
  size_t rounds = nmsgs / every;
  lmq_msg_pack *pk = NULL, *tk = NULL;
  lmq_msg_pack_create(&pk);
  lmq_msg_pack_create(&tk);
  for (size_t i = 0; i < every; i++)
    lmq_msg_pack_append(pk, make_insert((uint32_t)(i % nch)));
  lmq_tsmsg *tick = NULL;
  lmq_tsmsg_new_time_tick(&tick, 0, 0, 1);
  lmq_msg_pack_append(tk, tick);
  int64_t id = 1;
  for (size_t r = 0; r < rounds; r++) {
    uint64_t base = (uint64_t)r * every;
    for (size_t i = 0; i < every; i++) {
      lmq_tsmsg_set_id(pk->msgs[i], id++);
      lmq_tsmsg_set_timestamp(pk->msgs[i], base + 1 + i);
    }
    int rc = lmq_msgstream_produce(a->p, pk);
    if (rc)
      die("produce", rc);
    lmq_tsmsg_set_id(tick, -(int64_t)r - 1);
    lmq_tsmsg_set_timestamp(tick, base + every);
    if ((rc = lmq_msgstream_broadcast(NULL, NULL, a->p, tk)))
      die("broadcast", rc);
  }
  a->t_end = now_s();
  lmq_msg_pack_destroy(pk);
  lmq_msg_pack_destroy(tk);
  return NULL;
}

/* Consume every pack; returns messages seen, checks each interval. */
static size_t consume_all(lmq_msgstream *c, size_t *packs) {
  size_t rounds = nmsgs / every, got = 0;
  *packs = 0;
  for (size_t r = 0; r < rounds; r++) {
    lmq_msg_pack *k = NULL;
    int rc = lmq_msgstream_consume(&k, c, 30000);
    if (rc)
      die("consume", rc);
    if (k->end_ts != (uint64_t)(r + 1) * every || k->nmsgs != every) {
      fprintf(stderr, "bench_ttstream: pack %zu is (%llu,%llu] with %zu "
                      "messages, expected %zu\n",
              r, (unsigned long long)k->begin_ts,
              (unsigned long long)k->end_ts, k->nmsgs, every);
      exit(1);
    }
    got += k->nmsgs;
    (*packs)++;
    lmq_msg_pack_destroy(k);
  }
  return got;
}

int main(int argc, char **argv) {
  const char *tmpbase = NULL;
  int o;
  while ((o = getopt(argc, argv, "n:c:t:y:d:")) != -1) {
    switch (o) {
    case 'n': nmsgs = strtoul(optarg, NULL, 10); break;
    case 'c': nch = strtoul(optarg, NULL, 10); break;
    case 't': every = strtoul(optarg, NULL, 10); break;
    case 'y': sync_policy = optarg; break;
    case 'd': tmpbase = optarg; break;
    default:
      fprintf(stderr, "usage: bench_ttstream [-n MSGS] [-c CHANNELS] "
                      "[-t TICK_EVERY] [-y none|interval|always] [-d DIR]\n");
      return 2;
    }
  }
  if (!nch || !every || nmsgs < every) {
    fprintf(stderr, "bench_ttstream: need CHANNELS >= 1 and MSGS >= "
                    "TICK_EVERY >= 1\n");
    return 2;
  }
  nmsgs -= nmsgs % every;
  const char *b = tmpbase ? tmpbase : getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/lmq-bench-tt-XXXXXX", b && *b ? b : "/var/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  lmq_stream_factory *f = NULL;
  int rc;
  if ((rc = lmq_stream_factory_create(&f)) ||
      (rc = lmq_stream_factory_set(f, "engine.dir", dir)) ||
      (rc = lmq_stream_factory_set(f, "engine.sync", sync_policy)) ||
      (rc = lmq_stream_factory_set(f, "receive_buffer", "4096")))
    die("factory", rc);
  char **names = calloc(nch, sizeof *names);
  for (size_t i = 0; i < nch; i++) {
    names[i] = malloc(32);
    snprintf(names[i], 32, "bench-%zu", i);
  }
  lmq_msgstream *p = NULL, *c = NULL, *c2 = NULL;
  if ((rc = lmq_msgstream_create(&p, f)) ||
      (rc = lmq_msgstream_as_producer(p, (const char *const *)names, nch)) ||
      (rc = lmq_ttmsgstream_create(&c, f)) ||
      (rc = lmq_msgstream_as_consumer(c, (const char *const *)names, nch, "e2e",
                                      LMQ_SUB_EARLIEST)))
    die("streams", rc);

  printf("TtMsgStream, engine backend (sync=%s), %zu channels, Insert of %d "
         "rows (%d-float vector), tick every %zu messages, %zu messages\n",
         sync_policy, nch, ROWS, DIM, every, nmsgs);
  prod_arg pa = {p, 0};
  pthread_t th;
  double t0 = now_s();
  pthread_create(&th, NULL, producer, &pa);
  size_t packs = 0, got = consume_all(c, &packs);
  double t1 = now_s();
  pthread_join(th, NULL);
  printf("  end to end : %10.0f msg/s %8.0f packs/s  (%zu msgs, %zu packs, "
         "%.2f s; producer alone done at %.2f s = %.0f msg/s)\n",
         (double)got / (t1 - t0), (double)packs / (t1 - t0), got, packs,
         t1 - t0, pa.t_end - t0, (double)nmsgs / (pa.t_end - t0));

  if ((rc = lmq_ttmsgstream_create(&c2, f)) ||
      (rc = lmq_msgstream_as_consumer(c2, (const char *const *)names, nch,
                                      "backlog", LMQ_SUB_EARLIEST)))
    die("backlog stream", rc);
  t0 = now_s();
  got = consume_all(c2, &packs);
  t1 = now_s();
  printf("  backlog    : %10.0f msg/s %8.0f packs/s  (consume only)\n",
         (double)got / (t1 - t0), (double)packs / (t1 - t0));

  lmq_msgstream_close(c2);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
  lmq_stream_factory_destroy(f);
  for (size_t i = 0; i < nch; i++)
    free(names[i]);
  free(names);
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
