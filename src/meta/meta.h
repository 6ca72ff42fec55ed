/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * meta.h - the metadata store: one small key/value interface with two
 * drivers, "embedded" (a sub-database of the env's LMDB) and "etcd" (etcd v3
 * over its JSON gateway). The engine keeps channel metadata, consumer-group
 * cursors and the ID high-water mark here.
 *
 * Keys and values are arbitrary bytes (zero bytes allowed). Every key has a
 * version: 0 when absent, 1 after its first put, +1 per put (etcd's
 * "version"); a delete resets it to 0.
 *
 * Errors are LMQ_E* codes from lmq.h; lmq__set_error() carries the detail.
 * Threading: a lmq_meta is safe to use from several threads.
 * This header must not include engine headers (meta sits below the engine).
 */
#ifndef LMQ_META_H
#define LMQ_META_H

#include <stddef.h>
#include <stdint.h>

typedef struct lmq_meta lmq_meta;

typedef struct lmq_meta_kv {
  void *key;
  size_t klen;
  void *val;
  size_t vlen;
  uint64_t version;
} lmq_meta_kv;

/* One operation inside a transaction. LMQ_META_DEL_PREFIX deletes every key
 * starting with key; only lmq_meta_txn_in accepts it. */
enum lmq_meta_op_type {
  LMQ_META_PUT = 1,
  LMQ_META_DEL = 2,
  LMQ_META_DEL_PREFIX = 3
};
typedef struct lmq_meta_op {
  int type;
  const void *key;
  size_t klen;
  const void *val; /* PUT only */
  size_t vlen;
} lmq_meta_op;

/* One comparison guarding a transaction. */
enum lmq_meta_cmp_type {
  LMQ_META_CMP_VERSION = 1, /* key's version == version (0 = absent) */
  LMQ_META_CMP_VALUE = 2    /* key exists and its value == val */
};
typedef struct lmq_meta_cmp {
  int type;
  const void *key;
  size_t klen;
  uint64_t version;
  const void *val;
  size_t vlen;
} lmq_meta_cmp;

/* A watch event (see lmq_meta_watch). */
typedef struct lmq_meta_event {
  int type; /* LMQ_META_PUT or LMQ_META_DEL */
  const void *key;
  size_t klen;
  const void *val;
  size_t vlen;
} lmq_meta_event;
typedef void (*lmq_meta_watch_fn)(void *arg, const lmq_meta_event *ev);

/* Watch events held back until the caller's LMDB commit (lmq_meta_txn_in). */
typedef struct lmq_meta_pending lmq_meta_pending;

/*
 * The driver interface. Callers normally use the lmq_meta_* wrappers below;
 * leases and watches are called through m->ops directly. Every function is
 * safe to call from several threads at once on one store. Common errors:
 * LMQ_EINVAL (bad arguments), LMQ_ENOMEM, and for the etcd driver
 * LMQ_EUNAVAIL (no endpoint answered within the URI's timeout_ms: nothing
 * was applied), LMQ_EUNKNOWN (a write was sent but never answered: it may
 * or may not have been applied; re-read and decide), LMQ_EAUTH, LMQ_EPROTO.
 *
 * get:      *val is malloc'ed (non-NULL even for an empty value; caller
 *           frees); LMQ_ENOTFOUND with *version = 0 when absent.
 * txn:      see lmq_meta_txn. etcd: at most max_txn_ops ops (LMQ_ELIMIT),
 *           about 1.5 MiB in total (LMQ_ETOOBIG), no key twice (LMQ_EINVAL).
 * range:    see lmq_meta_range.
 * lease_grant:     a lease of ttl_s > 0 seconds; *lease_id receives its ID.
 * lease_keepalive: renew once; LMQ_ENOTFOUND if it expired or never existed.
 * lease_revoke:    delete it and every key attached; LMQ_ENOTFOUND if unknown.
 * put_lease:       put attached to a lease (0 = none); LMQ_ENOTFOUND if the
 *                  lease is unknown. The embedded driver has no leases: the
 *                  four lease calls return LMQ_ENOTSUP there.
 * watch:    call fn(arg, ev) for every put/delete of a key starting with
 *           prefix committed after watch returns, in commit order; *handle
 *           identifies the watch. ev and the bytes it points to are valid
 *           only during the call. embedded: fn runs on the committing thread,
 *           inside the write call; etcd: on the watch's own thread, which
 *           reconnects by itself after failures. fn must not call unwatch or
 *           close on the same store (embedded: nor write to it).
 * unwatch:  stop a watch; after it returns fn is not called again. Unknown
 *           handles are ignored.
 * close:    end all watches and free the store (use lmq_meta_close).
 *
 * Optional, NULL in drivers that keep their data elsewhere (etcd): joining
 * the caller's LMDB write transaction, so that a change of the engine and
 * its metadata commit (and sync) once. See lmq_meta_txn_in.
 * joins:    1 if txn_in can join write transactions of mdb_env, else 0.
 * txn_in:   apply ops inside mdb_txn; *pending receives what watchers are
 *           told once the caller's commit has succeeded.
 * txn_done: tell the watchers (tell = 1) or not (0), and free pending.
 */
