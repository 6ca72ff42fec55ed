/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * metauri.c - which metadata store a data directory belongs to.
 *
 * Group cursors and channel records live in the metadata store, so an
 * etcd-backed directory opened with the embedded store would silently get
 * a second, empty set of groups (a "shadow"). A read-write open with an
 * etcd URI records it (scheme, endpoints and prefix; never the query, which
 * may hold credentials) in "#sys"; later opens use the record:
 *  - read-write without a URI fails with LMQ_EINVAL naming the store;
 *  - read-only without a URI uses the recorded one (add credentials or TLS
 *    options by passing the full URI).
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

#define SYS_META_URI "meta_uri"

/* The recorded URI (malloc'ed) or NULL: none, or not readable. */
static char *recorded(lmq_env *env) {
  MDB_txn *txn;
  if (mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn))
    return NULL;
  MDB_val k = {strlen(SYS_META_URI), SYS_META_URI}, v;
  char *s = NULL;
  if (mdb_get(txn, env->sysdbi, &k, &v) == 0 && v.mv_size > 0 && v.mv_size < 4096 &&
      (s = malloc(v.mv_size + 1))) {
    memcpy(s, v.mv_data, v.mv_size);
    s[v.mv_size] = '\0';
  }
  mdb_txn_abort(txn);
  return s;
}

char *lmq__meta_uri_recorded(lmq_env *env) { return recorded(env); }

int lmq__meta_uri_check(lmq_env *env, const char *uri) {
  if (uri && *uri)
    return 0;
  char *rec = recorded(env);
  if (!rec)
    return 0;
  int rc = lmq__error(LMQ_EINVAL, "%s keeps its consumer groups and channel "
                      "records in the metadata store %s: open it with that "
                      "meta_uri (lmq --meta URI), or its groups are not seen",
                      env->dir, rec);
  free(rec);
  return rc;
}

int lmq__meta_uri_record(lmq_env *env, const char *uri) {
  if (!uri || !*uri)
    return 0;
  size_t n = strcspn(uri, "?#");
  char *rec = recorded(env);
  int same = rec && strlen(rec) == n && !memcmp(rec, uri, n);
  free(rec);
  if (same)
    return 0;
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (!rc) {
    MDB_val k = {strlen(SYS_META_URI), SYS_META_URI}, v = {n, (void *)uri};
    if ((rc = mdb_put(txn, env->sysdbi, &k, &v, 0)))
      mdb_txn_abort(txn);
    else
      rc = mdb_txn_commit(txn);
  }
  return rc ? lmq__mdb_code(rc, "record the metadata store") : 0;
}
