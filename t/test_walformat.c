/*
 * The WAL's produce records (src/engine/wal.h): varint message lengths
 * (the format written now) and u32 lengths (the first format, still read).
 * Round trips at the varint size boundaries, layouts that must not decode,
 * and an env whose WAL holds records of both formats, as left by a crash
 * of an lmq from before the change, recovering every message.
 */
#include "util.h"
#include "engine/wal.h"
#include "common/varint.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char pay(uint64_t id, size_t i) {
  return (unsigned char)(id * 31 + i * 7);
}

/* A sealed produce record of segment seg for lens[0..n) (payload bytes
 * from pay()), in the varint format or, with u32, the first one. */
static unsigned char *record(size_t *size, uint64_t seg, uint64_t first, const uint32_t *lens,
                             uint32_t n, int u32) {
  uint64_t total = 0, lb = 0;
  for (uint32_t i = 0; i < n; i++) {
    total += lens[i];
    lb += u32 ? 4 : lmq__varint_len(lens[i]);
  }
  *size = lmq__wal_rec_size(1, lb, total);
  unsigned char *b = malloc(*size);
  cr_assert_not_null(b);
  unsigned char *p = lmq__wal_rec_begin(b, *size, "c", 1, 1, first, n);
  if (u32)
    b[LMQ_WAL_HDR] = LMQ_WAL_REC_PRODUCE;
  for (uint32_t i = 0; i < n; i++) {
    if (u32) {
      lmq__put32(p, lens[i]);
      p += 4;
    } else {
      p += lmq__varint_put(p, lens[i]);
    }
    for (size_t j = 0; j < lens[i]; j++)
      *p++ = pay(first + i, j);
  }
  cr_assert_eq((size_t)(p - b), *size - LMQ_WAL_TRAILER);
  lmq__wal_rec_seal(b, *size, seg);
  return b;
}

static void decodes_back(const unsigned char *b, size_t size, uint64_t seg, uint64_t first,
                         const uint32_t *lens, uint32_t n, int u32) {
  lmq_wal_rec r;
  cr_assert_eq(lmq__wal_decode(&r, b, size, seg), LMQ_WAL_OK);
  cr_assert_eq(r.type, LMQ_WAL_REC_PRODUCE);
  cr_assert_eq(r.varlen, !u32);
  cr_assert_eq(r.size, size);
  cr_assert_eq(r.count, n);
  size_t pos = 0;
  const unsigned char *d;
  uint32_t len;
  for (uint32_t i = 0; i < n; i++) {
    cr_assert(lmq__wal_rec_next(&r, &pos, &d, &len), "entry %u missing", i);
    cr_assert_eq(len, lens[i], "entry %u: length %u, not %u", i, len, lens[i]);
    for (size_t j = 0; j < len; j++)
      cr_assert_eq(d[j], pay(first + i, j), "entry %u byte %zu", i, j);
  }
  cr_assert_not(lmq__wal_rec_next(&r, &pos, &d, &len));
}

Test(walformat, both_formats_round_trip_at_every_varint_size) {
  /* 0, one byte's largest, two bytes' smallest and largest, three bytes'
   * smallest, and a large one. */
  static const uint32_t lens[] = {0, 1, 127, 128, 16383, 16384, 300000, 100};
  uint32_t n = sizeof lens / sizeof *lens;
  for (int u32 = 0; u32 <= 1; u32++) {
    size_t size;
    unsigned char *b = record(&size, 7, 1000, lens, n, u32);
    decodes_back(b, size, 7, 1000, lens, n, u32);
    /* Not a record of another segment. */
    lmq_wal_rec r;
    cr_assert_eq(lmq__wal_decode(&r, b, size, 8), LMQ_WAL_NONE);
    free(b);
  }
}

Test(walformat, varint_lengths_make_small_messages_smaller) {
  uint32_t lens[1000];
  for (int i = 0; i < 1000; i++)
    lens[i] = 100;
  size_t v, u;
  free(record(&v, 1, 1, lens, 1000, 0));
  free(record(&u, 1, 1, lens, 1000, 1));
  cr_assert_eq(u - v, 3000, "u32 %zu, varint %zu", u, v);
}

/* Reseal after editing the body so that only the layout is wrong. */
static int decode_edited(unsigned char *b, size_t size, uint64_t seg) {
  lmq__wal_rec_seal(b, size, seg);
  lmq_wal_rec r;
  return lmq__wal_decode(&r, b, size, seg);
}

