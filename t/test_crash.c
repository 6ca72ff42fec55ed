/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Crash safety: a child producing with ALWAYS sync is SIGKILLed at random
 * moments; after reopening, every acknowledged message is there exactly
 * once, in order, intact, and IDs keep increasing. Then the same with WAL
 * tails that were truncated or had bytes flipped.
 */
#define _GNU_SOURCE
#include "util.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct ack {
  lmq_id id;
  int t;
  long s;
  int seen;
} ack;

static const char *helper(void) {
  const char *h = getenv("LMQ_TEST_HELPER");
  cr_assert(h && *h, "LMQ_TEST_HELPER must name t/crash_child (make check sets it)");
  return h;
}

/* The "roll" child's log of channel "side" (see t/crash_child.c). */
typedef struct side_line {
  char kind; /* c C d D S */
  long gen;
  lmq_id id;
  long s;
} side_line;
typedef struct side_log {
  side_line *v;
  size_t n, cap;
} side_log;

/* payload_ok's padding multiplier: 30 for the "roll" child. */
static int pad_mult = 1;

/* Run the child for ms milliseconds, SIGKILL it, return its acked lines.
 * With mode "roll", side-channel lines go to sl. */
static size_t run_and_kill_ex(const char *dir, long base, int threads,
                              int apply_ms, int ms, ack **out, size_t have,
                              size_t *cap, const char *mode, side_log *sl) {
  const char *h = helper(); /* asserts here, never in the forked child */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    char b[32], t[16], a[16];
    snprintf(b, sizeof b, "%ld", base);
    snprintf(t, sizeof t, "%d", threads);
    snprintf(a, sizeof a, "%d", apply_ms);
    execl(h, "crash_child", dir, b, t, a, mode, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  char line[256];
  /* Start the clock once the child has opened the env. */
  cr_assert_not_null(fgets(line, sizeof line, f), "crash_child did not start");
  cr_assert_str_eq(line, "ready\n");
  usleep((useconds_t)ms * 1000);
  kill(pid, SIGKILL);
  /* Everything the child wrote before dying is in the pipe. */
  size_t n = have;
  while (fgets(line, sizeof line, f)) {
    unsigned long long id;
    int t;
    long s;
    if (sl && strchr("cCdDS", line[0])) {
      side_line x = {line[0], 0, 0, 0};
      int ok = line[0] == 'S'
                   ? sscanf(line, "S %llu %ld %ld", &id, &x.gen, &x.s) == 3
                   : sscanf(line + 1, " %ld", &x.gen) == 1;
      if (!ok || !strchr(line, '\n'))
        continue;
      x.id = line[0] == 'S' ? (lmq_id)id : 0;
      if (sl->n == sl->cap) {
        sl->cap = sl->cap ? sl->cap * 2 : 1024;
        sl->v = realloc(sl->v, sl->cap * sizeof *sl->v);
      }
      sl->v[sl->n++] = x;
      continue;
    }
    if (sscanf(line, "%llu %d %ld", &id, &t, &s) != 3)
      continue;
    if (n == *cap) {
      *cap = *cap ? *cap * 2 : 4096;
      *out = realloc(*out, *cap * sizeof **out);
    }
    (*out)[n++] = (ack){(lmq_id)id, t, s, 0};
  }
  fclose(f);
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
            "child exited on its own (status %d): did it fail to open?", st);
  return n;
}

static size_t run_and_kill(const char *dir, long base, int threads, int apply_ms,
                           int ms, ack **out, size_t have, size_t *cap) {
  return run_and_kill_ex(dir, base, threads, apply_ms, ms, out, have, cap, NULL,
                         NULL);
}

static int cmp_ack(const void *a, const void *b) {
  lmq_id x = ((const ack *)a)->id, y = ((const ack *)b)->id;
  return x < y ? -1 : x > y;
}

/* Check a payload as crash_child builds it; returns 1 and t/s if intact. */
static int payload_ok(const lmq_msg *m, int *t, long *s) {
  char buf[4096];
  if (m->len >= sizeof buf || m->len < 8)
    return 0;
  memcpy(buf, m->data, m->len);
  buf[m->len] = '\0';
  unsigned h;
  int n = 0;
  if (sscanf(buf, "T%d S%ld H%x %n", t, s, &h, &n) != 3 || n == 0)
    return 0;
  if (h != ((unsigned)(*t * 2654435761u) ^ (unsigned)(*s * 40503u)))
    return 0;
  if (m->len != (size_t)n + (size_t)(*s % 97) * (size_t)pad_mult)
    return 0;
  for (size_t i = (size_t)n; i < m->len; i++)
    if (buf[i] != (char)('a' + (i + (size_t)*s) % 26))
      return 0;
  return 1;
}

