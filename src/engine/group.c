/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * group.c - consumer groups: life cycle (create, destroy, load), lookup,
 * the wake-up of blocked consumers and pollers, group stats.
 *
 * Metadata key of a group: "group/<channel>/<group>" -> u64 LE cursor
 * (the next consume returns IDs >= cursor).
 *
 * Locks: g->commit_mu (persisting this group's cursor, destroy) ->
 * g->mu (consumers; cursor and committed) -> ch->mu. The metadata store,
 * which may be etcd over the network, is called with commit_mu alone held,
 * so consumers never wait on it. g->dead and g->wake change with both g->mu
 * and ch->mu held and may be read under either.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lmq__group_key(char *buf, const char *chan, const char *group) {
  return snprintf(buf, LMQ__GROUP_KEY_MAX, "group/%s/%s", chan, group);
}

static lmq_group *group_new(const char *name, lmq_id cursor) {
  lmq_group *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    return NULL;
  }
  pthread_mutex_init(&g->mu, NULL);
  pthread_mutex_init(&g->commit_mu, NULL);
  g->cursor = g->committed = cursor;
  g->efd = -1;
  return g;
}

static void group_free(lmq_group *g) {
  if (g->efd >= 0)
    close(g->efd);
  pthread_mutex_destroy(&g->mu);
  pthread_mutex_destroy(&g->commit_mu);
  free(g->name);
  free(g);
}

void lmq__groups_free(lmq_chan *ch) {
  for (lmq_group *g = ch->groups, *n; g; g = n) {
    n = g->next;
    group_free(g);
  }
  for (lmq_group *g = ch->dead_groups, *n; g; g = n) {
    n = g->next;
    group_free(g);
  }
  ch->groups = ch->dead_groups = NULL;
}

int lmq__groups_load(lmq_env *env, lmq_chan *ch) {
  char prefix[LMQ_NAME_MAX + 16];
  int pl = snprintf(prefix, sizeof prefix, "group/%s/", ch->name);
  lmq_meta_kv *kvs = NULL;
  size_t n = 0;
  int rc = lmq_meta_range(env->meta, &kvs, &n, prefix, (size_t)pl, NULL, 0, 0);
  if (rc)
    return rc;
  for (size_t i = 0; i < n; i++) {
    size_t nl = kvs[i].klen - (size_t)pl;
    if (kvs[i].vlen != 8 || nl == 0 || nl > LMQ_NAME_MAX)
      continue; /* not ours */
    char name[LMQ_NAME_MAX + 1];
    memcpy(name, (char *)kvs[i].key + pl, nl);
    name[nl] = '\0';
    lmq_id cursor = lmq__get64(kvs[i].val);
    if (cursor > LMQ_ID_MAX + 1) {
      lmq_meta_kv_free(kvs, n);
      return lmq__error(LMQ_ECORRUPT, "group '%s' of channel '%s': stored cursor "
                        "%llu is not a valid message ID", name, ch->name,
                        (unsigned long long)cursor);
    }
    lmq_group *g = group_new(name, cursor);
    if (!g) {
      lmq_meta_kv_free(kvs, n);
      return lmq__error(LMQ_ENOMEM, "out of memory");
    }
    g->next = ch->groups;
    ch->groups = g;
  }
  lmq_meta_kv_free(kvs, n);
  return 0;
}

/* Find a live group (caller holds ch->mu). */
static lmq_group *find_locked(lmq_chan *ch, const char *name) {
  for (lmq_group *g = ch->groups; g; g = g->next)
    if (!strcmp(g->name, name))
      return g;
  return NULL;
}

void lmq__group_wake_locked(lmq_chan *ch, lmq_group *g) {
  g->wake++;
  if (ch->waiters)
    pthread_cond_broadcast(&ch->cond);
}

/*
 * Unlink g from the live groups and keep it on the dead list until the
 * channel is freed (other threads may still hold the pointer); wake its
 * consumers and pollers. Caller holds g->mu and ch->mu.
 */
