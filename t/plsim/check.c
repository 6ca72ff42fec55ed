/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * check.c - the power-loss simulator's checker: the public API, and once the
 * env is closed a read of its LMDB for what the API does not show (the
 * metadata store's records).
 */
#define _GNU_SOURCE
#include "check.h"
#include "common.h"
#include <lmdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct evop {
  int began, ended;
  size_t seq_b, seq_e; /* line numbers in the event log */
  char kind[16];
  int c;
  unsigned gen;
  int n, sync, g, start;
  unsigned long long value; /* B: the cursor persisted */
  int rc;
  unsigned long long res; /* E: first ID / committed cursor */
  int seen;               /* messages found */
} evop;

typedef struct ck {
  evop *ops;
  unsigned nops;
  FILE *out;
  int fails;
} ck;

static void fail(ck *k, const char *kind, const char *fmt, ...) {
  if (k->fails < 40) {
    fprintf(k->out, "%s\t", kind);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(k->out, fmt, ap);
    va_end(ap);
    fputc('\n', k->out);
  }
  k->fails++;
}

static evop *op_get(ck *k, unsigned id) {
  if (id == 0 || id > 10000000)
    return NULL;
  if (id >= k->nops) {
    unsigned n = id * 2 + 64;
    k->ops = realloc(k->ops, n * sizeof *k->ops);
    memset(k->ops + k->nops, 0, (n - k->nops) * sizeof *k->ops);
    k->nops = n;
  }
  return &k->ops[id];
}

static void parse(ck *k, const char *ev, size_t len) {
  size_t seq = 0;
  const char *p = ev, *end = ev + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
      break;
    char line[512];
    size_t l = (size_t)(nl - p) < sizeof line - 1 ? (size_t)(nl - p) : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = '\0';
    p = nl + 1;
    seq++;
    unsigned id;
    char kind[16] = "";
    if (line[0] == 'B' && sscanf(line, "B %u %15s", &id, kind) == 2) {
      evop *o = op_get(k, id);
      if (!o)
        continue;
      o->began = 1;
      o->seq_b = seq;
      snprintf(o->kind, sizeof o->kind, "%s", kind);
      const char *a = strstr(line, kind) + strlen(kind);
      char g[16] = "";
      if (!strcmp(kind, "produce"))
        sscanf(a, "%d %u %d %d", &o->c, &o->gen, &o->n, &o->sync);
      else if (!strcmp(kind, "ccreate") || !strcmp(kind, "cdestroy") ||
               !strcmp(kind, "retention"))
        sscanf(a, "%d %u", &o->c, &o->gen);
      else if (!strcmp(kind, "gcreate"))
        sscanf(a, "%d %u g%d %d", &o->c, &o->gen, &o->g, &o->start);
      else if (!strcmp(kind, "gdestroy"))
        sscanf(a, "%d %u g%d", &o->c, &o->gen, &o->g);
      else if (!strcmp(kind, "commit") || !strcmp(kind, "ack") ||
               !strcmp(kind, "seek"))
        sscanf(a, "%d %u g%d %llu", &o->c, &o->gen, &o->g, &o->value);
      (void)g;
    } else if (line[0] == 'E' && sscanf(line, "E %u", &id) == 1) {
      evop *o = op_get(k, id);
      if (!o)
        continue;
      o->ended = 1;
      o->seq_e = seq;
      sscanf(line, "E %*u %d %llu", &o->rc, &o->res);
    }
  }
}

static int is(const evop *o, const char *kind) {
  return o->began && strcmp(o->kind, kind) == 0;
}

static int is_cursor_op(const evop *o) {
  return is(o, "gcreate") || is(o, "commit") || is(o, "ack") || is(o, "seek");
}

typedef struct seen {
  unsigned op, idx;
} seenk;

static int failed_io(int rc) {
  return rc == LMQ_EIO || rc == LMQ_ENOSPC || rc == LMQ_EFAILED;
}

