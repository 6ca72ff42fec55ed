/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * preload.c - LD_PRELOAD library for the power-loss simulator: logs every
 * mutating file operation under PLSIM_ROOT, in execution order, to the
 * trace file PLSIM_TRACE (format: trace.h). See docs/crashsim.md.
 *
 * Environment:
 *   PLSIM_ROOT       absolute directory; only paths under it are logged
 *   PLSIM_TRACE      trace output path (outside the root)
 *   PLSIM_EVENTS     absolute path of the workload's event log: each write
 *                    to it becomes a PL_EVENT record
 *   PLSIM_FAIL_SYNC  N: the Nth fsync/fdatasync of a regular file under the
 *                    root fails with EIO (the real call is not made)
 *   PLSIM_FAIL_WRITE N: the Nth write to a regular file under the root fails
 *                    with ENOSPC
 *
 * One global (recursive) mutex is held across each real call and its
 * logging, so the trace order is the execution order. Files are tracked by
 * inode, not by fd: LMDB opens data.mdb twice and an fdatasync on either fd
 * syncs the file. LMDB's lock file is skipped (rebuilt on every open).
 */
#define _GNU_SOURCE
#include "trace.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAXFD 4096
#define MAXFILES 65536

typedef struct fdent {
  int used;
  int isdir;
  int events;
  int sync; /* O_SYNC / O_DSYNC */
  int append;
  uint32_t fid;
  char *path; /* absolute */
} fdent;

static pthread_mutex_t mu = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static fdent fds[MAXFD];
static struct {
  dev_t dev;
  ino_t ino;
} files[MAXFILES];
static uint32_t nfiles;
static char root[PATH_MAX];
static size_t rootlen;
static char events_path[PATH_MAX];
static int trace_fd = -1;
static int inited;
static long fail_sync, fail_write, n_sync, n_write;

#define REAL(name) static __typeof__(name) *real_##name
REAL(open); REAL(open64); REAL(openat); REAL(openat64); REAL(creat);
REAL(write); REAL(pwrite); REAL(pwrite64); REAL(writev); REAL(pwritev);
REAL(pwritev64); REAL(ftruncate); REAL(ftruncate64); REAL(fallocate);
REAL(fallocate64); REAL(rename); REAL(renameat); REAL(renameat2);
REAL(unlink); REAL(unlinkat); REAL(mkdir); REAL(mkdirat); REAL(rmdir);
REAL(fsync); REAL(fdatasync); REAL(sync_file_range); REAL(sync); REAL(syncfs);
REAL(close); REAL(dup); REAL(dup2); REAL(dup3); REAL(fcntl); REAL(msync);
#ifdef RWF_DSYNC
REAL(pwritev2);
#endif
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real_fcntl64)(int, int, ...);

#define RESOLVE(name)                                                          \
  do {                                                                         \
    if (!real_##name)                                                          \
      real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name);          \
  } while (0)

static void init(void) {
  if (inited)
    return;
  RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64);
  RESOLVE(creat); RESOLVE(write); RESOLVE(pwrite); RESOLVE(pwrite64);
  RESOLVE(writev); RESOLVE(pwritev); RESOLVE(pwritev64); RESOLVE(ftruncate);
  RESOLVE(ftruncate64); RESOLVE(fallocate); RESOLVE(fallocate64);
  RESOLVE(rename); RESOLVE(renameat); RESOLVE(renameat2); RESOLVE(unlink);
  RESOLVE(unlinkat); RESOLVE(mkdir); RESOLVE(mkdirat); RESOLVE(rmdir);
  RESOLVE(fsync); RESOLVE(fdatasync); RESOLVE(sync_file_range); RESOLVE(sync);
  RESOLVE(syncfs); RESOLVE(close); RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3);
  RESOLVE(fcntl); RESOLVE(msync); RESOLVE(__open_2); RESOLVE(__open64_2);
  RESOLVE(fcntl64);
#ifdef RWF_DSYNC
  RESOLVE(pwritev2);
