/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * channel.c - the channel registry, channel life cycle (create, destroy,
 * list), in-memory tails (publish/trim), retention and channel stats.
 *
 * Each channel is the LMDB sub-database "d:<name>" keyed by 8-byte
 * big-endian IDs; its record in "#sys" ("c:<name>") holds
 * {incarnation, created_ms, applied bytes, retention age, retention bytes,
 * last id}. The incarnation (unique per create) is written into every WAL
 * record so recovery never replays a destroyed channel's messages into a
 * re-created one. The metadata store holds "chan/<name>" and the groups'
 * "group/<name>/<group>"; the embedded store writes them in the same LMDB
 * transaction as the records above, so a create or destroy commits and
 * syncs once and a crash never separates them.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"
#include "common/varint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>


void lmq__chan_key(char *buf, const char *name) {
  buf[0] = 'c';
  buf[1] = ':';
  strcpy(buf + 2, name);
}

static void data_name(char *buf, const char *name) {
  buf[0] = 'd';
  buf[1] = ':';
  strcpy(buf + 2, name);
}

static size_t hslot(const lmq_env *env, const char *name, size_t len) {
  return (size_t)(XXH3_64bits(name, len) & (env->hcap - 1));
}

lmq_chan *lmq__chan_lookup_locked(lmq_env *env, const char *name, size_t len) {
  for (lmq_chan *c = env->htab[hslot(env, name, len)]; c; c = c->hnext)
    if (c->name_len == len && !memcmp(c->name, name, len))
      return c;
  return NULL;
}

static void reg_insert_locked(lmq_env *env, lmq_chan *ch) {
  if (env->nchans + 1 > env->hcap) {
    size_t ncap = env->hcap * 2;
    lmq_chan **nt = calloc(ncap, sizeof *nt);
    if (nt) {
      for (size_t i = 0; i < env->hcap; i++)
        for (lmq_chan *c = env->htab[i], *n; c; c = n) {
          n = c->hnext;
          size_t s = (size_t)(XXH3_64bits(c->name, c->name_len) & (ncap - 1));
          c->hnext = nt[s];
          nt[s] = c;
        }
      free(env->htab);
      env->htab = nt;
      env->hcap = ncap;
    } /* on failure keep the smaller table: chains just get longer */
  }
  size_t s = hslot(env, ch->name, ch->name_len);
  ch->hnext = env->htab[s];
  env->htab[s] = ch;
  env->nchans++;
}

static void reg_remove_locked(lmq_env *env, lmq_chan *ch) {
  for (lmq_chan **pp = &env->htab[hslot(env, ch->name, ch->name_len)]; *pp;
       pp = &(*pp)->hnext)
    if (*pp == ch) {
      *pp = ch->hnext;
      env->nchans--;
      return;
    }
}

static lmq_chan *chan_alloc(const char *name) {
  lmq_chan *ch = calloc(1, sizeof *ch);
  if (!ch || !(ch->name = strdup(name))) {
    free(ch);
    return NULL;
  }
  ch->name_len = strlen(name);
  pthread_mutex_init(&ch->mu, NULL);
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(&ch->cond, &a);
  pthread_condattr_destroy(&a);
  ch->refs = 1;
  return ch;
}

static void chan_free(lmq_chan *ch) {
  lmq__groups_free(ch);
  pthread_mutex_destroy(&ch->mu);
  pthread_cond_destroy(&ch->cond);
  free(ch->tail);
  free(ch->name);
  free(ch);
}

int lmq__chan_get(lmq_chan **out, lmq_env *env, const char *name) {
  int rc = lmq__name_check("channel", name);
  if (rc)
    return rc;
  if (atomic_load(&env->closed))
    return lmq__error(LMQ_ECLOSED, "env is closed");
  pthread_mutex_lock(&env->reg_mu);
  lmq_chan *ch = lmq__chan_lookup_locked(env, name, strlen(name));
  if (!ch || atomic_load(&ch->dead)) {
    pthread_mutex_unlock(&env->reg_mu);
    return lmq__error(LMQ_ENOCHANNEL, "no channel '%s'", name);
  }
  ch->refs++;
  pthread_mutex_unlock(&env->reg_mu);
  *out = ch;
  return 0;
}

void lmq__chan_put_queued(lmq_env *env, lmq_chan *ch) {
  atomic_fetch_sub(&ch->qheld, 1);
  lmq__chan_put(env, ch);
}

