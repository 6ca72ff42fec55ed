/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * produce.c - ID allocation, WAL group commit and publication.
 *
 * Producers append their record to env->pending under wal_mu, then sleep on
 * their chunk's state word until it is done. Whoever finds no leader at
 * work becomes the leader: it takes the pending chunk, writes it with one
 * pwrite, fdatasyncs once if any record asked for it, publishes every
 * record to its channel's tail and queues the chunk for the applier.
 * Producers that arrive meanwhile fill the next chunk, so one fsync covers
 * all of them; when the leader is done it hands the lead to one of them.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"
#include "common/varint.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Room reserved at the start of every chunk for a MARK record. */
#define CHUNK_HDR LMQ_WAL_CTL_SIZE

/* A chunk's state, which its producers sleep on: WAIT until it is done,
 * LEAD when the previous leader hands this chunk's flush to one of them
 * (whoever swaps it back to WAIT leads), DONE once it is written, synced as
 * asked and published (c->err holds the result). */
enum { CHUNK_WAIT = 0, CHUNK_LEAD = 1, CHUNK_DONE = 2 };

/* A leader lingers for at most this fraction of the recent fdatasync time,
 * and never longer than LINGER_MAX_NS (see lead()). */
#define LINGER_DIV 2
#define LINGER_MAX_NS 200000

/* Chunks (and their buffers) are recycled: allocating and faulting in a
 * fresh multi-page buffer per group commit was a large share of the cost. */
#define FREE_CHUNKS_MAX 4
#define FREE_CHUNK_CAP_MAX ((size_t)1 << 20) /* at most 4 MiB kept idle */

/* A fresh chunk comes in one allocation with room for a small record or
 * two: with NONE/INTERVAL a single-message chunk per call is common, and
 * three allocations per chunk (struct, buffer, record list), freed in
 * bursts by the applier, were a fifth of a single-message produce. */
#define CHUNK_INLINE_RECS 2
#define CHUNK_INLINE_BUF 512
typedef struct chunk_block {
  chunk c;
  rec_ref recs[CHUNK_INLINE_RECS];
  unsigned char buf[CHUNK_INLINE_BUF];
} chunk_block;

static int buf_inline(const chunk *c) {
  return c->buf == ((chunk_block *)c)->buf;
}
static int recs_inline(const chunk *c) {
  return c->recs == ((chunk_block *)c)->recs;
}

static void chunk_release(chunk *c) {
  if (!buf_inline(c))
    free(c->buf);
  if (!recs_inline(c))
    free(c->recs);
  free(c);
}

chunk *lmq__chunk_new(lmq_env *env, uint64_t seq) {
  chunk *c = NULL;
  pthread_mutex_lock(&env->free_mu);
  if (env->free_chunks) {
    c = env->free_chunks;
    env->free_chunks = c->next;
    env->nfree--;
  }
  pthread_mutex_unlock(&env->free_mu);
  if (!c) {
    chunk_block *b = malloc(sizeof *b);
    if (!b)
      return NULL;
    memset(&b->c, 0, sizeof b->c);
    c = &b->c;
    c->buf = b->buf;
    c->cap = CHUNK_INLINE_BUF;
    c->recs = b->recs;
    c->rcap = CHUNK_INLINE_RECS;
  }
  c->next = NULL;
  c->len = CHUNK_HDR;
  c->nrecs = 0;
  c->need_sync = 0;
  c->has_interval = 0;
  c->err = 0;
  c->seq = seq;
  c->lead_taken = 0;
  atomic_init(&c->state, CHUNK_WAIT);
  atomic_init(&c->nwait, 0);
  atomic_init(&c->refs, 1);
  return c;
}

void lmq__chunk_unref(lmq_env *env, chunk *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  pthread_mutex_lock(&env->free_mu);
  /* Under a memory_limit the idle buffers kept add up to at most one
   * chunk_cap (see memlimit.c). */
  size_t keep = env->chunk_cap / FREE_CHUNKS_MAX;
  if (keep > FREE_CHUNK_CAP_MAX)
    keep = FREE_CHUNK_CAP_MAX;
  if (env->nfree < FREE_CHUNKS_MAX && c->cap <= keep) {
    c->next = env->free_chunks;
    env->free_chunks = c;
    env->nfree++;
    c = NULL;
  }
  pthread_mutex_unlock(&env->free_mu);
  if (c)
    chunk_release(c);
}

