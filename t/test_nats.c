/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* The NATS JetStream backend adapter (src/stream/backend_nats.c) against a
 * real nats-server of each test's own (t/nats_harness.c). */
#include "config.h"
#include "nats_harness.h"
#include "stream/backend.h"
#include "commit_latency.h"

#include <criterion/criterion.h>
#include <nats/nats.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static nh_server srv;
static lmq_backend *be;

static void setup(void) {
  nh_start(&srv);
  cr_assert_eq(lmq__backend_nats_open(&be, srv.url, 1), 0, "%s", lmq_errmsg());
}
static void teardown(void) {
  if (be)
    be->ops->close(be);
  be = NULL;
  nh_stop(&srv);
  nats_CloseAndWait(2000);
}
TestSuite(nats, .init = setup, .fini = teardown);

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t put(const char *ch, const char *s) {
  lmq_buf b = {s, strlen(s)};
  uint64_t id = 0;
  cr_assert_eq(be->ops->produce(be, ch, &b, 1, &id), 0, "%s", lmq_errmsg());
  return id;
}

static lmq_bsub *sub(const char *ch, const char *g, int start) {
  lmq_bsub *s = NULL;
  cr_assert_eq(be->ops->subscribe(be, &s, ch, g, start), 0, "%s", lmq_errmsg());
  return s;
}

/* Consume exactly the payloads in want (in order), then nothing more. */
static void expect(lmq_bsub *s, const char *const *want, size_t n, uint64_t *ids) {
  size_t got = 0;
  while (got < n) {
    lmq_bbatch b;
    cr_assert_eq(be->ops->consume(s, &b, 16, 2000), 0, "%s", lmq_errmsg());
    cr_assert_gt(b.n, 0, "timed out after %zu of %zu messages", got, n);
    for (size_t i = 0; i < b.n; i++, got++) {
      cr_assert_lt(got, n, "more messages than expected");
      cr_assert_eq(b.msgs[i].len, strlen(want[got]));
      cr_assert_eq(memcmp(b.msgs[i].data, want[got], b.msgs[i].len), 0);
      if (ids)
        ids[got] = b.msgs[i].id;
    }
    be->ops->batch_free(s, &b);
  }
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 16, 0), 0, "%s", lmq_errmsg());
  cr_assert_eq(b.n, 0, "unexpected extra message");
  be->ops->batch_free(s, &b);
}

Test(nats, produce_returns_increasing_ids_and_consume_keeps_order) {
  cr_assert_eq(be->ops->channel_create(be, "c.1_x"), 0, "%s", lmq_errmsg());
  cr_assert_eq(be->ops->channel_create(be, "c.1_x"), 0, "existing is ok");
  lmq_buf bufs[3] = {{"a", 1}, {"b", 1}, {"c", 1}};
  uint64_t ids[3];
  cr_assert_eq(be->ops->produce(be, "c.1_x", bufs, 3, ids), 0);
  cr_assert(ids[0] < ids[1] && ids[1] < ids[2]);
  uint64_t last = 0;
  cr_assert_eq(be->ops->latest(be, "c.1_x", &last), 0);
  cr_assert_eq(last, ids[2]);
  lmq_bsub *s = sub("c.1_x", "g", LMQ_START_EARLIEST);
  const char *want[3] = {"a", "b", "c"};
  uint64_t got[3];
  expect(s, want, 3, got);
  cr_assert_arr_eq(got, ids, sizeof ids);
  be->ops->unsubscribe(s);
}

Test(nats, latest_on_an_empty_channel_is_eempty) {
  cr_assert_eq(be->ops->channel_create(be, "empty"), 0);
  uint64_t id;
  cr_assert_eq(be->ops->latest(be, "empty", &id), LMQ_EEMPTY);
  cr_assert_eq(be->ops->latest(be, "nope", &id), LMQ_ENOCHANNEL);
  cr_assert_eq(be->ops->channel_destroy(be, "empty"), 0);
  cr_assert_eq(be->ops->channel_destroy(be, "empty"), LMQ_ENOCHANNEL);
  lmq_buf b = {"x", 1};
  cr_assert_eq(be->ops->produce(be, "empty", &b, 1, NULL), LMQ_ENOCHANNEL);
}

Test(nats, two_groups_both_get_everything) {
  cr_assert_eq(be->ops->channel_create(be, "two"), 0);
  lmq_bsub *a = sub("two", "ga", LMQ_START_EARLIEST);
  lmq_bsub *b = sub("two", "gb", LMQ_START_EARLIEST);
  put("two", "1");
  put("two", "2");
  const char *want[2] = {"1", "2"};
  expect(a, want, 2, NULL);
  expect(b, want, 2, NULL);
  be->ops->unsubscribe(a);
  be->ops->unsubscribe(b);
}