Test(walformat, bad_lengths_do_not_decode) {
  uint32_t lens[2] = {5, 200}; /* varints: 1 byte, then 2 */
  size_t size;
  unsigned char *b = record(&size, 3, 50, lens, 2, 0);
  size_t at = LMQ_WAL_HDR + 2 + 1 + 8 + 8 + 4; /* the first length */
  cr_assert_eq(b[at], 5);
  /* A length past the record's end. */
  b[at] = 0x7f;
  cr_assert_eq(decode_edited(b, size, 3), LMQ_WAL_TORN);
  /* One byte shorter than the entries need. */
  b[at] = 4;
  cr_assert_eq(decode_edited(b, size, 3), LMQ_WAL_TORN);
  /* One longer: bytes left over after the last entry. */
  b[at] = 6;
  cr_assert_eq(decode_edited(b, size, 3), LMQ_WAL_TORN);
  b[at] = 5;
  cr_assert_eq(decode_edited(b, size, 3), LMQ_WAL_OK);
  /* The second length's varint cut off by the end of the record: the last
   * entry's bytes all have the continuation bit. */
  free(b);
  uint32_t one[1] = {0};
  b = record(&size, 3, 50, one, 1, 0);
  at = size - LMQ_WAL_TRAILER - 1;
  b[at] = 0x80;
  cr_assert_eq(decode_edited(b, size, 3), LMQ_WAL_TORN);
  free(b);
  /* A varint longer than 5 bytes, or above 2^32 - 1. */
  unsigned char v[6] = {0xff, 0xff, 0xff, 0xff, 0x7f, 0};
  uint32_t x;
  cr_assert_eq(lmq__varint_get32(v, v + 6, &x), 0, "2^35 - 1 is not a u32");
  unsigned char w[6] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  cr_assert_eq(lmq__varint_get32(w, w + 6, &x), 0, "six bytes");
  unsigned char m[5] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  cr_assert_eq(lmq__varint_get32(m, m + 5, &x), 5);
  cr_assert_eq(x, UINT32_MAX);
  cr_assert_eq(lmq__varint_get32(m, m + 4, &x), 0, "cut off by end");
}

/* The current segment of a closed env: the highest-numbered file. */
static uint64_t last_segment(const char *dir) {
  char wal[4096];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  DIR *d = opendir(wal);
  cr_assert_not_null(d);
  uint64_t seg = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (strlen(de->d_name) == 20 && strcmp(de->d_name + 16, ".log") == 0) {
      uint64_t s = strtoull(de->d_name, NULL, 10);
      if (s > seg)
        seg = s;
    }
  closedir(d);
  return seg;
}

Test(walformat, a_wal_of_the_first_format_recovers) {
  char *dir = tmpdir_new();
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, NULL), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
  /* What a crash leaves: unapplied records in the current segment, one of
   * the first format and one of the new. */
  uint64_t seg = last_segment(dir);
  cr_assert_gt(seg, 0);
  lmq_id first = lmq_id_from_time(1700000000000ull);
  uint32_t lens[3] = {0, 100, 1000};
  size_t s1, s2;
  unsigned char *old = record(&s1, seg, first, lens, 3, 1);
  unsigned char *cur = record(&s2, seg, first + 3, lens, 3, 0);
  char path[4200];
  snprintf(path, sizeof path, "%s/wal/%016" PRIu64 ".log", dir, seg);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, old, s1), (ssize_t)s1);
  cr_assert_eq(write(fd, cur, s2), (ssize_t)s2);
  close(fd);
  free(old);
  free(cur);
  cr_assert_eq(lmq_env_open(&env, dir, NULL), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0);
  lmq_msgs *m = NULL;
  int got = lmq_consume(&m, env, "c", "g", 10, 0);
  cr_assert_eq(got, 6, "%d messages recovered: %s", got, lmq_errmsg());
  for (int i = 0; i < 6; i++) {
    const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
    cr_assert_eq(x->id, first + (lmq_id)i);
    cr_assert_eq(x->len, lens[i % 3]);
    for (size_t j = 0; j < x->len; j++)
      cr_assert_eq(((const unsigned char *)x->data)[j], pay(first + (lmq_id)i, j));
  }
  lmq_msgs_free(m);
  lmq_env_close(env);
  tmpdir_rm(dir);
}
