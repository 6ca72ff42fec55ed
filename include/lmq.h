/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * lmq.h - the lmq engine: persistent, ordered message channels with consumer
 * groups, stored in LMDB behind a group-committed write-ahead log.
 *
 * Conventions (they hold for every function below unless its comment says
 * otherwise):
 *  - Fallible functions return int: 0 (or a documented non-negative count) on
 *    success, or a negative LMQ_E* code. lmq_strerror() maps a code to a
 *    static string; lmq_errmsg() gives the calling thread's detailed message
 *    for the last failed call.
 *  - Output parameters come first. What a function returns through a
 *    pointer-to-pointer belongs to the caller and is freed with the free
 *    function named in its comment.
 *  - Bad input (NULL, bad names, unknown channel or group, oversize message)
 *    is an error code, never an abort.
 *  - Threading: an lmq_env may be shared by any number of threads; every
 *    function taking an env is thread-safe unless noted. An lmq_msgs result
 *    is owned by one thread at a time.
 *
 * This header compiles alone with -std=c99 -pedantic.
 */
#ifndef LMQ_H
#define LMQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(LMQ_BUILDING) && defined(__GNUC__)
#define LMQ_API __attribute__((visibility("default")))
#else
#define LMQ_API
#endif

#define LMQ_VERSION_STRING "0.1.0"

/*
 * Error codes. Append-only: never renumber or remove one (a retired code stays
 * as a placeholder). X(name, value, message).
 */
#define LMQ_ERROR_TABLE(X)                                                     \
  X(LMQ_OK, 0, "success")                                                      \
  X(LMQ_EINVAL, -1, "invalid argument")                                        \
  X(LMQ_ENOMEM, -2, "out of memory")                                           \
  X(LMQ_EIO, -3, "I/O error")                                                  \
  X(LMQ_EBUSY, -4, "data directory is in use by another process")             \
  X(LMQ_ENOCHANNEL, -5, "no such channel")                                     \
  X(LMQ_ENOGROUP, -6, "no such consumer group")                                \
  X(LMQ_EEXIST, -7, "already exists")                                          \
  X(LMQ_EEMPTY, -8, "channel is empty")                                        \
  X(LMQ_ETOOBIG, -9, "message or value too large")                             \
  X(LMQ_ECORRUPT, -10, "stored data is corrupt")                               \
  X(LMQ_ECLOSED, -11, "handle is closed")                                      \
  X(LMQ_ETIMEDOUT, -12, "timed out")                                           \
  X(LMQ_ENOSPC, -13, "no space left on device")                                \
  X(LMQ_EMAPFULL, -14, "LMDB map is full (raise map_size)")                    \
  X(LMQ_EUNAVAIL, -15, "metadata store unavailable")                           \
  X(LMQ_ECONFLICT, -16, "compare-and-swap conflict")                           \
  X(LMQ_EAUTH, -17, "authentication failed")                                   \
  X(LMQ_ENOTSUP, -18, "operation not supported")                               \
  X(LMQ_ENOTFOUND, -19, "not found")                                           \
  X(LMQ_EINTERNAL, -20, "internal error")                                      \
  X(LMQ_ELIMIT, -21, "configured limit reached")                               \
  X(LMQ_EPROTO, -22, "protocol error from a server")                           \
  X(LMQ_EFAILED, -23, "env failed earlier and must be reopened")              \
  X(LMQ_EUNKNOWN, -24, "outcome unknown: the write may or may not have been applied")

enum lmq_error {
#define LMQ__ERR_ENUM(name, value, msg) name = value,
  LMQ_ERROR_TABLE(LMQ__ERR_ENUM)
#undef LMQ__ERR_ENUM
  LMQ__ERR_LAST = -24
};

/* Static description of an error code ("unknown error" for unknown codes). */
LMQ_API const char *lmq_strerror(int code);

/*
 * Detailed message for the last failed lmq call made by the calling thread
 * (for example "channel name 'a/b': byte 1 is not in [A-Za-z0-9._-]").
 * Valid until the thread's next lmq call. Never NULL.
 */
LMQ_API const char *lmq_errmsg(void);

/* ------------------------------------------------------------------------ */
/* Message IDs                                                              */

/*
 * A message ID: (milliseconds since the Unix epoch << 18) | logical counter.
 * IDs are strictly increasing within an env and never reused, even across
 * restarts or when the wall clock steps back.
 */
typedef uint64_t lmq_id;

#define LMQ_ID_LOGICAL_BITS 18
/* Valid IDs are 1..LMQ_ID_MAX (times up to about the year 2527). An ID
 * outside that range coming from storage is reported as corruption. */
#define LMQ_ID_MAX ((lmq_id)0x3FFFFFFFFFFFFFFFull)
/* The wall-clock time (ms since the epoch) an ID was allocated at. */
LMQ_API uint64_t lmq_id_time(lmq_id id);
/* The smallest ID that lmq_id_time() maps to ms (for seeking to a time). */
LMQ_API lmq_id lmq_id_from_time(uint64_t ms);

/* ------------------------------------------------------------------------ */
/* Env                                                                      */

typedef struct lmq_env lmq_env;

/* Durability policy: when does produce return? */
enum lmq_sync {
  LMQ_SYNC_DEFAULT = 0,  /* per-call override: use the env's policy */
  LMQ_SYNC_ALWAYS = 1,   /* after an fdatasync covering the messages */
  LMQ_SYNC_INTERVAL = 2, /* after write(); fdatasync at least every N ms */
  LMQ_SYNC_NONE = 3      /* after write(); the OS decides when to sync */
};

