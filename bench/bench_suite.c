/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * bench_suite - lmq's engine and the RocksMQ-layout RocksDB store side by
 * side, with the machine's own limits measured in the same run.
 *
 *   bench_suite [-q] [-r RUNS] [-s SECONDS] [-d TMPDIR] [-o RESULTS_DIR]
 *
 *   -q   quick mode (about a minute: short runs, smaller fills)
 *   -n   only the NATS rows (built with libnats; starts its own nats-server
 *        processes: 1 node, then a 3-node cluster with R3 streams)
 *   -r   runs per figure (default 3 quick, 5 full; at least 3)
 *   -s   seconds per throughput run (default 0.3 quick, 2 full)
 *   -d   where the fresh data directories go (default $TMPDIR or /var/tmp)
 *   -o   where suite-<time>.{txt,csv,json} and latest.dat go
 *        (default bench/results next to this binary's working directory)
 *   -m   run only the measures whose name contains this string (the
 *        machine limits are always measured; the NATS rows run only when
 *        it names them)
 *
 * Every run happens in a forked child with a fresh data directory, so the
 * parent can read the child's peak RSS and CPU time from wait4(); the child
 * reports its own /proc/self/io write_bytes delta (bytes it caused to be
 * written to the device) and the data directory's size after close. Each
 * figure is the median of the runs, with min-max.
 */
#define _GNU_SOURCE
#include "lmq.h"
#include "rss_anon.h"
#include "stream/rocksmq.h"
#ifdef BENCH_WITH_STREAM
#include "lmq_stream.h"
#include "lmq_msg.pb-c.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- settings */

static int quick;
static int runs;
static double secs;
static const char *tmpbase;
static long consume_total;  /* messages filled for the consume runs */
static double lat_secs;     /* latency run length */
static double lat_rate = 2000; /* msg/s, open loop; lowered on slow disks */
static int can_drop_caches;
static const char *only; /* -m */
#ifdef BENCH_WITH_NATS
static const char *nats_url;            /* servers of the NATS rows */
static const char *nats_replicas = "1"; /* their streams' replicas */
static int nats_only;                   /* -n: only the NATS rows */
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "bench_suite: %s: %s\n", what, detail);
  exit(1);
}

/* ------------------------------------------------------------- files */

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)st, (void)f, (void)w;
  return remove(p);
}

static char *fresh_dir(void) {
  const char *b = tmpbase ? tmpbase : getenv("TMPDIR");
  char *p = malloc(4096);
  snprintf(p, 4096, "%s/lmq-suite-XXXXXX", b && *b ? b : "/var/tmp");
  if (!p || !mkdtemp(p))
    die("mkdtemp", strerror(errno));
  return p;
}

/* A new empty file in a fresh directory *dir (drop_dir it), for the raw
 * disk limits: its descriptor, opened with flags | O_CREAT | O_TRUNC. */
static int scratch_file(char **dir, int flags) {
  *dir = fresh_dir();
  char path[4200];
  snprintf(path, sizeof path, "%s/f", *dir);
  return open(path, flags | O_CREAT | O_TRUNC, 0644);
}

static uint64_t du_total;
static int du_cb(const char *p, const struct stat *st, int f, struct FTW *w) {
  (void)p, (void)w;
  if (f == FTW_F)
    du_total += (uint64_t)st->st_blocks * 512;
  return 0;
}

static uint64_t dir_bytes(const char *d) {
  du_total = 0;
  nftw(d, du_cb, 16, FTW_PHYS);
  return du_total;
}

static void drop_dir(char *p) {
  nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(p);
}

/* Bytes this process caused to be written to storage so far. */
static uint64_t io_write_bytes(void) {
  FILE *f = fopen("/proc/self/io", "r");
  char line[128];
  uint64_t v = 0;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "write_bytes: %llu", (unsigned long long *)&v) == 1)
      break;
  if (f)
    fclose(f);
  return v;
}

/* Write back dirty pages and drop the page cache (needs root); 0 if done. */
static int drop_caches(void) {
  sync();
  int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd < 0)
    return -1;
  int ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok ? 0 : -1;
}

/* ------------------------------------------------------------- backends */

typedef void (*msg_fn)(const void *data, size_t len, void *arg);

typedef struct backend {
  const char *name;
  void *(*open)(const char *dir, int sync);
  /* settle: apply/checkpoint (lmq) or flush memtables (RocksDB) first, so
   * both leave their data at rest in their main structure. */
  void (*close)(void *h, int settle);
  void (*create)(void *h, const char *ch);
  void (*group)(void *h, const char *ch, const char *g);
  void (*produce)(void *h, const char *ch, const lmq_buf *b, size_t n, int sync);
  /* Consume up to max; calls each (if not NULL) per message; returns n. */
  int (*consume)(void *h, const char *ch, const char *g, size_t max, int timeout,
                 msg_fn each, void *arg);
  const char *stream_name; /* the stream factory's backend name */
  /* Optional channel handles (lmq_channel); NULL: produce by name. */
  void *(*chan_open)(void *h, const char *ch);
  void (*chan_produce)(void *c, const lmq_buf *b, size_t n, int sync);
  void (*chan_close)(void *c);
} backend;

static void lchk(int rc, const char *what) {
  if (rc < 0) {
    char d[600];
    snprintf(d, sizeof d, "%s (%s)", lmq_strerror(rc), lmq_errmsg());
    die(what, d);
  }
}

/* Set by the memory-ceiling row (in its child) before it opens: lmq's
 * memory_limit; RocksDB runs with its defaults beside it. */
static uint64_t l_memory_limit;

static void *l_open(const char *dir, int sync) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = sync;
  o.map_size = (uint64_t)8 << 30;
  if (l_memory_limit) {
    o.memory_limit = l_memory_limit;
    o.max_message_size = (uint32_t)(l_memory_limit / 16);
  }
  lmq_env *env;
  lchk(lmq_env_open(&env, dir, &o), "lmq open");
  return env;
}
static void l_close(void *h, int settle) {
  if (settle)
    lchk(lmq_env_checkpoint(h), "lmq checkpoint");
  lmq_env_close(h);
}
static void l_create(void *h, const char *ch) { lchk(lmq_channel_create(h, ch), "lmq create"); }
static void l_group(void *h, const char *ch, const char *g) {
  lchk(lmq_group_create(h, ch, g, LMQ_START_EARLIEST), "lmq group");
}
static void l_produce(void *h, const char *ch, const lmq_buf *b, size_t n, int sync) {
  lchk(lmq_produce(h, ch, b, n, NULL, sync), "lmq produce");
}
static void *l_chan_open(void *h, const char *ch) {
  lmq_channel *c = NULL;
  lchk(lmq_channel_open(&c, h, ch), "lmq channel open");
  return c;
}
static void l_chan_produce(void *c, const lmq_buf *b, size_t n, int sync) {
  lchk(lmq_channel_produce(c, b, n, NULL, sync), "lmq channel produce");
}
static void l_chan_close(void *c) { lmq_channel_close(c); }
static int l_consume(void *h, const char *ch, const char *g, size_t max, int timeout,
                     msg_fn each, void *arg) {
  lmq_msgs *m = NULL;
  int n = lmq_consume(&m, h, ch, g, max, timeout);
  lchk(n, "lmq consume");
  if (each)
    for (int i = 0; i < n; i++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)i);
      each(x->data, x->len, arg);
    }
  lmq_msgs_free(m);
  return n;
}

