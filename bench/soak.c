/*
 * soak - produce at full speed under retention limits and watch what the
 * process and its directory hold (issue 10: bounded under sustained load).
 *
 *   soak [-t SECONDS] [-c CHANNELS] [-B BYTES] [-A AGE_MS] [-m MSGS_PER_CALL]
 *        [-s MSG_SIZE] [-p PRODUCERS] [-S always|interval|none] [-M MAP_MIB]
 *        [-r REST_SECONDS] [-U MAX_UNAPPLIED] [-a APPLY_BYTES] [-d TMPDIR] [-q]
 *
 * Producer threads produce MSGS_PER_CALL messages of MSG_SIZE bytes per call
 * to CHANNELS channels round-robin for SECONDS seconds (default 60), each
 * channel with a byte limit BYTES (per channel) and/or an age limit AGE_MS.
 * Every second the main thread samples: the data directory's size on disk
 * (allocated blocks of every file), the retained payload bytes (sum of
 * lmq_channel_stats_get), the WAL's live bytes and the unapplied bytes
 * (lmq_env_stats_get), and the process's private memory (RssAnon from
 * /proc/self/status). After the load, it samples REST_SECONDS more seconds
 * (default 5) with no traffic. At the end it prints the maxima next to the
 * limits and the figures at rest.
 *
 * This is a benchmark, not a test: it reports figures; bench/README.md
 * quotes them.
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "rss_anon.h"

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)

static struct {
  double secs, rest;
  unsigned chans, per_call, size, producers, map_mib;
  uint64_t limit_bytes, limit_ms, max_unapplied, apply_bytes;
  int sync, quiet;
  const char *tmpbase;
} cfg = {60, 5, 1, 1, 100, 1, 1024, 0, 0, 0, 0, LMQ_SYNC_NONE, 0, NULL};

static lmq_env *env;
static atomic_int stop_flag;
static atomic_ullong produced;
static char **names;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st;
  (void)f;
  (void)w;
  return remove(p);
}

static uint64_t dir_bytes;
static int du_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)p;
  (void)w;
  if (f == FTW_F)
    dir_bytes += (uint64_t)st->st_blocks * 512u;
  return 0;
}

/* Allocated bytes of every file under dir (what `du` counts). */
static uint64_t du(const char *dir) {
  dir_bytes = 0;
  nftw(dir, du_cb, 16, FTW_PHYS);
  return dir_bytes;
}

static void *producer(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  unsigned n = cfg.per_call;
  lmq_buf *msgs = calloc(n, sizeof *msgs);
  unsigned char *payload = malloc(cfg.size ? cfg.size : 1);
  memset(payload, 'x', cfg.size);
  for (unsigned i = 0; i < n; i++)
    msgs[i] = (lmq_buf){payload, cfg.size};
  unsigned ch = id % cfg.chans;
  while (!atomic_load(&stop_flag)) {
    int rc = lmq_produce(env, names[ch], msgs, n, NULL, LMQ_SYNC_DEFAULT);
    if (rc) {
      fprintf(stderr, "produce: %s (%s)\n", lmq_strerror(rc), lmq_errmsg());
      usleep(10000);
      continue;
    }
    atomic_fetch_add(&produced, n);
    ch = (ch + cfg.producers) % cfg.chans;
  }
  free(payload);
  free(msgs);
  return NULL;
}

typedef struct {
  uint64_t dir, retained, wal, unapplied, anon;
} sample;

static sample take(const char *dir) {
  sample s = {0};
  s.dir = du(dir);
  for (unsigned i = 0; i < cfg.chans; i++) {
    lmq_channel_stats cs;
    if (lmq_channel_stats_get(&cs, env, names[i]) == 0)
      s.retained += cs.bytes;
  }
  lmq_env_stats es;
  if (lmq_env_stats_get(&es, env) == 0) {
    s.wal = es.wal_bytes;
    s.unapplied = es.unapplied_bytes;
  }
  s.anon = bench_rss_anon();
  return s;
}

static void usage(void) {
  fprintf(stderr,
          "usage: soak [-t SECONDS] [-c CHANNELS] [-B BYTES] [-A AGE_MS] "
          "[-m MSGS_PER_CALL]\n"
          "            [-s MSG_SIZE] [-p PRODUCERS] [-S always|interval|none] "
          "[-M MAP_MIB]\n"
          "            [-r REST_SECONDS] [-d TMPDIR] [-q]\n");
  exit(2);
}