/* Version 2 added `flags`, version 3 `memory_limit`; structs of versions
 * 1 and 2 (without them) are still accepted. */
#define LMQ_ENV_OPTIONS_VERSION 3

/* lmq_env_options.flags */
/* Open even if the WAL is corrupt in the middle (valid, acknowledged records
 * after a damaged one): skip exactly the damaged bytes, replay the rest, and
 * report what was skipped (lmq_env_recovery_get). Without it such an open
 * fails with LMQ_ECORRUPT and changes nothing. */
#define LMQ_OPEN_SALVAGE 0x1u

typedef struct lmq_env_options {
  unsigned version;           /* LMQ_ENV_OPTIONS_VERSION */
  int sync;                   /* enum lmq_sync; default ALWAYS */
  unsigned sync_interval_ms;  /* for LMQ_SYNC_INTERVAL; default 100 */
  uint64_t map_size;          /* LMDB map size in bytes; default 1 GiB */
  unsigned max_channels;      /* channels that can exist at once; default 1024 */
  uint32_t max_message_size;  /* bytes; default 4 MiB, at most 256 MiB */
  uint64_t wal_segment_size;  /* bytes before the WAL rolls; default 16 MiB */
  unsigned apply_interval_ms; /* applier moves WAL to LMDB after a lull this
                                 long, at the latest 100x this (+ 250 ms,
                                 applied in paced pieces); 50 */
  uint64_t apply_bytes;       /* ...or when this much is unapplied; 4 MiB */
  uint64_t max_unapplied;     /* producers wait while the unapplied records
                                 hold more memory than this (it bounds the
                                 process's private memory and how far
                                 retention can lag); default 16 MiB */
  uint64_t checkpoint_bytes;  /* WAL bytes between checkpoints; 32 MiB */
  unsigned autocommit_ms;     /* commit group cursors this often; 0 = off */
  uint64_t retention_ms;      /* default channel retention by age; 0 = none */
  uint64_t retention_bytes;   /* default channel retention by size; 0 = none */
  const char *meta_uri;       /* NULL or "" = embedded; "etcd://..." */
  unsigned flags;             /* LMQ_OPEN_*; default 0 (since version 2) */
  uint64_t memory_limit;      /* one ceiling on the memory the env allocates
                                 for messages; 0 = none (the defaults
                                 above bound it); see below (version 3) */
} lmq_env_options;

#define LMQ_ENV_OPTIONS_INIT                                                   \
  { LMQ_ENV_OPTIONS_VERSION, LMQ_SYNC_ALWAYS, 100, (uint64_t)1 << 30, 1024,    \
    4u << 20, (uint64_t)16 << 20, 50, (uint64_t)4 << 20,                       \
    (uint64_t)16 << 20, (uint64_t)32 << 20, 0, 0, 0, NULL, 0, 0 }

/*
 * memory_limit: a hard ceiling, L bytes, on the memory the env allocates for
 * messages, shared out as: records waiting for the applier (max_unapplied
 * is lowered to L/4), the WAL chunk being filled and the one being written
 * (L/16 each), one LMDB apply or retention transaction (apply_bytes is
 * lowered to L/16; LMDB keeps about twice that in dirty pages) and every
 * consume result not yet freed, the streams' read buffers included (L/8
 * together). Reaching a share never fails a call and never drops a message:
 * producers wait for the applier, and a consume returns fewer messages (at
 * least one) until earlier results are freed. Each share may be exceeded by
 * one message, so L must be at least 1 MiB and at least 16 x
 * max_message_size (LMQ_EINVAL otherwise; lower max_message_size for a
 * small L): the shares add up to 5/8 of L, the four one-message excesses
 * to at most 1/4, and the rest is left to the allocator's overhead (under a
 * limit, the heap the applied records leave free is given back as the load
 * goes on). Not counted: the mapped LMDB file (shared page cache, not
 * private memory), about 1.2 KiB per channel and group, and what the
 * application holds (its own buffers; a TtMsgStream pack holds every
 * message between two ticks until the application frees it).
 */

/*
 * Open (creating if needed) the data directory dir. opts may be NULL for the
 * defaults. A new directory is created atomically (a crash while creating it
 * leaves either no env or a complete empty one). Recovery runs here: the WAL
 * is replayed past the last applied position; a torn tail (damage after the
 * last completed fdatasync, i.e. nothing acknowledged under ALWAYS) is cut;
 * corruption of synced data is never cut silently: the open fails with
 * LMQ_ECORRUPT naming the segment and offset, and leaves every file as it
 * was, unless opts->flags has LMQ_OPEN_SALVAGE. What recovery did is
 * available from lmq_env_recovery_get().
 *
 * Returns 0 and *out, or:
 *  LMQ_EINVAL   NULL out/dir, bad option values;
 *  LMQ_EBUSY    another process holds dir/LOCK (lmq_errmsg names its pid);
 *  LMQ_ECORRUPT the WAL is corrupt before its end, a WAL segment is missing,
 *               or the LMDB file is unreadable (lmq_errmsg says where);
 *  LMQ_EIO, LMQ_ENOSPC, LMQ_ENOMEM,
 *  LMQ_EUNAVAIL (meta_uri server unreachable).
 * Ownership: the caller closes *out with lmq_env_close().
 */