Test(nats, latest_start_skips_what_was_there) {
  cr_assert_eq(be->ops->channel_create(be, "late"), 0);
  put("late", "old");
  lmq_bsub *s = sub("late", "g", LMQ_START_LATEST);
  put("late", "new");
  const char *want[1] = {"new"};
  expect(s, want, 1, NULL);
  be->ops->unsubscribe(s);
}

Test(nats, commit_then_reconnect_resumes_and_redelivers_the_uncommitted) {
  cr_assert_eq(be->ops->channel_create(be, "cur"), 0);
  const char *all[5] = {"m1", "m2", "m3", "m4", "m5"};
  for (int i = 0; i < 5; i++)
    put("cur", all[i]);
  lmq_bsub *s = sub("cur", "g", LMQ_START_EARLIEST);
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 2, 2000), 0);
  cr_assert_eq(b.n, 2);
  be->ops->batch_free(s, &b);
  cr_assert_eq(be->ops->commit(s), 0, "%s", lmq_errmsg());
  /* Consumed but not committed: must come back after a reconnect. */
  cr_assert_eq(be->ops->consume(s, &b, 2, 2000), 0);
  cr_assert_eq(b.n, 2);
  be->ops->batch_free(s, &b);
  be->ops->unsubscribe(s);
  be->ops->close(be);
  be = NULL;
  cr_assert_eq(lmq__backend_nats_open(&be, srv.url, 1), 0, "%s", lmq_errmsg());
  s = sub("cur", "g", LMQ_START_EARLIEST);
  expect(s, all + 2, 3, NULL);
  cr_assert_eq(be->ops->commit(s), 0);
  be->ops->unsubscribe(s);
  /* Everything committed: nothing comes back, even after the server
   * restarts (cleanly: see sigkilled_server_redelivers_only_the_uncommitted). */
  be->ops->close(be);
  be = NULL;
  nh_term(&srv);
  nh_restart(&srv);
  cr_assert_eq(lmq__backend_nats_open(&be, srv.url, 1), 0, "%s", lmq_errmsg());
  s = sub("cur", "g", LMQ_START_EARLIEST);
  lmq_bbatch again;
  cr_assert_eq(be->ops->consume(s, &again, 16, 200), 0, "%s", lmq_errmsg());
  cr_assert_eq(again.n, 0,
               "committed messages came back after a restart "
               "(first id %llu)",
               again.n ? (unsigned long long)again.msgs[0].id : 0ULL);
  be->ops->batch_free(s, &again);
  put("cur", "m6");
  const char *m6[1] = {"m6"};
  expect(s, m6, 1, NULL);
  be->ops->unsubscribe(s);
}

Test(nats, seek_restarts_at_the_id) {
  cr_assert_eq(be->ops->channel_create(be, "sk"), 0);
  const char *all[4] = {"a", "b", "c", "d"};
  uint64_t ids[4];
  for (int i = 0; i < 4; i++)
    ids[i] = put("sk", all[i]);
  lmq_bsub *s = sub("sk", "g", LMQ_START_EARLIEST);
  expect(s, all, 4, NULL);
  cr_assert_eq(be->ops->seek(s, ids[1]), 0, "%s", lmq_errmsg());
  expect(s, all + 1, 3, NULL);
  cr_assert_eq(be->ops->seek(s, ids[3] + 1), 0);
  expect(s, NULL, 0, NULL);
  be->ops->unsubscribe(s);
}

/* A backward seek is the group's position at once: reopened without a
 * commit, the group starts at the seek point, not after its last commit. */
Test(nats, a_backward_seek_holds_across_a_reopen) {
  cr_assert_eq(be->ops->channel_create(be, "bk"), 0);
  const char *all[5] = {"a", "b", "c", "d", "e"};
  uint64_t ids[5];
  for (int i = 0; i < 5; i++)
    ids[i] = put("bk", all[i]);
  lmq_bsub *s = sub("bk", "g", LMQ_START_EARLIEST);
  expect(s, all, 5, NULL);
  cr_assert_eq(be->ops->commit(s), 0, "%s", lmq_errmsg());
  cr_assert_eq(be->ops->seek(s, ids[1]), 0, "%s", lmq_errmsg());
  be->ops->unsubscribe(s);
  s = sub("bk", "g", LMQ_START_EARLIEST);
  expect(s, all + 1, 4, NULL);
  be->ops->unsubscribe(s);
}

