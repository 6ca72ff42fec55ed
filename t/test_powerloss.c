/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * test_powerloss - the power-loss simulator's sweep (docs/crashsim.md).
 *
 * Records the workload (t/plsim/workload) once per seed under the tracing
 * preload, then rebuilds crash states from prefixes of the trace: every
 * fsync/fdatasync/directory sync is a crash point (the state holds what came
 * before it), so is every Kth write and the end of the trace; each point
 * gives several variants (durable only, everything written, random sector
 * subsets). Each state is checked in a forked child with a time limit.
 * Then the fault-injection test (a failed fdatasync / write under ALWAYS).
 *
 * A plain TAP program. Environment (defaults: the make-check budget;
 * PLSIM_LONG=1 switches to the long sweep's):
 *   PLSIM_PRELOAD, PLSIM_WORKLOAD  the built .so and workload (make sets them)
 *   PLSIM_SEEDS=1,2,3 (long: 1..5, ~25k states each)   PLSIM_STEPS=300 (600)
 *   PLSIM_VARIANTS=6 (12)   PLSIM_JOBS=2
 *   PLSIM_WRITE_EVERY=4 (1); 0: no write crash points; 1: every write
 *   PLSIM_MAX_STATES=3000 (0 = all) per seed: beyond it points are thinned
 *   evenly, except the first 40 (the first LMDB initialization)
 *   PLSIM_TIMEOUT=30 seconds per state
 *   PLSIM_KEEP=1 keeps the first 20 failing states and the traces
 *   PLSIM_SKIP_FAULT=1 skips the fault test   PLSIM_VERBOSE=1 prints every
 *   failure
 */
#define _GNU_SOURCE
#include "plsim/check.h"
#include "plsim/model.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long envnum(const char *name, long def) {
  const char *v = getenv(name);
  return v && *v ? atol(v) : def;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st; (void)flag; (void)f;
  return remove(p);
}
static void rm_rf(const char *p) { nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

static char base[512];

static void pick_base(void) {
  struct statvfs sv;
  const char *b = NULL;
  if (statvfs("/dev/shm", &sv) == 0 &&
      (unsigned long long)sv.f_bavail * sv.f_frsize > (1ull << 30))
    b = "/dev/shm";
  if (!b)
    b = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(base, sizeof base, "%s/lmq-plsim-XXXXXX", b);
  if (!mkdtemp(base)) {
    printf("Bail out! mkdtemp %s: %s\n", base, strerror(errno));
    exit(1);
  }
}

/* Run the workload under the preload; returns its exit status. */
static int run_workload(char *const argv[], const char *root, const char *trace,
                        const char *events, const char *fail_var, long fail_n,
                        const char *out) {
  pid_t pid = fork();
  if (pid == 0) {
    const char *pre = getenv("PLSIM_PRELOAD");
    setenv("LD_PRELOAD", pre, 1);
    setenv("PLSIM_ROOT", root, 1);
    setenv("PLSIM_TRACE", trace, 1);
    setenv("PLSIM_EVENTS", events, 1);
    unsetenv("PLSIM_FAIL_SYNC");
    unsetenv("PLSIM_FAIL_WRITE");
    if (fail_var) {
      char n[32];
      snprintf(n, sizeof n, "%ld", fail_n);
      setenv(fail_var, n, 1);
    }
    char asan[1024];
    const char *a = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", a ? a : "",
             a && *a ? ":" : "");
    setenv("ASAN_OPTIONS", asan, 1);
    if (out && !freopen(out, "w", stdout))
      _exit(126);
    alarm(300); /* survives exec: a hung workload is a failure, not a hang */
    execv(argv[0], argv);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------ the sweep */

#define MAXKINDS 32
static struct {
  char kind[32];
  long states;
  long byvar[3]; /* durable-only, all-written, random */
  char example[1024];
} kinds[MAXKINDS];
static int nkinds;
static long total_states, total_failed;
static char first_fail[5][1200];
static int nfirst;

typedef struct job {
  pid_t pid;
  char out[1200];
  char desc[512];
  char dir[1100];
  int vkind;
} job;

static job jobs[16];
static int njobs, maxjobs, verbose, keep, nkept;

static void record(job *j, int st) {
  total_states++;
  FILE *f = fopen(j->out, "r");
  char line[1024];
  int failed = 0;
  char seen[MAXKINDS] = {0};
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    char *tab = strchr(line, '\t');
    if (!tab)
      continue;
    *tab = '\0';
    failed = 1;
    int k;
    for (k = 0; k < nkinds; k++)
      if (!strcmp(kinds[k].kind, line))
        break;
    if (k == nkinds && nkinds < MAXKINDS) {
      snprintf(kinds[k].kind, sizeof kinds[k].kind, "%.31s", line);
      snprintf(kinds[k].example, sizeof kinds[k].example, "%s: %s", j->desc,
               tab + 1);
      nkinds++;
    }
    if (k < MAXKINDS && !seen[k]) {
      seen[k] = 1;
      kinds[k].states++;
      kinds[k].byvar[j->vkind]++;
    }
    if (verbose)
      printf("# FAIL %s: [%s] %s\n", j->desc, line, tab + 1);
    if (nfirst < 5)
      snprintf(first_fail[nfirst++], sizeof first_fail[0], "%s: [%.31s] %.600s",
               j->desc, line, tab + 1);
  }
  if (f)
    fclose(f);
  if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 1)) {
    const char *kind = WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? "timeout"
                                                                   : "checker-crash";
    int k;
    for (k = 0; k < nkinds; k++)
      if (!strcmp(kinds[k].kind, kind))
        break;
    if (k == nkinds && nkinds < MAXKINDS) {
      snprintf(kinds[k].kind, sizeof kinds[k].kind, "%s", kind);
      snprintf(kinds[k].example, sizeof kinds[k].example, "%s: status %d",
               j->desc, st);
      nkinds++;
    }
    if (k < MAXKINDS) {
      kinds[k].states++;
      kinds[k].byvar[j->vkind]++;
    }
    failed = 1;
  }
  if (failed)
    total_failed++;
  /* Keep the first 20 failing states (each is a whole data directory). */
  if (failed && keep && nkept < 20) {
    nkept++;
    printf("# kept failing state %s (%s)\n", j->dir, j->desc);
  } else if (keep) {
    rm_rf(j->dir);
  }
  unlink(j->out);
}