/* Read all of channel c (generation gen); returns the largest ID. */
static lmq_id check_channel(ck *k, lmq_env *env, int c, unsigned gen,
                            size_t barrier) {
  const char *cn = pl_chan_names[c];
  int rc = lmq_group_create(env, cn, "plsim-check", LMQ_START_EARLIEST);
  if (rc) {
    fail(k, "check-error", "group create on %s: %s", cn, lmq_errmsg());
    return 0;
  }
  lmq_id prev = 0, min_id = 0;
  for (unsigned i = 1; i < k->nops; i++)
    k->ops[i].seen = 0;
  /* Per (op, idx) seen bits: ops have at most 8 messages. */
  unsigned char *bits = calloc(k->nops + 1, 1);
  for (;;) {
    lmq_msgs *m = NULL;
    int n = lmq_consume(&m, env, cn, "plsim-check", 1000, 0);
    if (n < 0) {
      fail(k, "check-error", "consume %s: %d %s", cn, n, lmq_errmsg());
      lmq_msgs_free(m);
      break;
    }
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      uint32_t opid;
      unsigned idx, mc, mg;
      if (x->id <= prev)
        fail(k, "order", "%s: id %llu after %llu", cn, (unsigned long long)x->id,
             (unsigned long long)prev);
      prev = x->id;
      if (!min_id)
        min_id = x->id;
      if (!pl_payload_check(x->data, x->len, &opid, &idx, &mc, &mg)) {
        fail(k, "corrupt", "%s: message %llu (%zu bytes) fails its checksum", cn,
             (unsigned long long)x->id, x->len);
        continue;
      }
      evop *o = opid < k->nops ? &k->ops[opid] : NULL;
      if ((int)mc != c || mg != (gen & 0xff)) {
        fail(k, mg != (gen & 0xff) && (int)mc == c ? "channel-resurrected"
                                                    : "wrong-channel",
             "%s gen %u: message %llu of op %u belongs to channel %u gen %u", cn,
             gen, (unsigned long long)x->id, opid, mc, mg);
        continue;
      }
      if (!o || !is(o, "produce") || o->c != c || o->gen != gen ||
          (int)idx >= o->n) {
        fail(k, "phantom", "%s: message %llu claims op %u idx %u, which never "
             "began before the crash", cn, (unsigned long long)x->id, opid, idx);
        continue;
      }
      if (bits[opid] & (1u << idx)) {
        fail(k, "duplicate", "%s: op %u idx %u returned twice (id %llu)", cn,
             opid, idx, (unsigned long long)x->id);
        continue;
      }
      bits[opid] |= (unsigned char)(1u << idx);
      o->seen++;
      if (o->ended && o->rc == 0 && x->id != o->res + idx)
        fail(k, "wrong-id", "%s: op %u idx %u has id %llu, acknowledged %llu",
             cn, opid, idx, (unsigned long long)x->id, o->res + idx);
      if (o->ended && o->rc != 0 && !failed_io(o->rc))
        fail(k, "phantom", "%s: op %u failed with %d but its message is there",
             cn, opid, o->rc);
    }
    lmq_msgs_free(m);
    if (n == 0)
      break;
  }
  for (unsigned i = 1; i < k->nops; i++) {
    evop *o = &k->ops[i];
    if (!is(o, "produce") || o->c != c || o->gen != gen)
      continue;
    int required = o->ended && o->rc == 0 &&
                   (o->sync == LMQ_SYNC_ALWAYS || o->seq_e < barrier);
    int missing = 0, missing_ok = 0;
    for (int j = 0; j < o->n; j++)
      if (!(bits[i] & (1u << j))) {
        missing++;
        if (c == PL_RET_CHAN && (!min_id || o->res + (unsigned)j < min_id))
          missing_ok++;
      }
    if (required && missing > missing_ok)
      fail(k, o->sync == LMQ_SYNC_ALWAYS ? "lost-acked" : "lost-covered",
           "%s gen %u: op %u (%d msgs, sync %d, ids %llu..) acknowledged at "
           "event %zu: %d messages missing", cn, gen, i, o->n, o->sync, o->res,
           o->seq_e, missing - missing_ok);
    else if (o->seen && missing > missing_ok)
      fail(k, "partial", "%s: op %u has %d of %d messages", cn, i, o->seen, o->n);
  }
  free(bits);
  lmq_group_destroy(env, cn, "plsim-check");
  return prev;
}

