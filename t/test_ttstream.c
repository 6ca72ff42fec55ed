/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* TtMsgStream over the engine: packs per common time tick, positions,
 * seek/replay, several channels at different rates, restarts. */
#include "lmq_stream.h"
#include "stream_util.h"
#include "util.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static char *dir;
static lmq_stream_factory *fac;
static void setup(void) {
  dir = tmpdir_new();
  fac = su_factory(dir);
}
static void teardown(void) {
  lmq_stream_factory_destroy(fac);
  tmpdir_rm(dir);
}
TestSuite(tt, .init = setup, .fini = teardown);

static lmq_msgstream *producer(const char *const *ch, size_t n) {
  lmq_msgstream *p = NULL;
  cr_assert_eq(lmq_msgstream_create(&p, fac), 0);
  cr_assert_eq(lmq_msgstream_as_producer(p, ch, n), 0);
  return p;
}

static lmq_msgstream *tt_consumer(const char *const *ch, size_t n,
                                  const char *sub, int start) {
  lmq_msgstream *c = NULL;
  cr_assert_eq(lmq_ttmsgstream_create(&c, fac), 0);
  cr_assert_eq(lmq_msgstream_as_consumer(c, ch, n, sub, start), 0, "%s",
               lmq_errmsg());
  return c;
}

/* The pack's message timestamps are exactly want[0..n). */
static void expect(const lmq_msg_pack *p, uint64_t begin, uint64_t end,
                   const uint64_t *want, size_t n) {
  cr_assert_eq(p->begin_ts, begin, "begin %llu", (unsigned long long)begin);
  cr_assert_eq(p->end_ts, end);
  cr_assert_eq(p->nmsgs, n, "pack (%llu,%llu]: %zu messages, want %zu",
               (unsigned long long)begin, (unsigned long long)end, p->nmsgs,
               n);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(lmq_tsmsg_end_ts(p->msgs[i]), want[i],
                 "pack (%llu,%llu] message %zu", (unsigned long long)begin,
                 (unsigned long long)end, i);
}

/* tick 0; insert ts {1,3,19}; tick 5; insert {14,9}; tick 11;
 * insert {12,13}; tick 15; tick 20 -- on one channel. */
static void seed_scenario(lmq_msgstream *p) {
  su_tick(p, 0);
  su_produce(p, su_insert(1, 1, 0));
  su_produce(p, su_insert(3, 3, 0));
  su_produce(p, su_insert(19, 19, 0));
  su_tick(p, 5);
  su_produce(p, su_insert(14, 14, 0));
  su_produce(p, su_insert(9, 9, 0));
  su_tick(p, 11);
  su_produce(p, su_insert(12, 12, 0));
  su_produce(p, su_insert(13, 13, 0));
  su_tick(p, 15);
  su_tick(p, 20);
}

static const uint64_t P1[] = {1, 3}, P2[] = {9}, P3[] = {14, 12, 13},
                      P4[] = {19};

