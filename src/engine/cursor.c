/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * cursor.c - persisting cursors: commit, ack, seek, commit_all.
 *
 * Each persists through the metadata store holding only the group's
 * commit_mu (see group.c), and changes the in-memory cursor only once the
 * store has taken the new value: a call that fails changes nothing.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Take g->commit_mu for a live group; ENOGROUP if it was destroyed. */
static int commit_lock(lmq_group *g, const char *group) {
  pthread_mutex_lock(&g->commit_mu);
  pthread_mutex_lock(&g->mu);
  int dead = g->dead;
  pthread_mutex_unlock(&g->mu);
  if (dead) {
    pthread_mutex_unlock(&g->commit_mu);
    return lmq__error(LMQ_ENOGROUP, "group '%s' was destroyed", group);
  }
  return 0;
}

/* The store has value: note it (g->commit_mu held). */
static void committed(lmq_group *g, lmq_id value) {
  pthread_mutex_lock(&g->mu);
  g->committed = value;
  atomic_store(&g->dirty, g->cursor != value);
  pthread_mutex_unlock(&g->mu);
}

/* The group now reads from cursor (persisted as committed): set it, and
 * wake blocked consumers and pollers to look again (g->commit_mu held). */
static void move_to(lmq_chan *ch, lmq_group *g, lmq_id cursor) {
  pthread_mutex_lock(&g->mu);
  g->cursor = g->committed = cursor;
  atomic_store(&g->dirty, 0);
  pthread_mutex_lock(&ch->mu);
  lmq__group_wake_locked(ch, g);
  pthread_mutex_unlock(&ch->mu);
  lmq__group_fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
}

LMQ_API int lmq_group_commit(lmq_env *env, const char *channel,
                             const char *group) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "group commit");
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__commit_g(env, ch, g);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__commit_g(lmq_env *env, lmq_chan *ch, lmq_group *g) {
  int rc;
  if (!(rc = commit_lock(g, g->name))) {
    pthread_mutex_lock(&g->mu);
    lmq_id v = g->cursor;
    int need = v != g->committed || atomic_load(&g->dirty);
    pthread_mutex_unlock(&g->mu);
    if (need && !(rc = lmq__group_persist(env, ch, g, v)))
      committed(g, v);
    pthread_mutex_unlock(&g->commit_mu);
  }
  return rc;
}

LMQ_API int lmq_ack(lmq_env *env, const char *channel, const char *group,
                    lmq_id id) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "ack");
  if (id == 0 || id > LMQ_ID_MAX)
    return lmq__error(LMQ_EINVAL, "id %llu is not a valid message ID",
                      (unsigned long long)id);
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__ack_g(env, ch, g, id);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__ack_g(lmq_env *env, lmq_chan *ch, lmq_group *g, lmq_id id) {
  if (id == 0 || id > LMQ_ID_MAX)
    return lmq__error(LMQ_EINVAL, "id %llu is not a valid message ID",
                      (unsigned long long)id);
  int rc;
  if (!(rc = commit_lock(g, g->name))) {
    if (!(rc = lmq__group_persist(env, ch, g, id + 1)))
      committed(g, id + 1);
    pthread_mutex_unlock(&g->commit_mu);
  }
  return rc;
}

LMQ_API int lmq_group_rewind(lmq_env *env, const char *channel,
                             const char *group) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__rewind_g(ch, g);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__rewind_g(lmq_chan *ch, lmq_group *g) {
  int rc;
  if (!(rc = commit_lock(g, g->name))) {
    /* committed changes only under commit_mu, which we hold */
    move_to(ch, g, g->committed);
    pthread_mutex_unlock(&g->commit_mu);
  }
  return rc;
}

#define SEEK_ID LMQ__SEEK_ID
#define SEEK_TIME LMQ__SEEK_TIME
#define SEEK_EARLIEST LMQ__SEEK_EARLIEST
#define SEEK_LATEST LMQ__SEEK_LATEST

static int seek(lmq_env *env, const char *channel, const char *group, int kind,
                lmq_id id) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "seek");
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__seek_g(env, ch, g, kind, id);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__seek_g(lmq_env *env, lmq_chan *ch, lmq_group *g, int kind, lmq_id id) {
  int rc;
  if ((rc = commit_lock(g, g->name)))
    return rc;
  pthread_mutex_lock(&ch->mu);
  lmq_id next = ch->last_id + 1;
  pthread_mutex_unlock(&ch->mu);
  if (kind == SEEK_EARLIEST)
    id = 0;
  else if (kind == SEEK_LATEST || (kind == SEEK_ID && id > next))
    /* Past the newest message: deliver from the next one produced. (IDs
     * follow the clock, so a message produced in the same millisecond as
     * a seek to "newest + 10" could get an ID below it and be skipped.) */
    id = next;
  if (!(rc = lmq__group_persist(env, ch, g, id)))
    move_to(ch, g, id);
  pthread_mutex_unlock(&g->commit_mu);
  return rc;
}

