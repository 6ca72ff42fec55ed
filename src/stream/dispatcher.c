/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * dispatcher.c - the unmarshal dispatcher: type -> codec, the protobuf codecs
 * of the built-in types, the envelope every message travels in, and the
 * in-process "mem" dispatcher.
 */
#include "config.h"
#include "stream/msg.h"
#include "stream/envelope.h"
#include "stream/pbpack.h"
#include "common/varint.h"
#include "common/error.h"
#include "lmq_msg.pb-c.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ type table */

typedef struct type_info {
  uint32_t type;
  const char *name;
  const ProtobufCMessageDescriptor *desc;
} type_info;

#define D(x) &lmqpb__##x##__descriptor
static const type_info types[] = {
    {0, "Undefined", D(empty)},
    {100, "CreateCollection", D(collection_request)},
    {101, "DropCollection", D(collection_request)},
    {102, "HasCollection", D(collection_request)},
    {103, "DescribeCollection", D(collection_request)},
    {104, "ShowCollections", D(collection_request)},
    {105, "GetSystemConfigs", D(get_system_configs_request)},
    {106, "LoadCollection", D(collection_request)},
    {107, "ReleaseCollection", D(collection_request)},
    {108, "CreateAlias", D(alias_request)},
    {109, "DropAlias", D(alias_request)},
    {110, "AlterAlias", D(alias_request)},
    {200, "CreatePartition", D(partition_request)},
    {201, "DropPartition", D(partition_request)},
    {202, "HasPartition", D(partition_request)},
    {203, "DescribePartition", D(partition_request)},
    {204, "ShowPartitions", D(partition_request)},
    {205, "LoadPartitions", D(partition_request)},
    {206, "ReleasePartitions", D(partition_request)},
    {250, "ShowSegments", D(segment_request)},
    {251, "DescribeSegment", D(segment_request)},
    {252, "LoadSegments", D(segment_request)},
    {253, "ReleaseSegments", D(segment_request)},
    {254, "HandoffSegments", D(segment_request)},
    {255, "LoadBalanceSegments", D(segment_request)},
    {300, "CreateIndex", D(index_request)},
    {301, "DescribeIndex", D(index_request)},
    {302, "DropIndex", D(index_request)},
    {400, "Insert", D(insert_request)},
    {401, "Delete", D(delete_request)},
    {402, "Flush", D(flush_request)},
    {500, "Search", D(search_request)},
    {501, "SearchResult", D(search_results)},
    {502, "GetIndexState", D(index_request)},
    {503, "GetIndexBuildProgress", D(index_request)},
    {504, "GetCollectionStatistics", D(statistics_request)},
    {505, "GetPartitionStatistics", D(statistics_request)},
    {506, "Retrieve", D(retrieve_request)},
    {507, "RetrieveResult", D(retrieve_results)},
    {508, "WatchDmChannels", D(channels_request)},
    {509, "RemoveDmChannels", D(channels_request)},
    {510, "WatchQueryChannels", D(channels_request)},
    {511, "RemoveQueryChannels", D(channels_request)},
    {600, "SegmentInfo", D(segment_info_body)},
    {1200, "TimeTick", D(empty)},
    {1201, "QueryNodeStats", D(query_node_stats_body)},
    {1202, "LoadIndex", D(load_index_body)},
    {1203, "RequestID", D(alloc_request)},
    {1204, "RequestTSO", D(alloc_request)},
    {1205, "AllocateSegment", D(allocate_segment_body)},
    {1206, "SegmentStatistics", D(segment_statistics_body)},
    {1207, "SegmentFlushDone", D(segment_flush_done_body)},
    {1208, "DataNodeTt", D(data_node_tt_body)},
};
#undef D
#define NTYPES (sizeof types / sizeof types[0])

static const type_info *type_find(int64_t type) {
  size_t lo = 0, hi = NTYPES;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if ((int64_t)types[mid].type < type)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < NTYPES && (int64_t)types[lo].type == type ? &types[lo] : NULL;
}

LMQ_API const char *lmq_msg_type_name(int type) {
  const type_info *t = type_find(type);
  return t ? t->name : NULL;
}

LMQ_API const void *lmq_msg_type_descriptor(int type) {
  const type_info *t = type_find(type);
  return t ? t->desc : NULL;
}