static void retire_locked(lmq_chan *ch, lmq_group *g) {
  for (lmq_group **pp = &ch->groups; *pp; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
  g->next = ch->dead_groups;
  ch->dead_groups = g;
  g->dead = 1;
  lmq__group_wake_locked(ch, g);
  if (g->efd >= 0)
    lmq__event_set(g->efd);
}

int lmq__group_get(lmq_chan **chp, lmq_group **gp, lmq_env *env,
                   const char *channel, const char *group) {
  LMQ__ENV_CHECK(env);
  int rc = lmq__name_check("group", group);
  if (rc)
    return rc;
  if ((rc = lmq__chan_get(chp, env, channel)))
    return rc;
  pthread_mutex_lock(&(*chp)->mu);
  *gp = find_locked(*chp, group);
  pthread_mutex_unlock(&(*chp)->mu);
  if (!*gp) {
    lmq__chan_put(env, *chp);
    return lmq__error(LMQ_ENOGROUP, "no group '%s' on channel '%s'", group,
                      channel);
  }
  return 0;
}

int lmq__group_persist(lmq_env *env, lmq_chan *ch, lmq_group *g, lmq_id cursor) {
  char key[LMQ__GROUP_KEY_MAX];
  unsigned char v[8];
  lmq__put64(v, cursor);
  return lmq_meta_put(env->meta, key, (size_t)lmq__group_key(key, ch->name, g->name),
                      v, 8);
}

void lmq__group_fd_update(lmq_chan *ch, lmq_group *g) {
  pthread_mutex_lock(&ch->mu);
  if (g->efd >= 0) {
    int want = (ch->last_id && ch->last_id >= g->cursor) ||
               atomic_load(&ch->dead) || g->dead;
    if (want && !g->efd_set)
      lmq__event_set(g->efd);
    else if (!want && g->efd_set)
      lmq__event_clear(g->efd);
    g->efd_set = want;
  }
  pthread_mutex_unlock(&ch->mu);
}

LMQ_API int lmq_group_create(lmq_env *env, const char *channel,
                             const char *group, int start) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "group create");
  LMQ__ENV_CHECK(env);
  if (start != LMQ_START_EARLIEST && start != LMQ_START_LATEST)
    return lmq__error(LMQ_EINVAL, "start must be LMQ_START_EARLIEST or _LATEST");
  int rc = lmq__name_check("group", group);
  if (rc)
    return rc;
  if (strlen(channel ? channel : "") + strlen(group) + 7 > LMQ__META_KEY_MAX)
    return lmq__error(LMQ_ETOOBIG, "channel and group names together are %zu "
                      "bytes; at most %d fit in a metadata key",
                      strlen(channel) + strlen(group), LMQ__META_KEY_MAX - 7);
  lmq_chan *ch;
  if ((rc = lmq__chan_get(&ch, env, channel)))
    return rc;
  lmq_group *g = group_new(group, 0);
  if (!g) {
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  /* Visible from here on, but every commit, seek or destroy of it waits
   * for commit_mu, that is for the create to be persisted (or undone). */
  pthread_mutex_lock(&g->commit_mu);
  pthread_mutex_lock(&ch->mu);
  if (find_locked(ch, group)) {
    pthread_mutex_unlock(&ch->mu);
    pthread_mutex_unlock(&g->commit_mu);
    group_free(g);
    lmq__chan_put(env, ch);
    return 0; /* idempotent: the existing cursor stays */
  }
  lmq_id first = start == LMQ_START_LATEST ? ch->last_id + 1 : 0;
  g->cursor = g->committed = first;
  g->next = ch->groups;
  ch->groups = g;
  pthread_mutex_unlock(&ch->mu);
  rc = lmq__group_persist(env, ch, g, first); /* consumers may move g->cursor */
  if (rc) {
    pthread_mutex_lock(&g->mu);
    pthread_mutex_lock(&ch->mu);
    retire_locked(ch, g);
    pthread_mutex_unlock(&ch->mu);
    pthread_mutex_unlock(&g->mu);
  }
  pthread_mutex_unlock(&g->commit_mu);
  lmq__chan_put(env, ch);
  return rc;
}

LMQ_API int lmq_group_destroy(lmq_env *env, const char *channel,
                              const char *group) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "group destroy");
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  /* Under commit_mu no commit, ack or seek of the group can persist its
   * cursor after the key is deleted: a destroyed group never comes back. */
  pthread_mutex_lock(&g->commit_mu);
  pthread_mutex_lock(&g->mu);
  int dead = g->dead;
  pthread_mutex_unlock(&g->mu);
  if (dead) {
    rc = lmq__error(LMQ_ENOGROUP, "group '%s' was destroyed", group);
  } else {
    char key[LMQ__GROUP_KEY_MAX];
    rc = lmq_meta_del(env->meta, key, (size_t)lmq__group_key(key, ch->name, group));
    if (!rc) { /* a failed delete leaves the group as it was */
      pthread_mutex_lock(&g->mu);
      pthread_mutex_lock(&ch->mu);
      retire_locked(ch, g);
      pthread_mutex_unlock(&ch->mu);
      pthread_mutex_unlock(&g->mu);
    }
  }
  pthread_mutex_unlock(&g->commit_mu);
  lmq__chan_put(env, ch);
  return rc;
}

