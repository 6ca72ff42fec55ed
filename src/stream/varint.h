/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * varint.h - protobuf base-128 varints, written by the envelope and the
 * body encoder (pbpack.c).
 */
#ifndef LMQ_STREAM_VARINT_H
#define LMQ_STREAM_VARINT_H

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

#endif
