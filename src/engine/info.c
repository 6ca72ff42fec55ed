/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * info.c - channel, group and env figures in structs that can grow (a
 * size field, as lmq_recovery_report): the fixed-layout stats structs stay
 * as they are, new fields go here.
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"

#include <stddef.h>
#include <string.h>

/* Copy the first out->size bytes of in (whose size field is set) to out. */
static void give(void *out, void *in, size_t full) {
  uint32_t want;
  memcpy(&want, out, sizeof want);
  size_t n = want < full ? want : full;
  memcpy(in, &(uint32_t){(uint32_t)n}, sizeof(uint32_t));
  memcpy(out, in, n);
}

LMQ_API int lmq_channel_info_get(lmq_channel_info *out, lmq_env *env,
                                 const char *channel) {
  lmq__error_clear();
  if (!out || out->size < offsetof(lmq_channel_info, groups))
    return lmq__error(LMQ_EINVAL, "out is NULL or out->size is too small "
                      "(use LMQ_CHANNEL_INFO_INIT)");
  LMQ__ENV_CHECK(env);
  lmq_channel_stats st;
  int rc = lmq_channel_stats_get(&st, env, channel);
  if (rc)
    return rc;
  lmq_chan *ch;
  if ((rc = lmq__chan_get(&ch, env, channel)))
    return rc;
  lmq_channel_info in;
  memset(&in, 0, sizeof in);
  in.messages = st.messages;
  in.bytes = st.bytes;
  in.first_id = st.first_id;
  in.last_id = st.last_id;
  in.created_ms = ch->created_ms;
  pthread_mutex_lock(&ch->mu);
  in.retention_age_ms = ch->ret_age_ms;
  in.retention_bytes = ch->ret_bytes;
  for (lmq_group *g = ch->groups; g; g = g->next)
    in.groups += !g->dead;
  pthread_mutex_unlock(&ch->mu);
  lmq__chan_put(env, ch);
  give(out, &in, sizeof in);
  return 0;
}

LMQ_API int lmq_group_info_get(lmq_group_info *out, lmq_env *env,
                               const char *channel, const char *group) {
  lmq__error_clear();
  if (!out || out->size < offsetof(lmq_group_info, uncommitted))
    return lmq__error(LMQ_EINVAL, "out is NULL or out->size is too small "
                      "(use LMQ_GROUP_INFO_INIT)");
  lmq_group_stats st;
  int rc = lmq_group_stats_get(&st, env, channel, group);
  if (rc)
    return rc;
  lmq_group_info in;
  memset(&in, 0, sizeof in);
  in.cursor = st.cursor;
  in.committed = st.committed;
  in.lag = st.lag;
  in.uncommitted = st.cursor != st.committed;
  give(out, &in, sizeof in);
  return 0;
}

LMQ_API int lmq_env_info_get(lmq_env_info *out, lmq_env *env) {
  lmq__error_clear();
  if (!out || out->size < offsetof(lmq_env_info, unapplied_memory))
    return lmq__error(LMQ_EINVAL, "out is NULL or out->size is too small "
                      "(use LMQ_ENV_INFO_INIT)");
  lmq_env_stats st;
  int rc = lmq_env_stats_get(&st, env);
  if (rc)
    return rc;
  lmq_env_info in;
  memset(&in, 0, sizeof in);
  in.wal_bytes = st.wal_bytes;
  in.wal_segment = st.wal_segment;
  in.applied_segment = st.applied_segment;
  in.applied_offset = st.applied_offset;
  in.unapplied_bytes = st.unapplied_bytes;
  in.fsyncs = st.fsyncs;
  in.commits = st.commits;
  in.produced = st.produced;
  in.map_size = st.map_size;
  in.map_used = st.map_used;
  in.channels = st.channels;
  pthread_mutex_lock(&env->app_mu);
  in.unapplied_memory = env->unapplied_mem;
  pthread_mutex_unlock(&env->app_mu);
  in.max_unapplied = env->opt.max_unapplied;
  in.memory_limit = env->opt.memory_limit;
  in.read_memory = lmq__mem_read_used(env);
  give(out, &in, sizeof in);
  return 0;
}
