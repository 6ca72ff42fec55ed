/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
#include "stream_util.h"
#include "lmq_msg.pb-c.h"
#ifdef LMQ_TEST_NATS
#include "nats_harness.h"
#endif

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

lmq_stream_factory *su_factory(const char *dir) {
  lmq_stream_factory *f = NULL;
  cr_assert_eq(lmq_stream_factory_create(&f), 0);
  cr_assert_eq(lmq_stream_factory_set(f, "engine.dir", dir), 0);
  cr_assert_eq(lmq_stream_factory_set(f, "engine.sync", "none"), 0);
#ifdef LMQ_TEST_BACKEND /* the same tests, built again for another backend */
  cr_assert_eq(lmq_stream_factory_set(f, "backend", LMQ_TEST_BACKEND), 0);
#endif
#ifdef LMQ_TEST_NATS /* a server of this test's own, stopped at its exit */
  cr_assert_eq(lmq_stream_factory_set(f, "nats.url", nh_shared_url()), 0);
#endif
  return f;
}

lmq_tsmsg *su_insert(int64_t id, uint64_t ts, uint32_t key) {
  Lmqpb__InsertRequest *b = malloc(sizeof *b);
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("coll");
  b->shard_name = strdup("");
  b->db_name = strdup("");
  b->partition_name = strdup("");
  b->num_rows = 1;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = 1;
  b->row_ids = malloc(8);
  b->row_ids[0] = id;
  b->timestamps = malloc(8);
  b->timestamps[0] = ts;
  b->hash_values = malloc(4);
  b->hash_values[0] = key;
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto),
               0);
  lmq_tsmsg_set_id(m, id);
  lmq_tsmsg_set_timestamp(m, ts);
  cr_assert_eq(lmq_tsmsg_set_hash_keys(m, &key, 1), 0);
  return m;
}

void su_produce(lmq_msgstream *p, lmq_tsmsg *m) {
  lmq_msg_pack *pk = NULL;
  cr_assert_eq(lmq_msg_pack_create(&pk), 0);
  cr_assert_eq(lmq_msg_pack_append(pk, m), 0);
  cr_assert_eq(lmq_msgstream_produce(p, pk), 0, "%s", lmq_errmsg());
  lmq_msg_pack_destroy(pk);
}

void su_tick(lmq_msgstream *p, uint64_t ts) {
  lmq_tsmsg *t = NULL;
  cr_assert_eq(lmq_tsmsg_new_time_tick(&t, (int64_t)(1000000 + ts), ts, 1), 0);
  lmq_msg_pack *pk = NULL;
  cr_assert_eq(lmq_msg_pack_create(&pk), 0);
  cr_assert_eq(lmq_msg_pack_append(pk, t), 0);
  cr_assert_eq(lmq_msgstream_broadcast(NULL, NULL, p, pk), 0, "%s",
               lmq_errmsg());
  lmq_msg_pack_destroy(pk);
}

lmq_msg_pack *su_pack(lmq_msgstream *s) {
  lmq_msg_pack *p = NULL;
  int rc = lmq_msgstream_consume(&p, s, 5000);
  cr_assert_eq(rc, 0, "consume: %s (%s)", lmq_strerror(rc), lmq_errmsg());
  cr_assert_not_null(p);
  return p;
}