LMQ_API int lmq_env_open(lmq_env **out, const char *dir,
                         const lmq_env_options *opts);

/*
 * Apply the WAL to LMDB, checkpoint and release everything. With
 * autocommit_ms set, dirty group cursors are committed first; without it,
 * cursors stay where the application last committed them. NULL and an
 * already-closed handle are accepted (and ignored); later calls on a closed
 * env return LMQ_ECLOSED. No other thread may be inside a call on env
 * (blocked consumers must have returned); results obtained from env (an
 * lmq_msgs) stay valid and must still be freed.
 */
LMQ_API void lmq_env_close(lmq_env *env);

/*
 * Move every committed WAL record into LMDB, sync LMDB and recycle WAL
 * segments. Happens on its own; call it to bound recovery time now.
 * Errors: LMQ_ECLOSED, LMQ_EIO, LMQ_ENOSPC, LMQ_EMAPFULL. Thread-safe.
 */
LMQ_API int lmq_env_checkpoint(lmq_env *env);

/*
 * What recovery did when env was opened. Set out->size = sizeof *out before
 * the call (LMQ_RECOVERY_REPORT_INIT): fields past the size the caller knows
 * are not written, so the struct can grow without breaking the ABI.
 */
typedef struct lmq_recovery_report {
  uint32_t size;             /* in: sizeof the caller's struct */
  uint64_t segments;         /* WAL segments read */
  uint64_t records;          /* produce records replayed */
  uint64_t messages;         /* messages written to LMDB by the replay */
  uint64_t bytes;            /* WAL bytes replayed */
  uint64_t dropped_records;  /* records of channels destroyed since (normal) */
  /* A torn tail: damage after the last completed fdatasync, cut. */
  uint64_t cut_segment;      /* where the log was cut (0/0: clean end) */
  uint64_t cut_offset;
  uint64_t cut_bytes;        /* bytes of the torn record(s) cut */
  uint64_t cut_records;      /* whole records after the torn one, dropped */
  /* Corruption of synced data (only with LMQ_OPEN_SALVAGE; else open fails) */
  uint64_t salvaged_regions; /* damaged regions skipped */
  uint64_t salvaged_bytes;
  uint64_t bad_segment;      /* the first damaged region */
  uint64_t bad_offset;
  char summary[256];         /* one line for people; "" when nothing happened */
} lmq_recovery_report;

#define LMQ_RECOVERY_REPORT_INIT { sizeof(lmq_recovery_report), 0, 0, 0, 0, 0, \
    0, 0, 0, 0, 0, 0, 0, 0, "" }

/* Fill *out (see above). Errors: LMQ_EINVAL (NULL, size too small),
 * LMQ_ECLOSED. Thread-safe. */
LMQ_API int lmq_env_recovery_get(lmq_recovery_report *out, lmq_env *env);

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */

#define LMQ_NAME_MAX 255 /* channel and group names: 1..255 of [A-Za-z0-9._-] */

/* Create a channel. Creating an existing channel succeeds (idempotent).
 * Errors: LMQ_EINVAL (bad name), LMQ_ELIMIT (max_channels), LMQ_EMAPFULL. */
LMQ_API int lmq_channel_create(lmq_env *env, const char *name);

/* Destroy a channel, its messages and its groups; frees its pages for reuse.
 * Errors: LMQ_ENOCHANNEL, LMQ_EINVAL. Consumers blocked on it wake with
 * LMQ_ENOCHANNEL. */
LMQ_API int lmq_channel_destroy(lmq_env *env, const char *name);

/* 1 if the channel exists, 0 if not, or a negative code (LMQ_EINVAL). */
LMQ_API int lmq_channel_exists(lmq_env *env, const char *name);

/*
 * The names of all channels, sorted. *out is a NULL-terminated array owned by
 * the caller, freed with lmq_strv_free(); *count (may be NULL) its length.
 */
LMQ_API int lmq_channel_list(char ***out, size_t *count, lmq_env *env);
LMQ_API void lmq_strv_free(char **strv);

/* Per-channel retention: delete messages older than max_age_ms or beyond
 * max_bytes (0 = unlimited), whether or not groups have consumed them
 * (Kafka's policy); groups behind the new start move to it. */
LMQ_API int lmq_channel_set_retention(lmq_env *env, const char *name,
                                      uint64_t max_age_ms, uint64_t max_bytes);

/* ------------------------------------------------------------------------ */
/* Produce                                                                  */

typedef struct lmq_buf {
  const void *data; /* may be NULL when len is 0 */
  size_t len;
} lmq_buf;

/*
 * Append n messages (n >= 1) to channel, atomically and in order. out_ids
 * (may be NULL) receives the n assigned IDs, which are consecutive. sync is
 * LMQ_SYNC_DEFAULT or an override of the env's policy for this call.
 * The payloads are copied; the caller keeps ownership of msgs.
 * When this returns 0 the messages are visible to consumers and durable as
 * the policy says.
 * Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ETOOBIG (a payload above
 * max_message_size), LMQ_ENOSPC, LMQ_EIO, LMQ_EFAILED (an fsync failed
 * earlier: reopen the env), LMQ_EMAPFULL (the store is full), LMQ_ECLOSED,
 * LMQ_ELIMIT (IDs exhausted: the clock is past LMQ_ID_MAX's time).
 * What a failure means: if the WAL write itself fails (LMQ_ENOSPC, LMQ_EIO
 * from the write) nothing was stored and the env goes on working. If the
 * fdatasync fails, the env is failed (every later produce returns
 * LMQ_EFAILED; close and reopen it): the messages of this call were written
 * but their fate is unknown, exactly like a request that timed out. After
 * the reopen they are either all present, once and intact, or all absent.
 * Every other error means nothing was written.
 */
