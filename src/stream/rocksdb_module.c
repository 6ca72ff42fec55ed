/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * rocksdb_module.c - the entry point of the loadable module lmq_rocksdb.so,
 * which holds the RocksDB backend (backend_rocksdb.c over rocksmq.c) so that
 * liblmq.so itself never links librocksdb: a program that does not ask for
 * backend "rocksdb" never maps it. liblmq loads the module on first use
 * (backend_module.c) and passes its error setter, so the module's detailed
 * messages reach the caller's lmq_errmsg().
 */
#include "config.h"
#include "stream/backend.h"
#include "stream/backend_module.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

static lmq_module_error_fn host_error;

/* The module's lmq__error: format here, store in liblmq's per-thread
 * message through the host's setter. */
int lmq__error(int code, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return host_error ? host_error(code, buf) : code;
}

__attribute__((visibility("default"))) int
LMQ_ROCKSDB_MODULE_ENTRY(lmq_backend **out, const char *dir, int sync,
                         lmq_module_error_fn err) {
  host_error = err;
  return lmq__backend_rocksdb_open(out, dir, sync);
}
