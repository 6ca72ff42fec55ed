/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * embedded.c - the embedded metadata driver: a named sub-database ("#meta")
 * of the env's LMDB. Values are stored as an 8-byte little-endian version
 * followed by the user's bytes, so compare-and-swap on versions behaves like
 * etcd's. Watches are delivered in-process after each committed transaction;
 * leases are not supported (one process owns the store, so liveness keys have
 * no meaning here): those calls return LMQ_ENOTSUP.
 *
 * The store lives in the env's own LMDB, so the engine can write its records
 * inside the engine's write transaction (emb_txn_in) instead of a second
 * transaction of the store's: a channel create or destroy then commits and
 * syncs once.
 */
#include "config.h"
#include "meta/meta.h"
#include "common/error.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct watcher {
  struct watcher *next;
  void *prefix;
  size_t plen;
  lmq_meta_watch_fn fn;
  void *arg;
} watcher;

typedef struct emb {
  lmq_meta base;
  MDB_env *env;
  MDB_dbi dbi;
  pthread_mutex_t wlock; /* guards the watcher list */
  watcher *watchers;
} emb;

static int mdb_code(int rc, const char *what) {
  switch (rc) {
  case MDB_MAP_FULL:
    return lmq__error(LMQ_EMAPFULL, "metadata %s: %s", what, mdb_strerror(rc));
  case ENOMEM:
    return lmq__error(LMQ_ENOMEM, "metadata %s: %s", what, mdb_strerror(rc));
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
    return lmq__error(LMQ_ECORRUPT, "metadata %s: %s", what, mdb_strerror(rc));
  case ENOSPC:
    return lmq__error(LMQ_ENOSPC, "metadata %s: %s", what, mdb_strerror(rc));
  case EACCES:
    return lmq__error(LMQ_ENOTSUP, "metadata %s: the env is open read-only", what);
  case MDB_BAD_VALSIZE:
    return lmq__error(LMQ_ETOOBIG, "metadata %s: key too long for LMDB", what);
  default:
    return lmq__error(LMQ_EIO, "metadata %s: %s", what, mdb_strerror(rc));
  }
}

static uint64_t rd64(const void *p) {
  const unsigned char *b = p;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = (v << 8) | b[i];
  return v;
}

static void wr64(void *p, uint64_t v) {
  unsigned char *b = p;
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)(v >> (8 * i));
}

static int key_ok(size_t klen, MDB_env *env) {
  if (klen == 0)
    return lmq__error(LMQ_EINVAL, "metadata key is empty");
  if (klen > (size_t)mdb_env_get_maxkeysize(env))
    return lmq__error(LMQ_ETOOBIG, "metadata key of %zu bytes exceeds %d", klen,
                      mdb_env_get_maxkeysize(env));
  return 0;
}

static int emb_get(lmq_meta *m, void **val, size_t *vlen, uint64_t *version,
                   const void *key, size_t klen) {
  emb *e = (emb *)m;
  int rc = key_ok(klen, e->env);
  if (rc)
    return rc;
  if (e->dbi == 0) { /* read-only view of a store never written */
    *version = 0;
    return lmq__error(LMQ_ENOTFOUND, "metadata key not found");
  }
  MDB_txn *txn;
  if ((rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn)))
    return mdb_code(rc, "read");
  MDB_val k = {klen, (void *)key}, v;
  rc = mdb_get(txn, e->dbi, &k, &v);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    *version = 0;
    return lmq__error(LMQ_ENOTFOUND, "metadata key not found");
  }
  if (rc || v.mv_size < 8) {
    mdb_txn_abort(txn);
    return rc ? mdb_code(rc, "get")
              : lmq__error(LMQ_ECORRUPT, "metadata value shorter than header");
  }
  *version = rd64(v.mv_data);
  *vlen = v.mv_size - 8;
  *val = malloc(*vlen ? *vlen : 1);
  if (!*val) {
    mdb_txn_abort(txn);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  memcpy(*val, (char *)v.mv_data + 8, *vlen);
  mdb_txn_abort(txn);
  return 0;
}

static void notify(emb *e, const lmq_meta_op *ops, size_t nops) {
  pthread_mutex_lock(&e->wlock);
  for (watcher *w = e->watchers; w; w = w->next)
    for (size_t i = 0; i < nops; i++)
      if (ops[i].klen >= w->plen && !memcmp(ops[i].key, w->prefix, w->plen)) {
        lmq_meta_event ev = {ops[i].type, ops[i].key, ops[i].klen, ops[i].val,
                             ops[i].vlen};
        w->fn(w->arg, &ev);
      }
  pthread_mutex_unlock(&e->wlock);
}

/* The watch events of a transaction the caller commits (emb_txn_in): copies
 * of the keys and values, as the caller's buffers and LMDB's pages may be
 * gone by the time it has committed. */
