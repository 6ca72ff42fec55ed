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

/* One operation inside a transaction. */
enum lmq_meta_op_type { LMQ_META_PUT = 1, LMQ_META_DEL = 2 };
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
} lmq_meta_ops;

struct lmq_meta {
  const lmq_meta_ops *ops;
};

/*
 * Open the store named by uri: NULL or "" selects the embedded driver over
 * the LMDB environment env_or_null (an MDB_env *, owned by the caller and
 * outliving the store). "etcd://h:p[,h:p]/prefix" or "etcds://..." selects etcd.
 * Errors: LMQ_EINVAL (malformed URI), LMQ_EUNAVAIL (no endpoint answers),
 * LMQ_EAUTH, LMQ_ENOMEM.
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

/* The embedded driver's constructor (used by lmq_meta_open). */
int lmq__meta_embedded_open(lmq_meta **out, void *mdb_env);
/* The etcd driver's constructor (used by lmq_meta_open). */
int lmq__meta_etcd_open(lmq_meta **out, const char *uri);

#endif
