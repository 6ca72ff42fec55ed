/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* error.h - per-thread detailed error messages and small shared helpers. */
#ifndef LMQ_COMMON_ERROR_H
#define LMQ_COMMON_ERROR_H

#include "lmq.h"

#if defined(__GNUC__)
#define LMQ__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LMQ__PRINTF(a, b)
#endif

/* Record a detailed message for code and return code (so callers can write
 * `return lmq__error(LMQ_EINVAL, "...")`). */
int lmq__error(int code, const char *fmt, ...) LMQ__PRINTF(2, 3);
/* Map an errno value to an LMQ code (ENOSPC -> LMQ_ENOSPC, else LMQ_EIO). */
int lmq__errno_code(int err);
/* Clear the thread's message (start of a successful call is not required). */
void lmq__error_clear(void);

/* 1 if name is a valid channel/group name: 1..LMQ_NAME_MAX of [A-Za-z0-9._-]. */
int lmq__name_check(const char *what, const char *name);

#endif
