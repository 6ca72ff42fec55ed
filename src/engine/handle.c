/*
 * handle.c - channel and consumer (group) handles: resolve a name once,
 * then produce, consume and move cursors without looking it up again.
 *
 * A handle holds a reference on its channel (lmq_chan) that keeps the
 * structure, and the groups on it, allocated until the handle is closed;
 * those references are also counted in ch->hrefs so that a destroy does
 * not wait for handles to close. Each call through a handle takes one
 * more reference for its duration, without the registry lock: the
 * handle's reference is already there, so the count never goes 0 -> 1
 * unlocked (see lmq__chan_leave). A destroy sets ch->dead first and then
 * waits for the calls in progress; a call that starts later sees dead and
 * returns LMQ_ENOCHANNEL. A group destroyed while a consumer handle holds
 * it stays on the channel's dead list, so the handle's pointer stays
 * valid and its calls return LMQ_ENOGROUP.
 */
#include "config.h"
#include "engine/engine.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

struct lmq_channel {
  lmq_env *env;
  lmq_chan *ch;
};

struct lmq_consumer {
  lmq_env *env;
  lmq_chan *ch;
  lmq_group *g;
};

/* A reference held by a call becomes a handle's (counted in hrefs). A
 * destroy that started meanwhile waits for callers' references only:
 * this one just stopped being one, so wake it to look again (it checks
 * under reg_mu, which we hold). */
static void to_handle(lmq_env *env, lmq_chan *ch) {
  pthread_mutex_lock(&env->reg_mu);
  atomic_fetch_add(&ch->hrefs, 1);
  if (atomic_load(&ch->dead))
    pthread_cond_broadcast(&env->reg_cond);
  pthread_mutex_unlock(&env->reg_mu);
}

/* Take a reference on a live channel for a new handle (registry lookup). */
static int hold(lmq_chan **out, lmq_env *env, const char *name) {
  int rc = lmq__chan_get(out, env, name); /* takes refs under reg_mu */
  if (rc)
    return rc;
  to_handle(env, *out);
  return 0;
}

/* Give back a handle's reference (may free the channel). */
static void unhold(lmq_env *env, lmq_chan *ch) {
  /* hrefs and refs drop together under reg_mu, so that a destroy reading
   * refs - hrefs never sees one without the other. */
  pthread_mutex_lock(&env->reg_mu);
  atomic_fetch_sub(&ch->hrefs, 1);
  pthread_mutex_unlock(&env->reg_mu);
  lmq__chan_put(env, ch);
}

/* Start a call through a handle on ch: one more reference, or
 * LMQ_ENOCHANNEL once the channel is being destroyed. */
static int enter(lmq_env *env, lmq_chan *ch) {
  atomic_fetch_add(&ch->refs, 1);
  if (atomic_load(&ch->dead)) {
    lmq__chan_leave(env, ch);
    return lmq__error(LMQ_ENOCHANNEL, "channel '%s' was destroyed", ch->name);
  }
  if (atomic_load(&env->closed)) {
    lmq__chan_leave(env, ch);
    return lmq__error(LMQ_ECLOSED, "env is closed");
  }
  return 0;
}

/* ------------------------------------------------------------ channels */

LMQ_API int lmq_channel_open(lmq_channel **out, lmq_env *env, const char *name) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  LMQ__ENV_CHECK(env);
  lmq_channel *h = malloc(sizeof *h);
  if (!h)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  int rc = hold(&h->ch, env, name);
  if (rc) {
    free(h);
    return rc;
  }
  h->env = env;
  *out = h;
  return 0;
}

LMQ_API void lmq_channel_close(lmq_channel *h) {
  if (!h)
    return;
  unhold(h->env, h->ch);
  free(h);
}

LMQ_API const char *lmq_channel_name(const lmq_channel *h) {
  return h ? h->ch->name : NULL;
}

LMQ_API int lmq_channel_produce(lmq_channel *h, const lmq_buf *msgs, size_t n,
                                lmq_id *out_ids, int sync) {
  lmq__error_clear();
  if (!h)
    return lmq__error(LMQ_EINVAL, "channel handle is NULL");
  int rc = lmq__env_writable(h->env, "produce");
  if (rc || (rc = enter(h->env, h->ch)))
    return rc;
  /* The call's reference goes to the WAL record (or is released). */
  return lmq__produce_ch(h->env, h->ch, msgs, n, out_ids, sync);
}

LMQ_API int lmq_channel_latest_id(lmq_id *out, lmq_channel *h) {
  lmq__error_clear();
  if (!out || !h)
    return lmq__error(LMQ_EINVAL, "%s is NULL", out ? "channel handle" : "out");
  int rc = enter(h->env, h->ch);
  if (rc)
    return rc;
  rc = lmq__latest_id_ch(out, h->env, h->ch);
  lmq__chan_leave(h->env, h->ch);
  return rc;
}

/* ------------------------------------------------------------ consumers */

