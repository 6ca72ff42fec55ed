/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * memlimit.c - the env's memory_limit: how it is shared out, and the
 * account of consume results not yet freed (lmq.h, "memory_limit").
 *
 * Produce-side shares lower existing bounds (max_unapplied, apply_bytes,
 * the WAL chunk's soft cap), whose back-pressure already makes producers
 * wait rather than fail. The read share is an account every consume result
 * is charged to until it is freed; a consume asks how much is left and
 * returns fewer messages (at least one) when little is. The account is a
 * separate, reference-counted block because results may outlive their env
 * (lmq_env_close leaves them valid).
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"

#include "common/os.h"

#include <inttypes.h>
#ifdef HAVE_MALLOC_TRIM
#include <malloc.h>
#endif
#include <stdlib.h>

/* A chunk is handed to the leader once this full when no limit is set. */
#define CHUNK_SOFT_CAP ((size_t)4 << 20)

struct lmq__memacct {
  _Atomic uint64_t used;
  atomic_uint refs;
};

int lmq__mem_setup(lmq_env *env) {
  lmq_env_options *o = &env->opt;
  env->chunk_cap = CHUNK_SOFT_CAP;
  env->read_cap = 0;
  env->acct = NULL;
  uint64_t l = o->memory_limit;
  if (!l)
    return 0;
  if (l < ((uint64_t)1 << 20) || l / 16 < o->max_message_size)
    return lmq__error(LMQ_EINVAL, "memory_limit %" PRIu64 " is below 1 MiB or "
                      "16 x max_message_size (%u): lower max_message_size",
                      l, o->max_message_size);
  if (o->max_unapplied > l / 4)
    o->max_unapplied = l / 4;
  if (o->apply_bytes > l / 16)
    o->apply_bytes = l / 16;
  if (env->chunk_cap > l / 16)
    env->chunk_cap = (size_t)(l / 16);
  env->read_cap = l / 8;
  env->acct = calloc(1, sizeof *env->acct);
  if (!env->acct)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  atomic_init(&env->acct->refs, 1);
  return 0;
}

void lmq__mem_teardown(lmq_env *env) {
  lmq__memacct_unref(env->acct);
  env->acct = NULL;
}

size_t lmq__mem_read_allowance(const lmq_env *env) {
  if (!env->acct)
    return SIZE_MAX;
  uint64_t used = atomic_load_explicit(&env->acct->used, memory_order_relaxed);
  return used >= env->read_cap ? 0 : (size_t)(env->read_cap - used);
}

/* Under a limit, the free memory the applied chunks leave in the
 * producers' malloc arenas (they are freed out of order, by another
 * thread) is given back as the load goes on, not only once idle: measured
 * with 256 channels under a 16 MiB limit, free-but-held heap reached 13 MiB
 * next to 12 MiB in use. At most every 100 ms, once L/8 was freed. */
#define TRIM_EVERY_NS 100000000u
void lmq__mem_applied(lmq_env *env, uint64_t mem) {
  if (!env->acct)
    return;
  env->trim_pending += mem;
  uint64_t now = lmq__mono_ns();
  if (env->trim_pending < env->read_cap || now - env->last_trim_ns < TRIM_EVERY_NS)
    return;
  env->trim_pending = 0;
  env->last_trim_ns = now;
#ifdef HAVE_MALLOC_TRIM
  malloc_trim(0);
#endif
}

uint64_t lmq__mem_read_used(const lmq_env *env) {
  return env->acct ? atomic_load(&env->acct->used) : 0;
}

lmq__memacct *lmq__memacct_charge(lmq__memacct *a, uint64_t bytes) {
  if (!a)
    return NULL;
  atomic_fetch_add(&a->refs, 1);
  atomic_fetch_add(&a->used, bytes);
  return a;
}

void lmq__memacct_discharge(lmq__memacct *a, uint64_t bytes) {
  if (!a)
    return;
  atomic_fetch_sub(&a->used, bytes);
  lmq__memacct_unref(a);
}

void lmq__memacct_unref(lmq__memacct *a) {
  if (a && atomic_fetch_sub(&a->refs, 1) == 1)
    free(a);
}