size_t lmq__chunk_mem(const chunk *c) {
  size_t m = sizeof(chunk_block);
  if (!buf_inline(c))
    m += c->cap;
  if (!recs_inline(c))
    m += c->rcap * sizeof(rec_ref);
  return m;
}

void lmq__chunk_trim(lmq_env *env) {
  lmq__chan_tails_release(env);
  pthread_mutex_lock(&env->free_mu);
  lmq__chunk_free_all(env);
  pthread_mutex_unlock(&env->free_mu);
#ifdef HAVE_MALLOC_TRIM
  /* The chunks of a burst were freed in the middle of the heap, where free()
   * cannot give them back: without this, private memory stays at its peak
   * for the life of the process. */
  malloc_trim(0);
#endif
}

void lmq__chunk_free_all(lmq_env *env) {
  while (env->free_chunks) {
    chunk *c = env->free_chunks;
    env->free_chunks = c->next;
    chunk_release(c);
  }
  env->nfree = 0;
}

static int chunk_reserve(chunk *c, size_t more) {
  if (c->len + more > c->cap) {
    /* Start small: with NONE/INTERVAL a single-message chunk is common and
     * thousands may wait for the applier at once. */
    size_t ncap = c->cap;
    while (ncap < c->len + more)
      ncap *= 2;
    unsigned char *nb;
    if (buf_inline(c)) {
      if ((nb = malloc(ncap)))
        memcpy(nb, c->buf, c->len);
    } else {
      nb = realloc(c->buf, ncap);
    }
    if (!nb)
      return -1;
    c->buf = nb;
    c->cap = ncap;
  }
  if (c->nrecs == c->rcap) {
    size_t nr = c->rcap * 2;
    rec_ref *n;
    if (recs_inline(c)) {
      if ((n = malloc(nr * sizeof *n)))
        memcpy(n, c->recs, c->nrecs * sizeof *n);
    } else {
      n = realloc(c->recs, nr * sizeof *n);
    }
    if (!n)
      return -1;
    c->recs = n;
    c->rcap = nr;
  }
  return 0;
}

/* Write, maybe sync, publish and queue chunk c. Called by the leader with
 * no lock held. Returns 0 or an LMQ error (also stored in c->err). */