Test(tt, one_channel_emits_one_pack_per_tick) {
  const char *ch[1] = {"tt1"};
  lmq_msgstream *p = producer(ch, 1);
  seed_scenario(p);
  lmq_msgstream *c = tt_consumer(ch, 1, "a", LMQ_SUB_EARLIEST);
  lmq_msg_pack *k[4];
  for (int i = 0; i < 4; i++)
    k[i] = su_pack(c);
  expect(k[0], 0, 5, P1, 2);
  expect(k[1], 5, 11, P2, 1);
  expect(k[2], 11, 15, P3, 3);
  expect(k[3], 15, 20, P4, 1);
  lmq_msg_pack *none = NULL;
  cr_assert_eq(lmq_msgstream_consume(&none, c, 20), LMQ_ETIMEDOUT);
  /* Positions: one per channel; end = first still-buffered message (19)
   * stamped T, or the tick itself once nothing is left. */
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(k[i]->nstart, 1);
    cr_assert_eq(k[i]->nend, 1);
    cr_assert_str_eq(k[i]->end_positions[0].channel, "tt1");
    cr_assert_str_eq(k[i]->end_positions[0].group, "a");
    cr_assert_eq(k[i]->end_positions[0].timestamp, k[i]->end_ts);
    cr_assert_eq(k[i]->start_positions[0].timestamp, k[i]->begin_ts);
  }
  const lmq_msg_position *at19 = lmq_tsmsg_position(k[3]->msgs[0]);
  for (int i = 0; i < 3; i++)
    cr_assert_arr_eq(k[i]->end_positions[0].msg_id, at19->msg_id, 8);
  cr_assert_arr_neq(k[3]->end_positions[0].msg_id, at19->msg_id, 8);
  /* A pack starts where the previous one ended. */
  for (int i = 1; i < 4; i++)
    cr_assert_arr_eq(k[i]->start_positions[0].msg_id,
                     k[i - 1]->end_positions[0].msg_id, 8);

  /* A new consumer seeking to pack 3's start replays packs 3 and 4. */
  lmq_msgstream *c2 = tt_consumer(ch, 1, "b", LMQ_SUB_LATEST);
  cr_assert_eq(lmq_msgstream_seek(c2, k[2]->start_positions, 1), 0, "%s",
               lmq_errmsg());
  lmq_msg_pack *r = su_pack(c2);
  expect(r, 11, 15, P3, 3);
  lmq_msg_pack_destroy(r);
  r = su_pack(c2);
  expect(r, 15, 20, P4, 1);
  lmq_msg_pack_destroy(r);
  cr_assert_eq(lmq_msgstream_consume(&none, c2, 0), LMQ_ETIMEDOUT);
  /* ...and to its end positions, only pack 4. */
  lmq_msgstream *c3 = tt_consumer(ch, 1, "c", LMQ_SUB_EARLIEST);
  cr_assert_eq(lmq_msgstream_seek(c3, k[2]->end_positions, 1), 0);
  r = su_pack(c3);
  expect(r, 15, 20, P4, 1);
  lmq_msg_pack_destroy(r);
  cr_assert_eq(lmq_msgstream_consume(&none, c3, 0), LMQ_ETIMEDOUT);

  for (int i = 0; i < 4; i++)
    lmq_msg_pack_destroy(k[i]);
  lmq_msgstream_close(c3);
  lmq_msgstream_close(c2);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

