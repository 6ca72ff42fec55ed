/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * rocksmq.c - RocksMQ's layout on librocksdb's C API (see rocksmq.h).
 *
 * Locks: chan->prod_mu (RocksMQ's per-topic producer lock: allocation, the
 * write and publication happen under it, so a channel's IDs become visible
 * in order) -> alloc_mu (leaf). grp->mu -> chan->mu. reg_mu guards the
 * channel table and reference counts and is never held while waiting.
 */
#define _GNU_SOURCE
#include "stream/rocksmq.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define NBUCKETS 1024
#define BLOCK_SIZE (64 * 1024)  /* RocksMQ's block size */
#define PARALLELISM 2           /* RocksMQ: IncreaseParallelism(n) */

typedef struct rmq_group {
  struct rmq_group *next;
  char *name;
  pthread_mutex_t mu; /* serializes this group's consumers and seeks */
  lmq_id cursor;      /* next consume: first ID >= cursor (under mu) */
  lmq_id committed;   /* last persisted cursor (under mu) */
  int efd;
  int dead;           /* under the channel's mu */
} rmq_group;

typedef struct rmq_chan {
  struct rmq_chan *next; /* hash chain (under reg_mu) */
  char *name;
  size_t nlen;
  unsigned refs; /* under reg_mu */
  pthread_mutex_t prod_mu;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  lmq_id first_id, last_id; /* 0 = none (under mu) */
  rmq_group *groups;        /* live groups (under mu) */
  rmq_group *graveyard;     /* destroyed groups, freed with the channel */
  int dead;                 /* under mu and prod_mu */
} rmq_chan;

struct lmq_rmq {
  rocksdb_t *db;
  rocksdb_options_t *opts;
  rocksdb_block_based_table_options_t *topts;
  rocksdb_column_family_handle_t *cf_data, *cf_meta;
  rocksdb_writeoptions_t *w_sync, *w_nosync;
  rocksdb_readoptions_t *r_meta;
  int sync; /* store policy */
  pthread_mutex_t reg_mu;
  rmq_chan *table[NBUCKETS];
  pthread_mutex_t alloc_mu;
  lmq_id next_id; /* under alloc_mu */
};

/* ------------------------------------------------------------- errors */

static _Thread_local char errbuf[512];

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errbuf, sizeof errbuf, fmt, ap);
  va_end(ap);
  return code;
}

const char *lmq__rmq_errmsg(void) { return errbuf; }

/* Turn a RocksDB error string into a code and message; frees err. */
static int rocks_fail(char *err, const char *what) {
  int code = LMQ_EIO;
  if (strstr(err, "No space left"))
    code = LMQ_ENOSPC;
  else if (strstr(err, "lock") || strstr(err, "LOCK"))
    code = LMQ_EBUSY;
  fail(code, "rocksdb %s: %s", what, err);
  rocksdb_free(err);
  return code;
}

static int name_ok(const char *what, const char *name) {
  if (!name)
    return fail(LMQ_EINVAL, "%s name is NULL", what);
  size_t n = strlen(name);
  if (n == 0 || n > LMQ_NAME_MAX)
    return fail(LMQ_EINVAL, "%s name has %zu bytes (1..%d)", what, n, LMQ_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return fail(LMQ_EINVAL, "%s name '%s': byte %zu is not in [A-Za-z0-9._-]", what,
                  name, i);
  }
  return 0;
}