LMQ_API int lmq_produce(lmq_env *env, const char *channel, const lmq_buf *msgs,
                        size_t n, lmq_id *out_ids, int sync);

/*
 * The newest ID in channel, or LMQ_EEMPTY if it holds no message.
 * Errors: LMQ_ENOCHANNEL, LMQ_EINVAL.
 */
LMQ_API int lmq_latest_id(lmq_id *out, lmq_env *env, const char *channel);

/* ------------------------------------------------------------------------ */
/* Consumer groups                                                          */

enum lmq_start { LMQ_START_EARLIEST = 0, LMQ_START_LATEST = 1 };

/* Create a group on channel, its cursor at the earliest retained message or
 * after the latest. Creating an existing group succeeds and leaves its cursor
 * alone. The channel and group names together may have at most 504 bytes
 * (they form one metadata key). Durable when it returns; on failure nothing
 * is created. Errors: LMQ_ENOCHANNEL, LMQ_EINVAL, LMQ_ETOOBIG (names too
 * long together), LMQ_EUNAVAIL, LMQ_EIO. */
LMQ_API int lmq_group_create(lmq_env *env, const char *channel,
                             const char *group, int start);
/* Destroy a group: its blocked consumers wake with LMQ_ENOGROUP, and no
 * commit, ack or seek racing it can bring it back. Durable when it returns;
 * on failure the group stays as it was.
 * Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EINVAL, LMQ_EUNAVAIL, LMQ_EIO. */
LMQ_API int lmq_group_destroy(lmq_env *env, const char *channel,
                              const char *group);
/* 1, 0, or a negative code. */
LMQ_API int lmq_group_exists(lmq_env *env, const char *channel,
                             const char *group);

typedef struct lmq_msg {
  lmq_id id;
  const void *data; /* valid until the lmq_msgs holding it is freed */
  size_t len;
} lmq_msg;

typedef struct lmq_msgs lmq_msgs;

/*
 * Return up to max messages after the group's cursor and advance the cursor
 * past them. Concurrent consumers of one group share its cursor: each message
 * goes to exactly one of them. timeout_ms: 0 returns at once; > 0 waits up to
 * that long for a first message; < 0 waits forever.
 * Returns the number of messages (>= 0; 0 on timeout) and *out, which the
 * caller frees with lmq_msgs_free() (also when 0 messages were returned).
 * Under the env's memory_limit a call returns fewer than max (at least one)
 * while the results not yet freed hold the read share; freeing them makes
 * reads large again.
 * Errors: LMQ_EINVAL, LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EIO.
 * The advanced cursor is persisted by lmq_group_commit(), lmq_ack() or
 * auto-commit; after a restart a group resumes at its last committed cursor.
 */
LMQ_API int lmq_consume(lmq_msgs **out, lmq_env *env, const char *channel,
                        const char *group, size_t max, int timeout_ms);

LMQ_API size_t lmq_msgs_count(const lmq_msgs *msgs);
/* The i-th message, or NULL when i is out of range. */
LMQ_API const lmq_msg *lmq_msgs_at(const lmq_msgs *msgs, size_t i);
LMQ_API void lmq_msgs_free(lmq_msgs *msgs);

/* Persist the group's current cursor (everything consumed so far).
 * Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EUNAVAIL (the metadata store did
 * not answer: not committed), LMQ_EUNKNOWN (etcd: the write was sent but its
 * answer lost, it may or may not be committed; the cursor stays marked as
 * moved, so committing again is safe), LMQ_EIO. */
LMQ_API int lmq_group_commit(lmq_env *env, const char *channel,
                             const char *group);
/*
 * Persist every group's cursor that moved since its last commit, across all
 * channels, in as few metadata transactions as possible (with etcd: one
 * request per 128 groups). Errors: LMQ_EUNAVAIL, LMQ_EUNKNOWN (as for
 * lmq_group_commit), LMQ_EIO, LMQ_ENOMEM.
 */
LMQ_API int lmq_group_commit_all(lmq_env *env);
/*
 * Move the group's cursor back to its last committed position: what was
 * consumed since is delivered again (at-least-once), as when a consumer
 * goes away without committing. The stream layer calls it when a stream
 * closes. Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EINVAL.
 */
LMQ_API int lmq_group_rewind(lmq_env *env, const char *channel,
                             const char *group);
/* Persist the cursor as "everything up to and including id is done"
 * (1 <= id <= LMQ_ID_MAX, else LMQ_EINVAL). Does not move the cursor
 * consumers read from. */
LMQ_API int lmq_ack(lmq_env *env, const char *channel, const char *group,
                    lmq_id id);

/*
 * Seeks. The next consume starts at the first message with ID >= id
 * (backward or forward; before the earliest lands on the earliest; past the
 * newest means "from the next message produced", whatever ID it gets).
 * Seeks are committed like lmq_group_commit() and wake the group's blocked
 * consumers. A seek that fails (the store is unavailable) changes nothing.
 * Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_EINVAL, LMQ_EUNAVAIL, LMQ_EIO.
 */
