/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* wal.c - the WAL record codec (see wal.h): pure, no I/O, fuzzed. */
#include "config.h"
#include "engine/wal.h"
#include "common/varint.h"
#include "lmq.h"

#include <string.h>
#include <xxhash.h>

/* Fixed body bytes before the payload entries, besides the name. */
#define BODY_FIXED (1u + 1u + 8u + 8u + 4u)

size_t lmq__wal_rec_size(size_t name_len, uint64_t len_bytes, uint64_t payload_bytes) {
  return LMQ_WAL_HDR + BODY_FIXED + name_len + (size_t)len_bytes + (size_t)payload_bytes +
         LMQ_WAL_TRAILER;
}

unsigned char *lmq__wal_rec_begin(unsigned char *buf, size_t size,
                                  const char *name, size_t name_len,
                                  uint64_t incarnation, uint64_t first_id,
                                  uint32_t count) {
  lmq__put32(buf, LMQ_WAL_MAGIC); /* made the segment's by the seal */
  lmq__put32(buf + 4, (uint32_t)(size - LMQ_WAL_HDR - LMQ_WAL_TRAILER));
  unsigned char *p = buf + LMQ_WAL_HDR;
  *p++ = LMQ_WAL_REC_PRODUCE_V;
  *p++ = (unsigned char)name_len;
  memcpy(p, name, name_len);
  p += name_len;
  lmq__put64(p, incarnation);
  lmq__put64(p + 8, first_id);
  lmq__put32(p + 16, count);
  return p + 20;
}

void lmq__wal_rec_seal(unsigned char *buf, size_t size, uint64_t seg) {
  lmq__put32(buf, lmq__wal_magic(seg));
  lmq__put64(buf + size - LMQ_WAL_TRAILER,
             XXH3_64bits_withSeed(buf, size - LMQ_WAL_TRAILER, seg));
}

void lmq__wal_ctl(unsigned char *buf, int type, uint64_t arg, uint64_t seg) {
  lmq__put32(buf + 4, 9);
  buf[LMQ_WAL_HDR] = (unsigned char)type;
  lmq__put64(buf + LMQ_WAL_HDR + 1, arg);
  lmq__wal_rec_seal(buf, LMQ_WAL_CTL_SIZE, seg);
}

/* Check a produce body's layout; fills the produce fields of rec. */
static int decode_produce(lmq_wal_rec *rec, const unsigned char *p,
                          const unsigned char *end) {
  if ((size_t)(end - p) < BODY_FIXED)
    return 0;
  size_t nl = p[1];
  if (nl == 0 || (size_t)(end - p) < BODY_FIXED + nl)
    return 0;
  rec->name = (const char *)p + 2;
  rec->name_len = nl;
  p += 2 + nl;
  rec->incarnation = lmq__get64(p);
  rec->first_id = lmq__get64(p + 8);
  rec->count = lmq__get32(p + 16);
  p += 20;
  rec->msgs = p;
  rec->msgs_len = (size_t)(end - p);
  /* Validate the entry layout once so iteration cannot overrun. */
  const unsigned char *q = p;
  for (uint32_t i = 0; i < rec->count; i++) {
    uint32_t l;
    size_t lb;
    if (rec->varlen) {
      if (!(lb = lmq__varint_get32(q, end, &l)))
        return 0;
    } else {
      if ((size_t)(end - q) < 4)
        return 0;
      l = lmq__get32(q);
      lb = 4;
    }
    if ((size_t)(end - q) - lb < l)
      return 0;
    q += lb + l;
  }
  /* IDs outside 1..LMQ_ID_MAX never come from a real produce: a record
   * carrying them is damaged (and would make cursors wrap). */
  if (rec->first_id == 0 || rec->count == 0 || rec->first_id > LMQ_ID_MAX ||
      rec->count - 1 > LMQ_ID_MAX - rec->first_id)
    return 0;
  return q == end;
}

int lmq__wal_decode(lmq_wal_rec *rec, const unsigned char *buf, size_t avail,
                   uint64_t seg) {
  if (avail < LMQ_WAL_HDR || lmq__get32(buf) != lmq__wal_magic(seg))
    return LMQ_WAL_NONE;
  uint32_t blen = lmq__get32(buf + 4);
  if (blen > LMQ_WAL_MAX_BODY || blen < 1)
    return LMQ_WAL_TORN;
  size_t size = LMQ_WAL_HDR + (size_t)blen + LMQ_WAL_TRAILER;
  if (size > avail)
    return LMQ_WAL_TORN;
  if (XXH3_64bits_withSeed(buf, size - LMQ_WAL_TRAILER, seg) !=
      lmq__get64(buf + size - LMQ_WAL_TRAILER))
    return LMQ_WAL_TORN;
  const unsigned char *p = buf + LMQ_WAL_HDR, *end = p + blen;
  memset(rec, 0, sizeof *rec);
  rec->type = p[0];
  rec->size = size;
  switch (rec->type) {
  case LMQ_WAL_REC_PRODUCE_V:
  case LMQ_WAL_REC_PRODUCE:
    rec->varlen = rec->type == LMQ_WAL_REC_PRODUCE_V;
    rec->type = LMQ_WAL_REC_PRODUCE;
    return decode_produce(rec, p, end) ? LMQ_WAL_OK : LMQ_WAL_TORN;
  case LMQ_WAL_REC_MARK:
  case LMQ_WAL_REC_END:
    if (blen != 9)
      return LMQ_WAL_TORN;
    rec->arg = lmq__get64(p + 1);
    return LMQ_WAL_OK;
  default:
    return LMQ_WAL_TORN;
  }
}

int lmq__wal_rec_next(const lmq_wal_rec *rec, size_t *pos,
                      const unsigned char **data, uint32_t *len) {
  if (*pos >= rec->msgs_len)
    return 0;
  size_t lb = 4;
  if (rec->varlen)
    lb = lmq__varint_get32_trusted(rec->msgs + *pos, len);
  else
    *len = lmq__get32(rec->msgs + *pos);
  *data = rec->msgs + *pos + lb;
  *pos += lb + *len;
  return 1;
}