static void rchk(int rc, const char *what) {
  if (rc < 0) {
    char d[600];
    snprintf(d, sizeof d, "%s (%s)", lmq_strerror(rc), lmq__rmq_errmsg());
    die(what, d);
  }
}
static void *r_open(const char *dir, int sync) {
  lmq_rmq *r;
  rchk(lmq__rmq_open(&r, dir, sync), "rocksdb open");
  return r;
}
static void r_close(void *h, int settle) {
  if (settle)
    rchk(lmq__rmq_flush(h), "rocksdb flush");
  lmq__rmq_close(h);
}
static void r_create(void *h, const char *ch) {
  rchk(lmq__rmq_channel_create(h, ch), "rocksdb create");
}
static void r_group(void *h, const char *ch, const char *g) {
  rchk(lmq__rmq_group_create(h, ch, g, LMQ_START_EARLIEST), "rocksdb group");
}
static void r_produce(void *h, const char *ch, const lmq_buf *b, size_t n, int sync) {
  rchk(lmq__rmq_produce(h, ch, b, n, NULL, sync), "rocksdb produce");
}
static int r_consume(void *h, const char *ch, const char *g, size_t max, int timeout,
                     msg_fn each, void *arg) {
  lmq_rmq_msgs *m = NULL;
  int n = lmq__rmq_consume(&m, h, ch, g, max, timeout);
  rchk(n, "rocksdb consume");
  if (each)
    for (size_t i = 0; i < m->n; i++)
      each(m->msgs[i].data, m->msgs[i].len, arg);
  lmq__rmq_msgs_free(m);
  return n;
}

static const backend backends[2] = {
    {"lmq", l_open, l_close, l_create, l_group, l_produce, l_consume, "engine",
     l_chan_open, l_chan_produce, l_chan_close},
    {"rocksdb", r_open, r_close, r_create, r_group, r_produce, r_consume, "rocksdb",
     NULL, NULL, NULL},
};

/* ------------------------------------------------------------- results */

typedef struct result {
  double v[3];      /* the figure(s) */
  uint64_t wbytes;  /* device bytes written, open to close */
  uint64_t payload; /* payload bytes produced (0: not a produce figure) */
  uint64_t dir;     /* data directory bytes after close */
  double anon_mb;   /* peak private memory (RssAnon), sampled every 10 ms */
  double rss_mb, cpu_s; /* filled in by the parent */
} result;

typedef struct mdef mdef;
typedef void (*measure_fn)(const backend *b, const mdef *m, result *r);

struct mdef {
  const char *name;
  const char *unit;
  const char *bound; /* which machine limit bounds it (or "cpu") */
  measure_fn fn;
  int a, b;          /* parameters */
  int nv;            /* figures per run (latency: 3) */
  const char *vnames[3];
};

/* ------------------------------------------------------------- machine */

#define OVERWRITE_FILE ((off_t)16 << 20)
/* Writes of m->a bytes (0: 4 KiB), one pwrite each, followed by an
 * fdatasync unless m->b == 1 (then the clock is read every 1000 writes):
 * ops/s. They append, or with m->b == 2 overwrite a 16 MiB file written
 * and synced beforehand page by page (what lmq's WAL does in a recycled
 * or zero-filled segment: no size or extent change to journal). */
static void m_append(const backend *bk, const mdef *m, result *r) {
  (void)bk;
  char *d;
  int fd = scratch_file(&d, O_WRONLY);
  size_t sz = m->a ? (size_t)m->a : 4096;
  int sync = m->b != 1, per = sync ? 1 : 1000, over = m->b == 2;
  char *buf = calloc(1, sz > 4096 ? sz : 4096);
  if (fd < 0 || !buf)
    die("append limit", fd < 0 ? strerror(errno) : "out of memory");
  for (off_t o = 0; over && o < OVERWRITE_FILE; o += 4096)
    if (pwrite(fd, buf, 4096, o) != 4096)
      die("overwrite limit", strerror(errno));
  if (over && fdatasync(fd))
    die("overwrite limit", strerror(errno));
  memset(buf, 'f', sz);
  long n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < per; i++, n++) {
      off_t at = (off_t)n * (off_t)sz;
      if (over)
        at %= OVERWRITE_FILE - (off_t)sz;
      if (pwrite(fd, buf, sz, at) != (ssize_t)sz || (sync && fdatasync(fd)))
        die("append limit", strerror(errno));
    }
  } while ((t = now_s() - t0) < secs);
  close(fd);
  free(buf);
  drop_dir(d);
  r->v[0] = (double)n / t;
}

