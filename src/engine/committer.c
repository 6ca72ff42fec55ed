/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * committer.c - the thread that talks to the metadata store on the env's
 * behalf: cursor auto-commit (every autocommit_ms) and mirroring the ID
 * high-water mark after checkpoints.
 *
 * With etcd these are network calls that may take seconds when etcd is slow
 * or away. They used to run on the applier thread, so an etcd outage
 * stalled the WAL apply and then every producer. Here they stall nothing:
 * produce and consume never wait for this thread, and a commit that fails
 * is retried on the next round (the cursors stay dirty).
 */
#include "config.h"
#include "engine/engine.h"
#include "engine/wal.h"
#include "common/os.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* Mirror the ID high-water mark into the metadata store. Best effort: the
 * authoritative copy is in #sys; this one keeps IDs above every cursor kept
 * in a shared store even if the data directory goes back in time. */
void lmq__mirror_hwm(lmq_env *env) {
  pthread_mutex_lock(&env->wal_mu);
  lmq_id hwm = env->last_id;
  pthread_mutex_unlock(&env->wal_mu);
  if (hwm == atomic_load(&env->meta_hwm))
    return;
  unsigned char v[8];
  lmq__put64(v, hwm);
  if (lmq_meta_put(env->meta, META_HWM, strlen(META_HWM), v, 8) == 0)
    atomic_store(&env->meta_hwm, hwm);
}

void lmq__committer_kick(lmq_env *env) {
  pthread_mutex_lock(&env->cm_mu);
  env->cm_hwm = 1;
  pthread_cond_signal(&env->cm_cond);
  pthread_mutex_unlock(&env->cm_mu);
}

static void *committer_main(void *arg) {
  lmq_env *env = arg;
  uint64_t period = (uint64_t)env->opt.autocommit_ms * 1000000u;
  uint64_t next = lmq__mono_ns() + period;
  pthread_mutex_lock(&env->cm_mu);
  while (!env->cm_stop) {
    if (!env->cm_hwm) {
      if (period) {
        struct timespec ts = {(time_t)(next / 1000000000u),
                              (long)(next % 1000000000u)};
        pthread_cond_timedwait(&env->cm_cond, &env->cm_mu, &ts);
      } else {
        pthread_cond_wait(&env->cm_cond, &env->cm_mu);
      }
    }
    if (env->cm_stop)
      break;
    int hwm = env->cm_hwm;
    env->cm_hwm = 0;
    pthread_mutex_unlock(&env->cm_mu);
    if (hwm)
      lmq__mirror_hwm(env);
    uint64_t now = lmq__mono_ns();
    if (period && now >= next) {
      lmq__groups_commit_all(env);
      next = lmq__mono_ns() + period;
    }
    pthread_mutex_lock(&env->cm_mu);
  }
  pthread_mutex_unlock(&env->cm_mu);
  return NULL;
}

int lmq__committer_start(lmq_env *env) {
  if (pthread_create(&env->committer, NULL, committer_main, env) != 0)
    return -1;
  env->committer_started = 1;
  return 0;
}

void lmq__committer_stop(lmq_env *env) {
  if (!env->committer_started)
    return;
  pthread_mutex_lock(&env->cm_mu);
  env->cm_stop = 1;
  pthread_cond_signal(&env->cm_cond);
  pthread_mutex_unlock(&env->cm_mu);
  pthread_join(env->committer, NULL);
  env->committer_started = 0;
}
