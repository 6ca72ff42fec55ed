/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* util.h - helpers shared by the tests. */
#ifndef LMQ_T_UTIL_H
#define LMQ_T_UTIL_H
#include "lmq.h"
#include <stddef.h>
#include <stdint.h>

/* A fresh temporary directory (malloc'ed path); removed by tmpdir_rm. */
char *tmpdir_new(void);
void tmpdir_rm(char *path);
/* Open an env with test-friendly defaults in dir (asserts success). */
lmq_env *open_env(const char *dir, int sync);
/* Produce one string message; returns its ID (asserts success). */
lmq_id put_str(lmq_env *env, const char *chan, const char *s);
/* Wall-clock ms. */
uint64_t now_ms(void);
#endif