void lmq__chan_leave(lmq_env *env, lmq_chan *ch) {
  /* The handle still holds a reference: this never frees ch. A destroy
   * that set dead before our decrement waits on reg_cond for callers to
   * leave: if we see dead, wake it (under reg_mu, so the wake-up cannot
   * fall between its check and its wait); if we do not, our decrement
   * came first and its check will see it (both are sequentially
   * consistent). */
  atomic_fetch_sub(&ch->refs, 1);
  if (atomic_load(&ch->dead)) {
    pthread_mutex_lock(&env->reg_mu);
    pthread_cond_broadcast(&env->reg_cond);
    pthread_mutex_unlock(&env->reg_mu);
  }
}

void lmq__chan_put(lmq_env *env, lmq_chan *ch) {
  pthread_mutex_lock(&env->reg_mu);
  unsigned left = --ch->refs;
  if (atomic_load(&ch->dead)) /* a destroy may wait for this (rare) */
    pthread_cond_broadcast(&env->reg_cond);
  pthread_mutex_unlock(&env->reg_mu);
  if (left == 0)
    chan_free(ch);
}

int lmq__chan_sys_put(lmq_env *env, MDB_txn *txn, lmq_chan *ch, uint64_t abytes) {
  char key[LMQ_NAME_MAX + 3];
  lmq__chan_key(key, ch->name);
  pthread_mutex_lock(&ch->mu);
  uint64_t v[6] = {ch->incarnation, ch->created_ms, abytes, ch->ret_age_ms,
                   ch->ret_bytes, ch->last_id};
  pthread_mutex_unlock(&ch->mu);
  unsigned char buf[48];
  for (int i = 0; i < 6; i++)
    lmq__put64(buf + 8 * i, v[i]);
  MDB_val k = {ch->name_len + 2, key}, d = {sizeof buf, buf};
  return mdb_put(txn, env->sysdbi, &k, &d, 0);
}