#endif
  const char *r = getenv("PLSIM_ROOT"), *t = getenv("PLSIM_TRACE"),
             *e = getenv("PLSIM_EVENTS"), *fs = getenv("PLSIM_FAIL_SYNC"),
             *fw = getenv("PLSIM_FAIL_WRITE");
  if (r && *r == '/') {
    snprintf(root, sizeof root, "%s", r);
    rootlen = strlen(root);
    while (rootlen > 1 && root[rootlen - 1] == '/')
      root[--rootlen] = '\0';
  }
  if (e)
    snprintf(events_path, sizeof events_path, "%s", e);
  if (t && *t)
    trace_fd = real_open(t, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
                         0644);
  fail_sync = fs ? atol(fs) : 0;
  fail_write = fw ? atol(fw) : 0;
  inited = 1;
}

__attribute__((constructor)) static void ctor(void) {
  pthread_mutex_lock(&mu);
  init();
  pthread_mutex_unlock(&mu);
}

static void lock(void) {
  pthread_mutex_lock(&mu);
  init();
}
static void unlock(void) { pthread_mutex_unlock(&mu); }

/* Normalize an absolute path in place: collapse //, /./ and /../. */
static void normalize(char *p) {
  char out[PATH_MAX];
  size_t o = 0;
  const char *s = p;
  while (*s) {
    while (*s == '/')
      s++;
    if (!*s)
      break;
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '.') {
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      while (o > 0 && out[o - 1] != '/')
        o--;
      if (o > 0)
        o--;
    } else if (o + len + 2 < sizeof out) {
      out[o++] = '/';
      memcpy(out + o, s, len);
      o += len;
    }
    s += len;
  }
  if (o == 0)
    out[o++] = '/';
  out[o] = '\0';
  memcpy(p, out, o + 1);
}

/* Absolute path of (dirfd, path) into out; 0 on failure. */
static int resolve(char *out, int dirfd, const char *path) {
  if (!path)
    return 0;
  if (path[0] == '/') {
    snprintf(out, PATH_MAX, "%s", path);
  } else {
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
      if (!getcwd(base, sizeof base))
        return 0;
    } else if (dirfd >= 0 && dirfd < MAXFD && fds[dirfd].used && fds[dirfd].path) {
      snprintf(base, sizeof base, "%s", fds[dirfd].path);
    } else {
      char l[64];
      snprintf(l, sizeof l, "/proc/self/fd/%d", dirfd);
      ssize_t n = readlink(l, base, sizeof base - 1);
      if (n <= 0)
        return 0;
      base[n] = '\0';
    }
    if (snprintf(out, PATH_MAX, "%s/%s", base, path) >= PATH_MAX)
      return 0;
  }
  normalize(out);
  return 1;
}

/* The path relative to the root, or NULL when not under it. */
static const char *rel(const char *abs) {
  if (!rootlen || strncmp(abs, root, rootlen) != 0)
    return NULL;
  if (abs[rootlen] == '\0')
    return abs + rootlen;
  if (abs[rootlen] != '/')
    return NULL;
  return abs + rootlen + 1;
}

static int skipped(const char *abs) {
  size_t n = strlen(abs);
  return (n >= 8 && strcmp(abs + n - 8, "lock.mdb") == 0) ||
         (n >= 5 && strcmp(abs + n - 5, "-lock") == 0);
}

static void emit(int type, uint32_t fid, uint64_t a, uint64_t b, uint32_t mode,
                 const char *p1, const char *p2, const struct iovec *data,
                 int ndata, size_t dlen) {
  if (trace_fd < 0)
    return;
  struct plsim_rec h;
  memset(&h, 0, sizeof h);
  h.type = (uint8_t)type;
  h.fid = fid;
  h.a = a;
  h.b = b;
  h.mode = mode;
  h.len1 = p1 ? (uint32_t)strlen(p1) : 0;
  h.len2 = p2 ? (uint32_t)strlen(p2) : 0;
  h.dlen = (uint32_t)dlen;
  struct iovec v[64];
  int n = 0;
  v[n++] = (struct iovec){&h, sizeof h};
  if (h.len1)
    v[n++] = (struct iovec){(void *)p1, h.len1};
  if (h.len2)
    v[n++] = (struct iovec){(void *)p2, h.len2};
  size_t left = dlen;
  for (int i = 0; i < ndata && left && n < 64; i++) {
    size_t l = data[i].iov_len < left ? data[i].iov_len : left;
    v[n++] = (struct iovec){data[i].iov_base, l};
    left -= l;
  }
  /* The trace is O_APPEND; loop over short writes. */
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += v[i].iov_len;
  char *buf = malloc(total);
  if (!buf)
    abort();
  size_t o = 0;
  for (int i = 0; i < n; i++) {
    memcpy(buf + o, v[i].iov_base, v[i].iov_len);
    o += v[i].iov_len;
  }
  for (o = 0; o < total;) {
    ssize_t w = real_write(trace_fd, buf + o, total - o);
    if (w <= 0) {
      if (w < 0 && errno == EINTR)
        continue;
      abort();
    }
    o += (size_t)w;
  }
  free(buf);
}

