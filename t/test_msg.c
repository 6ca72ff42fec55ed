/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* Messages: every type round-trips field by field; the dispatcher rejects
 * corrupt input cleanly; positions, packs and the default repack. */
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every MsgType of the seed with its number. */
static const struct {
  int type;
  const char *name;
} seed_types[] = {
    {0, "Undefined"},
    {100, "CreateCollection"},     {101, "DropCollection"},
    {102, "HasCollection"},        {103, "DescribeCollection"},
    {104, "ShowCollections"},      {105, "GetSystemConfigs"},
    {106, "LoadCollection"},       {107, "ReleaseCollection"},
    {108, "CreateAlias"},          {109, "DropAlias"},
    {110, "AlterAlias"},           {200, "CreatePartition"},
    {201, "DropPartition"},        {202, "HasPartition"},
    {203, "DescribePartition"},    {204, "ShowPartitions"},
    {205, "LoadPartitions"},       {206, "ReleasePartitions"},
    {250, "ShowSegments"},         {251, "DescribeSegment"},
    {252, "LoadSegments"},         {253, "ReleaseSegments"},
    {254, "HandoffSegments"},      {255, "LoadBalanceSegments"},
    {300, "CreateIndex"},          {301, "DescribeIndex"},
    {302, "DropIndex"},            {400, "Insert"},
    {401, "Delete"},               {402, "Flush"},
    {500, "Search"},               {501, "SearchResult"},
    {502, "GetIndexState"},        {503, "GetIndexBuildProgress"},
    {504, "GetCollectionStatistics"}, {505, "GetPartitionStatistics"},
    {506, "Retrieve"},             {507, "RetrieveResult"},
    {508, "WatchDmChannels"},      {509, "RemoveDmChannels"},
    {510, "WatchQueryChannels"},   {511, "RemoveQueryChannels"},
    {600, "SegmentInfo"},          {1200, "TimeTick"},
    {1201, "QueryNodeStats"},      {1202, "LoadIndex"},
    {1203, "RequestID"},           {1204, "RequestTSO"},
    {1205, "AllocateSegment"},     {1206, "SegmentStatistics"},
    {1207, "SegmentFlushDone"},    {1208, "DataNodeTt"},
};
#define NSEED (sizeof seed_types / sizeof seed_types[0])

static const char *TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/* ------------------------------------------------ reflective fill/compare */

static size_t scalar_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  default:
    return 4;
  }
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d,
                              unsigned seed, int depth);

/* Put a distinct, non-default value derived from seed into one element. */
static void fill_one(void *p, const ProtobufCFieldDescriptor *f, unsigned seed,
                     int depth) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    *(int32_t *)p = -(int32_t)(seed % 100000) - 1;
    break;
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    *(uint32_t *)p = 3000000000u + seed;
    break;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    *(int64_t *)p = -((int64_t)seed << 33) - 7;
    break;
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    *(uint64_t *)p = ((uint64_t)seed << 40) + 11;
    break;
  case PROTOBUF_C_TYPE_FLOAT:
    *(float *)p = (float)seed + 0.25f;
    break;
  case PROTOBUF_C_TYPE_DOUBLE:
    *(double *)p = (double)seed * 1.5 + 0.125;
    break;
  case PROTOBUF_C_TYPE_BOOL:
    *(protobuf_c_boolean *)p = 1;
    break;
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumDescriptor *e = f->descriptor;
    *(int *)p = e->values[1 + seed % (e->n_values - 1)].value;
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    char *s = malloc(48);
    snprintf(s, 48, "%s-%u-\xc3\xa9", f->name, seed);
    *(char **)p = s;
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData *b = p;
    b->len = 5 + seed % 7;
    b->data = malloc(b->len);
    for (size_t i = 0; i < b->len; i++)
      b->data[i] = (uint8_t)(seed * 31 + i * 7);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    *(ProtobufCMessage **)p = fill(f->descriptor, seed * 3 + 1, depth + 1);
    break;
  }
}

static ProtobufCMessage *fill(const ProtobufCMessageDescriptor *d,
                              unsigned seed, int depth) {
  ProtobufCMessage *m = calloc(1, d->sizeof_message);
  d->message_init(m);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    char *base = (char *)m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth >= 3)
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = 1 + (seed + i) % 3, es = scalar_size(f->type);
      void *arr = calloc(n, es);
      for (size_t k = 0; k < n; k++)
        fill_one((char *)arr + k * es, f, seed + i * 17 + (unsigned)k, depth);
      *(size_t *)((char *)m + f->quantifier_offset) = n;
      *(void **)base = arr;
    } else {
      fill_one(base, f, seed + i * 17, depth);
    }
  }
  return m;
}

