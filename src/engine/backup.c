/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * backup.c - lmq_env_copy(): a hot, consistent copy of a live env.
 *
 * Every produce that returned has its record queued for (or already in)
 * LMDB, so one apply flush puts all of them in LMDB; a single LMDB read
 * snapshot (mdb_env_copy2) then copies them with the channel records, the
 * ID high-water mark and the embedded metadata store. The copy gets an
 * empty WAL, so its "#sys" applied position is reset to the start: the
 * source's WAL position means nothing there.
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"
#include "common/os.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path must not exist, or be an empty directory. *made says whether we
 * created it (and so may remove it on failure). */
static int dest_prepare(const char *path, int *made) {
  *made = 0;
  if (mkdir(path, 0755) == 0) {
    *made = 1;
    return 0;
  }
  if (errno != EEXIST)
    return lmq__error(lmq__errno_code(errno), "mkdir %s: %s", path,
                      strerror(errno));
  DIR *d = opendir(path);
  if (!d)
    return lmq__error(errno == ENOTDIR ? LMQ_EEXIST : lmq__errno_code(errno),
                      "%s: %s", path, strerror(errno));
  struct dirent *de;
  int empty = 1;
  while (empty && (de = readdir(d)))
    empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
  closedir(d);
  return empty ? 0 : lmq__error(LMQ_EEXIST, "%s exists and is not empty", path);
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return lmq__error(lmq__errno_code(errno), "open %s: %s", path, strerror(errno));
  int rc = fsync(fd) ? errno : 0;
  close(fd);
  return rc ? lmq__error(lmq__errno_code(rc), "fsync %s: %s", path, strerror(rc))
            : 0;
}

/* Point the copy's applied position at its (empty) WAL's start. */
static int reset_applied(const char *path) {
  MDB_env *m;
  int rc = mdb_env_create(&m);
  if (rc)
    return lmq__mdb_code(rc, "backup");
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  mdb_env_set_maxdbs(m, 4);
  if (!(rc = mdb_env_open(m, path, MDB_NOTLS, 0644)) &&
      !(rc = mdb_txn_begin(m, NULL, 0, &txn))) {
    uint64_t ap[2] = {0, 0};
    if ((rc = mdb_dbi_open(txn, "#sys", 0, &dbi)) ||
        (rc = lmq__sys_put(txn, dbi, SYS_APPLIED, ap, 2)))
      mdb_txn_abort(txn);
    else
      rc = mdb_txn_commit(txn);
  }
  if (!rc)
    rc = mdb_env_sync(m, 1);
  mdb_env_close(m);
  return rc ? lmq__mdb_code(rc, "backup: reset the copy's WAL position") : 0;
}

static void remove_copy(const char *path, int made) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/data.mdb", path);
  unlink(p);
  snprintf(p, sizeof p, "%s/lock.mdb", path);
  unlink(p);
  snprintf(p, sizeof p, "%s/wal", path);
  rmdir(p);
  if (made)
    rmdir(path);
}

LMQ_API int lmq_env_copy(lmq_env *env, const char *path, unsigned flags) {
  lmq__error_clear();
  LMQ__ENV_CHECK(env);
  if (!path || !*path)
    return lmq__error(LMQ_EINVAL, "backup: path is NULL or empty");
  if (flags & ~LMQ_COPY_COMPACT)
    return lmq__error(LMQ_EINVAL, "backup: unknown flags 0x%x",
                      flags & ~LMQ_COPY_COMPACT);
  if (strlen(path) > PATH_MAX - 16)
    return lmq__error(LMQ_EINVAL, "backup: path too long");
  int rc, made;
  /* Everything acknowledged before this call goes to LMDB first. */
  if (!(env->opt.flags & LMQ_OPEN_RDONLY) && (rc = lmq__apply_flush(env, 0)))
    return rc;
  if ((rc = dest_prepare(path, &made)))
    return rc;
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/wal", path);
  if (mkdir(p, 0755) != 0) {
    rc = lmq__error(lmq__errno_code(errno), "mkdir %s: %s", p, strerror(errno));
    goto fail;
  }
  int mrc = mdb_env_copy2(env->mdb, path,
                          (flags & LMQ_COPY_COMPACT) ? MDB_CP_COMPACT : 0);
  if (mrc) {
    rc = lmq__mdb_code(mrc, "backup: copy LMDB");
    goto fail;
  }
  if ((rc = reset_applied(path)))
    goto fail;
  snprintf(p, sizeof p, "%s/lock.mdb", path);
  unlink(p); /* LMDB's reader table: made again on open */
  snprintf(p, sizeof p, "%s/data.mdb", path);
  if ((rc = fsync_path(p)))
    goto fail;
  int e = lmq__sync_dir(path);
  if (!e && made) {
    /* the new directory's entry in its parent */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    for (size_t l = strlen(parent); l > 1 && parent[l - 1] == '/';)
      parent[--l] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
      e = lmq__sync_dir(".");
    else {
      slash[slash == parent] = '\0';
      e = lmq__sync_dir(parent);
    }
  }
  if (e) {
    rc = lmq__error(lmq__errno_code(e), "backup: fsync directory: %s", strerror(e));
    goto fail;
  }
  return 0;
fail:
  remove_copy(path, made);
  return rc;
}
