/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * fuzz_store - a channel entry's decoder (src/engine/store.c) on arbitrary
 * key and value bytes, as a damaged data.mdb would hand them to consume,
 * group lag, retention and verify.
 *
 * Input: one byte, the key's length (mod 32); the key; the rest is the
 * value. An accepted key must be one of the three forms (8, 16, 20 bytes
 * with a count >= 2); reading the entry's messages must stay inside the
 * value and either end with exactly count messages covering the whole run
 * or report MDB_CORRUPTED, and lmq__entry_bytes must agree with the
 * messages read.
 */
#include "engine/store.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t klen = data[0] % 32;
  if (klen > size - 1)
    return 0;
  char *key = fuzz_copy(data + 1, klen);
  char *val = fuzz_copy(data + 1 + klen, size - 1 - klen);
  MDB_val k = {klen, key}, v = {size - 1 - klen, val};
  lmq__entry e;
  if (lmq__entry_get(&e, &k, &v) == 0) {
    FUZZ_CHECK(klen == 8 || klen == 16 || klen == 20);
    FUZZ_CHECK(e.count >= 1 && (klen == 20) == (e.count >= 2));
    FUZZ_CHECK(e.has_ord == (klen >= 16));
    size_t pos = 0;
    uint32_t idx = 0, len;
    const void *d;
    uint64_t sum = 0;
    int rc;
    while ((rc = lmq__entry_next(&e, &pos, &idx, &d, &len)) == 1) {
      const char *p = d;
      FUZZ_CHECK(p >= val && p + len <= val + v.mv_size);
      FUZZ_CHECK(idx <= e.count);
      sum += len;
    }
    FUZZ_CHECK(rc == 0 || rc == MDB_CORRUPTED);
    if (rc == 0) {
      FUZZ_CHECK(idx == e.count);
      FUZZ_CHECK(e.count == 1 ? sum == v.mv_size : pos == v.mv_size);
    }
    uint64_t bytes;
    int brc = lmq__entry_bytes(&e, &bytes);
    FUZZ_CHECK(brc == rc);
    if (rc == 0)
      FUZZ_CHECK(bytes == sum);
  } else {
    FUZZ_CHECK(!(klen == 8 || klen == 16));
  }
  free(key);
  free(val);
  return 0;
}