static void check_groups(ck *k, lmq_env *env, int c, unsigned gen) {
  const char *cn = pl_chan_names[c];
  for (int g = 0; g < PL_NGROUP; g++) {
    char gn[8];
    snprintf(gn, sizeof gn, "g%d", g);
    evop *last_ddl = NULL;
    unsigned last_ddl_id = 0;
    for (unsigned i = 1; i < k->nops; i++) {
      evop *o = &k->ops[i];
      if ((is(o, "gcreate") || is(o, "gdestroy")) && o->c == c && o->gen == gen &&
          o->g == g && (!last_ddl || o->seq_b > last_ddl->seq_b)) {
        last_ddl = o;
        last_ddl_id = i;
      }
    }
    int ex = lmq_group_exists(env, cn, gn);
    if (ex < 0) {
      fail(k, "check-error", "group_exists %s/%s: %d", cn, gn, ex);
      continue;
    }
    int inflight = last_ddl && !last_ddl->ended;
    int want = last_ddl && is(last_ddl, "gcreate") && !(last_ddl->ended && last_ddl->rc);
    if (!inflight && want && !ex) {
      fail(k, "group-lost", "%s/%s: create (op %u) acknowledged, group missing",
           cn, gn, last_ddl_id);
      continue;
    }
    if (!inflight && !want && ex) {
      fail(k, "group-resurrected", "%s/%s (gen %u): exists, last op %s %u", cn,
           gn, gen, last_ddl ? last_ddl->kind : "none", last_ddl_id);
      continue;
    }
    if (!ex || !want || (inflight && is(last_ddl, "gcreate")))
      continue;
    /* The cursor ops since the group's create. */
    evop *acked = NULL, *flight = NULL;
    unsigned acked_id = 0;
    for (unsigned i = 1; i < k->nops; i++) {
      evop *o = &k->ops[i];
      if (!is_cursor_op(o) || o->c != c || o->gen != gen || o->g != g ||
          o->seq_b < last_ddl->seq_b)
        continue;
      if (o->ended && o->rc == 0 && (!acked || o->seq_b > acked->seq_b)) {
        acked = o;
        acked_id = i;
      }
      if (!o->ended)
        flight = o;
    }
    lmq_group_stats st;
    if (lmq_group_stats_get(&st, env, cn, gn) != 0) {
      fail(k, "check-error", "group stats %s/%s: %s", cn, gn, lmq_errmsg());
      continue;
    }
    int ok = (acked && st.committed == acked->res) ||
             (flight && st.committed == flight->value);
    if (!ok)
      fail(k, "cursor-wrong", "%s/%s: committed cursor %llu; last acknowledged "
           "%s (op %u) persisted %llu%s%s", cn, gn,
           (unsigned long long)st.committed, acked ? acked->kind : "-", acked_id,
           acked ? acked->res : 0, flight ? ", in flight: " : "",
           flight ? flight->kind : "");
  }
}

/* The incarnation (u64 LE) in the value of key in dbi, or 0 when absent or
 * malformed; off is its place in the value. */
static uint64_t incarnation_at(MDB_txn *txn, MDB_dbi dbi, const char *key,
                               size_t off) {
  MDB_val k = {strlen(key), (void *)key}, v;
  if (mdb_get(txn, dbi, &k, &v) || v.mv_size < off + 8)
    return 0;
  const unsigned char *b = (const unsigned char *)v.mv_data + off;
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--)
    x = x << 8 | b[i];
  return x;
}

/*
 * The metadata store (embedded: "#meta" in the same LMDB) agrees with the
 * channels in "#sys" whatever the crash point: a create writes both in one
 * transaction, a destroy deletes both. Every channel record "c:NAME" has
 * "chan/NAME" with its incarnation, and every "chan/NAME" and
 * "group/NAME/..." belongs to a channel. (Written in two transactions, a
 * crash between them left a channel without its record, or groups of a
 * destroyed channel.)
 */