static int cmp_dbl(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* p99 of one 4 KiB append + fdatasync, in microseconds: the floor the
 * produce -> consume latency of a synced produce is compared with. */
static void m_fsync_p99(const backend *bk, const mdef *m, result *r) {
  (void)bk, (void)m;
  char *d;
  int fd = scratch_file(&d, O_WRONLY);
  char buf[4096];
  memset(buf, 'f', sizeof buf);
  size_t cap = 1 << 20, n = 0;
  double *lat = malloc(cap * sizeof *lat);
  if (!lat)
    die("fsync p99", "out of memory");
  double t0 = now_s();
  while (n < cap && now_s() - t0 < secs) {
    double a = now_s();
    if (pwrite(fd, buf, sizeof buf, (off_t)n * 4096) != 4096 || fdatasync(fd))
      die("fsync p99", strerror(errno));
    lat[n++] = (now_s() - a) * 1e6;
  }
  close(fd);
  drop_dir(d);
  qsort(lat, n, sizeof *lat, cmp_dbl);
  r->v[0] = n ? lat[(n * 99) / 100] : NAN;
  free(lat);
}

static void m_seqwrite(const backend *bk, const mdef *m, result *r) {
  (void)bk, (void)m;
  char *d;
  int fd = scratch_file(&d, O_WRONLY);
  size_t mib = 1 << 20;
  char *buf = malloc(mib);
  memset(buf, 's', mib);
  long n = 0;
  double t0 = now_s(), t;
  do {
    if (write(fd, buf, mib) != (ssize_t)mib || fdatasync(fd))
      die("seqwrite limit", strerror(errno));
    n++;
  } while ((t = now_s() - t0) < secs || n < 16);
  close(fd);
  free(buf);
  drop_dir(d);
  r->v[0] = (double)n * (double)mib / 1e6 / t;
}

/* Cold sequential read of 128 MiB (after dropping the page cache). */
static void m_seqread(const backend *bk, const mdef *m, result *r) {
  (void)bk, (void)m;
  char *d;
  int fd = scratch_file(&d, O_RDWR);
  size_t mib = 1 << 20, total = quick ? 64 : 256;
  char *buf = malloc(mib);
  memset(buf, 'r', mib);
  for (size_t i = 0; i < total; i++)
    if (write(fd, buf, mib) != (ssize_t)mib)
      die("seqread limit", strerror(errno));
  fdatasync(fd);
  drop_caches();
  lseek(fd, 0, SEEK_SET);
  double t0 = now_s();
  ssize_t k;
  size_t got = 0;
  while ((k = read(fd, buf, mib)) > 0)
    got += (size_t)k;
  double t = now_s() - t0;
  close(fd);
  free(buf);
  drop_dir(d);
  r->v[0] = (double)got / 1e6 / t;
}

static void m_memcpy(const backend *bk, const mdef *m, result *r) {
  (void)bk, (void)m;
  size_t sz = 64 << 20;
  char *a = malloc(sz), *b = malloc(sz);
  memset(a, 1, sz);
  memset(b, 2, sz);
  long n = 0;
  double t0 = now_s(), t;
  do {
    memcpy(n & 1 ? a : b, n & 1 ? b : a, sz);
    n++;
  } while ((t = now_s() - t0) < secs / 2 || n < 4);
  volatile char sink = a[sz / 2] + b[sz / 3];
  (void)sink;
  free(a);
  free(b);
  r->v[0] = (double)n * (double)sz / 1e9 / t;
}

/* ------------------------------------------------------------- produce */

/* Batched produce of a.b-byte... : m->a = message size, m->b = channels.
 * Calls carry 1000 messages of 100 B, or 1 MiB of larger messages. */
static void m_batched(const backend *bk, const mdef *m, result *r) {
  char *d = fresh_dir();
  uint64_t w0 = io_write_bytes();
  void *h = bk->open(d, LMQ_SYNC_ALWAYS);
  size_t sz = (size_t)m->a, per = sz <= 100 ? 1000 : (1u << 20) / sz;
  int nch = m->b;
  char name[32];
  for (int c = 0; c < nch; c++) {
    snprintf(name, sizeof name, "ch%d", c);
    bk->create(h, name);
  }
  char *payload = malloc(sz);
  memset(payload, 'p', sz);
  lmq_buf *v = malloc(per * sizeof *v);
  for (size_t i = 0; i < per; i++)
    v[i] = (lmq_buf){payload, sz};
  long n = 0;
  double t0 = now_s(), t;
  do {
    snprintf(name, sizeof name, "ch%ld", n % nch);
    bk->produce(h, name, v, per, LMQ_SYNC_ALWAYS);
    n++;
  } while ((t = now_s() - t0) < secs);
  bk->close(h, 1);
  r->wbytes = io_write_bytes() - w0;
  r->payload = (uint64_t)n * per * sz;
  r->dir = dir_bytes(d);
  drop_dir(d);
  double msgs = (double)n * (double)per;
  r->v[0] = sz <= 100 ? msgs / t : msgs * (double)sz / 1e6 / t;
  free(payload);
  free(v);
}

typedef struct pargs {
  const backend *bk;
  void *h;
  atomic_int *stop;
  long count;
  int sync;
  int per;     /* messages per call (0: 1) */
  int handles; /* produce through a channel handle when the backend has them */
  int nch;     /* channels c0..c<nch-1> in turn (0: the one channel "c") */
  int id;
} pargs;

static void *single_producer(void *arg) {
  pargs *a = arg;
  char payload[100];
  memset(payload, 's', sizeof payload);
  int per = a->per ? a->per : 1;
  lmq_buf *b = malloc((size_t)per * sizeof *b);
  for (int i = 0; i < per; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  void *ch = a->handles && a->bk->chan_open ? a->bk->chan_open(a->h, "c") : NULL;
  char name[16];
  for (unsigned i = (unsigned)a->id * 7; !atomic_load(a->stop); i++) {
    if (a->nch) {
      snprintf(name, sizeof name, "c%u", i % (unsigned)a->nch);
      a->bk->produce(a->h, name, b, (size_t)per, a->sync);
    } else if (ch)
      a->bk->chan_produce(ch, b, (size_t)per, a->sync);
    else
      a->bk->produce(a->h, "c", b, (size_t)per, a->sync);
    a->count += per;
  }
  if (ch)
    a->bk->chan_close(ch);
  free(b);
  return NULL;
}

static void run_producers(const backend *bk, const mdef *m, result *r, int sync,
                          int per, int handles, int nch);

/* m->a threads, m->b sync policy, one 100-byte message per call. */
static void m_single(const backend *bk, const mdef *m, result *r) {
  run_producers(bk, m, r, m->b, 1, 0, 0);
}

/* The same through channel handles (lmq_channel_produce). */
static void m_single_handle(const backend *bk, const mdef *m, result *r) {
  run_producers(bk, m, r, m->b, 1, 1, 0);
}

/* m->a threads, each sending batches of m->b 100-byte messages, ALWAYS:
 * group commit across batches. */
static void m_multi_batch(const backend *bk, const mdef *m, result *r) {
  run_producers(bk, m, r, LMQ_SYNC_ALWAYS, m->b, 1, 0);
}

/* The memory ceiling: m->a threads producing single 100-byte messages with
 * sync NONE over m->b channels as fast as they can (faster than lmq's
 * applier), lmq under a 16 MiB memory_limit. The figure to read is the
 * private memory column. */
static void m_ceiling(const backend *bk, const mdef *m, result *r) {
  l_memory_limit = (uint64_t)16 << 20;
  run_producers(bk, m, r, LMQ_SYNC_NONE, 1, 0, m->b);
}

static void run_producers(const backend *bk, const mdef *m, result *r, int sync,
                          int per, int handles, int nch) {
  char *d = fresh_dir();
  uint64_t w0 = io_write_bytes();
  void *h = bk->open(d, sync);
  if (nch) {
    char name[16];
    for (int i = 0; i < nch; i++) {
      snprintf(name, sizeof name, "c%d", i);
      bk->create(h, name);
    }
  } else {
    bk->create(h, "c");
  }
  atomic_int stop = 0;
  pthread_t th[64];
  pargs a[64];
  int threads = m->a;
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    a[i] = (pargs){bk, h, &stop, 0, sync, per, handles, nch, i};
    pthread_create(&th[i], NULL, single_producer, &a[i]);
  }
  struct timespec ts = {(time_t)secs, (long)((secs - (double)(long)secs) * 1e9)};
  nanosleep(&ts, NULL);
  atomic_store(&stop, 1);
  long total = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    total += a[i].count;
  }
  double t = now_s() - t0;
  bk->close(h, 1);
  r->wbytes = io_write_bytes() - w0;
  r->payload = (uint64_t)total * 100;
  r->dir = dir_bytes(d);
  drop_dir(d);
  r->v[0] = (double)total / t;
  (void)m;
}

/* ------------------------------------------------------------- consume */

/* Fill consume_total 100-byte messages (sync NONE), settle, then consume
 * them all in calls of 1000. m->a: 1 = cold (close, drop the page cache if
 * permitted, reopen), 0 = hot (same handle, everything cached). */
static void m_consume(const backend *bk, const mdef *m, result *r) {
  char *d = fresh_dir();
  void *h = bk->open(d, LMQ_SYNC_NONE);
  bk->create(h, "c");
  bk->group(h, "c", "g");
  static char payload[100];
  static lmq_buf b[1000];
  for (int i = 0; i < 1000; i++)
    b[i] = (lmq_buf){payload, sizeof payload};
  for (long i = 0; i < consume_total / 1000; i++)
    bk->produce(h, "c", b, 1000, LMQ_SYNC_NONE);
  bk->close(h, 1);
  if (m->a && can_drop_caches)
    drop_caches();
  h = bk->open(d, LMQ_SYNC_NONE);
  if (!m->a) { /* warm every page once, untimed */
    bk->group(h, "c", "warm");
    while (bk->consume(h, "c", "warm", 1000, 0, NULL, NULL) > 0)
      ;
  }
  long got = 0;
  double t0 = now_s();
  int n;
  while (got < consume_total && (n = bk->consume(h, "c", "g", 1000, 0, NULL, NULL)) > 0)
    got += n;
  double t = now_s() - t0;
  if (got != consume_total)
    die("consume", "did not get every message back");
  bk->close(h, 0);
  r->dir = dir_bytes(d);
  drop_dir(d);
  r->v[0] = (double)got / t;
}

/* ------------------------------------------------------------- latency */

/* Log-bucketed histogram (HdrHistogram's idea): 32 sub-buckets per power
 * of two, so every recorded value is kept within about 3%. */
#define SUB_BITS 5
#define NBUCKETS (64 << SUB_BITS)
typedef struct hist {
  uint64_t count[NBUCKETS];
  uint64_t total;
} hist;

static unsigned hist_index(uint64_t v) {
  if (v < (1u << SUB_BITS))
    return (unsigned)v;
  unsigned msb = 63u - (unsigned)__builtin_clzll(v);
  unsigned shift = msb - SUB_BITS;
  return ((shift + 1) << SUB_BITS) + (unsigned)((v >> shift) & ((1u << SUB_BITS) - 1));
}

/* The middle of bucket i. */
static double hist_value(unsigned i) {
  if (i < (1u << SUB_BITS))
    return i;
  unsigned shift = (i >> SUB_BITS) - 1;
  uint64_t lo = ((uint64_t)((1u << SUB_BITS) | (i & ((1u << SUB_BITS) - 1)))) << shift;
  return (double)lo + (double)((uint64_t)1 << shift) / 2;
}

static double hist_pct(const hist *h, double p) {
  uint64_t want = (uint64_t)ceil(p / 100 * (double)h->total), seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++)
    if ((seen += h->count[i]) >= want && h->count[i])
      return hist_value(i);
  return 0;
}

static void hist_add(hist *h, uint64_t v) {
  h->count[hist_index(v)]++;
  h->total++;
}

