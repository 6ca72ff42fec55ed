/*
 * store.h - how a channel's messages lie in its LMDB database: single
 * messages and runs (key.h has the keys).
 *
 * The applier used to put every message as its own entry: ~1,000
 * instructions of mdb_cursor_put a message, which at 256 channels left
 * the applier slower than a synced producer of 1000-message batches (the
 * producer then waited on max_unapplied) and took a fifth of the CPU of a
 * TtMsgStream. Consecutive messages of one produce call are now stored as
 * runs: one entry holding as many as fit in `run_max` bytes, their varint
 * lengths as in the WAL record (so a run is a slice of the record, copied
 * once by LMDB). run_max keeps a run inside its leaf page (LMDB moves a
 * value over about half a page to overflow pages, whose allocation needs
 * contiguous free pages); a message too large for a run of two is stored
 * alone, as before. Runs never span produce calls.
 *
 * Not thread-safe by itself: the callers hold the LMDB transaction.
 */
#ifndef LMQ_ENGINE_STORE_H
#define LMQ_ENGINE_STORE_H

#include "engine/key.h"

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* An entry, decoded from its key and value. */
typedef struct lmq__entry {
  uint64_t id;      /* of its first message */
  uint64_t ord;     /* of its first message, when has_ord */
  int has_ord;      /* 0 for 8-byte keys */
  uint32_t count;   /* messages in it */
  const unsigned char *v; /* the payload (count 1) or the run */
  size_t vlen;
} lmq__entry;

/* The largest run for LMDB pages of psize bytes. */
size_t lmq__store_run_max(size_t psize);

/* Decode an entry: 0, or MDB_CORRUPTED for a key of no known form. The run
 * itself is checked as it is read (lmq__entry_next). */
int lmq__entry_get(lmq__entry *e, const MDB_val *k, const MDB_val *v);

/* Reading an entry's messages in order: *pos and *idx start at 0; *idx is
 * then the number of messages read. 1 with the next message's bytes, 0
 * after the last, MDB_CORRUPTED (negative) when the run does not hold
 * exactly count well-formed messages. */
int lmq__entry_next(const lmq__entry *e, size_t *pos, uint32_t *idx,
                    const void **data, uint32_t *len);

/* Payload bytes of an entry (its messages without their lengths); 0 and
 * MDB_CORRUPTED as lmq__entry_next. */
int lmq__entry_bytes(const lmq__entry *e, uint64_t *bytes);

/*
 * Append count messages, IDs first_id on and ordinals *ord on (advanced),
 * to the channel database cur is open on, in a write transaction. msgs
 * holds them as count x (varint length, payload), from this process or
 * checked (lmq__wal_decode). Entries are put with MDB_APPEND: first_id must
 * be above every ID stored. Returns 0 or an LMDB error.
 */
int lmq__store_append(MDB_cursor *cur, uint64_t first_id, uint64_t *ord,
                      const unsigned char *msgs, uint32_t count, size_t run_max);
/* One message (a record with u32 lengths, from an older lmq). */
int lmq__store_put1(MDB_cursor *cur, uint64_t id, uint64_t *ord,
                    const void *data, size_t len);

/*
 * Position cur on the entry that holds the first message with an ID >= id
 * and decode it into *e; *skip is that message's index in it. 0,
 * MDB_NOTFOUND (no such message), MDB_CORRUPTED or another LMDB error.
 */
int lmq__store_seek(MDB_cursor *cur, uint64_t id, lmq__entry *e, uint32_t *skip);

/*
 * The database's first and last message IDs (0 when empty) and how many
 * messages it holds: from the ordinals, or counted entry by entry when the
 * first entry has none (a directory from before them). 0 or an LMDB error.
 */
int lmq__store_span(MDB_cursor *cur, uint64_t *first, uint64_t *last,
                    uint64_t *messages);

#endif