/* ---------------------------------------------------------- proto codecs */

static int proto_marshal(unsigned char **out, size_t *len, const void *body,
                         void *arg) {
  const ProtobufCMessageDescriptor *desc = arg;
  const ProtobufCMessage *pm = body;
  if (!pm)
    return lmq__error(LMQ_EINVAL, "%s: body is NULL", desc->short_name);
  if (pm->descriptor != desc)
    return lmq__error(LMQ_EINVAL, "body is a %s, expected a %s",
                      pm->descriptor ? pm->descriptor->short_name : "?",
                      desc->short_name);
  size_t n = protobuf_c_message_get_packed_size(pm);
  unsigned char *buf = malloc(n ? n : 1);
  if (!buf)
    return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
  *len = protobuf_c_message_pack(pm, buf);
  *out = buf;
  return 0;
}

/*
 * Decode arenas. protobuf-c allocates every string, repeated field and
 * nested message separately (about 15 allocations for a 10-row Insert), and
 * a consumer freeing whole packs made glibc trim and regrow its heap on
 * every pack. A decoded body instead lives in one block: allocations are
 * bumped from it (overflow goes to malloc'ed extra blocks) and the whole
 * body is freed at once. The block header sits right before the first
 * allocation, which is the message itself, so the body pointer finds it.
 */
typedef struct overflow {
  struct overflow *next;
  max_align_t data[];
} overflow;

typedef struct arena {
  overflow *more;
  size_t used, cap;
  max_align_t data[];
} arena;

#define ARENA_ALIGN (sizeof(max_align_t))

static void *arena_alloc(void *ad, size_t size) {
  arena *a = ad;
  size_t need = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (need >= size && a->cap - a->used >= need) {
    void *p = (char *)a->data + a->used;
    a->used += need;
    return p;
  }
  overflow *o = malloc(sizeof *o + size);
  if (!o)
    return NULL;
  o->next = a->more;
  a->more = o;
  return o->data;
}

static void arena_nofree(void *ad, void *p) {
  (void)ad, (void)p; /* freed with the arena */
}

static void arena_free(arena *a) {
  for (overflow *o = a->more, *n; o; o = n) {
    n = o->next;
    free(o);
  }
  free(a);
}

/* The lmq_body_free_fn of arena-decoded bodies. */
static void body_free_arena(void *body) {
  arena_free((arena *)((char *)body - offsetof(arena, data)));
}

/*
 * Field numbers are 1..2^29-1. protobuf-c nevertheless decodes a key such
 * as 0x80 0x00 (field 0, varint, in two bytes) and keeps it as an unknown
 * field, which marshal writes back as the single byte 0x00 that no decoder
 * accepts: a relay would forward a message its peers drop. Such bytes are
 * not protobuf, so they are refused here, at any depth. Unknown fields with
 * valid numbers are kept and re-emitted unchanged (see docs/stream.md).
 */
#define FIELD_NUMBER_MAX 536870911u

static int bad_field_number(const ProtobufCMessage *m) {
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0 || m->unknown_fields[i].tag > FIELD_NUMBER_MAX)
      return 1;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      ProtobufCMessage *const *v =
          *(ProtobufCMessage *const *const *)(base + f->offset);
      for (size_t j = 0; j < n; j++)
        if (v[j] && bad_field_number(v[j]))
          return 1;
    } else {
      const ProtobufCMessage *sub =
          *(const ProtobufCMessage *const *)(base + f->offset);
      if (sub && bad_field_number(sub))
        return 1;
    }
  }
  return 0;
}