/* ------------------------------------------------------------- helpers */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put_be64(unsigned char *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* "<channel>/<8-byte id>" into buf (>= LMQ_NAME_MAX + 9 bytes); returns len. */
static size_t data_key(char *buf, const rmq_chan *c, lmq_id id) {
  memcpy(buf, c->name, c->nlen);
  buf[c->nlen] = '/';
  put_be64((unsigned char *)buf + c->nlen + 1, id);
  return c->nlen + 9;
}

static void efd_set(int fd) {
  uint64_t one = 1;
  if (fd >= 0 && write(fd, &one, sizeof one) < 0 && errno != EAGAIN) {
    /* The counter cannot overflow in practice; nothing else can fail. */
  }
}

static void efd_clear(int fd) {
  uint64_t v;
  if (fd >= 0 && read(fd, &v, sizeof v) < 0 && errno != EAGAIN) {
    /* Already clear. */
  }
}

static unsigned hash_name(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h % NBUCKETS;
}

static int meta_put_u64(rocksdb_writebatch_t *b, lmq_rmq *r, const char *key,
                        uint64_t v) {
  unsigned char val[8];
  put_be64(val, v);
  rocksdb_writebatch_put_cf(b, r->cf_meta, key, strlen(key), (const char *)val, 8);
  return 0;
}

static const rocksdb_writeoptions_t *wopts(lmq_rmq *r, int sync) {
  if (sync == LMQ_SYNC_DEFAULT)
    sync = r->sync;
  return sync == LMQ_SYNC_ALWAYS ? r->w_sync : r->w_nosync;
}

/* ------------------------------------------------------------- registry */

static rmq_chan *chan_new(const char *name) {
  rmq_chan *c = calloc(1, sizeof *c);
  if (!c || !(c->name = strdup(name))) {
    free(c);
    return NULL;
  }
  c->nlen = strlen(name);
  pthread_mutex_init(&c->prod_mu, NULL);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cond, &ca);
  pthread_condattr_destroy(&ca);
  return c;
}

static void group_free(rmq_group *g) {
  if (g->efd >= 0)
    close(g->efd);
  pthread_mutex_destroy(&g->mu);
  free(g->name);
  free(g);
}

static void chan_free(rmq_chan *c) {
  for (rmq_group *lists[2] = {c->groups, c->graveyard}, **l = lists; l < lists + 2; l++)
    for (rmq_group *g = *l, *n; g; g = n) {
      n = g->next;
      group_free(g);
    }
  pthread_mutex_destroy(&c->prod_mu);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cond);
  free(c->name);
  free(c);
}

/* A referenced channel, or NULL with LMQ_ENOCHANNEL/LMQ_EINVAL recorded. */
static rmq_chan *chan_get(lmq_rmq *r, const char *name, int *rc) {
  if ((*rc = name_ok("channel", name)))
    return NULL;
  pthread_mutex_lock(&r->reg_mu);
  rmq_chan *c = r->table[hash_name(name)];
  while (c && strcmp(c->name, name))
    c = c->next;
  if (c)
    c->refs++;
  pthread_mutex_unlock(&r->reg_mu);
  if (!c)
    *rc = fail(LMQ_ENOCHANNEL, "no channel '%s'", name);
  return c;
}

static void chan_put(lmq_rmq *r, rmq_chan *c) {
  pthread_mutex_lock(&r->reg_mu);
  int last = --c->refs == 0;
  pthread_mutex_unlock(&r->reg_mu);
  if (last)
    chan_free(c);
}

static rmq_group *group_find(rmq_chan *c, const char *name) {
  rmq_group *g = c->groups;
  while (g && strcmp(g->name, name))
    g = g->next;
  return g;
}

static rmq_group *group_new(const char *name, lmq_id cursor) {
  rmq_group *g = calloc(1, sizeof *g);
  if (!g || !(g->name = strdup(name))) {
    free(g);
    return NULL;
  }
  g->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (g->efd < 0) {
    free(g->name);
    free(g);
    return NULL;
  }
  pthread_mutex_init(&g->mu, NULL);
  g->cursor = g->committed = cursor;
  return g;
}

/* ------------------------------------------------------------- open/close */

/* The first and last IDs stored under c's prefix (0 when none). */
static void chan_scan_bounds(lmq_rmq *r, rmq_chan *c) {
  char k[LMQ_NAME_MAX + 9];
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->r_meta, r->cf_data);
  size_t kl = data_key(k, c, 0);
  rocksdb_iter_seek(it, k, kl);
  size_t len;
  const char *key;
  if (rocksdb_iter_valid(it) && (key = rocksdb_iter_key(it, &len)) && len == kl &&
      !memcmp(key, k, c->nlen + 1))
    c->first_id = get_be64((const unsigned char *)key + c->nlen + 1);
  data_key(k, c, UINT64_MAX);
  rocksdb_iter_seek_for_prev(it, k, kl);
  if (rocksdb_iter_valid(it) && (key = rocksdb_iter_key(it, &len)) && len == kl &&
      !memcmp(key, k, c->nlen + 1))
    c->last_id = get_be64((const unsigned char *)key + c->nlen + 1);
  rocksdb_iter_destroy(it);
}

