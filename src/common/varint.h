/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * varint.h - base-128 varints (protobuf's, LEB128): written by the stream
 * envelope and body encoder (pbpack.c), and used for the message lengths
 * in WAL produce records (wal.h).
 */
#ifndef LMQ_COMMON_VARINT_H
#define LMQ_COMMON_VARINT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes v takes as a varint (1..10). */
static inline size_t lmq__varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Write v at p (room for 10 bytes); returns the bytes written. */
static inline size_t lmq__varint_put(unsigned char *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (unsigned char)v;
  return n;
}

/* Read a varint of at most 5 bytes holding a value below 2^32 from
 * [p, end): returns the bytes read, or 0 when it is cut off by end, longer,
 * or too large. Never reads at or past end. */
static inline size_t lmq__varint_get32(const unsigned char *p, const unsigned char *end,
                                       uint32_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < 5 && p + i < end; i++) {
    x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      if (x > UINT32_MAX)
        return 0;
      *v = (uint32_t)x;
      return i + 1;
    }
  }
  return 0;
}

/* The same for a varint known to be well formed (written by this process,
 * or checked by lmq__varint_get32 before). */
static inline size_t lmq__varint_get32_trusted(const unsigned char *p, uint32_t *v) {
  if (p[0] < 0x80) {
    *v = p[0];
    return 1;
  }
  uint32_t x = 0;
  size_t i = 0;
  do
    x |= (uint32_t)(p[i] & 0x7f) << (7 * i);
  while (p[i++] & 0x80);
  *v = x;
  return i;
}

#endif
