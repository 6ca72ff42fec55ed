/*
 * Private memory under sustained load: bounded by max_unapplied (plus a
 * few applies' worth of LMDB pages) whatever the produce rate, and given
 * back a little after the load stops. RssAnon is the process's private
 * resident memory: the mapped LMDB file is not in it.
 */
#include "util.h"
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static uint64_t rss_anon(void) {
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert(f);
  char line[256];
  unsigned long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %lu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb << 10;
}

typedef struct load {
  lmq_env *env;
  int id;
  atomic_int *stop;
  uint64_t n, failed;
  uint64_t max_result; /* consumer: largest result's payload bytes */
  unsigned nch;        /* channels c0.. in turn (0: NCHANS) */
} load;

#define NCHANS 16

/* Single 1 KiB NONE produces over the channels as fast as they go. */
static void *produce_loop(void *arg) {
  load *l = arg;
  static const char payload[1024];
  lmq_buf b = {payload, sizeof payload};
  char ch[16];
  unsigned nch = l->nch ? l->nch : NCHANS;
  for (unsigned i = 0; !atomic_load(l->stop); i++) {
    snprintf(ch, sizeof ch, "c%u", (i * 7 + (unsigned)l->id) % nch);
    if (lmq_produce(l->env, ch, &b, 1, NULL, LMQ_SYNC_NONE) == 0)
      l->n++;
    else
      l->failed++;
  }
  return NULL;
}

