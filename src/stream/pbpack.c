/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * pbpack.c - a one-pass protobuf encoder driven by protobuf-c's descriptors.
 *
 * protobuf_c_message_pack needs the size first (protobuf_c_message_get_
 * packed_size walks every field once more): for a 1-row Insert the two
 * walks were ~1,600 instructions, 60% of a TtMsgStream produce per message.
 * This encoder writes each field once into a growable buffer; a nested
 * message or packed array gets one byte reserved for its length, and the
 * rare one of 128 bytes or more is moved up by the extra length bytes.
 * The descriptor is read once, into a plan (per message type, with the
 * plans of the types it nests): each field's rule, offsets and encoded tag,
 * so that packing is a loop over what the message holds.
 *
 * The output is byte for byte protobuf_c_message_pack's (the same field
 * order and rules: proto3 fields skipped when zero, optional fields by
 * their has-flag, oneofs by their case, packed arrays, unknown fields
 * last); t/test_pbpack.c compares the two on random messages of every
 * type in proto/lmq_msg.proto.
 */
#include "config.h"
#include "stream/pbpack.h"
#include "common/varint.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int grow_slow(lmq__pbuf *b, size_t more) {
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + more)
    nc *= 2;
  unsigned char *np = realloc(b->p, nc);
  if (!np)
    return -1;
  b->p = np;
  b->cap = nc;
  return 0;
}

static inline int grow(lmq__pbuf *b, size_t more) {
  return b->cap - b->len >= more ? 0 : grow_slow(b, more);
}

static inline size_t put_tag(unsigned char *p, uint32_t id, unsigned wt) {
  return lmq__varint_put(p, ((uint64_t)id << 3) | wt);
}

static inline size_t put_fixed32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
  return 4;
}

static inline size_t put_fixed64(unsigned char *p, uint64_t v) {
  put_fixed32(p, (uint32_t)v);
  put_fixed32(p + 4, (uint32_t)(v >> 32));
  return 8;
}

enum { WT_VARINT = 0, WT_64 = 1, WT_LEN = 2, WT_32 = 5 };

/* Wire type of a single value of type t. */
static unsigned wire_type(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
    return WT_32;
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return WT_64;
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    return WT_LEN;
  default:
    return WT_VARINT;
  }
}

/* A scalar's encoding (no tag) at p; at most 10 bytes. */
static inline size_t put_scalar(unsigned char *p, ProtobufCType t, const void *v) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_ENUM: {
    int32_t x;
    memcpy(&x, v, sizeof x);
    /* Negative values are sign-extended to 64 bits: 10 bytes. */
    return lmq__varint_put(p, (uint64_t)(int64_t)x);
  }
  case PROTOBUF_C_TYPE_SINT32: {
    int32_t x;
    memcpy(&x, v, sizeof x);
    return lmq__varint_put(p, ((uint32_t)x << 1) ^ (uint32_t)(x >> 31));
  }
  case PROTOBUF_C_TYPE_UINT32: {
    uint32_t x;
    memcpy(&x, v, sizeof x);
    return lmq__varint_put(p, x);
  }
  case PROTOBUF_C_TYPE_SINT64: {
    int64_t x;
    memcpy(&x, v, sizeof x);
    return lmq__varint_put(p, ((uint64_t)x << 1) ^ (uint64_t)(x >> 63));
  }
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_UINT64: {
    uint64_t x;
    memcpy(&x, v, sizeof x);
    return lmq__varint_put(p, x);
  }
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT: {
    uint32_t x;
    memcpy(&x, v, sizeof x);
    return put_fixed32(p, x);
  }
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: {
    uint64_t x;
    memcpy(&x, v, sizeof x);
    return put_fixed64(p, x);
  }
  case PROTOBUF_C_TYPE_BOOL: {
    protobuf_c_boolean x;
    memcpy(&x, v, sizeof x);
    *p = x ? 1 : 0;
    return 1;
  }
  default:
    return 0; /* not a scalar */
  }
}

static size_t elem_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(void *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  default:
    return 4;
  }
}

/* After a length-prefixed payload was written from start (one byte was
 * reserved before it for the length): write the length, moving the payload
 * up when the length needs more than one byte. */
static int close_len(lmq__pbuf *b, size_t start) {
  size_t len = b->len - start;
  if (len < 0x80) {
    b->p[start - 1] = (unsigned char)len;
    return 0;
  }
  size_t vl = lmq__varint_len(len);
  if (grow(b, vl - 1))
    return -1;
  memmove(b->p + start + vl - 1, b->p + start, len);
  b->len += vl - 1;
  lmq__varint_put(b->p + start - 1, len);
  return 0;
}

/* ---------------------------------------------------------------- plans */