typedef struct lmq_meta_ops {
  const char *name;
  int (*get)(lmq_meta *m, void **val, size_t *vlen, uint64_t *version,
             const void *key, size_t klen);
  int (*txn)(lmq_meta *m, const lmq_meta_cmp *cmps, size_t ncmp,
             const lmq_meta_op *ops, size_t nops);
  int (*range)(lmq_meta *m, lmq_meta_kv **out, size_t *n, const void *prefix,
               size_t plen, const void *start_after, size_t salen,
               size_t limit);
  int (*lease_grant)(lmq_meta *m, int64_t *lease_id, int ttl_s);
  int (*lease_keepalive)(lmq_meta *m, int64_t lease_id);
  int (*lease_revoke)(lmq_meta *m, int64_t lease_id);
  int (*put_lease)(lmq_meta *m, const void *key, size_t klen, const void *val,
                   size_t vlen, int64_t lease_id);
  int (*watch)(lmq_meta *m, void **handle, const void *prefix, size_t plen,
               lmq_meta_watch_fn fn, void *arg);
  void (*unwatch)(lmq_meta *m, void *handle);
  void (*close)(lmq_meta *m);
  int (*joins)(lmq_meta *m, void *mdb_env);
  int (*txn_in)(lmq_meta *m, void *mdb_txn, const lmq_meta_op *ops, size_t nops,
                lmq_meta_pending **pending);
  void (*txn_done)(lmq_meta *m, lmq_meta_pending *pending, int tell);
} lmq_meta_ops;

struct lmq_meta {
  const lmq_meta_ops *ops;
};

/*
 * Open the store named by uri: NULL or "" selects the embedded driver over
 * the LMDB environment env_or_null (an MDB_env *, owned by the caller and
 * outliving the store). "etcd://h:p[,h:p]/prefix" or "etcds://..." selects etcd
 * (URI syntax and options: docs/meta.md); every key then lives under the
 * prefix. Opening etcd contacts it (authenticates, reads one key).
 * Errors: LMQ_EINVAL (malformed URI), LMQ_EUNAVAIL (no endpoint answers),
 * LMQ_EAUTH, LMQ_ENOMEM. Close with lmq_meta_close (accepts NULL), after
 * every other call on the store has returned.
 */
int lmq_meta_open(lmq_meta **out, const char *uri, void *env_or_null);
void lmq_meta_close(lmq_meta *m);

/*
 * Convenience wrappers. get: *val is malloc'ed (caller frees), LMQ_ENOTFOUND
 * when absent; version may be NULL. put/del are single-op transactions.
 * cas: put val only if the key's version equals version (0 = create if
 * absent); LMQ_ECONFLICT otherwise.
 */
