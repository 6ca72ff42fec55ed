/*
 * group.c - consumer groups: cursors, consume (LMDB + in-memory tail), seek,
 * commit/ack through the metadata store, the pollable fd, group stats.
 *
 * Metadata key of a group: "group/<channel>/<group>" -> u64 LE cursor
 * (the next consume returns IDs >= cursor).
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lmq_msgs {
  size_t n, cap;
  lmq_msg *v;
  unsigned char *arena;
  size_t alen, acap;
};

static int gkey(char *buf, const char *chan, const char *group) {
  return snprintf(buf, 2 * LMQ_NAME_MAX + 16, "group/%s/%s", chan, group);
}

static lmq_group *group_new(const char *name, lmq_id cursor) {
  lmq_group *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    return NULL;
  }
  pthread_mutex_init(&g->mu, NULL);
  g->cursor = g->committed = cursor;
  g->efd = -1;
  return g;
}

static void group_free(lmq_group *g) {
  if (g->efd >= 0)
    close(g->efd);
  pthread_mutex_destroy(&g->mu);
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
    lmq_group *g = group_new(name, lmq__get64(kvs[i].val));
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

/*
 * Unlink g from the live groups and keep it on the dead list until the
 * channel is freed (other threads may still hold the pointer); wake its
 * pollers. Caller holds ch->mu.
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
  if (g->efd >= 0)
    lmq__event_set(g->efd);
}

/* Look up channel and group; on success the caller owns a channel ref. */
static int get_cg(lmq_chan **chp, lmq_group **gp, lmq_env *env,
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

/* Persist cursor for g (caller holds g->mu). */
static int persist(lmq_env *env, lmq_chan *ch, lmq_group *g, lmq_id cursor) {
  char key[2 * LMQ_NAME_MAX + 16];
  unsigned char v[8];
  lmq__put64(v, cursor);
  int rc = lmq_meta_put(env->meta, key, (size_t)gkey(key, ch->name, g->name), v, 8);
  if (!rc) {
    g->committed = cursor;
    g->dirty = g->cursor != cursor;
  }
  return rc;
}

/* Make the group's fd reflect whether messages wait (caller holds g->mu). */
static void fd_update(lmq_chan *ch, lmq_group *g) {
  pthread_mutex_lock(&ch->mu);
  if (g->efd >= 0) {
    int want = (ch->last_id && ch->last_id >= g->cursor) || atomic_load(&ch->dead);
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
  LMQ__ENV_CHECK(env);
  if (start != LMQ_START_EARLIEST && start != LMQ_START_LATEST)
    return lmq__error(LMQ_EINVAL, "start must be LMQ_START_EARLIEST or _LATEST");
  int rc = lmq__name_check("group", group);
  if (rc)
    return rc;
  lmq_chan *ch;
  if ((rc = lmq__chan_get(&ch, env, channel)))
    return rc;
  lmq_group *g = group_new(group, 0);
  if (!g) {
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  pthread_mutex_lock(&ch->mu);
  if (find_locked(ch, group)) {
    pthread_mutex_unlock(&ch->mu);
    group_free(g);
    lmq__chan_put(env, ch);
    return 0; /* idempotent: the existing cursor stays */
  }
  g->cursor = g->committed = start == LMQ_START_LATEST ? ch->last_id + 1 : 0;
  g->next = ch->groups;
  ch->groups = g;
  pthread_mutex_unlock(&ch->mu);
  pthread_mutex_lock(&g->mu);
  rc = persist(env, ch, g, g->cursor);
  pthread_mutex_unlock(&g->mu);
  if (rc) {
    pthread_mutex_lock(&ch->mu);
    retire_locked(ch, g);
    pthread_mutex_unlock(&ch->mu);
  }
  lmq__chan_put(env, ch);
  return rc;
}

LMQ_API int lmq_group_destroy(lmq_env *env, const char *channel,
                              const char *group) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&ch->mu);
  retire_locked(ch, g);
  pthread_mutex_unlock(&ch->mu);
  char key[2 * LMQ_NAME_MAX + 16];
  rc = lmq_meta_del(env->meta, key, (size_t)gkey(key, ch->name, group));
  lmq__chan_put(env, ch);
  return rc;
}

LMQ_API int lmq_group_exists(lmq_env *env, const char *channel,
                             const char *group) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc == LMQ_ENOGROUP) {
    lmq__error_clear();
    return 0;
  }
  if (rc)
    return rc;
  lmq__chan_put(env, ch);
  return 1;
}

