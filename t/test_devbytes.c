/*
 * Device bytes: what reaches the disk stays near what lmq writes. The
 * kernel counts a process's device writes in /proc/self/io (write_bytes)
 * when it dirties a cached folio, by the folio's size. Since Linux 6.x
 * (ext4 from 6.16) a file is cached in large folios sized by the write that
 * brought a range in; LMDB appends runs of pages with one writev, so without
 * src/engine/pagecache.c a later rewrite of one such page wrote a whole
 * folio of up to 256 KiB. On a kernel without large folios the test passes
 * trivially; where /proc/self/io is missing or the directory is on a
 * file system that writes nothing to a device (tmpfs) it is skipped.
 */
#include "util.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static int write_bytes(uint64_t *out) {
  FILE *f = fopen("/proc/self/io", "r");
  if (!f)
    return -1;
  char line[256];
  unsigned long long v;
  int found = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "write_bytes: %llu", &v) == 1) {
      *out = v;
      found = 0;
    }
  fclose(f);
  return found;
}

#define NCH 64

/* Fill 64 channels with large batches (LMDB appends long runs of pages),
 * then apply one small message at a time: each apply rewrites a handful of
 * pages (the channel's last leaf and its parents, the counters, the free
 * list, the meta page) and the WAL's last page. */
Test(devbytes, a_small_apply_writes_a_few_pages, .timeout = 60) {
  char *dir = tmpdir_new();
  lmq_env *env = open_env(dir, LMQ_SYNC_ALWAYS);
  char ch[16];
  for (int c = 0; c < NCH; c++) {
    snprintf(ch, sizeof ch, "c%d", c);
    cr_assert_eq(lmq_channel_create(env, ch), 0, "%s", lmq_errmsg());
  }
  static char payload[1000][100];
  lmq_buf b[1000];
  for (int i = 0; i < 1000; i++) {
    memset(payload[i], 'a' + i % 26, sizeof payload[i]);
    b[i] = (lmq_buf){payload[i], sizeof payload[i]};
  }
  for (int r = 0; r < 4; r++) {
    for (int c = 0; c < NCH; c++) {
      snprintf(ch, sizeof ch, "c%d", c);
      cr_assert_eq(lmq_produce(env, ch, b, 1000, NULL, LMQ_SYNC_ALWAYS), 0,
                   "%s", lmq_errmsg());
    }
    cr_assert_eq(lmq_env_checkpoint(env), 0, "%s", lmq_errmsg());
  }
  uint64_t w0, w1;
  if (write_bytes(&w0) != 0) {
    lmq_env_close(env);
    tmpdir_rm(dir);
    cr_skip_test("no write_bytes in /proc/self/io");
  }
  if (w0 == 0) {
    lmq_env_close(env);
    tmpdir_rm(dir);
    cr_skip_test("the test directory's writes reach no device (tmpfs?)");
  }
  const int rounds = 64;
  for (int r = 0; r < rounds; r++) {
    snprintf(ch, sizeof ch, "c%d", (r * 13) % NCH);
    cr_assert_eq(lmq_produce(env, ch, b, 1, NULL, LMQ_SYNC_ALWAYS), 0, "%s",
                 lmq_errmsg());
    cr_assert_eq(lmq_env_checkpoint(env), 0, "%s", lmq_errmsg());
  }
  cr_assert_eq(write_bytes(&w1), 0);
  double per = (double)(w1 - w0) / rounds;
  cr_log_info("%.1f KiB written per small apply", per / 1024);
  /* A checkpoint of one message writes ~18 pages here (73 KiB: the leaf
   * and its parents, counters, free list, meta page, the WAL's pages);
   * with a large folio rewritten per page it was 934 KiB. */
  cr_assert_lt(per, 192 * 1024.0, "%.1f KiB per small apply", per / 1024);
  lmq_env_close(env);
  tmpdir_rm(dir);
}
