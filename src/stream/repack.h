/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* repack.h - routing results of repack functions (not installed). */
#ifndef LMQ_STREAM_REPACK_H
#define LMQ_STREAM_REPACK_H

#include "lmq_stream.h"

typedef struct lmq_route {
  int32_t channel;
  lmq_tsmsg *msg; /* one reference held */
} lmq_route;

struct lmq_repack_out {
  lmq_route *routes;
  size_t n, cap;
};

/* Drop the routes' references and reset (the array is kept for reuse). */
void lmq__repack_out_reset(lmq_repack_out *o);
void lmq__repack_out_free(lmq_repack_out *o);
/* Run fn (NULL: default) into o and check every route is in range. */
int lmq__repack_run(lmq_repack_out *o, size_t nchannels, lmq_repack_fn fn,
                    void *arg, lmq_tsmsg *const *msgs, size_t n);

#endif