static int last_key(MDB_txn *txn, MDB_dbi dbi, lmq_id *out) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc)
    return rc;
  MDB_val k, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  *out = (rc == 0 && lmq__key_valid(&k)) ? lmq__key_last_id(&k) : 0;
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int lmq__chan_load_all(lmq_env *env, MDB_txn *txn) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, env->sysdbi, &cur);
  if (rc)
    return rc;
  MDB_val k = {2, "c:"}, v;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  while (rc == 0 && k.mv_size > 2 && !memcmp(k.mv_data, "c:", 2)) {
    if (v.mv_size < 48 || k.mv_size - 2 > LMQ_NAME_MAX) {
      mdb_cursor_close(cur);
      return lmq__error(LMQ_ECORRUPT, "channel record is malformed");
    }
    char name[LMQ_NAME_MAX + 1], dname[LMQ_NAME_MAX + 3];
    memcpy(name, (char *)k.mv_data + 2, k.mv_size - 2);
    name[k.mv_size - 2] = '\0';
    lmq_chan *ch = chan_alloc(name);
    if (!ch) {
      mdb_cursor_close(cur);
      return lmq__error(LMQ_ENOMEM, "out of memory");
    }
    const unsigned char *p = v.mv_data;
    ch->incarnation = lmq__get64(p);
    ch->created_ms = lmq__get64(p + 8);
    ch->abytes = lmq__get64(p + 16);
    ch->ret_age_ms = lmq__get64(p + 24);
    ch->ret_bytes = lmq__get64(p + 32);
    ch->last_id = lmq__get64(p + 40);
    data_name(dname, name);
    lmq_id lk = 0;
    if ((rc = mdb_dbi_open(txn, dname, 0, &ch->dbi)) ||
        (rc = last_key(txn, ch->dbi, &lk))) {
      chan_free(ch);
      mdb_cursor_close(cur);
      return rc;
    }
    if (lk > LMQ_ID_MAX || ch->last_id > LMQ_ID_MAX) {
      chan_free(ch);
      mdb_cursor_close(cur);
      return lmq__error(LMQ_ECORRUPT, "channel '%s': stored message ID out of "
                        "range", name);
    }
    if (lk > ch->last_id)
      ch->last_id = lk;
    if (ch->last_id > env->last_id)
      env->last_id = ch->last_id;
    pthread_mutex_lock(&env->reg_mu);
    reg_insert_locked(env, ch);
    pthread_mutex_unlock(&env->reg_mu);
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Free the tail arrays of channels with nothing in their tail (called once
 * the applier has been idle a while): with thousands of channels the arrays
 * a burst grew added up to megabytes nobody used. Freeing them at every
 * apply instead cost each busy channel a few reallocations per apply. */
void lmq__chan_tails_release(lmq_env *env) {
  size_t n;
  lmq_chan **list = lmq__chan_snapshot(env, &n, 0);
  for (size_t i = 0; i < n; i++) {
    lmq_chan *c = list[i];
    pthread_mutex_lock(&c->mu);
    if (c->thead == c->tlen && !c->treserved && c->tcap) {
      free(c->tail);
      c->tail = NULL;
      c->tcap = c->thead = c->tlen = 0;
    }
    pthread_mutex_unlock(&c->mu);
  }
  lmq__chan_release(env, list, n);
}

void lmq__chan_free_all(lmq_env *env) {
  if (!env->htab)
    return;
  for (size_t i = 0; i < env->hcap; i++)
    for (lmq_chan *c = env->htab[i], *n; c; c = n) {
      n = c->hnext;
      chan_free(c);
    }
  memset(env->htab, 0, env->hcap * sizeof *env->htab);
  env->nchans = 0;
}

/* Metadata-store record "chan/<name>": created_ms, incarnation (LE u64s). */
static int meta_chan_key(char *buf, const char *name) {
  return snprintf(buf, LMQ_NAME_MAX + 8, "chan/%s", name);
}

static void meta_chan_val(unsigned char *buf, const lmq_chan *ch) {
  lmq__put64(buf, ch->created_ms);
  lmq__put64(buf + 8, ch->incarnation);
}

/* The prefix of the channel's group records in the metadata store. */
static int meta_groups_prefix(char *buf, const char *name) {
  return snprintf(buf, LMQ_NAME_MAX + 9, "group/%s/", name);
}

/*
 * Commit txn and make it durable; *committed (may be NULL) tells whether the
 * commit succeeded (a failed one aborts). pend holds the watch events of
 * metadata ops written inside txn (NULL if none): the watchers hear of them
 * once the change is durable, as after the store's own writes.
 */
static int commit_durable(lmq_env *env, MDB_txn *txn, lmq_meta_pending *pend,
                          const char *what, int *committed) {
  int rc = mdb_txn_commit(txn);
  if (committed)
    *committed = rc == 0;
  if (rc) {
    lmq_meta_txn_done(env->meta, pend, 0);
    return lmq__mdb_code(rc, what);
  }
  rc = lmq__mdb_durable(env, what);
  lmq_meta_txn_done(env->meta, pend, rc == 0);
  return rc;
}

/*
 * Drop the channel's sub-database and "#sys" record, durably. With
 * with_meta (the metadata store joins LMDB transactions), its metadata
 * record and group records go in the same transaction.
 */
static int drop_lmdb(lmq_env *env, lmq_chan *ch, int with_meta) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (rc)
    return lmq__mdb_code(rc, "destroy channel");
  char key[LMQ_NAME_MAX + 3];
  lmq__chan_key(key, ch->name);
  MDB_val k = {ch->name_len + 2, key};
  /* Set while this write transaction excludes the applier's: its next
   * transaction skips the channel's records (see applier.c). */
  atomic_store(&ch->dropped, 1);
  if ((rc = mdb_drop(txn, ch->dbi, 1)) ||
      ((rc = mdb_del(txn, env->sysdbi, &k, NULL)) && rc != MDB_NOTFOUND)) {
    mdb_txn_abort(txn);
    atomic_store(&ch->dropped, 0);
    return lmq__mdb_code(rc, "destroy channel");
  }
  lmq_meta_pending *pend = NULL;
  if (with_meta) {
    char mk[LMQ_NAME_MAX + 8], gp[LMQ_NAME_MAX + 9];
    lmq_meta_op ops[] = {
        {LMQ_META_DEL, mk, (size_t)meta_chan_key(mk, ch->name), NULL, 0},
        {LMQ_META_DEL_PREFIX, gp, (size_t)meta_groups_prefix(gp, ch->name), NULL, 0}};
    if ((rc = lmq_meta_txn_in(env->meta, txn, ops, 2, &pend))) {
      mdb_txn_abort(txn);
      atomic_store(&ch->dropped, 0);
      return rc;
    }
  }
  int committed;
  rc = commit_durable(env, txn, pend, "destroy channel", &committed);
  if (!committed) /* the channel is still there */
    atomic_store(&ch->dropped, 0);
  return rc;
}

