/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * model.h - the power-loss simulator's file-system model. Pure: reads a
 * trace (trace.h), keeps per-file durable content plus unsynced operations
 * and the directory-entry history, and writes crash states into fresh
 * directories. No lmq calls. See docs/crashsim.md.
 */
#ifndef PLSIM_MODEL_H
#define PLSIM_MODEL_H
#include "trace.h"
#include <stddef.h>
#include <stdint.h>

/* One decoded trace record (pointers into the trace buffer). */
typedef struct pl_op {
  struct plsim_rec h;
  const char *p1, *p2; /* NUL-terminated copies */
  const unsigned char *data;
} pl_op;

typedef struct pl_trace {
  pl_op *ops;
  size_t n;
  unsigned char *buf;
} pl_trace;

/* Read a trace file; 0 or -1 (message on stderr). */
int pl_trace_load(pl_trace *t, const char *path);
void pl_trace_free(pl_trace *t);

typedef struct pl_model pl_model;

pl_model *pl_model_new(void);
void pl_model_free(pl_model *m);
/* Apply one trace record. */
void pl_model_step(pl_model *m, const pl_op *op);
/* The event-log bytes seen so far (valid until the next step). */
const char *pl_model_events(const pl_model *m, size_t *len);

enum pl_variant_kind {
  PL_V_DURABLE = 0, /* only what was synced; strict directory rule */
  PL_V_ALL = 1,     /* everything: what SIGKILL leaves */
  PL_V_RANDOM = 2   /* random subset of unsynced sectors and dir ops */
};

typedef struct pl_variant {
  int kind;
  double p;          /* PL_V_RANDOM: probability a piece survives */
  unsigned sector;   /* 512 or 4096 */
  int full_size;     /* size = current size; else grows to kept pieces */
  double dir_keep;   /* probability that all pending dir ops are kept */
  uint64_t seed;
} pl_variant;

/* Write the crash state into dir (which must exist and be empty; it plays
 * the role of PLSIM_ROOT). 0 or -1. */
int pl_model_materialize(const pl_model *m, const pl_variant *v, const char *dir);
/* Short description of a variant, for messages. */
void pl_variant_describe(const pl_variant *v, char *buf, size_t len);

#endif