LMQ_API int lmq_group_exists(lmq_env *env, const char *channel,
                             const char *group) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc == LMQ_ENOGROUP) {
    lmq__error_clear();
    return 0;
  }
  if (rc)
    return rc;
  lmq__chan_put(env, ch);
  return 1;
}

/* Tail entries with id >= from and > after (ch->mu held). */
static uint64_t tail_count(const lmq_chan *ch, lmq_id from, lmq_id after) {
  return ch->tlen - lmq__chan_tail_find(ch, from > after ? from : after + 1);
}

/*
 * Where the group stands. Producers are never held up: the channel mutex is
 * taken only to begin the read snapshot and to count the tail (a binary
 * search). Lag is O(1) for a group at or behind the earliest retained
 * message (the common lagging case: LMDB keeps the entry count) or past
 * the applied ones; a cursor in the middle of applied messages costs a
 * count of the messages after it, outside any lock.
 */
LMQ_API int lmq_group_stats_get(lmq_group_stats *out, lmq_env *env,
                                const char *channel, const char *group) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  out->cursor = g->cursor;
  out->committed = g->committed;
  pthread_mutex_unlock(&g->mu);
  lmq_id gcursor = out->cursor;
retry:
  out->cursor = gcursor;
  out->lag = 0;
  MDB_txn *txn;
  pthread_mutex_lock(&ch->mu);
  uint64_t gen = ch->trim_gen;
  rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
  pthread_mutex_unlock(&ch->mu);
  lmq_id first = 0, last = 0;
  uint64_t msgs = 0;
  MDB_cursor *cur = NULL;
  int txn_open = !rc, src = 0;
  if (!rc && !(rc = mdb_cursor_open(txn, ch->dbi, &cur)) &&
      !(src = lmq__store_span(cur, &first, &last, &msgs))) {
    MDB_val k, v;
    uint64_t last_end = 0; /* one past the last message's ordinal */
    int last_has_ord = 0;
    if (msgs && !mdb_cursor_get(cur, &k, &v, MDB_LAST) &&
        (last_has_ord = lmq__key_ord(&k, &last_end)))
      last_end += lmq__key_count(&k);
    if (msgs && out->cursor > first && out->cursor <= last) {
      lmq__entry e;
      uint32_t skip;
      int m = lmq__store_seek(cur, out->cursor, &e, &skip);
      if (m == 0 && last_has_ord && e.has_ord && e.ord + skip < last_end) {
        /* Ordinals are consecutive: two lookups, no scan (key.h). */
        out->lag = last_end - (e.ord + skip);
      } else if (m == 0) {
        /* Keys without ordinals (a directory from before them): count. */
        out->lag = e.count - skip;
        while ((m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0 && lmq__key_valid(&k))
          out->lag += lmq__key_count(&k);
      }
    } else if (msgs && out->cursor <= first) {
      out->lag = msgs;
    }
  }
  if (cur)
    mdb_cursor_close(cur);
  if (txn_open)
    mdb_txn_abort(txn);
  if (!rc)
    rc = src;
  pthread_mutex_lock(&ch->mu);
  if (!rc && gen != ch->trim_gen) {
    /* The applier moved messages from the tail into LMDB after our
     * snapshot: they are in neither. Look again. */
    pthread_mutex_unlock(&ch->mu);
    goto retry;
  }
  if (!rc) {
    out->lag += tail_count(ch, out->cursor, last);
    /* A group behind the earliest retained message resumes there. */
    lmq_id earliest = first ? first : (ch->tlen > ch->thead ? ch->tail[ch->thead].id : 0);
    if (earliest && out->cursor < earliest)
      out->cursor = earliest;
  }
  pthread_mutex_unlock(&ch->mu);
  lmq__chan_put(env, ch);
  return rc ? lmq__mdb_code(rc, "group stats") : 0;
}
