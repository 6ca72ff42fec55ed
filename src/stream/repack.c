/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * repack.c - repack functions: how a pack's messages are routed to a
 * producer's channels. The default routes by hash key and splits Insert
 * messages per row.
 */
#include "config.h"
#include "stream/repack.h"
#include "stream/msg.h"
#include "common/error.h"
#include "lmq_msg.pb-c.h"

#include <stdlib.h>
#include <string.h>

LMQ_API int lmq_repack_route(lmq_repack_out *out, int32_t channel,
                             lmq_tsmsg *msg) {
  if (!out || !msg)
    return lmq__error(LMQ_EINVAL, "repack_route: NULL argument");
  if (out->n == out->cap) {
    size_t nc = out->cap ? out->cap * 2 : 16;
    lmq_route *nr = realloc(out->routes, nc * sizeof *nr);
    if (!nr)
      return lmq__error(LMQ_ENOMEM, "repack_route: out of memory");
    out->routes = nr;
    out->cap = nc;
  }
  out->routes[out->n].channel = channel;
  out->routes[out->n].msg = lmq_tsmsg_ref(msg);
  out->n++;
  return 0;
}

void lmq__repack_out_reset(lmq_repack_out *o) {
  for (size_t i = 0; i < o->n; i++)
    lmq_tsmsg_unref(o->routes[i].msg);
  o->n = 0;
}

void lmq__repack_out_free(lmq_repack_out *o) {
  lmq__repack_out_reset(o);
  free(o->routes);
  o->routes = NULL;
  o->cap = 0;
}

/* ------------------------------------------------------- Insert splitting */

static size_t insert_rows(const Lmqpb__InsertRequest *b) {
  if (b->num_rows)
    return (size_t)b->num_rows;
  if (b->n_hash_values)
    return b->n_hash_values;
  return b->n_row_ids;
}

/* Values per row of a column, and how many it holds, by its type. */
static int column_shape(size_t *per_row, size_t *have,
                        const Lmqpb__FieldData *f) {
  switch (f->type) {
  case LMQPB__DATA_TYPE__Bool:
    *per_row = 1, *have = f->n_bool_data;
    return 0;
  case LMQPB__DATA_TYPE__Int8:
  case LMQPB__DATA_TYPE__Int16:
  case LMQPB__DATA_TYPE__Int32:
    *per_row = 1, *have = f->n_int_data;
    return 0;
  case LMQPB__DATA_TYPE__Int64:
    *per_row = 1, *have = f->n_long_data;
    return 0;
  case LMQPB__DATA_TYPE__Float:
    *per_row = 1, *have = f->n_float_data;
    return 0;
  case LMQPB__DATA_TYPE__Double:
    *per_row = 1, *have = f->n_double_data;
    return 0;
  case LMQPB__DATA_TYPE__String:
  case LMQPB__DATA_TYPE__VarChar:
    *per_row = 1, *have = f->n_string_data;
    return 0;
  case LMQPB__DATA_TYPE__FloatVector:
    if (f->dim <= 0)
      break;
    *per_row = (size_t)f->dim, *have = f->n_float_vector;
    return 0;
  case LMQPB__DATA_TYPE__BinaryVector:
    if (f->dim <= 0 || f->dim % 8)
      break;
    *per_row = (size_t)f->dim / 8, *have = f->binary_vector.len;
    return 0;
  default:
    break;
  }
  return lmq__error(LMQ_EINVAL,
                    "insert column '%.64s': type %d / dim %lld cannot be "
                    "split by row",
                    f->field_name, (int)f->type, (long long)f->dim);
}

/* How many values column f holds in the array of its type's kind k (one of
 * column_kind's values), and in the other arrays. */
enum { K_BOOL, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_STRING, K_FVEC, K_BVEC, K_N };

static void column_counts(size_t cnt[K_N], const Lmqpb__FieldData *f) {
  cnt[K_BOOL] = f->n_bool_data;
  cnt[K_INT] = f->n_int_data;
  cnt[K_LONG] = f->n_long_data;
  cnt[K_FLOAT] = f->n_float_data;
  cnt[K_DOUBLE] = f->n_double_data;
  cnt[K_STRING] = f->n_string_data;
  cnt[K_FVEC] = f->n_float_vector;
  cnt[K_BVEC] = f->binary_vector.len;
}

