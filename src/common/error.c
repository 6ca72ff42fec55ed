/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
#include "config.h"
#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char lmq__errbuf[512];

LMQ_API const char *lmq_strerror(int code) {
  switch (code) {
#define LMQ__ERR_CASE(name, value, msg)                                        \
  case value:                                                                  \
    return msg;
    LMQ_ERROR_TABLE(LMQ__ERR_CASE)
#undef LMQ__ERR_CASE
  default:
    return "unknown error";
  }
}

LMQ_API const char *lmq_errmsg(void) { return lmq__errbuf; }

void lmq__error_clear(void) { lmq__errbuf[0] = '\0'; }

int lmq__error(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(lmq__errbuf, sizeof lmq__errbuf, fmt, ap);
  va_end(ap);
  if (n < 0)
    snprintf(lmq__errbuf, sizeof lmq__errbuf, "%s", lmq_strerror(code));
  return code;
}

int lmq__errno_code(int err) {
  switch (err) {
  case ENOSPC:
  case EDQUOT:
    return LMQ_ENOSPC;
  case ENOMEM:
    return LMQ_ENOMEM;
  default:
    return LMQ_EIO;
  }
}

int lmq__name_check(const char *what, const char *name) {
  if (!name)
    return lmq__error(LMQ_EINVAL, "%s name is NULL", what);
  size_t n = strnlen(name, LMQ_NAME_MAX + 1);
  if (n == 0)
    return lmq__error(LMQ_EINVAL, "%s name is empty", what);
  if (n > LMQ_NAME_MAX)
    return lmq__error(LMQ_EINVAL, "%s name is longer than %d bytes", what,
                      LMQ_NAME_MAX);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return lmq__error(LMQ_EINVAL,
                        "%s name '%.64s': byte %zu (0x%02x) is not in "
                        "[A-Za-z0-9._-]",
                        what, name, i, c);
  }
  return 0;
}