static void reap(int block) {
  while (njobs > 0) {
    int st;
    pid_t p = waitpid(-1, &st, block ? 0 : WNOHANG);
    if (p <= 0)
      return;
    for (int i = 0; i < njobs; i++)
      if (jobs[i].pid == p) {
        record(&jobs[i], st);
        jobs[i] = jobs[--njobs];
        break;
      }
    block = 0;
  }
}

static void spawn(const pl_model *m, const pl_variant *v, const char *desc,
                  const char *dir, long timeout) {
  while (njobs >= maxjobs)
    reap(1);
  job *j = &jobs[njobs];
  snprintf(j->out, sizeof j->out, "%s.out", dir);
  snprintf(j->desc, sizeof j->desc, "%s", desc);
  j->vkind = v->kind;
  snprintf(j->dir, sizeof j->dir, "%s", dir);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    alarm((unsigned)timeout);
    FILE *out = fopen(j->out, "w");
    if (!out)
      _exit(3);
    setvbuf(out, NULL, _IOLBF, 0);
    if (mkdir(dir, 0755) != 0 || pl_model_materialize(m, v, dir) != 0) {
      fprintf(out, "materialize-error\t%s\n", dir);
      _exit(1);
    }
    size_t len;
    const char *ev = pl_model_events(m, &len);
    int f = pl_check(dir, ev, len, out);
    if (!f || !keep)
      rm_rf(dir); /* a failing one is kept or removed by the parent */
    fclose(out);
    _exit(f ? 1 : 0);
  }
  j->pid = pid;
  njobs++;
}

static const char *opname(int t) {
  static const char *n[] = {"?", "create", "write", "trunc", "falloc", "fsync",
                            "mkdir", "rmdir", "unlink", "rename", "dirsync",
                            "syncall", "event", "nop"};
  return t > 0 && t <= PL_NOP ? n[t] : "end";
}

/* The last event line before the crash point, for the failure message. */
static void last_event(const pl_model *m, char *buf, size_t len) {
  size_t n;
  const char *ev = pl_model_events(m, &n);
  if (n == 0) {
    snprintf(buf, len, "(none)");
    return;
  }
  size_t e = n - 1, s = e;
  while (s > 0 && ev[s - 1] != '\n')
    s--;
  snprintf(buf, len, "%.*s", (int)(e - s), ev + s);
}