static int leader_flush(lmq_env *env, chunk *c) {
  int rc = 0;
  pthread_mutex_lock(&env->io_mu);
  if (atomic_load(&env->failed)) {
    rc = lmq__error(LMQ_EFAILED, "an earlier WAL fsync failed; reopen the env");
    goto out_unlock;
  }
  if (env->wal_ended ||
      (env->wal_off > 0 && env->wal_off + c->len > env->opt.wal_segment_size) ||
      lmq__wal_roll_early(env)) {
    if ((rc = lmq__wal_roll(env)))
      goto out_unlock;
  }
  /* The chunk's first CHUNK_HDR bytes are reserved for a MARK record: it
   * is written when a sync has moved the synced offset since the last one,
   * so that recovery can tell synced data from a torn tail. */
  size_t skip = CHUNK_HDR;
  if (env->wal_synced_off > env->wal_mark_off) {
    lmq__wal_ctl(c->buf, LMQ_WAL_REC_MARK, env->wal_synced_off, env->wal_seg);
    skip = 0;
  }
  /* Records are sealed with the segment number they land in. */
  for (size_t i = 0; i < c->nrecs; i++)
    lmq__wal_rec_seal(c->buf + c->recs[i].rec_off, c->recs[i].rec_size,
                      env->wal_seg);
  uint64_t start = env->wal_off;
  size_t wlen = c->len - skip;
  int e = lmq__pwrite_all(env->wal_fd, c->buf + skip, wlen, (off_t)start);
  if (e) {
    /* Cut off whatever part was written so the log stays a clean prefix;
     * the env keeps working once space returns. */
    if (ftruncate(env->wal_fd, (off_t)start) != 0)
      atomic_store(&env->failed, 1);
    rc = lmq__error(lmq__errno_code(e), "WAL write: %s", strerror(e));
    goto out_unlock;
  }
  if (!skip)
    env->wal_mark_off = env->wal_synced_off;
  env->wal_off = start + wlen;
  env->wal_live_bytes += wlen;
  c->seg = env->wal_seg;
  c->end_off = env->wal_off;
  if (c->need_sync) {
    env->sync_recs_avg = (env->sync_recs_avg * 7 + c->nrecs * 16) / 8;
    /* A failed fdatasync fails the env (see lmq__wal_sync). The records of
     * this chunk are written and may or may not be on disk: the callers
     * get an error, and after a reopen their messages are either all
     * there or all gone (documented in lmq_produce). */
    if ((rc = lmq__wal_sync(env)))
      goto out_unlock;
  } else if (c->has_interval) {
    env->interval_dirty = 1;
  }
  atomic_fetch_add(&env->st_commits, 1);
out_unlock:
  pthread_mutex_unlock(&env->io_mu);
  if (rc) {
    for (size_t i = 0; i < c->nrecs; i++) {
      lmq__chan_unreserve(c->recs[i].ch, c->recs[i].count);
      lmq__chan_put_queued(env, c->recs[i].ch);
      c->recs[i].ch = NULL;
    }
    c->nrecs = 0;
    c->err = rc;
    return rc;
  }
  for (size_t i = 0; i < c->nrecs; i++)
    lmq__chan_publish(c->recs[i].ch, c, &c->recs[i]);
  /* Hand the chunk to the applier (it takes its own reference). */
  atomic_fetch_add(&c->refs, 1);
  c->queued_ns = lmq__mono_ns();
  pthread_mutex_lock(&env->app_mu);
  c->next = NULL;
  if (env->aq_tail)
    env->aq_tail->next = c;
  else
    env->aq_head = c;
  env->aq_tail = c;
  env->unapplied += c->len;
  c->mem = lmq__chunk_mem(c);
  env->unapplied_mem += c->mem;
  int want = 1; /* a zero-filled spare is wanted: wake the applier once */
  if (lmq__apply_due(env) ||
      atomic_compare_exchange_strong(&env->spare_wanted, &want, 2))
    pthread_cond_signal(&env->app_cond);
  pthread_mutex_unlock(&env->app_mu);
  return 0;
}

/* Sleep on c's state while it is seen (a futex). Producers count
 * themselves in nwait first, so that chunk_set makes the wake-up system
 * call only when somebody sleeps: with a lone producer (NONE, one thread)
 * an unconditional wake was one system call per produce. Both sides use
 * sequentially consistent order (store state / read nwait against add
 * nwait / read state): either the setter sees the sleeper or the sleeper
 * sees the new state; the futex re-checks the word before sleeping. */
static void chunk_sleep(chunk *c, int seen) {
  atomic_fetch_add(&c->nwait, 1);
  if (atomic_load(&c->state) == seen)
    lmq__futex_wait(&c->state, seen);
  atomic_fetch_sub(&c->nwait, 1);
}

static void chunk_set(chunk *c, int state, int n) {
  atomic_store(&c->state, state);
  if (atomic_load(&c->nwait))
    lmq__futex_wake(&c->state, n);
}

/*
 * Lead the flush of env->pending, which holds the caller's record (wal_mu
 * held, env->flushing set by the caller). Returns with wal_mu released,
 * once that chunk is done.
 *
 * Only that chunk's producers are woken, each from its own chunk's state
 * word: none of them needs wal_mu to return. If the next chunk already has
 * records, one of its producers is handed the lead at once (flushing stays
 * set), so its write and fdatasync start while ours return; otherwise the
 * next producer to arrive leads.
 */