static int proto_unmarshal(void **body, lmq_body_free_fn *body_free,
                           const void *data, size_t len, void *arg) {
  const ProtobufCMessageDescriptor *desc = arg;
  /* Decoded structures take more room than the wire form; overflow is fine. */
  size_t cap = desc->sizeof_message + 2 * len + 256;
  arena *a = malloc(sizeof *a + cap);
  if (a) {
    a->more = NULL;
    a->used = 0;
    a->cap = cap;
    ProtobufCAllocator al = {arena_alloc, arena_nofree, a};
    ProtobufCMessage *pm = protobuf_c_message_unpack(desc, &al, len, data);
    if (pm && bad_field_number(pm)) {
      arena_free(a);
      return lmq__error(LMQ_ECORRUPT, "%s body carries field number 0 (or > 2^29-1)",
                        desc->short_name);
    }
    if (pm && (void *)pm == (void *)a->data) {
      *body = pm;
      *body_free = body_free_arena;
      return 0;
    }
    arena_free(a);
    if (!pm)
      return lmq__error(LMQ_ECORRUPT, "%zu bytes do not decode as a %s", len,
                        desc->short_name);
    /* protobuf-c did not allocate the message first: decode normally. */
  }
  ProtobufCMessage *pm = protobuf_c_message_unpack(desc, NULL, len, data);
  if (!pm)
    return lmq__error(a ? LMQ_ECORRUPT : LMQ_ENOMEM,
                      "%zu bytes do not decode as a %s", len, desc->short_name);
  if (bad_field_number(pm)) {
    protobuf_c_message_free_unpacked(pm, NULL);
    return lmq__error(LMQ_ECORRUPT, "%s body carries field number 0 (or > 2^29-1)",
                      desc->short_name);
  }
  *body = pm;
  *body_free = lmq_msg_body_free_proto;
  return 0;
}

/* ------------------------------------------------------------ dispatcher */

typedef struct slot {
  uint32_t type;
  int used;
  lmq_msg_codec codec;
  /* Built-in protobuf types: the encoder's plan (pbpack.h), built at the
   * first marshal and shared by every thread (set once with a CAS). */
  lmq__pb_plan *plan;
} slot;

struct lmq_dispatcher {
  int mem;
  slot *slots; /* open addressing, power-of-two capacity */
  size_t cap, n;
  /* mem dispatcher */
  pthread_mutex_t mu;
  uint64_t nonce;
  lmq_tsmsg **held;
  size_t nheld, capheld;
};

static size_t slot_hash(uint32_t t, size_t cap) {
  return (size_t)((t * 2654435761u) & (cap - 1));
}

static slot *slot_find(const lmq_dispatcher *d, uint32_t t) {
  if (!d->cap)
    return NULL;
  for (size_t i = slot_hash(t, d->cap);; i = (i + 1) & (d->cap - 1)) {
    if (!d->slots[i].used)
      return NULL;
    if (d->slots[i].type == t)
      return &d->slots[i];
  }
}

static int slot_put(lmq_dispatcher *d, uint32_t t, const lmq_msg_codec *c) {
  slot *s = slot_find(d, t);
  if (s) {
    s->codec = *c;
    lmq__pb_plan_free(s->plan);
    s->plan = NULL;
    return 0;
  }
  if ((d->n + 1) * 2 > d->cap) {
    size_t nc = d->cap ? d->cap * 2 : 128;
    slot *ns = calloc(nc, sizeof *ns);
    if (!ns)
      return lmq__error(LMQ_ENOMEM, "dispatcher: out of memory");
    for (size_t i = 0; i < d->cap; i++) {
      if (!d->slots[i].used)
        continue;
      size_t j = slot_hash(d->slots[i].type, nc);
      while (ns[j].used)
        j = (j + 1) & (nc - 1);
      ns[j] = d->slots[i];
    }
    free(d->slots);
    d->slots = ns;
    d->cap = nc;
  }
  size_t j = slot_hash(t, d->cap);
  while (d->slots[j].used)
    j = (j + 1) & (d->cap - 1);
  d->slots[j].used = 1;
  d->slots[j].type = t;
  d->slots[j].codec = *c;
  d->n++;
  return 0;
}

/* The slot's encoder plan, built on first use; NULL when out of memory. */
static const lmq__pb_plan *slot_plan(slot *s, const ProtobufCMessageDescriptor *desc) {
  lmq__pb_plan *pl = __atomic_load_n(&s->plan, __ATOMIC_ACQUIRE);
  if (pl)
    return pl;
  lmq__pb_plan *mine = lmq__pb_plan_new(desc), *none = NULL;
  if (!mine)
    return NULL;
  if (__atomic_compare_exchange_n(&s->plan, &none, mine, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return mine;
  lmq__pb_plan_free(mine); /* another thread's won */
  return none;
}

static int dispatcher_new(lmq_dispatcher **out, int mem) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "dispatcher: out is NULL");
  lmq_dispatcher *d = calloc(1, sizeof *d);
  if (!d)
    return lmq__error(LMQ_ENOMEM, "dispatcher: out of memory");
  d->mem = mem;
  pthread_mutex_init(&d->mu, NULL);
  *out = d;
  return 0;
}

