/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * slab.h - the blocks a stream's consumed messages are carved from.
 *
 * A consumed message used to be one malloc (the message, its keys, trace
 * context, position and encoded body) and one free: ~450 instructions a
 * message, a fifth of what a TtMsgStream consumer spends on one. A stream
 * reader now bump-allocates them from 64 KiB slabs; a slab counts the
 * messages carved from it that are alive (plus one for the reader while it
 * still carves from it) and is freed when the count reaches zero. As with
 * librdkafka's messages and their fetch buffer, a message kept alive keeps
 * its slab: at most 64 KiB per slab held. Messages over 8 KiB get their
 * own allocation.
 *
 * Threading: a slab cursor belongs to one reader (a stream is used by one
 * thread at a time); lmq__slab_release may run on any thread.
 */
#ifndef LMQ_STREAM_SLAB_H
#define LMQ_STREAM_SLAB_H

#include <stddef.h>

typedef struct lmq__slab lmq__slab;

/* A reader's current slab. Zero-initialized is empty. */
typedef struct lmq__slab_cur {
  lmq__slab *cur;
  size_t used;
} lmq__slab_cur;

/* n bytes, aligned for any object. When it comes from a slab, *owner is
 * that slab, which now counts it (give it back with lmq__slab_release);
 * otherwise *owner is NULL and the block is free()d by the caller. NULL when
 * out of memory (nothing changed). */
void *lmq__slab_alloc(lmq__slab_cur *c, size_t n, lmq__slab **owner);
/* One block of s is no longer used; the last one frees s. */
void lmq__slab_release(lmq__slab *s);
/* The reader stops carving from its current slab (close). */
void lmq__slab_cur_drop(lmq__slab_cur *c);

#endif