static int column_kind(const Lmqpb__FieldData *f) {
  switch (f->type) {
  case LMQPB__DATA_TYPE__Bool:
    return K_BOOL;
  case LMQPB__DATA_TYPE__Int8:
  case LMQPB__DATA_TYPE__Int16:
  case LMQPB__DATA_TYPE__Int32:
    return K_INT;
  case LMQPB__DATA_TYPE__Int64:
    return K_LONG;
  case LMQPB__DATA_TYPE__Float:
    return K_FLOAT;
  case LMQPB__DATA_TYPE__Double:
    return K_DOUBLE;
  case LMQPB__DATA_TYPE__String:
  case LMQPB__DATA_TYPE__VarChar:
    return K_STRING;
  case LMQPB__DATA_TYPE__FloatVector:
    return K_FVEC;
  case LMQPB__DATA_TYPE__BinaryVector:
    return K_BVEC;
  default:
    return -1;
  }
}

/*
 * A message from the wire is checked whole before any row is copied: the
 * split below indexes every array of a column by row, so each array must be
 * the one its type names, holding exactly rows x per-row values (computed
 * without overflow), and every other array must be empty.
 */
static int insert_check(const Lmqpb__InsertRequest *b, size_t rows) {
  if ((b->n_row_ids && b->n_row_ids != rows) ||
      (b->n_timestamps && b->n_timestamps != rows) ||
      (b->n_hash_values && b->n_hash_values != rows))
    return lmq__error(LMQ_EINVAL,
                      "insert: %zu rows but %zu row IDs, %zu timestamps and "
                      "%zu hash values",
                      rows, b->n_row_ids, b->n_timestamps, b->n_hash_values);
  for (size_t i = 0; i < b->n_fields_data; i++) {
    const Lmqpb__FieldData *f = b->fields_data[i];
    size_t per = 0, have = 0, want;
    int rc = column_shape(&per, &have, f);
    if (rc)
      return rc;
    if (__builtin_mul_overflow(per, rows, &want) || have != want)
      return lmq__error(LMQ_EINVAL,
                        "insert column '%.64s' holds %zu values, expected "
                        "%zu rows x %zu",
                        f->field_name, have, rows, per);
    size_t cnt[K_N];
    column_counts(cnt, f);
    int kind = column_kind(f);
    for (int k = 0; k < K_N; k++)
      if (k != kind && cnt[k])
        return lmq__error(LMQ_EINVAL,
                          "insert column '%.64s' of type %d also carries %zu "
                          "values of another type",
                          f->field_name, (int)f->type, cnt[k]);
  }
  return 0;
}

/* Copy elements idx[0..k) (each per values of size esz) of src into a new
 * array. */
static void *pick(const void *src, size_t esz, size_t per, const size_t *idx,
                  size_t k) {
  if (!k || !per)
    return NULL;
  unsigned char *dst = malloc(k * per * esz);
  if (!dst)
    return NULL;
  for (size_t j = 0; j < k; j++)
    memcpy(dst + j * per * esz, (const unsigned char *)src + idx[j] * per * esz,
           per * esz);
  return dst;
}

#define PICK(field, n_field, per)                                              \
  do {                                                                         \
    if (s->n_field) {                                                          \
      if (!(d->field = pick(s->field, sizeof *s->field, per, idx, k)))         \
        goto oom;                                                              \
      d->n_field = k * (per);                                                  \
    }                                                                          \
  } while (0)

static Lmqpb__FieldData *column_pick(const Lmqpb__FieldData *s,
                                     const size_t *idx, size_t k) {
  Lmqpb__FieldData *d = malloc(sizeof *d);
  if (!d)
    return NULL;
  lmqpb__field_data__init(d);
  d->type = s->type;
  d->field_id = s->field_id;
  d->dim = s->dim;
  if (!(d->field_name = strdup(s->field_name))) {
    free(d);
    return NULL;
  }
  size_t per = 0, have = 0;
  column_shape(&per, &have, s);
  PICK(bool_data, n_bool_data, 1);
  PICK(int_data, n_int_data, 1);
  PICK(long_data, n_long_data, 1);
  PICK(float_data, n_float_data, 1);
  PICK(double_data, n_double_data, 1);
  PICK(float_vector, n_float_vector, per);
  if (s->binary_vector.len) {
    if (!(d->binary_vector.data =
              pick(s->binary_vector.data, 1, per, idx, k)))
      goto oom;
    d->binary_vector.len = k * per;
  }
  if (s->n_string_data) {
    if (!(d->string_data = calloc(k, sizeof *d->string_data)))
      goto oom;
    d->n_string_data = k;
    for (size_t j = 0; j < k; j++)
      if (!(d->string_data[j] = strdup(s->string_data[idx[j]])))
        goto oom;
  }
  return d;
oom:
  protobuf_c_message_free_unpacked(&d->base, NULL);
  return NULL;
}