LMQ_API int lmq_dispatcher_create_proto(lmq_dispatcher **out) {
  int rc = dispatcher_new(out, 0);
  if (rc)
    return rc;
  for (size_t i = 0; i < NTYPES; i++) {
    lmq_msg_codec c = {proto_marshal, proto_unmarshal, (void *)types[i].desc};
    if ((rc = slot_put(*out, types[i].type, &c))) {
      lmq_dispatcher_destroy(*out);
      *out = NULL;
      return rc;
    }
  }
  return 0;
}

LMQ_API int lmq_dispatcher_create_mem(lmq_dispatcher **out) {
  int rc = dispatcher_new(out, 1);
  if (rc)
    return rc;
  /* The nonce ties tokens to this dispatcher instance and process. */
  uint64_t x = (uint64_t)(uintptr_t)*out ^ (uint64_t)time(NULL) << 20 ^
               (uint64_t)getpid() << 44;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  (*out)->nonce = x | 1;
  return 0;
}

LMQ_API void lmq_dispatcher_destroy(lmq_dispatcher *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->nheld; i++)
    lmq_tsmsg_unref(d->held[i]);
  free(d->held);
  for (size_t i = 0; i < d->cap; i++)
    lmq__pb_plan_free(d->slots[i].plan);
  free(d->slots);
  pthread_mutex_destroy(&d->mu);
  free(d);
}

LMQ_API int lmq_dispatcher_register(lmq_dispatcher *d, int64_t type,
                                    const lmq_msg_codec *codec) {
  if (!d || !codec || !codec->marshal || !codec->unmarshal)
    return lmq__error(LMQ_EINVAL, "dispatcher_register: NULL argument");
  if (type < 0 || type > LMQ__TYPE_MAX)
    return lmq__error(LMQ_EINVAL, "message type %lld is out of range",
                      (long long)type);
  return slot_put(d, (uint32_t)type, codec);
}

/* ---------------------------------------------------------------- mem */

#define MEM_MAGIC 0x4c4d514d454d3031ULL /* "LMQMEM01" */
#define MEM_TOKEN 24

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char)(v >> (56 - 8 * i));
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

static int mem_marshal(unsigned char **out, size_t *len, lmq_dispatcher *d,
                       const lmq_tsmsg *m) {
  unsigned char *buf = malloc(MEM_TOKEN);
  if (!buf)
    return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
  pthread_mutex_lock(&d->mu);
  if (d->nheld == d->capheld) {
    size_t nc = d->capheld ? d->capheld * 2 : 64;
    lmq_tsmsg **nh = realloc(d->held, nc * sizeof *nh);
    if (!nh) {
      pthread_mutex_unlock(&d->mu);
      free(buf);
      return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
    }
    d->held = nh;
    d->capheld = nc;
  }
  size_t idx = d->nheld;
  d->held[d->nheld++] = lmq_tsmsg_ref((lmq_tsmsg *)m);
  pthread_mutex_unlock(&d->mu);
  put64(buf, MEM_MAGIC);
  put64(buf + 8, d->nonce);
  put64(buf + 16, idx);
  *out = buf;
  *len = MEM_TOKEN;
  ((lmq_tsmsg *)m)->size = MEM_TOKEN;
  return 0;
}

