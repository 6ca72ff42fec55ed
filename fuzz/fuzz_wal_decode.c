/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * fuzz_wal_decode - the WAL record decoder on arbitrary bytes.
 *
 * Input: u64 segment number (little-endian), then the bytes of a segment.
 * Walks it as recovery does (decode; on anything but a valid record, step
 * one byte, as the resync after damage does) and checks every record the
 * decoder accepts: its size fits, its produce payloads add up exactly, its
 * IDs are in range, and re-encoding it gives back the same bytes.
 */
#include "engine/wal.h"
#include "lmq.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c))                                                                  \
      abort();                                                                 \
  } while (0)

static void check_produce(const lmq_wal_rec *r, const unsigned char *at,
                          uint64_t seg) {
  CHECK(r->count > 0 && r->first_id > 0 && r->first_id <= LMQ_ID_MAX);
  CHECK(r->count - 1 <= LMQ_ID_MAX - r->first_id);
  size_t pos = 0, total = 0, n = 0;
  const unsigned char *d;
  uint32_t len;
  while (lmq__wal_rec_next(r, &pos, &d, &len)) {
    CHECK(d >= r->msgs && d + len <= r->msgs + r->msgs_len);
    total += len;
    n++;
  }
  CHECK(n == r->count && pos == r->msgs_len);
  /* Re-encode: the same bytes, in the record's own length format. */
  size_t size = lmq__wal_rec_size(r->name_len, r->msgs_len - total, total);
  CHECK(size == r->size);
  unsigned char *buf = malloc(size);
  CHECK(buf);
  unsigned char *p = lmq__wal_rec_begin(buf, size, r->name, r->name_len,
                                        r->incarnation, r->first_id, r->count);
  CHECK(buf[LMQ_WAL_HDR] == LMQ_WAL_REC_PRODUCE_V);
  if (!r->varlen)
    buf[LMQ_WAL_HDR] = LMQ_WAL_REC_PRODUCE; /* the first format: u32 lengths */
  memcpy(p, r->msgs, r->msgs_len);
  lmq__wal_rec_seal(buf, size, seg);
  CHECK(memcmp(buf, at, size) == 0);
  free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8)
    return 0;
  uint64_t seg = lmq__get64(data);
  /* An exact-size copy, so reads past the end are caught. */
  size_t len = size - 8;
  unsigned char *buf = malloc(len ? len : 1);
  CHECK(buf);
  memcpy(buf, data + 8, len);
  size_t off = 0;
  while (off < len) {
    lmq_wal_rec r;
    int d = lmq__wal_decode(&r, buf + off, len - off, seg);
    CHECK(d == LMQ_WAL_OK || d == LMQ_WAL_NONE || d == LMQ_WAL_TORN);
    if (d != LMQ_WAL_OK) {
      off++;
      continue;
    }
    CHECK(r.size >= LMQ_WAL_HDR + LMQ_WAL_TRAILER + 1 && r.size <= len - off);
    if (r.type == LMQ_WAL_REC_PRODUCE)
      check_produce(&r, buf + off, seg);
    else
      CHECK(r.type == LMQ_WAL_REC_MARK || r.type == LMQ_WAL_REC_END);
    off += r.size;
  }
  free(buf);
  return 0;
}
