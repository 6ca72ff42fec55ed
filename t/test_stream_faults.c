/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * The stream layer under allocation failures: a consume that fails in the
 * middle of a backend batch (the backend's cursor already past it) must
 * not drop the rest of the batch, and closing the stream must not commit
 * past what was never handed out. (Both happened: the rest of the batch
 * was freed, and close committed the cursor.)
 *
 * A countdown malloc in this program, as in t/test_faults.c; compiled out
 * under sanitizers, which bring their own allocator.
 */
#define _GNU_SOURCE
#include "lmq_stream.h"
#include "stream_util.h"
#include "util.h"
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failmalloc.h"

#ifndef NO_FAILMALLOC

Test(stream_faults, a_failing_consume_drops_nothing_and_close_commits_nothing_unread,
     .timeout = 120) {
  char *dir = tmpdir_new();
  lmq_stream_factory *fac = su_factory(dir);
  const char *ch[1] = {"f"};
  lmq_msgstream *p = NULL, *c = NULL;
  cr_assert_eq(lmq_msgstream_create(&p, fac), 0);
  cr_assert_eq(lmq_msgstream_as_producer(p, ch, 1), 0);
  for (int i = 1; i <= 60; i++)
    su_produce(p, su_insert(i, (uint64_t)i, 0));
  cr_assert_eq(lmq_msgstream_create(&c, fac), 0);
  cr_assert_eq(lmq_msgstream_as_consumer(c, ch, 1, "s", LMQ_SUB_EARLIEST), 0);
  int next = 1, failed = 0;
  /* Fail the Nth allocation of a consume, for growing N, until all 40 of
   * the first messages are through; every message exactly once, in order. */
  for (long n = 0; next <= 40 && n < 100000; n++) {
    lmq_msg_pack *k = NULL;
    fail_countdown = n;
    int rc = lmq_msgstream_consume(&k, c, 0);
    fail_countdown = -1;
    if (rc) {
      cr_assert(rc == LMQ_ENOMEM || rc == LMQ_ETIMEDOUT, "consume: %d %s", rc,
                lmq_errmsg());
      failed++;
      continue;
    }
    for (size_t i = 0; i < k->nmsgs; i++) {
      int64_t id = lmq_tsmsg_id(k->msgs[i]);
      cr_assert_eq(id, next, "got message %lld, expected %d",
                   (long long)id, next);
      next++;
    }
    lmq_msg_pack_destroy(k);
    n = -1; /* each delivery starts the countdown again */
    if (next > 40)
      break;
  }
  cr_assert_gt(failed, 0, "no consume failed: the test injected nothing");
  /* Close now: whatever the last consume read ahead but did not hand out
   * must come back to the next stream of the subscription. */
  lmq_msgstream_close(c);
  cr_assert_eq(lmq_msgstream_create(&c, fac), 0);
  cr_assert_eq(lmq_msgstream_as_consumer(c, ch, 1, "s", LMQ_SUB_EARLIEST), 0);
  for (;;) {
    lmq_msg_pack *k = NULL;
    int rc = lmq_msgstream_consume(&k, c, 200);
    if (rc == LMQ_ETIMEDOUT)
      break;
    cr_assert_eq(rc, 0, "%s", lmq_errmsg());
    for (size_t i = 0; i < k->nmsgs; i++) {
      int64_t id = lmq_tsmsg_id(k->msgs[i]);
      cr_assert_leq(id, next, "message %d was lost (got %lld)", next, (long long)id);
      if (id == next)
        next++;
    }
    lmq_msg_pack_destroy(k);
  }
  cr_assert_eq(next, 61, "messages from %d on never came back", next);
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
  lmq_stream_factory_destroy(fac);
  tmpdir_rm(dir);
}
#endif