Test(memory, private_memory_is_bounded_under_load_and_given_back, .timeout = 60) {
#ifdef SANITIZED
  cr_skip_test("a sanitizer's allocator keeps freed memory on purpose");
#endif
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.retention_bytes = 1 << 20; /* keep the directory small */
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  char ch[16];
  for (int i = 0; i < NCHANS; i++) {
    snprintf(ch, sizeof ch, "c%d", i);
    cr_assert_eq(lmq_channel_create(env, ch), 0);
  }
  uint64_t base = rss_anon(), peak = base;
  atomic_int stop = 0;
  load l[2] = {{env, 0, &stop, 0, 0, 0, 0}, {env, 1, &stop, 0, 0, 0, 0}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, produce_loop, &l[i]);
  uint64_t end = now_ms() + 3000;
  while (now_ms() < end) {
    uint64_t r = rss_anon();
    if (r > peak)
      peak = r;
    usleep(20000);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  uint64_t msgs = l[0].n + l[1].n;
  cr_assert_gt(msgs, 50000u, "produced only %llu messages: too slow to mean much",
               (unsigned long long)msgs);
  /* The documented bound (docs/engine.md, "Memory"): the unapplied records
   * (max_unapplied, and as much again in heap fragmentation between the
   * producers' and the applier's arenas), LMDB's dirty pages of an apply or
   * retention pass (a few apply_bytes), a few recycled chunks and fixed
   * costs. It does not
   * depend on the rate: the old defaults let it reach 568 MiB. */
  uint64_t bound = 2 * o.max_unapplied + 3 * o.apply_bytes + (8 << 20);
  /* ...and the defaults keep it small (a small host's budget). */
  if (bound > (uint64_t)48 << 20)
    bound = (uint64_t)48 << 20;
  cr_assert_leq(peak - base, bound, "private memory grew by %llu MiB under load "
                "(bound %llu MiB, %llu messages)",
                (unsigned long long)((peak - base) >> 20),
                (unsigned long long)(bound >> 20), (unsigned long long)msgs);
  /* Given back: once the applier has been idle a second, what the load used
   * goes back to the OS (it used to stay at the peak). What stays is LMDB's
   * page cache of one transaction (it keeps freed dirty pages for reuse). */
  uint64_t rest = 0, rest_bound = 3 * o.apply_bytes + (8 << 20);
  uint64_t until = now_ms() + 5000;
  do {
    usleep(200000);
    uint64_t r = rss_anon();
    rest = r > base ? r - base : 0;
  } while (rest > rest_bound && now_ms() < until);
  cr_assert_leq(rest, rest_bound, "private memory still %llu MiB above idle "
                "5 s after the load (peak %llu MiB above)",
                (unsigned long long)(rest >> 20),
                (unsigned long long)((peak - base) >> 20));
  cr_log_info("%llu messages; private memory +%llu KiB at the peak, +%llu KiB "
              "at rest", (unsigned long long)msgs,
              (unsigned long long)((peak - base) >> 10),
              (unsigned long long)(rest >> 10));
  lmq_env_close(env);
  tmpdir_rm(dir);
}

/* ---- memory_limit -------------------------------------------------- */

#define LIM_CHANS 256

/* Reads as much as it may (max 1M messages a call), keeping the previous
 * result until the next one is in: a consumer that holds memory. */
static void *lim_consume(void *arg) {
  load *l = arg;
  char ch[16];
  lmq_msgs *prev = NULL;
  for (unsigned i = 0; !atomic_load(l->stop); i++) {
    snprintf(ch, sizeof ch, "c%u", i % LIM_CHANS);
    lmq_msgs *m;
    int n = lmq_consume(&m, l->env, ch, "g", 1u << 20, 0);
    if (n < 0) {
      l->failed++;
      continue;
    }
    uint64_t bytes = 0;
    for (int j = 0; j < n; j++)
      bytes += lmq_msgs_at(m, (size_t)j)->len;
    if (bytes > l->max_result)
      l->max_result = bytes;
    l->n += (uint64_t)n;
    lmq_msgs_free(prev);
    prev = m;
  }
  lmq_msgs_free(prev);
  return NULL;
}

Test(memory, memory_limit_is_a_ceiling_under_load, .timeout = 60) {
#ifdef SANITIZED
  cr_skip_test("a sanitizer's allocator keeps freed memory on purpose");
#endif
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.memory_limit = (uint64_t)16 << 20;
  o.max_message_size = 64 << 10;
  o.retention_bytes = 256 << 10; /* keep the directory small */
  o.max_channels = 2 * LIM_CHANS;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  char ch[16];
  for (int i = 0; i < LIM_CHANS; i++) {
    snprintf(ch, sizeof ch, "c%d", i);
    cr_assert_eq(lmq_channel_create(env, ch), 0);
    cr_assert_eq(lmq_group_create(env, ch, "g", 0), 0);
  }
  /* Two rounds of load (threads come and go, LMDB's page cache and the
   * allocator's arenas are reused), measured from before the first. */
  uint64_t base = rss_anon(), peak = base, msgs = 0, consumed = 0;
  uint64_t max_result = 0, max_unapplied = 0, max_read = 0, warm = 0;
  for (int round = 0; round < 2; round++) {
    atomic_int stop = 0;
    load l[3] = {{env, 0, &stop, 0, 0, 0, LIM_CHANS}, {env, 1, &stop, 0, 0, 0, LIM_CHANS},
                 {env, 2, &stop, 0, 0, 0, LIM_CHANS}};
    pthread_t t[3];
    pthread_create(&t[0], NULL, produce_loop, &l[0]);
    pthread_create(&t[1], NULL, produce_loop, &l[1]);
    pthread_create(&t[2], NULL, lim_consume, &l[2]);
    uint64_t end = now_ms() + (round ? 4000 : 1000);
    while (now_ms() < end) {
      uint64_t r = rss_anon();
      if (r > peak)
        peak = r;
      lmq_env_info in = LMQ_ENV_INFO_INIT;
      cr_assert_eq(lmq_env_info_get(&in, env), 0);
      if (in.unapplied_memory > max_unapplied)
        max_unapplied = in.unapplied_memory;
      if (in.read_memory > max_read)
        max_read = in.read_memory;
      usleep(10000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++)
      pthread_join(t[i], NULL);
    cr_assert_eq(l[0].failed + l[1].failed + l[2].failed, 0,
                 "a call failed under the limit: %s", lmq_errmsg());
    if (round == 0) {
      warm = peak - base;
      continue;
    }
    msgs = l[0].n + l[1].n;
    consumed = l[2].n;
    max_result = l[2].max_result;
  }
  cr_assert_gt(msgs, 20000u, "produced only %llu messages",
               (unsigned long long)msgs);
  /* A read result holds at most the read share (L/8) plus one message. */
  cr_assert_leq(max_result, o.memory_limit / 8 + 1024,
                "a consume returned %llu bytes under a %llu-byte limit",
                (unsigned long long)max_result,
                (unsigned long long)o.memory_limit);
  cr_assert_leq(peak - base, o.memory_limit,
                "private memory grew by %llu KiB under a %llu KiB memory_limit "
                "(%llu produced, %llu consumed)",
                (unsigned long long)((peak - base) >> 10),
                (unsigned long long)(o.memory_limit >> 10),
                (unsigned long long)msgs, (unsigned long long)consumed);
  cr_log_info("memory_limit 16 MiB: %llu produced, %llu consumed (2nd round), "
              "private memory +%llu KiB at the peak (+%llu KiB in the 1st "
              "round); unapplied up to %llu KiB, reads held up to %llu KiB, "
              "largest read %llu B",
              (unsigned long long)msgs, (unsigned long long)consumed,
              (unsigned long long)((peak - base) >> 10),
              (unsigned long long)(warm >> 10),
              (unsigned long long)(max_unapplied >> 10),
              (unsigned long long)(max_read >> 10),
              (unsigned long long)max_result);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

Test(memory, memory_limit_makes_reads_smaller_never_fails) {
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.sync = LMQ_SYNC_NONE;
  o.memory_limit = (uint64_t)4 << 20; /* read share 512 KiB */
  o.max_message_size = 256 << 10;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0);
  cr_assert_eq(lmq_group_create(env, "c", "g", 0), 0);
  static unsigned char big[100 << 10];
  for (int i = 0; i < 64; i++) {
    memset(big, i, sizeof big);
    lmq_buf b = {big, sizeof big};
    cr_assert_eq(lmq_produce(env, "c", &b, 1, NULL, 0), 0, "%s", lmq_errmsg());
    if (i == 31) /* half in LMDB, half in the tail */
      cr_assert_eq(lmq_env_checkpoint(env), 0);
  }
  /* Holding every result: each read gets what the share has left, and at
   * least one message once it is used up. */
  lmq_msgs *held[64];
  size_t nheld = 0, got = 0;
  while (got < 64) {
    lmq_msgs *m;
    int n = lmq_consume(&m, env, "c", "g", 1000, 0);
    cr_assert_gt(n, 0, "consume returned %d after %zu messages: %s", n, got,
                 lmq_errmsg());
    cr_assert_leq((size_t)n * sizeof big, (512u << 10) + sizeof big,
                  "a read of %d x 100 KiB under a 512 KiB read share", n);
    for (int j = 0; j < n; j++) {
      const lmq_msg *x = lmq_msgs_at(m, (size_t)j);
      cr_assert_eq(x->len, sizeof big);
      cr_assert_eq(((const unsigned char *)x->data)[0], (unsigned char)(got + j),
                   "message %zu out of order", got + (size_t)j);
    }
    if (got >= 8)
      cr_assert_eq(n, 1, "the share is used up: one message per read");
    got += (size_t)n;
    held[nheld++] = m;
  }
  cr_assert_eq(got, 64);
  for (size_t i = 0; i < nheld; i++)
    lmq_msgs_free(held[i]);
  /* Freed: reads are large again. */
  cr_assert_eq(lmq_seek_earliest(env, "c", "g"), 0);
  lmq_msgs *m;
  int n = lmq_consume(&m, env, "c", "g", 1000, 0);
  cr_assert_geq(n, 4, "after the results were freed a read got %d", n);
  /* A result outlives its env (documented): freeing it after the close
   * still settles the account. */
  lmq_env_close(env);
  lmq_msgs_free(m);
  tmpdir_rm(dir);
}

Test(memory, memory_limit_is_checked) {
  char *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  lmq_env *env;
  o.memory_limit = (uint64_t)32 << 20; /* < 16 x the 4 MiB default message */
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_EINVAL);
  cr_assert(strstr(lmq_errmsg(), "max_message_size"), "%s", lmq_errmsg());
  o.memory_limit = 512 << 10;
  o.max_message_size = 1024;
  cr_assert_eq(lmq_env_open(&env, dir, &o), LMQ_EINVAL);
  /* A version-2 struct (before memory_limit) still opens. */
  lmq_env_options v2 = LMQ_ENV_OPTIONS_INIT;
  v2.version = 2;
  v2.memory_limit = 1; /* beyond a v2 struct: must be ignored */
  cr_assert_eq(lmq_env_open(&env, dir, &v2), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
  /* The shares show in the env's settings. */
  o.memory_limit = (uint64_t)16 << 20;
  o.max_message_size = 1 << 20;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  lmq_env_info in = LMQ_ENV_INFO_INIT;
  cr_assert_eq(lmq_env_info_get(&in, env), 0);
  cr_assert_eq(in.max_unapplied, (uint64_t)4 << 20);
  cr_assert_eq(in.memory_limit, (uint64_t)16 << 20);
  cr_assert_eq(in.read_memory, 0);
  lmq_env_close(env);
  tmpdir_rm(dir);
}

static double cpu_secs(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* 1,000 idle channels with 2 groups each cost little memory and no CPU. */
Test(memory, idle_channels_cost_little_memory_and_no_cpu, .timeout = 60) {
#ifdef SANITIZED
  cr_skip_test("a sanitizer's allocator keeps freed memory on purpose");
#endif
  char *empty = tmpdir_new(), *dir = tmpdir_new();
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.max_channels = 2000;
  o.sync = LMQ_SYNC_NONE;
  lmq_env *env;
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  char ch[16];
  lmq_buf b = {"m", 1};
  for (int i = 0; i < 1000; i++) {
    snprintf(ch, sizeof ch, "c%d", i);
    cr_assert_eq(lmq_channel_create(env, ch), 0);
    cr_assert_eq(lmq_group_create(env, ch, "g1", 0), 0);
    cr_assert_eq(lmq_group_create(env, ch, "g2", 0), 0);
  }
  lmq_env_close(env);
  /* What an env costs with no channel (threads, LMDB), paid once. */
  cr_assert_eq(lmq_env_open(&env, empty, &o), 0, "%s", lmq_errmsg());
  uint64_t r0 = rss_anon();
  lmq_env_close(env);
  cr_assert_eq(lmq_env_open(&env, dir, &o), 0, "%s", lmq_errmsg());
  uint64_t r_open = rss_anon(), opened = r_open > r0 ? r_open - r0 : 0;
  cr_assert_leq(opened, (uint64_t)4 << 20, "opening 1,000 channels with 2 "
                "groups each added %llu KiB", (unsigned long long)(opened >> 10));
  /* Each channel used once (a produce, a consume per group), then idle. */
  for (int i = 0; i < 1000; i++) {
    snprintf(ch, sizeof ch, "c%d", i);
    cr_assert_eq(lmq_produce(env, ch, &b, 1, NULL, 0), 0);
    for (int g = 1; g <= 2; g++) {
      lmq_msgs *m;
      char gn[4] = {'g', (char)('0' + g), 0, 0};
      cr_assert_eq(lmq_consume(&m, env, ch, gn, 10, 0), 1);
      lmq_msgs_free(m);
    }
  }
  cr_assert_eq(lmq_env_checkpoint(env), 0);
  usleep(1500000); /* the applier gives memory back after 1 s idle */
  uint64_t r1 = rss_anon();
  double c0 = cpu_secs();
  usleep(2000000);
  double idle_cpu = cpu_secs() - c0;
  uint64_t added = r1 > r0 ? r1 - r0 : 0;
  cr_log_info("1,000 channels x 2 groups over an empty env: +%llu KiB "
              "private memory open, +%llu KiB used once then idle; %.1f ms of "
              "CPU in 2 s idle", (unsigned long long)(opened >> 10),
              (unsigned long long)(added >> 10), idle_cpu * 1e3);
  /* LMDB keeps the dirty pages of its largest transaction (an apply that
   * touched all 1,000 channels) for reuse: most of what remains. */
  cr_assert_leq(added, (uint64_t)8 << 20, "1,000 idle channels added %llu KiB",
                (unsigned long long)(added >> 10));
  cr_assert_leq(idle_cpu, 0.05, "an idle env used %.1f ms of CPU in 2 s",
                idle_cpu * 1e3);
  lmq_env_close(env);
  tmpdir_rm(dir);
  tmpdir_rm(empty);
}