static int mem_unmarshal(lmq_tsmsg **out, lmq_dispatcher *d,
                         const unsigned char *b, size_t len) {
  if (len != MEM_TOKEN || get64(b) != MEM_MAGIC || get64(b + 8) != d->nonce)
    return lmq__error(LMQ_ECORRUPT,
                      "%zu bytes are not a token of this mem dispatcher", len);
  uint64_t idx = get64(b + 16);
  pthread_mutex_lock(&d->mu);
  lmq_tsmsg *m = idx < d->nheld ? lmq_tsmsg_ref(d->held[idx]) : NULL;
  pthread_mutex_unlock(&d->mu);
  if (!m)
    return lmq__error(LMQ_ECORRUPT, "mem token %llu is unknown",
                      (unsigned long long)idx);
  /* A shallow copy sharing the body (held through parent), so that each
   * consumer can stamp its own position on it. */
  lmq_tsmsg *c = NULL;
  int rc = lmq_tsmsg_create(&c, m->type, lmq__tsmsg_body(m), NULL);
  if (rc == 0) {
    c->parent = m;
    c->id = m->id;
    c->timestamp = m->timestamp;
    c->begin_ts = m->begin_ts;
    c->end_ts = m->end_ts;
    c->source_id = m->source_id;
    c->size = len;
    if ((rc = lmq_tsmsg_set_hash_keys(c, m->hash_keys, m->nhash)) == 0 &&
        (rc = lmq_tsmsg_set_traceparent(c, m->traceparent)) == 0) {
      *out = c;
      return 0;
    }
    lmq_tsmsg_unref(c); /* drops m through parent */
    return rc;
  }
  lmq_tsmsg_unref(m);
  return rc;
}

/* ------------------------------------------------------------ envelope */

/* A protobuf body packed straight after the envelope's head: one buffer,
 * no copy (envelope.h). */
static int marshal_proto_in_place(unsigned char **out, size_t *len,
                                  const lmq_tsmsg *m, void *arg) {
  const ProtobufCMessageDescriptor *desc = arg;
  const ProtobufCMessage *pm = lmq__tsmsg_body(m);
  if (!pm)
    return atomic_load(&m->lazy) == LMQ__LAZY_NONE
               ? lmq__error(LMQ_EINVAL, "%s: body is NULL", desc->short_name)
               : lmq__error(LMQ_ECORRUPT, "%s: the received body does not "
                            "decode", desc->short_name);
  if (pm->descriptor != desc)
    return lmq__error(LMQ_EINVAL, "body is a %s, expected a %s",
                      pm->descriptor ? pm->descriptor->short_name : "?",
                      desc->short_name);
  size_t blen = protobuf_c_message_get_packed_size(pm);
  size_t head = lmq__envelope_head_size(m, blen);
  unsigned char *buf = malloc(head + blen);
  if (!buf)
    return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
  lmq__envelope_head_write(buf, m, blen);
  if (blen && protobuf_c_message_pack(pm, buf + head) != blen) {
    free(buf);
    return lmq__error(LMQ_EINTERNAL, "%s: packed size changed while packing",
                      desc->short_name);
  }
  *out = buf;
  *len = head + blen;
  ((lmq_tsmsg *)m)->size = *len;
  return 0;
}