LMQ_API int lmq_seek(lmq_env *env, const char *channel, const char *group,
                     lmq_id id) {
  return seek(env, channel, group, SEEK_ID, id);
}
LMQ_API int lmq_seek_earliest(lmq_env *env, const char *channel,
                              const char *group) {
  return seek(env, channel, group, SEEK_EARLIEST, 0);
}
LMQ_API int lmq_seek_latest(lmq_env *env, const char *channel,
                            const char *group) {
  return seek(env, channel, group, SEEK_LATEST, 0);
}
LMQ_API int lmq_seek_time(lmq_env *env, const char *channel, const char *group,
                          uint64_t ms) {
  if (ms > lmq_id_time(LMQ_ID_MAX))
    return lmq__error(LMQ_EINVAL, "time %llu ms is out of range",
                      (unsigned long long)ms);
  return seek(env, channel, group, SEEK_TIME, lmq_id_from_time(ms));
}

/* etcd refuses transactions of more than 128 operations by default. */
#define COMMIT_BATCH 128

typedef struct pend {
  lmq_group *g;
  lmq_chan *ch;
  lmq_id value;
} pend;

/* Commit one batch: take each group's commit_mu, read its cursor, write
 * them all in one transaction, note the result, release. */
static int commit_batch(lmq_env *env, pend *p, size_t n) {
  lmq_meta_op ops[COMMIT_BATCH];
  char keys[COMMIT_BATCH][LMQ__GROUP_KEY_MAX];
  unsigned char vals[COMMIT_BATCH][8];
  size_t k = 0;
  for (size_t j = 0; j < n; j++) {
    lmq_group *g = p[j].g;
    pthread_mutex_lock(&g->commit_mu);
    pthread_mutex_lock(&g->mu);
    int skip = g->dead || !atomic_load(&g->dirty);
    p[k] = p[j];
    p[k].value = g->cursor;
    pthread_mutex_unlock(&g->mu);
    if (skip) {
      pthread_mutex_unlock(&g->commit_mu);
      continue;
    }
    int kl = lmq__group_key(keys[k], p[k].ch->name, g->name);
    lmq__put64(vals[k], p[k].value);
    ops[k] = (lmq_meta_op){LMQ_META_PUT, keys[k], (size_t)kl, vals[k], 8};
    k++;
  }
  int rc = k ? lmq_meta_txn(env->meta, NULL, 0, ops, k) : 0;
  for (size_t j = 0; j < k; j++) {
    if (!rc)
      committed(p[j].g, p[j].value);
    pthread_mutex_unlock(&p[j].g->commit_mu);
  }
  return rc;
}

int lmq__groups_commit_all(lmq_env *env) {
  /* Snapshot the dirty groups (channels referenced, so groups stay
   * allocated), then commit them in batches of up to COMMIT_BATCH (one
   * etcd request each). Each group appears once, and one commit_all runs
   * at a time, so commit_mus are never taken twice or in two orders. */
  size_t n;
  lmq_chan **list = lmq__chan_snapshot(env, &n, 0);
  if (!list)
    return LMQ_ENOMEM;
  pthread_mutex_lock(&env->commit_all_mu);
  int rc = 0;
  pend *all = NULL;
  size_t na = 0, cap = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    pthread_mutex_lock(&list[i]->mu);
    for (lmq_group *g = list[i]->groups; g; g = g->next) {
      if (!atomic_load(&g->dirty))
        continue;
      if (na == cap) {
        size_t nc = cap ? cap * 2 : 64;
        pend *np = realloc(all, nc * sizeof *np);
        if (!np) {
          rc = LMQ_ENOMEM;
          break;
        }
        all = np;
        cap = nc;
      }
      all[na++] = (pend){g, list[i], 0};
    }
    pthread_mutex_unlock(&list[i]->mu);
  }
  for (size_t i = 0; i < na && !rc; i += COMMIT_BATCH)
    rc = commit_batch(env, all + i, na - i < COMMIT_BATCH ? na - i : COMMIT_BATCH);
  free(all);
  pthread_mutex_unlock(&env->commit_all_mu);
  lmq__chan_release(env, list, n);
  return rc;
}

LMQ_API int lmq_group_commit_all(lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "commit");
  LMQ__ENV_CHECK(env);
  int rc = lmq__groups_commit_all(env);
  return rc == LMQ_ENOMEM ? lmq__error(rc, "out of memory") : rc;
}