/* The open loops' pacing: sleep until due (CLOCK_MONOTONIC, ns). */
static void sleep_until(uint64_t due) {
  struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
}

typedef struct lat_ctx {
  const backend *bk;
  void *h;
  long sent; /* set by the producer when done */
  atomic_int done;
  hist *hist;
  long got;
} lat_ctx;

static void lat_record(const void *data, size_t len, void *arg) {
  lat_ctx *c = arg;
  uint64_t sched;
  if (len < sizeof sched)
    return;
  memcpy(&sched, data, sizeof sched);
  uint64_t now = now_ns();
  hist_add(c->hist, now > sched ? now - sched : 0);
  c->got++;
}

static void *lat_consumer(void *arg) {
  lat_ctx *c = arg;
  for (;;) {
    c->bk->consume(c->h, "c", "g", 1000, 100, lat_record, c);
    if (atomic_load(&c->done) && c->got >= c->sent)
      break;
  }
  return NULL;
}

/* Open loop: message i is due at t0 + i/rate and carries that time; the
 * latency counts from when it was due, so a stalled producer is charged for
 * the wait it causes (no coordinated omission). */
static void m_latency(const backend *bk, const mdef *m, result *r) {
  (void)m;
  char *d = fresh_dir();
  void *h = bk->open(d, LMQ_SYNC_ALWAYS);
  bk->create(h, "c");
  bk->group(h, "c", "g");
  hist *hg = calloc(1, sizeof *hg);
  lat_ctx c = {bk, h, 0, 0, hg, 0};
  pthread_t th;
  pthread_create(&th, NULL, lat_consumer, &c);
  char payload[100];
  memset(payload, 'l', sizeof payload);
  lmq_buf b = {payload, sizeof payload};
  long total = (long)(lat_secs * lat_rate);
  uint64_t t0 = now_ns() + 1000000, step = (uint64_t)(1e9 / lat_rate);
  for (long i = 0; i < total; i++) {
    uint64_t due = t0 + (uint64_t)i * step;
    sleep_until(due);
    memcpy(payload, &due, sizeof due);
    bk->produce(h, "c", &b, 1, LMQ_SYNC_ALWAYS);
  }
  c.sent = total;
  atomic_store(&c.done, 1);
  pthread_join(th, NULL);
  bk->close(h, 0);
  r->dir = dir_bytes(d);
  drop_dir(d);
  r->v[0] = hist_pct(hg, 50) / 1e3;
  r->v[1] = hist_pct(hg, 99) / 1e3;
  r->v[2] = hist_pct(hg, 99.9) / 1e3;
  free(hg);
}

/* ------------------------------------------------------------- TtMsgStream */

#ifdef BENCH_WITH_STREAM
/*
 * HOOK (issue 5, item 6): TtMsgStream over 16 channels through the stream
 * factory, backend "engine" or "rocksdb", sync NONE. A producer sends
 * 1-row Inserts routed by the default repack, 1000 per call, each call
 * followed by a broadcast TimeTick; a TtMsgStream consumes every pack.
 * Built only when the stream layer is present (BENCH_WITH_STREAM).
 * bench/bench_ttstream.c is the stream layer's own, richer benchmark.
 */
static lmq_tsmsg *tt_insert(uint32_t key, size_t rows) {
  Lmqpb__InsertRequest *b = calloc(1, sizeof *b);
  lmqpb__insert_request__init(b);
  b->collection_name = strdup("bench");
  b->shard_name = strdup("");
  b->db_name = strdup("");
  b->partition_name = strdup("");
  b->num_rows = rows;
  b->n_row_ids = b->n_timestamps = b->n_hash_values = rows;
  b->row_ids = calloc(rows, sizeof *b->row_ids);
  b->timestamps = calloc(rows, sizeof *b->timestamps);
  b->hash_values = malloc(rows * sizeof *b->hash_values);
  for (size_t i = 0; i < rows; i++) {
    b->row_ids[i] = (int64_t)i;
    b->hash_values[i] = key; /* one route: the Insert stays whole */
  }
  lmq_tsmsg *m = NULL;
  lchk(lmq_tsmsg_create(&m, LMQ_MSG_INSERT, b, lmq_msg_body_free_proto), "tsmsg");
  lchk(lmq_tsmsg_set_hash_keys(m, &key, 1), "hash keys");
  return m;
}

typedef struct tt_arg {
  lmq_msgstream *p;
  size_t rounds, every, rows;
} tt_arg;

static void *tt_producer(void *arg) {
  tt_arg *a = arg;
  lmq_msg_pack *pk = NULL, *tk = NULL;
  lchk(lmq_msg_pack_create(&pk), "pack");
  lchk(lmq_msg_pack_create(&tk), "pack");
  for (size_t i = 0; i < a->every; i++)
    lchk(lmq_msg_pack_append(pk, tt_insert((uint32_t)i, a->rows)), "append");
  lmq_tsmsg *tick = NULL;
  lchk(lmq_tsmsg_new_time_tick(&tick, 0, 0, 1), "tick");
  lchk(lmq_msg_pack_append(tk, tick), "append");
  int64_t id = 1;
  for (size_t r = 0; r < a->rounds; r++) {
    uint64_t base = (uint64_t)r * a->every;
    for (size_t i = 0; i < a->every; i++) {
      lmq_tsmsg_set_id(pk->msgs[i], id++);
      lmq_tsmsg_set_timestamp(pk->msgs[i], base + 1 + i);
    }
    lchk(lmq_msgstream_produce(a->p, pk), "stream produce");
    lmq_tsmsg_set_id(tick, -(int64_t)r - 1);
    lmq_tsmsg_set_timestamp(tick, base + a->every);
    lchk(lmq_msgstream_broadcast(NULL, NULL, a->p, tk), "broadcast");
  }
  lmq_msg_pack_destroy(pk);
  lmq_msg_pack_destroy(tk);
  return NULL;
}

static void m_ttstream(const backend *bk, const mdef *m, result *r) {
  char *d = fresh_dir();
  size_t nch = (size_t)m->a, every = 1000, rounds = quick ? 50 : 300;
  lmq_stream_factory *f = NULL;
  lchk(lmq_stream_factory_create(&f), "factory");
  lchk(lmq_stream_factory_set(f, "backend", bk->stream_name), "factory backend");
  lchk(lmq_stream_factory_set(f, "engine.dir", d), "factory dir");
  lchk(lmq_stream_factory_set(f, "engine.sync", "none"), "factory sync");
  lchk(lmq_stream_factory_set(f, "receive_buffer", "4096"), "factory rbuf");
  char names[64][32];
  const char *pn[64];
  for (size_t i = 0; i < nch && i < 64; i++) {
    snprintf(names[i], sizeof names[i], "tt-%zu", i);
    pn[i] = names[i];
  }
#ifdef BENCH_WITH_NATS
  if (!strcmp(bk->stream_name, "nats")) {
    /* The servers outlive a run: fresh channels per run. */
    lchk(lmq_stream_factory_set(f, "nats.url", nats_url), "factory nats.url");
    lchk(lmq_stream_factory_set(f, "nats.replicas", nats_replicas), "factory replicas");
    for (size_t i = 0; i < nch && i < 64; i++)
      snprintf(names[i], sizeof names[i], "tt%d-%zu", (int)getpid(), i);
  }
#endif
  lmq_msgstream *p = NULL, *c = NULL;
  lchk(lmq_msgstream_create(&p, f), "producer");
  lchk(lmq_msgstream_as_producer(p, pn, nch), "as_producer");
  lchk(lmq_ttmsgstream_create(&c, f), "ttstream");
  lchk(lmq_msgstream_as_consumer(c, pn, nch, "suite", LMQ_SUB_EARLIEST), "as_consumer");
  tt_arg a = {p, rounds, every, m->b > 0 ? (size_t)m->b : 1};
  pthread_t th;
  double t0 = now_s();
  pthread_create(&th, NULL, tt_producer, &a);
  size_t got = 0;
  for (size_t i = 0; i < rounds; i++) {
    lmq_msg_pack *k = NULL;
    lchk(lmq_msgstream_consume(&k, c, 30000), "stream consume");
    got += k->nmsgs;
    lmq_msg_pack_destroy(k);
  }
  double t = now_s() - t0;
  pthread_join(th, NULL);
  if (got != rounds * every)
    die("ttstream", "packs did not hold every message");
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
  lmq_stream_factory_destroy(f);
  r->dir = dir_bytes(d);
  drop_dir(d);
  r->v[0] = (double)got / t;
}
#endif


