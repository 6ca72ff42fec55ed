/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * backend_module.h - backends that live in a loadable module (not linked
 * into liblmq): the entry point's name and type, and the loader.
 */
#ifndef LMQ_STREAM_BACKEND_MODULE_H
#define LMQ_STREAM_BACKEND_MODULE_H

#include "stream/backend.h"

/* Sets liblmq's per-thread error message; returns code. */
typedef int (*lmq_module_error_fn)(int code, const char *msg);

/* lmq_rocksdb.so exports this one symbol. */
#define LMQ_ROCKSDB_MODULE_ENTRY lmq_rocksdb_module_open
#define LMQ_ROCKSDB_MODULE_FILE "lmq_rocksdb.so"
typedef int (*lmq_rocksdb_module_fn)(lmq_backend **out, const char *dir,
                                     int sync, lmq_module_error_fn err);
int LMQ_ROCKSDB_MODULE_ENTRY(lmq_backend **out, const char *dir, int sync,
                             lmq_module_error_fn err);

/* Load lmq_rocksdb.so (once: from $LMQ_MODULE_DIR, else the installed
 * module directory) and open the RocksDB backend through it.
 * Errors: LMQ_ENOTSUP (module missing or broken; lmq_errmsg says why), and
 * those of the backend's open. */
int lmq__backend_rocksdb_load(lmq_backend **out, const char *dir, int sync);

#endif