static void emit_simple(int type, uint32_t fid, const char *p1, const char *p2) {
  emit(type, fid, 0, 0, 0, p1, p2, NULL, 0, 0);
}

static uint32_t file_lookup(dev_t dev, ino_t ino) {
  for (uint32_t i = nfiles; i-- > 0;)
    if (files[i].dev == dev && files[i].ino == ino)
      return i + 1;
  return 0;
}

static uint32_t file_new(dev_t dev, ino_t ino) {
  if (nfiles >= MAXFILES)
    abort();
  files[nfiles].dev = dev;
  files[nfiles].ino = ino;
  return ++nfiles;
}

static void fd_forget(int fd) {
  if (fd >= 0 && fd < MAXFD && fds[fd].used) {
    free(fds[fd].path);
    memset(&fds[fd], 0, sizeof fds[fd]);
  }
}

static void fd_copy(int to, int from) {
  if (to < 0 || to >= MAXFD)
    return;
  fd_forget(to);
  if (from >= 0 && from < MAXFD && fds[from].used) {
    fds[to] = fds[from];
    fds[to].path = fds[from].path ? strdup(fds[from].path) : NULL;
  }
}

/* The body of every open variant. */
static int do_open(int dirfd, const char *path, int flags, mode_t mode,
                   int (*call)(int, const char *, int, mode_t)) {
  lock();
  char abs[PATH_MAX];
  const char *r = NULL;
  int ev = 0;
  if (resolve(abs, dirfd, path)) {
    ev = events_path[0] && strcmp(abs, events_path) == 0;
    r = rel(abs);
    if (r && skipped(abs))
      r = NULL;
  }
  struct stat before;
  int existed = r ? stat(abs, &before) == 0 : 1;
  int fd = call(dirfd, path, flags, mode);
  int saved = errno;
  if (fd >= 0 && fd < MAXFD && (r || ev)) {
    fd_forget(fd);
    struct stat st;
    if (fstat(fd, &st) == 0) {
      fdent *f = &fds[fd];
      f->used = 1;
      f->events = ev && !r;
      f->path = strdup(abs);
      f->append = (flags & O_APPEND) != 0;
      f->sync = (flags & (O_SYNC | O_DSYNC)) != 0;
      if (S_ISDIR(st.st_mode)) {
        f->isdir = 1;
      } else if (r) {
        uint32_t id = existed ? file_lookup(st.st_dev, st.st_ino) : 0;
        if (!id) {
          if (existed)
            fprintf(stderr, "plsim: %s existed before the trace\n", abs);
          id = file_new(st.st_dev, st.st_ino);
          emit_simple(PL_CREATE, id, r, NULL);
        } else if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
          emit(PL_TRUNC, id, 0, 0, 0, NULL, NULL, NULL, 0, 0);
        }
        f->fid = id;
      }
    }
  }
  unlock();
  errno = saved;
  return fd;
}

static int call_openat(int d, const char *p, int f, mode_t m) {
  return real_openat(d, p, f, m);
}
static int call_open(int d, const char *p, int f, mode_t m) {
  (void)d;
  return real_open(p, f, m);
}

#define MODE_ARG(flags)                                                        \
  mode_t mode = 0;                                                             \
  if ((flags) & (O_CREAT | O_TMPFILE)) {                                       \
    va_list ap;                                                                \
    va_start(ap, flags);                                                       \
    mode = (mode_t)va_arg(ap, int);                                            \
    va_end(ap);                                                                \
  }

