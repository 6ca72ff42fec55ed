/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * gen_corpus.c - write the binary seed corpora of the message and position
 * fuzz targets (fuzz/corpus/msg, fuzz/corpus/msgpos). The JSON and URI
 * seeds are written by hand. Run from the top of the source tree after a
 * build:  make fuzz/gen_corpus && fuzz/gen_corpus fuzz/corpus
 * The output is committed; regenerate it only when the wire format changes.
 */
#include "lmq_msg.pb-c.h"
#include "lmq_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;
static lmq_dispatcher *disp;

static void write_file(const char *sub, const char *name, const void *p, size_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
    perror(path);
    exit(1);
  }
}

/* Marshal m into msg/<name> and drop it. */
static void emit(const char *name, lmq_tsmsg *m) {
  unsigned char *b;
  size_t n;
  if (lmq_msg_marshal(&b, &n, disp, m)) {
    fprintf(stderr, "%s: %s\n", name, lmq_errmsg());
    exit(1);
  }
  write_file("msg", name, b, n);
  free(b);
  lmq_tsmsg_unref(m);
}

static lmq_tsmsg *wrap(int type, void *body, const uint32_t *keys, size_t nk) {
  lmq_tsmsg *m;
  if (lmq_tsmsg_create(&m, type, body, lmq_msg_body_free_proto))
    exit(1);
  lmq_tsmsg_set_id(m, 7);
  lmq_tsmsg_set_timestamp(m, 1000);
  lmq_tsmsg_set_source_id(m, 3);
  if (nk)
    lmq_tsmsg_set_hash_keys(m, keys, nk);
  return m;
}

static char *dup(const char *s) {
  char *p = strdup(s);
  if (!p)
    exit(1);
  return p;
}

static Lmqpb__FieldData *column(Lmqpb__DataType t, const char *name, size_t rows,
                                int64_t dim) {
  Lmqpb__FieldData *c = calloc(1, sizeof *c);
  lmqpb__field_data__init(c);
  c->type = t;
  c->field_name = dup(name);
  c->dim = dim;
  switch (t) {
  case LMQPB__DATA_TYPE__Bool:
    c->n_bool_data = rows;
    c->bool_data = calloc(rows, sizeof *c->bool_data);
    break;
  case LMQPB__DATA_TYPE__Int32:
    c->n_int_data = rows;
    c->int_data = calloc(rows, sizeof *c->int_data);
    break;
  case LMQPB__DATA_TYPE__Int64:
    c->n_long_data = rows;
    c->long_data = calloc(rows, sizeof *c->long_data);
    for (size_t r = 0; r < rows; r++)
      c->long_data[r] = (int64_t)r * 10;
    break;
  case LMQPB__DATA_TYPE__Float:
    c->n_float_data = rows;
    c->float_data = calloc(rows, sizeof *c->float_data);
    break;
  case LMQPB__DATA_TYPE__Double:
    c->n_double_data = rows;
    c->double_data = calloc(rows, sizeof *c->double_data);
    break;
  case LMQPB__DATA_TYPE__VarChar:
    c->n_string_data = rows;
    c->string_data = calloc(rows, sizeof *c->string_data);
    for (size_t r = 0; r < rows; r++) {
      char s[16];
      snprintf(s, sizeof s, "row%zu", r);
      c->string_data[r] = dup(s);
    }
    break;
  case LMQPB__DATA_TYPE__FloatVector:
    c->n_float_vector = rows * (size_t)dim;
    c->float_vector = calloc(c->n_float_vector, sizeof *c->float_vector);
    for (size_t i = 0; i < c->n_float_vector; i++)
      c->float_vector[i] = (float)i / 4;
    break;
  case LMQPB__DATA_TYPE__BinaryVector:
    c->binary_vector.len = rows * (size_t)dim / 8;
    c->binary_vector.data = calloc(c->binary_vector.len, 1);
    break;
  default:
    break;
  }
  return c;
}