static void lead(lmq_env *env, int linger) {
  for (;;) {
    chunk *c = env->pending;
    /* Linger: wait, for at most a fraction of the recent fsync time, until
     * as many records are pending as there were producers in the last
     * cycle (those of the last chunk, now returning, and those that were
     * already waiting in this one), so that they share this fsync. A lone
     * producer never waits. */
    if (linger && c->need_sync && env->linger_target > 1 &&
        c->nrecs < env->linger_target) {
      uint64_t wait = atomic_load_explicit(&env->sync_ns_avg, memory_order_relaxed) /
                      LINGER_DIV;
      if (wait > LINGER_MAX_NS)
        wait = LINGER_MAX_NS;
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t ns = (uint64_t)ts.tv_nsec + wait;
      ts.tv_sec += (time_t)(ns / 1000000000u);
      ts.tv_nsec = (long)(ns % 1000000000u);
      env->lingering = 1;
      while (c->nrecs < env->linger_target && !c->lead_taken &&
             pthread_cond_timedwait(&env->linger_cond, &env->wal_mu, &ts) == 0)
        ;
      if (c->lead_taken) {
        /* The producer that completed the batch leads it (produce_chan):
         * wait for c like any of its producers. */
        pthread_mutex_unlock(&env->wal_mu);
        int st;
        while ((st = atomic_load_explicit(&c->state, memory_order_acquire)) !=
               CHUNK_DONE)
          chunk_sleep(c, st);
        return;
      }
      env->lingering = 0;
    }
    /* The producers of c made sure a next chunk was there (see
     * lmq_produce): rotating needs no allocation, which could fail with
     * nobody to report it to. */
    chunk *fresh = env->next_chunk;
    if (fresh) {
      env->next_chunk = NULL;
      fresh->seq = c->seq + 1;
    } else {
      fresh = lmq__chunk_new(env, c->seq + 1);
    }
    if (!fresh) {
      /* Cannot rotate the pending chunk: wait for memory and retry. */
      pthread_mutex_unlock(&env->wal_mu);
      usleep(1000);
      pthread_mutex_lock(&env->wal_mu);
      continue;
    }
    env->pending = fresh;
    pthread_cond_broadcast(&env->wal_cond); /* producers held at the soft cap */
    pthread_mutex_unlock(&env->wal_mu);
    if (c->nrecs)
      leader_flush(env, c);
    pthread_mutex_lock(&env->wal_mu);
    env->done_seq = c->seq;
    chunk *next = env->pending;
    int handoff = next->nrecs > 0;
    env->linger_target = c->nrecs + next->nrecs;
    if (!handoff)
      env->flushing = 0;
    pthread_cond_broadcast(&env->wal_cond); /* lmq__wal_barrier */
    pthread_mutex_unlock(&env->wal_mu);
    if (handoff) {
      /* next stays pending until one of its producers claims the lead
       * (flushing is still set): nobody else rotates it. But once its
       * state is stored that producer may flush it and the applier free
       * it before chunk_set reads nwait: hold a reference across. */
      atomic_fetch_add(&next->refs, 1);
      chunk_set(next, CHUNK_LEAD, 1);
      lmq__chunk_unref(env, next);
    }
    chunk_set(c, CHUNK_DONE, INT_MAX);
    lmq__chunk_unref(env, c); /* env->pending's reference */
    return;
  }
}

/*
 * Wait until chunk c (env->pending when called, with the caller's reference
 * and wal_mu held) is done, leading its flush when nobody else is. Returns
 * with wal_mu released.
 */
static void await_chunk(lmq_env *env, chunk *c) {
  if (!env->flushing) {
    env->flushing = 1;
    lead(env, 1);
    return;
  }
  pthread_mutex_unlock(&env->wal_mu);
  for (;;) {
    int s = atomic_load_explicit(&c->state, memory_order_acquire);
    if (s == CHUNK_DONE)
      return;
    if (s == CHUNK_LEAD) {
      if (atomic_compare_exchange_strong(&c->state, &s, CHUNK_WAIT)) {
        pthread_mutex_lock(&env->wal_mu);
        lead(env, 1);
        return;
      }
      /* Another producer took the lead, and c may even be done by now (s
       * holds what the state is): look again rather than sleep on it. */
      continue;
    }
    chunk_sleep(c, s);
  }
}

int lmq__wal_barrier(lmq_env *env) {
  pthread_mutex_lock(&env->wal_mu);
  chunk *c = env->pending;
  if (c->nrecs) {
    atomic_fetch_add(&c->refs, 1);
    await_chunk(env, c);
    lmq__chunk_unref(env, c);
    return 0;
  }
  /* Nothing pending: wait for the chunk being flushed, if any. */
  uint64_t seq = c->seq - 1;
  while (env->done_seq < seq)
    pthread_cond_wait(&env->wal_cond, &env->wal_mu);
  pthread_mutex_unlock(&env->wal_mu);
  return 0;
}

