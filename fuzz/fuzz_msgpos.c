/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fuzz target: lmq_msg_positions_unmarshal, the decoder of stored positions
 * and checkpoints. Properties: no crash or leak; what decodes marshals again
 * and decodes to the same positions.
 */
#include "config.h"
#include "fuzz.h"
#include "lmq_stream.h"

static int same_str(const char *a, const char *b) {
  return !strcmp(a ? a : "", b ? b : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = fuzz_copy(data, size);
  lmq_msg_position *p = NULL, *q = NULL;
  size_t n = 0, m = 0;
  if (lmq_msg_positions_unmarshal(&p, &n, buf, size) == 0) {
    unsigned char *out = NULL;
    size_t len = 0;
    FUZZ_CHECK(lmq_msg_positions_marshal(&out, &len, p, n) == 0);
    FUZZ_CHECK(lmq_msg_positions_unmarshal(&q, &m, out, len) == 0);
    FUZZ_CHECK(m == n);
    for (size_t i = 0; i < n; i++) {
      FUZZ_CHECK(same_str(p[i].channel, q[i].channel));
      FUZZ_CHECK(same_str(p[i].group, q[i].group));
      FUZZ_CHECK(p[i].timestamp == q[i].timestamp);
      FUZZ_CHECK(p[i].msg_id_len == q[i].msg_id_len);
      FUZZ_CHECK(!p[i].msg_id_len ||
                 !memcmp(p[i].msg_id, q[i].msg_id, p[i].msg_id_len));
    }
    free(out);
    lmq_msg_positions_free(q, m);
    lmq_msg_positions_free(p, n);
  }
  free(buf);
  return 0;
}
