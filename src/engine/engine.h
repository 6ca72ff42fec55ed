/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * engine.h - internal structures of the engine (not installed).
 *
 * Write path: lmq_produce() serializes a WAL record into the env's pending
 * chunk under wal_mu and waits; one producer at a time becomes the leader,
 * takes the pending chunk, writes it (and fdatasyncs it when any record in it
 * asked for ALWAYS), publishes its messages to the channels' in-memory tails
 * (so they are visible at once) and hands the chunk to the applier. The
 * applier copies chunks into LMDB in large transactions, records the applied
 * WAL position in the same transaction, then trims the tails and frees the
 * chunks. A checkpoint syncs LMDB and deletes fully-applied WAL segments.
 *
 * Lock order: group->mu -> chan->mu, and env->reg_mu -> chan->mu (channel
 * snapshots read retention settings). env->wal_mu is never held while
 * taking a chan->mu or group->mu; the leader takes chan->mu while
 * publishing and holds no other lock then. Nothing takes reg_mu while
 * holding a chan->mu.
 */
#ifndef LMQ_ENGINE_H
#define LMQ_ENGINE_H

#include "lmq.h"
#include "meta/meta.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct lmq_chan lmq_chan;

typedef struct tail_ent {
  lmq_id id;
  const unsigned char *data; /* inside a chunk's buffer */
  uint32_t len;
} tail_ent;

typedef struct lmq_group {
  struct lmq_group *next;
  char *name;
  pthread_mutex_t commit_mu; /* persisting the cursor; destroy (see group.c) */
  pthread_mutex_t mu; /* serializes consumers of this group */
  lmq_id cursor;      /* next consume returns IDs >= cursor (under mu) */
  lmq_id committed;   /* last persisted cursor (under mu) */
  atomic_int dirty;   /* cursor moved since the last commit (read unlocked) */
  int efd;            /* eventfd: readable while messages wait (-1: none) */
  int efd_set;        /* efd currently signalled (under chan->mu) */
  int dead;           /* destroyed (set under mu and chan->mu) */
  unsigned wake;      /* bumped by seek/destroy (under mu and chan->mu) */
} lmq_group;

struct lmq_chan {
  lmq_chan *hnext; /* registry hash chain (env->reg_mu) */
  char *name;
  size_t name_len;
  uint64_t incarnation; /* unique per create; WAL records carry it */
  uint64_t created_ms;
  MDB_dbi dbi;
  atomic_uint refs; /* changed under env->reg_mu, except that a handle call
                       (handle.c) adds and drops one without it: the handle
                       holds one, so it never goes 0 -> 1 unlocked */
  atomic_uint hrefs; /* of refs, those held by open handles (handle.c) */
  atomic_int dead;  /* destroyed: no new produce or consume */
  atomic_uint qheld; /* of refs, those held by records waiting for the applier */
  atomic_int dropped; /* its sub-database is gone: the applier skips it */
  pthread_mutex_t mu;
  pthread_cond_t cond; /* new messages or destroy */
  unsigned waiters;    /* consumers blocked on cond */
  tail_ent *tail;      /* published, not yet trimmed: [thead, tlen) */
  size_t thead, tlen, tcap;
  size_t treserved;    /* entries reserved by records not yet published */
  uint64_t trim_gen; /* bumped whenever the tail is trimmed */
  lmq_id last_id;    /* newest published ID (0 = never) */
  uint64_t tbytes;   /* payload bytes in the tail (under mu) */
  _Atomic uint64_t abytes; /* payload bytes in LMDB (written by the applier) */
  uint64_t apply_epoch, apply_add; /* applier bookkeeping */
  uint64_t apply_ord; /* next key ordinal within the current apply */
  int apply_written;
  uint64_t ret_age_ms, ret_bytes; /* retention; 0 = none */
  lmq_group *groups, *dead_groups;
};

/* A record's place in a chunk. */
typedef struct rec_ref {
  lmq_chan *ch;     /* holds a channel ref until applied */
  lmq_id first_id;
  uint32_t count;
  size_t off;       /* offset of the record's first payload entry */
  size_t rec_off, rec_size; /* the whole record, sealed by the leader */
  uint64_t bytes;   /* payload bytes */
} rec_ref;