LMQ_API int lmq_seek(lmq_env *env, const char *channel, const char *group,
                     lmq_id id);
LMQ_API int lmq_seek_earliest(lmq_env *env, const char *channel,
                              const char *group);
/* The next consume returns only messages produced after this call. */
LMQ_API int lmq_seek_latest(lmq_env *env, const char *channel,
                            const char *group);
/* The first message produced at or after ms (ms since the epoch). */
LMQ_API int lmq_seek_time(lmq_env *env, const char *channel, const char *group,
                          uint64_t ms);

/*
 * A file descriptor that is readable while the group has messages to
 * consume (level-triggered: it stays readable until a consume catches up).
 * Owned by env; valid until the group or channel is destroyed or env closed.
 * Do not read from or close it. Errors: LMQ_ENOCHANNEL, LMQ_ENOGROUP.
 */
LMQ_API int lmq_group_fd(int *out, lmq_env *env, const char *channel,
                         const char *group);

/* ------------------------------------------------------------------------ */
/* Handles: the hot path (channel and consumer-group handles)               */
/*
 * A handle resolves a channel (or a channel's consumer group) by name once;
 * calls through it then skip the name check, the registry lookup and its
 * lock, and the env validity scan that the name-based calls make (those are
 * thin wrappers over the same code). In the spirit of LMDB's MDB_dbi and
 * librdkafka's rd_kafka_topic_t.
 *
 * Lifetime:
 *  - A handle stays bound to the channel (group) it resolved. When that
 *    channel is destroyed, every later call through the handle returns
 *    LMQ_ENOCHANNEL, even if a channel of the same name is created again
 *    (open a new handle for it); calls in progress when the destroy starts
 *    finish first (the destroy waits for them; an open handle alone does not
 *    make it wait). Likewise a destroyed group: consumer calls return
 *    LMQ_ENOGROUP.
 *  - The handle must still be closed (lmq_channel_close,
 *    lmq_consumer_close); close accepts NULL. It keeps the channel's memory
 *    (not its messages) until then.
 *  - Every handle must be closed before lmq_env_close() of its env, as
 *    LMDB requires of transactions and librdkafka of topic handles. Using a
 *    handle after that is undefined.
 *
 * Threading: a handle may be used by any number of threads at once, like
 * the env; only its close must not race another call on the same handle.
 * A consumer handle's calls serialize on the group, as lmq_consume does.
 * A consumer handle does not depend on the channel handle it was opened
 * from (either may be closed first).
 */

typedef struct lmq_channel lmq_channel;
typedef struct lmq_consumer lmq_consumer;

/*
 * Open a handle on the live channel name.
 * Returns 0 and *out (closed with lmq_channel_close), or LMQ_EINVAL (NULL
 * out, bad name), LMQ_ECLOSED, LMQ_ENOCHANNEL, LMQ_ENOMEM; *out is NULL on
 * failure.
 */
LMQ_API int lmq_channel_open(lmq_channel **out, lmq_env *env, const char *name);
/* Release a channel handle (NULL is ignored). */
LMQ_API void lmq_channel_close(lmq_channel *ch);
/* The channel's name, valid until the handle is closed; NULL for NULL. */
LMQ_API const char *lmq_channel_name(const lmq_channel *ch);

/*
 * lmq_produce() through a handle: same arguments, semantics, ownership and
 * errors (LMQ_EINVAL for a NULL handle; LMQ_ENOCHANNEL once the channel is
 * destroyed).
 */
LMQ_API int lmq_channel_produce(lmq_channel *ch, const lmq_buf *msgs, size_t n,
                                lmq_id *out_ids, int sync);
/* lmq_latest_id() through a handle. */
LMQ_API int lmq_channel_latest_id(lmq_id *out, lmq_channel *ch);

/*
 * Open a handle on the existing group `group` of ch's channel.
 * Returns 0 and *out (closed with lmq_consumer_close), or LMQ_EINVAL,
 * LMQ_ENOCHANNEL, LMQ_ENOGROUP, LMQ_ECLOSED, LMQ_ENOMEM; *out is NULL on
 * failure.
 */
LMQ_API int lmq_consumer_open(lmq_consumer **out, lmq_channel *ch,
                              const char *group);
/* Release a consumer handle (NULL is ignored). Does not commit. */
LMQ_API void lmq_consumer_close(lmq_consumer *c);
/* The group's name, valid until the handle is closed; NULL for NULL. */
LMQ_API const char *lmq_consumer_group(const lmq_consumer *c);

/* lmq_consume(), lmq_group_commit(), lmq_ack(), lmq_group_rewind(), the
 * seeks and lmq_group_fd() through a handle: same semantics, ownership and
 * errors as those (LMQ_EINVAL for a NULL handle). The fd stays owned by the
 * env, valid until the group or channel is destroyed or the env closed. */
LMQ_API int lmq_consumer_consume(lmq_msgs **out, lmq_consumer *c, size_t max,
                                 int timeout_ms);