/* Producers wait here while the unapplied chunks hold more memory than
 * max_unapplied (the applier is behind): what a process holds stays bounded
 * whatever the produce rate, and so does what retention cannot yet delete. */
static int backpressure(lmq_env *env) {
  int rc = 0;
  pthread_mutex_lock(&env->app_mu);
  while (env->unapplied_mem > env->opt.max_unapplied) {
    if (env->app_err) {
      rc = lmq__error(env->app_err, "the WAL cannot be applied to LMDB: %s",
                      lmq_strerror(env->app_err));
      break;
    }
    pthread_cond_signal(&env->app_cond);
    pthread_cond_wait(&env->app_done, &env->app_mu);
  }
  if (!rc && env->app_err == LMQ_EMAPFULL)
    rc = lmq__error(LMQ_EMAPFULL, "the LMDB map is full; raise map_size or "
                    "free space (retention, destroy)");
  pthread_mutex_unlock(&env->app_mu);
  return rc;
}

/* A produce call's sizes: payload bytes and length-prefix bytes. */
typedef struct produce_size {
  uint64_t total, len_bytes;
} produce_size;

static int produce_chan(lmq_env *env, lmq_chan *ch, const lmq_buf *msgs,
                        size_t n, lmq_id *out_ids, int sync, produce_size sz);

/* Validate a produce call's arguments; 0 and *out. */
static int produce_check(lmq_env *env, const lmq_buf *msgs, size_t n, int sync,
                         produce_size *out) {
  if (!msgs || n == 0)
    return lmq__error(LMQ_EINVAL, "produce needs at least one message");
  if (n > UINT32_MAX)
    return lmq__error(LMQ_ETOOBIG, "too many messages in one call");
  if (sync < LMQ_SYNC_DEFAULT || sync > LMQ_SYNC_NONE)
    return lmq__error(LMQ_EINVAL, "sync policy %d is invalid", sync);
  uint64_t total = 0, len_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    if (msgs[i].len && !msgs[i].data)
      return lmq__error(LMQ_EINVAL, "message %zu has NULL data", i);
    if (msgs[i].len > env->opt.max_message_size)
      return lmq__error(LMQ_ETOOBIG, "message %zu is %zu bytes; max_message_size "
                        "is %u", i, msgs[i].len, env->opt.max_message_size);
    total += msgs[i].len;
    len_bytes += lmq__varint_len(msgs[i].len);
  }
  if (total + len_bytes > LMQ_WAL_MAX_BODY - 300)
    return lmq__error(LMQ_ETOOBIG, "batch of %" PRIu64 " bytes is too large",
                      (uint64_t)total);
  if (atomic_load(&env->failed))
    return lmq__error(LMQ_EFAILED, "an earlier WAL fsync failed; reopen the env");
  out->total = total;
  out->len_bytes = len_bytes;
  return 0;
}

LMQ_API int lmq_produce(lmq_env *env, const char *channel, const lmq_buf *msgs,
                        size_t n, lmq_id *out_ids, int sync) {
  lmq__error_clear();
  LMQ__ENV_WRITABLE(env, "produce");
  LMQ__ENV_CHECK(env);
  if (atomic_load(&env->closed))
    return lmq__error(LMQ_ECLOSED, "env is closed");
  produce_size sz;
  int rc = produce_check(env, msgs, n, sync, &sz);
  if (rc)
    return rc;
  lmq_chan *ch;
  if ((rc = lmq__chan_get(&ch, env, channel)))
    return rc;
  return produce_chan(env, ch, msgs, n, out_ids, sync, sz);
}

int lmq__produce_ch(lmq_env *env, lmq_chan *ch, const lmq_buf *msgs, size_t n,
                    lmq_id *out_ids, int sync) {
  produce_size sz;
  int rc = produce_check(env, msgs, n, sync, &sz);
  if (rc) {
    lmq__chan_put(env, ch);
    return rc;
  }
  return produce_chan(env, ch, msgs, n, out_ids, sync, sz);
}

