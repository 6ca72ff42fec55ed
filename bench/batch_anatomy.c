/*
 * batch_anatomy - where the time of a synced 1000 x 100 B produce call
 * goes, next to the bare loop that bounds it in bench_suite (a 101,040-byte
 * append + fdatasync, "fdatasync_100KiB_append").
 *
 *   bench/batch_anatomy [-r ROUNDS] [-s SECONDS] [-d TMPDIR] [-u MIB] [-c N]
 *
 * Each round runs the bare loop, then lmq (LMQ_SYNC_ALWAYS, default
 * options; -u sets max_unapplied; -c N sends the calls round-robin over N
 * channels, as the suite's 256-channel row does; default 1), for SECONDS
 * each (default 3 rounds of 2 s). For the
 * calling thread it reports per call: wall time, time inside fdatasync and
 * inside the large pwrite (lmq's WAL write; timed by wrapping both: this
 * program exports them, so liblmq's calls resolve here), user and system
 * CPU (getrusage RUSAGE_THREAD), and the time it sat runnable waiting for
 * a CPU (run_delay, /proc/thread-self/schedstat; part of the other terms,
 * mostly of fdatasync's, as a thread woken from it waits there). The rest
 * of the wall time ("other") is the kernel's CPU outside the two calls,
 * waiting in lmq (locks, futexes) and small system calls.
 */
#define _GNU_SOURCE
#include <lmq.h>

#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BIG_WRITE 50000 /* a pwrite this large is a call's WAL record */

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Only the calling (main) thread is counted: the applier's LMDB syncs and
 * writes are its own thread's. */
static __thread double t_sync, t_write;
#define EXPORTED __attribute__((visibility("default")))

EXPORTED int fdatasync(int fd) {
  static int (*real)(int);
  if (!real)
    real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  double a = now();
  int r = real(fd);
  t_sync += now() - a;
  return r;
}

EXPORTED ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  static ssize_t (*real)(int, const void *, size_t, off_t);
  if (!real)
    real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
  double a = now();
  ssize_t r = real(fd, buf, n, off);
  if (n >= BIG_WRITE)
    t_write += now() - a;
  return r;
}

EXPORTED ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  return pwrite64(fd, buf, n, off);
}

typedef struct sample {
  double wall, user, sys, delay, sync, write;
} sample;

static double run_delay(void) {
  FILE *f = fopen("/proc/thread-self/schedstat", "r");
  unsigned long long cpu = 0, wait = 0;
  if (f) {
    if (fscanf(f, "%llu %llu", &cpu, &wait) != 2)
      wait = 0;
    fclose(f);
  }
  return (double)wait / 1e9;
}

static sample take(void) {
  struct rusage ru;
  getrusage(RUSAGE_THREAD, &ru);
  return (sample){now(),
                  (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6,
                  run_delay(), t_sync, t_write};
}

static void report(const char *what, sample a, sample b, long calls) {
  double us = 1e6 / (double)calls, wall = (b.wall - a.wall) * us;
  double sync = (b.sync - a.sync) * us, wr = (b.write - a.write) * us;
  double user = (b.user - a.user) * us, delay = (b.delay - a.delay) * us;
  /* run_delay is not a term of the sum: a thread woken from fdatasync
   * waits for a CPU inside the call. */
  printf("  %-4s %7.0f calls/s | per call, us: wall %5.1f = fdatasync %5.1f + write %4.1f"
         " + user CPU %4.1f + other %5.1f; waiting for a CPU %4.1f, system CPU %5.1f\n",
         what, (double)calls / (b.wall - a.wall), wall, sync, wr, user,
         wall - sync - wr - user, delay, (b.sys - a.sys) * us);
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "batch_anatomy: %s: %s\n", what, why);
  exit(1);
}

static double bare(const char *base, double secs) {
  char path[4200];
  snprintf(path, sizeof path, "%s/anatomy-XXXXXX", base);
  int fd = mkstemp(path);
  if (fd < 0)
    die("mkstemp", strerror(errno));
  size_t sz = 1000 * (1 + 100) + 40; /* bench_suite's BATCH_REC_BYTES */
  char *b = malloc(sz);
  if (!b)
    die("bare", "out of memory");
  memset(b, 'f', sz);
  long n = 0;
  sample s0 = take();
  do {
    if (pwrite(fd, b, sz, (off_t)n * (off_t)sz) != (ssize_t)sz || fdatasync(fd))
      die("bare", strerror(errno));
    n++;
  } while (now() - s0.wall < secs);
  sample s1 = take();
  report("bare", s0, s1, n);
  close(fd);
  unlink(path);
  free(b);
  return (double)n / (s1.wall - s0.wall);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *w) {
  (void)st, (void)flag, (void)w;
  return remove(p);
}

static uint64_t max_unapplied; /* -u MiB; 0 = the default */
static int nchan = 1;          /* -c */

static double lmq(const char *base, double secs) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/anatomy-XXXXXX", base);
  if (!mkdtemp(dir))
    die("mkdtemp", strerror(errno));
  lmq_env *env;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  if (max_unapplied)
    o.max_unapplied = max_unapplied;
  if (lmq_env_open(&env, dir, &o))
    die("lmq", lmq_errmsg());
  char (*names)[16] = calloc((size_t)nchan, sizeof *names);
  if (!names)
    die("lmq", "out of memory");
  for (int c = 0; c < nchan; c++) {
    snprintf(names[c], sizeof names[c], "c%d", c);
    if (lmq_channel_create(env, names[c]))
      die("lmq", lmq_errmsg());
  }
  static char pay[1000][100];
  lmq_buf m[1000];
  for (int i = 0; i < 1000; i++) {
    memset(pay[i], 'a' + i % 26, sizeof pay[i]);
    m[i] = (lmq_buf){pay[i], sizeof pay[i]};
  }
  long n = 0;
  sample s0 = take();
  do {
    if (lmq_produce(env, names[n % nchan], m, 1000, NULL, LMQ_SYNC_ALWAYS))
      die("produce", lmq_errmsg());
    n++;
  } while (now() - s0.wall < secs);
  sample s1 = take();
  report("lmq", s0, s1, n);
  lmq_env_close(env);
  free(names);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return (double)n / (s1.wall - s0.wall);
}

int main(int argc, char **argv) {
  int rounds = 3, opt;
  double secs = 2;
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/var/tmp";
  while ((opt = getopt(argc, argv, "r:s:d:u:c:")) != -1) {
    if (opt == 'r')
      rounds = atoi(optarg);
    else if (opt == 's')
      secs = atof(optarg);
    else if (opt == 'd')
      base = optarg;
    else if (opt == 'u')
      max_unapplied = (uint64_t)atoi(optarg) << 20;
    else if (opt == 'c' && atoi(optarg) > 0)
      nchan = atoi(optarg);
    else
      die("usage", "batch_anatomy [-r ROUNDS] [-s SECONDS] [-d TMPDIR] [-u MAX_UNAPPLIED_MIB] [-c CHANNELS]");
  }
  for (int r = 0; r < rounds; r++) {
    printf("round %d\n", r + 1);
    double b = bare(base, secs), l = lmq(base, secs);
    printf("  lmq/bare %.3f\n", l / b);
    fflush(stdout);
  }
  return 0;
}
