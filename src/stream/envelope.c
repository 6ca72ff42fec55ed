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
#include "common/varint.h"
#include "common/error.h"

#include <string.h>

enum { WT_VARINT = 0, WT_LEN = 2 };

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
    n += 1 + lmq__varint_len(enum_wire(m->type));
  if (m->id)
    n += 1 + lmq__varint_len((uint64_t)m->id);
  if (m->timestamp)
    n += 1 + lmq__varint_len(m->timestamp);
  if (m->source_id)
    n += 1 + lmq__varint_len((uint64_t)m->source_id);
  return n;
}

static size_t keys_size(const lmq_tsmsg *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->nhash; i++)
    n += lmq__varint_len(m->hash_keys[i]);
  return n;
}

static size_t tp_len(const lmq_tsmsg *m) {
  return m->traceparent ? strlen(m->traceparent) : 0;
}

size_t lmq__envelope_head_size(const lmq_tsmsg *m, size_t blen) {
  size_t b = base_size(m), n = 1 + lmq__varint_len(b) + b;
  if (m->begin_ts)
    n += 1 + lmq__varint_len(m->begin_ts);
  if (m->end_ts)
    n += 1 + lmq__varint_len(m->end_ts);
  if (m->nhash) {
    size_t k = keys_size(m);
    n += 1 + lmq__varint_len(k) + k;
  }
  size_t t = tp_len(m);
  if (t)
    n += 1 + lmq__varint_len(t) + t;
  if (blen)
    n += 1 + lmq__varint_len(blen);
  return n;
}

size_t lmq__envelope_head_write(unsigned char *out, const lmq_tsmsg *m,
                                size_t blen) {
  unsigned char *p = out;
  *p++ = TAG(1, WT_LEN);
  p += lmq__varint_put(p, base_size(m));
  if (m->type) {
    *p++ = TAG(1, WT_VARINT);
    p += lmq__varint_put(p, enum_wire(m->type));
  }
  if (m->id) {
    *p++ = TAG(2, WT_VARINT);
    p += lmq__varint_put(p, (uint64_t)m->id);
  }
  if (m->timestamp) {
    *p++ = TAG(3, WT_VARINT);
    p += lmq__varint_put(p, m->timestamp);
  }
  if (m->source_id) {
    *p++ = TAG(4, WT_VARINT);
    p += lmq__varint_put(p, (uint64_t)m->source_id);
  }
  if (m->begin_ts) {
    *p++ = TAG(2, WT_VARINT);
    p += lmq__varint_put(p, m->begin_ts);
  }
  if (m->end_ts) {
    *p++ = TAG(3, WT_VARINT);
    p += lmq__varint_put(p, m->end_ts);
  }
  if (m->nhash) {
    *p++ = TAG(4, WT_LEN);
    p += lmq__varint_put(p, keys_size(m));
    for (size_t i = 0; i < m->nhash; i++)
      p += lmq__varint_put(p, m->hash_keys[i]);
  }
  size_t t = tp_len(m);
  if (t) {
    *p++ = TAG(5, WT_LEN);
    p += lmq__varint_put(p, t);
    memcpy(p, m->traceparent, t);
    p += t;
  }
  if (blen) {
    *p++ = TAG(6, WT_LEN);
    p += lmq__varint_put(p, blen);
  }
  return (size_t)(p - out);
}

/* ------------------------------------------------------------- reading */

enum { WT_64 = 1, WT_32 = 5 };
#define FIELD_NUMBER_MAX 536870911u

/* A field's key, as protobuf-c reads it: at most five bytes, the number
 * kept to 32 bits; a first byte with number bits 0 is refused outright
 * (a longer key for number 0 is read, and refused later as unknown field
 * 0). Returns the key's length, 0 if it is malformed. */
static inline size_t read_key(const unsigned char *p, size_t rem, uint32_t *num,
                              unsigned *wt) {
  if ((p[0] & 0xf8) == 0)
    return 0;
  *wt = p[0] & 7;
  uint32_t n = (uint32_t)(p[0] & 0x7f) >> 3;
  if (!(p[0] & 0x80)) {
    *num = n;
    return 1;
  }
  size_t max = rem < 5 ? rem : 5;
  unsigned shift = 4;
  for (size_t i = 1; i < max; i++) {
    n |= (uint32_t)(p[i] & 0x7f) << shift;
    if (!(p[i] & 0x80)) {
      *num = n;
      return i + 1;
    }
    shift += 7;
  }
  return 0;
}

