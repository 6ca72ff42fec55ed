/*
 * The hand-written envelope (src/stream/envelope.c) against protobuf-c:
 * lmq_msg_marshal must give exactly the bytes protobuf-c packs for the same
 * envelope, at the edges of every field (zero values omitted, negative IDs,
 * types above INT32_MAX, many hash keys, a traceparent, an empty body).
 */
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* A user codec whose bodies are always empty (the generic marshal path). */
static int empty_marshal(unsigned char **out, size_t *len, const void *body,
                         void *arg) {
  (void)body, (void)arg;
  *out = malloc(1);
  *len = 0;
  return *out ? 0 : LMQ_ENOMEM;
}
static int empty_unmarshal(void **body, lmq_body_free_fn *body_free,
                           const void *data, size_t len, void *arg) {
  (void)data, (void)len, (void)arg;
  *body = NULL;
  *body_free = NULL;
  return 0;
}

/* type is 0 or TimeTick (protobuf Empty bodies) or any type with the
 * empty user codec. */
static void check(uint32_t type, int64_t id, uint64_t ts, uint64_t b, uint64_t e,
                  int64_t src, const uint32_t *keys, size_t nkeys, const char *tp) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  Lmqpb__Empty *body = malloc(sizeof *body);
  lmqpb__empty__init(body);
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, type, body, lmq_msg_body_free_proto), 0);
  int has_codec = 1;
  if (type != 0 && type != LMQ_MSG_TIME_TICK) {
    lmq_msg_codec c = {empty_marshal, empty_unmarshal, NULL};
    cr_assert_eq(lmq_dispatcher_register(d, type, &c), 0);
  }
  lmq_tsmsg_set_id(m, id);
  lmq_tsmsg_set_timestamp(m, ts);
  cr_assert_eq(lmq_tsmsg_set_time_range(m, b, e), 0);
  lmq_tsmsg_set_source_id(m, src);
  cr_assert_eq(lmq_tsmsg_set_hash_keys(m, keys, nkeys), 0);
  cr_assert_eq(lmq_tsmsg_set_traceparent(m, tp), 0);
  unsigned char *out = NULL;
  size_t len = 0;
  int rc = lmq_msg_marshal(&out, &len, d, m);
  if (has_codec) {
    cr_assert_eq(rc, 0, "%s", lmq_errmsg());
    Lmqpb__MsgBase base = LMQPB__MSG_BASE__INIT;
    base.msg_type = (Lmqpb__MsgType)type;
    base.msg_id = id;
    base.timestamp = ts;
    base.source_id = src;
    Lmqpb__Envelope env = LMQPB__ENVELOPE__INIT;
    env.msg_base = &base;
    env.begin_ts = b;
    env.end_ts = e;
    env.n_hash_keys = nkeys;
    env.hash_keys = (uint32_t *)keys;
    if (tp)
      env.traceparent = (char *)tp;
    size_t want = lmqpb__envelope__get_packed_size(&env); /* empty body */
    unsigned char *ref = malloc(want);
    lmqpb__envelope__pack(&env, ref);
    cr_assert_eq(len, want);
    cr_assert_eq(memcmp(out, ref, len), 0);
    free(ref);
    lmq_tsmsg *back = NULL;
    cr_assert_eq(lmq_msg_unmarshal(&back, d, out, len), 0, "%s", lmq_errmsg());
    cr_assert_eq(lmq_tsmsg_id(back), id);
    cr_assert_eq(lmq_tsmsg_type(back), type);
    lmq_tsmsg_unref(back);
  }
  free(out);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

