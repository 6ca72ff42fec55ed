/*
 * key.h - the key of a message in its channel's LMDB database.
 *
 * 16 bytes: the message ID (8 bytes, big-endian, so keys sort by ID) then
 * the message's ordinal in the channel (8 bytes, big-endian). Ordinals of
 * the messages present are consecutive (retention deletes only from the
 * front, destroy drops the whole database), so how many messages lie
 * between two keys is a subtraction: a group's lag costs two B-tree
 * lookups instead of a scan.
 *
 * Directories written before the ordinal was added have 8-byte keys (the
 * ID alone); readers accept both and fall back to counting for those.
 * Every reader takes the ID from the first 8 bytes, and a search by ID
 * (MDB_SET_RANGE with an 8-byte key) lands on the message with that ID,
 * since a key that is a prefix of another sorts before it.
 */
#ifndef LMQ_ENGINE_KEY_H
#define LMQ_ENGINE_KEY_H

#include "engine/wal.h"

#include <lmdb.h>
#include <stdint.h>

#define LMQ_KEY_SIZE 16
#define LMQ_KEY_SIZE_V1 8 /* ID only */

static inline int lmq__key_valid(const MDB_val *k) {
  return k->mv_size == LMQ_KEY_SIZE || k->mv_size == LMQ_KEY_SIZE_V1;
}

static inline uint64_t lmq__key_id(const MDB_val *k) {
  return lmq__get64be((const unsigned char *)k->mv_data);
}

/* The ordinal of a 16-byte key into *ord: 1, or 0 for an 8-byte key. */
static inline int lmq__key_ord(const MDB_val *k, uint64_t *ord) {
  if (k->mv_size != LMQ_KEY_SIZE)
    return 0;
  *ord = lmq__get64be((const unsigned char *)k->mv_data + 8);
  return 1;
}

static inline void lmq__key_make(unsigned char kb[LMQ_KEY_SIZE], uint64_t id,
                                 uint64_t ord) {
  lmq__put64be(kb, id);
  lmq__put64be(kb + 8, ord);
}

/* The ordinal for the next message appended to the database cur is open on
 * (in a write transaction): one past the last key's, 0 when empty, the
 * number of entries after 8-byte keys. Leaves cur positioned anywhere.
 * Returns 0 or an LMDB error. */
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
    *out = ord + 1;
    return 0;
  }
  MDB_stat st;
  if ((rc = mdb_stat(mdb_cursor_txn(cur), mdb_cursor_dbi(cur), &st)))
    return rc;
  *out = st.ms_entries;
  return 0;
}

#endif
