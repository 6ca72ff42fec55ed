/*
 * The one-pass protobuf encoder (src/stream/pbpack.c) against
 * protobuf_c_message_pack, byte for byte, on random messages: every message
 * type of proto/lmq_msg.proto (proto3), and a descriptor built here with a
 * field of every type under every label (required, optional, proto3,
 * repeated packed and unpacked, oneof) plus unknown fields.
 */
#include "stream/pbpack.h"
#include "lmq_msg.pb-c.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static int chance(unsigned pct) { return rnd() % 100 < pct; }

static size_t esize(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  default:
    return 4;
  }
}

static ProtobufCMessage *random_msg(const ProtobufCMessageDescriptor *d, int depth);

/* A random value of field f's type at v (interesting edges often). */
static void random_value(const ProtobufCFieldDescriptor *f, void *v, int depth) {
  /* protobuf-c frees every element of a repeated string: no shared default
   * in arrays. */
  int single = f->label != PROTOBUF_C_LABEL_REPEATED;
  uint64_t x = rnd();
  switch (rnd() % 6) { /* edges: 0, small, negative, max */
  case 0: x = 0; break;
  case 1: x &= 0x7f; break;
  case 2: x = (uint64_t)-(int64_t)(x & 0xffff); break;
  case 3: x = UINT64_MAX; break;
  default: break;
  }
  switch (f->type) {
  case PROTOBUF_C_TYPE_FLOAT: {
    float fl = (float)(int64_t)x / 7.0f;
    if (chance(10)) fl = -0.0f;
    if (chance(5)) fl = NAN;
    memcpy(v, &fl, 4);
    break;
  }
  case PROTOBUF_C_TYPE_DOUBLE: {
    double db = (double)(int64_t)x / 3.0;
    if (chance(10)) db = -0.0;
    if (chance(5)) db = INFINITY;
    memcpy(v, &db, 8);
    break;
  }
  case PROTOBUF_C_TYPE_BOOL: {
    protobuf_c_boolean b = (protobuf_c_boolean)(x % 3); /* 2: nonzero, not 1 */
    memcpy(v, &b, sizeof b);
    break;
  }
  case PROTOBUF_C_TYPE_STRING: {
    char *s = NULL;
    if (single && chance(15) && f->default_value) {
      s = (char *)f->default_value; /* not freed: free_unpacked knows */
    } else if (!single || !chance(15)) { /* no NULL in arrays (invalid) */
      size_t n = chance(10) ? 200 + rnd() % 200 : rnd() % 12; /* long: 2-byte length */
      s = malloc(n + 1);
      for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + rnd() % 26);
      s[n] = 0;
    }
    memcpy(v, &s, sizeof s);
    break;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    ProtobufCBinaryData *b = v;
    b->len = chance(20) ? 0 : rnd() % 300;
    b->data = b->len || chance(50) ? malloc(b->len + 1) : NULL;
    if (!single && !b->data)
      b->data = malloc(1);
    for (size_t i = 0; i < b->len; i++)
      b->data[i] = (uint8_t)rnd();
    break;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    ProtobufCMessage *m = !single || (depth > 0 && !chance(20))
                              ? random_msg(f->descriptor, depth > 0 ? depth - 1 : 0)
                              : NULL;
    memcpy(v, &m, sizeof m);
    break;
  }
  default:
    memcpy(v, &x, esize(f->type));
  }
}

static void fill(ProtobufCMessage *m, int depth) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    char *v = (char *)m + f->offset, *q = (char *)m + f->quantifier_offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = chance(30) ? 0 : rnd() % (chance(10) ? 60 : 4);
      if (f->type == PROTOBUF_C_TYPE_MESSAGE && depth == 0)
        n = 0; /* bounded nesting */
      char *arr = n ? calloc(n, esize(f->type)) : NULL;
      for (size_t k = 0; k < n; k++)
        random_value(f, arr + k * esize(f->type), depth);
      memcpy(q, &n, sizeof n);
      memcpy(v, &arr, sizeof arr);
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t cur;
      memcpy(&cur, q, sizeof cur);
      if (!cur && chance(50)) { /* this member becomes the selected one */
        random_value(f, v, depth);
        uint32_t id = f->id;
        memcpy(q, &id, sizeof id);
      }
    } else {
      if (chance(30))
        continue; /* left at its default */
      random_value(f, v, depth);
      if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
          f->type != PROTOBUF_C_TYPE_MESSAGE) {
        protobuf_c_boolean has = chance(70);
        memcpy(q, &has, sizeof has);
      }
    }
  }
  if (chance(10)) {
    unsigned n = 1 + (unsigned)(rnd() % 3);
    m->unknown_fields = calloc(n, sizeof *m->unknown_fields);
    m->n_unknown_fields = n;
    for (unsigned i = 0; i < n; i++) {
      ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
      u->tag = 1000 + (uint32_t)(rnd() % 100000);
      u->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
      u->len = rnd() % 20;
      u->data = malloc(u->len + 1);
      memset(u->data, 'u', u->len);
    }
  }
}

