/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * consume.c - reading a group's messages: LMDB then the in-memory tail,
 * blocking with wake-ups, results (lmq_msgs), and the pollable fd.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct lmq_msgs {
  size_t n, cap;
  lmq_msg *v;
  unsigned char *arena;
  size_t alen, acap;
  lmq__memacct *acct; /* memory_limit's account it is charged to, or NULL */
  uint64_t charged;
};


/* --------------------------------------------------------------------- */
/* Results                                                               */

/*
 * Each thread keeps its last freed result (up to 4 MiB of arena) for its next
 * consume: growing a fresh arena by realloc on every call cost page faults.
 * A pthread key's destructor frees the cached one when the thread exits.
 */
#define MSGS_CACHE_MAX ((size_t)4 << 20)
#define MSGS_CACHE_LIMITED ((size_t)64 << 10)
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

static void res_finish(lmq_env *env, lmq_msgs *r) {
  if (env->acct) {
    r->charged = r->acap + r->cap * sizeof *r->v;
    r->acct = lmq__memacct_charge(env->acct, r->charged);
  }
  /* Only empty payloads leave the arena unallocated (NULL + 0 is undefined
   * behaviour, found by the wal_recover fuzz target under UBSan). */
  static const unsigned char empty[1];
  for (size_t i = 0; i < r->n; i++)
    r->v[i].data = r->arena ? r->arena + (uintptr_t)r->v[i].data : empty;
}

/* Whether a message of len bytes still fits a result limited to room bytes
 * of payload (memory_limit): the first message always does. */
static int res_fits(const lmq_msgs *r, size_t len, size_t room) {
  return r->n == 0 || (r->alen + len <= room && r->alen + len >= r->alen);
}

/* Copy tail entries with id >= from (caller holds ch->mu). */
static int copy_tail(lmq_chan *ch, lmq_id from, size_t max, size_t room,
                     lmq_msgs *r) {
  for (size_t i = lmq__chan_tail_find(ch, from); i < ch->tlen && max; i++, max--) {
    if (!res_fits(r, ch->tail[i].len, room))
      break;
    if (res_add(r, ch->tail[i].id, ch->tail[i].data, ch->tail[i].len))
      return LMQ_ENOMEM;
  }
  return 0;
}

/*
 * Read up to max messages with id >= from into r. *seen_last is the channel's
 * last published ID when the read completed.
 */