static void same(const ProtobufCMessage *a, const ProtobufCMessage *b,
                 const char *path);

static void same_one(const void *x, const void *y,
                     const ProtobufCFieldDescriptor *f, const char *path) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING:
    cr_assert_str_eq(*(char *const *)x, *(char *const *)y, "%s.%s", path,
                     f->name);
    break;
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *p = x, *q = y;
    cr_assert_eq(p->len, q->len, "%s.%s length", path, f->name);
    cr_assert(p->len == 0 || memcmp(p->data, q->data, p->len) == 0,
              "%s.%s bytes", path, f->name);
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *p = *(ProtobufCMessage *const *)x,
                           *q = *(ProtobufCMessage *const *)y;
    cr_assert_eq(p == NULL, q == NULL, "%s.%s presence", path, f->name);
    if (p) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.%s", path, f->name);
      same(p, q, sub);
    }
    break;
  }
  default:
    cr_assert(memcmp(x, y, scalar_size(f->type)) == 0, "%s.%s value", path,
              f->name);
  }
}

static void same(const ProtobufCMessage *a, const ProtobufCMessage *b,
                 const char *path) {
  cr_assert_eq(a->descriptor, b->descriptor, "%s descriptor", path);
  const ProtobufCMessageDescriptor *d = a->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)a + f->quantifier_offset);
      size_t m = *(const size_t *)((const char *)b + f->quantifier_offset);
      cr_assert_eq(n, m, "%s.%s count", path, f->name);
      size_t es = scalar_size(f->type);
      for (size_t k = 0; k < n; k++)
        same_one(*(char *const *)x + k * es, *(char *const *)y + k * es, f,
                 path);
    } else {
      same_one(x, y, f, path);
    }
  }
}

/* ------------------------------------------------------------- tests */

Test(msg, type_numbers_and_names_match_the_seed) {
  for (size_t i = 0; i < NSEED; i++) {
    const char *n = lmq_msg_type_name(seed_types[i].type);
    cr_assert_not_null(n, "type %d", seed_types[i].type);
    cr_assert_str_eq(n, seed_types[i].name);
    cr_assert_not_null(lmq_msg_type_descriptor(seed_types[i].type));
    /* The protobuf enum carries the same number under the seed's name. */
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
        &lmqpb__msg_type__descriptor, seed_types[i].name);
    cr_assert_not_null(v, "%s", seed_types[i].name);
    cr_assert_eq(v->value, seed_types[i].type);
  }
  cr_assert_eq(lmqpb__msg_type__descriptor.n_values, NSEED);
  cr_assert_null(lmq_msg_type_name(401 + 1000));
  cr_assert_null(lmq_msg_type_name(-1));
}

Test(msg, every_type_round_trips_field_by_field) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  for (size_t i = 0; i < NSEED; i++) {
    int type = seed_types[i].type;
    const ProtobufCMessageDescriptor *desc = lmq_msg_type_descriptor(type);
    ProtobufCMessage *body = fill(desc, (unsigned)i + 1, 0);
    lmq_tsmsg *m = NULL;
    cr_assert_eq(lmq_tsmsg_create(&m, type, body, lmq_msg_body_free_proto), 0);
    lmq_tsmsg_set_id(m, 1000 + (int64_t)i);
    lmq_tsmsg_set_timestamp(m, 5000 + i);
    cr_assert_eq(lmq_tsmsg_set_time_range(m, 4000 + i, 6000 + i), 0);
    lmq_tsmsg_set_source_id(m, -42 - (int64_t)i);
    uint32_t keys[3] = {(uint32_t)i, 7, 4000000000u};
    cr_assert_eq(lmq_tsmsg_set_hash_keys(m, keys, 3), 0);
    cr_assert_eq(lmq_tsmsg_set_traceparent(m, TP), 0);

    unsigned char *buf = NULL;
    size_t len = 0;
    cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), 0, "%s: %s",
                 seed_types[i].name, lmq_errmsg());
    cr_assert_eq(lmq_tsmsg_size(m), len);
    lmq_tsmsg *r = NULL;
    cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), 0, "%s: %s",
                 seed_types[i].name, lmq_errmsg());
    cr_assert_eq(lmq_tsmsg_type(r), (uint32_t)type);
    cr_assert_eq(lmq_tsmsg_id(r), 1000 + (int64_t)i);
    cr_assert_eq(lmq_tsmsg_timestamp(r), 5000 + i);
    cr_assert_eq(lmq_tsmsg_begin_ts(r), 4000 + i);
    cr_assert_eq(lmq_tsmsg_end_ts(r), 6000 + i);
    cr_assert_eq(lmq_tsmsg_source_id(r), -42 - (int64_t)i);
    size_t nk = 0;
    const uint32_t *k = lmq_tsmsg_hash_keys(r, &nk);
    cr_assert_eq(nk, 3);
    cr_assert_arr_eq(k, keys, sizeof keys);
    cr_assert_str_eq(lmq_tsmsg_traceparent(r), TP);
    cr_assert_eq(lmq_tsmsg_size(r), len);
    cr_assert_null(lmq_tsmsg_position(r));
    same(body, lmq_tsmsg_body(r), seed_types[i].name);
    free(buf);
    lmq_tsmsg_unref(r);
    lmq_tsmsg_unref(m);
  }
  lmq_dispatcher_destroy(d);
}