LMQ_API int lmq_consumer_open(lmq_consumer **out, lmq_channel *h,
                              const char *group) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  if (!h)
    return lmq__error(LMQ_EINVAL, "channel handle is NULL");
  int rc = lmq__name_check("group", group);
  if (rc)
    return rc;
  if ((rc = enter(h->env, h->ch)))
    return rc;
  lmq_chan *ch = h->ch;
  lmq_group *g = NULL;
  pthread_mutex_lock(&ch->mu);
  for (g = ch->groups; g; g = g->next)
    if (!strcmp(g->name, group))
      break;
  pthread_mutex_unlock(&ch->mu);
  lmq_consumer *c = g ? malloc(sizeof *c) : NULL;
  if (!c) {
    lmq__chan_leave(h->env, ch);
    return g ? lmq__error(LMQ_ENOMEM, "out of memory")
             : lmq__error(LMQ_ENOGROUP, "no group '%s' on channel '%s'", group,
                          ch->name);
  }
  /* The call's reference becomes the consumer's. */
  to_handle(h->env, ch);
  c->env = h->env;
  c->ch = ch;
  c->g = g;
  *out = c;
  return 0;
}

LMQ_API void lmq_consumer_close(lmq_consumer *c) {
  if (!c)
    return;
  unhold(c->env, c->ch);
  free(c);
}

LMQ_API const char *lmq_consumer_group(const lmq_consumer *c) {
  return c ? c->g->name : NULL;
}

/* Start a call through consumer c (NULL: LMQ_EINVAL). */
static int centre(const lmq_consumer *c) {
  if (!c)
    return lmq__error(LMQ_EINVAL, "consumer handle is NULL");
  return enter(c->env, c->ch);
}

/* The same for a call that writes (LMQ_ENOTSUP on a read-only env). */
static int centre_w(const lmq_consumer *c, const char *what) {
  if (!c)
    return lmq__error(LMQ_EINVAL, "consumer handle is NULL");
  int rc = lmq__env_writable(c->env, what);
  return rc ? rc : enter(c->env, c->ch);
}

LMQ_API int lmq_consumer_consume(lmq_msgs **out, lmq_consumer *c, size_t max,
                                 int timeout_ms) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  *out = NULL;
  if (max == 0)
    return lmq__error(LMQ_EINVAL, "max must be at least 1");
  int rc = centre(c);
  if (rc)
    return rc;
  rc = lmq__consume_g(out, c->env, c->ch, c->g, max, timeout_ms);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}

LMQ_API int lmq_consumer_commit(lmq_consumer *c) {
  lmq__error_clear();
  int rc = centre_w(c, "commit");
  if (rc)
    return rc;
  rc = lmq__commit_g(c->env, c->ch, c->g);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}

LMQ_API int lmq_consumer_ack(lmq_consumer *c, lmq_id id) {
  lmq__error_clear();
  int rc = centre_w(c, "ack");
  if (rc)
    return rc;
  rc = lmq__ack_g(c->env, c->ch, c->g, id);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}

LMQ_API int lmq_consumer_rewind(lmq_consumer *c) {
  lmq__error_clear();
  int rc = centre(c);
  if (rc)
    return rc;
  rc = lmq__rewind_g(c->ch, c->g);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}

static int cseek(lmq_consumer *c, int kind, lmq_id id) {
  lmq__error_clear();
  int rc = centre_w(c, "seek");
  if (rc)
    return rc;
  rc = lmq__seek_g(c->env, c->ch, c->g, kind, id);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}

LMQ_API int lmq_consumer_seek(lmq_consumer *c, lmq_id id) {
  return cseek(c, LMQ__SEEK_ID, id);
}

LMQ_API int lmq_consumer_seek_earliest(lmq_consumer *c) {
  return cseek(c, LMQ__SEEK_EARLIEST, 0);
}

LMQ_API int lmq_consumer_seek_latest(lmq_consumer *c) {
  return cseek(c, LMQ__SEEK_LATEST, 0);
}

LMQ_API int lmq_consumer_seek_time(lmq_consumer *c, uint64_t ms) {
  if (ms > lmq_id_time(LMQ_ID_MAX)) {
    lmq__error_clear();
    return lmq__error(LMQ_EINVAL, "time %llu ms is out of range",
                      (unsigned long long)ms);
  }
  return cseek(c, LMQ__SEEK_TIME, lmq_id_from_time(ms));
}

LMQ_API int lmq_consumer_fd(int *out, lmq_consumer *c) {
  lmq__error_clear();
  if (!out)
    return lmq__error(LMQ_EINVAL, "out is NULL");
  int rc = centre(c);
  if (rc)
    return rc;
  pthread_mutex_lock(&c->g->mu);
  int dead = c->g->dead;
  pthread_mutex_unlock(&c->g->mu);
  rc = dead ? lmq__error(LMQ_ENOGROUP, "group '%s' was destroyed", c->g->name)
            : lmq__group_fd_g(out, c->ch, c->g);
  lmq__chan_leave(c->env, c->ch);
  return rc;
}
