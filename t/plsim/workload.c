/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * workload - the power-loss simulator's workload child, run once under the
 * tracing preload (preload.c). Public API only.
 *
 *   workload sweep ROOT SEED STEPS   the seeded random workload on ROOT/env
 *   workload fault ROOT              produce until an injected fault hits
 *
 * Every operation is bracketed by two lines written (one write() each) to
 * the event log PLSIM_EVENTS, so acknowledgements enter the trace in order:
 *   B <opid> <kind> <args...>      before the call
 *   E <opid> <rc> <result>         after it returned
 * Kinds and arguments (channel = index into pl_chan_names):
 *   open | close | ckpt
 *   ccreate C GEN | cdestroy C GEN | retention C GEN
 *   produce C GEN N SYNC            E: rc first_id
 *   gcreate C GEN G START           E: rc committed cursor
 *   gdestroy C GEN G
 *   commit C GEN G VALUE | ack C GEN G VALUE | seek C GEN G VALUE
 *                                   VALUE: the cursor the call persists;
 *                                   E: rc committed cursor after the call
 * See docs/crashsim.md.
 */
#define _GNU_SOURCE
#include "common.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lmq_env *env;
static int evfd = -1;
static atomic_uint next_opid = 1;
static char dir[4096];

typedef struct chan {
  pthread_mutex_t mu; /* held across DDL and produce: gens never cross */
  int exists;
  unsigned gen;
  lmq_id last_acked; /* a recent acknowledged ID, for seeks */
  struct {
    int exists;
    lmq_id consumed; /* last consumed ID */
  } g[PL_NGROUP];
} chan;
static chan chans[PL_NCHAN];

static void ev(const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (write(evfd, line, (size_t)n) != n)
    abort();
}

static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void env_open(void) {
  unsigned op = next_opid++;
  ev("B %u open\n", op);
  lmq_env_options o = pl_options();
  int rc = lmq_env_open(&env, dir, &o);
  ev("E %u %d\n", op, rc);
  if (rc) {
    fprintf(stderr, "workload: open: %s\n", lmq_errmsg());
    exit(1);
  }
}

static void env_close(void) {
  unsigned op = next_opid++;
  ev("B %u close\n", op);
  lmq_env_close(env);
  ev("E %u 0\n", op);
  env = NULL;
}