LMQ_API int lmq_consumer_commit(lmq_consumer *c);
LMQ_API int lmq_consumer_ack(lmq_consumer *c, lmq_id id);
LMQ_API int lmq_consumer_rewind(lmq_consumer *c);
LMQ_API int lmq_consumer_seek(lmq_consumer *c, lmq_id id);
LMQ_API int lmq_consumer_seek_earliest(lmq_consumer *c);
LMQ_API int lmq_consumer_seek_latest(lmq_consumer *c);
LMQ_API int lmq_consumer_seek_time(lmq_consumer *c, uint64_t ms);
LMQ_API int lmq_consumer_fd(int *out, lmq_consumer *c);

/* End of handles.                                                          */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Stats                                                                    */

typedef struct lmq_channel_stats {
  uint64_t messages; /* retained messages */
  uint64_t bytes;    /* retained payload bytes */
  lmq_id first_id;   /* 0 when empty */
  lmq_id last_id;    /* newest ever produced; 0 when never written */
} lmq_channel_stats;

typedef struct lmq_group_stats {
  lmq_id cursor;     /* next consume starts here: the first ID >= the group's
                        cursor, or the earliest retained ID when the group is
                        behind it (where it will resume) */
  lmq_id committed;  /* persisted cursor */
  uint64_t lag;      /* retained messages at or after cursor */
} lmq_group_stats;

typedef struct lmq_env_stats {
  uint64_t wal_bytes;        /* bytes in live WAL segments */
  uint64_t wal_segment;      /* current segment number */
  uint64_t applied_segment;  /* applied position: segment and offset */
  uint64_t applied_offset;
  uint64_t unapplied_bytes;  /* committed but not yet in LMDB */
  uint64_t fsyncs;           /* WAL fdatasync calls since open */
  uint64_t commits;          /* group commits (WAL writes) since open */
  uint64_t produced;         /* messages produced since open */
  uint64_t map_size;         /* LMDB map size */
  uint64_t map_used;         /* LMDB bytes in use (last page * page size) */
  uint64_t channels;
} lmq_env_stats;

LMQ_API int lmq_channel_stats_get(lmq_channel_stats *out, lmq_env *env,
                                  const char *channel);
LMQ_API int lmq_group_stats_get(lmq_group_stats *out, lmq_env *env,
                                const char *channel, const char *group);
LMQ_API int lmq_env_stats_get(lmq_env_stats *out, lmq_env *env);

/* ======================================================================== */
/* Operator's toolkit: version, read-only open, group listing, group-less    */
/* reads, hot backup, WAL inspection and verification. (Used by lmq(1).)     */
/* ======================================================================== */

/* lmq_env_options.flags (continued) */
/*
 * Open for reading only, next to a running writer if there is one. Nothing
 * is created, locked for writing, recovered or modified: DIR/LOCK is not
 * taken, the WAL is not replayed, no thread is started. The only file
 * written is LMDB's own reader table (DIR/lock.mdb), as mdb_stat(1) does,
 * and only if it exists (no LMDB user opened the directory since it was
 * made, e.g. a fresh backup: then it reads without one).
 *
 * What it sees: the messages and cursors that are in LMDB, each call
 * reading LMDB's newest committed state. Messages still only in the WAL
 * (not yet applied by a live writer: at most 100 x apply_interval_ms
 * (+ 250 ms) or apply_bytes of them; or the unreplayed tail left by a
 * writer that crashed) are NOT visible; their size is reported as
 * unapplied_bytes by lmq_env_stats_get(), and a read-write open replays
 * them. The channel list and the group list are
 * those present at open time. Every call that would write (produce,
 * create/destroy, commit, ack, seek, set_retention, checkpoint) fails with
 * LMQ_ENOTSUP; lmq_consume() moves only the handle's in-memory cursor.
 * The directory must exist and hold an env (else LMQ_ENOTFOUND).
 */
#define LMQ_OPEN_RDONLY 0x2u
/* Fail with LMQ_ENOTFOUND instead of creating a missing directory or a
 * directory that holds no env (DIR/data.mdb). */
#define LMQ_OPEN_NOCREATE 0x4u
/* Never zero-fill WAL segments ahead of use. By default, when small synced
 * produces keep appending to a new segment (at least 64 fdatasyncs in it,
 * under 16 KiB each; fewer for small segments) as fast as the disk syncs
 * (back to back, or several producers per sync), the applier thread writes
 * a spare segment full of zeros (wal_segment_size bytes, once; later
 * segments recycle retired ones) and the WAL moves to it: an fdatasync
 * that overwrites allocated blocks commits nothing to the file system's
 * journal, so such produces complete up to ~1.6x faster on ext4. Set this
 * on media where the extra wal_segment_size bytes written matter more. */
#define LMQ_OPEN_NO_WAL_ZERO_FILL 0x8u

/*
 * The metadata store a directory belongs to: a read-write open with an
 * etcd meta_uri records it (scheme, endpoints and prefix, never the query
 * with its credentials) in the directory. A later read-write open without
 * meta_uri then fails with LMQ_EINVAL naming that store, instead of
 * silently starting an empty embedded set of groups; a read-only open
 * without meta_uri uses the recorded URI (pass the full URI when the store
 * needs credentials or TLS options).
 */

/* The library's version string ("0.1.0"): the one the program runs with,
 * which may differ from the LMQ_VERSION_STRING it was compiled against.
 * Static, never NULL. Thread-safe. */
LMQ_API const char *lmq_version(void);

/*
 * The names of channel's consumer groups, sorted. *out is a NULL-terminated
 * array owned by the caller, freed with lmq_strv_free(); *count (may be NULL)
 * its length. On failure *out is NULL.
 * Errors: LMQ_EINVAL (NULL out, bad name), LMQ_ENOCHANNEL, LMQ_ENOMEM,
 * LMQ_ECLOSED. Thread-safe.
 */