/* ------------------------------------------------------------- driver */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Private memory (bench/rss_anon.h), in MB. */
static double anon_mb_now(void) { return (double)bench_rss_anon() / (1024 * 1024); }

typedef struct sampler {
  atomic_int stop;
  double peak;
} sampler;

static void *anon_sampler(void *arg) {
  sampler *s = arg;
  while (!atomic_load(&s->stop)) {
    double v = anon_mb_now();
    if (v > s->peak)
      s->peak = v;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

/* Run one measurement in a child; the parent adds rusage. */
static result run_child(const backend *bk, const mdef *m) {
  int p[2];
  if (pipe(p))
    die("pipe", strerror(errno));
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    die("fork", strerror(errno));
  if (pid == 0) {
    close(p[0]);
    result r;
    memset(&r, 0, sizeof r);
    sampler smp = {0, 0};
    pthread_t st;
    int sampling = pthread_create(&st, NULL, anon_sampler, &smp) == 0;
    m->fn(bk, m, &r);
    if (sampling) {
      atomic_store(&smp.stop, 1);
      pthread_join(st, NULL);
    }
    double last = anon_mb_now();
    r.anon_mb = smp.peak > last ? smp.peak : last;
    if (write(p[1], &r, sizeof r) != (ssize_t)sizeof r)
      _exit(3);
    _exit(0);
  }
  close(p[1]);
  result r;
  memset(&r, 0, sizeof r);
  ssize_t k = read(p[0], &r, sizeof r);
  close(p[0]);
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) || k != sizeof r) {
    fprintf(stderr, "bench_suite: %s/%s failed\n", bk ? bk->name : "machine", m->name);
    exit(1);
  }
  r.rss_mb = (double)ru.ru_maxrss / 1024;
  r.cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
            (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return r;
}

typedef struct stat3 {
  double med, min, max;
} stat3;

static stat3 summarize(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return (stat3){v[n / 2], v[0], v[n - 1]};
}

/* The summary of one measurement on one backend. */
typedef struct summary {
  stat3 v[3];
  double rss_mb, cpu_s, wamp, dir_mb, anon_mb; /* medians */
  int have;
} summary;

static summary measure(const backend *bk, const mdef *m) {
  double v[3][99], rss[99], cpu[99], wa[99], dir[99], anon[99];
  for (int i = 0; i < runs; i++) {
    result r = run_child(bk, m);
    for (int j = 0; j < m->nv; j++)
      v[j][i] = r.v[j];
    rss[i] = r.rss_mb;
    anon[i] = r.anon_mb;
    cpu[i] = r.cpu_s;
    wa[i] = r.payload ? (double)r.wbytes / (double)r.payload : NAN;
    dir[i] = (double)r.dir / 1e6;
  }
  summary s;
  memset(&s, 0, sizeof s);
  for (int j = 0; j < m->nv; j++)
    s.v[j] = summarize(v[j], runs);
  s.rss_mb = summarize(rss, runs).med;
  s.anon_mb = summarize(anon, runs).med;
  s.cpu_s = summarize(cpu, runs).med;
  s.wamp = summarize(wa, runs).med;
  s.dir_mb = summarize(dir, runs).med;
  s.have = 1;
  return s;
}

/* One call of 1000 x 100 B is one WAL record of 1000 x (1 + 100) B (a
 * one-byte varint length each) plus a ~40-byte header: the append its
 * synced produce cannot beat. */
#define BATCH_REC_BYTES (1000 * (1 + 100) + 40)
/* One 100-byte message is one WAL record of 1 + 100 bytes plus its header
 * (~40 bytes with a short channel name): the append a NONE produce makes
 * before it returns. */
#define SINGLE_REC_BYTES (1 + 100 + 40)
/*
 * The latency row's disk without lmq or RocksDB: at the same open-loop rate
 * (set from the fdatasync rate before this runs), one single-message WAL
 * record's append + fdatasync per message, timed from when it was due as
 * that row times a message. Its p99.9 (us) is what this disk gives a
 * perfect synced log at that rate.
 */
static void m_open_loop_p999(const backend *bk, const mdef *m, result *r) {
  (void)bk, (void)m;
  char *d;
  int fd = scratch_file(&d, O_WRONLY);
  char buf[SINGLE_REC_BYTES];
  memset(buf, 'w', sizeof buf);
  hist *hg = calloc(1, sizeof *hg);
  if (fd < 0 || !hg)
    die("open loop limit", fd < 0 ? strerror(errno) : "out of memory");
  long total = (long)(lat_secs * lat_rate);
  uint64_t t0 = now_ns() + 1000000, step = (uint64_t)(1e9 / lat_rate);
  for (long i = 0; i < total; i++) {
    uint64_t due = t0 + (uint64_t)i * step;
    sleep_until(due);
    if (pwrite(fd, buf, sizeof buf, (off_t)i * (off_t)sizeof buf) != (ssize_t)sizeof buf ||
        fdatasync(fd))
      die("open loop limit", strerror(errno));
    uint64_t now = now_ns();
    hist_add(hg, now > due ? now - due : 0);
  }
  close(fd);
  drop_dir(d);
  r->v[0] = hist_pct(hg, 99.9) / 1e3;
  free(hg);
}

enum { L_FSYNC, L_FSYNC_OVER, L_FSYNC_100K, L_FSYNC_P99, L_PWRITE, L_SEQW, L_SEQR,
       L_MEMCPY, L_OPEN_P999, L_N };
static const mdef limits[L_N] = {
    {"fdatasync_4KiB_append", "ops/s", "", m_append, 0, 0, 1, {""}},
    /* Not a bound of any row (those keep the append rate, the fsync rate
     * a user measures first); shown for what overwriting gives. */
    {"fdatasync_4KiB_overwrite", "ops/s", "", m_append, 0, 2, 1, {""}},
    {"fdatasync_100KiB_append", "ops/s", "", m_append, BATCH_REC_BYTES, 0, 1, {""}},
    {"fdatasync_4KiB_p99", "us", "", m_fsync_p99, 0, 0, 1, {""}},
    {"pwrite_141B_append", "ops/s", "", m_append, SINGLE_REC_BYTES, 1, 1, {""}},
    {"seq_write_1MiB_per_sync", "MB/s", "", m_seqwrite, 0, 0, 1, {""}},
    {"seq_read_cold", "MB/s", "", m_seqread, 0, 0, 1, {""}},
    {"memcpy_64MiB", "GB/s", "", m_memcpy, 0, 0, 1, {""}},
    /* Not a bound of the latency row (the target is 2 x fdatasync p99): the
     * p99.9 the disk itself gives at that row's rate, for comparison. */
    {"wal_141B_open_loop_p99.9", "us", "", m_open_loop_p999, 0, 0, 1, {""}},
};

static const mdef measures[] = {
    {"batch_100B_x1000_1ch_always", "msg/s", "fsync", m_batched, 100, 1, 1, {""}},
    {"batch_100B_x1000_256ch_always", "msg/s", "fsync", m_batched, 100, 256, 1, {""}},
    {"single_100B_1thread_always", "msg/s", "fsync", m_single, 1, LMQ_SYNC_ALWAYS, 1, {""}},
    {"single_100B_32threads_always", "msg/s", "32fsync", m_single, 32, LMQ_SYNC_ALWAYS, 1,
     {""}},
    {"single_100B_1thread_none", "msg/s", "pwrite", m_single, 1, LMQ_SYNC_NONE, 1, {""}},
    {"single_100B_1thread_none_handle", "msg/s", "pwrite", m_single_handle, 1,
     LMQ_SYNC_NONE, 1, {""}},
    {"batch_100B_x1000_4threads_always", "msg/s", "4000fsync", m_multi_batch, 4, 1000,
     1, {""}},
    {"batch_1KiB_always", "MB/s", "seqw", m_batched, 1024, 1, 1, {""}},
    {"batch_64KiB_always", "MB/s", "seqw", m_batched, 65536, 1, 1, {""}},
    {"consume_hot_100B", "msg/s", "memcpy", m_consume, 0, 0, 1, {""}},
    {"consume_cold_100B", "msg/s", "seqr", m_consume, 1, 0, 1, {""}},
    {"latency_open_loop_always", "us", "fsync_lat", m_latency, 0, 0, 3,
     {"p50", "p99", "p99.9"}},
    {"ceiling_100B_256ch_2threads_none", "msg/s", "cpu", m_ceiling, 2, 256, 1, {""}},
#ifdef BENCH_WITH_STREAM
    {"ttstream_16ch_none", "msg/s", "cpu", m_ttstream, 16, 1, 1, {""}},
    {"ttstream_16ch_10row_none", "msg/s", "cpu", m_ttstream, 16, 10, 1, {""}},
#endif
};
#define NMEASURES (sizeof measures / sizeof *measures)

/* The machine limit a figure is bound by, in the figure's unit, or NAN. */
static double bound_of(const mdef *m, const double *lim, const char **label) {
  *label = "-";
  if (!strcmp(m->bound, "fsync")) {
    if (m->fn == m_batched) {
      *label = "1000 x fsync100K/s";
      return 1000 * lim[L_FSYNC_100K];
    }
    *label = "fsync/s";
    return lim[L_FSYNC];
  }
  if (!strcmp(m->bound, "4000fsync")) {
    *label = "4000 x fsync/s";
    return 4000 * lim[L_FSYNC];
  }
  if (!strcmp(m->bound, "32fsync")) {
    *label = "32 x fsync/s";
    return 32 * lim[L_FSYNC];
  }
  if (!strcmp(m->bound, "pwrite")) {
    /* A NONE produce returns once its record is in the kernel: one pwrite
     * per call (docs/engine.md); a bare loop of them is the ceiling. */
    *label = "pwrite/s";
    return lim[L_PWRITE];
  }
  if (!strcmp(m->bound, "seqw")) {
    *label = "seq write";
    return lim[L_SEQW];
  }
  if (!strcmp(m->bound, "seqr")) {
    *label = can_drop_caches ? "cold seq read / 100 B" : "seq read / 100 B";
    return lim[L_SEQR] * 1e6 / 100;
  }
  if (!strcmp(m->bound, "memcpy")) {
    *label = "memcpy / 100 B";
    return lim[L_MEMCPY] * 1e9 / 100;
  }
  if (!strcmp(m->bound, "fsync_lat")) {
    /* Issue 5's target: p99 latency <= 2 x the fdatasync p99, i.e. this
     * ratio >= 0.5 on the p99 row. */
    *label = "fdatasync p99";
    return lim[L_FSYNC_P99];
  }
  *label = "cpu";
  return NAN;
}

/* 1234567 -> "1.23M", 45678 -> "45.7k", 12.3 -> "12.3". */
static const char *human(char *buf, size_t n, double v) {
  if (isnan(v))
    snprintf(buf, n, "-");
  else if (fabs(v) >= 1e6)
    snprintf(buf, n, "%.2fM", v / 1e6);
  else if (fabs(v) >= 1e4)
    snprintf(buf, n, "%.1fk", v / 1e3);
  else if (fabs(v) >= 100)
    snprintf(buf, n, "%.0f", v);
  else
    snprintf(buf, n, "%.3g", v);
  return buf;
}

static void json_num(FILE *f, double v) {
  if (isnan(v) || isinf(v))
    fputs("null", f);
  else
    fprintf(f, "%.6g", v);
}

#ifdef BENCH_WITH_NATS
/* ------------------------------------------------------------- NATS
 * The NATS rows (issue 13): nats-server processes started here (1 node,
 * or 3 nodes with R3 streams), and on each, side by side in one run:
 *   raw       libnats js_PublishAsync of 100 B messages to a stream of the
 *             same settings lmq creates (file storage, replicas), then
 *             js_PublishAsyncComplete: the server's async publish rate;
 *   produce   lmq_msgstream_produce of 1-row Inserts in calls of 1000 on
 *             backend "nats" (one channel);
 *   ttstream  the TtMsgStream workload above (16 channels) on "nats".
 * nats-server 2.9.10 acknowledges a publish before any fsync (it syncs its
 * files every two minutes and cannot be told to sync each write): compare
 * these rows with lmq's NONE/INTERVAL rows, not with ALWAYS.
 */
#include "nats_servers.h"
#include <nats/nats.h>

static void m_nats_raw(const backend *bk, const mdef *m, result *r) {
  (void)bk;
  (void)m;
  size_t n = quick ? 100000 : 400000;
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  char urls[256];
  const char *sv[3];
  int nsv = 0;
  snprintf(urls, sizeof urls, "%s", nats_url);
  for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && nsv < 3;
       u = strtok_r(NULL, ",", &save))
    sv[nsv++] = u;
  if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetServers(o, sv, nsv) != NATS_OK ||
      natsConnection_Connect(&nc, o) != NATS_OK)
    die("nats raw", "connect");
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 65536;
  jo.PublishAsync.StallWait = 10000; /* wait for room, do not fail */
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK)
    die("nats raw", "jetstream");
  char name[32], subj[40];
  snprintf(name, sizeof name, "raw%d", (int)getpid());
  snprintf(subj, sizeof subj, "raw.%d", (int)getpid());
  const char *subjects[1] = {subj};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name;
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = atoi(nats_replicas);
  jsStreamInfo *si = NULL;
  if (js_AddStream(&si, js, &cfg, NULL, NULL) != NATS_OK)
    die("nats raw", "add stream");
  jsStreamInfo_Destroy(si);
  char payload[100];
  memset(payload, 'x', sizeof payload);
  double t0 = now_s();
  for (size_t i = 0; i < n; i++)
    if (js_PublishAsync(js, subj, payload, (int)sizeof payload, NULL) != NATS_OK)
      die("nats raw publish", nats_GetLastError(NULL));
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60000;
  if (js_PublishAsyncComplete(js, &po) != NATS_OK)
    die("nats raw", "acknowledgements");
  r->v[0] = (double)n / (now_s() - t0);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
}