static Lmqpb__InsertRequest *insert_pick(const Lmqpb__InsertRequest *s,
                                         const uint32_t *keys,
                                         const size_t *idx, size_t k) {
  Lmqpb__InsertRequest *d = malloc(sizeof *d);
  if (!d)
    return NULL;
  lmqpb__insert_request__init(d);
  /* Every string is malloc'ed so that free_unpacked can release it. */
  d->shard_name = d->db_name = d->collection_name = d->partition_name = NULL;
  if (!(d->shard_name = strdup(s->shard_name)) ||
      !(d->db_name = strdup(s->db_name)) ||
      !(d->collection_name = strdup(s->collection_name)) ||
      !(d->partition_name = strdup(s->partition_name)))
    goto oom;
  d->db_id = s->db_id;
  d->collection_id = s->collection_id;
  d->partition_id = s->partition_id;
  d->segment_id = s->segment_id;
  d->num_rows = k;
  PICK(row_ids, n_row_ids, 1);
  PICK(timestamps, n_timestamps, 1);
  if (!(d->hash_values = pick(keys, sizeof *keys, 1, idx, k)))
    goto oom;
  d->n_hash_values = k;
  if (s->n_fields_data) {
    if (!(d->fields_data = calloc(s->n_fields_data, sizeof *d->fields_data)))
      goto oom;
    for (size_t i = 0; i < s->n_fields_data; i++) {
      if (!(d->fields_data[i] = column_pick(s->fields_data[i], idx, k)))
        goto oom;
      d->n_fields_data = i + 1;
    }
  }
  return d;
oom:
  /* Unset strings are NULL: free_unpacked skips them. */
  protobuf_c_message_free_unpacked(&d->base, NULL);
  return NULL;
}
#undef PICK

static int route_insert(lmq_repack_out *out, lmq_tsmsg *m, size_t nch) {
  const Lmqpb__InsertRequest *b = lmq__tsmsg_body(m);
  if (!b || b->base.descriptor != &lmqpb__insert_request__descriptor)
    return lmq__error(LMQ_EINVAL, "insert message %lld has no InsertRequest "
                      "body", (long long)m->id);
  size_t rows = insert_rows(b);
  if (rows == 0) {
    if (!m->nhash)
      return lmq__error(LMQ_EINVAL, "insert message %lld: no rows and no "
                        "hash keys", (long long)m->id);
    return lmq_repack_route(out, (int32_t)(m->hash_keys[0] % nch), m);
  }
  const uint32_t *keys = m->nhash == rows           ? m->hash_keys
                         : b->n_hash_values == rows ? b->hash_values
                                                    : NULL;
  if (!keys)
    return lmq__error(LMQ_EINVAL,
                      "insert message %lld: %zu rows but %zu hash keys and "
                      "%zu hash values",
                      (long long)m->id, rows, m->nhash, b->n_hash_values);
  int rc = insert_check(b, rows);
  if (rc)
    return rc;
  size_t first = keys[0] % nch, r = 1;
  while (r < rows && keys[r] % nch == first)
    r++;
  if (r == rows) /* every row lands on one channel: send it as it is */
    return lmq_repack_route(out, (int32_t)first, m);
  size_t *idx = malloc(rows * sizeof *idx);
  size_t *chan = malloc(rows * sizeof *chan);
  if (!idx || !chan) {
    free(idx);
    free(chan);
    return lmq__error(LMQ_ENOMEM, "repack: out of memory");
  }
  for (size_t i = 0; i < rows; i++)
    chan[i] = keys[i] % nch;
  /* Channels in order of their first row, rows in their order. */
  for (size_t i = 0; i < rows && rc == 0; i++) {
    if (chan[i] == (size_t)-1)
      continue;
    size_t c = chan[i], k = 0;
    for (size_t j = i; j < rows; j++)
      if (chan[j] == c) {
        idx[k++] = j;
        chan[j] = (size_t)-1;
      }
    Lmqpb__InsertRequest *nb = insert_pick(b, keys, idx, k);
    lmq_tsmsg *nm = NULL;
    if (!nb) {
      rc = lmq__error(LMQ_ENOMEM, "repack: out of memory");
      break;
    }
    if ((rc = lmq_tsmsg_create(&nm, m->type, nb, lmq_msg_body_free_proto))) {
      lmq_msg_body_free_proto(nb);
      break;
    }
    nm->id = m->id;
    nm->timestamp = m->timestamp;
    nm->begin_ts = m->begin_ts;
    nm->end_ts = m->end_ts;
    nm->source_id = m->source_id;
    if (!(rc = lmq_tsmsg_set_hash_keys(nm, nb->hash_values, k)) &&
        !(rc = lmq_tsmsg_set_traceparent(nm, m->traceparent)))
      rc = lmq_repack_route(out, (int32_t)c, nm);
    lmq_tsmsg_unref(nm);
  }
  free(idx);
  free(chan);
  return rc;
}