/* --------------------------------------------------------------------- */
/* Results                                                               */

/*
 * Each thread keeps its last freed result (up to 4 MiB of arena) for its next
 * consume: growing a fresh arena by realloc on every call cost page faults.
 * A pthread key's destructor frees the cached one when the thread exits.
 */
#define MSGS_CACHE_MAX ((size_t)4 << 20)
static pthread_key_t msgs_key;
static pthread_once_t msgs_once = PTHREAD_ONCE_INIT;

static void msgs_release(lmq_msgs *m) {
  free(m->v);
  free(m->arena);
  free(m);
}

static void msgs_key_free(void *p) { msgs_release(p); }
static void msgs_key_init(void) { pthread_key_create(&msgs_key, msgs_key_free); }

static lmq_msgs *msgs_get(void) {
  pthread_once(&msgs_once, msgs_key_init);
  lmq_msgs *m = pthread_getspecific(msgs_key);
  if (m) {
    pthread_setspecific(msgs_key, NULL);
    m->n = 0;
    m->alen = 0;
    return m;
  }
  return calloc(1, sizeof(lmq_msgs));
}

static int res_add(lmq_msgs *r, lmq_id id, const void *data, size_t len) {
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 64;
    lmq_msg *nv = realloc(r->v, nc * sizeof *nv);
    if (!nv)
      return -1;
    r->v = nv;
    r->cap = nc;
  }
  if (r->alen + len > r->acap) {
    size_t na = r->acap ? r->acap : 4096;
    while (na < r->alen + len)
      na *= 2;
    unsigned char *a = realloc(r->arena, na);
    if (!a)
      return -1;
    r->arena = a;
    r->acap = na;
  }
  if (len)
    memcpy(r->arena + r->alen, data, len);
  /* data holds the arena offset until res_finish() turns it into a pointer
   * (the arena may still move). */
  r->v[r->n].id = id;
  r->v[r->n].data = (const void *)(uintptr_t)r->alen;
  r->v[r->n].len = len;
  r->alen += len;
  r->n++;
  return 0;
}

static void res_finish(lmq_msgs *r) {
  for (size_t i = 0; i < r->n; i++)
    r->v[i].data = r->arena + (uintptr_t)r->v[i].data;
}

/* Copy tail entries with id >= from (caller holds ch->mu). */
static int copy_tail(lmq_chan *ch, lmq_id from, size_t max, lmq_msgs *r) {
  size_t lo = ch->thead, hi = ch->tlen;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (ch->tail[mid].id < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < ch->tlen && max; i++, max--)
    if (res_add(r, ch->tail[i].id, ch->tail[i].data, ch->tail[i].len))
      return LMQ_ENOMEM;
  return 0;
}

/*
 * Read up to max messages with id >= from into r. *seen_last is the channel's
 * last published ID when the read completed.
 */