/* A batch of records written to the WAL together (one group commit). */
typedef struct chunk {
  struct chunk *next;
  unsigned char *buf;
  size_t len, cap;
  rec_ref *recs;
  size_t nrecs, rcap;
  uint64_t seq;       /* group commit number */
  uint64_t seg;       /* WAL segment it went to */
  uint64_t end_off;   /* offset in seg after it */
  int need_sync;
  int has_interval;   /* holds INTERVAL records (the syncer must cover) */
  int err;            /* result of the write, read by waiting producers */
  int lead_taken;     /* a producer took the lead from a lingering leader */
  atomic_int refs;    /* waiting producers + the applier */
  _Atomic int state;  /* CHUNK_WAIT / _LEAD / _DONE: its producers sleep on
                         it (a futex), see produce.c */
  atomic_int nwait;   /* producers asleep (or about to be) on state */
  uint64_t queued_ns; /* when it reached the applier */
  size_t mem;         /* heap bytes it holds while queued (lmq__chunk_mem) */
} chunk;

struct lmq_env {
  char *dir, *waldir;
  lmq_env_options opt;
  int lockfd;
  MDB_env *mdb;
  size_t run_max; /* bytes of a run of messages in one entry (store.h) */
  MDB_dbi sysdbi; /* "#sys": applied position, channel records, hwm */
  lmq_meta *meta;
  _Atomic lmq_id meta_hwm; /* high-water mark last mirrored to meta */
  /* the committer thread (committer.c) */
  pthread_t committer;
  int committer_started;
  pthread_mutex_t cm_mu;
  pthread_cond_t cm_cond;
  int cm_stop, cm_hwm;
  atomic_int closed;

  /* channel registry */
  pthread_mutex_t ddl_mu; /* serializes channel create/destroy */
  pthread_mutex_t reg_mu;
  pthread_cond_t reg_cond; /* a channel's refs dropped */
  lmq_chan **htab;
  size_t hcap, nchans;

  /* WAL and group commit (wal_mu) */
  pthread_mutex_t wal_mu;
  pthread_cond_t wal_cond; /* a chunk done or rotated (lmq__wal_barrier and
                              producers held at the chunk's soft cap) */
  chunk *pending;    /* being filled */
  chunk *next_chunk; /* replaces pending at the next rotation */
  int flushing;      /* a leader is writing, or was handed to pending */
  uint64_t done_seq; /* chunks up to this seq are written and published */
  lmq_id last_id;    /* last allocated message ID */
  atomic_int failed; /* sticky: an fsync failed, LMQ_EFAILED from now on */
  /* WAL file state: owned by the leader (flushing == 1) or io_mu holders */
  pthread_mutex_t io_mu;
  int wal_fd;
  uint64_t wal_seg, wal_off, wal_synced_off;
  uint64_t wal_mark_off; /* synced offset named by the last MARK written */
  int wal_ended;         /* this segment has its END: roll before writing */
  int interval_dirty; /* INTERVAL records written but not yet synced */
  uint64_t wal_live_bytes; /* bytes in segments not yet deleted */
  uint64_t last_sync_ns;
  _Atomic uint64_t sync_ns_avg; /* recent fdatasync time (linger; read unlocked) */
  int nspares;              /* recycled segment files ready: wal/spare.N */
  uint64_t wal_alloc_end; /* the segment file's size when it was opened:
                             writes below it overwrite allocated blocks */
  uint64_t wal_seg_syncs; /* fdatasyncs in this segment */
  uint64_t seg_sync_ns, seg_gap_ns; /* in this segment: time in fdatasync,
                                       and between one's end and the next */
  uint64_t sync_recs_avg; /* recent records per synced chunk, x16 */
  uint64_t spare_failed_seg; /* a zero fill failed (full disk) while this
                                segment was written: not retried in it */
  atomic_int spare_wanted; /* small synced writes append: the applier
                              makes a zero-filled spare (wal_seg.c);
                              1 wanted, 2 and the applier was woken */

  /* group commit linger: when producers are concurrent, a new leader waits
   * briefly for the others to enqueue so one fsync covers all of them */
  pthread_cond_t linger_cond;
  int lingering;
  size_t linger_target; /* records of the last commit and of the chunk
                           pending when it was done */

  /* memory_limit's shares (memlimit.c) */
  size_t chunk_cap;         /* a pending WAL chunk is handed over this full */
  uint64_t read_cap;        /* consume results not yet freed; 0 = no limit */
  struct lmq__memacct *acct; /* what they hold (NULL without a limit) */
  uint64_t trim_pending, last_trim_ns; /* applier thread only */
  uint64_t pages_ready; /* data.mdb cached in small folios up to here
                          (pagecache.c; applier thread only) */

  /* recycled chunk buffers */
  pthread_mutex_t free_mu;
  chunk *free_chunks;
  int nfree;

