/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* The default repack: routing by hash key, Insert split per row. */
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An Insert of rows with these hash keys; row r has row ID 100 + r, int64
 * column value 10 * r, a 2-float vector {r, -r} and the string "r<r>". */
static lmq_tsmsg *insert_msg(const uint32_t *keys, size_t rows) {
  Lmqpb__InsertRequest *b = malloc(sizeof *b);
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("c");
  b->shard_name = strdup("s");
  b->db_name = strdup("");
  b->partition_name = strdup("p");
  b->num_rows = rows;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = rows;
  b->row_ids = malloc(rows * 8);
  b->timestamps = malloc(rows * 8);
  b->hash_values = malloc(rows * 4);
  Lmqpb__FieldData *c[3];
  for (int i = 0; i < 3; i++) {
    c[i] = malloc(sizeof *c[i]);
    lmqpb__field_data__init(c[i]);
    c[i]->field_name = strdup(i == 0 ? "pk" : i == 1 ? "vec" : "name");
  }
  c[0]->type = LMQPB__DATA_TYPE__Int64;
  c[0]->n_long_data = rows;
  c[0]->long_data = malloc(rows * 8);
  c[1]->type = LMQPB__DATA_TYPE__FloatVector;
  c[1]->dim = 2;
  c[1]->n_float_vector = 2 * rows;
  c[1]->float_vector = malloc(rows * 8);
  c[2]->type = LMQPB__DATA_TYPE__String;
  c[2]->n_string_data = rows;
  c[2]->string_data = malloc(rows * sizeof(char *));
  for (size_t r = 0; r < rows; r++) {
    b->row_ids[r] = 100 + (int64_t)r;
    b->timestamps[r] = 50 + r;
    b->hash_values[r] = keys[r];
    c[0]->long_data[r] = 10 * (int64_t)r;
    c[1]->float_vector[2 * r] = (float)r;
    c[1]->float_vector[2 * r + 1] = -(float)r;
    c[2]->string_data[r] = malloc(16);
    sprintf(c[2]->string_data[r], "r%zu", r);
  }
  b->n_fields_data = 3;
  b->fields_data = malloc(sizeof c);
  memcpy(b->fields_data, c, sizeof c);
  lmq_tsmsg *m = NULL;
  cr_assert_eq(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto),
               0);
  lmq_tsmsg_set_id(m, 42);
  lmq_tsmsg_set_timestamp(m, 60);
  cr_assert_eq(lmq_tsmsg_set_hash_keys(m, keys, rows), 0);
  return m;
}

/* Route m (and n - 1 more) over nch channels into packs[]. */
static int apply(lmq_msg_pack **packs, lmq_tsmsg **msgs, size_t n, size_t nch) {
  lmq_msg_pack in = {0};
  in.msgs = msgs;
  in.nmsgs = n;
  return lmq_repack_apply(packs, nch, NULL, NULL, &in);
}

static void free_packs(lmq_msg_pack **packs, size_t n) {
  for (size_t i = 0; i < n; i++)
    lmq_msg_pack_destroy(packs[i]);
}

static void check_rows(lmq_tsmsg *m, const size_t *rows, size_t k) {
  const Lmqpb__InsertRequest *b = lmq_tsmsg_body(m);
  cr_assert_eq(b->num_rows, k);
  cr_assert_eq(b->n_row_ids, k);
  size_t nk;
  const uint32_t *keys = lmq_tsmsg_hash_keys(m, &nk);
  cr_assert_eq(nk, k);
  for (size_t j = 0; j < k; j++) {
    size_t r = rows[j];
    cr_assert_eq(b->row_ids[j], 100 + (int64_t)r);
    cr_assert_eq(b->timestamps[j], 50 + r);
    cr_assert_eq(b->hash_values[j], keys[j]);
    cr_assert_eq(b->fields_data[0]->long_data[j], 10 * (int64_t)r);
    cr_assert_float_eq(b->fields_data[1]->float_vector[2 * j], (float)r, 0);
    cr_assert_float_eq(b->fields_data[1]->float_vector[2 * j + 1], -(float)r,
                       0);
    char want[16];
    sprintf(want, "r%zu", r);
    cr_assert_str_eq(b->fields_data[2]->string_data[j], want);
  }
  cr_assert_eq(lmq_tsmsg_id(m), 42);
  cr_assert_eq(lmq_tsmsg_end_ts(m), 60);
}

