/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * reader.c - looking without a consumer group: the library version, a
 * channel's group names, and group-less reads that write no cursor.
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

LMQ_API const char *lmq_version(void) { return PACKAGE_VERSION; }

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

LMQ_API int lmq_group_list(char ***out, size_t *count, lmq_env *env,
                           const char *channel) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  LMQ__ENV_CHECK(env);
  lmq_chan *ch;
  int rc = lmq__chan_get(&ch, env, channel);
  if (rc)
    return rc;
  pthread_mutex_lock(&ch->mu);
  size_t n = 0;
  for (lmq_group *g = ch->groups; g; g = g->next)
    n += !g->dead;
  char **v = calloc(n + 1, sizeof *v);
  size_t i = 0;
  for (lmq_group *g = ch->groups; v && g; g = g->next) {
    if (g->dead)
      continue;
    if (!(v[i] = strdup(g->name))) {
      lmq_strv_free(v);
      v = NULL;
      break;
    }
    i++;
  }
  pthread_mutex_unlock(&ch->mu);
  lmq__chan_put(env, ch);
  if (!v)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  qsort(v, i, sizeof *v, cmp_str);
  *out = v;
  if (count)
    *count = i;
  return 0;
}

LMQ_API int lmq_read(lmq_msgs **out, lmq_env *env, const char *channel,
                     lmq_id from, size_t max) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  if (max == 0)
    return lmq__error(LMQ_EINVAL, "max must be at least 1");
  LMQ__ENV_CHECK(env);
  lmq_chan *ch;
  int rc = lmq__chan_get(&ch, env, channel);
  if (rc)
    return rc;
  rc = lmq__read_into(out, env, ch, from, max);
  lmq__chan_put(env, ch);
  if (rc)
    return rc;
  size_t n = lmq_msgs_count(*out);
  return (int)(n > INT32_MAX ? INT32_MAX : n);
}

