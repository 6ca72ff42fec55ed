/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* slab.c - consumed messages carved from shared blocks (see slab.h). */
#include "config.h"
#include "stream/slab.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SLAB_BYTES (64u * 1024u)
#define SLAB_BIG (SLAB_BYTES / 8) /* larger blocks get their own malloc */
#define SLAB_ALIGN alignof(max_align_t)

struct lmq__slab {
  atomic_size_t live; /* blocks alive, plus 1 while a reader carves */
  alignas(max_align_t) unsigned char mem[];
};

void lmq__slab_release(lmq__slab *s) {
  if (s && atomic_fetch_sub_explicit(&s->live, 1, memory_order_acq_rel) == 1)
    free(s);
}

void lmq__slab_cur_drop(lmq__slab_cur *c) {
  lmq__slab_release(c->cur);
  c->cur = NULL;
  c->used = 0;
}

void *lmq__slab_alloc(lmq__slab_cur *c, size_t n, lmq__slab **owner) {
  *owner = NULL;
  if (n > SLAB_BIG)
    return malloc(n);
  n = (n + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1);
  if (!c->cur || SLAB_BYTES - c->used < n) {
    lmq__slab *s = malloc(sizeof *s + SLAB_BYTES);
    if (!s)
      return NULL;
    atomic_init(&s->live, 1);
    lmq__slab_cur_drop(c);
    c->cur = s;
  }
  void *p = c->cur->mem + c->used;
  c->used += n;
  atomic_fetch_add_explicit(&c->cur->live, 1, memory_order_relaxed);
  *owner = c->cur;
  return p;
}