static void check_meta_records(ck *k, const char *path) {
  MDB_env *m;
  MDB_txn *txn;
  MDB_dbi sys, meta;
  MDB_cursor *cur;
  int rc = mdb_env_create(&m);
  if (rc) {
    fail(k, "check-error", "mdb_env_create: %s", mdb_strerror(rc));
    return;
  }
  if (!(rc = mdb_env_set_maxdbs(m, 4)) &&
      !(rc = mdb_env_open(m, path, MDB_RDONLY, 0644)) &&
      !(rc = mdb_txn_begin(m, NULL, MDB_RDONLY, &txn))) {
    if ((rc = mdb_dbi_open(txn, "#sys", 0, &sys)) ||
        (rc = mdb_dbi_open(txn, "#meta", 0, &meta))) {
      fail(k, "check-error", "LMDB of %s: %s", path, mdb_strerror(rc));
      mdb_txn_abort(txn);
      mdb_env_close(m);
      return;
    }
    char key[LMQ_NAME_MAX + 16], name[LMQ_NAME_MAX + 1];
    /* Channel records -> metadata records. */
    if (!mdb_cursor_open(txn, sys, &cur)) {
      MDB_val kv = {2, "c:"}, v;
      for (rc = mdb_cursor_get(cur, &kv, &v, MDB_SET_RANGE);
           !rc && kv.mv_size > 2 && kv.mv_size - 2 <= LMQ_NAME_MAX &&
           !memcmp(kv.mv_data, "c:", 2);
           rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
        snprintf(name, sizeof name, "%.*s", (int)kv.mv_size - 2, (char *)kv.mv_data + 2);
        snprintf(key, sizeof key, "c:%s", name);
        uint64_t inc = incarnation_at(txn, sys, key, 0);
        snprintf(key, sizeof key, "chan/%s", name);
        uint64_t minc = incarnation_at(txn, meta, key, 16); /* after the version */
        if (minc != inc)
          fail(k, "meta-record", "channel %s (incarnation %llu): metadata record %s",
               name, (unsigned long long)inc,
               minc ? "of another incarnation" : "missing");
      }
      mdb_cursor_close(cur);
    }
    /* Metadata records -> channel records. */
    if (!mdb_cursor_open(txn, meta, &cur)) {
      MDB_val kv, v;
      for (rc = mdb_cursor_get(cur, &kv, &v, MDB_FIRST); !rc;
           rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT)) {
        const char *kb = kv.mv_data, *p = NULL;
        size_t kl = kv.mv_size;
        if (kl > 5 && !memcmp(kb, "chan/", 5))
          p = kb + 5;
        else if (kl > 6 && !memcmp(kb, "group/", 6))
          p = kb + 6;
        if (!p)
          continue;
        const char *e = memchr(p, '/', kl - (size_t)(p - kb));
        size_t nl = e ? (size_t)(e - p) : kl - (size_t)(p - kb);
        if (nl > LMQ_NAME_MAX)
          continue;
        snprintf(key, sizeof key, "c:%.*s", (int)nl, p);
        MDB_val sk = {strlen(key), key}, sv;
        if (mdb_get(txn, sys, &sk, &sv))
          fail(k, "meta-orphan", "metadata record %.*s: no channel %.*s", (int)kl, kb,
               (int)nl, p);
      }
      mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    rc = 0;
  }
  if (rc)
    fail(k, "check-error", "LMDB of %s: %s", path, mdb_strerror(rc));
  mdb_env_close(m);
}

