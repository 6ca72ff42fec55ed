/* envelope.c - the message envelope's bytes, written by hand (see
 * envelope.h). Field numbers follow proto/lmq_msg.proto:
 *   Envelope { MsgBase msg_base = 1; uint64 begin_ts = 2; uint64 end_ts = 3;
 *              repeated uint32 hash_keys = 4 [packed]; string traceparent = 5;
 *              bytes body = 6; }
 *   MsgBase  { MsgType msg_type = 1; int64 msg_id = 2; uint64 timestamp = 3;
 *              int64 source_id = 4; }
 */
#include "config.h"
#include "stream/envelope.h"

#include <string.h>

enum { WT_VARINT = 0, WT_LEN = 2 };

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static size_t varint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

/* Every field number here is below 16: a tag is one byte. */
#define TAG(field, wt) ((unsigned char)((field) << 3 | (wt)))

/* The enum is an int32 on the wire: a type above INT32_MAX is negative and
 * sign-extended to ten bytes, as protobuf-c writes it. */
static uint64_t enum_wire(uint32_t type) {
  return (uint64_t)(int64_t)(int32_t)type;
}

static size_t base_size(const lmq_tsmsg *m) {
  size_t n = 0;
  if (m->type)
    n += 1 + varint_size(enum_wire(m->type));
  if (m->id)
    n += 1 + varint_size((uint64_t)m->id);
  if (m->timestamp)
    n += 1 + varint_size(m->timestamp);
  if (m->source_id)
    n += 1 + varint_size((uint64_t)m->source_id);
  return n;
}

static size_t keys_size(const lmq_tsmsg *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->nhash; i++)
    n += varint_size(m->hash_keys[i]);
  return n;
}

static size_t tp_len(const lmq_tsmsg *m) {
  return m->traceparent ? strlen(m->traceparent) : 0;
}

size_t lmq__envelope_head_size(const lmq_tsmsg *m, size_t blen) {
  size_t b = base_size(m), n = 1 + varint_size(b) + b;
  if (m->begin_ts)
    n += 1 + varint_size(m->begin_ts);
  if (m->end_ts)
    n += 1 + varint_size(m->end_ts);
  if (m->nhash) {
    size_t k = keys_size(m);
    n += 1 + varint_size(k) + k;
  }
  size_t t = tp_len(m);
  if (t)
    n += 1 + varint_size(t) + t;
  if (blen)
    n += 1 + varint_size(blen);
  return n;
}

size_t lmq__envelope_head_write(unsigned char *out, const lmq_tsmsg *m,
                                size_t blen) {
  unsigned char *p = out;
  *p++ = TAG(1, WT_LEN);
  p += varint_put(p, base_size(m));
  if (m->type) {
    *p++ = TAG(1, WT_VARINT);
    p += varint_put(p, enum_wire(m->type));
  }
  if (m->id) {
    *p++ = TAG(2, WT_VARINT);
    p += varint_put(p, (uint64_t)m->id);
  }
  if (m->timestamp) {
    *p++ = TAG(3, WT_VARINT);
    p += varint_put(p, m->timestamp);
  }
  if (m->source_id) {
    *p++ = TAG(4, WT_VARINT);
    p += varint_put(p, (uint64_t)m->source_id);
  }
  if (m->begin_ts) {
    *p++ = TAG(2, WT_VARINT);
    p += varint_put(p, m->begin_ts);
  }
  if (m->end_ts) {
    *p++ = TAG(3, WT_VARINT);
    p += varint_put(p, m->end_ts);
  }
  if (m->nhash) {
    *p++ = TAG(4, WT_LEN);
    p += varint_put(p, keys_size(m));
    for (size_t i = 0; i < m->nhash; i++)
      p += varint_put(p, m->hash_keys[i]);
  }
  size_t t = tp_len(m);
  if (t) {
    *p++ = TAG(5, WT_LEN);
    p += varint_put(p, t);
    memcpy(p, m->traceparent, t);
    p += t;
  }
  if (blen) {
    *p++ = TAG(6, WT_LEN);
    p += varint_put(p, blen);
  }
  return (size_t)(p - out);
}