struct lmq_meta_pending {
  lmq_meta_event *ev; /* key and val share one malloc'ed block per event */
  size_t n, cap;
};

static void pending_free(lmq_meta_pending *p) {
  if (!p)
    return;
  for (size_t i = 0; i < p->n; i++)
    free((void *)p->ev[i].key);
  free(p->ev);
  free(p);
}

static int pending_add(lmq_meta_pending *p, int type, const void *key,
                       size_t klen, const void *val, size_t vlen) {
  if (p->n == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 4;
    lmq_meta_event *ne = realloc(p->ev, ncap * sizeof *ne);
    if (!ne)
      return lmq__error(LMQ_ENOMEM, "out of memory");
    p->ev = ne;
    p->cap = ncap;
  }
  char *b = malloc(klen + vlen + 1);
  if (!b)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  memcpy(b, key, klen);
  if (vlen)
    memcpy(b + klen, val, vlen);
  p->ev[p->n++] = (lmq_meta_event){type, b, klen,
                                   type == LMQ_META_PUT ? b + klen : NULL, vlen};
  return 0;
}

/* Delete every key starting with prefix, recording each in p (if not NULL).
 * The cursor is placed again after each delete rather than trusting where
 * a delete leaves it. */
static int del_prefix(emb *e, MDB_txn *txn, const void *prefix, size_t plen,
                      lmq_meta_pending *p) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, e->dbi, &cur);
  if (rc)
    return mdb_code(rc, "delete prefix");
  for (;;) {
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND || (!rc && (k.mv_size < plen ||
                                      memcmp(k.mv_data, prefix, plen)))) {
      rc = 0;
      break;
    }
    if (rc) {
      rc = mdb_code(rc, "delete prefix");
      break;
    }
    if (p && (rc = pending_add(p, LMQ_META_DEL, k.mv_data, k.mv_size, NULL, 0)))
      break;
    if ((rc = mdb_cursor_del(cur, 0))) {
      rc = mdb_code(rc, "delete prefix");
      break;
    }
  }
  mdb_cursor_close(cur);
  return rc;
}

/* Apply ops inside txn (not committed); each change is recorded in p when
 * p is not NULL. Returns 0 or an LMQ_E code; the caller aborts on failure. */
static int apply_ops(emb *e, MDB_txn *txn, const lmq_meta_op *ops, size_t nops,
                     lmq_meta_pending *p) {
  int rc = 0;
  for (size_t i = 0; i < nops && !rc; i++) {
    MDB_val k = {ops[i].klen, (void *)ops[i].key}, v;
    if (ops[i].type == LMQ_META_DEL) {
      rc = mdb_del(txn, e->dbi, &k, NULL);
      if (rc == MDB_NOTFOUND)
        rc = 0;
      if (rc)
        rc = mdb_code(rc, "write");
    } else if (ops[i].type == LMQ_META_PUT) {
      uint64_t ver = 0;
      if ((rc = mdb_get(txn, e->dbi, &k, &v)) == 0 && v.mv_size >= 8)
        ver = rd64(v.mv_data);
      else if (rc && rc != MDB_NOTFOUND)
        return mdb_code(rc, "write");
      MDB_val nv = {ops[i].vlen + 8, NULL};
      if ((rc = mdb_put(txn, e->dbi, &k, &nv, MDB_RESERVE)))
        return mdb_code(rc, "write");
      wr64(nv.mv_data, ver + 1);
      if (ops[i].vlen)
        memcpy((char *)nv.mv_data + 8, ops[i].val, ops[i].vlen);
    } else if (ops[i].type == LMQ_META_DEL_PREFIX && p) {
      rc = del_prefix(e, txn, ops[i].key, ops[i].klen, p);
      continue; /* it recorded its own events */
    } else {
      return lmq__error(LMQ_EINVAL, "metadata op %zu: unknown type %d", i,
                        ops[i].type);
    }
    if (!rc && p)
      rc = pending_add(p, ops[i].type, ops[i].key, ops[i].klen, ops[i].val,
                       ops[i].vlen);
  }
  return rc;
}