/* A varint's length (at most ten bytes), 0 if it does not end in time. */
static inline size_t varint_len(const unsigned char *p, size_t rem) {
  if (p[0] < 0x80) /* rem >= 1 at every call */
    return 1;
  size_t max = rem < 10 ? rem : 10;
  for (size_t i = 0; i < max; i++)
    if (!(p[i] & 0x80))
      return i + 1;
  return 0;
}

/* A varint's length and value in one pass (what varint_len and
 * varint_value give together); 0 if it does not end in time. */
static inline size_t varint_read(const unsigned char *p, size_t rem, uint64_t *v) {
  if (p[0] < 0x80) { /* rem >= 1 at every call */
    *v = p[0];
    return 1;
  }
  size_t max = rem < 10 ? rem : 10;
  uint64_t x = 0;
  for (size_t i = 0; i < max; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

static inline uint64_t varint_value(const unsigned char *p, size_t n) {
  if (n == 1)
    return p[0];
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++)
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
  return v;
}

/* The extent of a field's value: *vlen bytes from the key's end, of which
 * *hdr are a length prefix. 0 or -1 (malformed, or wire type 3, 4, 6, 7). */
static inline int read_value(const unsigned char *p, size_t rem, unsigned wt,
                             size_t *vlen, size_t *hdr) {
  *hdr = 0;
  if (rem == 0)
    return -1;
  switch (wt) {
  case WT_VARINT:
    return (*vlen = varint_len(p, rem)) ? 0 : -1;
  case WT_64:
    *vlen = 8;
    return rem < 8 ? -1 : 0;
  case WT_32:
    *vlen = 4;
    return rem < 4 ? -1 : 0;
  case WT_LEN: {
    if (p[0] < 0x80) {
      *hdr = 1;
      *vlen = 1 + (size_t)p[0];
      return *vlen > rem ? -1 : 0;
    }
    /* The length as protobuf-c reads it: five bytes at most, 32 bits. */
    size_t max = rem < 5 ? rem : 5, i;
    uint32_t l = 0;
    for (i = 0; i < max; i++) {
      l |= (uint32_t)(p[i] & 0x7f) << (7 * i);
      if (!(p[i] & 0x80))
        break;
    }
    if (i == max || i + 1 + (size_t)l > rem)
      return -1;
    *hdr = i + 1;
    *vlen = i + 1 + (size_t)l;
    return 0;
  }
  default:
    return -1;
  }
}

static int bad_number(uint32_t num) {
  return num == 0 || num > FIELD_NUMBER_MAX;
}

/* One MsgBase occurrence. *bad: it carries an unknown field numbered 0 or
 * above the maximum. */
static int parse_base(lmq__envelope_view *v, const unsigned char *p,
                      size_t len, int *bad) {
  uint32_t type = 0;
  int64_t id = 0, src = 0;
  uint64_t ts = 0;
  *bad = 0;
  for (size_t off = 0; off < len;) {
    uint32_t num;
    unsigned wt;
    size_t k = read_key(p + off, len - off, &num, &wt), vlen, hdr;
    if (!k)
      return -1;
    const unsigned char *val = p + off + k;
    if (num >= 1 && num <= 4) {
      uint64_t x;
      if (wt != WT_VARINT || off + k >= len ||
          !(vlen = varint_read(val, len - off - k, &x)))
        return -1;
      if (num == 1)
        type = (uint32_t)x;
      else if (num == 2)
        id = (int64_t)x;
      else if (num == 3)
        ts = x;
      else
        src = (int64_t)x;
    } else {
      if (read_value(val, len - off - k, wt, &vlen, &hdr))
        return -1;
      *bad |= bad_number(num);
    }
    off += k + vlen;
  }
  v->type = type;
  v->id = id;
  v->timestamp = ts;
  v->source_id = src;
  return 0;
}

/* Walk the hash-key field values: count them, and store them if out. */
static int keys_walk(const unsigned char *val, size_t vlen, size_t hdr,
                     unsigned wt, uint32_t *out, size_t *n) {
  if (wt == WT_VARINT) {
    if (out)
      out[*n] = (uint32_t)varint_value(val, vlen);
    (*n)++;
    return 0;
  }
  if (wt != WT_LEN)
    return -1;
  for (size_t off = hdr; off < vlen;) {
    size_t l = varint_len(val + off, vlen - off);
    if (!l)
      return -1;
    if (out)
      out[*n] = (uint32_t)varint_value(val + off, l);
    (*n)++;
    off += l;
  }
  return 0;
}

int lmq__envelope_parse(lmq__envelope_view *v, const void *data, size_t len) {
  const unsigned char *p = data;
  memset(v, 0, sizeof *v);
  int top_bad = 0, base_bad = 0;
  for (size_t off = 0; off < len;) {
    uint32_t num;
    unsigned wt;
    size_t k = read_key(p + off, len - off, &num, &wt), vlen, hdr;
    if (!k)
      return lmq__error(LMQ_ECORRUPT, "%zu bytes are not a message envelope",
                        len);
    const unsigned char *val = p + off + k;
    int bad = 0;
    if ((num == 2 || num == 3) && wt == WT_VARINT) {
      /* begin_ts, end_ts: read in one pass (the common fields) */
      uint64_t x;
      if (off + k >= len || !(vlen = varint_read(val, len - off - k, &x)))
        return lmq__error(LMQ_ECORRUPT, "%zu bytes are not a message envelope",
                          len);
      if (num == 2)
        v->begin_ts = x;
      else
        v->end_ts = x;
      off += k + vlen;
      continue;
    }
    if (read_value(val, len - off - k, wt, &vlen, &hdr))
      return lmq__error(LMQ_ECORRUPT, "%zu bytes are not a message envelope",
                        len);
    switch (num) {
    case 1:
      bad = wt != WT_LEN || parse_base(v, val + hdr, vlen - hdr, &base_bad);
      v->has_base = 1;
      break;
    case 2:
    case 3:
      bad = 1; /* not a varint (the varint case is above) */
      break;
    case 4:
      bad = keys_walk(val, vlen, hdr, wt, NULL, &v->nkeys);
      v->keys_at = val;
      v->keys_vlen = vlen;
      v->keys_hdr = hdr;
      v->keys_wt = wt;
      v->keys_fields++;
      break;
    case 5:
    case 6:
      if (!(bad = wt != WT_LEN)) {
        if (num == 5) {
          v->tp = val + hdr;
          v->tplen = vlen - hdr;
        } else {
          v->body = val + hdr;
          v->bodylen = vlen - hdr;
        }
      }
      break;
    default:
      top_bad |= bad_number(num);
    }
    if (bad)
      return lmq__error(LMQ_ECORRUPT, "%zu bytes are not a message envelope",
                        len);
    off += k + vlen;
  }
  if (!v->has_base)
    return lmq__error(LMQ_ECORRUPT, "message envelope has no base");
  if (top_bad || base_bad)
    return lmq__error(LMQ_ECORRUPT,
                      "message envelope carries field number 0 (or > 2^29-1)");
  return 0;
}

void lmq__envelope_keys(uint32_t *out, const lmq__envelope_view *v,
                        const void *data, size_t len) {
  const unsigned char *p = data;
  size_t n = 0;
  if (v->keys_fields == 1) { /* the usual case: one packed field */
    keys_walk(v->keys_at, v->keys_vlen, v->keys_hdr, v->keys_wt, out, &n);
    return;
  }
  for (size_t off = 0; off < len;) {
    uint32_t num;
    unsigned wt;
    size_t k = read_key(p + off, len - off, &num, &wt), vlen, hdr;
    if (!k || read_value(p + off + k, len - off - k, wt, &vlen, &hdr))
      return; /* not reached for bytes _parse accepted */
    if (num == 4)
      keys_walk(p + off + k, vlen, hdr, wt, out, &n);
    off += k + vlen;
  }
}