  /* applier (app_mu) */
  pthread_t applier;
  int applier_started;
  pthread_mutex_t app_mu;
  pthread_cond_t app_cond;  /* work for the applier */
  pthread_cond_t app_done;  /* applier progressed (backpressure, flush) */
  chunk *aq_head, *aq_tail;
  uint64_t unapplied;       /* bytes queued */
  uint64_t unapplied_mem;   /* heap bytes the queued chunks hold: what
                               max_unapplied bounds */
  uint64_t freed_since_trim; /* chunk bytes applied since the last trim */
  uint64_t flush_req, flush_done; /* apply-everything requests */
  uint64_t ckpt_req;        /* the flush request that also wants a checkpoint */
  int app_err;              /* last apply error (0 = healthy) */
  int stop;
  uint64_t applied_seg, applied_off;
  uint64_t ckpt_bytes;      /* WAL bytes applied since the last checkpoint */
  uint64_t last_ckpt_seg;

  lmq_recovery_report recovery; /* what the last open's recovery did */

  pthread_mutex_t commit_all_mu; /* one commit_all at a time (lock order) */

  /* counters */
  atomic_uint_fast64_t st_fsyncs, st_commits, st_produced;
};

/* --- env.c */
/* 0 for a live env; LMQ_EINVAL for NULL; LMQ_ECLOSED for a closed (or
 * never opened) handle. Every public entry point checks this first. */
int lmq__env_check(lmq_env *env);
#define LMQ__ENV_CHECK(env)                                                    \
  do {                                                                         \
    int e__ = lmq__env_check(env);                                             \
    if (e__)                                                                   \
      return e__;                                                              \
  } while (0)
int lmq__mdb_code(int rc, const char *what);
/* rc is one of ours (LMQ_E*), not an LMDB or errno value. */
static inline int lmq__is_lmq_code(int rc) { return rc < 0 && rc >= LMQ__ERR_LAST; }
/* LMQ_ENOTSUP naming what if env was opened with LMQ_OPEN_RDONLY, else 0.
 * Every public call that writes checks this first. */
int lmq__env_writable(lmq_env *env, const char *what);
#define LMQ__ENV_WRITABLE(env, what)                                           \
  do {                                                                         \
    int e__ = lmq__env_check(env);                                             \
    if (!e__)                                                                  \
      e__ = lmq__env_writable(env, what);                                      \
    if (e__)                                                                   \
      return e__;                                                              \
  } while (0)
/* --- walscan.c: a read-only open counts the WAL bytes after the applied
 * position (reported as unapplied_bytes) without replaying them. */
int lmq__rdonly_pending(lmq_env *env);
/* --- metauri.c: the metadata store a directory belongs to. The recorded
 * URI (malloc'ed) or NULL; refuse an embedded read-write open of an
 * etcd-backed directory; record a read-write open's etcd URI. */
char *lmq__meta_uri_recorded(lmq_env *env);
int lmq__meta_uri_check(lmq_env *env, const char *uri);
int lmq__meta_uri_record(lmq_env *env, const char *uri);
/* --- walscan.c: walk waldir's records from segment 0 (or, with
 * skip_applied, from the applied segment aseg), calling fn for each. */
int lmq__wal_scan(const char *waldir, uint64_t aseg, uint64_t aoff,
                  int skip_applied, lmq_wal_fn fn, void *arg);
/* --- consume.c: the group-less read (reader.c) shares consume's read path.
 * On success *out holds up to max messages with id >= from. */
int lmq__read_into(lmq_msgs **out, lmq_env *env, lmq_chan *ch, lmq_id from,
                   size_t max);
/* The env's metadata store (for the stream layer's channel service). */
lmq_meta *lmq__env_meta(lmq_env *env);
/* Make every committed LMDB transaction durable (the meta page too: the
 * env runs with MDB_NOMETASYNC). Calls that document "durable when it
 * returns" end with this. */
int lmq__mdb_durable(lmq_env *env, const char *what);

/* --- envdir.c: the data directory */
/* Create what is missing (DIR, DIR/wal, a new LMDB built aside and renamed
 * into place), fsync the directories whose entries changed, take DIR/LOCK. */
int lmq__envdir_prepare(lmq_env *env);

/* --- sysdb.c: "#sys" records */
#define SYS_APPLIED "applied"
#define SYS_HWM "hwm"
#define SYS_INCARNATION "incarnation"
/* The ID high-water mark mirrored in the metadata store. */
#define META_HWM "ids/hwm"
int lmq__sys_get(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v, int n);
int lmq__sys_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const uint64_t *v,
                 int n);
/* Commit a tiny transaction (a "#sys" counter) so that pages freed by the
 * transactions before it can be reused: LMDB hands out pages freed by
 * transaction T only from T + 2 on, and failing (aborted) applies do not
 * count. Needed to get out of a full map. */