Test(msg, insert_body_keeps_rows_and_columns) {
  Lmqpb__InsertRequest ins = LMQPB__INSERT_REQUEST__INIT;
  int64_t row_ids[2] = {10, 11};
  uint64_t ts[2] = {100, 101};
  uint32_t hv[2] = {1, 3};
  float vec[4] = {0.5f, 1.5f, 2.5f, 3.5f};
  char *strs[2] = {"a", "bc"};
  int64_t pks[2] = {-5, 6};
  Lmqpb__FieldData c0 = LMQPB__FIELD_DATA__INIT, c1 = LMQPB__FIELD_DATA__INIT,
                   c2 = LMQPB__FIELD_DATA__INIT;
  c0.type = LMQPB__DATA_TYPE__Int64, c0.field_name = "pk";
  c0.n_long_data = 2, c0.long_data = pks;
  c1.type = LMQPB__DATA_TYPE__FloatVector, c1.field_name = "v", c1.dim = 2;
  c1.n_float_vector = 4, c1.float_vector = vec;
  c2.type = LMQPB__DATA_TYPE__VarChar, c2.field_name = "s";
  c2.n_string_data = 2, c2.string_data = strs;
  Lmqpb__FieldData *cols[3] = {&c0, &c1, &c2};
  ins.collection_name = "coll";
  ins.num_rows = 2;
  ins.n_row_ids = 2, ins.row_ids = row_ids;
  ins.n_timestamps = 2, ins.timestamps = ts;
  ins.n_hash_values = 2, ins.hash_values = hv;
  ins.n_fields_data = 3, ins.fields_data = cols;

  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  lmq_tsmsg *m = NULL, *r = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, &ins, NULL), 0);
  unsigned char *buf;
  size_t len;
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), 0);
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), 0);
  const Lmqpb__InsertRequest *b = lmq_tsmsg_body(r);
  cr_assert_str_eq(b->collection_name, "coll");
  cr_assert_eq(b->num_rows, 2);
  cr_assert_eq(b->row_ids[1], 11);
  cr_assert_eq(b->timestamps[0], 100);
  cr_assert_eq(b->hash_values[1], 3);
  cr_assert_eq(b->n_fields_data, 3);
  cr_assert_eq(b->fields_data[0]->long_data[0], -5);
  cr_assert_eq(b->fields_data[1]->dim, 2);
  cr_assert_float_eq(b->fields_data[1]->float_vector[3], 3.5f, 0);
  cr_assert_str_eq(b->fields_data[2]->string_data[1], "bc");
  free(buf);
  lmq_tsmsg_unref(r);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

