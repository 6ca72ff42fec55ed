/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* fuzz.h - shared by the fuzz targets (see fuzz/README.md). */
#ifndef LMQ_FUZZ_H
#define LMQ_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the target checks: abort (a finding for libFuzzer, a crash for
 * the replay test) with the reason when it does not hold. */
#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);    \
      abort();                                                                         \
    }                                                                                  \
  } while (0)

/* A heap copy of exactly n bytes (never NULL): a decoder reading past the
 * end of what it was given trips AddressSanitizer, even when libFuzzer's own
 * buffer would have had room. */
static inline char *fuzz_copy(const uint8_t *data, size_t n) {
  char *p = malloc(n ? n : 1);
  if (!p)
    abort();
  if (n)
    memcpy(p, data, n);
  return p;
}

/* A NUL-terminated copy, for string APIs. */
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
  char *p = malloc(n + 1);
  if (!p)
    abort();
  if (n)
    memcpy(p, data, n);
  p[n] = '\0';
  return p;
}

#endif