int open(const char *path, int flags, ...) {
  MODE_ARG(flags);
  init();
  return do_open(AT_FDCWD, path, flags, mode, call_open);
}
int open64(const char *path, int flags, ...) {
  MODE_ARG(flags);
  init();
  return do_open(AT_FDCWD, path, flags | O_LARGEFILE, mode, call_open);
}
int openat(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  init();
  return do_open(dirfd, path, flags, mode, call_openat);
}
int openat64(int dirfd, const char *path, int flags, ...) {
  MODE_ARG(flags);
  init();
  return do_open(dirfd, path, flags | O_LARGEFILE, mode, call_openat);
}
int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags) {
  init();
  return do_open(AT_FDCWD, path, flags, 0, call_open);
}
int __open64_2(const char *path, int flags);
int __open64_2(const char *path, int flags) {
  init();
  return do_open(AT_FDCWD, path, flags | O_LARGEFILE, 0, call_open);
}
int creat(const char *path, mode_t mode) {
  init();
  return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode, call_open);
}

/* Regular file under the root? */
static fdent *tracked(int fd) {
  return fd >= 0 && fd < MAXFD && fds[fd].used && !fds[fd].isdir ? &fds[fd]
                                                                  : NULL;
}

static int inject_write(fdent *f) {
  if (!f->events && fail_write && ++n_write == fail_write) {
    errno = ENOSPC;
    return 1;
  }
  return 0;
}

/* Log a completed write of r bytes at off. */
static void log_write(fdent *f, uint64_t off, const struct iovec *iov, int n,
                      ssize_t r) {
  if (r <= 0)
    return;
  if (f->events) {
    emit(PL_EVENT, 0, 0, 0, 0, NULL, NULL, iov, n, (size_t)r);
    return;
  }
  emit(PL_WRITE, f->fid, off, 0, 0, NULL, NULL, iov, n, (size_t)r);
  if (f->sync)
    emit_simple(PL_FSYNC, f->fid, NULL, NULL);
}

static uint64_t cur_off(int fd, fdent *f) {
  if (f->append) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
  }
  off_t o = lseek(fd, 0, SEEK_CUR);
  return o < 0 ? 0 : (uint64_t)o;
}

ssize_t write(int fd, const void *buf, size_t n) {
  init();
  if (!tracked(fd))
    return real_write(fd, buf, n);
  lock();
  fdent *f = tracked(fd);
  ssize_t r;
  if (f && inject_write(f)) {
    r = -1;
  } else {
    uint64_t off = f ? cur_off(fd, f) : 0;
    r = real_write(fd, buf, n);
    int saved = errno;
    struct iovec v = {(void *)buf, n};
    if (f)
      log_write(f, off, &v, 1, r);
    errno = saved;
  }
  int saved = errno;
  unlock();
  errno = saved;
  return r;
}

static ssize_t do_pwrite(int fd, const void *buf, size_t n, off_t off,
                         ssize_t (*call)(int, const void *, size_t, off_t)) {
  init();
  if (!tracked(fd))
    return call(fd, buf, n, off);
  lock();
  fdent *f = tracked(fd);
  ssize_t r;
  if (f && inject_write(f)) {
    r = -1;
  } else {
    r = call(fd, buf, n, off);
    int saved = errno;
    struct iovec v = {(void *)buf, n};
    if (f)
      log_write(f, (uint64_t)off, &v, 1, r);
    errno = saved;
  }
  int saved = errno;
  unlock();
  errno = saved;
  return r;
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  init();
  return do_pwrite(fd, buf, n, off, real_pwrite);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  init();
  return do_pwrite(fd, buf, n, off, real_pwrite64);
}

static ssize_t do_pwritev(int fd, const struct iovec *iov, int cnt, off_t off,
                          int flags, int kind) {
  init();
  fdent *f0 = tracked(fd);
  if (f0)
    lock();
  fdent *f = tracked(fd);
  ssize_t r;
  if (f && inject_write(f)) {
    r = -1;
  } else {
    uint64_t o = (kind == 0 || off == -1) && f ? cur_off(fd, f) : (uint64_t)off;
    switch (kind) {
    case 0: r = real_writev(fd, iov, cnt); break;
    case 1: r = real_pwritev(fd, iov, cnt, off); break;
    case 2: r = real_pwritev64(fd, iov, cnt, off); break;
#ifdef RWF_DSYNC
    default: r = real_pwritev2(fd, iov, cnt, off, flags); break;
#else
    default: (void)flags; r = real_pwritev(fd, iov, cnt, off); break;
#endif
    }
    int saved = errno;
    if (f) {
      log_write(f, o, iov, cnt, r);
#ifdef RWF_DSYNC
      if (kind == 3 && r > 0 && (flags & (RWF_DSYNC | RWF_SYNC)) && !f->sync &&
          !f->events)
        emit_simple(PL_FSYNC, f->fid, NULL, NULL);
#endif
    }
    errno = saved;
  }
  if (f0) {
    int saved = errno;
    unlock();
    errno = saved;
  }
  return r;
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  return do_pwritev(fd, iov, cnt, 0, 0, 0);
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  return do_pwritev(fd, iov, cnt, off, 0, 1);
}
ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off) {
  return do_pwritev(fd, iov, cnt, off, 0, 2);
}
#ifdef RWF_DSYNC
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags) {
  return do_pwritev(fd, iov, cnt, off, flags, 3);
}
#endif