static ProtobufCMessage *random_msg(const ProtobufCMessageDescriptor *d, int depth) {
  ProtobufCMessage *m = calloc(1, d->sizeof_message);
  d->message_init(m);
  fill(m, depth);
  return m;
}

static void compare(const ProtobufCMessage *m, const char *what, int iter) {
  size_t want = protobuf_c_message_get_packed_size(m);
  unsigned char *ref = malloc(want + 1);
  cr_assert_eq(protobuf_c_message_pack(m, ref), want);
  lmq__pbuf b = {NULL, 0, 0};
  /* Something already in the buffer: packing appends. */
  size_t pre = 1 + rnd() % 3;
  cr_assert_eq(lmq__pb_reserve(&b, pre), 0);
  memset(b.p, 'x', pre);
  b.len = pre;
  cr_assert_eq(lmq__pb_pack(&b, m), 0);
  cr_assert_eq(b.len - pre, want, "%s #%d: %zu bytes, protobuf-c %zu", what, iter,
               b.len - pre, want);
  cr_assert(memcmp(b.p + pre, ref, want) == 0, "%s #%d: bytes differ", what, iter);
  free(b.p);
  free(ref);
}

static const ProtobufCMessageDescriptor *const types[] = {
    &lmqpb__msg_base__descriptor, &lmqpb__envelope__descriptor,
    &lmqpb__msg_position__descriptor, &lmqpb__key_value_pair__descriptor,
    &lmqpb__status__descriptor, &lmqpb__empty__descriptor,
    &lmqpb__field_data__descriptor, &lmqpb__field_schema__descriptor,
    &lmqpb__collection_schema__descriptor, &lmqpb__collection_request__descriptor,
    &lmqpb__get_system_configs_request__descriptor, &lmqpb__alias_request__descriptor,
    &lmqpb__partition_request__descriptor, &lmqpb__segment_request__descriptor,
    &lmqpb__index_request__descriptor, &lmqpb__insert_request__descriptor,
    &lmqpb__delete_request__descriptor, &lmqpb__flush_request__descriptor,
    &lmqpb__search_request__descriptor, &lmqpb__search_results__descriptor,
    &lmqpb__retrieve_request__descriptor, &lmqpb__retrieve_results__descriptor,
    &lmqpb__statistics_request__descriptor, &lmqpb__channels_request__descriptor,
    &lmqpb__segment_info_body__descriptor, &lmqpb__segment_stats__descriptor,
    &lmqpb__query_node_stats_body__descriptor, &lmqpb__load_index_body__descriptor,
    &lmqpb__alloc_request__descriptor, &lmqpb__segment_idrequest__descriptor,
    &lmqpb__allocate_segment_body__descriptor,
    &lmqpb__segment_statistics_body__descriptor,
    &lmqpb__segment_flush_done_body__descriptor,
    &lmqpb__data_node_tt_body__descriptor, &lmqpb__owner_description__descriptor,
};

Test(pbpack, same_bytes_as_protobuf_c_for_every_message_type) {
  for (size_t t = 0; t < sizeof types / sizeof *types; t++)
    for (int i = 0; i < 400; i++) {
      ProtobufCMessage *m = random_msg(types[t], 3);
      compare(m, types[t]->name, i);
      protobuf_c_message_free_unpacked(m, NULL);
    }
}

/* ---- a descriptor with every type under every label ------------------ */

static const ProtobufCType all_types[] = {
    PROTOBUF_C_TYPE_INT32, PROTOBUF_C_TYPE_SINT32, PROTOBUF_C_TYPE_SFIXED32,
    PROTOBUF_C_TYPE_INT64, PROTOBUF_C_TYPE_SINT64, PROTOBUF_C_TYPE_SFIXED64,
    PROTOBUF_C_TYPE_UINT32, PROTOBUF_C_TYPE_FIXED32, PROTOBUF_C_TYPE_UINT64,
    PROTOBUF_C_TYPE_FIXED64, PROTOBUF_C_TYPE_FLOAT, PROTOBUF_C_TYPE_DOUBLE,
    PROTOBUF_C_TYPE_BOOL, PROTOBUF_C_TYPE_ENUM, PROTOBUF_C_TYPE_STRING,
    PROTOBUF_C_TYPE_BYTES, PROTOBUF_C_TYPE_MESSAGE};
#define NTYPES (sizeof all_types / sizeof *all_types)
enum { K_REQ, K_OPT, K_NONE, K_REP_PACKED, K_REP, K_ONEOF, K_N };

static ProtobufCFieldDescriptor kfields[NTYPES * K_N];
static ProtobufCMessageDescriptor kdesc;
static const char kdefault[] = "dflt";
static size_t ksize;