int lmq__msg_marshal_many(unsigned char **out, lmq_buf *bufs,
                          lmq_dispatcher *d, lmq_tsmsg *const *msgs, size_t n) {
  *out = NULL;
  if (d->mem || n == 0) {
    /* Tokens: marshal each, then gather them (tiny, rare). */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char *b = NULL;
      int rc = lmq_msg_marshal(&b, &bufs[i].len, d, msgs[i]);
      if (rc) {
        for (size_t j = 0; j < i; j++)
          free((void *)bufs[j].data);
        return rc;
      }
      bufs[i].data = b;
      total += bufs[i].len;
    }
    unsigned char *all = malloc(total ? total : 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
      if (all && bufs[i].len)
        memcpy(all + off, bufs[i].data, bufs[i].len);
      free((void *)bufs[i].data);
      bufs[i].data = all ? all + off : NULL;
      off += bufs[i].len;
    }
    if (!all)
      return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
    *out = all;
    return 0;
  }
  /* One pass into one growable buffer (lmq_buf entries need not be
   * contiguous): room for the envelope head with the longest body-length
   * varint, then the body (protobuf bodies packed in place by pbpack.c,
   * others copied from their codec), then the head written so that it ends
   * where the body starts. Offsets until the buffer stops moving. */
  lmq__pbuf b = {NULL, 0, 0};
  int rc = 0;
  size_t i;
  for (i = 0; i < n && !rc; i++) {
    lmq_tsmsg *m = msgs[i];
    slot *sl = slot_find(d, m->type);
    if (!sl) {
      rc = lmq__error(LMQ_ENOTSUP, "no codec registered for message type %u",
                      m->type);
      break;
    }
    const void *body = lmq__tsmsg_body(m);
    if (!body && atomic_load(&m->lazy) != LMQ__LAZY_NONE) {
      rc = lmq__error(LMQ_ECORRUPT, "the received body of message %lld does "
                      "not decode", (long long)m->id);
      break;
    }
    /* The head without the body field, computed once: the field adds a
     * tag byte and the length's varint (at most 10 bytes). */
    size_t h0 = lmq__envelope_head_size(m, 0), room = h0 + 11;
    if (lmq__pb_reserve(&b, room)) {
      rc = lmq__error(LMQ_ENOMEM, "marshal: out of memory");
      break;
    }
    size_t start = b.len + room;
    b.len = start;
    if (sl->codec.marshal == proto_marshal) {
      const ProtobufCMessageDescriptor *desc = sl->codec.arg;
      const ProtobufCMessage *pm = body;
      if (!pm || pm->descriptor != desc) {
        rc = lmq__error(LMQ_EINVAL, "%s: body is %s", desc->short_name,
                        pm ? "of another type" : "NULL");
        break;
      }
      const lmq__pb_plan *plan = slot_plan(sl, desc);
      if (!plan || lmq__pb_pack_plan(&b, plan, pm)) {
        rc = lmq__error(LMQ_ENOMEM, "marshal: out of memory");
        break;
      }
    } else {
      unsigned char *ext = NULL;
      size_t elen = 0;
      if ((rc = sl->codec.marshal(&ext, &elen, body, sl->codec.arg)))
        break;
      if (lmq__pb_reserve(&b, elen)) {
        free(ext);
        rc = lmq__error(LMQ_ENOMEM, "marshal: out of memory");
        break;
      }
      if (elen)
        memcpy(b.p + b.len, ext, elen);
      b.len += elen;
      free(ext);
    }
    size_t blen = b.len - start, h = h0 + (blen ? 1 + lmq__varint_len(blen) : 0);
    lmq__envelope_head_write(b.p + start - h, m, blen);
    bufs[i].data = (const void *)(uintptr_t)(start - h);
    bufs[i].len = h + blen;
    m->size = bufs[i].len;
  }
  if (rc) {
    free(b.p);
    return rc;
  }
  for (i = 0; i < n; i++)
    bufs[i].data = b.p + (uintptr_t)bufs[i].data;
  *out = b.p;
  return 0;
}

LMQ_API int lmq_msg_marshal(unsigned char **out, size_t *len,
                            lmq_dispatcher *d, const lmq_tsmsg *m) {
  if (!out || !len || !d || !m)
    return lmq__error(LMQ_EINVAL, "msg_marshal: NULL argument");
  *out = NULL;
  *len = 0;
  if (d->mem)
    return mem_marshal(out, len, d, m);
  slot *s = slot_find(d, m->type);
  if (!s)
    return lmq__error(LMQ_ENOTSUP, "no codec registered for message type %u",
                      m->type);
  if (s->codec.marshal == proto_marshal)
    return marshal_proto_in_place(out, len, m, s->codec.arg);
  unsigned char *body = NULL;
  size_t blen = 0;
  const void *mb = lmq__tsmsg_body(m);
  if (!mb && atomic_load(&m->lazy) != LMQ__LAZY_NONE)
    return lmq__error(LMQ_ECORRUPT, "the received body of message %lld does "
                      "not decode", (long long)m->id);
  int rc = s->codec.marshal(&body, &blen, mb, s->codec.arg);
  if (rc)
    return rc;
  size_t head = lmq__envelope_head_size(m, blen);
  unsigned char *buf = malloc(head + blen ? head + blen : 1);
  if (!buf) {
    free(body);
    return lmq__error(LMQ_ENOMEM, "marshal: out of memory");
  }
  lmq__envelope_head_write(buf, m, blen);
  if (blen)
    memcpy(buf + head, body, blen);
  free(body);
  *out = buf;
  *len = head + blen;
  ((lmq_tsmsg *)m)->size = *len;
  return 0;
}

/* The envelope is transient: it is decoded into a stack arena. */
typedef union env_arena {
  arena a;
  unsigned char raw[sizeof(arena) + 1024];
} env_arena;

static void env_arena_done(env_arena *ea) {
  for (overflow *o = ea->a.more, *n; o; o = n) {
    n = o->next;
    free(o);
  }
}