static int emb_txn(lmq_meta *m, const lmq_meta_cmp *cmps, size_t ncmp,
                   const lmq_meta_op *ops, size_t nops) {
  emb *e = (emb *)m;
  int rc;
  for (size_t i = 0; i < nops; i++)
    if ((rc = key_ok(ops[i].klen, e->env)))
      return rc;
  MDB_txn *txn;
  if ((rc = mdb_txn_begin(e->env, NULL, 0, &txn)))
    return mdb_code(rc, "write");
  for (size_t i = 0; i < ncmp; i++) {
    MDB_val k = {cmps[i].klen, (void *)cmps[i].key}, v;
    rc = mdb_get(txn, e->dbi, &k, &v);
    if (rc && rc != MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      return mdb_code(rc, "compare");
    }
    int found = rc == 0 && v.mv_size >= 8;
    int ok;
    if (cmps[i].type == LMQ_META_CMP_VERSION)
      ok = (found ? rd64(v.mv_data) : 0) == cmps[i].version;
    else
      ok = found && v.mv_size - 8 == cmps[i].vlen &&
           (cmps[i].vlen == 0 ||
            !memcmp((char *)v.mv_data + 8, cmps[i].val, cmps[i].vlen));
    if (!ok) {
      mdb_txn_abort(txn);
      return lmq__error(LMQ_ECONFLICT, "metadata compare %zu failed", i);
    }
  }
  if ((rc = apply_ops(e, txn, ops, nops, NULL))) {
    mdb_txn_abort(txn);
    return rc;
  }
  if ((rc = mdb_txn_commit(txn)))
    return mdb_code(rc, "commit");
  /* The env runs with MDB_NOMETASYNC: the commit synced the data pages but
   * not the meta page that points at them. A metadata write is durable when
   * it returns (cursors, groups), so sync the meta page too. If this fails
   * the change is visible but may not survive a power loss. */
  if ((rc = mdb_env_sync(e->env, 1)))
    return mdb_code(rc, "sync");
  if (e->watchers)
    notify(e, ops, nops);
  return 0;
}

static int emb_joins(lmq_meta *m, void *mdb_env) {
  emb *e = (emb *)m;
  return e->dbi != 0 && mdb_env == (void *)e->env;
}

/* The ops inside the caller's write transaction: the same writes as
 * emb_txn, but the caller commits and syncs, and tells the watchers through
 * emb_txn_done once that succeeded. */
static int emb_txn_in(lmq_meta *m, void *mdb_txn, const lmq_meta_op *ops,
                      size_t nops, lmq_meta_pending **pending) {
  emb *e = (emb *)m;
  MDB_txn *txn = mdb_txn;
  int rc;
  if (!emb_joins(m, mdb_txn_env(txn)))
    return lmq__error(LMQ_ENOTSUP, "metadata: the transaction is not one of the "
                      "store's LMDB env");
  for (size_t i = 0; i < nops; i++)
    if ((rc = key_ok(ops[i].klen, e->env)))
      return rc;
  lmq_meta_pending *p = calloc(1, sizeof *p);
  if (!p)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  if ((rc = apply_ops(e, txn, ops, nops, p))) {
    pending_free(p);
    return rc;
  }
  *pending = p;
  return 0;
}

static void emb_txn_done(lmq_meta *m, lmq_meta_pending *p, int tell) {
  emb *e = (emb *)m;
  if (tell && p->n) {
    pthread_mutex_lock(&e->wlock);
    for (watcher *w = e->watchers; w; w = w->next)
      for (size_t i = 0; i < p->n; i++)
        if (p->ev[i].klen >= w->plen && !memcmp(p->ev[i].key, w->prefix, w->plen))
          w->fn(w->arg, &p->ev[i]);
    pthread_mutex_unlock(&e->wlock);
  }
  pending_free(p);
}

static int emb_range(lmq_meta *m, lmq_meta_kv **out, size_t *n,
                     const void *prefix, size_t plen, const void *start_after,
                     size_t salen, size_t limit) {
  emb *e = (emb *)m;
  MDB_txn *txn;
  MDB_cursor *cur;
  int rc;
  if (e->dbi == 0) { /* read-only view of a store never written */
    *out = NULL;
    *n = 0;
    return 0;
  }
  if ((rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &txn)))
    return mdb_code(rc, "read");
  if ((rc = mdb_cursor_open(txn, e->dbi, &cur))) {
    mdb_txn_abort(txn);
    return mdb_code(rc, "cursor");
  }
  MDB_val k, v;
  int skip_equal = 0;
  /* Start at whichever is later: the prefix or just after start_after (a
   * start_after that sorts before the prefix must not end the scan early). */
  size_t cmn = salen < plen ? salen : plen;
  int sa_cmp = start_after && salen ? memcmp(start_after, prefix, cmn) : -1;
  if (sa_cmp == 0)
    sa_cmp = salen < plen ? -1 : salen > plen;
  if (start_after && salen && sa_cmp >= 0) {
    k.mv_size = salen;
    k.mv_data = (void *)start_after;
    skip_equal = 1;
  } else {
    k.mv_size = plen;
    k.mv_data = (void *)prefix;
  }
  rc = k.mv_size ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                 : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  size_t cap = 0, cnt = 0;
  lmq_meta_kv *arr = NULL;
  while (rc == 0) {
    if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
      break;
    if (skip_equal && k.mv_size == salen && !memcmp(k.mv_data, start_after, salen)) {
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      continue;
    }
    if (limit && cnt == limit)
      break;
    if (cnt == cap) {
      cap = cap ? cap * 2 : 16;
      lmq_meta_kv *na = realloc(arr, cap * sizeof *na);
      if (!na)
        goto oom;
      arr = na;
    }
    lmq_meta_kv *kv = &arr[cnt];
    size_t vl = v.mv_size >= 8 ? v.mv_size - 8 : 0;
    kv->key = malloc(k.mv_size);
    kv->val = malloc(vl ? vl : 1);
    if (!kv->key || !kv->val) {
      free(kv->key);
      free(kv->val);
      goto oom;
    }
    memcpy(kv->key, k.mv_data, k.mv_size);
    kv->klen = k.mv_size;
    if (vl)
      memcpy(kv->val, (char *)v.mv_data + 8, vl);
    kv->vlen = vl;
    kv->version = v.mv_size >= 8 ? rd64(v.mv_data) : 0;
    cnt++;
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  if (rc && rc != MDB_NOTFOUND) {
    lmq_meta_kv_free(arr, cnt);
    return mdb_code(rc, "range");
  }
  *out = arr;
  *n = cnt;
  return 0;
oom:
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  lmq_meta_kv_free(arr, cnt);
  return lmq__error(LMQ_ENOMEM, "out of memory");
}