static void kinit(ProtobufCMessage *m) {
  memset(m, 0, ksize);
  m->descriptor = &kdesc;
}

static void build_descriptor(void) {
  size_t off = sizeof(ProtobufCMessage), n = 0;
  size_t oneof_case = 0;
  for (int k = 0; k < K_N; k++) {
    if (k == K_ONEOF) { /* one case field shared by the oneof's members */
      off = (off + 7) & ~(size_t)7;
      oneof_case = off;
      off += 8;
    }
    for (size_t t = 0; t < NTYPES; t++) {
      ProtobufCType ty = all_types[t];
      int packable = ty != PROTOBUF_C_TYPE_STRING && ty != PROTOBUF_C_TYPE_BYTES &&
                     ty != PROTOBUF_C_TYPE_MESSAGE;
      if (k == K_REP_PACKED && !packable)
        continue;
      ProtobufCFieldDescriptor *f = &kfields[n];
      memset(f, 0, sizeof *f);
      f->name = "f";
      f->id = (uint32_t)(n + 1 + (n > 40 ? 2000 : 0)); /* some 2-byte tags */
      f->type = ty;
      f->descriptor = ty == PROTOBUF_C_TYPE_MESSAGE ? &lmqpb__msg_base__descriptor : NULL;
      f->default_value = ty == PROTOBUF_C_TYPE_STRING ? kdefault : NULL;
      off = (off + 7) & ~(size_t)7;
      switch (k) {
      case K_REQ: f->label = PROTOBUF_C_LABEL_REQUIRED; break;
      case K_OPT: f->label = PROTOBUF_C_LABEL_OPTIONAL; break;
      case K_NONE: f->label = PROTOBUF_C_LABEL_NONE; break;
      case K_REP_PACKED:
        f->label = PROTOBUF_C_LABEL_REPEATED;
        f->flags = PROTOBUF_C_FIELD_FLAG_PACKED;
        break;
      case K_REP: f->label = PROTOBUF_C_LABEL_REPEATED; break;
      case K_ONEOF:
        f->label = PROTOBUF_C_LABEL_NONE;
        f->flags = PROTOBUF_C_FIELD_FLAG_ONEOF;
        break;
      }
      if (k == K_OPT || k == K_REP_PACKED || k == K_REP) {
        f->quantifier_offset = (unsigned)off;
        off += 8;
      } else if (k == K_ONEOF) {
        f->quantifier_offset = (unsigned)oneof_case;
      }
      f->offset = (unsigned)off;
      off += k == K_REP_PACKED || k == K_REP ? sizeof(void *) : 16;
      n++;
    }
  }
  ksize = (off + 7) & ~(size_t)7;
  memset(&kdesc, 0, sizeof kdesc);
  kdesc.magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
  kdesc.name = kdesc.short_name = kdesc.c_name = "AllKinds";
  kdesc.sizeof_message = ksize;
  kdesc.n_fields = (unsigned)n;
  kdesc.fields = kfields;
  kdesc.message_init = (ProtobufCMessageInit)kinit;
}

/* Frees what fill() allocated in an AllKinds message (free_unpacked would
 * need the name index this descriptor lacks). */
static void kfree(ProtobufCMessage *m) {
  for (unsigned i = 0; i < kdesc.n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &kfields[i];
    char *v = (char *)m + f->offset, *q = (char *)m + f->quantifier_offset;
    size_t n = 1;
    char *arr = v;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      memcpy(&n, q, sizeof n);
      memcpy(&arr, v, sizeof arr);
    }
    for (size_t k = 0; arr && k < n; k++) {
      char *e = arr + k * esize(f->type);
      if (f->type == PROTOBUF_C_TYPE_STRING) {
        char *s;
        memcpy(&s, e, sizeof s);
        if (s != kdefault)
          free(s);
      } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        free(((ProtobufCBinaryData *)e)->data);
      } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage *sub;
        memcpy(&sub, e, sizeof sub);
        if (sub)
          protobuf_c_message_free_unpacked(sub, NULL);
      }
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
      free(arr);
  }
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    free(m->unknown_fields[i].data);
  free(m->unknown_fields);
  free(m);
}

Test(pbpack, same_bytes_as_protobuf_c_for_every_type_and_label) {
  build_descriptor();
  for (int i = 0; i < 3000; i++) {
    ProtobufCMessage *m = random_msg(&kdesc, 2);
    compare(m, "AllKinds", i);
    kfree(m);
  }
}

Test(pbpack, empty_message_packs_to_nothing) {
  Lmqpb__Empty e = LMQPB__EMPTY__INIT;
  lmq__pbuf b = {NULL, 0, 0};
  cr_assert_eq(lmq__pb_pack(&b, &e.base), 0);
  cr_assert_eq(b.len, 0);
  free(b.p);
}