static void m_nats_produce(const backend *bk, const mdef *m, result *r) {
  (void)bk;
  (void)m;
  size_t calls = quick ? 100 : 400, every = 1000;
  lmq_stream_factory *f = NULL;
  lchk(lmq_stream_factory_create(&f), "factory");
  lchk(lmq_stream_factory_set(f, "backend", "nats"), "factory backend");
  lchk(lmq_stream_factory_set(f, "nats.url", nats_url), "factory nats.url");
  lchk(lmq_stream_factory_set(f, "nats.replicas", nats_replicas), "factory replicas");
  char ch[32];
  snprintf(ch, sizeof ch, "p%d", (int)getpid());
  const char *pn[1] = {ch};
  lmq_msgstream *p = NULL;
  lchk(lmq_msgstream_create(&p, f), "producer");
  lchk(lmq_msgstream_as_producer(p, pn, 1), "as_producer");
  lmq_msg_pack *pk = NULL;
  lchk(lmq_msg_pack_create(&pk), "pack");
  for (size_t i = 0; i < every; i++)
    lchk(lmq_msg_pack_append(pk, tt_insert((uint32_t)i, 1)), "append");
  int64_t id = 1;
  double t0 = now_s();
  for (size_t c = 0; c < calls; c++) {
    for (size_t i = 0; i < every; i++) {
      lmq_tsmsg_set_id(pk->msgs[i], id++);
      lmq_tsmsg_set_timestamp(pk->msgs[i], (uint64_t)id);
    }
    lchk(lmq_msgstream_produce(p, pk), "stream produce");
  }
  r->v[0] = (double)(calls * every) / (now_s() - t0);
  lmq_msg_pack_destroy(pk);
  lmq_msgstream_close(p);
  lmq_stream_factory_destroy(f);
}

