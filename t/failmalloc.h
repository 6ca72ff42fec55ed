/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * failmalloc.h - a countdown allocator for fault tests: the program that
 * links t/failmalloc.c replaces malloc/calloc/realloc (exported with default
 * visibility; link with -Wl,--export-dynamic) so that the library's own
 * allocations fail too. Not under sanitizers, which bring their allocator:
 * there NO_FAILMALLOC is defined and the tests that need it compile out.
 */
#ifndef LMQ_T_FAILMALLOC_H
#define LMQ_T_FAILMALLOC_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_FAILMALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_FAILMALLOC 1
#endif
#endif

/* -1: never fail; n >= 0: n more allocations succeed, then every one fails
 * (setting errno to ENOMEM) until the countdown is set again. */
extern volatile long fail_countdown;
/* Allocations refused since it was last reset to 0. */
extern volatile long failures;

#endif