static int load(lmq_rmq *r) {
  lmq_id hwm = 0;
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, r->r_meta, r->cf_meta);
  /* Topics first ("$" sorts before every name byte), then the rest. */
  for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(it, &kl);
    const char *v = rocksdb_iter_value(it, &vl);
    char key[3 * LMQ_NAME_MAX + 32];
    if (kl >= sizeof key)
      continue;
    memcpy(key, k, kl);
    key[kl] = 0;
    if (!strncmp(key, "$topic/", 7)) {
      if (name_ok("channel", key + 7))
        continue;
      rmq_chan *c = chan_new(key + 7);
      if (!c) {
        rocksdb_iter_destroy(it);
        return fail(LMQ_ENOMEM, "out of memory loading channels");
      }
      c->refs = 1; /* the table's reference */
      unsigned h = hash_name(c->name);
      c->next = r->table[h];
      r->table[h] = c;
      chan_scan_bounds(r, c);
      if (c->last_id > hwm)
        hwm = c->last_id;
    } else if (!strcmp(key, "$id/hwm") && vl == 8) {
      lmq_id v64 = get_be64((const unsigned char *)v);
      if (v64 > hwm)
        hwm = v64;
    } else if (vl == 8 && kl > 11 && !strcmp(key + kl - 11, "/current_id")) {
      key[kl - 11] = 0;
      char *slash = strchr(key, '/');
      if (!slash)
        continue; /* "<channel>/..." keys have one slash */
      *slash = 0;
      const char *gname = key, *cname = slash + 1;
      if (name_ok("group", gname) || name_ok("channel", cname))
        continue;
      rmq_chan *c = r->table[hash_name(cname)];
      while (c && strcmp(c->name, cname))
        c = c->next;
      if (!c || group_find(c, gname))
        continue; /* a leftover of a destroyed channel */
      rmq_group *g = group_new(gname, get_be64((const unsigned char *)v));
      if (!g) {
        rocksdb_iter_destroy(it);
        return fail(LMQ_ENOMEM, "out of memory loading groups");
      }
      g->next = c->groups;
      c->groups = g;
      if (c->last_id && c->last_id >= g->cursor)
        efd_set(g->efd);
    }
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  if (err)
    return rocks_fail(err, "loading metadata");
  r->next_id = hwm + 1;
  return 0;
}