Test(msg, delete_with_string_keys_round_trips) {
  Lmqpb__DeleteRequest del = LMQPB__DELETE_REQUEST__INIT;
  char *keys[3] = {"k1", "", "k3"};
  uint64_t ts[3] = {7, 8, 9};
  del.n_string_ids = 3, del.string_ids = keys;
  del.n_timestamps = 3, del.timestamps = ts;
  del.num_rows = 3;
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  lmq_tsmsg *m = NULL, *r = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_DELETE, &del, NULL), 0);
  unsigned char *buf;
  size_t len;
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), 0);
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), 0);
  const Lmqpb__DeleteRequest *b = lmq_tsmsg_body(r);
  cr_assert_eq(b->n_string_ids, 3);
  cr_assert_str_eq(b->string_ids[1], "");
  cr_assert_str_eq(b->string_ids[2], "k3");
  cr_assert_eq(b->timestamps[2], 9);
  cr_assert_eq(b->n_int64_ids, 0);
  cr_assert_null(lmq_tsmsg_traceparent(r));
  free(buf);
  lmq_tsmsg_unref(r);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

Test(msg, wrong_body_type_is_refused) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  Lmqpb__DeleteRequest del = LMQPB__DELETE_REQUEST__INIT;
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, &del, NULL), 0);
  unsigned char *buf = NULL;
  size_t len = 0;
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), LMQ_EINVAL);
  cr_assert_null(buf);
  lmq_tsmsg_unref(m);
  cr_assert_eq(lmq_tsmsg_create(&m, 77777, &del, NULL), 0);
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), LMQ_ENOTSUP);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

Test(msg, traceparent_must_be_w3c) {
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_new_time_tick(&m, 1, 2, 3), 0);
  cr_assert_eq(lmq_tsmsg_set_traceparent(m, "nope"), LMQ_EINVAL);
  cr_assert_eq(lmq_tsmsg_set_traceparent(
                   m, "00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
               LMQ_EINVAL);
  cr_assert_eq(lmq_tsmsg_set_traceparent(
                   m, "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"),
               LMQ_EINVAL);
  cr_assert_null(lmq_tsmsg_traceparent(m));
  cr_assert_eq(lmq_tsmsg_set_traceparent(m, TP), 0);
  cr_assert_str_eq(lmq_tsmsg_traceparent(m), TP);
  cr_assert_eq(lmq_tsmsg_set_traceparent(m, NULL), 0);
  cr_assert_null(lmq_tsmsg_traceparent(m));
  lmq_tsmsg_unref(m);
}

/* A user type with its own codec: a little-endian uint32. */
static int u32_marshal(unsigned char **out, size_t *len, const void *body,
                       void *arg) {
  (void)arg;
  *out = malloc(4);
  uint32_t v = *(const uint32_t *)body;
  for (int i = 0; i < 4; i++)
    (*out)[i] = (unsigned char)(v >> (8 * i));
  *len = 4;
  return 0;
}
static int u32_unmarshal(void **body, lmq_body_free_fn *body_free,
                         const void *data, size_t len, void *arg) {
  (void)arg;
  if (len != 4)
    return LMQ_ECORRUPT;
  uint32_t *v = malloc(sizeof *v);
  const unsigned char *b = data;
  *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
       (uint32_t)b[3] << 24;
  *body = v;
  *body_free = free;
  return 0;
}

Test(msg, user_registered_type_round_trips) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  lmq_msg_codec c = {u32_marshal, u32_unmarshal, NULL};
  cr_assert_eq(lmq_dispatcher_register(d, 5000, &c), 0);
  cr_assert_eq(lmq_dispatcher_register(d, -1, &c), LMQ_EINVAL);
  cr_assert_eq(lmq_dispatcher_register(d, 5001, NULL), LMQ_EINVAL);
  uint32_t v = 0xdeadbeef;
  lmq_tsmsg *m = NULL, *r = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, 5000, &v, NULL), 0);
  unsigned char *buf;
  size_t len;
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), 0);
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), 0);
  cr_assert_eq(lmq_tsmsg_type(r), 5000);
  cr_assert_eq(*(uint32_t *)lmq_tsmsg_body(r), 0xdeadbeef);
  lmq_tsmsg_unref(r);
  /* A dispatcher without the type refuses it cleanly. */
  lmq_dispatcher *p = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&p), 0);
  cr_assert_eq(lmq_msg_unmarshal(&r, p, buf, len), LMQ_ENOTSUP);
  cr_assert_null(r);
  free(buf);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(p);
  lmq_dispatcher_destroy(d);
}

static unsigned rnd_state = 12345;
static unsigned rnd(void) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return rnd_state >> 8;
}