int main(int argc, char **argv) {
  int o;
  while ((o = getopt(argc, argv, "t:c:B:A:m:s:p:S:M:r:U:a:d:q")) != -1) {
    switch (o) {
    case 't': cfg.secs = atof(optarg); break;
    case 'c': cfg.chans = (unsigned)atoi(optarg); break;
    case 'B': cfg.limit_bytes = strtoull(optarg, NULL, 0); break;
    case 'A': cfg.limit_ms = strtoull(optarg, NULL, 0); break;
    case 'm': cfg.per_call = (unsigned)atoi(optarg); break;
    case 's': cfg.size = (unsigned)atoi(optarg); break;
    case 'p': cfg.producers = (unsigned)atoi(optarg); break;
    case 'S':
      cfg.sync = !strcmp(optarg, "always")     ? LMQ_SYNC_ALWAYS
                 : !strcmp(optarg, "interval") ? LMQ_SYNC_INTERVAL
                 : !strcmp(optarg, "none")     ? LMQ_SYNC_NONE
                                               : (usage(), 0);
      break;
    case 'M': cfg.map_mib = (unsigned)atoi(optarg); break;
    case 'r': cfg.rest = atof(optarg); break;
    case 'U': cfg.max_unapplied = strtoull(optarg, NULL, 0); break;
    case 'a': cfg.apply_bytes = strtoull(optarg, NULL, 0); break;
    case 'd': cfg.tmpbase = optarg; break;
    case 'q': cfg.quiet = 1; break;
    default: usage();
    }
  }
  if (!cfg.chans || !cfg.per_call || !cfg.producers ||
      (!cfg.limit_bytes && !cfg.limit_ms))
    usage();

  const char *b = cfg.tmpbase ? cfg.tmpbase : getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/lmq-soak-XXXXXX", b && *b ? b : "/var/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  lmq_env_options opt = LMQ_ENV_OPTIONS_INIT;
  opt.sync = cfg.sync;
  opt.map_size = (uint64_t)cfg.map_mib << 20;
  opt.retention_bytes = cfg.limit_bytes;
  opt.retention_ms = cfg.limit_ms;
  if (cfg.max_unapplied)
    opt.max_unapplied = cfg.max_unapplied;
  if (cfg.apply_bytes)
    opt.apply_bytes = cfg.apply_bytes;
  if (cfg.chans > opt.max_channels)
    opt.max_channels = cfg.chans;
  if (lmq_env_open(&env, dir, &opt)) {
    fprintf(stderr, "open: %s\n", lmq_errmsg());
    return 1;
  }
  names = calloc(cfg.chans, sizeof *names);
  for (unsigned i = 0; i < cfg.chans; i++) {
    names[i] = malloc(32);
    snprintf(names[i], 32, "soak-%u", i);
    if (lmq_channel_create(env, names[i])) {
      fprintf(stderr, "create: %s\n", lmq_errmsg());
      return 1;
    }
  }
  sample idle = take(dir);

  pthread_t *th = calloc(cfg.producers, sizeof *th);
  double t0 = now_s();
  for (unsigned i = 0; i < cfg.producers; i++)
    pthread_create(&th[i], NULL, producer, (void *)(uintptr_t)i);

  sample max = {0}, rest = {0};
  uint64_t last = 0, msgs_total = 0;
  double end = t0 + cfg.secs, stop_at = end + cfg.rest;
  if (!cfg.quiet)
    printf("%6s %10s %9s %9s %9s %9s %9s\n", "t(s)", "msg/s", "dir MiB",
           "kept MiB", "WAL MiB", "unappl", "anon MiB");
  for (double next = t0 + 1; next <= stop_at + 0.001; next += 1) {
    double d = next - now_s();
    if (d > 0)
      usleep((useconds_t)(d * 1e6));
    if (next > end && !atomic_load(&stop_flag)) {
      atomic_store(&stop_flag, 1);
      for (unsigned i = 0; i < cfg.producers; i++)
        pthread_join(th[i], NULL);
      msgs_total = atomic_load(&produced);
    }
    uint64_t p = atomic_load(&produced);
    sample s = take(dir);
    if (next <= end + 0.001) {
      if (s.dir > max.dir) max.dir = s.dir;
      if (s.retained > max.retained) max.retained = s.retained;
      if (s.wal > max.wal) max.wal = s.wal;
      if (s.unapplied > max.unapplied) max.unapplied = s.unapplied;
      if (s.anon > max.anon) max.anon = s.anon;
    }
    rest = s;
    if (!cfg.quiet)
      printf("%6.0f %10lu %9.1f %9.1f %9.1f %9.1f %9.1f\n", next - t0,
             (unsigned long)(p - last), s.dir / MIB, s.retained / MIB,
             s.wal / MIB, s.unapplied / MIB, s.anon / MIB);
    last = p;
    fflush(stdout);
  }
  /* Retention by age drops whole seconds: the limit on what is kept is the
   * byte rate times the age. */
  double rate_bps = (double)msgs_total * cfg.size / cfg.secs;
  double limit = cfg.limit_bytes ? (double)cfg.limit_bytes * cfg.chans
                                 : rate_bps * (double)cfg.limit_ms / 1000.0;
  printf("soak: %u ch, %u x %u B per call, %u producer(s), %s, %.0f s: "
         "%.0f msg/s, %.1f MiB/s\n",
         cfg.chans, cfg.per_call, cfg.size, cfg.producers,
         cfg.sync == LMQ_SYNC_ALWAYS ? "ALWAYS"
         : cfg.sync == LMQ_SYNC_INTERVAL ? "INTERVAL" : "NONE",
         cfg.secs, msgs_total / cfg.secs, rate_bps / MIB);
  printf("limit: %s %.1f MiB in all%s\n",
         cfg.limit_bytes ? "bytes" : "age (rate x age)", limit / MIB,
         cfg.limit_ms && cfg.limit_bytes ? " (and an age limit)" : "");
  printf("max retained %.1f MiB (%.2f x limit); max dir %.1f MiB; max WAL "
         "%.1f MiB; max unapplied %.1f MiB\n",
         max.retained / MIB, max.retained / limit, max.dir / MIB,
         max.wal / MIB, max.unapplied / MIB);
  printf("RssAnon: idle %.1f MiB, peak %.1f MiB, %.0f s after the load "
         "%.1f MiB; dir at rest %.1f MiB\n",
         idle.anon / MIB, max.anon / MIB, cfg.rest, rest.anon / MIB,
         rest.dir / MIB);
  lmq_env_close(env);
  for (unsigned i = 0; i < cfg.chans; i++)
    free(names[i]);
  free(names);
  free(th);
  nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
