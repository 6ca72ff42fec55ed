/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* failmalloc.c - the countdown allocator (see failmalloc.h). */
#include "failmalloc.h"

#ifndef NO_FAILMALLOC
#include <errno.h>
#include <stdlib.h> /* the prototypes being replaced */

volatile long fail_countdown = -1;
volatile long failures;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int should_fail(void) {
  long c = fail_countdown;
  if (c < 0)
    return 0;
  if (c == 0) {
    failures++;
    errno = ENOMEM; /* glibc relies on it (pthread_create asserts) */
    return 1;
  }
  fail_countdown = c - 1;
  return 0;
}

/* Default visibility: the build hides symbols, and the library's calls
 * must resolve to these, not only the test program's own. */
#define EXPORTED __attribute__((visibility("default")))
EXPORTED void *malloc(size_t n) { return should_fail() ? NULL : __libc_malloc(n); }
EXPORTED void *calloc(size_t a, size_t b) {
  return should_fail() ? NULL : __libc_calloc(a, b);
}
EXPORTED void *realloc(void *p, size_t n) {
  return should_fail() ? NULL : __libc_realloc(p, n);
}
#endif
