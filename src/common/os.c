/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
#include "config.h"
#include "common/os.h"
#include "common/error.h"

#include <errno.h>
#include <linux/futex.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t lmq__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t lmq__mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lmq__lock_dir(int *out, const char *path) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return lmq__error(lmq__errno_code(errno), "open %s: %s", path,
                      strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    close(fd);
    if (err == EWOULDBLOCK) {
      pid[n > 0 ? n : 0] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
      return lmq__error(LMQ_EBUSY, "%s is locked by process %s", path,
                        *pid ? pid : "(unknown)");
    }
    return lmq__error(LMQ_EIO, "flock %s: %s", path, strerror(err));
  }
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
    int err = errno;
    close(fd);
    return lmq__error(lmq__errno_code(err), "write %s: %s", path, strerror(err));
  }
  *out = fd;
  return 0;
}

void lmq__unlock_dir(int fd) {
  if (fd >= 0)
    close(fd); /* releases the flock */
}

void lmq__futex_wait(_Atomic int *word, int val) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void lmq__futex_wake(_Atomic int *word, int n) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int lmq__event_new(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void lmq__event_set(int fd) {
  uint64_t one = 1;
  ssize_t r = write(fd, &one, sizeof one);
  (void)r; /* EAGAIN only when the counter is saturated: still readable */
}

void lmq__event_clear(int fd) {
  uint64_t v;
  ssize_t r = read(fd, &v, sizeof v);
  (void)r; /* EAGAIN: already clear */
}

int lmq__pwrite_all(int fd, const void *buf, size_t len, off_t off) {
  const char *p = buf;
  while (len) {
    ssize_t n = pwrite(fd, p, len, off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      return EIO;
    p += n;
    len -= (size_t)n;
    off += n;
  }
  return 0;
}

int lmq__datasync(int fd) {
  while (fdatasync(fd) != 0) {
    if (errno != EINTR)
      return errno;
  }
  return 0;
}

int lmq__sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  int rc = fsync(fd) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

int lmq__read_file(unsigned char **out, size_t *len, const char *path,
                   const char *what, int enoent_notfound) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return lmq__error(errno == ENOENT && enoent_notfound ? LMQ_ENOTFOUND
                                                         : lmq__errno_code(errno),
                      "open %s%s: %s", what, path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return lmq__error(lmq__errno_code(e), "stat %s%s: %s", what, path, strerror(e));
  }
  size_t n = (size_t)st.st_size, got = 0;
  unsigned char *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return lmq__error(LMQ_ENOMEM, "out of memory reading %s", path);
  }
  while (got < n) {
    ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return lmq__error(lmq__errno_code(e), "read %s%s: %s", what, path,
                        strerror(e));
    }
    if (r == 0)
      break; /* shrank meanwhile (recycled): what was read is all */
    got += (size_t)r;
  }
  close(fd);
  *out = buf;
  *len = got;
  return 0;
}
