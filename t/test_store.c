/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Runs (src/engine/store.h): the messages of one produce call are stored
 * several to an LMDB entry. Everything that reads a channel must see the
 * same messages as with one entry each: reads from any ID (into the middle
 * of a run), group lag at any cursor, channel stats, retention, verify,
 * recovery from the WAL, and a channel whose entries mix single messages
 * (every single-message call, and every message of a directory written
 * before runs) with runs.
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "engine/key.h"
#include "util.h"

#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXM 2000

typedef struct want {
  size_t n;
  lmq_id id[MAXM];
  size_t len[MAXM];
  unsigned char seed[MAXM];
  uint64_t bytes;
} want;

static void fill(unsigned char *p, size_t len, unsigned char seed) {
  for (size_t i = 0; i < len; i++)
    p[i] = (unsigned char)(seed + i * 7);
}

/* One produce call of n messages of the given sizes; records what went in. */
static void produce(lmq_env *env, const char *chan, const size_t *sizes, size_t n,
                    want *w) {
  lmq_buf *b = calloc(n, sizeof *b);
  lmq_id *ids = calloc(n, sizeof *ids);
  for (size_t i = 0; i < n; i++) {
    unsigned char seed = (unsigned char)(w->n + i);
    unsigned char *p = malloc(sizes[i] ? sizes[i] : 1);
    fill(p, sizes[i], seed);
    b[i] = (lmq_buf){p, sizes[i]};
    w->len[w->n + i] = sizes[i];
    w->seed[w->n + i] = seed;
    w->bytes += sizes[i];
  }
  cr_assert_eq(lmq_produce(env, chan, b, n, ids, LMQ_SYNC_NONE), 0, "%s", lmq_errmsg());
  for (size_t i = 0; i < n; i++) {
    w->id[w->n + i] = ids[i];
    free((void *)b[i].data);
  }
  w->n += n;
  free(b);
  free(ids);
}

static void same(const lmq_msg *m, const want *w, size_t i) {
  cr_assert_eq(m->id, w->id[i], "message %zu", i);
  cr_assert_eq(m->len, w->len[i], "message %zu", i);
  unsigned char *p = malloc(m->len ? m->len : 1);
  fill(p, m->len, w->seed[i]);
  cr_assert(!memcmp(p, m->data, m->len), "message %zu's bytes", i);
  free(p);
}