static int sweep_seed(long seed, long steps, int nvar, long write_every,
                      long max_states, long timeout) {
  char root[600], trace[600], events[600], seedbuf[32], stepbuf[32];
  snprintf(root, sizeof root, "%s/seed%ld-root", base, seed);
  snprintf(trace, sizeof trace, "%s/seed%ld.trace", base, seed);
  snprintf(events, sizeof events, "%s/seed%ld.events", base, seed);
  mkdir(root, 0755);
  snprintf(seedbuf, sizeof seedbuf, "%ld", seed);
  snprintf(stepbuf, sizeof stepbuf, "%ld", steps);
  char *argv[] = {getenv("PLSIM_WORKLOAD"), "sweep", root, seedbuf, stepbuf, NULL};
  double t0 = now();
  int st = run_workload(argv, root, trace, events, NULL, 0, NULL);
  if (st != 0) {
    printf("not ok - seed %ld: the workload exited with status %d\n", seed, st);
    return 1;
  }
  pl_trace t;
  if (pl_trace_load(&t, trace) != 0) {
    printf("not ok - seed %ld: cannot read the trace\n", seed);
    return 1;
  }
  /* Crash points. */
  unsigned char *pt = calloc(t.n + 1, 1);
  size_t npoints = 0, writes = 0, syncs = 0, creates = 0, renames = 0,
         unlinks = 0, dirsyncs = 0;
  for (size_t i = 0; i <= t.n; i++) {
    int ty = i < t.n ? t.ops[i].h.type : 0;
    creates += ty == PL_CREATE;
    renames += ty == PL_RENAME;
    unlinks += ty == PL_UNLINK;
    dirsyncs += ty == PL_DIRSYNC;
    if (ty == PL_FSYNC || ty == PL_DIRSYNC || ty == PL_SYNCALL)
      syncs++, pt[i] = 1;
    if (ty == PL_WRITE && write_every > 0 && writes++ % (size_t)write_every == 0)
      pt[i] = 1;
    if (i == t.n)
      pt[i] = 1;
    npoints += pt[i];
  }
  size_t keep_every = 1;
  if (max_states > 0 && npoints * (size_t)nvar > (size_t)max_states)
    keep_every = (npoints * (size_t)nvar + (size_t)max_states - 1) / (size_t)max_states;
  printf("# seed %ld: workload %.1fs, %zu trace ops, %zu syncs (%zu of dirs), "
         "%zu creates, %zu renames, %zu unlinks; %zu crash points (checking "
         "every %zu), %d variants each\n", seed, now() - t0, t.n, syncs,
         dirsyncs, creates, renames, unlinks, npoints, keep_every, nvar);
  long states0 = total_states, failed0 = total_failed;
  pl_model *m = pl_model_new();
  size_t pi = 0;
  for (size_t i = 0; i <= t.n; i++) {
    /* Thinning spares the first points: the first LMDB initialization. */
    int take = 0;
    if (pt[i]) {
      take = pi < 40 || pi % keep_every == 0 || i == t.n;
      pi++;
    }
    if (take) {
      char le[160];
      last_event(m, le, sizeof le);
      for (int v = 0; v < nvar; v++) {
        pl_variant var = {0};
        var.seed = ((uint64_t)seed << 40) ^ ((uint64_t)i << 8) ^ (uint64_t)v;
        var.sector = 512;
        if (v == 0)
          var.kind = PL_V_DURABLE;
        else if (v == 1)
          var.kind = PL_V_ALL;
        else {
          static const double ps[] = {0.5, 0.2, 0.8, 0.35, 0.65, 0.1, 0.9};
          var.kind = PL_V_RANDOM;
          var.p = ps[(v - 2 + i) % 7];
          var.sector = (v + i) % 3 == 0 ? 4096 : 512;
          var.full_size = (v + i / 2) % 2;
          var.dir_keep = 0.6;
        }
        char vd[200], desc[512], dir[1100];
        pl_variant_describe(&var, vd, sizeof vd);
        snprintf(desc, sizeof desc, "seed %ld, crash before trace op %zu/%zu (%s), "
                 "variant %d %s, last event \"%s\"", seed, i, t.n,
                 opname(i < t.n ? t.ops[i].h.type : 0), v, vd, le);
        snprintf(dir, sizeof dir, "%s/s%ld-%zu-%d", base, seed, i, v);
        spawn(m, &var, desc, dir, timeout);
      }
    }
    if (i < t.n)
      pl_model_step(m, &t.ops[i]);
  }
  reap(1);
  while (njobs)
    reap(1);
  pl_model_free(m);
  pl_trace_free(&t);
  free(pt);
  long ns = total_states - states0, nf = total_failed - failed0;
  printf("%s - seed %ld: checked %ld states, %ld failed\n", nf ? "not ok" : "ok",
         seed, ns, nf);
  if (!keep || !nf) {
    rm_rf(root);
    unlink(trace);
    unlink(events);
  }
  return nf != 0;
}

/* ------------------------------------------------------------ faults */