Test(repack, insert_rows_route_by_their_hash_values) {
  uint32_t keys[2] = {1, 2};
  lmq_tsmsg *m = insert_msg(keys, 2);
  lmq_msg_pack *p[2];
  cr_assert_eq(apply(p, &m, 1, 2), 0);
  cr_assert(p[0] && p[1], "one message per channel");
  cr_assert_eq(p[0]->nmsgs, 1);
  cr_assert_eq(p[1]->nmsgs, 1);
  size_t r0 = 0, r1 = 1;
  check_rows(p[1]->msgs[0], &r0, 1);
  check_rows(p[0]->msgs[0], &r1, 1);
  free_packs(p, 2);
  lmq_tsmsg_unref(m);
}

Test(repack, insert_keys_1_and_3_on_2_channels_both_land_on_channel_1) {
  /* 1 % 2 == 3 % 2 == 1: the rows stay together, the message is not split. */
  uint32_t keys[2] = {1, 3};
  lmq_tsmsg *m = insert_msg(keys, 2);
  lmq_msg_pack *p[3];
  cr_assert_eq(apply(p, &m, 1, 2), 0);
  cr_assert_null(p[0]);
  cr_assert_eq(p[1]->nmsgs, 1);
  cr_assert_eq(p[1]->msgs[0], m);
  free_packs(p, 2);
  /* On 3 channels they split: row 0 to channel 1, row 1 to channel 0. */
  cr_assert_eq(apply(p, &m, 1, 3), 0);
  size_t r0 = 0, r1 = 1;
  cr_assert_eq(p[1]->nmsgs, 1);
  check_rows(p[1]->msgs[0], &r0, 1);
  cr_assert_eq(p[0]->nmsgs, 1);
  check_rows(p[0]->msgs[0], &r1, 1);
  cr_assert_null(p[2]);
  free_packs(p, 3);
  lmq_tsmsg_unref(m);
}

Test(repack, insert_rows_keep_their_order_per_channel) {
  uint32_t keys[6] = {0, 1, 2, 3, 4, 5};
  lmq_tsmsg *m = insert_msg(keys, 6);
  lmq_msg_pack *p[2];
  cr_assert_eq(apply(p, &m, 1, 2), 0);
  size_t even[3] = {0, 2, 4}, odd[3] = {1, 3, 5};
  cr_assert_eq(p[0]->nmsgs, 1);
  cr_assert_eq(p[1]->nmsgs, 1);
  check_rows(p[0]->msgs[0], even, 3);
  check_rows(p[1]->msgs[0], odd, 3);
  free_packs(p, 2);
  lmq_tsmsg_unref(m);
}

Test(repack, insert_with_mismatched_columns_is_refused) {
  uint32_t keys[2] = {0, 1};
  lmq_tsmsg *m = insert_msg(keys, 2);
  Lmqpb__InsertRequest *b = lmq_tsmsg_body(m);
  b->fields_data[0]->n_long_data = 1;
  lmq_msg_pack *p[2];
  cr_assert_eq(apply(p, &m, 1, 2), LMQ_EINVAL);
  cr_assert_null(p[0]);
  cr_assert_null(p[1]);
  lmq_tsmsg_unref(m);
}

/* m marshalled and decoded again, as a consumer or relay gets it (m is
 * dropped). */
static lmq_tsmsg *via_wire(lmq_tsmsg *m) {
  lmq_dispatcher *d = NULL;
  cr_assert_eq(lmq_dispatcher_create_proto(&d), 0);
  unsigned char *b = NULL;
  size_t n = 0;
  cr_assert_eq(lmq_msg_marshal(&b, &n, d, m), 0);
  lmq_tsmsg *c = NULL;
  cr_assert_eq(lmq_msg_unmarshal(&c, d, b, n), 0);
  free(b);
  lmq_dispatcher_destroy(d);
  lmq_tsmsg_unref(m);
  return c;
}

/* The split copies every array of a column by row index: a FloatVector
 * column that also carries one string made it read string_data[1] past the
 * end of a one-element array. */
Test(repack, insert_column_carrying_another_types_array_is_refused) {
  uint32_t keys[2] = {0, 1};
  lmq_tsmsg *m = insert_msg(keys, 2);
  Lmqpb__FieldData *vec = ((Lmqpb__InsertRequest *)lmq_tsmsg_body(m))->fields_data[1];
  vec->n_string_data = 1;
  vec->string_data = malloc(sizeof(char *));
  vec->string_data[0] = strdup("stray");
  m = via_wire(m);
  lmq_msg_pack *p[2];
  cr_assert_eq(apply(p, &m, 1, 2), LMQ_EINVAL);
  cr_assert_null(p[0]);
  cr_assert_null(p[1]);
  lmq_tsmsg_unref(m);
}