/*
 * Write a new channel's records in one LMDB transaction, commit it and make
 * it durable: the incarnation counter, the sub-database, the "#sys" record
 * and, with with_meta (the metadata store joins LMDB transactions), its
 * metadata record, deleting group records a destroy of an earlier channel
 * of this name left behind. On failure nothing of it remains (unless the
 * final sync fails: then it is committed but may not survive a power loss).
 */
static int create_lmdb(lmq_env *env, lmq_chan *ch, int with_meta) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  if (rc)
    return lmq__mdb_code(rc, "create channel");
  MDB_val k = {strlen(SYS_INCARNATION), SYS_INCARNATION}, v;
  uint64_t inc = 0;
  rc = mdb_get(txn, env->sysdbi, &k, &v);
  if (rc == 0 && v.mv_size == 8)
    inc = lmq__get64(v.mv_data);
  inc++;
  unsigned char ib[8];
  lmq__put64(ib, inc);
  v.mv_size = 8;
  v.mv_data = ib;
  char dname[LMQ_NAME_MAX + 3];
  data_name(dname, ch->name);
  ch->incarnation = inc;
  if ((rc = mdb_put(txn, env->sysdbi, &k, &v, 0)) ||
      (rc = mdb_dbi_open(txn, dname, MDB_CREATE, &ch->dbi)) ||
      (rc = lmq__chan_sys_put(env, txn, ch, 0))) {
    mdb_txn_abort(txn);
    return lmq__mdb_code(rc, "create channel");
  }
  lmq_meta_pending *pend = NULL;
  if (with_meta) {
    char mk[LMQ_NAME_MAX + 8], gp[LMQ_NAME_MAX + 9];
    unsigned char mv[16];
    meta_chan_val(mv, ch);
    lmq_meta_op ops[] = {
        {LMQ_META_DEL_PREFIX, gp, (size_t)meta_groups_prefix(gp, ch->name), NULL, 0},
        {LMQ_META_PUT, mk, (size_t)meta_chan_key(mk, ch->name), mv, sizeof mv}};
    if ((rc = lmq_meta_txn_in(env->meta, txn, ops, 2, &pend))) {
      mdb_txn_abort(txn);
      return rc;
    }
  }
  /* Durable before it returns: produce needs the channel to exist after a
   * crash for its WAL records to be replayed. */
  return commit_durable(env, txn, pend, "create channel", NULL);
}

/* Today's path for a metadata store of its own (etcd): the store's writes
 * around the LMDB transaction. Groups left in the store by a destroy of an
 * earlier channel of this name that was cut short by a crash must not come
 * back with this one; the store gets a descriptive copy of the channel
 * (LMDB is authoritative), and if that fails the create is undone: a failed
 * call leaves nothing behind. */
static int create_apart(lmq_env *env, lmq_chan *ch) {
  char gp[LMQ_NAME_MAX + 9];
  int rc = lmq_meta_del_prefix(env->meta, gp, (size_t)meta_groups_prefix(gp, ch->name));
  if (rc || (rc = create_lmdb(env, ch, 0)))
    return rc;
  char mk[LMQ_NAME_MAX + 8];
  unsigned char mv[16];
  meta_chan_val(mv, ch);
  rc = lmq_meta_put(env->meta, mk, (size_t)meta_chan_key(mk, ch->name), mv, sizeof mv);
  if (rc)
    drop_lmdb(env, ch, 0);
  return rc;
}

LMQ_API int lmq_channel_create(lmq_env *env, const char *name) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "channel create");
  LMQ__ENV_CHECK(env);
  int rc = lmq__name_check("channel", name);
  if (rc)
    return rc;
  if (atomic_load(&env->closed))
    return lmq__error(LMQ_ECLOSED, "env is closed");
  pthread_mutex_lock(&env->ddl_mu);
  pthread_mutex_lock(&env->reg_mu);
  lmq_chan *old = lmq__chan_lookup_locked(env, name, strlen(name));
  size_t n = env->nchans;
  pthread_mutex_unlock(&env->reg_mu);
  if (old) {
    pthread_mutex_unlock(&env->ddl_mu);
    return 0; /* idempotent */
  }
  if (n >= env->opt.max_channels) {
    pthread_mutex_unlock(&env->ddl_mu);
    return lmq__error(LMQ_ELIMIT, "max_channels (%u) channels exist",
                      env->opt.max_channels);
  }
  lmq_chan *ch = chan_alloc(name);
  if (!ch) {
    pthread_mutex_unlock(&env->ddl_mu);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  ch->created_ms = lmq__now_ms();
  ch->ret_age_ms = env->opt.retention_ms;
  ch->ret_bytes = env->opt.retention_bytes;
  /* The embedded store lives in this LMDB env: one transaction and one
   * sync for both (each commit rewrites the main DB's pages and the free
   * list, and each sync is an fdatasync). */
  rc = lmq_meta_joins(env->meta, env->mdb) ? create_lmdb(env, ch, 1)
                                           : create_apart(env, ch);
  if (rc) {
    chan_free(ch);
    pthread_mutex_unlock(&env->ddl_mu);
    return rc;
  }
  pthread_mutex_lock(&env->reg_mu);
  reg_insert_locked(env, ch);
  pthread_mutex_unlock(&env->reg_mu);
  pthread_mutex_unlock(&env->ddl_mu);
  return 0;
}