int lmq__rmq_open(lmq_rmq **out, const char *dir, int sync) {
  if (!out || !dir || !*dir)
    return fail(LMQ_EINVAL, "NULL out or dir");
  *out = NULL;
  if (sync < LMQ_SYNC_DEFAULT || sync > LMQ_SYNC_NONE)
    return fail(LMQ_EINVAL, "sync policy %d is not an enum lmq_sync", sync);
  lmq_rmq *r = calloc(1, sizeof *r);
  if (!r)
    return fail(LMQ_ENOMEM, "out of memory");
  r->sync = sync == LMQ_SYNC_DEFAULT ? LMQ_SYNC_ALWAYS : sync;
  pthread_mutex_init(&r->reg_mu, NULL);
  pthread_mutex_init(&r->alloc_mu, NULL);

  /* RocksMQ's configuration: 64 KiB blocks, background parallelism, one
   * background flush; we also turn compression off because payloads are
   * small and mostly incompressible. Write buffer and block cache are
   * RocksDB's defaults. */
  r->topts = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_size(r->topts, BLOCK_SIZE);
  r->opts = rocksdb_options_create();
  rocksdb_options_set_block_based_table_factory(r->opts, r->topts);
  rocksdb_options_set_create_if_missing(r->opts, 1);
  rocksdb_options_set_create_missing_column_families(r->opts, 1);
  rocksdb_options_increase_parallelism(r->opts, PARALLELISM);
  rocksdb_options_set_max_background_flushes(r->opts, 1);
  rocksdb_options_set_compression(r->opts, rocksdb_no_compression);
  r->w_sync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->w_sync, 1);
  r->w_nosync = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->w_nosync, 0);
  r->r_meta = rocksdb_readoptions_create();

  const char *names[2] = {"default", "meta"};
  const rocksdb_options_t *copts[2] = {r->opts, r->opts};
  rocksdb_column_family_handle_t *cfs[2] = {NULL, NULL};
  char *err = NULL;
  r->db = rocksdb_open_column_families(r->opts, dir, 2, names, copts, cfs, &err);
  int rc;
  if (err) {
    rc = rocks_fail(err, "open");
    r->db = NULL;
    lmq__rmq_close(r);
    return rc;
  }
  r->cf_data = cfs[0];
  r->cf_meta = cfs[1];
  if ((rc = load(r))) {
    lmq__rmq_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

void lmq__rmq_close(lmq_rmq *r) {
  if (!r)
    return;
  for (unsigned i = 0; i < NBUCKETS; i++)
    for (rmq_chan *c = r->table[i], *n; c; c = n) {
      n = c->next;
      chan_free(c);
    }
  if (r->cf_data)
    rocksdb_column_family_handle_destroy(r->cf_data);
  if (r->cf_meta)
    rocksdb_column_family_handle_destroy(r->cf_meta);
  if (r->db)
    rocksdb_close(r->db);
  rocksdb_writeoptions_destroy(r->w_sync);
  rocksdb_writeoptions_destroy(r->w_nosync);
  rocksdb_readoptions_destroy(r->r_meta);
  rocksdb_options_destroy(r->opts);
  rocksdb_block_based_options_destroy(r->topts);
  pthread_mutex_destroy(&r->reg_mu);
  pthread_mutex_destroy(&r->alloc_mu);
  free(r);
}

int lmq__rmq_flush(lmq_rmq *r) {
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_flushoptions_set_wait(fo, 1);
  char *err = NULL;
  rocksdb_flush_cf(r->db, fo, r->cf_data, &err);
  if (!err)
    rocksdb_flush_cf(r->db, fo, r->cf_meta, &err);
  rocksdb_flushoptions_destroy(fo);
  return err ? rocks_fail(err, "flush") : 0;
}

/* ------------------------------------------------------------- channels */

int lmq__rmq_channel_create(lmq_rmq *r, const char *name) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  if ((rc = name_ok("channel", name)))
    return rc;
  if (lmq__rmq_channel_exists(r, name) == 1)
    return 0;
  char key[LMQ_NAME_MAX + 16];
  snprintf(key, sizeof key, "$topic/%s", name);
  rmq_chan *c = chan_new(name);
  if (!c)
    return fail(LMQ_ENOMEM, "out of memory");
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  meta_put_u64(b, r, key, now_ms());
  pthread_mutex_lock(&r->reg_mu);
  unsigned h = hash_name(name);
  rmq_chan *o = r->table[h];
  while (o && strcmp(o->name, name))
    o = o->next;
  char *err = NULL;
  if (!o) /* the write is under reg_mu so that racing creates agree */
    rocksdb_write(r->db, wopts(r, LMQ_SYNC_DEFAULT), b, &err);
  if (!o && !err) {
    c->refs = 1;
    c->next = r->table[h];
    r->table[h] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&r->reg_mu);
  rocksdb_writebatch_destroy(b);
  if (c)
    chan_free(c);
  return err ? rocks_fail(err, "create channel") : 0;
}

int lmq__rmq_channel_exists(lmq_rmq *r, const char *name) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rmq_chan *c = chan_get(r, name, &rc);
  if (!c)
    return rc == LMQ_ENOCHANNEL ? 0 : rc;
  chan_put(r, c);
  return 1;
}

