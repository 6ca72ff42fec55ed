/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * envdir.c - the data directory: creating it so that a crash at any moment
 * leaves either nothing, or a complete empty env; never a half-made one.
 *
 * Order on first open: DIR (then fsync its parent), DIR/wal, DIR/LOCK,
 * then DIR/data.mdb, built aside as data.mdb.new (LMDB with "#sys"),
 * synced, renamed into place, and DIR fsynced. WAL segments are created
 * only after all that, so a WAL without data.mdb means data.mdb was lost:
 * an error, not a fresh start that would throw the WAL away.
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/error.h"
#include "common/os.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int sync_dir(const char *path) {
  int e = lmq__sync_dir(path);
  if (e)
    return lmq__error(lmq__errno_code(e), "fsync directory %s: %s", path,
                      strerror(e));
  return 0;
}

/* mkdir path; *created says whether it did. */
static int make_dir(const char *path, int *created) {
  *created = 0;
  if (mkdir(path, 0755) == 0) {
    *created = 1;
    return 0;
  }
  if (errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
      return 0;
    return lmq__error(LMQ_EINVAL, "%s exists and is not a directory", path);
  }
  return lmq__error(lmq__errno_code(errno), "mkdir %s: %s", path, strerror(errno));
}

static int sync_parent(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  size_t l = strlen(buf);
  while (l > 1 && buf[l - 1] == '/')
    buf[--l] = '\0';
  char *slash = strrchr(buf, '/');
  if (!slash)
    return sync_dir(".");
  if (slash == buf)
    slash[1] = '\0';
  else
    *slash = '\0';
  return sync_dir(buf);
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* Build an empty LMDB at tmp (one file, MDB_NOSUBDIR) and sync it. */
static int build_lmdb(lmq_env *env, const char *tmp) {
  MDB_env *m;
  int rc = mdb_env_create(&m);
  if (rc)
    return lmq__mdb_code(rc, "create LMDB");
  mdb_env_set_maxdbs(m, env->opt.max_channels + 4);
  mdb_env_set_mapsize(m, (size_t)env->opt.map_size);
  MDB_txn *txn = NULL;
  MDB_dbi dbi;
  if (!(rc = mdb_env_open(m, tmp, MDB_NOSUBDIR | MDB_NOTLS, 0644)) &&
      !(rc = mdb_txn_begin(m, NULL, 0, &txn))) {
    if (!(rc = mdb_dbi_open(txn, "#sys", MDB_CREATE, &dbi)))
      rc = mdb_txn_commit(txn);
    else
      mdb_txn_abort(txn);
  }
  if (!rc)
    rc = mdb_env_sync(m, 1);
  mdb_env_close(m);
  return rc ? lmq__mdb_code(rc, "create LMDB") : 0;
}

static int create_lmdb(lmq_env *env, const char *final) {
  char tmp[PATH_MAX], tmplock[PATH_MAX + 8];
  snprintf(tmp, sizeof tmp, "%s/data.mdb.new", env->dir);
  snprintf(tmplock, sizeof tmplock, "%s-lock", tmp);
  unlink(tmp);
  unlink(tmplock);
  int rc = build_lmdb(env, tmp);
  if (!rc && rename(tmp, final) != 0)
    rc = lmq__error(lmq__errno_code(errno), "rename %s: %s", tmp, strerror(errno));
  unlink(tmplock);
  if (rc)
    unlink(tmp);
  return rc;
}

/* LMQ_OPEN_RDONLY and LMQ_OPEN_NOCREATE: the env must already be there. */
static int must_exist(lmq_env *env) {
  struct stat st;
  char mdb[PATH_MAX];
  if (stat(env->dir, &st) != 0)
    return lmq__error(errno == ENOENT ? LMQ_ENOTFOUND : lmq__errno_code(errno),
                      "%s: %s", env->dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return lmq__error(LMQ_EINVAL, "%s exists and is not a directory", env->dir);
  snprintf(mdb, sizeof mdb, "%s/data.mdb", env->dir);
  if (stat(mdb, &st) != 0)
    return lmq__error(errno == ENOENT ? LMQ_ENOTFOUND : lmq__errno_code(errno),
                      "%s holds no lmq env (%s: %s)", env->dir, mdb,
                      strerror(errno));
  return 0;
}

int lmq__envdir_prepare(lmq_env *env) {
  int created, dirty = 0, rc;
  char path[PATH_MAX];
  if (env->opt.flags & (LMQ_OPEN_RDONLY | LMQ_OPEN_NOCREATE)) {
    if ((rc = must_exist(env)))
      return rc;
    if (env->opt.flags & LMQ_OPEN_RDONLY)
      return 0; /* no LOCK, nothing created */
  }
  if ((rc = make_dir(env->dir, &created)))
    return rc;
  if (created && (rc = sync_parent(env->dir)))
    return rc;
  if ((rc = make_dir(env->waldir, &created)))
    return rc;
  dirty |= created;
  snprintf(path, sizeof path, "%s/LOCK", env->dir);
  dirty |= !exists(path);
  if ((rc = lmq__lock_dir(&env->lockfd, path)))
    return rc;
  /* Under the lock from here on: nobody else creates or opens it. */
  char mdb[PATH_MAX];
  snprintf(mdb, sizeof mdb, "%s/data.mdb", env->dir);
  if (!exists(mdb)) {
    uint64_t *segs = NULL;
    size_t n = 0;
    if ((rc = lmq__wal_list(&segs, &n, env->waldir)))
      return rc;
    free(segs);
    if (n)
      return lmq__error(LMQ_ECORRUPT, "%s is missing but %s holds %zu WAL "
                        "segments: refusing to start an empty env over them",
                        mdb, env->waldir, n);
    if ((rc = create_lmdb(env, mdb)))
      return rc;
    dirty = 1;
  } else {
    snprintf(path, sizeof path, "%s/data.mdb.new", env->dir);
    if (exists(path)) { /* an earlier creation that lost the race */
      unlink(path);
      strcat(path, "-lock");
      unlink(path);
    }
  }
  return dirty ? sync_dir(env->dir) : 0;
}