static ack *find(ack *a, size_t n, lmq_id id) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (a[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && a[lo].id == id ? &a[lo] : NULL;
}

/* Read the whole channel with a fresh group; verify against acks.
 * Returns the largest ID present. */
static lmq_id verify(lmq_env *env, const char *group, ack **acksp, size_t *nackp,
                     size_t *capp, lmq_id min_unacked, int prefix_only) {
  ack *acks = *acksp;
  size_t nack = *nackp;
  ack extra[64]; /* durable but unacknowledged: the killed in-flight batches */
  size_t nextra = 0;
  cr_assert_eq(lmq_group_create(env, "crash", group, LMQ_START_EARLIEST), 0,
               "%s", lmq_errmsg());
  for (size_t i = 0; i < nack; i++)
    acks[i].seen = 0;
  lmq_id prev = 0;
  size_t total = 0;
  for (;;) {
    lmq_msgs *m = NULL;
    int n = lmq_consume(&m, env, "crash", group, 10000, 0);
    cr_assert_geq(n, 0, "consume: %s", lmq_errmsg());
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      int t;
      long s;
      cr_assert_gt(x->id, prev, "IDs not increasing");
      prev = x->id;
      cr_assert(payload_ok(x, &t, &s), "corrupt payload returned for id %llu",
                (unsigned long long)x->id);
      ack *a = find(acks, nack, x->id);
      if (a) {
        cr_assert_eq(a->seen, 0, "message %llu returned twice",
                     (unsigned long long)x->id);
        cr_assert(a->t == t && a->s == s, "id %llu holds T%d S%ld, acked T%d S%ld",
                  (unsigned long long)x->id, t, s, a->t, a->s);
        a->seen = 1;
      } else {
        /* Not acknowledged: only the killed run's in-flight produce. */
        cr_assert_geq(x->id, min_unacked, "unacked message %llu from an old run",
                      (unsigned long long)x->id);
        cr_assert_lt(nextra, 64, "too many unacknowledged messages");
        extra[nextra++] = (ack){x->id, t, s, 1};
      }
      total++;
    }
    lmq_msgs_free(m);
    if (n == 0)
      break;
  }
  if (!prefix_only) {
    for (size_t i = 0; i < nack; i++)
      cr_assert(acks[i].seen, "acknowledged message %llu (T%d S%ld) lost",
                (unsigned long long)acks[i].id, acks[i].t, acks[i].s);
  } else if (prefix_only == 1) {
    size_t i = 0;
    while (i < nack && acks[i].seen)
      i++;
    for (size_t j = i; j < nack; j++)
      cr_assert(!acks[j].seen, "message %llu present after a lost one",
                (unsigned long long)acks[j].id);
  } else {
    /* Salvaged: only the messages of the few damaged records are gone. */
    size_t lost = 0;
    for (size_t i = 0; i < nack; i++)
      lost += !acks[i].seen;
    cr_assert_leq(lost, 16, "salvage lost %zu acknowledged messages", lost);
  }
  (void)total;
  /* From now on they are as good as acknowledged: they must stay. */
  for (size_t i = 0; i < nextra; i++) {
    if (*nackp == *capp) {
      *capp = *capp ? *capp * 2 : 4096;
      *acksp = realloc(*acksp, *capp * sizeof **acksp);
    }
    (*acksp)[(*nackp)++] = extra[i];
  }
  qsort(*acksp, *nackp, sizeof **acksp, cmp_ack);
  return prev;
}

/*
 * Check channel "side" against the child's log after a reopen: the last
 * create/destroy that began decides whether it may or must exist; if it
 * exists, it holds exactly the current generation's messages, every
 * acknowledged one, once, in order, intact. Then destroy it so the next
 * round starts without it.
 */