LMQ_API int lmq_channel_destroy(lmq_env *env, const char *name) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "channel destroy");
  LMQ__ENV_CHECK(env);
  lmq_chan *ch;
  pthread_mutex_lock(&env->ddl_mu);
  int rc = lmq__chan_get(&ch, env, name);
  if (rc) {
    pthread_mutex_unlock(&env->ddl_mu);
    return rc;
  }
  pthread_mutex_lock(&env->wal_mu);
  atomic_store(&ch->dead, 1); /* no produce gets past this point now */
  pthread_mutex_unlock(&env->wal_mu);
  lmq__wal_barrier(env);
  pthread_mutex_lock(&ch->mu);
  pthread_cond_broadcast(&ch->cond);
  for (lmq_group *g = ch->groups; g; g = g->next)
    if (g->efd >= 0)
      lmq__event_set(g->efd);
  pthread_mutex_unlock(&ch->mu);
  /* Apply every acknowledged record of the channel to LMDB (the applier
   * does not skip dying channels) and let the applier drop its references.
   * Until the drop below is durable, a crash must find the whole channel;
   * once it is, nothing of it. */
  lmq__apply_flush(env, 0);
  pthread_mutex_lock(&env->reg_mu);
  reg_remove_locked(env, ch);
  ch->refs--; /* the registry's reference */
  /* Wait for the callers still inside (consumers woken above), not for
   * records queued for the applier: with a full map those may never be
   * applied, and this destroy is what frees the pages (it used to wait
   * for them forever). They are skipped once the drop is committed. */
  /* Open handles (hrefs) do not count: their calls return
   * LMQ_ENOCHANNEL from now on, and each call in progress holds a
   * reference of its own. */
  while (ch->refs - atomic_load(&ch->qheld) - atomic_load(&ch->hrefs) > 1)
    pthread_cond_wait(&env->reg_cond, &env->reg_mu);
  pthread_mutex_unlock(&env->reg_mu);
  /* Nobody else uses the channel or its dbi handle now. With the embedded
   * store its records go in the drop's transaction; a store of its own
   * (etcd) is written after it. */
  int joined = lmq_meta_joins(env->meta, env->mdb), mrc = 0;
  rc = drop_lmdb(env, ch, joined);
  if (!joined) {
    char mk[LMQ_NAME_MAX + 8];
    mrc = lmq_meta_del(env->meta, mk, (size_t)meta_chan_key(mk, name));
    if (!mrc) {
      char gp[LMQ_NAME_MAX + 9];
      mrc = lmq_meta_del_prefix(env->meta, gp, (size_t)meta_groups_prefix(gp, name));
    }
  }
  lmq__chan_put(env, ch); /* last reference: frees it */
  pthread_mutex_unlock(&env->ddl_mu);
  lmq__applier_room_freed(env); /* its pages may be what a failing apply needs */
  return rc ? rc : mrc;
}

LMQ_API int lmq_channel_exists(lmq_env *env, const char *name) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  int rc = lmq__name_check("channel", name);
  if (rc)
    return rc;
  pthread_mutex_lock(&env->reg_mu);
  lmq_chan *ch = lmq__chan_lookup_locked(env, name, strlen(name));
  int alive = ch && !atomic_load(&ch->dead);
  pthread_mutex_unlock(&env->reg_mu);
  return alive;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