static int read_msgs(lmq_env *env, lmq_chan *ch, lmq_id from, size_t max,
                     lmq_msgs *r, lmq_id *seen_last) {
  int rc;
  /* Under a memory_limit a result holds at most what the read share has
   * left (at least one message): reads get smaller, they never fail. */
  size_t room = lmq__mem_read_allowance(env);
  int full = 0;
retry:
  full = 0;
  r->n = 0;
  r->alen = 0;
  pthread_mutex_lock(&ch->mu);
  if (atomic_load(&ch->dead)) {
    pthread_mutex_unlock(&ch->mu);
    return lmq__error(LMQ_ENOCHANNEL, "channel '%s' was destroyed", ch->name);
  }
  if (ch->tlen > ch->thead && ch->tail[ch->thead].id <= from) {
    rc = copy_tail(ch, from, max, room, r);
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
  lmq__entry e;
  uint32_t skip;
  int mrc = lmq__store_seek(cur, from, &e, &skip);
  while (mrc == 0 && r->n < max && !full) {
    /* The entry's messages (a run holds several: store.h), from skip on. */
    size_t pos = 0;
    uint32_t idx = 0, len;
    const void *d;
    int g = 0;
    while (r->n < max && (g = lmq__entry_next(&e, &pos, &idx, &d, &len)) == 1) {
      if (idx <= skip)
        continue;
      if (!res_fits(r, len, room)) {
        full = 1;
        break;
      }
      if (res_add(r, e.id + idx - 1, d, len)) {
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        return lmq__error(LMQ_ENOMEM, "out of memory");
      }
    }
    if (r->n >= max || full)
      break;
    if (g != 0) {
      mrc = g;
      break;
    }
    skip = 0;
    MDB_val k, v;
    if ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0 && lmq__entry_get(&e, &k, &v))
      mrc = MDB_CORRUPTED;
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  if (mrc && mrc != MDB_NOTFOUND)
    return lmq__mdb_code(mrc, "consume");
  pthread_mutex_lock(&ch->mu);
  if (r->n < max && !full) {
    if (gen != ch->trim_gen) {
      pthread_mutex_unlock(&ch->mu);
      goto retry;
    }
    lmq_id after = r->n ? r->v[r->n - 1].id + 1 : from;
    if ((rc = copy_tail(ch, after, max - r->n, room, r))) {
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
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__consume_g(out, env, ch, g, max, timeout_ms);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__consume_g(lmq_msgs **out, lmq_env *env, lmq_chan *ch, lmq_group *g,
                   size_t max, int timeout_ms) {
  int rc;
  lmq_msgs *r = msgs_get();
  if (!r)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  struct timespec dl;
  if (timeout_ms > 0)
    deadline_after(&dl, timeout_ms);
  int expired = timeout_ms == 0;
  pthread_mutex_lock(&g->mu);
  for (;;) {
    if (g->dead) {
      rc = lmq__error(LMQ_ENOGROUP, "group '%s' was destroyed", g->name);
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
    /* IDs start at 1: a cursor of 0 (a group created at the earliest of
     * an empty channel) waits for ID 1. Waiting for "last_id >= 0" was
     * always satisfied, so such a consume spun and ignored its timeout. */
    lmq_id want = g->cursor ? g->cursor : 1;
    /* Take ch->mu before letting go of g->mu: a seek or destroy changes
     * the group under both and bumps g->wake, so none is missed. */
    pthread_mutex_lock(&ch->mu);
    unsigned wake = g->wake;
    pthread_mutex_unlock(&g->mu);
    ch->waiters++;
    while (!atomic_load(&ch->dead) && ch->last_id < want && g->wake == wake &&
           !expired) {
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
    lmq__group_fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
  if (rc) {
    lmq_msgs_free(r);
    return rc;
  }
  res_finish(env, r);
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
  /* Under a memory_limit only a small result is kept for reuse. */
  size_t keep = msgs->acct ? MSGS_CACHE_LIMITED : MSGS_CACHE_MAX;
  lmq__memacct_discharge(msgs->acct, msgs->charged);
  msgs->acct = NULL;
  msgs->charged = 0;
  pthread_once(&msgs_once, msgs_key_init);
  if (msgs->acap <= keep && !pthread_getspecific(msgs_key) &&
      pthread_setspecific(msgs_key, msgs) == 0)
    return;
  msgs_release(msgs);
}


LMQ_API int lmq_group_fd(int *out, lmq_env *env, const char *channel,
                         const char *group) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  lmq_chan *ch;
  lmq_group *g;
  int rc = lmq__group_get(&ch, &g, env, channel, group);
  if (rc)
    return rc;
  rc = lmq__group_fd_g(out, ch, g);
  lmq__chan_put(env, ch);
  return rc;
}

int lmq__group_fd_g(int *out, lmq_chan *ch, lmq_group *g) {
  pthread_mutex_lock(&g->mu);
  pthread_mutex_lock(&ch->mu);
  if (g->efd < 0) {
    g->efd = lmq__event_new();
    g->efd_set = 0;
  }
  int fd = g->efd;
  pthread_mutex_unlock(&ch->mu);
  if (fd >= 0)
    lmq__group_fd_update(ch, g);
  pthread_mutex_unlock(&g->mu);
  if (fd < 0)
    return lmq__error(LMQ_EIO, "eventfd: %s", strerror(errno));
  *out = fd;
  return 0;
}

int lmq__read_into(lmq_msgs **out, lmq_env *env, lmq_chan *ch, lmq_id from,
                   size_t max) {
  lmq_msgs *r = msgs_get();
  if (!r)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  lmq_id seen = 0;
  int rc = read_msgs(env, ch, from, max, r, &seen);
  if (rc) {
    lmq_msgs_free(r);
    return rc;
  }
  res_finish(env, r);
  *out = r;
  return 0;
}