static const backend nats_bk = {"nats", NULL, NULL, NULL, NULL, NULL, NULL, "nats",
                                NULL, NULL, NULL};
static const mdef nats_measures[] = {
    {"nats_raw_publish_async_100B", "msg/s", "cpu", m_nats_raw, 0, 0, 1, {""}},
    {"nats_msgstream_produce_x1000", "msg/s", "cpu", m_nats_produce, 0, 0, 1, {""}},
    {"ttstream_16ch_none", "msg/s", "cpu", m_ttstream, 16, 0, 1, {""}},
};
#define NNATS (sizeof nats_measures / sizeof *nats_measures)

/* The servers running now: a failed run exits the suite (run_child), and
 * their stores must not stay behind. */
static bns_set *nats_live;
static void nats_live_stop(void) {
  if (nats_live)
    bns_stop(nats_live);
}

/* Print the NATS rows (1 node R1, 3 nodes R3) to stdout and txt. */
static void nats_rows(FILE *txt) {
  summary s[2][NNATS];
  int ok[2] = {0, 0};
  static bns_set set;
  atexit(nats_live_stop);
  for (int t = 0; t < 2; t++) {
    if (bns_start(&set, t ? 3 : 1))
      continue;
    nats_live = &set;
    nats_url = set.urls;
    nats_replicas = t ? "3" : "1";
    for (size_t i = 0; i < NNATS; i++)
      s[t][i] = measure(&nats_bk, &nats_measures[i]);
    bns_stop(&set);
    nats_live = NULL;
    ok[t] = 1;
  }
  char line[512];
  snprintf(line, sizeof line,
           "\nNATS JetStream rows (nats-server 2.9.10, file storage; fsync: none per "
           "write, the server syncs every 2 min; R3: acknowledged once 2 of 3 nodes "
           "have it in memory). Compare with lmq NONE/INTERVAL rows.\n%-36s %-5s %25s "
           "%25s\n",
           "measure", "unit", "nats 1 node R1", "nats 3 nodes R3");
  fputs(line, stdout);
  fputs(line, txt);
  for (size_t i = 0; i < NNATS; i++) {
    char a[64] = "not run", b[64] = "not run", h1[16], h2[16], h3[16];
    if (ok[0])
      snprintf(a, sizeof a, "%s [%s-%s]", human(h1, 16, s[0][i].v[0].med),
               human(h2, 16, s[0][i].v[0].min), human(h3, 16, s[0][i].v[0].max));
    if (ok[1])
      snprintf(b, sizeof b, "%s [%s-%s]", human(h1, 16, s[1][i].v[0].med),
               human(h2, 16, s[1][i].v[0].min), human(h3, 16, s[1][i].v[0].max));
    snprintf(line, sizeof line, "%-36s %-5s %25s %25s\n", nats_measures[i].name,
             nats_measures[i].unit, a, b);
    fputs(line, stdout);
    fputs(line, txt);
  }
  snprintf(line, sizeof line, "%-36s %-5s %25.2f %25.2f\n", "msgstream_produce/raw_publish",
           "ratio", ok[0] ? s[0][1].v[0].med / s[0][0].v[0].med : NAN,
           ok[1] ? s[1][1].v[0].med / s[1][0].v[0].med : NAN);
  fputs(line, stdout);
  fputs(line, txt);
  fflush(stdout);
}
#endif