static void verify_side(lmq_env *env, const side_log *sl, int round) {
  const side_line *last = NULL;
  for (size_t i = 0; i < sl->n; i++)
    if (sl->v[i].kind != 'S')
      last = &sl->v[i];
  int ex = lmq_channel_exists(env, "side");
  cr_assert_geq(ex, 0);
  if (!last) {
    cr_assert_eq(ex, 0, "round %d: side exists but was never created", round);
    return;
  }
  if (last->kind == 'C')
    cr_assert_eq(ex, 1, "round %d: side gen %ld: create acknowledged, channel "
                 "lost", round, last->gen);
  if (last->kind == 'D')
    cr_assert_eq(ex, 0, "round %d: side gen %ld: destroy acknowledged, channel "
                 "back", round, last->gen);
  if (!ex)
    return;
  cr_assert_eq(lmq_group_create(env, "side", "check", LMQ_START_EARLIEST), 0);
  size_t nacked = 0, seen = 0;
  for (size_t i = 0; i < sl->n; i++)
    nacked += sl->v[i].kind == 'S' && sl->v[i].gen == last->gen;
  lmq_id prev = 0;
  long prev_s = -1;
  for (;;) {
    lmq_msgs *m = NULL;
    int n = lmq_consume(&m, env, "side", "check", 1000, 0);
    cr_assert_geq(n, 0, "consume side: %s", lmq_errmsg());
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      int t;
      long s;
      cr_assert_gt(x->id, prev, "side: IDs not increasing");
      prev = x->id;
      cr_assert(payload_ok(x, &t, &s), "side: corrupt payload at id %llu",
                (unsigned long long)x->id);
      cr_assert_eq(t, 1000 + (int)(last->gen % 1000),
                   "round %d: side gen %ld holds a message of generation "
                   "%d (id %llu)", round, last->gen, t - 1000,
                   (unsigned long long)x->id);
      cr_assert_gt(s, prev_s, "side: message S%ld twice or out of order", s);
      prev_s = s;
      for (size_t j = 0; j < sl->n; j++)
        if (sl->v[j].kind == 'S' && sl->v[j].gen == last->gen &&
            sl->v[j].s == s) {
          cr_assert_eq(sl->v[j].id, x->id, "side: S%ld acknowledged as %llu, "
                       "found as %llu", s, (unsigned long long)sl->v[j].id,
                       (unsigned long long)x->id);
          seen++;
        }
    }
    lmq_msgs_free(m);
    if (n == 0)
      break;
  }
  cr_assert_eq(seen, nacked, "round %d: side gen %ld (last op '%c'): %zu of %zu "
               "acknowledged messages present", round, last->gen, last->kind,
               seen, nacked);
  cr_assert_eq(lmq_channel_destroy(env, "side"), 0);
}

/*
 * 64 KiB segments and 128 KiB checkpoints, so segments roll and recycled
 * spares are reused within a round; a second channel is created, filled
 * and destroyed concurrently; the crash channel's acknowledged messages and
 * the side channel's acknowledged state are checked after every round.
 */
Test(crash, sigkill_during_synced_produce_loses_nothing_acknowledged,
     .timeout = 600) {
  char *dir = tmpdir_new();
  ack *acks = NULL;
  size_t nack = 0, cap = 0;
  lmq_id max_present = 0;
  srand((unsigned)getpid());
  pad_mult = 30;
  int rounds = 50;
  for (int r = 0; r < rounds; r++) {
    int threads = 1 + r % 4;
    int ms = 20 + rand() % 80;
    size_t before = nack;
    side_log sl = {0};
    /* Half the rounds apply to LMDB often, half keep data in the WAL. */
    nack = run_and_kill_ex(dir, (long)r * 1000000, threads, r % 2 ? 5 : 600000,
                           ms, &acks, nack, &cap, "roll", &sl);
    for (size_t i = before; i < nack; i++)
      cr_assert_gt(acks[i].id, max_present,
                   "round %d reused or lowered an ID", r);
    qsort(acks, nack, sizeof *acks, cmp_ack);
    lmq_env *env = open_env(dir, LMQ_SYNC_ALWAYS);
    char g[16];
    snprintf(g, sizeof g, "r%d", r);
    max_present = verify(env, g, &acks, &nack, &cap, max_present + 1, 0);
    cr_assert_eq(lmq_group_destroy(env, "crash", g), 0);
    verify_side(env, &sl, r);
    free(sl.v);
    lmq_env_close(env);
  }
  cr_assert_gt(nack, (size_t)rounds, "too few acknowledged messages to mean much");
  free(acks);
  tmpdir_rm(dir);
}

/* The newest WAL segment in dir/wal, or "" (buf has PATH_MAX bytes). */
static off_t last_segment(const char *dir, char *buf, size_t len) {
  char wal[8192];
  snprintf(wal, sizeof wal, "%s/wal", dir);
  DIR *d = opendir(wal);
  cr_assert_not_null(d);
  struct dirent *de;
  char best[256] = "";
  while ((de = readdir(d)))
    if (strlen(de->d_name) == 20 && strcmp(de->d_name, best) > 0)
      snprintf(best, sizeof best, "%s", de->d_name);
  closedir(d);
  snprintf(buf, len, "%s/%s", wal, best);
  struct stat st;
  return *best && stat(buf, &st) == 0 ? st.st_size : 0;
}