LMQ_API int lmq_channel_list(char ***out, size_t *count, lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  pthread_mutex_lock(&env->reg_mu);
  char **v = calloc(env->nchans + 1, sizeof *v);
  size_t n = 0;
  for (size_t i = 0; v && i < env->hcap; i++)
    for (lmq_chan *c = env->htab[i]; c; c = c->hnext) {
      if (atomic_load(&c->dead))
        continue;
      if (!(v[n] = strdup(c->name))) {
        pthread_mutex_unlock(&env->reg_mu);
        lmq_strv_free(v);
        return lmq__error(LMQ_ENOMEM, "out of memory");
      }
      n++;
    }
  pthread_mutex_unlock(&env->reg_mu);
  if (!v)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  qsort(v, n, sizeof *v, cmp_str);
  *out = v;
  if (count)
    *count = n;
  return 0;
}

LMQ_API void lmq_strv_free(char **strv) {
  if (!strv)
    return;
  for (char **p = strv; *p; p++)
    free(*p);
  free(strv);
}

LMQ_API int lmq_channel_set_retention(lmq_env *env, const char *name,
                                      uint64_t max_age_ms, uint64_t max_bytes) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "set retention");
  LMQ__ENV_CHECK(env);
  lmq_chan *ch;
  int rc = lmq__chan_get(&ch, env, name);
  if (rc)
    return rc;
  pthread_mutex_lock(&ch->mu);
  ch->ret_age_ms = max_age_ms;
  ch->ret_bytes = max_bytes;
  pthread_mutex_unlock(&ch->mu);
  /* Persist it now; the applier enforces it on its next round. */
  MDB_txn *txn;
  if (!(rc = mdb_txn_begin(env->mdb, NULL, 0, &txn))) {
    /* The byte count is only a statistic: if an apply races this write, the
     * next apply that touches the channel rewrites the record. */
    if ((rc = lmq__chan_sys_put(env, txn, ch, ch->abytes)))
      mdb_txn_abort(txn);
    else
      rc = mdb_txn_commit(txn);
  }
  lmq__chan_put(env, ch);
  if (rc)
    return lmq__mdb_code(rc, "set retention");
  lmq__applier_kick(env); /* enforce the new limits now */
  return lmq__mdb_durable(env, "set retention");
}

/* --------------------------------------------------------------------- */
/* Tails                                                                 */