Test(tt, seek_needs_a_position_for_every_channel) {
  const char *ch[2] = {"sa", "sb"};
  lmq_msgstream *p = producer(ch, 2);
  su_tick(p, 1);
  su_tick(p, 2);
  lmq_msgstream *c = tt_consumer(ch, 2, "a", LMQ_SUB_EARLIEST);
  lmq_msg_pack *k = su_pack(c);
  cr_assert_eq(k->nend, 2);
  cr_assert_eq(lmq_msgstream_seek(c, k->end_positions, 1), LMQ_EINVAL);
  lmq_msg_position twice[2] = {k->end_positions[0], k->end_positions[0]};
  cr_assert_eq(lmq_msgstream_seek(c, twice, 2), LMQ_EINVAL);
  cr_assert_eq(lmq_msgstream_seek(c, k->end_positions, 2), 0);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

Test(tt, duplicate_inserts_in_one_pack_are_dropped) {
  const char *ch[1] = {"dup"};
  lmq_msgstream *p = producer(ch, 1);
  su_tick(p, 0);
  su_produce(p, su_insert(7, 3, 0));
  su_produce(p, su_insert(7, 3, 0)); /* a producer's retry */
  su_produce(p, su_insert(8, 4, 0));
  su_tick(p, 5);
  lmq_msgstream *c = tt_consumer(ch, 1, "a", LMQ_SUB_EARLIEST);
  lmq_msg_pack *k = su_pack(c);
  uint64_t want[2] = {3, 4};
  expect(k, 0, 5, want, 2);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

Test(tt, waits_for_every_channel_to_reach_the_tick) {
  const char *ch[2] = {"wa", "wb"};
  lmq_msgstream *pa = producer(&ch[0], 1), *pb = producer(&ch[1], 1);
  su_produce(pa, su_insert(1, 2, 0));
  su_tick(pa, 5);
  lmq_msgstream *c = tt_consumer(ch, 2, "a", LMQ_SUB_EARLIEST);
  int fd = -1;
  cr_assert_eq(lmq_msgstream_fd(&fd, c), 0);
  lmq_msg_pack *k = NULL;
  cr_assert_eq(lmq_msgstream_consume(&k, c, 20), LMQ_ETIMEDOUT);
  su_produce(pb, su_insert(2, 4, 0));
  su_tick(pb, 5);
  k = su_pack(c);
  uint64_t want[2] = {2, 4};
  expect(k, 0, 5, want, 2);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(pa);
  lmq_msgstream_close(pb);
}

Test(tt, a_channel_that_missed_a_tick_catches_up_with_the_others) {
  /* Channel "ma" sees ticks 5 and 10, "mb" only 10 (its tick 5 was lost):
   * the stream must read "ma" past 5 and emit one pack (0, 10]. */
  const char *ch[2] = {"ma", "mb"};
  lmq_msgstream *pa = producer(&ch[0], 1), *pb = producer(&ch[1], 1);
  su_produce(pa, su_insert(1, 3, 0));
  su_tick(pa, 5);
  su_produce(pa, su_insert(2, 7, 0));
  su_tick(pa, 10);
  su_produce(pb, su_insert(3, 8, 0));
  su_tick(pb, 10);
  lmq_msgstream *c = tt_consumer(ch, 2, "a", LMQ_SUB_EARLIEST);
  lmq_msg_pack *k = su_pack(c);
  cr_assert_eq(k->begin_ts, 0);
  cr_assert_eq(k->end_ts, 10);
  cr_assert_eq(k->nmsgs, 3);
  /* Across channels the order is the reading order; check the set. */
  uint64_t seen = 0;
  for (size_t i = 0; i < k->nmsgs; i++)
    seen |= (uint64_t)1 << lmq_tsmsg_end_ts(k->msgs[i]);
  cr_assert_eq(seen, (1u << 3) | (1u << 7) | (1u << 8));
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(pa);
  lmq_msgstream_close(pb);
}

/* Three channels at different rates: channel c gets (c + 1) * 3 inserts per
 * tick interval, timestamps spread over the interval and some that belong
 * to the next interval (arriving early). */
#define NCH 3
#define NTICKS 12
#define IVL 100

static size_t produce_rates(lmq_msgstream *p) {
  size_t total = 0;
  int64_t id = 1;
  su_tick(p, 0);
  for (int t = 1; t <= NTICKS; t++) {
    uint64_t lo = (uint64_t)(t - 1) * IVL, hi = (uint64_t)t * IVL;
    for (uint32_t c = 0; c < NCH; c++) {
      int n = (int)(c + 1) * 3;
      for (int i = 0; i < n; i++) {
        uint64_t ts = lo + 1 + (uint64_t)((i * 37 + (int)c * 11) % IVL);
        if (i % 4 == 3 && t < NTICKS)
          ts += IVL; /* belongs to the next interval */
        su_produce(p, su_insert(id++, ts, c));
        total++;
      }
    }
    su_tick(p, hi);
  }
  return total;
}

Test(tt, channels_at_different_rates_keep_every_message_in_its_interval) {
  const char *ch[NCH] = {"r0", "r1", "r2"};
  lmq_msgstream *p = producer(ch, NCH);
  size_t total = produce_rates(p);
  lmq_msgstream *c = tt_consumer(ch, NCH, "a", LMQ_SUB_EARLIEST);
  size_t got = 0;
  for (int t = 1; t <= NTICKS; t++) {
    lmq_msg_pack *k = su_pack(c);
    cr_assert_eq(k->begin_ts, (uint64_t)(t - 1) * IVL);
    cr_assert_eq(k->end_ts, (uint64_t)t * IVL);
    cr_assert_eq(k->nstart, NCH);
    cr_assert_eq(k->nend, NCH);
    for (size_t i = 0; i < k->nmsgs; i++) {
      uint64_t ts = lmq_tsmsg_end_ts(k->msgs[i]);
      cr_assert(k->begin_ts < ts && ts <= k->end_ts,
                "ts %llu outside (%llu,%llu]", (unsigned long long)ts,
                (unsigned long long)k->begin_ts,
                (unsigned long long)k->end_ts);
    }
    got += k->nmsgs;
    lmq_msg_pack_destroy(k);
  }
  cr_assert_eq(got, total);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

Test(tt, reopening_at_checkpointed_end_positions_loses_and_repeats_nothing) {
  const char *ch[NCH] = {"k0", "k1", "k2"};
  lmq_msgstream *p = producer(ch, NCH);
  size_t total = produce_rates(p);
  int64_t maxid = (int64_t)total;
  char *seen = calloc((size_t)maxid + 1, 1);
  unsigned char *ckpt = NULL;
  size_t ckpt_len = 0, got = 0;
  uint64_t last_end = 0;
  for (int t = 1; t <= NTICKS; t++) {
    /* A fresh stream each time, as after a process restart. */
    lmq_msgstream *c = tt_consumer(ch, NCH, "ck", LMQ_SUB_EARLIEST);
    if (ckpt) {
      lmq_msg_position *pos = NULL;
      size_t npos = 0;
      cr_assert_eq(lmq_msg_positions_unmarshal(&pos, &npos, ckpt, ckpt_len),
                   0);
      cr_assert_eq(lmq_msgstream_seek(c, pos, npos), 0, "%s", lmq_errmsg());
      lmq_msg_positions_free(pos, npos);
      free(ckpt);
    }
    lmq_msg_pack *k = su_pack(c);
    cr_assert_eq(k->begin_ts, last_end);
    last_end = k->end_ts;
    for (size_t i = 0; i < k->nmsgs; i++) {
      int64_t id = lmq_tsmsg_id(k->msgs[i]);
      cr_assert(id >= 1 && id <= maxid);
      cr_assert_eq(seen[id], 0, "message %lld delivered twice", (long long)id);
      seen[id] = 1;
      got++;
    }
    cr_assert_eq(lmq_msg_positions_marshal(&ckpt, &ckpt_len, k->end_positions,
                                           k->nend), 0);
    lmq_msg_pack_destroy(k);
    lmq_msgstream_close(c);
  }
  free(ckpt);
  cr_assert_eq(got, total, "missed %zu messages", total - got);
  cr_assert_eq(last_end, (uint64_t)NTICKS * IVL);
  free(seen);
  lmq_msgstream_close(p);
}

Test(tt, latest_subscription_sees_only_ticks_after_it) {
  const char *ch[1] = {"lt"};
  lmq_msgstream *p = producer(ch, 1);
  su_tick(p, 0);
  su_produce(p, su_insert(1, 1, 0));
  su_tick(p, 5);
  lmq_msgstream *c = tt_consumer(ch, 1, "late", LMQ_SUB_LATEST);
  su_produce(p, su_insert(2, 7, 0));
  su_tick(p, 10);
  lmq_msg_pack *k = su_pack(c);
  uint64_t want[1] = {7};
  expect(k, 0, 10, want, 1);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

/* Milvus's TtMsgStream_NoSeek: a stream closed without committing, then a
 * new one with the same subscription in the same process. The first one's
 * read-ahead had moved the group's in-memory cursor and nothing rewound it:
 * the second delivered nothing on engine and rocksdb. What was never
 * committed must reach the group's next consumer (at-least-once). */
Test(tt, a_reopened_subscription_gets_what_was_never_committed) {
  const char *ch[1] = {"nos"};
  lmq_msgstream *p = producer(ch, 1);
  seed_scenario(p);
  lmq_msgstream *c = tt_consumer(ch, 1, "sub", LMQ_SUB_EARLIEST);
  lmq_msg_pack *k = su_pack(c);
  expect(k, 0, 5, P1, 2);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  c = tt_consumer(ch, 1, "sub", LMQ_SUB_EARLIEST);
  k = su_pack(c);
  expect(k, 0, 5, P1, 2);
  lmq_msg_pack_destroy(k);
  k = su_pack(c);
  expect(k, 5, 11, P2, 1);
  lmq_msg_pack_destroy(k);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}
