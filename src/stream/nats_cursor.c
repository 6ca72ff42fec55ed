/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* nats_cursor.c - committed group positions of the NATS backend in the
 * JetStream Key-Value bucket "lmq_cursors" (stream KV_lmq_cursors).
 *
 * Why: a durable consumer's acknowledgement is answered by the consumer's
 * leader before its raft proposal is committed, so a leader killed right
 * after a commit can come back with an older ack floor. A stream publish is
 * answered only once a quorum of the stream's replicas stored it: a cursor
 * written here survives the loss of any one node of an R3 cluster.
 *
 * Key "<stream>.<durable>" (both escaped to [A-Za-z0-9_-], so valid key
 * tokens, and the stream is the first token: a channel's cursors are the
 * subjects "$KV.lmq_cursors.<stream>.>"). Value "lmq1 <created> <seq>":
 * <seq> the committed stream sequence (everything <= it is done),
 * <created> the stream's creation time in ns (from its stream info), which
 * tells a channel destroyed and created again under the same name from the
 * one the cursor was written for: a cursor of another incarnation is not
 * found. History 1: only the last value is kept.
 *
 * Reads use the JetStream "get last message for subject" API, which the
 * stream's leader answers, not kvStore_Get: that may use a direct get,
 * which any replica answers, possibly one that has not applied the last
 * write yet. */
#include "stream/nats_cursor.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCUR_STREAM "KV_" LMQ_NCUR_BUCKET
#define NCUR_SUBJ "$KV." LMQ_NCUR_BUCKET "."
#define NCUR_CREATE_MS 5000 /* a cluster that is still forming: retry */

struct lmq_ncur {
  jsCtx *js;
  int replicas;
  pthread_mutex_t mu;
  int ready; /* the bucket is known to exist */
};

lmq_ncur *lmq__ncur_create(jsCtx *js, int replicas) {
  lmq_ncur *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->js = js;
  c->replicas = replicas;
  pthread_mutex_init(&c->mu, NULL);
  return c;
}

void lmq__ncur_destroy(lmq_ncur *c) {
  if (!c)
    return;
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* "$KV.lmq_cursors.<stream>.<durable>" (durable NULL: "<stream>.>"). */
static char *subject(const char *stream, const char *durable) {
  size_t n = sizeof NCUR_SUBJ + strlen(stream) + 1 + (durable ? strlen(durable) : 1);
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s%s.%s", NCUR_SUBJ, stream, durable ? durable : ">");
  return s;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Create the bucket, or bind to it when it exists. Concurrent creators:
 * adding a stream that exists with the same configuration succeeds; one
 * that exists with another (a backend of another replica count made it) is
 * refused, and then the bind finds it and it is used as it is. */
natsStatus lmq__ncur_ensure(lmq_ncur *c) {
  pthread_mutex_lock(&c->mu);
  natsStatus s = NATS_OK;
  long long end = mono_ms() + NCUR_CREATE_MS;
  while (!c->ready) {
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = LMQ_NCUR_BUCKET;
    cfg.History = 1;
    cfg.Replicas = c->replicas;
    cfg.StorageType = js_FileStorage;
    kvStore *kv = NULL;
    s = js_CreateKeyValue(&kv, c->js, &cfg);
    kvStore_Destroy(kv);
    if (s != NATS_OK) {
      kv = NULL;
      s = js_KeyValue(&kv, c->js, LMQ_NCUR_BUCKET);
      kvStore_Destroy(kv);
    }
    if (s == NATS_OK)
      c->ready = 1;
    else if (mono_ms() >= end)
      break;
    else
      nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
  }
  pthread_mutex_unlock(&c->mu);
  return s;
}

natsStatus lmq__ncur_get(lmq_ncur *c, const char *stream, const char *durable,
                         int64_t created, int *found, uint64_t *seq, jsErrCode *je) {
  *found = 0;
  *seq = 0;
  char *subj = subject(stream, durable);
  if (!subj)
    return NATS_NO_MEMORY;
  natsMsg *m = NULL;
  natsStatus s = js_GetLastMsg(&m, c->js, NCUR_STREAM, subj, NULL, je);
  free(subj);
  if (s == NATS_NOT_FOUND) /* no bucket, or no cursor */
    return NATS_OK;
  if (s != NATS_OK)
    return s;
  char v[64];
  int len = natsMsg_GetDataLength(m);
  long long cr = 0;
  unsigned long long sq = 0;
  /* Empty: a removed key (its delete or purge marker). */
  if (len > 0 && len < (int)sizeof v) {
    memcpy(v, natsMsg_GetData(m), (size_t)len);
    v[len] = 0;
    if (sscanf(v, "lmq1 %lld %llu", &cr, &sq) == 2 && cr == (long long)created) {
      *found = 1;
      *seq = sq;
    }
  }
  natsMsg_Destroy(m);
  return NATS_OK;
}

natsStatus lmq__ncur_put(lmq_ncur *c, const char *stream, const char *durable,
                         int64_t created, uint64_t seq, int wait_ms, jsErrCode *je) {
  natsStatus s = lmq__ncur_ensure(c);
  if (s != NATS_OK)
    return s;
  char *subj = subject(stream, durable);
  if (!subj)
    return NATS_NO_MEMORY;
  char v[64];
  int len = snprintf(v, sizeof v, "lmq1 %lld %" PRIu64, (long long)created, seq);
  jsPubOptions o;
  jsPubOptions_Init(&o);
  o.MaxWait = wait_ms > 0 ? wait_ms : 1;
  o.ExpectStream = NCUR_STREAM;
  jsPubAck *pa = NULL;
  s = js_Publish(&pa, c->js, subj, v, len, &o, je);
  jsPubAck_Destroy(pa);
  free(subj);
  if (s == NATS_NO_RESPONDERS) { /* the bucket may have been deleted: check next time */
    pthread_mutex_lock(&c->mu);
    c->ready = 0;
    pthread_mutex_unlock(&c->mu);
  }
  return s;
}

natsStatus lmq__ncur_drop(lmq_ncur *c, const char *stream, jsErrCode *je) {
  char *subj = subject(stream, NULL);
  if (!subj)
    return NATS_NO_MEMORY;
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Purge.Subject = subj;
  natsStatus s = js_PurgeStream(c->js, NCUR_STREAM, &o, je);
  free(subj);
  return s == NATS_NOT_FOUND ? NATS_OK : s;
}