/* How a field is sent (protobuf-c's rules, decided once per field). */
enum {
  OP_REQUIRED, /* always */
  OP_PROTO3,   /* unless zero (protobuf-c's "zeroish") */
  OP_OPTIONAL, /* by its has-flag; strings and messages unless NULL/default */
  OP_ONEOF,    /* when the case is this field; strings, messages not NULL */
  OP_REPEATED, /* each element with its tag */
  OP_PACKED    /* one length-prefixed run of the elements */
};

typedef struct pb_op {
  uint32_t off, qoff, id;
  uint8_t kind, type, taglen, es;
  unsigned char tag[8];
  const void *dflt;
  const struct lmq__pb_plan *sub; /* message fields */
} pb_op;

struct lmq__pb_plan {
  const ProtobufCMessageDescriptor *d;
  struct lmq__pb_plan *next; /* the root owns every plan it nests */
  size_t n;
  pb_op ops[];
};

static lmq__pb_plan *plan_find(lmq__pb_plan *all, const ProtobufCMessageDescriptor *d) {
  for (; all; all = all->next)
    if (all->d == d)
      return all;
  return NULL;
}

static lmq__pb_plan *plan_alloc(const ProtobufCMessageDescriptor *d) {
  lmq__pb_plan *pl = calloc(1, sizeof *pl + d->n_fields * sizeof(pb_op));
  if (!pl)
    return NULL;
  pl->d = d;
  pl->n = d->n_fields;
  return pl;
}

void lmq__pb_plan_free(lmq__pb_plan *pl) {
  while (pl) {
    lmq__pb_plan *next = pl->next;
    free(pl);
    pl = next;
  }
}

/* Fill pl's ops; plans of nested types are found in, or appended to, the
 * list after root (each type once, so recursive types terminate). */
static int plan_fill(lmq__pb_plan *root, lmq__pb_plan *pl) {
  const ProtobufCMessageDescriptor *d = pl->d;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    pb_op *o = &pl->ops[i];
    o->off = f->offset;
    o->qoff = f->quantifier_offset;
    o->id = f->id;
    o->type = (uint8_t)f->type;
    o->es = (uint8_t)elem_size(f->type);
    o->dflt = f->default_value;
    unsigned wt = wire_type(f->type);
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
      o->kind = OP_REQUIRED;
    else if ((f->label == PROTOBUF_C_LABEL_OPTIONAL || f->label == PROTOBUF_C_LABEL_NONE) &&
             (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
      o->kind = OP_ONEOF;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
      o->kind = OP_OPTIONAL;
    else if (f->label == PROTOBUF_C_LABEL_NONE)
      o->kind = OP_PROTO3;
    else if (f->flags & PROTOBUF_C_FIELD_FLAG_PACKED) {
      o->kind = OP_PACKED;
      wt = WT_LEN;
    } else
      o->kind = OP_REPEATED;
    o->taglen = (uint8_t)put_tag(o->tag, f->id, wt);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
      const ProtobufCMessageDescriptor *sd = f->descriptor;
      lmq__pb_plan *sub = plan_find(root, sd);
      if (!sub) {
        if (!(sub = plan_alloc(sd)))
          return -1;
        lmq__pb_plan *t = root;
        while (t->next)
          t = t->next;
        t->next = sub;
      }
      o->sub = sub;
    }
  }
  return 0;
}

lmq__pb_plan *lmq__pb_plan_new(const ProtobufCMessageDescriptor *d) {
  lmq__pb_plan *root = plan_alloc(d);
  if (!root)
    return NULL;
  /* Breadth-first over the types reachable from d: plan_fill appends the
   * new ones to the list being walked. */
  for (lmq__pb_plan *pl = root; pl; pl = pl->next)
    if (plan_fill(root, pl)) {
      lmq__pb_plan_free(root);
      return NULL;
    }
  return root;
}

/* ---------------------------------------------------------------- packing */

/* protobuf-c's "zeroish": proto3 fields equal to their zero are not sent. */
static inline int is_zero(const pb_op *o, const void *v) {
  switch (o->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)v;
    return !s || !*s;
  }
  case PROTOBUF_C_TYPE_BYTES:
    return ((const ProtobufCBinaryData *)v)->len == 0;
  case PROTOBUF_C_TYPE_MESSAGE:
    return *(const void *const *)v == NULL;
  case PROTOBUF_C_TYPE_FLOAT: {
    float x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  case PROTOBUF_C_TYPE_DOUBLE: {
    double x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  default:
    if (o->es == 8) {
      uint64_t x;
      memcpy(&x, v, sizeof x);
      return x == 0;
    } else {
      uint32_t x;
      memcpy(&x, v, sizeof x);
      return x == 0;
    }
  }
}