/* An Insert of rows rows with one column of each type, keys 0, 1, 2... */
static void insert(const char *name, size_t rows, int keys_in_body) {
  Lmqpb__InsertRequest *b = calloc(1, sizeof *b);
  lmqpb__insert_request__init(b);
  b->shard_name = dup("shard-0");
  b->db_name = dup("db");
  b->collection_name = dup("coll");
  b->partition_name = dup("_default");
  b->collection_id = 11;
  b->num_rows = rows;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = rows;
  b->row_ids = calloc(rows, 8);
  b->timestamps = calloc(rows, 8);
  b->hash_values = calloc(rows, 4);
  uint32_t *keys = calloc(rows, 4);
  for (size_t r = 0; r < rows; r++) {
    b->row_ids[r] = 100 + (int64_t)r;
    b->timestamps[r] = 1000;
    b->hash_values[r] = keys[r] = (uint32_t)r;
  }
  static const Lmqpb__DataType types[] = {
      LMQPB__DATA_TYPE__Int64,       LMQPB__DATA_TYPE__Bool,
      LMQPB__DATA_TYPE__Int32,       LMQPB__DATA_TYPE__Float,
      LMQPB__DATA_TYPE__Double,      LMQPB__DATA_TYPE__VarChar,
      LMQPB__DATA_TYPE__FloatVector, LMQPB__DATA_TYPE__BinaryVector};
  b->n_fields_data = sizeof types / sizeof *types;
  b->fields_data = calloc(b->n_fields_data, sizeof *b->fields_data);
  for (size_t i = 0; i < b->n_fields_data; i++)
    b->fields_data[i] = column(types[i], "col", rows,
                               types[i] == LMQPB__DATA_TYPE__FloatVector    ? 4
                               : types[i] == LMQPB__DATA_TYPE__BinaryVector ? 16
                                                                            : 0);
  lmq_tsmsg *m = wrap(LMQ_MSG_INSERT, b, keys, keys_in_body ? 0 : rows);
  free(keys);
  emit(name, m);
}

static void delete_msg(const char *name, int strings) {
  Lmqpb__DeleteRequest *d = calloc(1, sizeof *d);
  lmqpb__delete_request__init(d);
  d->collection_name = dup("coll");
  d->num_rows = 2;
  if (strings) {
    d->n_string_ids = 2;
    d->string_ids = calloc(2, sizeof(char *));
    d->string_ids[0] = dup("a");
    d->string_ids[1] = dup("b");
  } else {
    d->n_int64_ids = 2;
    d->int64_ids = calloc(2, 8);
    d->int64_ids[0] = 5;
    d->int64_ids[1] = 6;
  }
  d->n_timestamps = d->n_hash_values = 2;
  d->timestamps = calloc(2, 8);
  d->hash_values = calloc(2, 4);
  d->hash_values[0] = 4;
  d->hash_values[1] = 9;
  emit(name, wrap(LMQ_MSG_DELETE, d, NULL, 0));
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_corpus DIR (writes DIR/msg and DIR/msgpos)\n");
    return 2;
  }
  dir = argv[1];
  if (lmq_dispatcher_create_proto(&disp))
    return 1;
  /* Every built-in type with an empty body and one hash key. */
  for (int t = 0; t < 2000; t++) {
    const ProtobufCMessageDescriptor *desc = lmq_msg_type_descriptor(t);
    if (!desc)
      continue;
    ProtobufCMessage *body = calloc(1, desc->sizeof_message);
    protobuf_c_message_init(desc, body);
    uint32_t key = (uint32_t)t;
    char name[64];
    snprintf(name, sizeof name, "type-%04d-%s", t, lmq_msg_type_name(t));
    emit(name, wrap(t, body, &key, 1));
  }
  insert("insert-3rows-keys-in-envelope", 3, 0);
  insert("insert-4rows-keys-in-body", 4, 1);
  insert("insert-1row", 1, 0);
  delete_msg("delete-int64-keys", 0);
  delete_msg("delete-string-keys", 1);
  {
    /* A tick with trace context and a time range. */
    lmq_tsmsg *m;
    lmq_tsmsg_new_time_tick(&m, 9, 2000, 1);
    lmq_tsmsg_set_time_range(m, 1500, 2000);
    lmq_tsmsg_set_traceparent(
        m, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    uint32_t k[3] = {1, 2, 3};
    lmq_tsmsg_set_hash_keys(m, k, 3);
    emit("timetick-traceparent", m);
  }
  /* Positions: one, two, and one without a group. */
  lmq_msg_position p[2] = {
      {"chan-a", (unsigned char *)"\0\0\0\0\0\0\0\x2a", 8, "group-1", 77},
      {"chan-b", (unsigned char *)"\0\0\0\0\0\0\x01\0", 8, NULL, 78}};
  for (size_t n = 1; n <= 2; n++) {
    unsigned char *b;
    size_t len;
    if (lmq_msg_positions_marshal(&b, &len, p, n))
      return 1;
    char name[32];
    snprintf(name, sizeof name, "positions-%zu", n);
    write_file("msgpos", name, b, len);
    free(b);
  }
  lmq_dispatcher_destroy(disp);
  return 0;
}