/* The checked produce: the caller's reference on ch is taken over. */
static int produce_chan(lmq_env *env, lmq_chan *ch, const lmq_buf *msgs,
                        size_t n, lmq_id *out_ids, int sync, produce_size sz) {
  int rc;
  if (sync == LMQ_SYNC_DEFAULT)
    sync = env->opt.sync;
  if ((rc = backpressure(env)) || (rc = lmq__chan_reserve(ch, n))) {
    lmq__chan_put(env, ch);
    return rc;
  }
  size_t size = lmq__wal_rec_size(ch->name_len, sz.len_bytes, sz.total);

  pthread_mutex_lock(&env->wal_mu);
  /* Do not grow a chunk without bound while a leader is writing. */
  while (env->pending->nrecs > 0 && env->pending->len + size > env->chunk_cap &&
         env->flushing && !env->lingering)
    pthread_cond_wait(&env->wal_cond, &env->wal_mu);
  if (atomic_load(&ch->dead)) {
    pthread_mutex_unlock(&env->wal_mu);
    lmq__chan_unreserve(ch, n);
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOCHANNEL, "channel '%s' was destroyed", ch->name);
  }
  chunk *c = env->pending;
  if (!env->next_chunk && !(env->next_chunk = lmq__chunk_new(env, 0))) {
    pthread_mutex_unlock(&env->wal_mu);
    lmq__chan_unreserve(ch, n);
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOMEM, "out of memory for a WAL chunk");
  }
  if (chunk_reserve(c, size)) {
    pthread_mutex_unlock(&env->wal_mu);
    lmq__chan_unreserve(ch, n);
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ENOMEM, "out of memory for a %zu-byte record", size);
  }
  /* IDs: strictly increasing, never below the wall clock's. */
  lmq_id first = lmq_id_from_time(lmq__now_ms());
  if (first <= env->last_id)
    first = env->last_id + 1;
  if (first > LMQ_ID_MAX || n - 1 > LMQ_ID_MAX - first) {
    pthread_mutex_unlock(&env->wal_mu);
    lmq__chan_unreserve(ch, n);
    lmq__chan_put(env, ch);
    return lmq__error(LMQ_ELIMIT, "message IDs are exhausted (the clock or the "
                      "stored high-water mark is past LMQ_ID_MAX)");
  }
  env->last_id = first + n - 1;
  unsigned char *rec = c->buf + c->len;
  unsigned char *p = lmq__wal_rec_begin(rec, size, ch->name, ch->name_len,
                                        ch->incarnation, first, (uint32_t)n);
  rec_ref *r = &c->recs[c->nrecs++];
  r->ch = ch; /* the chunk now holds our channel reference */
  atomic_fetch_add(&ch->qheld, 1);
  r->first_id = first;
  r->count = (uint32_t)n;
  r->off = (size_t)(p - c->buf);
  r->bytes = sz.total;
  for (size_t i = 0; i < n; i++) {
    p += lmq__varint_put(p, msgs[i].len);
    if (msgs[i].len)
      memcpy(p, msgs[i].data, msgs[i].len);
    p += msgs[i].len;
  }
  r->rec_off = (size_t)(rec - c->buf);
  r->rec_size = size;
  c->len += size;
  if (sync == LMQ_SYNC_ALWAYS)
    c->need_sync = 1;
  else if (sync == LMQ_SYNC_INTERVAL)
    c->has_interval = 1;
  atomic_fetch_add(&c->refs, 1);
  if (env->lingering && c->nrecs >= env->linger_target) {
    /* This record completes the batch a leader lingers for: lead it from
     * here rather than wake that leader to do it, one wake-up less between
     * the producers' return and the next fsync. That leader finds
     * lead_taken when its timed wait ends and waits like any producer. */
    c->lead_taken = 1;
    env->lingering = 0;
    lead(env, 0);
  } else {
    await_chunk(env, c);
  }
  rc = c->err;
  lmq__chunk_unref(env, c);
  if (rc)
    return lmq__error(rc, "produce to '%s' failed: %s", ch->name, lmq_strerror(rc));
  atomic_fetch_add(&env->st_produced, n);
  if (out_ids)
    for (size_t i = 0; i < n; i++)
      out_ids[i] = first + i;
  return 0;
}