static int do_ftruncate(int fd, off_t len, int (*call)(int, off_t)) {
  init();
  if (!tracked(fd))
    return call(fd, len);
  lock();
  int r = call(fd, len);
  int saved = errno;
  fdent *f = tracked(fd);
  if (r == 0 && f)
    emit(PL_TRUNC, f->fid, (uint64_t)len, 0, 0, NULL, NULL, NULL, 0, 0);
  unlock();
  errno = saved;
  return r;
}
int ftruncate(int fd, off_t len) {
  init();
  return do_ftruncate(fd, len, real_ftruncate);
}
int ftruncate64(int fd, off_t len) {
  init();
  return do_ftruncate(fd, len, real_ftruncate64);
}

static int do_fallocate(int fd, int mode, off_t off, off_t len,
                        int (*call)(int, int, off_t, off_t)) {
  init();
  if (!tracked(fd))
    return call(fd, mode, off, len);
  lock();
  int r = call(fd, mode, off, len);
  int saved = errno;
  fdent *f = tracked(fd);
  if (r == 0 && f)
    emit(PL_FALLOC, f->fid, (uint64_t)off, (uint64_t)len, (uint32_t)mode, NULL,
         NULL, NULL, 0, 0);
  unlock();
  errno = saved;
  return r;
}
int fallocate(int fd, int mode, off_t off, off_t len) {
  init();
  return do_fallocate(fd, mode, off, len, real_fallocate);
}
int fallocate64(int fd, int mode, off_t off, off_t len) {
  init();
  return do_fallocate(fd, mode, off, len, real_fallocate64);
}

/* Namespace operations: type with one or two paths. */
static int ns_op(int type, int d1, const char *p1, int d2, const char *p2,
                 int r) {
  char a1[PATH_MAX], a2[PATH_MAX];
  const char *r1 = NULL, *r2 = NULL;
  if (resolve(a1, d1, p1))
    r1 = rel(a1);
  if (p2 && resolve(a2, d2, p2))
    r2 = rel(a2);
  if (r1 && skipped(a1))
    r1 = NULL;
  if (r2 && skipped(a2))
    r2 = NULL;
  if (r != 0)
    return r;
  if (type == PL_RENAME) {
    if (r1 && r2)
      emit_simple(PL_RENAME, 0, r1, r2);
    else if (r1)
      emit_simple(PL_UNLINK, 0, r1, NULL);
    else if (r2)
      fprintf(stderr, "plsim: rename into the root from outside: %s\n", a2);
  } else if (r1) {
    emit_simple(type, 0, r1, NULL);
  }
  return r;
}

#define NS_WRAP(expr, type, d1, p1, d2, p2)                                    \
  do {                                                                         \
    lock();                                                                    \
    int r_ = (expr);                                                           \
    int saved_ = errno;                                                        \
    ns_op(type, d1, p1, d2, p2, r_);                                           \
    unlock();                                                                  \
    errno = saved_;                                                            \
    return r_;                                                                 \
  } while (0)

int rename(const char *a, const char *b) {
  NS_WRAP(real_rename(a, b), PL_RENAME, AT_FDCWD, a, AT_FDCWD, b);
}
int renameat(int da, const char *a, int db, const char *b) {
  NS_WRAP(real_renameat(da, a, db, b), PL_RENAME, da, a, db, b);
}
int renameat2(int da, const char *a, int db, const char *b, unsigned flags) {
  NS_WRAP(real_renameat2(da, a, db, b, flags), PL_RENAME, da, a, db, b);
}
int unlink(const char *p) {
  NS_WRAP(real_unlink(p), PL_UNLINK, AT_FDCWD, p, AT_FDCWD, NULL);
}
int unlinkat(int d, const char *p, int flags) {
  NS_WRAP(real_unlinkat(d, p, flags), (flags & AT_REMOVEDIR) ? PL_RMDIR : PL_UNLINK,
          d, p, AT_FDCWD, NULL);
}
int mkdir(const char *p, mode_t m) {
  NS_WRAP(real_mkdir(p, m), PL_MKDIR, AT_FDCWD, p, AT_FDCWD, NULL);
}
int mkdirat(int d, const char *p, mode_t m) {
  NS_WRAP(real_mkdirat(d, p, m), PL_MKDIR, d, p, AT_FDCWD, NULL);
}
int rmdir(const char *p) {
  NS_WRAP(real_rmdir(p), PL_RMDIR, AT_FDCWD, p, AT_FDCWD, NULL);
}