/* A short-lived JetStream context on the test's server. */
static void with_js(void (*fn)(jsCtx *js, const char *a, const char *b), const char *a,
                    const char *b) {
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  cr_assert_eq(natsConnection_ConnectTo(&nc, srv.url), NATS_OK);
  cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  fn(js, a, b);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

static void delete_stream(jsCtx *js, const char *stream, const char *unused) {
  (void)unused;
  cr_assert_eq(js_DeleteStream(js, stream, NULL, NULL), NATS_OK);
}

static void delete_consumer(jsCtx *js, const char *stream, const char *durable) {
  cr_assert_eq(js_DeleteConsumer(js, stream, durable, NULL, NULL), NATS_OK);
}

/* A channel destroyed and created again under its name is a new channel:
 * its groups start afresh, whether channel_destroy removed their cursors
 * or the stream went some other way (deleted by hand: cursors left). */
Test(nats, a_recreated_channel_does_not_inherit_cursors) {
  for (int how = 0; how < 2; how++) {
    cr_assert_eq(be->ops->channel_create(be, "re"), 0);
    const char *old[3] = {"o1", "o2", "o3"};
    for (int i = 0; i < 3; i++)
      put("re", old[i]);
    lmq_bsub *s = sub("re", "g", LMQ_START_EARLIEST);
    expect(s, old, 3, NULL);
    cr_assert_eq(be->ops->commit(s), 0, "%s", lmq_errmsg());
    be->ops->unsubscribe(s);
    if (how == 0)
      cr_assert_eq(be->ops->channel_destroy(be, "re"), 0, "%s", lmq_errmsg());
    else
      with_js(delete_stream, "lmq_re", NULL);
    cr_assert_eq(be->ops->channel_create(be, "re"), 0);
    const char *fresh[2] = {"n1", "n2"};
    for (int i = 0; i < 2; i++)
      put("re", fresh[i]);
    s = sub("re", "g", LMQ_START_EARLIEST);
    expect(s, fresh, 2, NULL);
    be->ops->unsubscribe(s);
    cr_assert_eq(be->ops->channel_destroy(be, "re"), 0, "%s", lmq_errmsg());
  }
}

/* A group whose durable is gone (deleted by hand, or lost in a failed
 * seek) resumes after its last commit, not from the start. */
Test(nats, a_lost_durable_resumes_after_the_commit) {
  cr_assert_eq(be->ops->channel_create(be, "ld"), 0);
  const char *all[4] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++)
    put("ld", all[i]);
  lmq_bsub *s = sub("ld", "g", LMQ_START_EARLIEST);
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 2, 2000), 0);
  cr_assert_eq(b.n, 2);
  be->ops->batch_free(s, &b);
  cr_assert_eq(be->ops->commit(s), 0, "%s", lmq_errmsg());
  be->ops->unsubscribe(s);
  with_js(delete_consumer, "lmq_ld", "g");
  s = sub("ld", "g", LMQ_START_EARLIEST);
  expect(s, all + 2, 2, NULL);
  be->ops->unsubscribe(s);
}

Test(nats, fd_is_readable_while_messages_wait) {
  cr_assert_eq(be->ops->channel_create(be, "fd"), 0);
  lmq_bsub *s = sub("fd", "g", LMQ_START_EARLIEST);
  int fd = -1;
  cr_assert_eq(be->ops->fd(s, &fd), 0);
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 8, 0), 0);
  cr_assert_eq(b.n, 0);
  be->ops->batch_free(s, &b);
  struct pollfd p = {fd, POLLIN, 0};
  cr_assert_eq(poll(&p, 1, 0), 0, "readable with nothing to read");
  put("fd", "x");
  cr_assert_eq(poll(&p, 1, 3000), 1, "a new message does not wake the fd");
  cr_assert_eq(be->ops->consume(s, &b, 8, 0), 0);
  cr_assert_eq(b.n, 1);
  be->ops->batch_free(s, &b);
  cr_assert_eq(poll(&p, 1, 0), 0);
  be->ops->unsubscribe(s);
}

Test(nats, more_than_a_thousand_uncommitted_do_not_stall) {
  cr_assert_eq(be->ops->channel_create(be, "big"), 0);
  enum { N = 1500 };
  static lmq_buf bufs[N];
  for (int i = 0; i < N; i++)
    bufs[i] = (lmq_buf){"p", 1};
  cr_assert_eq(be->ops->produce(be, "big", bufs, N, NULL), 0);
  lmq_bsub *s = sub("big", "g", LMQ_START_EARLIEST);
  size_t got = 0;
  while (got < N) {
    lmq_bbatch b;
    cr_assert_eq(be->ops->consume(s, &b, 256, 2000), 0, "%s", lmq_errmsg());
    cr_assert_gt(b.n, 0, "stalled after %zu", got);
    got += b.n;
    be->ops->batch_free(s, &b);
  }
  cr_assert_eq(got, N);
  be->ops->unsubscribe(s);
}