/* Entries of channel chan's database (the env must be closed). */
static size_t entries(const char *dir, const char *chan) {
  MDB_env *m;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_stat st;
  char name[64];
  snprintf(name, sizeof name, "d:%s", chan);
  cr_assert_eq(mdb_env_create(&m), 0);
  cr_assert_eq(mdb_env_set_maxdbs(m, 8), 0);
  cr_assert_eq(mdb_env_open(m, dir, MDB_RDONLY, 0644), 0);
  cr_assert_eq(mdb_txn_begin(m, NULL, MDB_RDONLY, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
  cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
  mdb_txn_abort(txn);
  mdb_env_close(m);
  return st.ms_entries;
}

/* Every read from every ID, lag at every cursor, the stats. */
static void check_reads(lmq_env *env, const char *chan, const want *w) {
  for (size_t i = 0; i < w->n; i++) {
    lmq_msgs *out = NULL;
    int n = lmq_read(&out, env, chan, w->id[i], 3);
    size_t expect = w->n - i < 3 ? w->n - i : 3;
    cr_assert_eq(n, (int)expect, "read from message %zu: %d (%s)", i, n, lmq_errmsg());
    for (size_t j = 0; j < expect; j++)
      same(lmq_msgs_at(out, j), w, i + j);
    lmq_msgs_free(out);
  }
  /* Between IDs (none are skipped inside a call, but the next call's may
   * start later): the next message. */
  for (size_t i = 1; i < w->n; i++)
    if (w->id[i] > w->id[i - 1] + 1) {
      lmq_msgs *out = NULL;
      cr_assert_eq(lmq_read(&out, env, chan, w->id[i - 1] + 1, 1), 1);
      same(lmq_msgs_at(out, 0), w, i);
      lmq_msgs_free(out);
    }
  if (!lmq_group_exists(env, chan, "g"))
    cr_assert_eq(lmq_group_create(env, chan, "g", LMQ_START_EARLIEST), 0, "%s", lmq_errmsg());
  for (size_t i = 0; i < w->n; i += (i % 37 == 0 ? 1 : 13)) {
    cr_assert_eq(lmq_seek(env, chan, "g", w->id[i]), 0, "%s", lmq_errmsg());
    lmq_group_stats gs;
    cr_assert_eq(lmq_group_stats_get(&gs, env, chan, "g"), 0, "%s", lmq_errmsg());
    cr_assert_eq(gs.cursor, w->id[i]);
    cr_assert_eq(gs.lag, w->n - i, "lag at message %zu: %llu", i, (unsigned long long)gs.lag);
  }
  lmq_channel_stats cs;
  cr_assert_eq(lmq_channel_stats_get(&cs, env, chan), 0);
  cr_assert_eq(cs.messages, w->n);
  cr_assert_eq(cs.bytes, w->bytes);
  cr_assert_eq(cs.first_id, w->id[0]);
  cr_assert_eq(cs.last_id, w->id[w->n - 1]);
}

static void check_verify(const char *dir, const want *w) {
  lmq_verify_report r = LMQ_VERIFY_REPORT_INIT;
  cr_assert_eq(lmq_verify(&r, dir), 0, "%s", r.first_problem);
  cr_assert_eq(r.messages, w->n);
  cr_assert_eq(r.bytes, w->bytes);
}

/* A fresh directory with channel "r", sync NONE; w emptied. */
static lmq_env *new_channel(char **dir, want *w) {
  *dir = tmpdir_new();
  lmq_env *env = open_env(*dir, LMQ_SYNC_NONE);
  cr_assert_eq(lmq_channel_create(env, "r"), 0);
  memset(w, 0, sizeof *w);
  return env;
}

/* 1000 sizes of 100 bytes. */
static const size_t *s100(void) {
  static size_t s[1000];
  for (size_t i = 0; i < 1000; i++)
    s[i] = 100;
  return s;
}

/* Calls of 1000 x 100 B, one message, ten of mixed sizes (some too large
 * for a run), 300 empty messages. */
static void mixed_calls(lmq_env *env, want *w) {
  static size_t s0[300];
  static const size_t one[1] = {50};
  static const size_t mix[10] = {10, 3000, 20, 20, 1990, 5, 5, 4000, 7, 7};
  produce(env, "r", s100(), 1000, w);
  produce(env, "r", one, 1, w);
  produce(env, "r", mix, 10, w);
  produce(env, "r", s0, 300, w);
  produce(env, "r", one, 1, w);
}

Test(store, runs_read_back_from_any_id_with_exact_lag_and_stats) {
  char *dir;
  static want w;
  lmq_env *env = new_channel(&dir, &w);
  mixed_calls(env, &w);
  check_reads(env, "r", &w); /* from the tail */
  cr_assert_eq(lmq_env_checkpoint(env), 0, "%s", lmq_errmsg());
  check_reads(env, "r", &w); /* from LMDB */
  lmq_env_close(env);
  /* 1312 messages in far fewer entries (4 KiB pages: 53 runs of up to 19
   * for the first call; then 1; 7 for the mixed sizes; 1 run of the 300
   * empty messages; 1). */
  size_t e = entries(dir, "r");
  cr_assert(e >= 40 && e <= 100, "%zu entries", e);
  check_verify(dir, &w);
  env = open_env(dir, LMQ_SYNC_NONE);
  check_reads(env, "r", &w); /* after a reopen */
  lmq_env_close(env);
  tmpdir_rm(dir);
}

static void crash_after_mixed_calls(const char *dir) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    o.sync = LMQ_SYNC_ALWAYS;
    o.apply_interval_ms = 60000; /* nothing is applied before the crash */
    lmq_env *env = NULL;
    if (lmq_env_open(&env, dir, &o) || lmq_channel_create(env, "r"))
      _exit(1);
    static want w;
    mixed_calls(env, &w);
    _exit(0);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(store, recovery_replays_the_wal_into_runs) {
  char *dir = tmpdir_new();
  crash_after_mixed_calls(dir);
  lmq_env *env = open_env(dir, LMQ_SYNC_NONE);
  lmq_recovery_report rep;
  cr_assert_eq(lmq_env_recovery_get(&rep, env), 0);
  cr_assert_eq(rep.messages, 1312u, "%llu replayed", (unsigned long long)rep.messages);
  /* What the child produced, rebuilt from the IDs read back. */
  static want w;
  memset(&w, 0, sizeof w);
  static size_t sizes[1312];
  size_t k = 0;
  for (size_t i = 0; i < 1000; i++)
    sizes[k++] = 100;
  sizes[k++] = 50;
  static const size_t mix[10] = {10, 3000, 20, 20, 1990, 5, 5, 4000, 7, 7};
  for (size_t i = 0; i < 10; i++)
    sizes[k++] = mix[i];
  for (size_t i = 0; i < 300; i++)
    sizes[k++] = 0;
  sizes[k++] = 50;
  lmq_msgs *out = NULL;
  cr_assert_eq(lmq_read(&out, env, "r", 0, 5000), 1312);
  for (size_t i = 0; i < 1312; i++) {
    w.id[i] = lmq_msgs_at(out, i)->id;
    w.len[i] = sizes[i];
    w.seed[i] = (unsigned char)i;
    w.bytes += sizes[i];
  }
  w.n = 1312;
  lmq_msgs_free(out);
  check_reads(env, "r", &w);
  lmq_env_close(env);
  size_t e = entries(dir, "r");
  cr_assert(e >= 40 && e <= 100, "%zu entries", e);
  check_verify(dir, &w);
  tmpdir_rm(dir);
}

Test(store, byte_retention_deletes_whole_runs_from_the_front) {
  char *dir;
  static want w;
  lmq_env *env = new_channel(&dir, &w);
  for (int c = 0; c < 15; c++)
    produce(env, "r", s100(), 100, &w);
  cr_assert_eq(lmq_env_checkpoint(env), 0);
  cr_assert_eq(lmq_channel_set_retention(env, "r", 0, 50000), 0, "%s", lmq_errmsg());
  lmq_channel_stats cs;
  for (int t = 0; t < 500; t++) { /* retention runs on the applier */
    cr_assert_eq(lmq_channel_stats_get(&cs, env, "r"), 0);
    if (cs.bytes <= 50000)
      break;
    usleep(10000);
  }
  /* Within the limit, by less than one run (19 x 100 B on 4 KiB pages). */
  cr_assert(cs.bytes <= 50000 && cs.bytes > 50000 - 4000, "%llu bytes",
            (unsigned long long)cs.bytes);
  cr_assert_eq(cs.bytes, cs.messages * 100);
  size_t from = w.n - cs.messages;
  cr_assert_eq(cs.first_id, w.id[from]);
  /* What is left reads as the newest messages, lag and all. */
  static want rest;
  memset(&rest, 0, sizeof rest);
  for (size_t i = from; i < w.n; i++) {
    rest.id[rest.n] = w.id[i];
    rest.len[rest.n] = w.len[i];
    rest.seed[rest.n] = w.seed[i];
    rest.bytes += w.len[i];
    rest.n++;
  }
  check_reads(env, "r", &rest);
  lmq_msgs *out = NULL;
  cr_assert_eq(lmq_read(&out, env, "r", 0, 1), 1); /* from the earliest */
  same(lmq_msgs_at(out, 0), &rest, 0);
  lmq_msgs_free(out);
  lmq_env_close(env);
  check_verify(dir, &rest);
  tmpdir_rm(dir);
}

/* Cut the value of channel chan's first run short by cut bytes, behind
 * lmq's back (the env must be closed): a damaged data.mdb. Returns the
 * run's first ID. */
static lmq_id damage_first_run(const char *dir, const char *chan, size_t cut) {
  MDB_env *m;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  char name[64];
  snprintf(name, sizeof name, "d:%s", chan);
  cr_assert_eq(mdb_env_create(&m), 0);
  cr_assert_eq(mdb_env_set_maxdbs(m, 8), 0);
  cr_assert_eq(mdb_env_set_mapsize(m, (size_t)256 << 20), 0);
  cr_assert_eq(mdb_env_open(m, dir, 0, 0644), 0);
  cr_assert_eq(mdb_txn_begin(m, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, name, 0, &dbi), 0);
  cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
  MDB_val k, v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  while (rc == 0 && k.mv_size != LMQ_KEY_SIZE_RUN)
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  cr_assert_eq(rc, 0, "no run in %s", name);
  lmq_id id = lmq__key_id(&k);
  unsigned char kb[LMQ_KEY_SIZE_RUN], *vb = malloc(v.mv_size);
  memcpy(kb, k.mv_data, sizeof kb);
  memcpy(vb, v.mv_data, v.mv_size);
  MDB_val nk = {sizeof kb, kb}, nv = {v.mv_size - cut, vb};
  mdb_cursor_close(cur);
  cr_assert_eq(mdb_put(txn, dbi, &nk, &nv, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(m);
  free(vb);
  return id;
}

/* A run that does not hold its count of messages is an error with a
 * clear code, never a short or misread batch: verify names it, reads that
 * reach the damage return LMQ_ECORRUPT, and what lies before it (in the
 * run too) still reads. */
Test(store, a_damaged_run_is_reported_not_misread) {
  char *dir;
  static want w;
  lmq_env *env = new_channel(&dir, &w);
  static const size_t one[1] = {50};
  produce(env, "r", one, 1, &w); /* a single message before the runs */
  produce(env, "r", s100(), 100, &w);
  cr_assert_eq(lmq_env_checkpoint(env), 0);
  lmq_env_close(env);
  lmq_id bad = damage_first_run(dir, "r", 5);
  cr_assert_eq(bad, w.id[1]);

  lmq_verify_report r = LMQ_VERIFY_REPORT_INIT;
  cr_assert_eq(lmq_verify(&r, dir), LMQ_ECORRUPT);
  cr_assert_geq(r.problems, 1);
  cr_assert(strstr(r.first_problem, "malformed"), "%s", r.first_problem);

  env = open_env(dir, LMQ_SYNC_NONE);
  lmq_msgs *out = NULL;
  cr_assert_eq(lmq_read(&out, env, "r", w.id[0], 1), 1); /* before it */
  same(lmq_msgs_at(out, 0), &w, 0);
  lmq_msgs_free(out);
  out = NULL;
  cr_assert_eq(lmq_read(&out, env, "r", w.id[0], 100), LMQ_ECORRUPT);
  cr_assert_null(out);
  /* Inside the run, short of the damage: those messages are intact. */
  cr_assert_eq(lmq_read(&out, env, "r", w.id[5], 10), 10);
  for (size_t i = 0; i < 10; i++)
    same(lmq_msgs_at(out, i), &w, 5 + i);
  lmq_msgs_free(out);
  out = NULL;
  cr_assert_eq(lmq_read(&out, env, "r", w.id[5], 100), LMQ_ECORRUPT);
  cr_assert_null(out);
  cr_assert_str_neq(lmq_errmsg(), "");
  lmq_env_close(env);
  tmpdir_rm(dir);
}