LMQ_API int lmq_group_list(char ***out, size_t *count, lmq_env *env,
                           const char *channel);

/*
 * Read up to max messages of channel with ID >= from, without a group: no
 * cursor is read, moved or written, and nothing is persisted. To read from
 * a time, pass lmq_id_from_time(ms); from 0 (or 1) reads from the earliest
 * retained message. To go on, call again with from = the last ID + 1.
 * Returns the number of messages (>= 0; 0 when none has ID >= from) and
 * *out, freed by the caller with lmq_msgs_free() (also when 0 were read);
 * on failure *out is NULL. Never blocks.
 * Errors: LMQ_EINVAL (NULL out, max 0, bad name), LMQ_ENOCHANNEL,
 * LMQ_ENOMEM, LMQ_EIO, LMQ_ECLOSED. Thread-safe.
 */
LMQ_API int lmq_read(lmq_msgs **out, lmq_env *env, const char *channel,
                     lmq_id from, size_t max);

/*
 * Everything about one channel, in a struct that can grow: set out->size =
 * sizeof *out (LMQ_CHANNEL_INFO_INIT); fields past the size the caller
 * knows are not written. messages, bytes, first_id and last_id are those of
 * lmq_channel_stats_get().
 * Errors: LMQ_EINVAL (NULL, size too small, bad name), LMQ_ENOCHANNEL,
 * LMQ_EIO, LMQ_ECLOSED. Thread-safe.
 */
typedef struct lmq_channel_info {
  uint32_t size;             /* in: sizeof the caller's struct */
  uint64_t messages;         /* retained messages */
  uint64_t bytes;            /* retained payload bytes */
  lmq_id first_id;           /* 0 when empty */
  lmq_id last_id;            /* newest ever produced; 0 when never written */
  uint64_t created_ms;       /* creation time, ms since the epoch */
  uint64_t retention_age_ms; /* 0 = none */
  uint64_t retention_bytes;  /* 0 = none */
  uint64_t groups;           /* consumer groups */
} lmq_channel_info;

#define LMQ_CHANNEL_INFO_INIT { sizeof(lmq_channel_info), 0, 0, 0, 0, 0, 0, 0, 0 }

LMQ_API int lmq_channel_info_get(lmq_channel_info *out, lmq_env *env,
                                 const char *channel);

/*
 * A group's position, in a struct that can grow (as lmq_channel_info): set
 * out->size = sizeof *out (LMQ_GROUP_INFO_INIT); fields past the size the
 * caller knows are not written. cursor, committed and lag are those of
 * lmq_group_stats_get(), whose struct keeps its layout: new fields come here.
 * Errors: LMQ_EINVAL (NULL, size too small, bad name), LMQ_ENOCHANNEL,
 * LMQ_ENOGROUP, LMQ_EIO, LMQ_ECLOSED. Thread-safe; never holds up producers.
 */
typedef struct lmq_group_info {
  uint32_t size;     /* in: sizeof the caller's struct */
  lmq_id cursor;     /* where the next consume starts (see lmq_group_stats) */
  lmq_id committed;  /* persisted cursor */
  uint64_t lag;      /* retained messages at or after cursor */
  uint64_t uncommitted; /* 1 when the cursor moved since the last commit */
} lmq_group_info;

#define LMQ_GROUP_INFO_INIT { sizeof(lmq_group_info), 0, 0, 0, 0 }

LMQ_API int lmq_group_info_get(lmq_group_info *out, lmq_env *env,
                               const char *channel, const char *group);

/*
 * The env's figures, in a struct that can grow: set out->size = sizeof *out
 * (LMQ_ENV_INFO_INIT); fields past the size the caller knows are not
 * written. The fields of lmq_env_stats (whose layout stays as it is) come
 * first, then what was added since.
 * Errors: LMQ_EINVAL (NULL, size too small), LMQ_ECLOSED. Thread-safe.
 */
typedef struct lmq_env_info {
  uint32_t size;             /* in: sizeof the caller's struct */
  uint64_t wal_bytes;        /* as in lmq_env_stats */
  uint64_t wal_segment;
  uint64_t applied_segment;
  uint64_t applied_offset;
  uint64_t unapplied_bytes;
  uint64_t fsyncs;
  uint64_t commits;
  uint64_t produced;
  uint64_t map_size;
  uint64_t map_used;
  uint64_t channels;
  uint64_t unapplied_memory; /* heap the unapplied records hold: what
                                max_unapplied bounds (producers wait above) */
  uint64_t max_unapplied;    /* the option in effect (memory_limit may
                                have lowered it) */
  uint64_t memory_limit;     /* the option; 0 = none */
  uint64_t read_memory;      /* consume results not yet freed, under a
                                memory_limit (its read share bounds it) */
} lmq_env_info;

#define LMQ_ENV_INFO_INIT { sizeof(lmq_env_info), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

LMQ_API int lmq_env_info_get(lmq_env_info *out, lmq_env *env);

/* lmq_env_copy() flags */
#define LMQ_COPY_COMPACT 0x1u /* omit free pages, renumber (mdb_copy -c) */