static void corrupt_rounds(int flip) {
  srand((unsigned)getpid() * (flip + 1));
  for (int r = 0; r < 12; r++) {
    char *dir = NULL;
    ack *acks = NULL;
    size_t nack = 0, cap = 0;
    char seg[16384];
    off_t size = 0;
    /* On a loaded machine the child may be killed before it wrote anything:
     * run it again, longer, until the WAL has something to corrupt. */
    for (int ms = 60 + rand() % 60, tries = 0; size == 0 && tries < 6;
         ms *= 2, tries++) {
      if (dir) {
        tmpdir_rm(dir);
        free(acks);
        acks = NULL;
        cap = 0;
      }
      dir = tmpdir_new();
      nack = run_and_kill(dir, 0, 2, 600000, ms, &acks, 0, &cap);
      size = last_segment(dir, seg, sizeof seg);
    }
    qsort(acks, nack, sizeof *acks, cmp_ack);
    cr_assert_gt(size, 0, "the WAL holds nothing to corrupt");
    int fd = open(seg, O_RDWR);
    cr_assert_geq(fd, 0);
    off_t at = (off_t)(rand() % size);
    if (flip) {
      for (int k = 0; k < 1 + rand() % 3; k++) {
        unsigned char c;
        off_t o = at + (off_t)(rand() % 64);
        if (o >= size)
          o = size - 1;
        cr_assert_eq(pread(fd, &c, 1, o), 1);
        c ^= (unsigned char)(1u << (rand() % 8));
        cr_assert_eq(pwrite(fd, &c, 1, o), 1);
      }
    } else {
      cr_assert_eq(ftruncate(fd, at), 0);
    }
    close(fd);
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    o.map_size = (uint64_t)256 << 20;
    lmq_env *env = NULL;
    int rc = lmq_env_open(&env, dir, &o);
    if (rc == LMQ_ECORRUPT) {
      /* Damage to synced data (valid records after it): never cut
       * silently. Truncation only removes the end, so it is never that. */
      cr_assert(flip, "a truncated tail was reported corrupt: %s", lmq_errmsg());
      o.flags = LMQ_OPEN_SALVAGE;
      rc = lmq_env_open(&env, dir, &o);
      cr_assert_eq(rc, 0, "salvage open: %s", lmq_errmsg());
      lmq_recovery_report rep = LMQ_RECOVERY_REPORT_INIT;
      cr_assert_eq(lmq_env_recovery_get(&rep, env), 0);
      cr_assert_geq(rep.salvaged_regions, 1, "%s", rep.summary);
      /* The flipped bytes span at most 64 bytes: at most a few records. */
      verify(env, "check", &acks, &nack, &cap, 1, 2);
    } else {
      cr_assert_eq(rc, 0, "open: %s", lmq_errmsg());
      verify(env, "check", &acks, &nack, &cap, 1, 1);
    }
    /* The env works normally afterwards, and IDs still increase. */
    lmq_id last = 0, id;
    if (lmq_latest_id(&last, env, "crash") == LMQ_EEMPTY)
      last = 0;
    id = put_str(env, "crash", "T0 S0 H00000000 ");
    cr_assert_gt(id, last);
    lmq_env_close(env);
    free(acks);
    tmpdir_rm(dir);
  }
}

Test(crash, truncated_wal_tail_keeps_the_valid_prefix, .timeout = 300) {
  corrupt_rounds(0);
}

Test(crash, flipped_wal_bytes_keep_the_valid_prefix, .timeout = 300) {
  corrupt_rounds(1);
}

Test(crash, second_writer_gets_busy_naming_the_holder) {
  char *dir = tmpdir_new();
  lmq_env *env = open_env(dir, LMQ_SYNC_ALWAYS);
  pid_t pid = fork();
  if (pid == 0) {
    lmq_env *e2 = NULL;
    int rc = lmq_env_open(&e2, dir, NULL);
    char want[32];
    snprintf(want, sizeof want, "process %d", (int)getppid());
    _exit(rc == LMQ_EBUSY && strstr(lmq_errmsg(), want) ? 0 : 1);
  }
  int st;
  waitpid(pid, &st, 0);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "second open did not get LMQ_EBUSY naming the holder");
  lmq_env_close(env);
  tmpdir_rm(dir);
}