int lmq__rmq_channel_destroy(lmq_rmq *r, const char *name) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rmq_chan *c = chan_get(r, name, &rc);
  if (!c)
    return rc;
  /* Unlink first: new lookups fail, the table's reference is ours. */
  pthread_mutex_lock(&r->reg_mu);
  rmq_chan **pp = &r->table[hash_name(name)];
  while (*pp && *pp != c)
    pp = &(*pp)->next;
  int linked = *pp == c;
  if (linked)
    *pp = c->next;
  pthread_mutex_unlock(&r->reg_mu);
  if (!linked) { /* a concurrent destroy won */
    chan_put(r, c);
    return fail(LMQ_ENOCHANNEL, "no channel '%s'", name);
  }
  pthread_mutex_lock(&c->prod_mu);
  pthread_mutex_lock(&c->mu);
  c->dead = 1;
  pthread_cond_broadcast(&c->cond);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  char lo[LMQ_NAME_MAX + 9], hi[LMQ_NAME_MAX + 9], key[3 * LMQ_NAME_MAX + 32];
  size_t kl = data_key(lo, c, 0);
  memcpy(hi, lo, kl);
  hi[c->nlen] = '/' + 1; /* the end of the "<name>/" prefix */
  rocksdb_writebatch_delete_range_cf(b, r->cf_data, lo, kl, hi, c->nlen + 1);
  const char *suffix[3] = {"$topic/", "/begin_id", "/end_id"};
  snprintf(key, sizeof key, "%s%s", suffix[0], name);
  rocksdb_writebatch_delete_cf(b, r->cf_meta, key, strlen(key));
  for (int i = 1; i < 3; i++) {
    snprintf(key, sizeof key, "%s%s", name, suffix[i]);
    rocksdb_writebatch_delete_cf(b, r->cf_meta, key, strlen(key));
  }
  for (rmq_group *g = c->groups; g; g = g->next) {
    g->dead = 1;
    snprintf(key, sizeof key, "%s/%s/current_id", g->name, name);
    rocksdb_writebatch_delete_cf(b, r->cf_meta, key, strlen(key));
  }
  pthread_mutex_unlock(&c->mu);
  char *err = NULL;
  rocksdb_write(r->db, wopts(r, LMQ_SYNC_DEFAULT), b, &err);
  rocksdb_writebatch_destroy(b);
  pthread_mutex_unlock(&c->prod_mu);
  chan_put(r, c); /* the table's */
  chan_put(r, c); /* ours */
  return err ? rocks_fail(err, "destroy channel") : 0;
}

/* ------------------------------------------------------------- produce */

int lmq__rmq_produce(lmq_rmq *r, const char *channel, const lmq_buf *msgs, size_t n,
                     lmq_id *out_ids, int sync) {
  int rc;
  if (!r || (!msgs && n))
    return fail(LMQ_EINVAL, "NULL store or messages");
  if (n == 0)
    return fail(LMQ_EINVAL, "no messages");
  if (sync < LMQ_SYNC_DEFAULT || sync > LMQ_SYNC_NONE)
    return fail(LMQ_EINVAL, "sync policy %d is not an enum lmq_sync", sync);
  for (size_t i = 0; i < n; i++)
    if (!msgs[i].data && msgs[i].len)
      return fail(LMQ_EINVAL, "message %zu: NULL data with length %zu", i, msgs[i].len);
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  char key[LMQ_NAME_MAX + 16];
  pthread_mutex_lock(&c->prod_mu);
  if (c->dead) {
    rc = fail(LMQ_ENOCHANNEL, "channel '%s' was destroyed", channel);
    goto out;
  }
  pthread_mutex_lock(&r->alloc_mu);
  lmq_id first = now_ms() << LMQ_ID_LOGICAL_BITS;
  if (first < r->next_id)
    first = r->next_id;
  r->next_id = first + n;
  pthread_mutex_unlock(&r->alloc_mu);
  lmq_id last = first + n - 1;
  for (size_t i = 0; i < n; i++) {
    size_t kl = data_key(key, c, first + i);
    rocksdb_writebatch_put_cf(b, r->cf_data, key, kl, msgs[i].len ? msgs[i].data : "",
                              msgs[i].len);
  }
  if (!c->first_id) {
    snprintf(key, sizeof key, "%s/begin_id", c->name);
    meta_put_u64(b, r, key, first);
  }
  snprintf(key, sizeof key, "%s/end_id", c->name);
  meta_put_u64(b, r, key, last);
  meta_put_u64(b, r, "$id/hwm", last);
  char *err = NULL;
  rocksdb_write(r->db, wopts(r, sync), b, &err);
  if (err) {
    rc = rocks_fail(err, "produce");
    goto out;
  }
  pthread_mutex_lock(&c->mu);
  if (!c->first_id)
    c->first_id = first;
  c->last_id = last;
  for (rmq_group *g = c->groups; g; g = g->next)
    efd_set(g->efd);
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
  if (out_ids)
    for (size_t i = 0; i < n; i++)
      out_ids[i] = first + i;
out:
  pthread_mutex_unlock(&c->prod_mu);
  rocksdb_writebatch_destroy(b);
  chan_put(r, c);
  return rc;
}

