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
/* Look key up in the LMDB of an env dir that no handle has open: in the
 * sub-database db ("#sys", "#meta"; NULL = the main database, whose keys
 * name the sub-databases). Returns 1 and copies up to cap bytes of the
 * value to val (may be NULL), its size to *vlen (may be NULL); 0 when the
 * key or the sub-database is missing. Asserts the LMDB opens. */
int lmdb_peek(const char *dir, const char *db, const char *key, void *val,
              size_t cap, size_t *vlen);
/* u64 little-endian at p (the engine's and the metadata store's values). */
uint64_t get_le64(const void *p);
#endif