Test(msg, random_and_truncated_bytes_never_crash_the_dispatcher) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  unsigned char buf[512];
  int ok = 0, bad = 0;
  for (int it = 0; it < 20000; it++) {
    size_t len = rnd() % sizeof buf;
    for (size_t i = 0; i < len; i++)
      buf[i] = (unsigned char)rnd();
    lmq_tsmsg *r = NULL;
    int rc = lmq_msg_unmarshal(&r, d, buf, len);
    cr_assert(rc == 0 || rc == LMQ_ECORRUPT || rc == LMQ_ENOTSUP, "rc %d", rc);
    cr_assert_eq(rc == 0, r != NULL);
    rc == 0 ? ok++ : bad++;
    lmq_tsmsg_unref(r);
  }
  cr_assert_gt(bad, 0);
  /* Every prefix and many single-byte corruptions of real messages. */
  for (size_t i = 0; i < NSEED; i++) {
    const ProtobufCMessageDescriptor *desc =
        lmq_msg_type_descriptor(seed_types[i].type);
    lmq_tsmsg *m = NULL;
    cr_assert_eq(lmq_tsmsg_create(&m, seed_types[i].type,
                                  fill(desc, (unsigned)i + 9, 0),
                                  lmq_msg_body_free_proto), 0);
    lmq_tsmsg_set_timestamp(m, 77);
    cr_assert_eq(lmq_tsmsg_set_traceparent(m, TP), 0);
    unsigned char *enc;
    size_t len;
    cr_assert_eq(lmq_msg_marshal(&enc, &len, d, m), 0);
    for (size_t cut = 0; cut < len; cut++) {
      lmq_tsmsg *r = NULL;
      int rc = lmq_msg_unmarshal(&r, d, enc, cut);
      cr_assert(rc == 0 || rc == LMQ_ECORRUPT || rc == LMQ_ENOTSUP);
      lmq_tsmsg_unref(r);
    }
    unsigned char *mut = malloc(len);
    for (int it = 0; it < 300; it++) {
      memcpy(mut, enc, len);
      mut[rnd() % len] ^= (unsigned char)(1 + rnd() % 255);
      lmq_tsmsg *r = NULL;
      int rc = lmq_msg_unmarshal(&r, d, mut, len);
      cr_assert(rc == 0 || rc == LMQ_ECORRUPT || rc == LMQ_ENOTSUP);
      lmq_tsmsg_unref(r);
    }
    free(mut);
    free(enc);
    lmq_tsmsg_unref(m);
  }
  lmq_tsmsg *r = NULL;
  cr_assert_eq(lmq_msg_unmarshal(&r, d, NULL, 0), LMQ_ECORRUPT);
  cr_assert_eq(lmq_msg_unmarshal(&r, d, NULL, 5), LMQ_EINVAL);
  lmq_dispatcher_destroy(d);
}

/* An envelope of type TimeTick (Empty body) with the given body bytes. */
static size_t tick_with_body(unsigned char *env, const void *body, size_t blen) {
  size_t n = 0;
  env[n++] = 0x0a, env[n++] = 3, env[n++] = 0x08, env[n++] = 0xb0, env[n++] = 0x09;
  env[n++] = 0x32, env[n++] = (unsigned char)blen;
  memcpy(env + n, body, blen);
  return n + blen;
}

/* Key 0x80 0x00 is field 0 in a two-byte varint: protobuf-c kept it as an
 * unknown field and marshal wrote it back as 0x00, which does not decode,
 * so a relayed message was dropped downstream. Field 0 is refused. */
Test(msg, field_number_zero_is_corrupt) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  unsigned char env[64];
  size_t n = tick_with_body(env, "\x80\x00\x01", 3);
  lmq_tsmsg *m = NULL;
  int rc = lmq_msg_unmarshal(&m, d, env, n);
  if (rc == 0) {
    unsigned char *out;
    size_t len;
    lmq_tsmsg *again = NULL;
    cr_assert_eq(lmq_msg_marshal(&out, &len, d, m), 0);
    cr_log_error("re-decoding the relayed bytes gives %d",
                 lmq_msg_unmarshal(&again, d, out, len));
    lmq_tsmsg_unref(again);
    free(out);
    lmq_tsmsg_unref(m);
  }
  cr_assert_eq(rc, LMQ_ECORRUPT);
  /* In a nested message too: SegmentInfo's start_position (field 9). */
  unsigned char body[] = {0x4a, 0x03, 0x80, 0x00, 0x01};
  n = tick_with_body(env, body, sizeof body);
  env[3] = 0xd8, env[4] = 0x04; /* msg_type 600 */
  cr_assert_eq(lmq_msg_unmarshal(&m, d, env, n), LMQ_ECORRUPT);
  /* And in the envelope itself. */
  unsigned char e0[] = {0x0a, 0x03, 0x08, 0xb0, 0x09, 0x80, 0x00, 0x01};
  cr_assert_eq(lmq_msg_unmarshal(&m, d, e0, sizeof e0), LMQ_ECORRUPT);
  lmq_dispatcher_destroy(d);
}