int lmq__rmq_latest_id(lmq_id *out, lmq_rmq *r, const char *channel) {
  int rc;
  if (!out || !r)
    return fail(LMQ_EINVAL, "NULL out or store");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  pthread_mutex_lock(&c->mu);
  lmq_id last = c->last_id;
  pthread_mutex_unlock(&c->mu);
  chan_put(r, c);
  if (!last)
    return fail(LMQ_EEMPTY, "channel '%s' is empty", channel);
  *out = last;
  return 0;
}

/* ------------------------------------------------------------- groups */

static int cursor_write(lmq_rmq *r, rmq_chan *c, rmq_group *g, lmq_id cursor) {
  char key[3 * LMQ_NAME_MAX + 32];
  snprintf(key, sizeof key, "%s/%s/current_id", g->name, c->name);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  meta_put_u64(b, r, key, cursor);
  char *err = NULL;
  rocksdb_write(r->db, wopts(r, LMQ_SYNC_DEFAULT), b, &err);
  rocksdb_writebatch_destroy(b);
  return err ? rocks_fail(err, "write cursor") : 0;
}

int lmq__rmq_group_create(lmq_rmq *r, const char *channel, const char *group,
                          int start) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  if ((rc = name_ok("group", group)))
    return rc;
  if (start != LMQ_START_EARLIEST && start != LMQ_START_LATEST)
    return fail(LMQ_EINVAL, "start %d is not an enum lmq_start", start);
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  /* prod_mu keeps "latest" exact and the table consistent with the DB. */
  pthread_mutex_lock(&c->prod_mu);
  pthread_mutex_lock(&c->mu);
  int exists = group_find(c, group) != NULL;
  lmq_id cursor = start == LMQ_START_LATEST ? c->last_id + 1 : 0;
  pthread_mutex_unlock(&c->mu);
  if (!exists && !c->dead) {
    rmq_group *g = group_new(group, cursor);
    if (!g) {
      rc = fail(LMQ_ENOMEM, "out of memory (or no eventfd)");
    } else if ((rc = cursor_write(r, c, g, cursor))) {
      group_free(g);
    } else {
      pthread_mutex_lock(&c->mu);
      g->next = c->groups;
      c->groups = g;
      if (c->last_id && c->last_id >= cursor)
        efd_set(g->efd);
      pthread_mutex_unlock(&c->mu);
    }
  } else if (c->dead) {
    rc = fail(LMQ_ENOCHANNEL, "channel '%s' was destroyed", channel);
  }
  pthread_mutex_unlock(&c->prod_mu);
  chan_put(r, c);
  return rc;
}

/* Look up group in a referenced channel; NULL with LMQ_ENOGROUP recorded. */
static rmq_group *group_get(rmq_chan *c, const char *group, int *rc) {
  if ((*rc = name_ok("group", group)))
    return NULL;
  pthread_mutex_lock(&c->mu);
  rmq_group *g = group_find(c, group);
  pthread_mutex_unlock(&c->mu);
  if (!g)
    *rc = fail(LMQ_ENOGROUP, "no group '%s' on channel '%s'", group, c->name);
  return g;
}

int lmq__rmq_group_destroy(lmq_rmq *r, const char *channel, const char *group) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rmq_group *g = NULL;
  pthread_mutex_lock(&c->prod_mu);
  if (!name_ok("group", group)) {
    pthread_mutex_lock(&c->mu);
    rmq_group **pp = &c->groups;
    while (*pp && strcmp((*pp)->name, group))
      pp = &(*pp)->next;
    if ((g = *pp)) {
      *pp = g->next;
      g->dead = 1;
      g->next = c->graveyard;
      c->graveyard = g;
      pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->mu);
    if (!g) {
      rc = fail(LMQ_ENOGROUP, "no group '%s' on channel '%s'", group, channel);
    } else {
      char key[3 * LMQ_NAME_MAX + 32];
      snprintf(key, sizeof key, "%s/%s/current_id", group, channel);
      char *err = NULL;
      rocksdb_delete_cf(r->db, wopts(r, LMQ_SYNC_DEFAULT), r->cf_meta, key, strlen(key),
                        &err);
      if (err)
        rc = rocks_fail(err, "destroy group");
    }
  } else {
    rc = name_ok("group", group);
  }
  pthread_mutex_unlock(&c->prod_mu);
  chan_put(r, c);
  return rc;
}

/* ------------------------------------------------------------- consume */