Test(nats, server_down_is_eunavail_within_a_bound) {
  cr_assert_eq(be->ops->channel_create(be, "down"), 0);
  lmq_bsub *s = sub("down", "g", LMQ_START_EARLIEST);
  nh_kill(&srv);
  uint64_t t0 = mono_ms();
  lmq_buf b = {"x", 1};
  int rc;
  /* The client notices the closed socket at once or within a few tries. */
  while ((rc = be->ops->produce(be, "down", &b, 1, NULL)) == 0 && mono_ms() - t0 < 6000)
    ;
  /* A call that sent its message before the client saw the socket close
   * cannot know whether it was stored (LMQ_EUNKNOWN); once the client knows,
   * nothing is sent (LMQ_EUNAVAIL). */
  cr_assert(rc == LMQ_EUNAVAIL || rc == LMQ_EUNKNOWN, "%d %s", rc, lmq_errmsg());
  if (rc == LMQ_EUNKNOWN)
    cr_assert_eq(be->ops->produce(be, "down", &b, 1, NULL), LMQ_EUNAVAIL, "%s",
                 lmq_errmsg());
  lmq_bbatch bb;
  cr_assert_eq(be->ops->consume(s, &bb, 8, 100), LMQ_EUNAVAIL);
  /* Each call waits up to 2 s for the client to reconnect (in a cluster it
   * moves to another server in that time): three calls, ~6-8 s on an idle
   * machine; the bound has room for a loaded one (14 s seen at load 9) and
   * still tells a bounded wait from a hang. */
  cr_assert_lt(mono_ms() - t0, 20000);
  be->ops->unsubscribe(s);
  be->ops->close(be);
  be = NULL;
  /* Nothing listens any more: opening fails fast. */
  t0 = mono_ms();
  cr_assert_eq(lmq__backend_nats_open(&be, srv.url, 1), LMQ_EUNAVAIL);
  cr_assert_null(be);
  cr_assert_lt(mono_ms() - t0, 3000);
}

/* nats-server writes consumer state lazily, so after a SIGKILL the
 * durable alone may stand before its last commit; the cursor (a stream
 * message, written as it is stored) does not: the group restarts exactly
 * after its commit, and every uncommitted message still comes. */
Test(nats, sigkilled_server_redelivers_only_the_uncommitted) {
  cr_assert_eq(be->ops->channel_create(be, "kill"), 0);
  const char *all[5] = {"k1", "k2", "k3", "k4", "k5"};
  uint64_t ids[5];
  for (int i = 0; i < 5; i++)
    ids[i] = put("kill", all[i]);
  lmq_bsub *s = sub("kill", "g", LMQ_START_EARLIEST);
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 3, 2000), 0);
  cr_assert_eq(b.n, 3);
  be->ops->batch_free(s, &b);
  cr_assert_eq(be->ops->commit(s), 0, "%s", lmq_errmsg());
  be->ops->unsubscribe(s);
  be->ops->close(be);
  be = NULL;
  nh_kill(&srv);
  nh_restart(&srv);
  cr_assert_eq(lmq__backend_nats_open(&be, srv.url, 1), 0, "%s", lmq_errmsg());
  s = sub("kill", "g", LMQ_START_EARLIEST);
  uint64_t next = 0; /* the next ID that must follow */
  for (;;) {
    cr_assert_eq(be->ops->consume(s, &b, 16, 300), 0, "%s", lmq_errmsg());
    if (!b.n)
      break;
    for (size_t i = 0; i < b.n; i++) {
      cr_assert(next == 0 || b.msgs[i].id == next, "a gap before %llu",
                (unsigned long long)b.msgs[i].id);
      cr_assert(next != 0 || b.msgs[i].id == ids[3], "started at %llu, not after the "
                "commit (%llu)", (unsigned long long)b.msgs[i].id,
                (unsigned long long)ids[3]);
      next = b.msgs[i].id + 1;
    }
    be->ops->batch_free(s, &b);
  }
  be->ops->batch_free(s, &b);
  cr_assert_eq(next, ids[4] + 1, "the uncommitted messages were lost");
  be->ops->unsubscribe(s);
}