int lmq_meta_get(lmq_meta *m, void **val, size_t *vlen, uint64_t *version,
                 const void *key, size_t klen);
int lmq_meta_put(lmq_meta *m, const void *key, size_t klen, const void *val,
                 size_t vlen);
int lmq_meta_del(lmq_meta *m, const void *key, size_t klen);
int lmq_meta_cas(lmq_meta *m, const void *key, size_t klen, uint64_t version,
                 const void *val, size_t vlen);
/* All ops applied atomically if every cmp holds, else LMQ_ECONFLICT. */
int lmq_meta_txn(lmq_meta *m, const lmq_meta_cmp *cmps, size_t ncmp,
                 const lmq_meta_op *ops, size_t nops);
/*
 * Keys starting with prefix, in byte order, after start_after (NULL = from the
 * start), at most limit (0 = no limit). *out is an array of *n entries freed
 * with lmq_meta_kv_free(*out, *n).
 */
int lmq_meta_range(lmq_meta *m, lmq_meta_kv **out, size_t *n,
                   const void *prefix, size_t plen, const void *start_after,
                   size_t salen, size_t limit);
void lmq_meta_kv_free(lmq_meta_kv *kvs, size_t n);

/* Delete every key with this prefix (one transaction per page of keys). */
int lmq_meta_del_prefix(lmq_meta *m, const void *prefix, size_t plen);

/*
 * One LMDB transaction for the caller's change and the store's (the
 * embedded driver on the caller's own LMDB env). lmq_meta_joins tells
 * whether m can join write transactions of mdb_env (an MDB_env *): 1 or 0.
 *
 * lmq_meta_txn_in applies ops (PUT, DEL, DEL_PREFIX) inside mdb_txn, a write
 * transaction (MDB_txn *) of that env, with the driver's own semantics: a
 * put's version is the key's previous one + 1, a delete resets it. Nothing
 * is committed or synced: the caller does both. Watchers are told nothing
 * yet: *pending (always set, NULL on failure) holds their events, and the
 * caller passes it to lmq_meta_txn_done once its commit (and, if it promises
 * durability, its sync) succeeded with tell = 1: the watchers are called
 * there, on the caller's thread, which must not hold the LMDB write
 * transaction; or after an abort or a failure with tell = 0: nobody is told
 * (as lmq_meta_txn tells nobody when its sync fails). Either frees it. The
 * ops' bytes may be freed once lmq_meta_txn_in returns.
 * On failure the caller must abort mdb_txn: some ops may have been applied.
 * Errors: LMQ_ENOTSUP (m cannot join it, nothing done), LMQ_EINVAL,
 * LMQ_ETOOBIG (key), LMQ_ENOMEM, LMQ_EMAPFULL, LMQ_EIO.
 */
int lmq_meta_joins(lmq_meta *m, void *mdb_env);
int lmq_meta_txn_in(lmq_meta *m, void *mdb_txn, const lmq_meta_op *ops,
                    size_t nops, lmq_meta_pending **pending);
void lmq_meta_txn_done(lmq_meta *m, lmq_meta_pending *pending, int tell);

/* The embedded driver's constructor (used by lmq_meta_open). */
int lmq__meta_embedded_open(lmq_meta **out, void *mdb_env);
/* The embedded driver over an LMDB environment of its own in dir (created
 * if missing): for users without an lmq env. *env receives the environment;
 * close both with lmq__meta_file_close. Errors: LMQ_EINVAL, LMQ_EIO,
 * LMQ_ENOMEM. */
int lmq__meta_file_open(lmq_meta **out, void **env, const char *dir);
void lmq__meta_file_close(lmq_meta *m, void *env);
/* The etcd driver's constructor (used by lmq_meta_open). */
int lmq__meta_etcd_open(lmq_meta **out, const char *uri);

#endif