void lmq__rmq_msgs_free(lmq_rmq_msgs *m) {
  if (!m)
    return;
  if (m->n)
    free((void *)m->msgs[0].data); /* the payload block starts at message 0 */
  free(m->msgs);
  free(m);
}

/* Read up to max messages with IDs in [from, to] into *out. */
static int read_range(lmq_rmq_msgs **out, lmq_rmq *r, rmq_chan *c, lmq_id from,
                      lmq_id to, size_t max) {
  lmq_rmq_msgs *m = calloc(1, sizeof *m);
  size_t cap = max < 64 ? max : 64, dcap = 4096, dlen = 0;
  char *data = malloc(dcap);
  if (!m || !data || !(m->msgs = malloc(cap * sizeof *m->msgs))) {
    free(data);
    if (m)
      free(m->msgs);
    free(m);
    return fail(LMQ_ENOMEM, "out of memory");
  }
  char lo[LMQ_NAME_MAX + 9], hi[LMQ_NAME_MAX + 9];
  size_t kl = data_key(lo, c, from);
  data_key(hi, c, to + 1);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  rocksdb_readoptions_set_iterate_upper_bound(ro, hi, kl);
  rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, ro, r->cf_data);
  int rc = 0;
  for (rocksdb_iter_seek(it, lo, kl); rocksdb_iter_valid(it) && m->n < max;
       rocksdb_iter_next(it)) {
    size_t klen, vlen;
    const char *k = rocksdb_iter_key(it, &klen);
    const char *v = rocksdb_iter_value(it, &vlen);
    if (klen != kl) /* cannot happen: the bound keeps us in the prefix */
      break;
    if (m->n == cap || dlen + vlen > dcap) {
      size_t ncap = m->n == cap ? cap * 2 : cap;
      size_t ndcap = dcap;
      while (dlen + vlen > ndcap)
        ndcap *= 2;
      lmq_msg *nm = realloc(m->msgs, ncap * sizeof *nm);
      if (nm)
        m->msgs = nm;
      char *nd = nm ? realloc(data, ndcap) : NULL;
      if (!nd) {
        rc = fail(LMQ_ENOMEM, "out of memory");
        break;
      }
      data = nd;
      cap = ncap;
      dcap = ndcap;
    }
    memcpy(data + dlen, v, vlen);
    /* Offsets for now; pointers once the block stops moving. */
    m->msgs[m->n++] = (lmq_msg){get_be64((const unsigned char *)k + c->nlen + 1),
                                (const void *)(uintptr_t)dlen, vlen};
    dlen += vlen;
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  if (!rc && err)
    rc = rocks_fail(err, "read");
  else if (err)
    rocksdb_free(err);
  if (rc) {
    free(data);
    free(m->msgs);
    free(m);
    return rc;
  }
  for (size_t i = 0; i < m->n; i++)
    m->msgs[i].data = data + (uintptr_t)m->msgs[i].data;
  if (!m->n)
    free(data);
  *out = m;
  return 0;
}

int lmq__rmq_consume(lmq_rmq_msgs **out, lmq_rmq *r, const char *channel,
                     const char *group, size_t max, int timeout_ms) {
  int rc;
  if (!out || !r)
    return fail(LMQ_EINVAL, "NULL out or store");
  *out = NULL;
  if (max == 0)
    return fail(LMQ_EINVAL, "max is 0");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rmq_group *g = group_get(c, group, &rc);
  if (!g) {
    chan_put(r, c);
    return rc;
  }
  pthread_mutex_lock(&g->mu);
  lmq_id cursor = g->cursor;
  struct timespec dl;
  clock_gettime(CLOCK_MONOTONIC, &dl);
  if (timeout_ms > 0) {
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&c->mu);
  while (!c->dead && !g->dead && !(c->last_id && c->last_id >= cursor) &&
         timeout_ms != 0) {
    if (timeout_ms < 0)
      pthread_cond_wait(&c->cond, &c->mu);
    else if (pthread_cond_timedwait(&c->cond, &c->mu, &dl) == ETIMEDOUT)
      break;
  }
  lmq_id last = c->last_id;
  int dead = c->dead, gdead = g->dead;
  int have = last && last >= cursor;
  if (!have && !dead && !gdead)
    efd_clear(g->efd); /* caught up */
  pthread_mutex_unlock(&c->mu);
  if (dead) {
    rc = fail(LMQ_ENOCHANNEL, "channel '%s' was destroyed", channel);
  } else if (gdead) {
    rc = fail(LMQ_ENOGROUP, "group '%s' was destroyed", group);
  } else if (!have) {
    if (!(*out = calloc(1, sizeof **out)))
      rc = fail(LMQ_ENOMEM, "out of memory");
  } else if (!(rc = read_range(out, r, c, cursor, last, max))) {
    lmq_rmq_msgs *m = *out;
    if (m->n) {
      lmq_id got = m->msgs[m->n - 1].id;
      g->cursor = got + 1;
      pthread_mutex_lock(&c->mu);
      if (got == c->last_id)
        efd_clear(g->efd);
      pthread_mutex_unlock(&c->mu);
    }
    rc = (int)(m->n > INT32_MAX ? INT32_MAX : m->n);
  }
  pthread_mutex_unlock(&g->mu);
  chan_put(r, c);
  return rc;
}