size_t lmq__chan_tail_find(const lmq_chan *ch, lmq_id from) {
  size_t lo = ch->thead, hi = ch->tlen;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ch->tail[mid].id < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Move the live entries to the front of the tail array (ch->mu held). */
static void tail_compact(lmq_chan *ch) {
  if (ch->thead == 0)
    return;
  memmove(ch->tail, ch->tail + ch->thead, (ch->tlen - ch->thead) * sizeof *ch->tail);
  ch->tlen -= ch->thead;
  ch->thead = 0;
}

/*
 * Room for n more tail entries, taken before a record goes into the WAL:
 * publishing can then never fail. (It used to be allocated at publish
 * time; when that failed the messages were acknowledged but missing from
 * the tail while later ones were in it, and consumers skipped them.)
 * Invariant: (tlen - thead) + treserved <= tcap.
 */
int lmq__chan_reserve(lmq_chan *ch, size_t n) {
  pthread_mutex_lock(&ch->mu);
  size_t need = ch->tlen - ch->thead + ch->treserved + n;
  if (need > ch->tcap) {
    size_t ncap = ch->tcap ? ch->tcap : 16;
    while (ncap < need)
      ncap *= 2;
    tail_ent *nt = realloc(ch->tail, ncap * sizeof *nt);
    if (!nt) {
      pthread_mutex_unlock(&ch->mu);
      return lmq__error(LMQ_ENOMEM, "out of memory for the tail of '%s'", ch->name);
    }
    ch->tail = nt;
    ch->tcap = ncap;
  }
  ch->treserved += n;
  pthread_mutex_unlock(&ch->mu);
  return 0;
}

void lmq__chan_unreserve(lmq_chan *ch, size_t n) {
  pthread_mutex_lock(&ch->mu);
  ch->treserved -= n;
  pthread_mutex_unlock(&ch->mu);
}

void lmq__chan_publish(lmq_chan *ch, const chunk *c, const rec_ref *r) {
  pthread_mutex_lock(&ch->mu);
  if (ch->tlen + r->count > ch->tcap)
    tail_compact(ch); /* fits now: the room was reserved */
  ch->treserved -= r->count;
  const unsigned char *p = c->buf + r->off;
  for (uint32_t i = 0; i < r->count; i++) {
    tail_ent *e = &ch->tail[ch->tlen++];
    uint32_t len;
    p += lmq__varint_get32_trusted(p, &len);
    e->id = r->first_id + i;
    e->len = len;
    e->data = p;
    p += len;
  }
  ch->tbytes += r->bytes;
  ch->last_id = r->first_id + r->count - 1;
  for (lmq_group *g = ch->groups; g; g = g->next)
    if (g->efd >= 0 && !g->efd_set) {
      lmq__event_set(g->efd);
      g->efd_set = 1;
    }
  if (ch->waiters)
    pthread_cond_broadcast(&ch->cond);
  pthread_mutex_unlock(&ch->mu);
}

void lmq__chan_trim(lmq_chan *ch, lmq_id upto) {
  pthread_mutex_lock(&ch->mu);
  while (ch->thead < ch->tlen && ch->tail[ch->thead].id <= upto) {
    ch->tbytes -= ch->tail[ch->thead].len;
    ch->thead++;
  }
  if (ch->thead == ch->tlen)
    ch->thead = ch->tlen = 0;
  ch->trim_gen++;
  pthread_mutex_unlock(&ch->mu);
}

/* --------------------------------------------------------------------- */
/* Retention (applier thread)                                            */

lmq_chan **lmq__chan_snapshot(lmq_env *env, size_t *n, int with_retention) {
  *n = 0;
  pthread_mutex_lock(&env->reg_mu);
  lmq_chan **list = malloc((env->nchans + 1) * sizeof *list);
  for (size_t i = 0; list && i < env->hcap; i++)
    for (lmq_chan *c = env->htab[i]; c; c = c->hnext) {
      if (atomic_load(&c->dead))
        continue;
      if (with_retention) {
        pthread_mutex_lock(&c->mu);
        int has = c->ret_age_ms || c->ret_bytes;
        pthread_mutex_unlock(&c->mu);
        if (!has)
          continue;
      }
      c->refs++;
      list[(*n)++] = c;
    }
  pthread_mutex_unlock(&env->reg_mu);
  return list;
}

void lmq__chan_release(lmq_env *env, lmq_chan **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    lmq__chan_put(env, list[i]);
  free(list);
}

int lmq__chan_over_limit(lmq_env *env) {
  int over = 0;
  pthread_mutex_lock(&env->reg_mu);
  for (size_t i = 0; i < env->hcap && !over; i++)
    for (lmq_chan *c = env->htab[i]; c && !over; c = c->hnext) {
      pthread_mutex_lock(&c->mu);
      over = c->ret_bytes && atomic_load(&c->abytes) + c->tbytes > c->ret_bytes;
      pthread_mutex_unlock(&c->mu);
    }
  pthread_mutex_unlock(&env->reg_mu);
  return over;
}

/*
 * One retention transaction over the channels of list: deletes what is
 * older than a channel's age limit or beyond its byte limit, stopping once
 * about budget bytes are deleted (*more is then set). Bounding it keeps the
 * transaction's dirty pages (which LMDB keeps allocated for the env's life)
 * and its share of the map small whatever a limit change leaves to delete.
 */
static int retention_pass(lmq_env *env, lmq_chan **list, size_t n,
                          uint64_t now_ms, uint64_t budget, uint64_t *freed,
                          uint64_t *freed_bytes, int *more) {
  MDB_txn *txn = NULL;
  uint64_t total = 0;
  memset(freed, 0, n * sizeof *freed);
  *more = 0;
  int rc = mdb_txn_begin(env->mdb, NULL, 0, &txn);
  for (size_t i = 0; i < n && !rc && !*more; i++) {
    lmq_chan *ch = list[i];
    pthread_mutex_lock(&ch->mu);
    uint64_t age = ch->ret_age_ms, maxb = ch->ret_bytes, tb = ch->tbytes;
    pthread_mutex_unlock(&ch->mu);
    if (!age && !maxb)
      continue;
    lmq_id cutoff = age && now_ms > age ? lmq_id_from_time(now_ms - age) : 0;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, ch->dbi, &cur)))
      break;
    MDB_val k, v;
    uint64_t bytes = ch->abytes + tb;
    int r2 = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (r2 == 0 && lmq__key_valid(&k)) {
      /* A run (store.h) goes when all of it may: its messages came from
       * one produce call, so they share their produce time. */
      int old = cutoff && lmq__key_last_id(&k) < cutoff;
      int big = maxb && bytes - freed[i] > maxb;
      if (!old && !big)
        break;
      if (total >= budget) {
        *more = 1;
        break;
      }
      lmq__entry e;
      uint64_t eb;
      if (lmq__entry_get(&e, &k, &v) || lmq__entry_bytes(&e, &eb))
        break; /* malformed: left for lmq_verify to report */
      freed[i] += eb;
      total += v.mv_size + k.mv_size;
      if ((rc = mdb_cursor_del(cur, 0)))
        break;
      r2 = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(cur);
    if (!rc && freed[i])
      rc = lmq__chan_sys_put(env, txn, ch, ch->abytes - freed[i]);
  }
  if (rc) {
    if (txn)
      mdb_txn_abort(txn);
    *more = 0;
    return rc;
  }
  if ((rc = mdb_txn_commit(txn))) {
    *more = 0;
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    list[i]->abytes -= freed[i];
    *freed_bytes += freed[i];
  }
  return 0;
}