static int do_sync(int fd, int (*call)(int)) {
  init();
  if (fd < 0 || fd >= MAXFD || !fds[fd].used || fds[fd].events)
    return call(fd);
  lock();
  fdent *f = &fds[fd];
  int r;
  if (!f->isdir && fail_sync && ++n_sync == fail_sync) {
    errno = EIO;
    r = -1;
  } else {
    r = call(fd);
  }
  int saved = errno;
  if (r == 0 && f->used) {
    if (f->isdir) {
      const char *rp = rel(f->path);
      if (rp)
        emit_simple(PL_DIRSYNC, 0, rp, NULL);
    } else {
      emit_simple(PL_FSYNC, f->fid, NULL, NULL);
    }
  }
  unlock();
  errno = saved;
  return r;
}
int fsync(int fd) {
  init();
  return do_sync(fd, real_fsync);
}
int fdatasync(int fd) {
  init();
  return do_sync(fd, real_fdatasync);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags) {
  init();
  lock();
  int r = real_sync_file_range(fd, off, n, flags);
  int saved = errno;
  if (r == 0 && tracked(fd))
    emit(PL_NOP, tracked(fd)->fid, (uint64_t)off, (uint64_t)n, flags, NULL,
         NULL, NULL, 0, 0);
  unlock();
  errno = saved;
  return r;
}
void sync(void) {
  init();
  lock();
  real_sync();
  emit_simple(PL_SYNCALL, 0, NULL, NULL);
  unlock();
}
int syncfs(int fd) {
  init();
  lock();
  int r = real_syncfs(fd);
  int saved = errno;
  if (r == 0)
    emit_simple(PL_SYNCALL, 0, NULL, NULL);
  unlock();
  errno = saved;
  return r;
}
int msync(void *addr, size_t len, int flags) {
  init();
  lock();
  int r = real_msync(addr, len, flags);
  int saved = errno;
  if (r == 0)
    emit(PL_NOP, 0, (uint64_t)(uintptr_t)addr, len, (uint32_t)flags, NULL, NULL,
         NULL, 0, 0);
  unlock();
  errno = saved;
  return r;
}

int close(int fd) {
  init();
  if (fd < 0 || fd >= MAXFD || !fds[fd].used)
    return real_close(fd);
  lock();
  fd_forget(fd);
  int r = real_close(fd);
  int saved = errno;
  unlock();
  errno = saved;
  return r;
}
int dup(int fd) {
  init();
  lock();
  int r = real_dup(fd);
  int saved = errno;
  if (r >= 0)
    fd_copy(r, fd);
  unlock();
  errno = saved;
  return r;
}
int dup2(int fd, int to) {
  init();
  lock();
  int r = real_dup2(fd, to);
  int saved = errno;
  if (r >= 0 && r != fd)
    fd_copy(r, fd);
  unlock();
  errno = saved;
  return r;
}
int dup3(int fd, int to, int flags) {
  init();
  lock();
  int r = real_dup3(fd, to, flags);
  int saved = errno;
  if (r >= 0)
    fd_copy(r, fd);
  unlock();
  errno = saved;
  return r;
}

static int do_fcntl(int (*call)(int, int, ...), int fd, int cmd, void *arg) {
  if (cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC)
    return call(fd, cmd, arg);
  lock();
  int r = call(fd, cmd, arg);
  int saved = errno;
  if (r >= 0)
    fd_copy(r, fd);
  unlock();
  errno = saved;
  return r;
}
int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  init();
  return do_fcntl(real_fcntl, fd, cmd, arg);
}
int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  init();
  return do_fcntl(real_fcntl64 ? real_fcntl64 : real_fcntl, fd, cmd, arg);
}
