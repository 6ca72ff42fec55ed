/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * backend_module.c - loading backends kept out of liblmq.so (today the
 * RocksDB comparison backend, lmq_rocksdb.so). The module is loaded once,
 * on first use, and never unloaded.
 */
#include "config.h"
#include "stream/backend_module.h"
#include "common/error.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef LMQ_MODULE_DIR
#define LMQ_MODULE_DIR "/usr/local/lib/lmq"
#endif

static pthread_once_t once = PTHREAD_ONCE_INIT;
static lmq_rocksdb_module_fn entry;
static char why[PATH_MAX + 256];

static int host_error(int code, const char *msg) {
  return lmq__error(code, "%s", msg);
}

static void load(void) {
  const char *dir = getenv("LMQ_MODULE_DIR");
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : LMQ_MODULE_DIR,
           LMQ_ROCKSDB_MODULE_FILE);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(why, sizeof why, "cannot load %s: %s", path, dlerror());
    return;
  }
  /* POSIX's own idiom for storing dlsym's result in a function pointer. */
  *(void **)&entry = dlsym(h, "lmq_rocksdb_module_open");
  if (!entry)
    snprintf(why, sizeof why, "%s has no entry point: %s", path, dlerror());
}

int lmq__backend_rocksdb_load(lmq_backend **out, const char *dir, int sync) {
  pthread_once(&once, load);
  if (!entry)
    return lmq__error(LMQ_ENOTSUP, "backend rocksdb: %s (built with "
                      "--with-rocksdb? set LMQ_MODULE_DIR to its directory)", why);
  return entry(out, dir, sync, host_error);
}
