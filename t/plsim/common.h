/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * common.h - what the power-loss workload and its checker share: the env
 * options, the channel names, and the self-verifying payload format.
 *
 * Payload (len 20..3000): u32 opid | u16 index | u8 channel | u8 generation
 * (mod 256) | u32 checksum | pattern bytes. The checksum (FNV-1a, 32 bits)
 * covers the length, the header fields and the pattern; the pattern is
 * a function of (opid, index, position).
 */
#ifndef PLSIM_COMMON_H
#define PLSIM_COMMON_H
#include "lmq.h"
#include <stdint.h>
#include <string.h>

#define PL_NCHAN 4
#define PL_RET_CHAN 3 /* the channel with retention by bytes */
#define PL_NGROUP 2   /* groups per non-retention channel */
static const char *const pl_chan_names[PL_NCHAN] = {"c0", "c1", "c2", "ret"};

static inline lmq_env_options pl_options(void) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.wal_segment_size = 64 << 10;
  o.checkpoint_bytes = 128 << 10;
  o.apply_interval_ms = 5;
  o.apply_bytes = 64 << 10;
  o.max_unapplied = 1 << 20;
  o.map_size = 16 << 20;
  o.sync = LMQ_SYNC_ALWAYS;
  return o;
}

static inline uint32_t pl_fnv(uint32_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

static inline unsigned char pl_pat(uint32_t opid, unsigned idx, size_t j) {
  return (unsigned char)((opid * 131u + idx * 31u + (unsigned)j * 7u) ^ (j >> 8));
}

static inline uint32_t pl_sum(const unsigned char *p, size_t len) {
  uint32_t l = (uint32_t)len;
  uint32_t h = pl_fnv(2166136261u, (const unsigned char *)&l, 4);
  h = pl_fnv(h, p, 8);
  return pl_fnv(h, p + 12, len - 12);
}

static inline void pl_payload(unsigned char *p, size_t len, uint32_t opid,
                              unsigned idx, unsigned chan, unsigned gen) {
  memcpy(p, &opid, 4);
  uint16_t i16 = (uint16_t)idx;
  memcpy(p + 4, &i16, 2);
  p[6] = (unsigned char)chan;
  p[7] = (unsigned char)gen;
  for (size_t j = 12; j < len; j++)
    p[j] = pl_pat(opid, idx, j);
  uint32_t s = pl_sum(p, len);
  memcpy(p + 8, &s, 4);
}

/* 1 and the fields if the payload is intact, else 0. */
static inline int pl_payload_check(const unsigned char *p, size_t len,
                                   uint32_t *opid, unsigned *idx,
                                   unsigned *chan, unsigned *gen) {
  if (len < 20 || len > 3000)
    return 0;
  uint32_t s;
  memcpy(&s, p + 8, 4);
  if (s != pl_sum(p, len))
    return 0;
  memcpy(opid, p, 4);
  uint16_t i16;
  memcpy(&i16, p + 4, 2);
  *idx = i16;
  *chan = p[6];
  *gen = p[7];
  for (size_t j = 12; j < len; j++)
    if (p[j] != pl_pat(*opid, *idx, j))
      return 0;
  return 1;
}
#endif
