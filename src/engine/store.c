/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* store.c - single messages and runs in a channel's database (store.h). */
#include "config.h"
#include "engine/store.h"
#include "common/varint.h"

size_t lmq__store_run_max(size_t psize) {
  /* LMDB keeps a value in its leaf when the node (8-byte header, key,
   * value) fits in about half a page less the page header: 2,010 bytes
   * of value with a 20-byte key on 4 KiB pages. Stay a little under. */
  size_t half = psize / 2;
  return half > 256 ? half - 48 : 0;
}

int lmq__entry_get(lmq__entry *e, const MDB_val *k, const MDB_val *v) {
  if (!lmq__key_valid(k))
    return MDB_CORRUPTED;
  e->id = lmq__key_id(k);
  e->has_ord = lmq__key_ord(k, &e->ord);
  e->count = lmq__key_count(k);
  e->v = v->mv_data;
  e->vlen = v->mv_size;
  return 0;
}

int lmq__entry_next(const lmq__entry *e, size_t *pos, uint32_t *idx,
                    const void **data, uint32_t *len) {
  if (e->count == 1) {
    if (*idx)
      return 0;
    *idx = 1;
    *data = e->v;
    *len = (uint32_t)e->vlen;
    return 1;
  }
  const unsigned char *end = e->v + e->vlen;
  if (*idx == e->count)
    return *pos == e->vlen ? 0 : MDB_CORRUPTED;
  const unsigned char *p = e->v + *pos;
  size_t h = p < end ? lmq__varint_get32(p, end, len) : 0;
  if (!h || *len > (size_t)(end - p) - h)
    return MDB_CORRUPTED;
  *data = p + h;
  *pos += h + *len;
  (*idx)++;
  return 1;
}

int lmq__entry_bytes(const lmq__entry *e, uint64_t *bytes) {
  size_t pos = 0;
  uint32_t idx = 0, len;
  const void *d;
  int rc;
  *bytes = 0;
  while ((rc = lmq__entry_next(e, &pos, &idx, &d, &len)) == 1)
    *bytes += len;
  return rc;
}

int lmq__store_put1(MDB_cursor *cur, uint64_t id, uint64_t *ord,
                    const void *data, size_t len) {
  unsigned char kb[LMQ_KEY_SIZE];
  lmq__key_make(kb, id, (*ord)++);
  MDB_val k = {sizeof kb, kb}, v = {len, (void *)data};
  return mdb_cursor_put(cur, &k, &v, MDB_APPEND);
}

int lmq__store_append(MDB_cursor *cur, uint64_t id, uint64_t *ord,
                      const unsigned char *p, uint32_t count, size_t run_max) {
  while (count) {
    /* As many of the next messages as fit in a run. */
    uint32_t len;
    size_t h = lmq__varint_get32_trusted(p, &len), run = h + len;
    uint32_t n = 1;
    while (n < count) {
      uint32_t l2;
      size_t h2 = lmq__varint_get32_trusted(p + run, &l2);
      if (run + h2 + l2 > run_max)
        break;
      run += h2 + l2;
      n++;
    }
    int rc;
    if (n == 1) {
      rc = lmq__store_put1(cur, id, ord, p + h, len);
    } else {
      unsigned char kb[LMQ_KEY_SIZE_RUN];
      lmq__key_make_run(kb, id, *ord, n);
      MDB_val k = {sizeof kb, kb}, v = {run, (void *)p};
      rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
      *ord += n;
    }
    if (rc)
      return rc;
    id += n;
    p += run;
    count -= n;
  }
  return 0;
}

int lmq__store_seek(MDB_cursor *cur, uint64_t id, lmq__entry *e, uint32_t *skip) {
  unsigned char kb[8];
  lmq__put64be(kb, id);
  MDB_val k = {sizeof kb, kb}, v;
  *skip = 0;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  if (rc && rc != MDB_NOTFOUND)
    return rc;
  if (rc == 0) {
    if (lmq__entry_get(e, &k, &v))
      return MDB_CORRUPTED;
    if (e->id == id)
      return 0; /* an entry starts with it */
  }
  /* The entry before (the last one if none is at or after id) is a run
   * that may hold id. */
  int landed = rc == 0;
  MDB_val pk, pv;
  int prc = mdb_cursor_get(cur, &pk, &pv, landed ? MDB_PREV : MDB_LAST);
  if (prc && prc != MDB_NOTFOUND)
    return prc;
  if (prc == 0) {
    if (lmq__entry_get(e, &pk, &pv))
      return MDB_CORRUPTED;
    if (e->id < id && id - e->id < e->count) {
      *skip = (uint32_t)(id - e->id);
      return 0;
    }
  }
  if (!landed)
    return MDB_NOTFOUND;
  /* Back to the entry SET_RANGE found. */
  lmq__put64be(kb, id);
  k = (MDB_val){sizeof kb, kb};
  if ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)))
    return rc;
  return lmq__entry_get(e, &k, &v) ? MDB_CORRUPTED : 0;
}

int lmq__store_span(MDB_cursor *cur, uint64_t *first, uint64_t *last,
                    uint64_t *messages) {
  MDB_val k, v;
  lmq__entry a, b;
  *first = *last = *messages = 0;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  if (rc)
    return rc == MDB_NOTFOUND ? 0 : rc;
  if (lmq__entry_get(&a, &k, &v))
    return MDB_CORRUPTED;
  if ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)))
    return rc;
  if (lmq__entry_get(&b, &k, &v))
    return MDB_CORRUPTED;
  *first = a.id;
  *last = b.id + b.count - 1;
  if (a.has_ord && b.has_ord && b.ord >= a.ord) {
    *messages = b.ord + b.count - a.ord;
    return 0;
  }
  /* 8-byte keys first: count every entry's messages. */
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!lmq__key_valid(&k))
      return MDB_CORRUPTED;
    *messages += lmq__key_count(&k);
  }
  return rc == MDB_NOTFOUND ? 0 : rc;
}