int lmq__chan_retention(lmq_env *env, uint64_t now_ms, uint64_t *freed_bytes) {
  *freed_bytes = 0;
  size_t n;
  lmq_chan **list = lmq__chan_snapshot(env, &n, 1);
  if (!list)
    return LMQ_ENOMEM;
  int rc = 0, more = 1;
  uint64_t *freed = calloc(n ? n : 1, sizeof *freed);
  if (!freed)
    rc = LMQ_ENOMEM;
  else
    while (n && more && !rc)
      rc = retention_pass(env, list, n, now_ms, env->opt.apply_bytes, freed,
                          freed_bytes, &more);
  lmq__chan_release(env, list, n);
  free(freed);
  if (rc == LMQ_ENOMEM)
    return lmq__error(rc, "retention: out of memory");
  return rc ? lmq__mdb_code(rc, "retention") : 0;
}

/* --------------------------------------------------------------------- */
/* Stats                                                                 */

LMQ_API int lmq_channel_stats_get(lmq_channel_stats *out, lmq_env *env,
                                  const char *channel) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  int rc = lmq__chan_get(&ch, env, channel);
  if (rc)
    return rc;
  memset(out, 0, sizeof *out);
  MDB_txn *txn;
  pthread_mutex_lock(&ch->mu);
  if ((rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn))) {
    pthread_mutex_unlock(&ch->mu);
    lmq__chan_put(env, ch);
    return lmq__mdb_code(rc, "stats");
  }
  MDB_cursor *cur;
  lmq_id lfirst = 0, llast = 0;
  if (!mdb_cursor_open(txn, ch->dbi, &cur)) {
    uint64_t n = 0;
    if (!lmq__store_span(cur, &lfirst, &llast, &n))
      out->messages = n;
    mdb_cursor_close(cur);
  }
  mdb_txn_abort(txn);
  uint64_t tb = 0;
  for (size_t i = ch->thead; i < ch->tlen; i++)
    if (ch->tail[i].id > llast) {
      out->messages++;
      tb += ch->tail[i].len;
      if (!lfirst)
        lfirst = ch->tail[i].id;
    }
  out->first_id = lfirst;
  out->last_id = ch->last_id;
  pthread_mutex_unlock(&ch->mu);

  out->bytes = atomic_load(&ch->abytes) + tb;
  lmq__chan_put(env, ch);
  return 0;
}

LMQ_API int lmq_latest_id(lmq_id *out, lmq_env *env, const char *channel) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  int rc = lmq__chan_get(&ch, env, channel);
  if (rc)
    return rc;
  rc = lmq__latest_id_ch(out, env, ch);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__latest_id_ch(lmq_id *out, lmq_env *env, lmq_chan *ch) {
  int rc;
  pthread_mutex_lock(&ch->mu);
  if (ch->tlen > ch->thead) {
    *out = ch->tail[ch->tlen - 1].id;
    pthread_mutex_unlock(&ch->mu);
    return 0;
  }
  MDB_txn *txn;
  rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
  pthread_mutex_unlock(&ch->mu);
  if (rc)
    return lmq__mdb_code(rc, "latest_id");
  lmq_id last = 0;
  rc = last_key(txn, ch->dbi, &last);
  mdb_txn_abort(txn);
  if (rc)
    return lmq__mdb_code(rc, "latest_id");
  if (!last)
    return lmq__error(LMQ_EEMPTY, "channel '%s' is empty", ch->name);
  *out = last;
  return 0;
}