/* Up to maxn messages of 20 .. 20 + spread - 1 bytes. */
static void produce_sized(int c, int sync, uint64_t *rs, int maxn,
                          unsigned spread) {
  int n = 1 + (int)(rnd(rs) % (unsigned)maxn);
  static _Thread_local unsigned char bufs[8][3000];
  lmq_buf b[8];
  unsigned op = next_opid++;
  chan *ch = &chans[c];
  pthread_mutex_lock(&ch->mu);
  if (!ch->exists) {
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  for (int i = 0; i < n; i++) {
    size_t len = 20 + (size_t)(rnd(rs) % spread);
    pl_payload(bufs[i], len, op, (unsigned)i, (unsigned)c, ch->gen);
    b[i] = (lmq_buf){bufs[i], len};
  }
  lmq_id ids[8] = {0};
  ev("B %u produce %d %u %d %d\n", op, c, ch->gen, n, sync);
  int rc = lmq_produce(env, pl_chan_names[c], b, (size_t)n, ids, sync);
  ev("E %u %d %llu\n", op, rc, (unsigned long long)ids[0]);
  if (rc == 0)
    ch->last_acked = ids[n - 1];
  pthread_mutex_unlock(&ch->mu);
}

static void do_produce(int c, int sync, uint64_t *rs) {
  produce_sized(c, sync, rs, 8, 2981);
}

static int pick_sync(uint64_t *rs) {
  unsigned r = (unsigned)(rnd(rs) % 20);
  return r < 14 ? LMQ_SYNC_ALWAYS : r < 17 ? LMQ_SYNC_INTERVAL : LMQ_SYNC_NONE;
}

static void chan_create(int c) {
  chan *ch = &chans[c];
  pthread_mutex_lock(&ch->mu);
  if (!ch->exists) {
    ch->gen++;
    unsigned op = next_opid++;
    ev("B %u ccreate %d %u\n", op, c, ch->gen);
    int rc = lmq_channel_create(env, pl_chan_names[c]);
    ev("E %u %d\n", op, rc);
    ch->exists = rc == 0;
    memset(ch->g, 0, sizeof ch->g);
    ch->last_acked = 0;
    if (rc == 0 && c == PL_RET_CHAN) {
      op = next_opid++;
      ev("B %u retention %d %u\n", op, c, ch->gen);
      rc = lmq_channel_set_retention(env, pl_chan_names[c], 0, 64 << 10);
      ev("E %u %d\n", op, rc);
    }
  }
  pthread_mutex_unlock(&ch->mu);
}

static void chan_destroy(int c) {
  chan *ch = &chans[c];
  pthread_mutex_lock(&ch->mu);
  if (ch->exists) {
    unsigned op = next_opid++;
    ev("B %u cdestroy %d %u\n", op, c, ch->gen);
    int rc = lmq_channel_destroy(env, pl_chan_names[c]);
    ev("E %u %d\n", op, rc);
    if (rc == 0)
      ch->exists = 0;
  }
  pthread_mutex_unlock(&ch->mu);
}

static lmq_id committed(int c, int g) {
  char gn[8];
  snprintf(gn, sizeof gn, "g%d", g);
  lmq_group_stats st = {0};
  lmq_group_stats_get(&st, env, pl_chan_names[c], gn);
  return st.committed;
}

/* One random non-produce-heavy step of the ops thread (owns the groups). */
static void ops_step(uint64_t *rs) {
  unsigned r = (unsigned)(rnd(rs) % 100);
  int c = (int)(rnd(rs) % PL_NCHAN);
  int gc = (int)(rnd(rs) % (PL_NCHAN - 1)); /* no groups on "ret" */
  int g = (int)(rnd(rs) % PL_NGROUP);
  char gn[8];
  snprintf(gn, sizeof gn, "g%d", g);
  chan *ch = &chans[gc];
  if (r < 40) {
    do_produce(c, pick_sync(rs), rs);
    return;
  }
  if (r < 46) { /* channel churn on c1 and c2; c0 and ret stay */
    int cc = 1 + (int)(rnd(rs) % 2);
    if (chans[cc].exists)
      chan_destroy(cc);
    else
      chan_create(cc);
    return;
  }
  if (r < 49) {
    unsigned op = next_opid++;
    ev("B %u ckpt\n", op);
    int rc = lmq_env_checkpoint(env);
    ev("E %u %d\n", op, rc);
    return;
  }
  pthread_mutex_lock(&ch->mu);
  if (!ch->exists) {
    pthread_mutex_unlock(&ch->mu);
    return;
  }
  unsigned op = 0;
  const char *cn = pl_chan_names[gc];
  if (!ch->g[g].exists) {
    int start = (int)(rnd(rs) % 2);
    op = next_opid++;
    ev("B %u gcreate %d %u %s %d\n", op, gc, ch->gen, gn, start);
    int rc = lmq_group_create(env, cn, gn, start);
    ev("E %u %d %llu\n", op, rc, (unsigned long long)committed(gc, g));
    ch->g[g].exists = rc == 0;
    ch->g[g].consumed = 0;
  } else if (r < 53) {
    op = next_opid++;
    ev("B %u gdestroy %d %u %s\n", op, gc, ch->gen, gn);
    int rc = lmq_group_destroy(env, cn, gn);
    ev("E %u %d\n", op, rc);
    if (rc == 0)
      ch->g[g].exists = 0;
  } else if (r < 80) { /* consume some, then commit */
    lmq_msgs *m = NULL;
    int n = lmq_consume(&m, env, cn, gn, 1 + rnd(rs) % 12, 0);
    if (n > 0)
      ch->g[g].consumed = lmq_msgs_at(m, (size_t)n - 1)->id;
    lmq_msgs_free(m);
    lmq_group_stats st = {0};
    lmq_group_stats_get(&st, env, cn, gn);
    op = next_opid++;
    ev("B %u commit %d %u %s %llu\n", op, gc, ch->gen, gn,
       (unsigned long long)st.cursor);
    int rc = lmq_group_commit(env, cn, gn);
    ev("E %u %d %llu\n", op, rc, (unsigned long long)committed(gc, g));
  } else if (r < 92) {
    lmq_id id = ch->g[g].consumed;
    if (!id) { /* nothing consumed yet: skip */
      pthread_mutex_unlock(&ch->mu);
      return;
    }
    op = next_opid++;
    ev("B %u ack %d %u %s %llu\n", op, gc, ch->gen, gn,
       (unsigned long long)id + 1);
    int rc = lmq_ack(env, cn, gn, id);
    ev("E %u %d %llu\n", op, rc, (unsigned long long)committed(gc, g));
  } else {
    lmq_id id = ch->last_acked;
    if (!id) {
      pthread_mutex_unlock(&ch->mu);
      return;
    }
    op = next_opid++;
    ev("B %u seek %d %u %s %llu\n", op, gc, ch->gen, gn, (unsigned long long)id);
    int rc = lmq_seek(env, cn, gn, id);
    ev("E %u %d %llu\n", op, rc, (unsigned long long)committed(gc, g));
  }
  pthread_mutex_unlock(&ch->mu);
}

static atomic_int stop_producer, pause_producer;
static atomic_long producer_budget; /* produces left; refilled per ops step */
static uint64_t producer_seed;

/* Produces about once per ops step (never more: with a free-running
 * producer the 16 MiB map fills up during the retention pause). */
static void *producer(void *arg) {
  (void)arg;
  uint64_t rs = producer_seed;
  while (!atomic_load(&stop_producer)) {
    if (atomic_load(&pause_producer) || atomic_load(&producer_budget) <= 0) {
      usleep(100);
      continue;
    }
    atomic_fetch_sub(&producer_budget, 1);
    do_produce((int)(rnd(&rs) % PL_NCHAN), pick_sync(&rs), &rs);
  }
  return NULL;
}

static int sweep(uint64_t seed, int steps) {
  uint64_t rs = seed * 0x2545f4914f6cdd1dull + 1;
  producer_seed = rs ^ 0x5851f42d4c957f2dull;
  for (int c = 0; c < PL_NCHAN; c++)
    pthread_mutex_init(&chans[c].mu, NULL);
  /* Phase 1: one thread. */
  env_open();
  chan_create(0);
  chan_create(1);
  chan_create(PL_RET_CHAN);
  /* Small synced produces on a new env append to a new segment: the
   * applier zero-fills a spare and the WAL rolls to it early (wal_seg.c). */
  for (int i = 0; i < 32; i++) {
    produce_sized(i % 2, LMQ_SYNC_ALWAYS, &rs, 1, 180);
    if (i % 8 == 7)
      usleep(5000);
  }
  for (int i = 0; i < steps * 2 / 5; i++) {
    ops_step(&rs);
    /* Retention runs in the applier about once a second: give it a pass
     * in the middle of the phase, with data to delete. */
    if (i == steps / 5)
      usleep(1100 * 1000);
  }
  env_close();
  /* Phase 2: a producer thread beside the ops thread (group commit). */
  env_open();
  pthread_t th;
  atomic_store(&stop_producer, 0);
  pthread_create(&th, NULL, producer, NULL);
  for (int i = 0; i < steps * 2 / 5; i++) {
    atomic_fetch_add(&producer_budget, 1);
    ops_step(&rs);
    if (i == steps / 5) {
      atomic_store(&pause_producer, 1);
      usleep(1100 * 1000);
      atomic_store(&pause_producer, 0);
    }
  }
  atomic_store(&stop_producer, 1);
  pthread_join(th, NULL);
  env_close();
  /* Phase 3: one thread again, after a second reopen. */
  env_open();
  for (int i = 0; i < steps / 5; i++)
    ops_step(&rs);
  env_close();
  return 0;
}

/*
 * Fault mode (with PLSIM_FAIL_SYNC or PLSIM_FAIL_WRITE set): channel "c0",
 * ALWAYS produces until one fails; then one more produce; close; reopen
 * and verify. Prints "RESULT <verdict> <detail>" and exits 0 when the
 * promises held, 1 when not, 2 when no produce failed (open hit the fault
 * or it never came).
 */
static int fault(void) {
  lmq_env_options o = pl_options();
  o.apply_interval_ms = 600000; /* keep the applier's syncs out of the way */
  o.apply_bytes = (uint64_t)1 << 30;
  o.max_unapplied = (uint64_t)1 << 30;
  o.checkpoint_bytes = (uint64_t)1 << 30;
  o.wal_segment_size = (uint64_t)16 << 20;
  int rc = lmq_env_open(&env, dir, &o);
  if (rc || lmq_channel_create(env, "c0")) {
    printf("RESULT open-failed %d\n", rc);
    return 2;
  }
  struct {
    lmq_id first;
    int n;
    uint32_t op;
  } acked[64];
  int nacked = 0, failed_rc = 0, failed_n = 0;
  uint32_t failed_op = 0;
  unsigned char bufs[4][3000];
  for (uint32_t op = 1; op <= 60 && !failed_rc; op++) {
    int n = 1 + (int)(op % 4);
    lmq_buf b[4];
    for (int i = 0; i < n; i++) {
      size_t len = 20 + (op * 97 + (unsigned)i * 31) % 2900;
      pl_payload(bufs[i], len, op, (unsigned)i, 0, 1);
      b[i] = (lmq_buf){bufs[i], len};
    }
    lmq_id ids[4];
    rc = lmq_produce(env, "c0", b, (size_t)n, ids, LMQ_SYNC_ALWAYS);
    if (rc == 0 && nacked < 64)
      acked[nacked++] = (typeof(acked[0])){ids[0], n, op};
    else if (rc) {
      failed_rc = rc;
      failed_op = op;
      failed_n = n;
    }
  }
  if (!failed_rc) {
    lmq_env_close(env);
    printf("RESULT no-fault\n");
    return 2;
  }
  int bad = 0;
  const char *mode = getenv("PLSIM_FAIL_SYNC") ? "sync" : "write";
  if (failed_rc != LMQ_EIO && failed_rc != LMQ_ENOSPC) {
    printf("RESULT fail produce returned %d (%s), want EIO or ENOSPC\n",
           failed_rc, lmq_strerror(failed_rc));
    bad = 1;
  }
  lmq_buf one = {bufs[0], 20};
  pl_payload(bufs[0], 20, 1000, 0, 0, 1);
  rc = lmq_produce(env, "c0", &one, 1, NULL, LMQ_SYNC_ALWAYS);
  int later_ok = rc == 0;
  if (strcmp(mode, "sync") == 0 && rc != LMQ_EFAILED) {
    printf("RESULT fail produce after a failed fsync returned %d, want "
           "LMQ_EFAILED\n", rc);
    bad = 1;
  }
  lmq_env_close(env);
  env = NULL;
  if ((rc = lmq_env_open(&env, dir, &o)) != 0) {
    printf("RESULT fail reopen: %d %s\n", rc, lmq_errmsg());
    return 1;
  }
  /* Read everything back. */
  lmq_group_create(env, "c0", "chk", LMQ_START_EARLIEST);
  int seen_failed = 0, ai = 0;
  lmq_id prev = 0;
  for (;;) {
    lmq_msgs *m = NULL;
    int n = lmq_consume(&m, env, "c0", "chk", 1000, 0);
    if (n <= 0) {
      lmq_msgs_free(m);
      break;
    }
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      uint32_t op;
      unsigned idx, c, g;
      if (!pl_payload_check(x->data, x->len, &op, &idx, &c, &g)) {
        printf("RESULT fail corrupt message %llu\n", (unsigned long long)x->id);
        bad = 1;
        continue;
      }
      if (x->id <= prev) {
        printf("RESULT fail IDs not increasing at %llu\n", (unsigned long long)x->id);
        bad = 1;
      }
      prev = x->id;
      if (op == failed_op) {
        seen_failed++;
      } else if (op == 1000 && later_ok) {
      } else {
        while (ai < nacked && acked[ai].op < op) {
          printf("RESULT fail acknowledged produce %u lost\n", acked[ai].op);
          bad = 1;
          ai++;
        }
        if (ai < nacked && acked[ai].op == op) {
          if (x->id != acked[ai].first + idx) {
            printf("RESULT fail id %llu for op %u idx %u\n",
                   (unsigned long long)x->id, op, idx);
            bad = 1;
          }
          if ((int)idx == acked[ai].n - 1)
            ai++;
        } else {
          printf("RESULT fail unexpected message op %u\n", op);
          bad = 1;
        }
      }
    }
    lmq_msgs_free(m);
  }
  if (ai < nacked) {
    printf("RESULT fail %d acknowledged produces lost (first op %u)\n",
           nacked - ai, acked[ai].op);
    bad = 1;
  }
  if (seen_failed != 0 && seen_failed != failed_n) {
    printf("RESULT fail the failed produce is partly present (%d of %d)\n",
           seen_failed, failed_n);
    bad = 1;
  }
  lmq_env_close(env);
  if (!bad)
    printf("RESULT ok failed op %u rc %d (%s); %d acked; failed op %s after "
           "reopen\n", failed_op, failed_rc, lmq_strerror(failed_rc), nacked,
           seen_failed ? "present" : "absent");
  return bad;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: workload sweep ROOT SEED STEPS | fault ROOT\n");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s/env", argv[2]);
  if (strcmp(argv[1], "fault") == 0) {
    setvbuf(stdout, NULL, _IONBF, 0);
    return fault();
  }
  if (argc != 5)
    return 2;
  const char *e = getenv("PLSIM_EVENTS");
  if (!e || (evfd = open(e, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
    fprintf(stderr, "workload: PLSIM_EVENTS must name a writable file\n");
    return 2;
  }
  return sweep(strtoull(argv[3], NULL, 10), atoi(argv[4]));
}