static int fault_test(const char *var) {
  char root[600], trace[700], events[700], out[700];
  int result = -1;
  char verdict[1024] = "";
  /* Start past the open and the first produces, so some are acknowledged. */
  for (long n = 24; n < 200 && result < 0; n += 3) {
    snprintf(root, sizeof root, "%s/fault-%s-%ld", base, var, n);
    snprintf(trace, sizeof trace, "%s.trace", root);
    snprintf(events, sizeof events, "%s.events", root);
    snprintf(out, sizeof out, "%s.out", root);
    mkdir(root, 0755);
    char *argv[] = {getenv("PLSIM_WORKLOAD"), "fault", root, NULL};
    int st = run_workload(argv, root, trace, events, var, n, out);
    FILE *f = fopen(out, "r");
    char line[1024];
    int bad = 0;
    verdict[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
      line[strcspn(line, "\n")] = '\0';
      if (!strncmp(line, "RESULT fail", 11)) {
        bad = 1;
        printf("# %s=%ld: %s\n", var, n, line + 7);
      }
      if (!strncmp(line, "RESULT ", 7))
        snprintf(verdict, sizeof verdict, "%s=%ld: %s", var, n, line + 7);
    }
    if (f)
      fclose(f);
    if (st == 0 || st == 1 || bad)
      result = st == 0 && !bad ? 0 : 1;
    if (result < 0 && st != 2) {
      snprintf(verdict, sizeof verdict, "%s=%ld: workload status %d", var, n, st);
      result = 1;
    }
    rm_rf(root);
    unlink(trace);
    unlink(events);
    unlink(out);
  }
  if (result < 0) {
    printf("not ok - fault %s: no produce ever hit the injected fault\n", var);
    return 1;
  }
  printf("%s - fault %s: %s\n", result ? "not ok" : "ok", var, verdict);
  return result;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!getenv("PLSIM_PRELOAD") || !getenv("PLSIM_WORKLOAD")) {
    printf("1..0 # SKIP PLSIM_PRELOAD and PLSIM_WORKLOAD not set (make check "
           "sets them)\n");
    return 0;
  }
  int lng = envnum("PLSIM_LONG", 0) != 0;
  const char *seeds = getenv("PLSIM_SEEDS");
  if (!seeds || !*seeds)
    seeds = lng ? "1,2,3,4,5" : "1,2,3";
  long steps = envnum("PLSIM_STEPS", lng ? 600 : 300);
  int nvar = (int)envnum("PLSIM_VARIANTS", lng ? 12 : 6);
  long write_every = envnum("PLSIM_WRITE_EVERY", lng ? 1 : 4);
  long max_states = envnum("PLSIM_MAX_STATES", lng ? 0 : 3000);
  long timeout = envnum("PLSIM_TIMEOUT", 30);
  keep = envnum("PLSIM_KEEP", 0) != 0;
  int skip_fault = envnum("PLSIM_SKIP_FAULT", 0) != 0;
  maxjobs = (int)envnum("PLSIM_JOBS", 2);
  verbose = envnum("PLSIM_VERBOSE", 0) != 0;
  if (maxjobs < 1 || maxjobs > 16)
    maxjobs = 2;
  if (nvar < 2)
    nvar = 2;
  pick_base();
  int nseeds = 1;
  for (const char *s = seeds; *s; s++)
    nseeds += *s == ',';
  printf("1..%d\n", nseeds + (skip_fault ? 0 : 2));
  double t0 = now();
  int bad = 0;
  char *list = strdup(seeds), *save = NULL;
  for (char *s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save))
    bad |= sweep_seed(atol(s), steps, nvar, write_every, max_states, timeout);
  free(list);
  double dt = now() - t0;
  printf("# checked %ld states, %ld failed (%.1fs, %.1f states/s)\n", total_states,
         total_failed, dt, dt > 0 ? (double)total_states / dt : 0.0);
  for (int k = 0; k < nkinds; k++)
    printf("#   %-20s %6ld states (durable-only %ld, all-written %ld, random %ld)"
           "\n#       e.g. %s\n", kinds[k].kind, kinds[k].states, kinds[k].byvar[0],
           kinds[k].byvar[1], kinds[k].byvar[2], kinds[k].example);
  for (int i = 0; i < nfirst; i++)
    printf("# failure %d: %s\n", i + 1, first_fail[i]);
  if (!skip_fault) {
    bad |= fault_test("PLSIM_FAIL_SYNC");
    bad |= fault_test("PLSIM_FAIL_WRITE");
  }
  if (!keep)
    rm_rf(base);
  else
    printf("# states kept under %s\n", base);
  return bad;
}
