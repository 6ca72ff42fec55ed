/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* meta.c - driver selection and the convenience wrappers over lmq_meta_ops. */
#include "config.h"
#include "meta/meta.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

int lmq_meta_open(lmq_meta **out, const char *uri, void *env_or_null) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "lmq_meta_open: out is NULL");
  *out = NULL;
  if (!uri || !*uri) {
    if (!env_or_null)
      return lmq__error(LMQ_EINVAL, "embedded metadata store needs an LMDB env");
    return lmq__meta_embedded_open(out, env_or_null);
  }
  if (!strncmp(uri, "etcd://", 7) || !strncmp(uri, "etcds://", 8))
#ifdef LMQ_HAVE_ETCD
    return lmq__meta_etcd_open(out, uri);
#else
    return lmq__error(LMQ_ENOTSUP, "metadata URI '%.200s': this lmq was built "
                      "without etcd support (configure --with-etcd)", uri);
#endif
  return lmq__error(LMQ_EINVAL,
                    "metadata URI '%.200s': scheme must be etcd:// or etcds://",
                    uri);
}

void lmq_meta_close(lmq_meta *m) {
  if (m)
    m->ops->close(m);
}

int lmq_meta_get(lmq_meta *m, void **val, size_t *vlen, uint64_t *version,
                 const void *key, size_t klen) {
  if (!m || !val || !vlen || (!key && klen))
    return lmq__error(LMQ_EINVAL, "lmq_meta_get: NULL argument");
  uint64_t v;
  return m->ops->get(m, val, vlen, version ? version : &v, key, klen);
}

int lmq_meta_txn(lmq_meta *m, const lmq_meta_cmp *cmps, size_t ncmp,
                 const lmq_meta_op *ops, size_t nops) {
  if (!m || (ncmp && !cmps) || (nops && !ops))
    return lmq__error(LMQ_EINVAL, "lmq_meta_txn: NULL argument");
  for (size_t i = 0; i < nops; i++) {
    if (ops[i].klen == 0 || !ops[i].key)
      return lmq__error(LMQ_EINVAL, "lmq_meta_txn: empty key in op %zu", i);
    if (ops[i].type != LMQ_META_PUT && ops[i].type != LMQ_META_DEL)
      return lmq__error(LMQ_EINVAL, "lmq_meta_txn: op %zu: type %d is not a put "
                        "or a delete", i, ops[i].type);
  }
  return m->ops->txn(m, cmps, ncmp, ops, nops);
}

int lmq_meta_put(lmq_meta *m, const void *key, size_t klen, const void *val,
                 size_t vlen) {
  lmq_meta_op op = {LMQ_META_PUT, key, klen, val, vlen};
  return lmq_meta_txn(m, NULL, 0, &op, 1);
}

int lmq_meta_del(lmq_meta *m, const void *key, size_t klen) {
  lmq_meta_op op = {LMQ_META_DEL, key, klen, NULL, 0};
  return lmq_meta_txn(m, NULL, 0, &op, 1);
}

int lmq_meta_cas(lmq_meta *m, const void *key, size_t klen, uint64_t version,
                 const void *val, size_t vlen) {
  lmq_meta_cmp cmp = {LMQ_META_CMP_VERSION, key, klen, version, NULL, 0};
  lmq_meta_op op = {LMQ_META_PUT, key, klen, val, vlen};
  return lmq_meta_txn(m, &cmp, 1, &op, 1);
}

int lmq_meta_range(lmq_meta *m, lmq_meta_kv **out, size_t *n,
                   const void *prefix, size_t plen, const void *start_after,
                   size_t salen, size_t limit) {
  if (!m || !out || !n || (!prefix && plen))
    return lmq__error(LMQ_EINVAL, "lmq_meta_range: NULL argument");
  *out = NULL;
  *n = 0;
  return m->ops->range(m, out, n, prefix, plen, start_after, salen, limit);
}

void lmq_meta_kv_free(lmq_meta_kv *kvs, size_t n) {
  if (!kvs)
    return;
  for (size_t i = 0; i < n; i++) {
    free(kvs[i].key);
    free(kvs[i].val);
  }
  free(kvs);
}

/* Keys deleted per transaction: etcd refuses more than --max-txn-ops (128 by
 * default) operations in one txn. */
#define DEL_PREFIX_PAGE 128

int lmq_meta_del_prefix(lmq_meta *m, const void *prefix, size_t plen) {
  for (;;) {
    lmq_meta_kv *kvs;
    size_t n;
    int rc = lmq_meta_range(m, &kvs, &n, prefix, plen, NULL, 0, DEL_PREFIX_PAGE);
    if (rc)
      return rc;
    if (n == 0) {
      free(kvs);
      return 0;
    }
    lmq_meta_op *ops = calloc(n, sizeof *ops);
    if (!ops) {
      lmq_meta_kv_free(kvs, n);
      return lmq__error(LMQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
      ops[i] = (lmq_meta_op){LMQ_META_DEL, kvs[i].key, kvs[i].klen, NULL, 0};
    rc = lmq_meta_txn(m, NULL, 0, ops, n);
    free(ops);
    lmq_meta_kv_free(kvs, n);
    if (rc)
      return rc;
  }
}

int lmq_meta_joins(lmq_meta *m, void *mdb_env) {
  return m && mdb_env && m->ops->joins && m->ops->joins(m, mdb_env);
}

int lmq_meta_txn_in(lmq_meta *m, void *mdb_txn, const lmq_meta_op *ops,
                    size_t nops, lmq_meta_pending **pending) {
  if (!pending)
    return lmq__error(LMQ_EINVAL, "lmq_meta_txn_in: pending is NULL");
  *pending = NULL;
  if (!m || !mdb_txn || (nops && !ops))
    return lmq__error(LMQ_EINVAL, "lmq_meta_txn_in: NULL argument");
  if (!m->ops->txn_in)
    return lmq__error(LMQ_ENOTSUP, "the %s metadata store cannot join an LMDB "
                      "transaction", m->ops->name);
  for (size_t i = 0; i < nops; i++)
    if (!ops[i].key && ops[i].klen)
      return lmq__error(LMQ_EINVAL, "lmq_meta_txn_in: NULL key in op %zu", i);
  return m->ops->txn_in(m, mdb_txn, ops, nops, pending);
}

void lmq_meta_txn_done(lmq_meta *m, lmq_meta_pending *pending, int tell) {
  if (m && pending && m->ops->txn_done)
    m->ops->txn_done(m, pending, tell);
}
