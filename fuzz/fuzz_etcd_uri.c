/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the metadata URI parser (etcd[s]://host[:port],...[/path]
 * [?options]). Properties: no crash or leak; a parsed URI satisfies the
 * documented invariants (1..16 endpoints, namespace ends in '/', both or
 * neither of user/password).
 */
#include "config.h"
#include "fuzz.h"
#include "meta/etcd_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  etcd_uri u;
  if (!etcd_uri_parse(&u, s)) {
    FUZZ_CHECK(u.nep >= 1 && u.nep <= ETCD_MAX_ENDPOINTS);
    for (size_t i = 0; i < u.nep; i++)
      FUZZ_CHECK(u.eps[i] && *u.eps[i]);
    FUZZ_CHECK(u.ns && u.nslen >= 1 && u.ns[u.nslen - 1] == '/');
    FUZZ_CHECK(!u.user == !u.password);
    FUZZ_CHECK(u.timeout_ms > 0 && u.connect_timeout_ms > 0);
    etcd_uri_free(&u);
  }
  free(s);
  return 0;
}
