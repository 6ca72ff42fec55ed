/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* sysdb.c - small helpers for the "#sys" records (see docs/engine.md). */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int lmq__sys_get(MDB_txn *txn, MDB_dbi dbi, const char *key,
                        uint64_t *v, int n) {
  MDB_val k = {strlen(key), (void *)key}, d;
  int rc = mdb_get(txn, dbi, &k, &d);
  if (rc)
    return rc;
  if (d.mv_size < (size_t)n * 8)
    return MDB_CORRUPTED;
  for (int i = 0; i < n; i++)
    v[i] = lmq__get64((unsigned char *)d.mv_data + 8 * i);
  return 0;
}

int lmq__sys_put(MDB_txn *txn, MDB_dbi dbi, const char *key,
                        const uint64_t *v, int n) {
  unsigned char buf[64];
  for (int i = 0; i < n; i++)
    lmq__put64(buf + 8 * i, v[i]);
  MDB_val k = {strlen(key), (void *)key}, d = {(size_t)n * 8, buf};
  return mdb_put(txn, dbi, &k, &d, 0);
}



int lmq__sys_touch(lmq_env *env) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (rc)
    return rc;
  uint64_t v = 0;
  lmq__sys_get(txn, env->sysdbi, "tick", &v, 1);
  v++;
  if ((rc = lmq__sys_put(txn, env->sysdbi, "tick", &v, 1))) {
    mdb_txn_abort(txn);
    return rc;
  }
  return mdb_txn_commit(txn);
}