static int read_msgs(lmq_env *env, lmq_chan *ch, lmq_id from, size_t max,
                     lmq_msgs *r, lmq_id *seen_last) {
  int rc;
retry:
  r->n = 0;
  r->alen = 0;
  pthread_mutex_lock(&ch->mu);
  if (atomic_load(&ch->dead)) {
    pthread_mutex_unlock(&ch->mu);
    return lmq__error(LMQ_ENOCHANNEL, "channel '%s' was destroyed", ch->name);
  }
  if (ch->tlen > ch->thead && ch->tail[ch->thead].id <= from) {
    rc = copy_tail(ch, from, max, r);
    *seen_last = ch->last_id;
    pthread_mutex_unlock(&ch->mu);
    return rc ? lmq__error(rc, "out of memory") : 0;
  }
  uint64_t gen = ch->trim_gen;
  MDB_txn *txn;
  /* The snapshot is taken under ch->mu so that it and the tail agree:
   * anything trimmed later is already in this snapshot (see engine.h). */
  rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
  pthread_mutex_unlock(&ch->mu);
  if (rc)
    return lmq__mdb_code(rc, "consume");
  MDB_cursor *cur;
  if ((rc = mdb_cursor_open(txn, ch->dbi, &cur))) {
    mdb_txn_abort(txn);
    return lmq__mdb_code(rc, "consume");
  }
  unsigned char kb[8];
  lmq__put64be(kb, from);
  MDB_val k = {8, kb}, v;
  int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  while (mrc == 0 && r->n < max) {
    if (k.mv_size != 8) {
      mrc = MDB_CORRUPTED;
      break;
    }
    if (res_add(r, lmq__get64be(k.mv_data), v.mv_data, v.mv_size)) {
      mdb_cursor_close(cur);
      mdb_txn_abort(txn);
      return lmq__error(LMQ_ENOMEM, "out of memory");
    }
    mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  if (mrc && mrc != MDB_NOTFOUND)
    return lmq__mdb_code(mrc, "consume");
  pthread_mutex_lock(&ch->mu);
  if (r->n < max) {
    if (gen != ch->trim_gen) {
      pthread_mutex_unlock(&ch->mu);
      goto retry;
    }
    lmq_id after = r->n ? r->v[r->n - 1].id + 1 : from;
    if ((rc = copy_tail(ch, after, max - r->n, r))) {
      pthread_mutex_unlock(&ch->mu);
      return lmq__error(rc, "out of memory");
    }
  }
  *seen_last = ch->last_id;
  pthread_mutex_unlock(&ch->mu);
  return 0;
}

static void deadline_after(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

LMQ_API int lmq_consume(lmq_msgs **out, lmq_env *env, const char *channel,
                        const char *group, size_t max, int timeout_ms) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  if (max == 0)
    return lmq__error(LMQ_EINVAL, "max must be at least 1");
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  lmq_msgs *r = msgs_get();
  if (!r) {
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  struct timespec dl;
  if (timeout_ms > 0)
    deadline_after(&dl, timeout_ms);
  int expired = timeout_ms == 0;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->dead) {
      rc = lmq__error(LMQ_ENOGROUP, "group '%s' was destroyed", group);
      break;
    }
    lmq_id seen = 0;
    if ((rc = read_msgs(env, ch, g->cursor, max, r, &seen)))
      break;
    if (r->n) {
      g->cursor = r->v[r->n - 1].id + 1;
      g->dirty = 1;
      break;
    }
    if (seen && seen >= g->cursor) {
      /* Everything up to seen was removed by retention: skip the gap. */
      g->cursor = seen + 1;
      g->dirty = 1;
    }
    if (expired)
      break;
    lmq_id want = g->cursor;
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_lock(&ch->mu);
    ch->waiters++;
    while (!atomic_load(&ch->dead) && ch->last_id < want && !expired) {
      if (timeout_ms < 0)
        pthread_cond_wait(&ch->cond, &ch->mu);
      else if (pthread_cond_timedwait(&ch->cond, &ch->mu, &dl) == ETIMEDOUT)
        expired = 1;
    }
    ch->waiters--;
    pthread_mutex_unlock(&ch->mu);
    pthread_mutex_lock(&g->mu);
  }
  if (!rc)
    fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
  lmq__chan_put(env, ch);
  if (rc) {
    lmq_msgs_free(r);
    return rc;
  }
  res_finish(r);
  *out = r;
  return (int)(r->n > INT32_MAX ? INT32_MAX : r->n);
}

