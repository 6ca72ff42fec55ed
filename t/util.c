/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
#define _XOPEN_SOURCE 700
#include "util.h"
#include <criterion/criterion.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *tmpdir_new(void) {
  const char *base = getenv("TMPDIR");
  char *p = malloc(4096);
  snprintf(p, 4096, "%s/lmq-test-XXXXXX", base && *base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(p), "mkdtemp");
  return p;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st; (void)flag; (void)f;
  return remove(p);
}

void tmpdir_rm(char *path) {
  if (!path)
    return;
  nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(path);
}

lmq_env *open_env(const char *dir, int sync) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = sync;
  o.map_size = (uint64_t)256 << 20;
  lmq_env *env = NULL;
  int rc = lmq_env_open(&env, dir, &o);
  cr_assert_eq(rc, 0, "lmq_env_open: %s", lmq_errmsg());
  return env;
}

lmq_id put_str(lmq_env *env, const char *chan, const char *s) {
  lmq_buf b = {s, strlen(s)};
  lmq_id id = 0;
  int rc = lmq_produce(env, chan, &b, 1, &id, LMQ_SYNC_DEFAULT);
  cr_assert_eq(rc, 0, "produce: %s", lmq_errmsg());
  return id;
}

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int lmdb_peek(const char *dir, const char *db, const char *key, void *val,
              size_t cap, size_t *vlen) {
  MDB_env *m;
  MDB_txn *txn;
  MDB_dbi dbi;
  cr_assert_eq(mdb_env_create(&m), 0);
  cr_assert_eq(mdb_env_set_maxdbs(m, 4), 0);
  int rc = mdb_env_open(m, dir, MDB_RDONLY, 0644);
  cr_assert_eq(rc, 0, "LMDB of %s: %s", dir, mdb_strerror(rc));
  cr_assert_eq(mdb_txn_begin(m, NULL, MDB_RDONLY, &txn), 0);
  int found = 0;
  if (!(rc = mdb_dbi_open(txn, db, 0, &dbi))) {
    MDB_val k = {strlen(key), (void *)key}, v;
    if (!(rc = mdb_get(txn, dbi, &k, &v))) {
      found = 1;
      if (val)
        memcpy(val, v.mv_data, v.mv_size < cap ? v.mv_size : cap);
      if (vlen)
        *vlen = v.mv_size;
    }
  }
  cr_assert(rc == 0 || rc == MDB_NOTFOUND, "LMDB of %s: %s", dir, mdb_strerror(rc));
  mdb_txn_abort(txn);
  mdb_env_close(m);
  return found;
}

uint64_t get_le64(const void *p) {
  const unsigned char *b = p;
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | b[i];
  return v;
}