/*
 * Hot, consistent backup of env into the directory path, which must not
 * exist or be empty (else LMQ_EEXIST); the env keeps working meanwhile.
 * Every message whose produce returned before this call is applied to LMDB
 * first, then LMDB is copied as one snapshot (mdb_env_copy2), so the copy
 * holds all of them, every channel, and (with the embedded metadata store)
 * every group's committed cursor. The copy is a complete env: open it with
 * lmq_env_open(); it starts with an empty WAL. With an etcd metadata store
 * the cursors live in etcd and are not copied. On a read-only env the copy
 * holds what LMDB holds (see LMQ_OPEN_RDONLY). The copy is fsync'ed before
 * this returns. On failure, what was created at path is removed.
 * Errors: LMQ_EINVAL (NULL path, unknown flags), LMQ_EEXIST, LMQ_EIO,
 * LMQ_ENOSPC, LMQ_ECLOSED, and the errors of lmq_env_checkpoint().
 * Thread-safe; may take a while on a large env.
 */
LMQ_API int lmq_env_copy(lmq_env *env, const char *path, unsigned flags);

/* One WAL record (or a damaged region) as lmq_wal_scan() reports it. */
enum lmq_wal_kind {
  LMQ_WAL_PRODUCE = 1, /* messages of one produce call */
  LMQ_WAL_MARK = 2,    /* "bytes before `arg` of this segment were synced" */
  LMQ_WAL_END = 3,     /* segment end; the log goes on in segment `arg` */
  LMQ_WAL_DAMAGE = 4   /* bytes that are no valid record; see `corrupt` */
};

typedef struct lmq_wal_entry {
  uint32_t size;        /* in: sizeof the caller's struct (set by scan) */
  int kind;             /* enum lmq_wal_kind */
  uint64_t segment;     /* segment number */
  uint64_t offset;      /* byte offset of the record in the segment */
  uint64_t bytes;       /* record size (header to checksum), or damaged bytes */
  uint64_t checksum;    /* the record's stored xxh3 checksum */
  uint64_t arg;         /* MARK: synced offset; END: next segment */
  const char *channel;  /* PRODUCE: channel name (not NUL-terminated) */
  size_t channel_len;
  uint64_t incarnation; /* PRODUCE: the channel's incarnation */
  lmq_id first_id;      /* PRODUCE: IDs first_id .. first_id + count - 1 */
  uint32_t count;
  uint64_t payload_bytes;
  int applied;          /* 1 if before LMDB's applied position */
  int corrupt;          /* DAMAGE: 1 = acknowledged data damaged (recovery
                           fails without LMQ_OPEN_SALVAGE); 0 = a torn tail
                           (recovery cuts it; nothing acknowledged lost) */
} lmq_wal_entry;

/* Called for each entry, in log order. The entry and its channel pointer are
 * valid during the call only. Return 0 to go on, non-zero to stop the scan
 * (lmq_wal_scan then returns that value). */
typedef int (*lmq_wal_fn)(void *arg, const lmq_wal_entry *entry);

/*
 * Walk the WAL of the data directory dir (no env needs to be open, and one
 * may be open in another process): every segment file in order, every
 * record decoded and checked. Never writes anything. Segments before the
 * one holding LMDB's applied position are normally gone; records before
 * the applied position have applied = 1. A damaged region is reported once
 * (kind LMQ_WAL_DAMAGE) with whether recovery would call it corruption.
 * Returns 0, fn's non-zero value, or LMQ_ENOTFOUND (no env at dir),
 * LMQ_EINVAL, LMQ_EIO, LMQ_ENOMEM.
 */
LMQ_API int lmq_wal_scan(const char *dir, lmq_wal_fn fn, void *arg);

/* What lmq_verify() found. Set size = sizeof (LMQ_VERIFY_REPORT_INIT). */
typedef struct lmq_verify_report {
  uint32_t size;            /* in: sizeof the caller's struct */
  uint64_t channels;        /* channels checked */
  uint64_t messages;        /* messages read from LMDB */
  uint64_t bytes;           /* payload bytes read from LMDB */
  uint64_t groups;          /* group cursors checked */
  uint64_t wal_segments;    /* WAL segments read */
  uint64_t wal_records;     /* valid WAL records */
  uint64_t wal_unapplied;   /* WAL bytes after the applied position */
  uint64_t torn_bytes;      /* a torn tail (recovery would cut it: benign) */
  uint64_t problems;        /* corruption found (0: the env is sound) */
  char first_problem[256];  /* the first one, for people; "" if none */
} lmq_verify_report;

#define LMQ_VERIFY_REPORT_INIT { sizeof(lmq_verify_report), 0, 0, 0, 0, 0, 0, \
    0, 0, 0, "" }

/*
 * Check the data directory dir without modifying it (read-only, safe next to
 * a running writer): LMDB's pages (every channel's messages are read), the
 * channel records and ID ranges, group cursors, and every WAL record's
 * checksum, with the same torn-versus-corrupt rules as recovery.
 * Returns 0 when sound (a torn tail is sound), LMQ_ECORRUPT when a problem
 * was found (out->problems, out->first_problem), or LMQ_ENOTFOUND, LMQ_EINVAL
 * (NULL, size too small), LMQ_EIO, LMQ_ENOMEM. out is filled in every case
 * past the argument checks.
 */
LMQ_API int lmq_verify(lmq_verify_report *out, const char *dir);

#ifdef __cplusplus
}
#endif
#endif /* LMQ_H */
