/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * rocksmq.h - a RocksMQ-style message store on librocksdb (built only with
 * --with-rocksdb). It exists so that lmq can be compared, workload for
 * workload, with the RocksDB-backed queue it replaces; the stream layer can
 * also run on it (backend "rocksdb").
 *
 * Layout, as RocksMQ has it (see docs/rocksdb.md):
 *  - one RocksDB in DIR; data in the default column family under
 *    "<channel>/<id>" with the ID as 8 big-endian bytes, so key order is ID
 *    order. '/' cannot occur in a name ([A-Za-z0-9._-]), so the prefix
 *    "a/" never matches channel "a1";
 *  - a metadata KV in the column family "meta": "$topic/<channel>",
 *    "<channel>/begin_id", "<channel>/end_id",
 *    "<group>/<channel>/current_id" and "$id/hwm";
 *  - one WriteBatch per produce call (data, end_id and the ID high-water mark
 *    together), under a per-channel producer lock as RocksMQ takes it;
 *  - IDs are allocated like lmq's: (ms << 18) | logical, strictly increasing,
 *    never below the persisted high-water mark or any stored key.
 *
 * Conventions follow lmq.h: functions return 0 (or a count) or a negative
 * LMQ_E* code; lmq__rmq_errmsg() gives the calling thread's detailed message.
 * It lives in a libtool convenience library (librmq.la) that is linked into
 * liblmq (where its symbols are hidden) and straight into the tests and
 * benchmarks, so it depends on nothing of lmq but the header lmq.h.
 *
 * Threading: an lmq_rmq may be shared by threads; every function is
 * thread-safe except lmq__rmq_close(), which no other call may overlap.
 */
#ifndef LMQ_STREAM_ROCKSMQ_H
#define LMQ_STREAM_ROCKSMQ_H

#include <stddef.h>
#include <stdint.h>

#include "lmq.h"

typedef struct lmq_rmq lmq_rmq;

/* Messages returned by lmq__rmq_consume(), freed with lmq__rmq_msgs_free();
 * msgs[i].data points into a block owned by the same object. */
typedef struct lmq_rmq_msgs {
  size_t n;
  lmq_msg *msgs;
} lmq_rmq_msgs;

/*
 * Open (creating if needed) a store in dir. sync is LMQ_SYNC_ALWAYS
 * (every write is a WriteOptions.sync write), LMQ_SYNC_NONE or
 * LMQ_SYNC_INTERVAL (sync=false, the WAL stays on: a process crash loses
 * nothing, a power loss loses what the OS had not written).
 * Errors: LMQ_EINVAL, LMQ_ENOMEM, LMQ_EBUSY (another process has the DB
 * open), LMQ_EIO (anything else RocksDB reports; see the message).
 * Ownership: close *out with lmq__rmq_close().
 */
int lmq__rmq_open(lmq_rmq **out, const char *dir, int sync);

/* Close and free; NULL is accepted. Blocked consumers must have returned.
 * Memtables are not flushed (the WAL replays them on open), as RocksDB does
 * by default. */
void lmq__rmq_close(lmq_rmq *rmq);

/* Flush memtables to SST files and wait (for benchmarks that want the data
 * at rest, and for the cold-read measurement). Errors: LMQ_EIO. */
int lmq__rmq_flush(lmq_rmq *rmq);

/* The calling thread's message for the last failed call. Never NULL. */
const char *lmq__rmq_errmsg(void);

/* Create a channel (idempotent). Errors: LMQ_EINVAL (bad name), LMQ_EIO. */
int lmq__rmq_channel_create(lmq_rmq *rmq, const char *name);
/* Delete a channel, its messages, metadata and groups. Blocked consumers
 * wake with LMQ_ENOCHANNEL. Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_EIO. */
int lmq__rmq_channel_destroy(lmq_rmq *rmq, const char *name);
/* 1, 0, or LMQ_EINVAL. */
int lmq__rmq_channel_exists(lmq_rmq *rmq, const char *name);

/*
 * Append n >= 1 messages to channel in one WriteBatch; out_ids (may be NULL)
 * receives their IDs, which are consecutive. sync is LMQ_SYNC_DEFAULT (the
 * store's policy) or an override. Payloads are copied. Returned => visible
 * to consumers (and on disk under ALWAYS).
 * Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ENOMEM, LMQ_EIO, LMQ_ENOSPC.
 */
int lmq__rmq_produce(lmq_rmq *rmq, const char *channel, const lmq_buf *msgs,
                     size_t n, lmq_id *out_ids, int sync);

/* The newest ID of channel, or LMQ_EEMPTY. Errors: LMQ_ENOCHANNEL. */
int lmq__rmq_latest_id(lmq_id *out, lmq_rmq *rmq, const char *channel);

/* Create a group at the earliest message or after the latest (start is
 * enum lmq_start); existing groups are left alone. The cursor is persisted
 * at once. Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_EIO. */
int lmq__rmq_group_create(lmq_rmq *rmq, const char *channel, const char *group,
                          int start);
/* Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EIO. */
int lmq__rmq_group_destroy(lmq_rmq *rmq, const char *channel,
                           const char *group);

/*
 * Up to max messages after the group's cursor, read with one iterator; the
 * in-memory cursor advances past them (lmq__rmq_group_commit() persists it).
 * timeout_ms: 0 polls, > 0 waits for a first message on a condition
 * variable, < 0 waits forever. Returns the count (0 on timeout) and *out,
 * which the caller frees with lmq__rmq_msgs_free() in every success case.
 * Consumers of one group serialize and each message goes to one of them.
 * Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_ENOMEM, LMQ_EIO.
 */
int lmq__rmq_consume(lmq_rmq_msgs **out, lmq_rmq *rmq, const char *channel,
                     const char *group, size_t max, int timeout_ms);
void lmq__rmq_msgs_free(lmq_rmq_msgs *msgs);

/* Persist the group's cursor as "<group>/<channel>/current_id".
 * Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EIO. */
int lmq__rmq_group_commit(lmq_rmq *rmq, const char *channel,
                          const char *group);

/* The next consume starts at the first ID >= id; persisted like a commit.
 * Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EIO. */
/* Move the cursor back to the committed position (a consumer went away
 * without committing: what it read is delivered again). */
int lmq__rmq_group_rewind(lmq_rmq *rmq, const char *channel, const char *group);
int lmq__rmq_seek(lmq_rmq *rmq, const char *channel, const char *group,
                  lmq_id id);
int lmq__rmq_seek_earliest(lmq_rmq *rmq, const char *channel,
                           const char *group);
/* The next consume returns only messages produced after this call. */
int lmq__rmq_seek_latest(lmq_rmq *rmq, const char *channel, const char *group);

/* The group's next-ID cursor (in memory) and last committed cursor. */
int lmq__rmq_group_cursor(lmq_id *cursor, lmq_id *committed, lmq_rmq *rmq,
                          const char *channel, const char *group);

/*
 * An eventfd that is readable while the group has messages to consume
 * (set by produce, cleared by a consume that catches up). Owned by rmq;
 * valid until the group or channel is destroyed or rmq closed. Do not read
 * or close it. Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP.
 */
int lmq__rmq_group_fd(int *out, lmq_rmq *rmq, const char *channel,
                      const char *group);

#endif