static int pack_plan(lmq__pbuf *b, const lmq__pb_plan *pl, const ProtobufCMessage *m);

/* One value (tag included) at v, as protobuf-c's required-field pack
 * writes it. */
static int put_value(lmq__pbuf *b, const pb_op *o, const void *v) {
  switch (o->type) {
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)v;
    size_t sl = s ? strlen(s) : 0;
    if (grow(b, 16 + sl))
      return -1;
    memcpy(b->p + b->len, o->tag, 8);
    b->len += o->taglen;
    b->len += lmq__varint_put(b->p + b->len, (uint32_t)sl);
    if (sl)
      memcpy(b->p + b->len, s, sl);
    b->len += sl;
    return 0;
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *d = v;
    if (grow(b, 16 + d->len))
      return -1;
    memcpy(b->p + b->len, o->tag, 8);
    b->len += o->taglen;
    b->len += lmq__varint_put(b->p + b->len, (uint32_t)d->len);
    if (d->len)
      memcpy(b->p + b->len, d->data, d->len);
    b->len += d->len;
    return 0;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)v;
    if (grow(b, 16))
      return -1;
    memcpy(b->p + b->len, o->tag, 8);
    b->len += o->taglen + 1; /* the length, usually one byte */
    size_t start = b->len;
    if (sub && pack_plan(b, o->sub, sub))
      return -1;
    return close_len(b, start);
  }
  default:
    if (grow(b, 20))
      return -1;
    memcpy(b->p + b->len, o->tag, 8);
    b->len += o->taglen;
    b->len += put_scalar(b->p + b->len, o->type, v);
    return 0;
  }
}

static int pack_plan(lmq__pbuf *b, const lmq__pb_plan *pl, const ProtobufCMessage *m) {
  const char *base = (const char *)m;
  for (size_t i = 0; i < pl->n; i++) {
    const pb_op *o = &pl->ops[i];
    const char *v = base + o->off;
    switch (o->kind) {
    case OP_REQUIRED:
      break;
    case OP_PROTO3:
      if (is_zero(o, v))
        continue;
      break;
    case OP_ONEOF: {
      uint32_t which;
      memcpy(&which, base + o->qoff, sizeof which);
      if (which != o->id)
        continue;
    }
      /* fall through */
    case OP_OPTIONAL:
      if (o->type == PROTOBUF_C_TYPE_MESSAGE || o->type == PROTOBUF_C_TYPE_STRING) {
        const void *ptr = *(const void *const *)v;
        if (!ptr || ptr == o->dflt)
          continue;
      } else if (o->kind == OP_OPTIONAL) {
        protobuf_c_boolean has;
        memcpy(&has, base + o->qoff, sizeof has);
        if (!has)
          continue;
      }
      break;
    case OP_REPEATED: {
      size_t n;
      memcpy(&n, base + o->qoff, sizeof n);
      const char *arr = *(char *const *)v;
      for (size_t k = 0; k < n; k++)
        if (put_value(b, o, arr + k * o->es))
          return -1;
      continue;
    }
    case OP_PACKED: {
      size_t n;
      memcpy(&n, base + o->qoff, sizeof n);
      if (!n)
        continue;
      const char *arr = *(char *const *)v;
      if (grow(b, 16 + n * 10))
        return -1;
      memcpy(b->p + b->len, o->tag, 8);
      b->len += o->taglen + 1; /* the payload length, usually one byte */
      size_t start = b->len;
      for (size_t k = 0; k < n; k++)
        b->len += put_scalar(b->p + b->len, o->type, arr + k * o->es);
      if (close_len(b, start))
        return -1;
      continue;
    }
    }
    if (put_value(b, o, v))
      return -1;
  }
  for (unsigned i = 0; i < m->n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
    if (grow(b, 10 + u->len))
      return -1;
    b->len += put_tag(b->p + b->len, u->tag, u->wire_type);
    if (u->len)
      memcpy(b->p + b->len, u->data, u->len);
    b->len += u->len;
  }
  return 0;
}

int lmq__pb_reserve(lmq__pbuf *b, size_t more) { return grow(b, more); }

int lmq__pb_pack_plan(lmq__pbuf *b, const lmq__pb_plan *pl, const ProtobufCMessage *m) {
  size_t at = b->len;
  if (m->descriptor != pl->d || pack_plan(b, pl, m)) {
    b->len = at;
    return -1;
  }
  return 0;
}

int lmq__pb_pack(lmq__pbuf *b, const ProtobufCMessage *m) {
  lmq__pb_plan *pl = lmq__pb_plan_new(m->descriptor);
  if (!pl)
    return -1;
  int rc = lmq__pb_pack_plan(b, pl, m);
  lmq__pb_plan_free(pl);
  return rc;
}