/* The other half of the decision: unknown fields with valid numbers (a newer
 * producer's) pass through a relay unchanged. */
Test(msg, unknown_body_fields_survive_a_relay) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  unsigned char env[64];
  size_t n = tick_with_body(env, "\x08\x05\x12\x01z", 5);
  lmq_tsmsg *m = NULL, *again = NULL;
  cr_assert_eq(lmq_msg_unmarshal(&m, d, env, n), 0);
  unsigned char *out;
  size_t len;
  cr_assert_eq(lmq_msg_marshal(&out, &len, d, m), 0);
  cr_assert_eq(len, n);
  cr_assert_arr_eq(out, env, n);
  cr_assert_eq(lmq_msg_unmarshal(&again, d, out, len), 0);
  free(out);
  lmq_tsmsg_unref(again);
  lmq_tsmsg_unref(m);
  lmq_dispatcher_destroy(d);
}

Test(msg, mem_dispatcher_passes_the_same_message_without_encoding) {
  lmq_dispatcher *d = NULL, *other = NULL;
  cr_assert_eq(lmq_dispatcher_create_mem(&d), 0);
  cr_assert_eq(lmq_dispatcher_create_mem(&other), 0);
  lmq_tsmsg *m = NULL, *r = NULL;
  cr_assert_eq(lmq_tsmsg_new_time_tick(&m, 5, 99, 1), 0);
  unsigned char *buf;
  size_t len;
  cr_assert_eq(lmq_msg_marshal(&buf, &len, d, m), 0);
  lmq_tsmsg_unref(m); /* the dispatcher keeps it alive */
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), 0);
  cr_assert_neq(r, m); /* its own copy... */
  cr_assert_eq(lmq_tsmsg_body(r), lmq_tsmsg_body(m)); /* ...of the same body */
  cr_assert_eq(lmq_tsmsg_timestamp(r), 99);
  lmq_tsmsg_unref(r);
  cr_assert_eq(lmq_msg_unmarshal(&r, other, buf, len), LMQ_ECORRUPT);
  buf[len - 1] ^= 0x40; /* an index the dispatcher never gave out */
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, len), LMQ_ECORRUPT);
  cr_assert_eq(lmq_msg_unmarshal(&r, d, buf, 3), LMQ_ECORRUPT);
  free(buf);
  lmq_dispatcher_destroy(other);
  lmq_dispatcher_destroy(d);
}

Test(msg, positions_survive_marshal_and_copy) {
  unsigned char id1[8] = {0, 0, 0, 0, 0, 0, 1, 2}, id2[3] = {9, 8, 7};
  lmq_msg_position p[2] = {{"ch-a", id1, 8, "sub", 15},
                           {"ch-b", id2, 3, NULL, 0}};
  unsigned char *buf;
  size_t len;
  cr_assert_eq(lmq_msg_positions_marshal(&buf, &len, p, 2), 0);
  lmq_msg_position *q = NULL;
  size_t n = 0;
  cr_assert_eq(lmq_msg_positions_unmarshal(&q, &n, buf, len), 0);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(q[0].channel, "ch-a");
  cr_assert_str_eq(q[0].group, "sub");
  cr_assert_eq(q[0].timestamp, 15);
  cr_assert_arr_eq(q[0].msg_id, id1, 8);
  cr_assert_null(q[1].group);
  cr_assert_eq(q[1].msg_id_len, 3);
  lmq_msg_position c = {0};
  cr_assert_eq(lmq_msg_position_copy(&c, &q[1]), 0);
  cr_assert_arr_eq(c.msg_id, id2, 3);
  lmq_msg_position_clear(&c);
  lmq_msg_positions_free(q, n);
  for (size_t cut = 1; cut < len; cut++) {
    int rc = lmq_msg_positions_unmarshal(&q, &n, buf, cut);
    if (rc == 0)
      lmq_msg_positions_free(q, n);
    else
      cr_assert_eq(rc, LMQ_ECORRUPT);
  }
  free(buf);
}