int lmq__sys_touch(lmq_env *env);

/* --- recover.c */
/* Replay the WAL after the applied position (see docs/engine.md,
 * "Recovery"); fills env->recovery. Leaves every file untouched when it
 * fails. */
int lmq__recover(lmq_env *env);

/* --- applier.c */
void *lmq__applier_main(void *arg);
/* Apply everything queued so far and, if ckpt, checkpoint. */
int lmq__apply_flush(lmq_env *env, int ckpt);
/* Wake the applier now: space may have been freed (a failing apply retries,
 * retention runs with new limits). */
void lmq__applier_kick(lmq_env *env);
/* A call freed pages (a channel destroy): if the last apply failed on a full
 * map, commit two tiny transactions so that the retry can use them (see
 * lmq__sys_touch), then wake the applier. */
void lmq__applier_room_freed(lmq_env *env);
/* An apply is due now: apply_bytes of records wait, or their memory is half
 * of max_unapplied (small records hold more memory than bytes: waiting for
 * apply_bytes of them made producers stall at the bound until the apply
 * interval ran out). app_mu held. */
/* memlimit.c: memory_limit shared out (after the options are checked), the
 * room left for consume results, and the account results are charged to
 * (reference-counted: a result may outlive its env). */
typedef struct lmq__memacct lmq__memacct;
int lmq__mem_setup(lmq_env *env);
void lmq__mem_teardown(lmq_env *env);
size_t lmq__mem_read_allowance(const lmq_env *env);
uint64_t lmq__mem_read_used(const lmq_env *env);
void lmq__mem_applied(lmq_env *env, uint64_t mem); /* applier thread */
lmq__memacct *lmq__memacct_charge(lmq__memacct *a, uint64_t bytes);
void lmq__memacct_discharge(lmq__memacct *a, uint64_t bytes);
void lmq__memacct_unref(lmq__memacct *a);

static inline int lmq__apply_due(const lmq_env *env) {
  return env->unapplied >= env->opt.apply_bytes ||
         env->unapplied_mem >= env->opt.max_unapplied / 2;
}
/* Sync LMDB and retire the segments wholly before the applied position
 * (applier thread, or after it stopped). */
int lmq__checkpoint(lmq_env *env);
/* Prepare data.mdb's cache ahead of LMDB's last page (pagecache.c); call
 * with a write transaction open. */
void lmq__mdb_pages_ahead(lmq_env *env);

/* --- committer.c: metadata-store work off the applier */
int lmq__committer_start(lmq_env *env);
void lmq__committer_stop(lmq_env *env);
void lmq__committer_kick(lmq_env *env); /* mirror the ID high-water mark */
void lmq__mirror_hwm(lmq_env *env);

/* --- wal_seg.c (io_mu held, or before the env is shared) */
void lmq__wal_spares_scan(lmq_env *env);
int lmq__wal_open_seg(lmq_env *env, uint64_t seq);
int lmq__wal_roll(lmq_env *env);
int lmq__wal_sync(lmq_env *env);
/* Recycle or delete a fully-applied WAL segment file (io_mu not held). */
void lmq__wal_retire(lmq_env *env, const char *path);
/* Applier duty: make a zero-filled spare segment when spare_wanted. */
void lmq__wal_spare_make(lmq_env *env);
/* io_mu held: roll now to a ready spare (small synced writes append). */
int lmq__wal_roll_early(const lmq_env *env);
int lmq__wal_sync_dir(lmq_env *env);

/* --- produce.c */
/* Wait until every record enqueued before this call is written and
 * published (no sync is forced). */
int lmq__wal_barrier(lmq_env *env);

/* --- channel.c */
/* Release the reference a queued record held (applier, failed leader). */
void lmq__chan_put_queued(lmq_env *env, lmq_chan *ch);
int lmq__chan_get(lmq_chan **out, lmq_env *env, const char *name);
void lmq__chan_put(lmq_env *env, lmq_chan *ch);
int lmq__chan_load_all(lmq_env *env, MDB_txn *txn);
void lmq__chan_free_all(lmq_env *env);
lmq_chan *lmq__chan_lookup_locked(lmq_env *env, const char *name, size_t len);
/* Index of the first tail entry with id >= from (ch->mu held). */
size_t lmq__chan_tail_find(const lmq_chan *ch, lmq_id from);
/* Remove tail entries up to and including id (applier). */
void lmq__chan_trim(lmq_chan *ch, lmq_id upto);
/* The live channels (only those with retention limits if with_retention),
 * each with a reference taken; NULL on allocation failure. Release with
 * lmq__chan_release(). */