/* rows x dim wrapped around: dim 2^62 + 2 over 4 rows "expects" 8 floats, so
 * 8 floats passed the check and the split produced messages claiming 2^63 + 4
 * floats over a 16-byte array. */
Test(repack, insert_whose_rows_times_dim_overflows_is_refused) {
  uint32_t keys[4] = {0, 1, 0, 1};
  lmq_tsmsg *m = insert_msg(keys, 4);
  Lmqpb__FieldData *vec = ((Lmqpb__InsertRequest *)lmq_tsmsg_body(m))->fields_data[1];
  vec->dim = ((int64_t)1 << 62) + 2;
  cr_assert_eq(vec->n_float_vector, 8);
  m = via_wire(m);
  lmq_msg_pack *p[2] = {NULL, NULL};
  int rc = apply(p, &m, 1, 2);
  if (rc == 0) {
    const Lmqpb__InsertRequest *b = lmq_tsmsg_body(p[0]->msgs[0]);
    cr_log_error("split column claims %zu floats", b->fields_data[1]->n_float_vector);
    free_packs(p, 2);
  }
  cr_assert_eq(rc, LMQ_EINVAL);
  lmq_tsmsg_unref(m);
}

/* Body hash values that disagree with the row count are as wrong as row IDs
 * that do, even when the envelope's keys are used for routing. */
Test(repack, insert_with_hash_values_not_one_per_row_is_refused) {
  uint32_t keys[2] = {0, 1};
  lmq_tsmsg *m = insert_msg(keys, 2);
  ((Lmqpb__InsertRequest *)lmq_tsmsg_body(m))->n_hash_values = 1;
  m = via_wire(m);
  lmq_msg_pack *p[2];
  cr_assert_eq(apply(p, &m, 1, 2), LMQ_EINVAL);
  lmq_tsmsg_unref(m);
}

Test(repack, delete_goes_by_its_first_key_and_others_by_hash_key) {
  lmq_tsmsg *del = NULL, *tt = NULL, *nokey = NULL;
  cr_assert_eq(lmq_tsmsg_create(&del, LMQ_MSG_DELETE, NULL, NULL), 0);
  uint32_t dk[3] = {5, 6, 7};
  lmq_tsmsg_set_hash_keys(del, dk, 3);
  cr_assert_eq(lmq_tsmsg_new_time_tick(&tt, 1, 1, 1), 0);
  uint32_t tk = 10;
  lmq_tsmsg_set_hash_keys(tt, &tk, 1);
  lmq_tsmsg *msgs[2] = {del, tt};
  lmq_msg_pack *p[4];
  cr_assert_eq(apply(p, msgs, 2, 4), 0);
  cr_assert_eq(p[1]->nmsgs, 1); /* 5 % 4 */
  cr_assert_eq(p[1]->msgs[0], del);
  cr_assert_eq(p[2]->nmsgs, 1); /* 10 % 4 */
  cr_assert_eq(p[2]->msgs[0], tt);
  cr_assert_null(p[0]);
  cr_assert_null(p[3]);
  free_packs(p, 4);
  cr_assert_eq(lmq_tsmsg_create(&nokey, LMQ_MSG_FLUSH, NULL, NULL), 0);
  cr_assert_eq(apply(p, &nokey, 1, 4), LMQ_EINVAL);
  lmq_tsmsg_unref(nokey);
  lmq_tsmsg_unref(tt);
  lmq_tsmsg_unref(del);
}

static int to_channel_7(lmq_repack_out *out, lmq_tsmsg *const *msgs, size_t n,
                        size_t nch, void *arg) {
  (void)nch, (void)arg;
  for (size_t i = 0; i < n; i++) {
    int rc = lmq_repack_route(out, 7, msgs[i]);
    if (rc)
      return rc;
  }
  return 0;
}

Test(repack, custom_function_routing_out_of_range_is_an_error) {
  lmq_tsmsg *tt = NULL;
  cr_assert_eq(lmq_tsmsg_new_time_tick(&tt, 1, 1, 1), 0);
  lmq_msg_pack in = {0};
  in.msgs = &tt;
  in.nmsgs = 1;
  lmq_msg_pack *p[8];
  cr_assert_eq(lmq_repack_apply(p, 3, to_channel_7, NULL, &in), LMQ_EINVAL);
  cr_assert_eq(lmq_repack_apply(p, 8, to_channel_7, NULL, &in), 0);
  cr_assert_eq(p[7]->nmsgs, 1);
  free_packs(p, 8);
  lmq_tsmsg_unref(tt);
}
