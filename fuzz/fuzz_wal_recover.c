/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * fuzz_wal_recover - recovery of a WAL built from the input, with damage.
 *
 * The input is read as a little program: records to write (produce records
 * with payloads derived from their IDs, MARK and END records, properly
 * sealed, so recovery sees real logs and not only checksum failures), spread
 * over the segments an END opens, then damage (a flipped byte, a cut) and
 * whether to salvage. The log goes into a fresh env whose channel "c" the
 * records name, and the env is opened by the normal code.
 * Oracle: the open succeeds or fails with LMQ_ECORRUPT (nothing else);
 * after a successful open every message served has its exact payload and
 * IDs increase, and opening again serves the same messages.
 */
#define _GNU_SOURCE
#include "engine/wal.h"
#include "lmq.h"
#include "fuzz.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(c)                                                               \
  do {                                                                         \
    if (!(c)) {                                                                \
      fprintf(stderr, "check failed: %s (%s)\n", #c, lmq_errmsg());            \
      abort();                                                                 \
    }                                                                          \
  } while (0)

typedef struct in {
  const uint8_t *p;
  size_t n;
} in;

static unsigned next(in *r) {
  if (!r->n)
    return 0;
  r->n--;
  return *r->p++;
}

static unsigned char pay(lmq_id id, size_t i) {
  return (unsigned char)(id * 131 + i * 7 + (id >> 18));
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st, (void)f, (void)w;
  return remove(p);
}

/* A fresh env with channel "c" (incarnation 1), closed; the number of its
 * current WAL segment (the applied one, empty after the close). */
static uint64_t make_env(const char *dir) {
  lmq_env *env;
  CHECK(lmq_env_open(&env, dir, NULL) == 0);
  CHECK(lmq_channel_create(env, "c") == 0);
  lmq_env_close(env);
  char wal[4096];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  DIR *d = opendir(wal);
  CHECK(d);
  uint64_t seg = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strlen(de->d_name) == 20)
      seg = strtoull(de->d_name, NULL, 10);
  closedir(d);
  return seg;
}

typedef struct segbuf {
  unsigned char *b;
  size_t n, cap;
} segbuf;

static void put(segbuf *s, const void *p, size_t n) {
  if (s->n + n > s->cap) {
    s->cap = (s->n + n) * 2;
    s->b = realloc(s->b, s->cap);
    CHECK(s->b);
  }
  memcpy(s->b + s->n, p, n);
  s->n += n;
}

static void write_seg(const char *dir, uint64_t seg, const segbuf *s) {
  char path[4096];
  snprintf(path, sizeof path, "%s/wal/%016" PRIu64 ".log", dir, seg);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK(write(fd, s->b, s->n) == (ssize_t)s->n);
  close(fd);
}

/* Open, read everything of "c"; returns the count or -1 (ECORRUPT). */
static long open_and_read(const char *dir, unsigned flags, lmq_id *ids, long cap) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.flags = flags;
  lmq_env *env;
  int rc = lmq_env_open(&env, dir, &o);
  if (rc == LMQ_ECORRUPT)
    return -1;
  CHECK(rc == 0);
  CHECK(lmq_group_create(env, "c", "fz", LMQ_START_EARLIEST) == 0);
  long n = 0;
  lmq_id prev = 0;
  for (;;) {
    lmq_msgs *m;
    int k = lmq_consume(&m, env, "c", "fz", 256, 0);
    CHECK(k >= 0);
    for (int i = 0; i < k; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      CHECK(x->id > prev && x->id <= LMQ_ID_MAX);
      prev = x->id;
      for (size_t j = 0; j < x->len; j++)
        CHECK(((const unsigned char *)x->data)[j] == pay(x->id, j));
      if (n < cap)
        ids[n] = x->id;
      n++;
    }
    lmq_msgs_free(m);
    if (k == 0)
      break;
  }
  CHECK(lmq_group_destroy(env, "c", "fz") == 0);
  lmq_env_close(env);
  return n;
}

