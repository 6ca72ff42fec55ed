/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * trace.h - the power-loss simulator's trace format, written by preload.c
 * and read by model.c.
 *
 * A trace is a sequence of records in execution order, each a fixed header
 * followed by three variable parts:
 *
 *   struct plsim_rec (40 bytes, host byte order) | path1[len1] | path2[len2]
 *   | data[dlen]
 *
 * Paths are relative to PLSIM_ROOT ("" is the root itself) and not
 * NUL-terminated. Record i of the file is "trace position i"; a crash at
 * position P means the process stopped dead just before record P executed.
 */
#ifndef PLSIM_TRACE_H
#define PLSIM_TRACE_H
#include <stdint.h>

enum plsim_type {
  PL_CREATE = 1,  /* path1 created as a new file, id fid */
  PL_WRITE = 2,   /* fid: data written at offset a (dlen bytes) */
  PL_TRUNC = 3,   /* fid: size set to a */
  PL_FALLOC = 4,  /* fid: fallocate, see below */
  PL_FSYNC = 5,   /* fid: fsync/fdatasync succeeded (or O_[D]SYNC write) */
  PL_MKDIR = 6,   /* path1 */
  PL_RMDIR = 7,   /* path1 */
  PL_UNLINK = 8,  /* path1 */
  PL_RENAME = 9,  /* path1 -> path2 */
  PL_DIRSYNC = 10, /* fsync of the directory path1 */
  PL_SYNCALL = 11, /* sync() or syncfs() */
  PL_EVENT = 12,  /* data: bytes the workload wrote to its event log */
  PL_NOP = 13     /* sync_file_range / msync: logged, not a barrier */
};

/* PL_FALLOC: a = offset, b = length, mode = the fallocate mode. */
struct plsim_rec {
  uint8_t type;
  uint8_t pad[3];
  uint32_t fid;
  uint64_t a;
  uint64_t b;
  uint32_t mode;
  uint32_t len1;
  uint32_t len2;
  uint32_t dlen;
};

#endif