static int emb_lease_grant(lmq_meta *m, int64_t *id, int ttl) {
  return lmq__error(LMQ_ENOTSUP, "leases need the etcd metadata driver");
}
static int emb_lease_id(lmq_meta *m, int64_t id) {
  return lmq__error(LMQ_ENOTSUP, "leases need the etcd metadata driver");
}
static int emb_put_lease(lmq_meta *m, const void *key, size_t klen,
                         const void *val, size_t vlen, int64_t lease) {
  return lmq__error(LMQ_ENOTSUP, "leases need the etcd metadata driver");
}

static int emb_watch(lmq_meta *m, void **handle, const void *prefix,
                     size_t plen, lmq_meta_watch_fn fn, void *arg) {
  emb *e = (emb *)m;
  if (!handle || !fn)
    return lmq__error(LMQ_EINVAL, "watch: NULL argument");
  watcher *w = calloc(1, sizeof *w);
  if (!w || !(w->prefix = malloc(plen ? plen : 1))) {
    free(w);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  if (plen)
    memcpy(w->prefix, prefix, plen);
  w->plen = plen;
  w->fn = fn;
  w->arg = arg;
  pthread_mutex_lock(&e->wlock);
  w->next = e->watchers;
  e->watchers = w;
  pthread_mutex_unlock(&e->wlock);
  *handle = w;
  return 0;
}

static void emb_unwatch(lmq_meta *m, void *handle) {
  emb *e = (emb *)m;
  pthread_mutex_lock(&e->wlock);
  for (watcher **pp = &e->watchers; *pp; pp = &(*pp)->next)
    if (*pp == handle) {
      watcher *w = *pp;
      *pp = w->next;
      free(w->prefix);
      free(w);
      break;
    }
  pthread_mutex_unlock(&e->wlock);
}

static void emb_close(lmq_meta *m) {
  emb *e = (emb *)m;
  while (e->watchers)
    emb_unwatch(m, e->watchers);
  pthread_mutex_destroy(&e->wlock);
  free(e);
}

static const lmq_meta_ops emb_ops = {
    "embedded",   emb_get,       emb_txn,       emb_range,  emb_lease_grant,
    emb_lease_id, emb_lease_id,  emb_put_lease, emb_watch,  emb_unwatch,
    emb_close,    emb_joins,     emb_txn_in,    emb_txn_done};

int lmq__meta_embedded_open(lmq_meta **out, void *mdb_env) {
  MDB_env *env = mdb_env;
  emb *e = calloc(1, sizeof *e);
  if (!e)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  MDB_txn *txn;
  /* On a read-only LMDB env, open what is there; an env whose store was
   * never written gets an empty "#meta" view (dbi 0 marks it: reads find
   * nothing, writes fail as the env is read-only). */
  unsigned fl = 0;
  mdb_env_get_flags(env, &fl);
  unsigned ro = fl & MDB_RDONLY;
  int rc = mdb_txn_begin(env, NULL, ro ? MDB_RDONLY : 0, &txn);
  if (!rc) {
    rc = mdb_dbi_open(txn, "#meta", ro ? 0 : MDB_CREATE, &e->dbi);
    if (rc == MDB_NOTFOUND && ro) {
      e->dbi = 0;
      rc = 0;
    }
    if (rc)
      mdb_txn_abort(txn);
    else
      rc = mdb_txn_commit(txn);
  }
  if (rc) {
    free(e);
    return mdb_code(rc, "open");
  }
  e->base.ops = &emb_ops;
  e->env = env;
  pthread_mutex_init(&e->wlock, NULL);
  *out = &e->base;
  return 0;
}