LMQ_API size_t lmq_msgs_count(const lmq_msgs *msgs) { return msgs ? msgs->n : 0; }

LMQ_API const lmq_msg *lmq_msgs_at(const lmq_msgs *msgs, size_t i) {
  return msgs && i < msgs->n ? &msgs->v[i] : NULL;
}

LMQ_API void lmq_msgs_free(lmq_msgs *msgs) {
  if (!msgs)
    return;
  pthread_once(&msgs_once, msgs_key_init);
  if (msgs->acap <= MSGS_CACHE_MAX && !pthread_getspecific(msgs_key) &&
      pthread_setspecific(msgs_key, msgs) == 0)
    return;
  msgs_release(msgs);
}

/* --------------------------------------------------------------------- */
/* Commit, ack, seek                                                     */

LMQ_API int lmq_group_commit(lmq_env *env, const char *channel,
                             const char *group) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  if (g->cursor != g->committed || g->dirty)
    rc = persist(env, ch, g, g->cursor);
  pthread_mutex_unlock(&g->mu);
  lmq__chan_put(env, ch);
  return rc;
}

LMQ_API int lmq_ack(lmq_env *env, const char *channel, const char *group,
                    lmq_id id) {
  lmq__error_clear();
  if (id == UINT64_MAX)
    return lmq__error(LMQ_EINVAL, "id out of range");
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  rc = persist(env, ch, g, id + 1);
  pthread_mutex_unlock(&g->mu);
  lmq__chan_put(env, ch);
  return rc;
}

enum seek_kind { SEEK_ID, SEEK_EARLIEST, SEEK_LATEST };

static int seek(lmq_env *env, const char *channel, const char *group, int kind,
                lmq_id id) {
  lmq__error_clear();
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  if (kind == SEEK_EARLIEST)
    id = 0;
  else if (kind == SEEK_LATEST) {
    pthread_mutex_lock(&ch->mu);
    id = ch->last_id + 1;
    pthread_mutex_unlock(&ch->mu);
  }
  g->cursor = id;
  rc = persist(env, ch, g, id);
  fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
  lmq__chan_put(env, ch);
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
  if (ms >= ((uint64_t)1 << (64 - LMQ_ID_LOGICAL_BITS)))
    return lmq__error(LMQ_EINVAL, "time %llu ms is out of range",
                      (unsigned long long)ms);
  return seek(env, channel, group, SEEK_ID, lmq_id_from_time(ms));
}

LMQ_API int lmq_group_fd(int *out, lmq_env *env, const char *channel,
                         const char *group) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  pthread_mutex_lock(&ch->mu);
  if (g->efd < 0) {
    g->efd = lmq__event_new();
    g->efd_set = 0;
  }
  int fd = g->efd;
  pthread_mutex_unlock(&ch->mu);
  if (fd >= 0)
    fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
  lmq__chan_put(env, ch);
  if (fd < 0)
    return lmq__error(LMQ_EIO, "eventfd: %s", strerror(errno));
  *out = fd;
  return 0;
}