/* Decode and check the envelope of data (everything but the body): 0 with
 * *envp and the type's slot *sp, or an error. ea is released by the caller
 * (env_arena_done) in every case. */
static int envelope_decode(Lmqpb__Envelope **envp, slot **sp, env_arena *ea,
                           lmq_dispatcher *d, const void *data, size_t len) {
  ea->a.more = NULL;
  ea->a.used = 0;
  ea->a.cap = sizeof *ea - sizeof(arena);
  ProtobufCAllocator eal = {arena_alloc, arena_nofree, &ea->a};
  Lmqpb__Envelope *env = lmqpb__envelope__unpack(&eal, len, data);
  if (!env)
    return lmq__error(LMQ_ECORRUPT, "%zu bytes are not a message envelope",
                      len);
  if (!env->msg_base)
    return lmq__error(LMQ_ECORRUPT, "message envelope has no base");
  if (bad_field_number(&env->base))
    return lmq__error(LMQ_ECORRUPT,
                      "message envelope carries field number 0 (or > 2^29-1)");
  uint32_t type = (uint32_t)env->msg_base->msg_type;
  slot *s = slot_find(d, type);
  if (!s)
    return lmq__error(LMQ_ENOTSUP, "no codec registered for message type %u",
                      type);
  if (env->traceparent[0] && lmq__traceparent_check(env->traceparent))
    return lmq__error(LMQ_ECORRUPT, "message carries a malformed traceparent");
  if (env->begin_ts > env->end_ts)
    return lmq__error(LMQ_ECORRUPT, "message begin_ts %llu > end_ts %llu",
                      (unsigned long long)env->begin_ts,
                      (unsigned long long)env->end_ts);
  *envp = env;
  *sp = s;
  return 0;
}

static void envelope_fields(lmq_tsmsg *m, const Lmqpb__Envelope *env,
                            size_t len) {
  m->id = env->msg_base->msg_id;
  m->timestamp = env->msg_base->timestamp;
  m->source_id = env->msg_base->source_id;
  m->begin_ts = env->begin_ts;
  m->end_ts = env->end_ts;
  m->size = len;
}

LMQ_API int lmq_msg_unmarshal(lmq_tsmsg **out, lmq_dispatcher *d,
                              const void *data, size_t len) {
  if (!out || !d || (len && !data))
    return lmq__error(LMQ_EINVAL, "msg_unmarshal: NULL argument");
  *out = NULL;
  if (d->mem)
    return mem_unmarshal(out, d, data, len);
  env_arena ea;
  Lmqpb__Envelope *env = NULL;
  slot *s = NULL;
  lmq_tsmsg *m = NULL;
  int rc = envelope_decode(&env, &s, &ea, d, data, len);
  if (rc)
    goto done;
  uint32_t type = (uint32_t)env->msg_base->msg_type;
  void *body = NULL;
  lmq_body_free_fn bfree = NULL;
  rc = s->codec.unmarshal(&body, &bfree, env->body.data, env->body.len,
                          s->codec.arg);
  if (rc)
    goto done;
  if ((rc = lmq_tsmsg_create(&m, type, body, bfree))) {
    if (bfree)
      bfree(body);
    goto done;
  }
  envelope_fields(m, env, len);
  if ((rc = lmq_tsmsg_set_hash_keys(m, env->hash_keys, env->n_hash_keys)) ||
      (env->traceparent[0] &&
       (rc = lmq_tsmsg_set_traceparent(m, env->traceparent)))) {
    lmq_tsmsg_unref(m);
    m = NULL;
    goto done;
  }
  *out = m;
done:
  env_arena_done(&ea);
  return rc;
}

#define ALIGN_UP(n, a) (((n) + (a) - 1) & ~((size_t)(a) - 1))

