/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * pagecache.c - keep data.mdb's pages in the page cache one 4 KiB page to a
 * folio, so rewriting one page writes one page.
 *
 * Linux (6.x, ext4 since 6.16, XFS and others earlier) caches a file in
 * large folios sized by the write that first brings a range into the
 * cache, and dirties and writes back a folio as a whole. LMDB writes a
 * commit's new pages with one writev per run of contiguous pages (up to 64),
 * so the pages it appends at the file's end land in folios of up to 256 KiB.
 * Copy-on-write later reuses those pages one at a time (freed pages are
 * recycled), and each single-page rewrite then dirtied and wrote its whole
 * folio: with 256 channels an apply touches ~256 scattered leaf pages, and
 * device bytes per payload byte were 3.55 instead of ~2.3 (bench/README.md).
 *
 * A range already in the cache keeps its folios. So before a commit may
 * append pages, the range ahead of LMDB's last page is brought into the
 * cache by readahead (POSIX_FADV_WILLNEED reads in single pages; of a
 * hole it reads nothing from the device, it zero-fills). The file is first
 * extended over that range with ftruncate (a hole: nothing is allocated or
 * written); LMDB does not depend on data.mdb's size beyond its last page.
 *
 * Called by the applier while its write transaction is open: LMDB's writer
 * lock is held, so no commit writes data.mdb meanwhile and extending the
 * file cannot race with a write beyond its end. It changes no data: a
 * failure here is ignored (it only costs device bytes), and a power loss
 * may take the new size back, which is harmless.
 */
#include "config.h"
#include "engine/engine.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_STEP ((uint64_t)128 << 10) /* one WILLNEED call's reach */

/* How far ahead of LMDB's last page the cache is prepared: four applies'
 * worth, within [4 MiB, 64 MiB]; prepared again once half of it is used. */
static uint64_t ahead_bytes(const lmq_env *env) {
  uint64_t a = env->opt.apply_bytes * 4;
  if (a < ((uint64_t)4 << 20))
    a = (uint64_t)4 << 20;
  if (a > ((uint64_t)64 << 20))
    a = (uint64_t)64 << 20;
  return a;
}

void lmq__mdb_pages_ahead(lmq_env *env) {
  MDB_envinfo ei;
  MDB_stat st;
  mdb_filehandle_t fd;
  if (mdb_env_info(env->mdb, &ei) || mdb_env_stat(env->mdb, &st) ||
      mdb_env_get_fd(env->mdb, &fd))
    return;
  uint64_t used = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
  uint64_t ahead = ahead_bytes(env);
  if (env->pages_ready > used + ahead / 2)
    return;
  uint64_t end = used + ahead;
  if (end > ei.me_mapsize)
    end = ei.me_mapsize;
  if (end <= used)
    return;
  struct stat sb;
  if (fstat(fd, &sb) != 0)
    return;
  if ((uint64_t)sb.st_size < end && ftruncate(fd, (off_t)end) != 0)
    return;
  uint64_t from = env->pages_ready > used ? env->pages_ready : used;
  /* Pages from `used` on are not LMDB's yet; those of the previous round
   * that LMDB has meanwhile written are already cached, small. One
   * WILLNEED reads at most the device's readahead window (read_ahead_kb,
   * 128 KiB by default), hence the steps. */
  for (uint64_t off = from; off < end; off += READ_STEP) {
    uint64_t n = end - off < READ_STEP ? end - off : READ_STEP;
    if (posix_fadvise(fd, (off_t)off, (off_t)n, POSIX_FADV_WILLNEED) != 0)
      return;
    env->pages_ready = off + n;
  }
}
