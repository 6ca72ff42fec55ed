/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* os.h - the few OS-specific calls lmq makes (Linux first), kept in one place. */
#ifndef LMQ_COMMON_OS_H
#define LMQ_COMMON_OS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Wall-clock milliseconds since the epoch. */
uint64_t lmq__now_ms(void);
/* Monotonic nanoseconds (for timeouts and intervals). */
uint64_t lmq__mono_ns(void);

/* Take an exclusive flock() on path (created if needed) and write our pid
 * into it. On contention returns LMQ_EBUSY with the holder's pid in the
 * message. *fd is the lock's descriptor, closed by lmq__unlock_dir(). */
int lmq__lock_dir(int *fd, const char *path);
void lmq__unlock_dir(int fd);

/* A non-blocking, close-on-exec eventfd, or -1 with errno. */
int lmq__event_new(void);
void lmq__event_set(int fd);   /* make it readable */
void lmq__event_clear(int fd); /* drain it */

/* Read a whole file (a growing one: what is there now; one that shrank
 * meanwhile: what was read) into *out (malloc'd, caller frees) and *len.
 * A read error is an error, never an early end. Returns 0 or an LMQ error
 * naming what and path; a missing file is LMQ_ENOTFOUND if enoent_notfound,
 * else mapped like any errno. */
int lmq__read_file(unsigned char **out, size_t *len, const char *path,
                   const char *what, int enoent_notfound);
/* Write all of buf at off; returns 0 or an errno value. */
int lmq__pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Sleep while *word == val (a futex: returns at once if it differs, and
 * may return spuriously; the caller re-checks). */
void lmq__futex_wait(_Atomic int *word, int val);
/* Wake up to n threads sleeping on word (n = INT_MAX: all). */
void lmq__futex_wake(_Atomic int *word, int n);
/* Flush file data to the device (fdatasync); 0 or errno. */
int lmq__datasync(int fd);
/* fsync a directory so created/removed entries are durable; 0 or errno. */
int lmq__sync_dir(const char *path);

#endif