int lmq__msg_unmarshal_lazy(lmq_tsmsg **out, lmq_dispatcher *d,
                            lmq__slab_cur *slab, const void *data, size_t len,
                            const char *channel, const char *group, uint64_t id) {
  *out = NULL;
  if (d->mem || (len && !data)) { /* mem tokens carry no bytes to keep */
    int rc = lmq_msg_unmarshal(out, d, data, len);
    if (rc)
      return rc;
    if ((rc = lmq__pos_set(&(*out)->pos, channel, group, id, (*out)->end_ts))) {
      lmq_tsmsg_unref(*out);
      *out = NULL;
      return rc;
    }
    (*out)->has_pos = 1;
    return 0;
  }
  /* The envelope without protobuf-c (envelope.h), checked as
   * envelope_decode checks it. */
  lmq__envelope_view v;
  int rc = lmq__envelope_parse(&v, data, len);
  if (rc)
    return rc;
  slot *s = slot_find(d, v.type);
  if (!s)
    return lmq__error(LMQ_ENOTSUP, "no codec registered for message type %u",
                      v.type);
  /* The trace context is a C string: it ends at its first NUL, if any. */
  size_t tpl = v.tplen ? strnlen((const char *)v.tp, v.tplen) : 0;
  char tpbuf[256];
  if (tpl) {
    if (tpl >= sizeof tpbuf)
      return lmq__error(LMQ_ECORRUPT, "message carries a malformed traceparent");
    memcpy(tpbuf, v.tp, tpl);
    tpbuf[tpl] = '\0';
    if (lmq__traceparent_check(tpbuf))
      return lmq__error(LMQ_ECORRUPT, "message carries a malformed traceparent");
    tpl++;
  }
  if (v.begin_ts > v.end_ts)
    return lmq__error(LMQ_ECORRUPT, "message begin_ts %llu > end_ts %llu",
                      (unsigned long long)v.begin_ts,
                      (unsigned long long)v.end_ts);
  /* One allocation: the message, then its hash keys, trace context,
   * position strings and ID, and the encoded body. */
  size_t cl = strlen(channel) + 1, gl = group ? strlen(group) + 1 : 0;
  size_t off_keys = ALIGN_UP(sizeof(lmq_tsmsg), sizeof(uint32_t));
  if (v.nkeys > (SIZE_MAX - off_keys - len) / sizeof(uint32_t) / 2)
    return lmq__error(LMQ_ECORRUPT, "message has too many hash keys");
  size_t off_tp = off_keys + v.nkeys * sizeof(uint32_t);
  size_t off_ch = off_tp + tpl, off_g = off_ch + cl, off_id = off_g + gl;
  size_t off_raw = off_id + 8, total = off_raw + v.bodylen;
  lmq__slab *owner = NULL;
  unsigned char *blk = slab ? lmq__slab_alloc(slab, total, &owner) : malloc(total);
  if (!blk)
    return lmq__error(LMQ_ENOMEM, "msg_unmarshal: out of memory");
  lmq_tsmsg *m = (lmq_tsmsg *)blk;
  memset(m, 0, sizeof *m);
  m->slab = owner;
  atomic_init(&m->refs, 1);
  m->type = v.type;
  m->id = v.id;
  m->timestamp = v.timestamp;
  m->source_id = v.source_id;
  m->begin_ts = v.begin_ts;
  m->end_ts = v.end_ts;
  m->size = len;
  m->inl = LMQ__INL_KEYS | LMQ__INL_TP | LMQ__INL_POS;
  if (v.nkeys) {
    m->hash_keys = (uint32_t *)(blk + off_keys);
    lmq__envelope_keys(m->hash_keys, &v, data, len);
    m->nhash = v.nkeys;
  }
  if (tpl) {
    m->traceparent = (char *)blk + off_tp;
    memcpy(m->traceparent, tpbuf, tpl);
  }
  m->pos.channel = (char *)blk + off_ch;
  memcpy(m->pos.channel, channel, cl);
  if (group) {
    m->pos.group = (char *)blk + off_g;
    memcpy(m->pos.group, group, gl);
  }
  m->pos.msg_id = blk + off_id;
  for (int i = 0; i < 8; i++)
    m->pos.msg_id[i] = (unsigned char)(id >> (56 - 8 * i));
  m->pos.msg_id_len = 8;
  m->pos.timestamp = m->end_ts;
  m->has_pos = 1;
  if (v.bodylen)
    memcpy(blk + off_raw, v.body, v.bodylen);
  m->raw = blk + off_raw;
  m->rawlen = v.bodylen;
  m->raw_decode = s->codec.unmarshal;
  m->raw_arg = s->codec.arg;
  atomic_init(&m->lazy, LMQ__LAZY_PENDING);
  *out = m;
  return 0;
}