static char base[256];
static void cleanup(void) { nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!*base) {
    const char *t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(base, sizeof base, "%s/lmq-fuzz-XXXXXX", t);
    CHECK(mkdtemp(base));
    atexit(cleanup);
  }
  char dir[300];
  snprintf(dir, sizeof dir, "%s/env", base);
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  uint64_t seg0 = make_env(dir), seg = seg0;
  in r = {data, size};
  segbuf s[4] = {{0}};
  int cur = 0;
  unsigned nrec = next(&r) % 24;
  lmq_id id = lmq_id_from_time(1700000000000ull);
  for (unsigned i = 0; i < nrec; i++) {
    unsigned kind = next(&r) % 8;
    if (kind <= 4) { /* produce */
      uint32_t count = next(&r) % 4 + 1;
      size_t plen = next(&r) % 48, total = plen * count;
      uint64_t inc = kind == 4 ? next(&r) % 3 : 1;
      if (kind == 3) /* an ID far away, maybe out of range */
        id += (lmq_id)next(&r) << (next(&r) % 60);
      /* Varint lengths (one byte here), or the first format's u32. */
      int u32 = kind == 2;
      size_t lb = u32 ? 4 : 1;
      size_t sz = lmq__wal_rec_size(1, lb * count, total);
      unsigned char *b = malloc(sz);
      CHECK(b);
      unsigned char *p = lmq__wal_rec_begin(b, sz, "c", 1, inc, id, count);
      if (u32)
        b[LMQ_WAL_HDR] = LMQ_WAL_REC_PRODUCE;
      for (uint32_t k = 0; k < count; k++) {
        if (u32)
          lmq__put32(p, (uint32_t)plen);
        else
          p[0] = (unsigned char)plen;
        for (size_t j = 0; j < plen; j++)
          p[lb + j] = pay(id + k, j);
        p += lb + plen;
      }
      lmq__wal_rec_seal(b, sz, seg);
      put(&s[cur], b, sz);
      free(b);
      id += count;
    } else if (kind <= 6) { /* MARK: synced offset, often honest */
      unsigned char b[LMQ_WAL_CTL_SIZE];
      uint64_t at = kind == 5 ? s[cur].n : next(&r) * 16u;
      lmq__wal_ctl(b, LMQ_WAL_REC_MARK, at, seg);
      put(&s[cur], b, sizeof b);
    } else if (cur < 3) { /* END, next segment */
      unsigned char b[LMQ_WAL_CTL_SIZE];
      lmq__wal_ctl(b, LMQ_WAL_REC_END, seg + 1, seg);
      put(&s[cur], b, sizeof b);
      cur++;
      seg++;
    }
  }
  /* Damage. */
  unsigned dmg = next(&r) % 4, which = next(&r) % (unsigned)(cur + 1);
  size_t at = ((size_t)next(&r) << 8 | next(&r));
  if (dmg == 1 && s[which].n)
    s[which].b[at % s[which].n] ^= (unsigned char)(1u << (next(&r) % 8));
  else if (dmg == 2 && s[which].n)
    s[which].n = at % s[which].n;
  unsigned flags = next(&r) & 1 ? LMQ_OPEN_SALVAGE : 0;
  for (int k = 0; k <= cur; k++)
    if (!(dmg == 3 && k == (int)which && k < cur)) /* 3: a missing segment */
      write_seg(dir, seg0 + (uint64_t)k, &s[k]);
  static lmq_id a[1 << 12], b[1 << 12];
  long n1 = open_and_read(dir, flags, a, 1 << 12);
  if (n1 >= 0) {
    /* Recovery is done and durable: the next open serves the same. */
    long n2 = open_and_read(dir, 0, b, 1 << 12);
    CHECK(n2 == n1);
    CHECK(memcmp(a, b, (size_t)(n1 < (1 << 12) ? n1 : (1 << 12)) * sizeof *a) == 0);
  } else {
    CHECK(!flags); /* salvage opens whatever the damage */
  }
  for (int k = 0; k < 4; k++)
    free(s[k].b);
  return 0;
}
