/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the stream factory's string parameters (backend, engine.dir,
 * engine.sync, nats.url, dispatcher, receive_buffer). The input is
 * "key\0value\0key\0value..."; every pair is set on one factory, which is
 * then destroyed without opening a stream (the NATS URL itself is handed to
 * libnats on connect and is not parsed by lmq). Properties: no crash, leak
 * or sanitizer report; every refusal is LMQ_EINVAL.
 */
#include "config.h"
#include "fuzz.h"
#include "lmq_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  lmq_stream_factory *f = NULL;
  FUZZ_CHECK(lmq_stream_factory_create(&f) == 0);
  const char *p = s, *end = s + size;
  while (p < end) {
    const char *key = p;
    p += strlen(p) + 1;
    const char *value = p < end ? p : "";
    if (p < end)
      p += strlen(p) + 1;
    int rc = lmq_stream_factory_set(f, key, value);
    FUZZ_CHECK(rc == 0 || rc == LMQ_EINVAL);
  }
  lmq_stream_factory_destroy(f);
  free(s);
  return 0;
}
