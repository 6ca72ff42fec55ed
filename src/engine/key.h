/*
 * key.h - the keys of a channel's LMDB database.
 *
 * An entry holds one message or a *run* of consecutive messages of one
 * produce call (store.h):
 *
 *   16 bytes  ID, ordinal                 -> the message's payload
 *   20 bytes  ID, ordinal, count (>= 2)   -> count x (varint length, payload)
 *
 * all big-endian, so keys sort by ID; the ID and ordinal are those of the
 * entry's first message, and the messages of a run have the IDs and
 * ordinals that follow. Ordinals of the messages present are consecutive
 * (retention deletes only from the front, destroy drops the whole
 * database), so how many messages lie between two keys is a subtraction: a
 * group's lag costs two B-tree lookups instead of a scan.
 *
 * Directories written before the ordinal was added have 8-byte keys (the
 * ID alone); readers accept them and fall back to counting for those.
 * Every reader takes the ID from the first 8 bytes, and a search by ID
 * (MDB_SET_RANGE with an 8-byte key) lands on the entry that starts with
 * that ID, since a key that is a prefix of another sorts before it (a run
 * holding the ID starts before it: lmq__store_seek).
 */
#ifndef LMQ_ENGINE_KEY_H
#define LMQ_ENGINE_KEY_H

#include "engine/wal.h"

#include <lmdb.h>
#include <stdint.h>

#define LMQ_KEY_SIZE 16
#define LMQ_KEY_SIZE_V1 8   /* ID only */
#define LMQ_KEY_SIZE_RUN 20 /* ID, ordinal, count */

static inline uint32_t lmq__get32be(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void lmq__put32be(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static inline int lmq__key_valid(const MDB_val *k) {
  if (k->mv_size == LMQ_KEY_SIZE_RUN)
    return lmq__get32be((const unsigned char *)k->mv_data + 16) >= 2;
  return k->mv_size == LMQ_KEY_SIZE || k->mv_size == LMQ_KEY_SIZE_V1;
}

static inline uint64_t lmq__key_id(const MDB_val *k) {
  return lmq__get64be((const unsigned char *)k->mv_data);
}

/* Messages in the entry of a valid key: a run's count, else 1. */
static inline uint32_t lmq__key_count(const MDB_val *k) {
  return k->mv_size == LMQ_KEY_SIZE_RUN
             ? lmq__get32be((const unsigned char *)k->mv_data + 16)
             : 1;
}

/* The ID of the entry's last message (a valid key). */
static inline uint64_t lmq__key_last_id(const MDB_val *k) {
  return lmq__key_id(k) + lmq__key_count(k) - 1;
}

/* The ordinal of a 16- or 20-byte key into *ord: 1, or 0 for an 8-byte
 * key. */
static inline int lmq__key_ord(const MDB_val *k, uint64_t *ord) {
  if (k->mv_size < LMQ_KEY_SIZE)
    return 0;
  *ord = lmq__get64be((const unsigned char *)k->mv_data + 8);
  return 1;
}

static inline void lmq__key_make(unsigned char kb[LMQ_KEY_SIZE], uint64_t id,
                                 uint64_t ord) {
  lmq__put64be(kb, id);
  lmq__put64be(kb + 8, ord);
}

static inline void lmq__key_make_run(unsigned char kb[LMQ_KEY_SIZE_RUN],
                                     uint64_t id, uint64_t ord, uint32_t count) {
  lmq__key_make(kb, id, ord);
  lmq__put32be(kb + 16, count);
}

/* The ordinal for the next message appended to the database cur is open on
 * (in a write transaction): one past the last entry's last message's, 0
 * when empty, the number of entries after 8-byte keys. Leaves cur
 * positioned anywhere. Returns 0 or an LMDB error. */
static inline int lmq__key_next_ord(MDB_cursor *cur, uint64_t *out) {
  MDB_val k, v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  if (rc == MDB_NOTFOUND) {
    *out = 0;
    return 0;
  }
  if (rc)
    return rc;
  uint64_t ord;
  if (lmq__key_ord(&k, &ord)) {
    if (!lmq__key_valid(&k))
      return MDB_CORRUPTED;
    *out = ord + lmq__key_count(&k);
    return 0;
  }
  MDB_stat st;
  if ((rc = mdb_stat(mdb_cursor_txn(cur), mdb_cursor_dbi(cur), &st)))
    return rc;
  *out = st.ms_entries;
  return 0;
}

#endif