LMQ_API int lmq_repack_default(lmq_repack_out *out, lmq_tsmsg *const *msgs,
                               size_t n, size_t nchannels, void *arg) {
  (void)arg;
  if (!out || (n && !msgs) || !nchannels)
    return lmq__error(LMQ_EINVAL, "repack_default: bad arguments");
  for (size_t i = 0; i < n; i++) {
    lmq_tsmsg *m = msgs[i];
    int rc;
    if (m->type == LMQ_MSG_INSERT) {
      rc = route_insert(out, m, nchannels);
    } else {
      /* Delete routes by its first key, like any other message. */
      size_t nk = m->nhash;
      const uint32_t *k = m->hash_keys;
      const Lmqpb__DeleteRequest *d =
          !nk && m->type == LMQ_MSG_DELETE ? lmq__tsmsg_body(m) : NULL;
      if (d) {
        if (d->base.descriptor == &lmqpb__delete_request__descriptor)
          nk = d->n_hash_values, k = d->hash_values;
      }
      if (!nk)
        return lmq__error(LMQ_EINVAL,
                          "message %zu (type %u, id %lld) has no hash keys to "
                          "route it by",
                          i, m->type, (long long)m->id);
      rc = lmq_repack_route(out, (int32_t)(k[0] % nchannels), m);
    }
    if (rc)
      return rc;
  }
  return 0;
}

int lmq__repack_run(lmq_repack_out *o, size_t nchannels, lmq_repack_fn fn,
                    void *arg, lmq_tsmsg *const *msgs, size_t n) {
  int rc = (fn ? fn : lmq_repack_default)(o, msgs, n, nchannels, arg);
  if (rc)
    return rc;
  for (size_t i = 0; i < o->n; i++)
    if (o->routes[i].channel < 0 || (size_t)o->routes[i].channel >= nchannels)
      return lmq__error(LMQ_EINVAL,
                        "repack routed message %lld to channel %d; the "
                        "producer has %zu channels",
                        (long long)o->routes[i].msg->id,
                        (int)o->routes[i].channel, nchannels);
  return 0;
}

LMQ_API int lmq_repack_apply(lmq_msg_pack **out, size_t nchannels,
                             lmq_repack_fn fn, void *arg,
                             const lmq_msg_pack *in) {
  if (!out || !nchannels || !in || (in->nmsgs && !in->msgs))
    return lmq__error(LMQ_EINVAL, "repack_apply: bad arguments");
  for (size_t c = 0; c < nchannels; c++)
    out[c] = NULL;
  lmq_repack_out o = {0};
  int rc = lmq__repack_run(&o, nchannels, fn, arg, in->msgs, in->nmsgs);
  for (size_t i = 0; i < o.n && rc == 0; i++) {
    lmq_msg_pack **p = &out[o.routes[i].channel];
    if (!*p && (rc = lmq_msg_pack_create(p)))
      break;
    if ((rc = lmq__pack_push(*p, o.routes[i].msg)) == 0)
      o.routes[i].msg = NULL; /* the pack holds the reference now */
  }
  lmq__repack_out_free(&o);
  if (rc)
    for (size_t c = 0; c < nchannels; c++) {
      lmq_msg_pack_destroy(out[c]);
      out[c] = NULL;
    }
  return rc;
}