Test(envelope, bytes_match_protobuf_c_at_the_edges) {
  static const char tp[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  uint32_t keys[300];
  for (size_t i = 0; i < 300; i++)
    keys[i] = i % 3 == 0 ? 0 : (uint32_t)(i * 2654435761u);
  check(LMQ_MSG_TIME_TICK, 1, 1, 1, 1, 1, keys, 1, NULL);
  check(0, 0, 0, 0, 0, 0, NULL, 0, NULL); /* every field zero */
  check(LMQ_MSG_TIME_TICK, -1, UINT64_MAX, 0, UINT64_MAX, INT64_MIN, keys, 300, tp);
  check(0xFFFFFFF0u, INT64_MAX, 127, 127, 128, -128, keys + 1, 2, tp);
  check(0x80000000u, 300, 16383, 16384, 16384, 1, keys + 3, 1, NULL);
}

/* Marshaled Inserts with a real body decode back to the same rows. */
Test(envelope, insert_body_round_trips) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  Lmqpb__InsertRequest *b = calloc(1, sizeof *b);
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("c");
  b->shard_name = strdup("");
  b->db_name = strdup("");
  b->partition_name = strdup("");
  b->num_rows = 3;
  b->n_row_ids = 3;
  b->row_ids = calloc(3, sizeof *b->row_ids);
  b->row_ids[2] = 42;
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto), 0);
  unsigned char *out = NULL;
  size_t len = 0;
  cr_assert_eq(lmq_msg_marshal(&out, &len, d, m), 0);
  cr_assert_eq(lmq_tsmsg_size(m), len);
  lmq_tsmsg *back = NULL;
  cr_assert_eq(lmq_msg_unmarshal(&back, d, out, len), 0, "%s", lmq_errmsg());
  const Lmqpb__InsertRequest *r = lmq_tsmsg_body(back);
  cr_assert_eq(r->num_rows, 3);
  cr_assert_eq(r->n_row_ids, 3);
  cr_assert_eq(r->row_ids[2], 42);
  cr_assert_str_eq(r->collection_name, "c");
  free(out);
  lmq_tsmsg_unref(back);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

/* ---------------------------------------------------------------- reader */

#include "stream/envelope.h"

/* A varint as protobuf-c reads it: ten bytes at most, bits past 64 lost. */
static size_t ref_varint(const unsigned char *p, size_t rem, uint64_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < rem && i < 10; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

/* Envelope bytes: a msg_base holding msg_id as the varint v (n bytes),
 * then begin_ts as the same varint, and, when tail, a 12-byte body after
 * it (so the varints are read with ten or more bytes left, or fewer). */
static size_t env_with(unsigned char *out, const unsigned char *v, size_t n, int tail) {
  size_t o = 0;
  out[o++] = 0x0a; /* msg_base */
  out[o++] = (unsigned char)(1 + n);
  out[o++] = 0x10; /* msg_id */
  memcpy(out + o, v, n);
  o += n;
  out[o++] = 0x10; /* begin_ts */
  memcpy(out + o, v, n);
  o += n;
  if (tail) {
    out[o++] = 0x32; /* body */
    out[o++] = 10;
    memset(out + o, 0xee, 10);
    o += 10;
  }
  return o;
}

/* Every varint length, with ten bytes or more left or fewer, with the
 * terminating byte's spare bits set or not, and eleven-byte varints
 * refused: the stream's one-pass reader (lmq__envelope_parse) gives the
 * values protobuf-c reads. */
Test(envelope, varints_of_every_length_read_as_protobuf_c_reads_them) {
  for (size_t n = 1; n <= 11; n++)
    for (int fill = 0; fill < 4; fill++)
      for (int tail = 0; tail < 2; tail++) {
        unsigned char v[11], buf[64];
        for (size_t i = 0; i < n; i++)
          v[i] = (unsigned char)(fill == 0 ? 0x80 : fill == 1 ? 0xff : 0x80 | (i * 37 + 11));
        v[n - 1] &= 0x7f;
        if (fill == 3)
          v[n - 1] = n == 10 ? 0x01 : 0x00; /* a longest form of a small value */
        size_t len = env_with(buf, v, n, tail);
        lmq__envelope_view ev;
        uint64_t want;
        size_t wl = ref_varint(v, n, &want);
        int rc = lmq__envelope_parse(&ev, buf, len);
        if (!wl) {
          cr_assert_eq(rc, LMQ_ECORRUPT, "n %zu fill %d", n, fill);
          continue;
        }
        cr_assert_eq(rc, 0, "n %zu fill %d tail %d: %s", n, fill, tail, lmq_errmsg());
        cr_assert_eq((uint64_t)ev.id, want, "n %zu fill %d tail %d", n, fill, tail);
        cr_assert_eq(ev.begin_ts, want, "n %zu fill %d tail %d", n, fill, tail);
        cr_assert_eq(ev.bodylen, tail ? 10u : 0u);
      }
  /* A varint cut off by the end of the input. */
  unsigned char cut[] = {0x0a, 0x02, 0x08, 0x01, 0x10, 0x81, 0x82, 0x83};
  lmq__envelope_view ev;
  cr_assert_eq(lmq__envelope_parse(&ev, cut, sizeof cut), LMQ_ECORRUPT);
}