/* ------------------------------------------------------------- cursors */

typedef enum { SET_ID, SET_EARLIEST, SET_LATEST, SET_COMMIT, SET_REWIND } cursor_op;

static int cursor_op_run(lmq_rmq *r, const char *channel, const char *group,
                         cursor_op op, lmq_id id) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rmq_group *g = group_get(c, group, &rc);
  if (g) {
    pthread_mutex_lock(&g->mu);
    lmq_id cur = g->cursor;
    pthread_mutex_lock(&c->mu);
    /* Past the newest message means "from the next one produced" (IDs
     * follow the clock: one produced in the same millisecond could get an
     * ID below the target). */
    if (op == SET_ID)
      cur = id > c->last_id + 1 ? c->last_id + 1 : id;
    else if (op == SET_EARLIEST)
      cur = 0;
    else if (op == SET_LATEST)
      cur = c->last_id + 1;
    else if (op == SET_REWIND)
      cur = g->committed;
    pthread_mutex_unlock(&c->mu);
    /* A failed write changes nothing. */
    if (!(rc = cursor_write(r, c, g, cur))) {
      g->committed = cur;
      g->cursor = cur;
      pthread_mutex_lock(&c->mu);
      if (c->last_id && c->last_id >= cur)
        efd_set(g->efd);
      else
        efd_clear(g->efd);
      pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&g->mu);
  }
  chan_put(r, c);
  return rc;
}

int lmq__rmq_group_commit(lmq_rmq *r, const char *channel, const char *group) {
  return cursor_op_run(r, channel, group, SET_COMMIT, 0);
}

int lmq__rmq_group_rewind(lmq_rmq *r, const char *channel, const char *group) {
  return cursor_op_run(r, channel, group, SET_REWIND, 0);
}

int lmq__rmq_seek(lmq_rmq *r, const char *channel, const char *group, lmq_id id) {
  return cursor_op_run(r, channel, group, SET_ID, id);
}

int lmq__rmq_seek_earliest(lmq_rmq *r, const char *channel, const char *group) {
  return cursor_op_run(r, channel, group, SET_EARLIEST, 0);
}

int lmq__rmq_seek_latest(lmq_rmq *r, const char *channel, const char *group) {
  return cursor_op_run(r, channel, group, SET_LATEST, 0);
}

int lmq__rmq_group_cursor(lmq_id *cursor, lmq_id *committed, lmq_rmq *r,
                          const char *channel, const char *group) {
  int rc;
  if (!r)
    return fail(LMQ_EINVAL, "NULL store");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rmq_group *g = group_get(c, group, &rc);
  if (g) {
    pthread_mutex_lock(&g->mu);
    if (cursor)
      *cursor = g->cursor;
    if (committed)
      *committed = g->committed;
    pthread_mutex_unlock(&g->mu);
  }
  chan_put(r, c);
  return rc;
}

int lmq__rmq_group_fd(int *out, lmq_rmq *r, const char *channel, const char *group) {
  int rc;
  if (!out || !r)
    return fail(LMQ_EINVAL, "NULL out or store");
  rmq_chan *c = chan_get(r, channel, &rc);
  if (!c)
    return rc;
  rmq_group *g = group_get(c, group, &rc);
  if (g)
    *out = g->efd;
  chan_put(r, c);
  return rc;
}