LMQ_API int lmq_group_stats_get(lmq_group_stats *out, lmq_env *env,
                                const char *channel, const char *group) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  lmq_group *g;
  int rc = get_cg(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  pthread_mutex_lock(&g->mu);
  out->cursor = g->cursor;
  out->committed = g->committed;
  pthread_mutex_unlock(&g->mu);
  /* Lag: count what is retained at or after the cursor. */
  out->lag = 0;
  MDB_txn *txn;
  pthread_mutex_lock(&ch->mu);
  rc = mdb_txn_begin(env->mdb, NULL, MDB_RDONLY, &txn);
  if (!rc) {
    MDB_cursor *cur;
    lmq_id last = 0;
    if (!mdb_cursor_open(txn, ch->dbi, &cur)) {
      unsigned char kb[8];
      lmq__put64be(kb, out->cursor);
      MDB_val k = {8, kb}, v;
      int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
      while (m == 0) {
        out->lag++;
        last = lmq__get64be(k.mv_data);
        m = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
      }
      mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    for (size_t i = ch->thead; i < ch->tlen; i++)
      if (ch->tail[i].id >= out->cursor && ch->tail[i].id > last)
        out->lag++;
  }
  pthread_mutex_unlock(&ch->mu);
  lmq__chan_put(env, ch);
  return rc ? lmq__mdb_code(rc, "group stats") : 0;
}

/* etcd refuses transactions of more than 128 operations by default. */
#define COMMIT_BATCH 128

typedef struct pend {
  lmq_group *g;
  lmq_chan *ch;
} pend;

/* Commit a batch of dirty groups (all their g->mu held) in one transaction. */
static int commit_batch(lmq_env *env, pend *p, size_t n) {
  if (!n)
    return 0;
  lmq_meta_op ops[COMMIT_BATCH] = {{0}};
  char keys[COMMIT_BATCH][2 * LMQ_NAME_MAX + 16];
  unsigned char vals[COMMIT_BATCH][8];
  lmq_id cur[COMMIT_BATCH];
  for (size_t j = 0; j < n; j++) {
    cur[j] = p[j].g->cursor;
    int kl = gkey(keys[j], p[j].ch->name, p[j].g->name);
    lmq__put64(vals[j], cur[j]);
    ops[j] = (lmq_meta_op){LMQ_META_PUT, keys[j], (size_t)kl, vals[j], 8};
  }
  int rc = lmq_meta_txn(env->meta, NULL, 0, ops, n);
  for (size_t j = 0; j < n; j++) {
    if (!rc) {
      p[j].g->committed = cur[j];
      p[j].g->dirty = 0;
    }
    pthread_mutex_unlock(&p[j].g->mu);
  }
  return rc;
}

int lmq__groups_commit_all(lmq_env *env) {
  /* Snapshot channels with references; commit every dirty cursor in
   * transactions of up to COMMIT_BATCH groups (one etcd request each). A
   * group's mutex is held from reading its cursor until the commit lands,
   * so a concurrent seek (which commits itself) cannot be overwritten. */
  size_t n;
  lmq_chan **list = lmq__chan_snapshot(env, &n, 0);
  if (!list)
    return LMQ_ENOMEM;
  int rc = 0;
  pend batch[COMMIT_BATCH];
  size_t nb = 0;
  for (size_t i = 0; i < n; i++) {
    lmq_chan *ch = list[i];
    for (;;) {
      /* Groups are never freed while ch is referenced; walk under ch->mu
       * but take each g->mu only after releasing it (lock order). */
      lmq_group *gs[COMMIT_BATCH];
      size_t k = 0;
      pthread_mutex_lock(&ch->mu);
      for (lmq_group *g = ch->groups; g && k < COMMIT_BATCH; g = g->next)
        if (g->dirty)
          gs[k++] = g;
      pthread_mutex_unlock(&ch->mu);
      size_t taken = 0;
      for (size_t j = 0; j < k; j++) {
        pthread_mutex_lock(&gs[j]->mu);
        if (gs[j]->dead || !gs[j]->dirty) {
          pthread_mutex_unlock(&gs[j]->mu);
          continue;
        }
        batch[nb++] = (pend){gs[j], ch};
        taken++;
        if (nb == COMMIT_BATCH) {
          int r = commit_batch(env, batch, nb);
          if (r && !rc)
            rc = r;
          nb = 0;
        }
      }
      if (k < COMMIT_BATCH || taken == 0 || rc)
        break;
    }
  }
  int r = commit_batch(env, batch, nb);
  if (r && !rc)
    rc = r;
  lmq__chan_release(env, list, n);
  return rc;
}

LMQ_API int lmq_group_commit_all(lmq_env *env) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  int rc = lmq__groups_commit_all(env);
  return rc == LMQ_ENOMEM ? lmq__error(rc, "out of memory") : rc;
}
