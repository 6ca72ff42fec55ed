/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fuzz target: every decoder of an etcd v3 JSON gateway answer
 * (src/meta/etcd_codec.c) and the base64 decoder, on the same bytes. The
 * body is an exact-size, non-NUL-terminated heap block, as curl hands it
 * over. Properties: no crash, no sanitizer report, no leak, and decoded
 * keys always lie inside the namespace that was asked for.
 */
#include "config.h"
#include "fuzz.h"
#include "meta/etcd_codec.h"

static const char NS[] = "/ns/";
#define NSLEN (sizeof NS - 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_copy(data, size);
  static const long statuses[] = {400, 401, 403, 404, 429, 500, 503};
  for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
    int code;
    char msg[200];
    int v = etcd_classify(&code, msg, sizeof msg, statuses[i], body, size);
    FUZZ_CHECK(v >= ETCD_DONE && v <= ETCD_FAIL);
    FUZZ_CHECK(strlen(msg) < sizeof msg);
    FUZZ_CHECK(v != ETCD_FAIL || code < 0);
  }
  /* A message buffer of one byte must still be terminated. */
  int code;
  char tiny[1];
  (void)etcd_classify(&code, tiny, sizeof tiny, 500, body, size);
  FUZZ_CHECK(tiny[0] == '\0');

  int64_t a, b;
  (void)etcd_decode_revision(&a, body, size);
  lmq_meta_kv *kvs;
  size_t n;
  int more;
  if (!etcd_decode_range(&kvs, &n, &more, body, size, NS, NSLEN))
    lmq_meta_kv_free(kvs, n);
  int ok;
  (void)etcd_decode_txn(&ok, body, size);
  (void)etcd_decode_lease_grant(&a, &b, body, size);
  (void)etcd_decode_keepalive(&a, body, size);
  char *tok;
  if (!etcd_decode_auth(&tok, body, size)) {
    FUZZ_CHECK(tok && *tok && !strpbrk(tok, "\r\n"));
    free(tok);
  }
  etcd_watch_msg wm;
  if (!etcd_decode_watch(&wm, body, size, NS, NSLEN)) {
    FUZZ_CHECK(strlen(wm.reason) < sizeof wm.reason);
    etcd_watch_msg_free(&wm);
  }
  void *raw;
  size_t rawlen;
  if (!lmq__b64_decode(&raw, &rawlen, body, size)) {
    /* Decoding then encoding gives the text back (canonical padding). */
    char *enc = malloc(lmq__b64_len(rawlen) + 1);
    FUZZ_CHECK(enc);
    lmq__b64_encode(enc, raw, rawlen);
    FUZZ_CHECK(strlen(enc) == size && !memcmp(enc, body, size));
    free(enc);
    free(raw);
  }
  free(body);
  return 0;
}