Test(nats, a_destroyed_channel_is_enochannel_for_its_subscribers) {
  cr_assert_eq(be->ops->channel_create(be, "gone"), 0);
  lmq_bsub *s = sub("gone", "g", LMQ_START_EARLIEST);
  lmq_bsub *t = NULL;
  cr_assert_eq(be->ops->subscribe(be, &t, "nochan", "g", 0), LMQ_ENOCHANNEL);
  cr_assert_eq(be->ops->channel_destroy(be, "gone"), 0);
  lmq_bbatch b;
  cr_assert_eq(be->ops->consume(s, &b, 8, 0), LMQ_ENOCHANNEL);
  cr_assert_eq(be->ops->consume(s, &b, 8, 100), LMQ_ENOCHANNEL);
  cr_assert_eq(be->ops->seek(s, 1), LMQ_ENOCHANNEL);
  be->ops->unsubscribe(s);
}

/* A produce call is pipelined but what it stores is a prefix, in order: a
 * message the client refuses (over max_payload) stops the call there, and
 * ids says exactly which messages were stored. */
Test(nats, a_failed_produce_stored_exactly_a_prefix) {
  cr_assert_eq(be->ops->channel_create(be, "pre"), 0);
  size_t big = 2 << 20; /* above the server's 1 MiB max_payload */
  char *huge = calloc(1, big);
  cr_assert_not_null(huge);
  lmq_buf bufs[5] = {{"a", 1}, {"b", 1}, {huge, big}, {"d", 1}, {"e", 1}};
  uint64_t ids[5] = {9, 9, 9, 9, 9};
  cr_assert_eq(be->ops->produce(be, "pre", bufs, 5, ids), LMQ_ETOOBIG, "%s",
               lmq_errmsg());
  free(huge);
  cr_assert(ids[0] && ids[1] > ids[0], "the prefix has IDs");
  cr_assert(!ids[2] && !ids[3] && !ids[4], "nothing after the failure");
  cr_assert(strstr(lmq_errmsg(), "first 2 of 5"), "%s", lmq_errmsg());
  uint64_t last = 0;
  cr_assert_eq(be->ops->latest(be, "pre", &last), 0);
  cr_assert_eq(last, ids[1]);
  lmq_bsub *s = sub("pre", "g", LMQ_START_EARLIEST);
  const char *want[2] = {"a", "b"};
  expect(s, want, 2, NULL);
  be->ops->unsubscribe(s);
}

/* The streams keep a duplicate window keyed on Nats-Msg-Id: a publish sent
 * again with the same ID (what produce does after a lost acknowledgement)
 * is not stored twice. Checked with libnats directly on a channel's stream. */
Test(nats, a_resent_message_id_is_stored_once) {
  cr_assert_eq(be->ops->channel_create(be, "dup"), 0);
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  cr_assert_eq(natsConnection_ConnectTo(&nc, srv.url), NATS_OK);
  cr_assert_eq(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = "lmq-test-1";
  jsPubAck *a1 = NULL, *a2 = NULL;
  cr_assert_eq(js_Publish(&a1, js, "lmq.dup", "x", 1, &po, NULL), NATS_OK);
  cr_assert_eq(js_Publish(&a2, js, "lmq.dup", "x", 1, &po, NULL), NATS_OK);
  cr_assert(!a1->Duplicate && a2->Duplicate, "the second copy was stored");
  cr_assert_eq(a2->Sequence, a1->Sequence);
  jsPubAck_Destroy(a1);
  jsPubAck_Destroy(a2);
  jsStreamInfo *si = NULL;
  cr_assert_eq(js_GetStreamInfo(&si, js, "lmq_dup", NULL, NULL), NATS_OK);
  cr_assert_eq(si->State.Msgs, 1);
  cr_assert_gt(si->Config->Duplicates, 0);
  jsStreamInfo_Destroy(si);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

/* Not a check but a measure: the latency of a commit of one message on R1,
 * printed as "commit latency: ..." on stderr (docs/deploy.md quotes it). */
Test(nats, commit_latency_on_one_server) {
  cr_assert_eq(be->ops->channel_create(be, "lat"), 0);
  enum { N = 300 };
  static lmq_buf bufs[N];
  for (int i = 0; i < N; i++)
    bufs[i] = (lmq_buf){"p", 1};
  cr_assert_eq(be->ops->produce(be, "lat", bufs, N, NULL), 0);
  lmq_bsub *s = sub("lat", "g", LMQ_START_EARLIEST);
  commit_latency(be, s, N, "R1");
  be->ops->unsubscribe(s);
}
