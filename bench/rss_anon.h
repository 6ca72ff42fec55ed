/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * rss_anon.h - the process's private memory for the benchmarks: RssAnon from
 * /proc/self/status, in bytes (peak RSS also counts mapped files, such as
 * LMDB's map or RocksDB's tables: page cache the kernel can drop). 0 when
 * it cannot be read.
 */
#ifndef LMQ_BENCH_RSS_ANON_H
#define LMQ_BENCH_RSS_ANON_H

#include <stdint.h>
#include <stdio.h>

static inline uint64_t bench_rss_anon(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  unsigned long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb * 1024u;
}

#endif
