/*
 * bench_profile - fixed, single-threaded workloads to profile with
 * valgrind --tool=callgrind (instruction counts repeat where timings on a
 * shared machine do not). bench/README.md ("Profiles") has the commands.
 *
 *   bench_profile single DIR N [name|handle]
 *       N produce calls of one 100-byte message, sync NONE, to one
 *       channel, by name (lmq_produce) or through a channel handle.
 *   bench_profile tt DIR ROUNDS ROWS [engine|rocksdb]
 *       A MsgStream producer sends ROUNDS x 1000 Inserts of ROWS rows
 *       (one hash key each, routed over 16 channels by the default repack)
 *       plus a TimeTick broadcast per round; then a TtMsgStream consumes
 *       every pack. Produce and consume run one after the other on this
 *       thread, so their costs separate in the profile
 *       (lmq_msgstream_produce, lmq_msgstream_consume).
 *
 * DIR must not exist (it is created). Prints the rate of each phase.
 * Built with -DBENCH_PROFILE_NO_HANDLES it links against a library without
 * channel handles (the "before" profiles: `single ... name` only).
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void chk(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "bench_profile: %s: %s (%s)\n", what, lmq_strerror(rc),
            lmq_errmsg());
    exit(1);
  }
}

static int single(const char *dir, long n, int handle) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  lmq_env *env = NULL;
  chk(lmq_env_open(&env, dir, &o), "open");
  chk(lmq_channel_create(env, "c"), "create");
#ifdef BENCH_PROFILE_NO_HANDLES
  if (handle)
    chk(LMQ_ENOTSUP, "handles");
#define lmq_channel_produce(h, b, n, ids, s) ((void)(h), LMQ_ENOTSUP)
  void *h = NULL;
#else
  lmq_channel *h = NULL;
  chk(lmq_channel_open(&h, env, "c"), "channel open");
#endif
  char p[100];
  memset(p, 's', sizeof p);
  lmq_buf b = {p, sizeof p};
  double t0 = now_s();
  for (long i = 0; i < n; i++)
    chk(handle ? lmq_channel_produce(h, &b, 1, NULL, LMQ_SYNC_NONE)
               : lmq_produce(env, "c", &b, 1, NULL, LMQ_SYNC_NONE),
        "produce");
  double t = now_s() - t0;
  printf("single %s: %.0f calls/s\n", handle ? "handle" : "name", (double)n / t);
#ifndef BENCH_PROFILE_NO_HANDLES
  lmq_channel_close(h);
#endif
  lmq_env_close(env);
  return 0;
}

static lmq_tsmsg *insert(uint32_t key, size_t rows) {
  Lmqpb__InsertRequest *b = calloc(1, sizeof *b);
  if (!b)
    chk(LMQ_ENOMEM, "insert");
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("bench");
  b->shard_name = strdup("");
  b->db_name = strdup("");
  b->partition_name = strdup("");
  b->num_rows = rows;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = rows;
  b->row_ids = calloc(rows, sizeof *b->row_ids);
  b->timestamps = calloc(rows, sizeof *b->timestamps);
  b->hash_values = malloc(rows * sizeof *b->hash_values);
  for (size_t i = 0; i < rows; i++) {
    b->row_ids[i] = (int64_t)i;
    b->hash_values[i] = key;
  }
  lmq_tsmsg *m = NULL;
  chk(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto), "tsmsg");
  chk(lmq_tsmsg_set_hash_keys(m, &key, 1), "hash keys");
  return m;
}

static int tt(const char *dir, size_t rounds, size_t rows, const char *backend) {
  const size_t nch = 16, every = 1000;
  lmq_stream_factory *f = NULL;
  chk(lmq_stream_factory_create(&f), "factory");
  chk(lmq_stream_factory_set(f, "backend", backend), "backend");
  chk(lmq_stream_factory_set(f, "engine.dir", dir), "dir");
  chk(lmq_stream_factory_set(f, "engine.sync", "none"), "sync");
  chk(lmq_stream_factory_set(f, "receive_buffer", "4096"), "receive_buffer");
  char names[16][16];
  const char *pn[16];
  for (size_t i = 0; i < nch; i++) {
    snprintf(names[i], sizeof names[i], "tt-%zu", i);
    pn[i] = names[i];
  }
  lmq_msgstream *p = NULL, *c = NULL;
  chk(lmq_msgstream_create(&p, f), "producer");
  chk(lmq_msgstream_as_producer(p, pn, nch), "as_producer");
  chk(lmq_ttmsgstream_create(&c, f), "ttstream");
  chk(lmq_msgstream_as_consumer(c, pn, nch, "profile", LMQ_SUB_EARLIEST),
      "as_consumer");
  lmq_msg_pack *pk = NULL, *tk = NULL;
  chk(lmq_msg_pack_create(&pk), "pack");
  chk(lmq_msg_pack_create(&tk), "pack");
  for (size_t i = 0; i < every; i++)
    chk(lmq_msg_pack_append(pk, insert((uint32_t)i, rows)), "append");
  lmq_tsmsg *tick = NULL;
  chk(lmq_tsmsg_new_time_tick(&tick, 0, 0, 1), "tick");
  chk(lmq_msg_pack_append(tk, tick), "append");
  double t0 = now_s();
  int64_t id = 1;
  for (size_t r = 0; r < rounds; r++) {
    uint64_t base = (uint64_t)r * every;
    for (size_t i = 0; i < every; i++) {
      lmq_tsmsg_set_id(pk->msgs[i], id++);
      lmq_tsmsg_set_timestamp(pk->msgs[i], base + 1 + i);
    }
    chk(lmq_msgstream_produce(p, pk), "produce");
    lmq_tsmsg_set_id(tick, -(int64_t)r - 1);
    lmq_tsmsg_set_timestamp(tick, base + every);
    chk(lmq_msgstream_broadcast(NULL, NULL, p, tk), "broadcast");
  }
  double t1 = now_s();
  size_t got = 0;
  for (size_t r = 0; r < rounds; r++) {
    lmq_msg_pack *k = NULL;
    chk(lmq_msgstream_consume(&k, c, 30000), "consume");
    got += k->nmsgs;
    lmq_msg_pack_destroy(k);
  }
  double t2 = now_s();
  if (got != rounds * every) {
    fprintf(stderr, "bench_profile: %zu of %zu messages came back\n", got,
            rounds * every);
    return 1;
  }
  printf("tt %s, %zu-row Inserts: produce %.0f msg/s, consume %.0f msg/s\n",
         backend, rows, (double)got / (t1 - t0), (double)got / (t2 - t1));
  lmq_msg_pack_destroy(pk);
  lmq_msg_pack_destroy(tk);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
  lmq_stream_factory_destroy(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && !strcmp(argv[1], "single"))
    return single(argv[2], atol(argv[3]), argc > 4 && !strcmp(argv[4], "handle"));
  if (argc >= 5 && !strcmp(argv[1], "tt"))
    return tt(argv[2], (size_t)atol(argv[3]), (size_t)atol(argv[4]),
              argc > 5 ? argv[5] : "engine");
  fprintf(stderr, "usage: bench_profile single DIR N [name|handle]\n"
                  "       bench_profile tt DIR ROUNDS ROWS [engine|rocksdb]\n");
  return 2;
}