lmq_chan **lmq__chan_snapshot(lmq_env *env, size_t *n, int with_retention);
void lmq__chan_release(lmq_env *env, lmq_chan **list, size_t n);
/* 1 if a channel holds more than its byte limit (applier, after applies). */
int lmq__chan_over_limit(lmq_env *env);
/* Apply retention limits (applier thread; own transaction). */
int lmq__chan_retention(lmq_env *env, uint64_t now_ms, uint64_t *freed_bytes);
/* Reserve room in the tail for n messages before writing them (produce);
 * give it back if they are not published. LMQ_ENOMEM. */
int lmq__chan_reserve(lmq_chan *ch, size_t n);
void lmq__chan_unreserve(lmq_chan *ch, size_t n);
/* Publish a record's messages to the tail, into reserved room (leader). */
void lmq__chan_publish(lmq_chan *ch, const chunk *c, const rec_ref *r);
void lmq__chan_key(char *buf, const char *name); /* "c:" + name */
/* Write the channel's "#sys" record with abytes applied bytes. */
int lmq__chan_sys_put(lmq_env *env, MDB_txn *txn, lmq_chan *ch, uint64_t abytes);

/* --- group.c */
/* The largest key the metadata store takes everywhere (LMDB's limit). */
#define LMQ__META_KEY_MAX 511
#define LMQ__GROUP_KEY_MAX (2 * LMQ_NAME_MAX + 16)
int lmq__groups_load(lmq_env *env, lmq_chan *ch);
void lmq__groups_free(lmq_chan *ch);
int lmq__group_key(char *buf, const char *chan, const char *group);
/* Look up channel and group; on success the caller owns a channel ref. */
int lmq__group_get(lmq_chan **chp, lmq_group **gp, lmq_env *env,
                   const char *channel, const char *group);
/* Write cursor to the metadata store (caller holds g->commit_mu only). */
int lmq__group_persist(lmq_env *env, lmq_chan *ch, lmq_group *g, lmq_id cursor);
/* Make the group's fd reflect whether messages wait (caller holds g->mu). */
void lmq__group_fd_update(lmq_chan *ch, lmq_group *g);
/* Wake the group's blocked consumers to recheck (g->mu and ch->mu held). */
void lmq__group_wake_locked(lmq_chan *ch, lmq_group *g);

/* --- consume.c (the caller holds a reference on ch) */
int lmq__consume_g(lmq_msgs **out, lmq_env *env, lmq_chan *ch, lmq_group *g,
                   size_t max, int timeout_ms);
int lmq__group_fd_g(int *out, lmq_chan *ch, lmq_group *g);

/* --- channel.c (the caller holds a reference on ch) */
int lmq__latest_id_ch(lmq_id *out, lmq_env *env, lmq_chan *ch);
/* A handle call is done with its reference (handle.c: never the last). */
void lmq__chan_leave(lmq_env *env, lmq_chan *ch);

/* --- cursor.c (the caller holds a reference on ch) */
enum lmq__seek_kind { LMQ__SEEK_ID, LMQ__SEEK_TIME, LMQ__SEEK_EARLIEST,
                      LMQ__SEEK_LATEST };
int lmq__commit_g(lmq_env *env, lmq_chan *ch, lmq_group *g);
int lmq__ack_g(lmq_env *env, lmq_chan *ch, lmq_group *g, lmq_id id);
int lmq__rewind_g(lmq_chan *ch, lmq_group *g);
int lmq__seek_g(lmq_env *env, lmq_chan *ch, lmq_group *g, int kind, lmq_id id);

/* Commit every dirty cursor (auto-commit and close). */
int lmq__groups_commit_all(lmq_env *env);

/* --- produce.c */
/* Produce to ch. The caller holds a reference on ch, which this call
 * takes over (a record keeps it, or it is released). */
int lmq__produce_ch(lmq_env *env, lmq_chan *ch, const lmq_buf *msgs, size_t n,
                    lmq_id *out_ids, int sync);
void lmq__chunk_unref(lmq_env *env, chunk *c);
chunk *lmq__chunk_new(lmq_env *env, uint64_t seq);
void lmq__chunk_free_all(lmq_env *env);
/* Heap bytes chunk c holds (buffer, record table, the struct itself). */
size_t lmq__chunk_mem(const chunk *c);
/* Give back memory once the load is gone: drop the recycled chunks and, where
 * the C library can, return free heap pages to the OS (applier, idle). */
void lmq__chunk_trim(lmq_env *env);
void lmq__chan_tails_release(lmq_env *env); /* idle channels' tail arrays */

#endif