int pl_check(const char *dir, const char *events, size_t len, FILE *out) {
  ck k = {0};
  k.out = out;
  parse(&k, events, len);
  char path[8192];
  snprintf(path, sizeof path, "%s/env", dir);
  lmq_env_options o = pl_options();
  lmq_env *env = NULL;
  int rc = lmq_env_open(&env, path, &o);
  if (rc) {
    fail(&k, "open-failed", "lmq_env_open: %d %s: %s", rc, lmq_strerror(rc),
         lmq_errmsg());
    free(k.ops);
    return k.fails;
  }
  /* The durability barrier: the latest-beginning acknowledged ALWAYS
   * produce, checkpoint or close. */
  size_t barrier = 0;
  lmq_id max_acked = 0;
  for (unsigned i = 1; i < k.nops; i++) {
    evop *x = &k.ops[i];
    if (!x->ended || x->rc)
      continue;
    if ((is(x, "produce") && x->sync == LMQ_SYNC_ALWAYS) || is(x, "ckpt") ||
        is(x, "close"))
      if (x->seq_b > barrier)
        barrier = x->seq_b;
  }
  for (unsigned i = 1; i < k.nops; i++) {
    evop *x = &k.ops[i];
    if (is(x, "produce") && x->ended && !x->rc &&
        (x->sync == LMQ_SYNC_ALWAYS || x->seq_e < barrier) &&
        x->res + (unsigned)x->n - 1 > max_acked)
      max_acked = x->res + (unsigned)x->n - 1;
  }
  lmq_id max_present = 0;
  for (int c = 0; c < PL_NCHAN; c++) {
    const char *cn = pl_chan_names[c];
    evop *last = NULL, *lastc = NULL;
    for (unsigned i = 1; i < k.nops; i++) {
      evop *x = &k.ops[i];
      if ((is(x, "ccreate") || is(x, "cdestroy")) && x->c == c) {
        if (!last || x->seq_b > last->seq_b)
          last = x;
        if (is(x, "ccreate") && (!lastc || x->seq_b > lastc->seq_b))
          lastc = x;
      }
    }
    unsigned gen = lastc ? lastc->gen : 0;
    int ex = lmq_channel_exists(env, cn);
    int inflight = last && !last->ended;
    int want = last && is(last, "ccreate");
    if (ex < 0) {
      fail(&k, "check-error", "channel_exists %s: %d", cn, ex);
      continue;
    }
    if (!inflight && want && !ex) {
      fail(&k, "channel-lost", "%s: create (gen %u) acknowledged, channel missing",
           cn, gen);
      continue;
    }
    if (!inflight && !want && ex) {
      fail(&k, "channel-resurrected", "%s: exists, but %s", cn,
           last ? "its destroy was acknowledged" : "it was never created");
    }
    if (!ex)
      continue;
    lmq_id mx = check_channel(&k, env, c, gen, barrier);
    if (mx > max_present)
      max_present = mx;
    if (c != PL_RET_CHAN)
      check_groups(&k, env, c, gen);
  }
  char **names = NULL;
  size_t nn = 0;
  if (lmq_channel_list(&names, &nn, env) == 0) {
    for (size_t i = 0; i < nn; i++) {
      int known = 0;
      for (int c = 0; c < PL_NCHAN; c++)
        known |= strcmp(names[i], pl_chan_names[c]) == 0;
      if (!known)
        fail(&k, "channel-unknown", "channel '%s' was never created", names[i]);
    }
    lmq_strv_free(names);
  }
  /* A produce works and its ID is above everything seen or acknowledged. */
  rc = lmq_channel_create(env, "zprobe");
  unsigned char buf[32];
  pl_payload(buf, sizeof buf, 0, 0, 99, 0);
  lmq_buf b = {buf, sizeof buf};
  lmq_id id = 0;
  if (!rc)
    rc = lmq_produce(env, "zprobe", &b, 1, &id, LMQ_SYNC_ALWAYS);
  if (rc)
    fail(&k, "produce-failed", "produce after reopen: %d %s", rc, lmq_errmsg());
  else if (id <= max_present || id <= max_acked)
    fail(&k, "id-reuse", "new id %llu, but %llu is present and %llu was "
         "acknowledged", (unsigned long long)id, (unsigned long long)max_present,
         (unsigned long long)max_acked);
  lmq_env_close(env);
  check_meta_records(&k, path);
  free(k.ops);
  return k.fails;
}