int main(int argc, char **argv) {
  const char *outdir = "bench/results";
  int opt;
  while ((opt = getopt(argc, argv, "qnr:s:d:o:m:")) != -1) {
    switch (opt) {
#ifdef BENCH_WITH_NATS
    case 'n': nats_only = 1; break;
#endif
    case 'q': quick = 1; break;
    case 'r': runs = atoi(optarg); break;
    case 's': secs = atof(optarg); break;
    case 'd': tmpbase = optarg; break;
    case 'o': outdir = optarg; break;
    case 'm': only = optarg; break;
    default:
      fprintf(stderr, "usage: bench_suite [-q] [-n] [-r RUNS] [-s SECONDS] [-d TMPDIR] "
                      "[-o RESULTS_DIR] [-m MEASURE]\n");
      return 2;
    }
  }
  if (!runs)
    runs = quick ? 3 : 5;
  if (runs < 3 || runs > 99)
    die("-r", "runs must be 3..99");
  if (secs <= 0)
    secs = quick ? 0.3 : 2;
  consume_total = quick ? 200000 : 2000000;
  lat_secs = quick ? 1.5 : 10;
  can_drop_caches = drop_caches() == 0;

  time_t wall = time(NULL);
  char stamp[32], path[4096];
  strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", gmtime(&wall));
  mkdir(outdir, 0755);
  snprintf(path, sizeof path, "%s/suite-%s.txt", outdir, stamp);
  FILE *txt = fopen(path, "w");
  snprintf(path, sizeof path, "%s/suite-%s.csv", outdir, stamp);
  FILE *csv = fopen(path, "w");
  snprintf(path, sizeof path, "%s/suite-%s.json", outdir, stamp);
  FILE *js = fopen(path, "w");
  snprintf(path, sizeof path, "%s/latest.dat", outdir);
  FILE *dat = fopen(path, "w");
  if (!txt || !csv || !js || !dat)
    die(outdir, "cannot write results there (use -o)");

  char hdr[512];
  snprintf(hdr, sizeof hdr,
           "lmq vs RocksDB (RocksMQ layout), %s mode, %d runs per figure (median "
           "[min-max]), %.1f s per throughput run, page cache drop %s\n",
           quick ? "quick" : "full", runs, secs,
           can_drop_caches ? "permitted" : "NOT permitted (cold = reopened)");
  fputs(hdr, stdout);
  fputs(hdr, txt);

#ifdef BENCH_WITH_NATS
  if (nats_only) { /* -n: the NATS rows alone */
    nats_rows(txt);
    fputs("{}\n", js);
    fclose(txt);
    fclose(csv);
    fclose(js);
    fclose(dat);
    return 0;
  }
#endif
  /* Machine limits first. */
  double lim[L_N];
  summary ls[L_N];
  fprintf(csv, "measure,figure,backend,unit,median,min,max,runs,peak_rss_mb,cpu_s,"
               "device_bytes_per_payload_byte,dir_mb,bound,fraction_of_bound,"
               "private_rss_mb\n");
  fprintf(js, "{\"mode\":\"%s\",\"runs\":%d,\"seconds\":%g,\"time\":\"%s\","
              "\"drop_caches\":%s,\"limits\":[",
          quick ? "quick" : "full", runs, secs, stamp, can_drop_caches ? "true" : "false");
  for (int i = 0; i < L_N; i++) {
    if (i == L_OPEN_P999) {
      /* One producer doing synced single-message produces cannot keep up
       * with a rate above the fdatasync rate; the open loop would then only
       * measure an ever-growing queue. Keep the rate at or below half the
       * fsync rate (this limit runs at the latency row's rate). */
      if (lat_rate > lim[L_FSYNC] / 2) {
        lat_rate = floor(lim[L_FSYNC] / 2 / 50) * 50;
        if (lat_rate < 50)
          lat_rate = 50;
      }
    }
    ls[i] = measure(NULL, &limits[i]);
    lim[i] = ls[i].v[0].med;
    char line[256];
    snprintf(line, sizeof line, "  limit %-26s %12.1f %-6s [%.1f-%.1f]\n", limits[i].name,
             lim[i], limits[i].unit, ls[i].v[0].min, ls[i].v[0].max);
    fputs(line, stdout);
    fputs(line, txt);
    fflush(stdout);
    fprintf(csv, "%s,,machine,%s,%.6g,%.6g,%.6g,%d,,,,,,,\n", limits[i].name,
            limits[i].unit, lim[i], ls[i].v[0].min, ls[i].v[0].max, runs);
    fprintf(js, "%s{\"name\":\"%s\",\"unit\":\"%s\",\"median\":%.6g,\"min\":%.6g,"
                "\"max\":%.6g}",
            i ? "," : "", limits[i].name, limits[i].unit, lim[i], ls[i].v[0].min,
            ls[i].v[0].max);
  }
  snprintf(hdr, sizeof hdr, "  latency runs at %.0f msg/s (2000 unless the fdatasync "
                            "rate is below 4000/s)\n", lat_rate);
  fputs(hdr, stdout);
  fputs(hdr, txt);
  fprintf(js, "],\"latency_rate\":%.0f,\"measures\":[", lat_rate);
  snprintf(hdr, sizeof hdr,
           "\n%-36s %-5s %25s %25s %7s %20s %6s | %11s %11s %11s %11s %11s\n", "measure",
           "unit", "lmq", "rocksdb", "lmq/rdb", "lmq/bound (bound)", "rdb/bd",
           "RSS MB l/r", "priv MB l/r", "CPU s l/r", "wr/B l/r", "dir MB l/r");
  fputs(hdr, stdout);
  fputs(hdr, txt);
  fprintf(dat, "# measure unit lmq_med lmq_min lmq_max rdb_med rdb_min rdb_max\n");
  int first_js = 1;
  for (size_t i = 0; i < NMEASURES; i++) {
    const mdef *m = &measures[i];
    if (only && !strstr(m->name, only))
      continue;
    summary s[2];
    for (int b = 0; b < 2; b++)
      s[b] = measure(&backends[b], m);
    const char *blabel;
    double bound = bound_of(m, lim, &blabel);
    int lower_better = !strcmp(m->unit, "us");
    for (int j = 0; j < m->nv; j++) {
      char nm[96], a[64], b[64], frac[64], rfrac[16];
      snprintf(nm, sizeof nm, "%s%s%s", m->name, m->nv > 1 ? " " : "", m->vnames[j]);
      char h1[16], h2[16], h3[16];
      snprintf(a, sizeof a, "%s [%s-%s]", human(h1, 16, s[0].v[j].med),
               human(h2, 16, s[0].v[j].min), human(h3, 16, s[0].v[j].max));
      snprintf(b, sizeof b, "%s [%s-%s]", human(h1, 16, s[1].v[j].med),
               human(h2, 16, s[1].v[j].min), human(h3, 16, s[1].v[j].max));
      /* For latency the bound is a floor: report floor / figure. */
      double fl = lower_better ? bound / s[0].v[j].med : s[0].v[j].med / bound;
      double fr = lower_better ? bound / s[1].v[j].med : s[1].v[j].med / bound;
      if (isnan(bound)) {
        snprintf(frac, sizeof frac, "- (%s)", blabel);
        snprintf(rfrac, sizeof rfrac, "-");
      } else {
        snprintf(frac, sizeof frac, "%.2f (%s)", fl, blabel);
        snprintf(rfrac, sizeof rfrac, "%.2f", fr);
      }
      char line[512], r1[24], r2[24], r3[24], r4[24], r5[24];
      snprintf(r1, sizeof r1, "%.0f/%.0f", s[0].rss_mb, s[1].rss_mb);
      snprintf(r5, sizeof r5, "%.0f/%.0f", s[0].anon_mb, s[1].anon_mb);
      snprintf(r2, sizeof r2, "%.1f/%.1f", s[0].cpu_s, s[1].cpu_s);
      if (isnan(s[0].wamp))
        snprintf(r3, sizeof r3, "-");
      else
        snprintf(r3, sizeof r3, "%.2f/%.2f", s[0].wamp, s[1].wamp);
      snprintf(r4, sizeof r4, "%.0f/%.0f", s[0].dir_mb, s[1].dir_mb);
      snprintf(line, sizeof line,
               "%-36s %-5s %25s %25s %7.3g %20s %6s | %11s %11s %11s %11s %11s\n",
               nm, m->unit, a, b, s[0].v[j].med / s[1].v[j].med, frac, rfrac,
               j ? "" : r1, j ? "" : r5, j ? "" : r2, j ? "" : r3, j ? "" : r4);
      fputs(line, stdout);
      fputs(line, txt);
      fflush(stdout);
      for (int k = 0; k < 2; k++) {
        double fb = k ? fr : fl;
        fprintf(csv, "%s,%s,%s,%s,%.6g,%.6g,%.6g,%d,%.1f,%.2f,", m->name, m->vnames[j],
                backends[k].name, m->unit, s[k].v[j].med, s[k].v[j].min, s[k].v[j].max,
                runs, s[k].rss_mb, s[k].cpu_s);
        if (!isnan(s[k].wamp))
          fprintf(csv, "%.3f", s[k].wamp);
        fprintf(csv, ",%.1f,%s,", s[k].dir_mb, blabel);
        if (!isnan(bound))
          fprintf(csv, "%.3f", fb);
        fprintf(csv, ",%.1f\n", s[k].anon_mb);
      }
      fprintf(js, "%s{\"name\":\"%s\",\"figure\":\"%s\",\"unit\":\"%s\",\"bound\":\"%s\","
                  "\"ratio_lmq_rocksdb\":",
              first_js ? "" : ",", m->name, m->vnames[j], m->unit, blabel);
      first_js = 0;
      json_num(js, s[0].v[j].med / s[1].v[j].med);
      for (int k = 0; k < 2; k++) {
        fprintf(js, ",\"%s\":{\"median\":%.6g,\"min\":%.6g,\"max\":%.6g,"
                    "\"peak_rss_mb\":%.1f,\"private_rss_mb\":%.1f,\"cpu_s\":%.2f,"
                    "\"dir_mb\":%.1f,\"device_bytes_per_payload_byte\":",
                backends[k].name, s[k].v[j].med, s[k].v[j].min, s[k].v[j].max,
                s[k].rss_mb, s[k].anon_mb, s[k].cpu_s, s[k].dir_mb);
        json_num(js, s[k].wamp);
        fputs(",\"fraction_of_bound\":", js);
        json_num(js, isnan(bound) ? NAN : (k ? fr : fl));
        fputc('}', js);
      }
      fputc('}', js);
      fprintf(dat, "\"%s\" \"%s\" %.6g %.6g %.6g %.6g %.6g %.6g\n", nm, m->unit,
              s[0].v[j].med, s[0].v[j].min, s[0].v[j].max, s[1].v[j].med, s[1].v[j].min,
              s[1].v[j].max);
    }
  }
#ifndef BENCH_WITH_STREAM
  fputs("ttstream_16ch_none: not built (the stream layer is not merged)\n", stdout);
#endif
#ifdef BENCH_WITH_NATS
  if (!only || strstr(only, "nats")) /* -m picks lmq/RocksDB rows alone */
    nats_rows(txt);
#endif
  const char *legend =
      "\nlmq/rdb: lmq's median over RocksDB's (latency: lower is better). "
      "lmq/bound: the fraction of the machine limit the figure is bound by\n"
      "(latency: fdatasync p99 / the figure; >= 0.5 meets p99 <= 2x fsync p99). wr/B: device bytes written per payload "
      "byte, open to close (both settle at close).\n"
      "RSS: peak RSS (with mapped files); priv: peak private memory (RssAnon, sampled every 10 ms). ceiling_*: lmq under "
      "memory_limit = 16 MiB, RocksDB with its defaults.\n";
  fputs(legend, stdout);
  fputs(legend, txt);
  fputs("]}\n", js);
  fclose(txt);
  fclose(csv);
  fclose(js);
  fclose(dat);
  printf("results: %s/suite-%s.{txt,csv,json}, %s/latest.dat\n", outdir, stamp, outdir);
  return 0;
}
