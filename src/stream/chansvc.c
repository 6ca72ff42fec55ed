/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * chansvc.c - the channel service (seed 8.2): allocates channels with unique
 * names and an owner description, describes and destroys them.
 *
 * Metadata keys (in the store the factory gives: meta.uri's etcd, else the
 * engine's own store, else an embedded store in engine.dir/lmq-meta for
 * backends that keep none, such as nats and rocksdb; shared by every process
 * using it):
 *   chansvc/seq            decimal counter of names handed out
 *   chansvc/ch/<name>      OwnerDescription (protobuf)
 * A creation is one transaction guarded by the counter's version, so two
 * processes never hand out the same name.
 */
#include "config.h"
#include "stream/stream.h"
#include "common/error.h"
#include "lmq_msg.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_KEY "chansvc/seq"
#define CH_PREFIX "chansvc/ch/"
#define MAX_CREATE 4096
/* Owner records per metadata transaction (etcd allows 128 operations). */
#define OWNER_BATCH 100

struct lmq_chansvc {
  lmq_stream_ctx *ctx;
  lmq_meta *meta;
  void *meta_env; /* an embedded store's own LMDB env (see meta_owned) */
  int meta_owned; /* meta was opened for this service: close it */
};

LMQ_API int lmq_chansvc_create(lmq_chansvc **out, lmq_stream_factory *f) {
  if (!out)
    return lmq__error(LMQ_EINVAL, "chansvc_create: out is NULL");
  *out = NULL;
  lmq_chansvc *svc = calloc(1, sizeof *svc);
  if (!svc)
    return lmq__error(LMQ_ENOMEM, "chansvc_create: out of memory");
  int rc = lmq__factory_ctx(&svc->ctx, f);
  if (rc) {
    free(svc);
    return rc;
  }
  rc = lmq__factory_meta(&svc->meta, &svc->meta_env, &svc->meta_owned, f,
                         svc->ctx->be);
  if (rc) {
    lmq_chansvc_destroy(svc);
    return rc;
  }
  *out = svc;
  return 0;
}

LMQ_API void lmq_chansvc_destroy(lmq_chansvc *svc) {
  if (!svc)
    return;
  if (svc->meta_owned)
    lmq__meta_file_close(svc->meta, svc->meta_env);
  lmq__ctx_unref(svc->ctx);
  free(svc);
}

static int ch_key(char *buf, size_t cap, const char *name) {
  int rc = lmq__name_check("channel", name);
  if (rc)
    return rc;
  snprintf(buf, cap, CH_PREFIX "%s", name);
  return 0;
}

static int owner_get(Lmqpb__OwnerDescription **out, lmq_chansvc *svc,
                     const char *name) {
  char key[sizeof CH_PREFIX + LMQ_NAME_MAX];
  int rc = ch_key(key, sizeof key, name);
  if (rc)
    return rc;
  void *val = NULL;
  size_t vlen = 0;
  rc = lmq_meta_get(svc->meta, &val, &vlen, NULL, key, strlen(key));
  if (rc == LMQ_ENOTFOUND)
    return lmq__error(LMQ_ENOCHANNEL,
                      "channel '%s' was not created by the channel service",
                      name);
  if (rc)
    return rc;
  *out = lmqpb__owner_description__unpack(NULL, vlen, val);
  free(val);
  if (!*out)
    return lmq__error(LMQ_ECORRUPT, "channel '%s': owner record is corrupt",
                      name);
  return 0;
}

LMQ_API int lmq_chansvc_create_channels(char ***names, lmq_chansvc *svc,
                                        const lmq_channel_owner *owner,
                                        size_t n) {
  if (names)
    *names = NULL;
  if (!names || !svc || !owner)
    return lmq__error(LMQ_EINVAL, "create_channels: NULL argument");
  if (n < 1 || n > MAX_CREATE)
    return lmq__error(LMQ_EINVAL, "create_channels: count %zu is not in "
                                  "1..%d",
                      n, MAX_CREATE);
  Lmqpb__OwnerDescription od = LMQPB__OWNER_DESCRIPTION__INIT;
  od.role = (char *)(owner->role ? owner->role : "");
  od.address = (char *)(owner->address ? owner->address : "");
  od.description_text = (char *)(owner->description ? owner->description : "");
  size_t olen = lmqpb__owner_description__get_packed_size(&od);
  unsigned char *oval = malloc(olen ? olen : 1);
  char **v = calloc(n + 1, sizeof *v);
  char (*keys)[sizeof CH_PREFIX + 32] = calloc(n, sizeof *keys);
  lmq_meta_op *ops = calloc(n + 1, sizeof *ops);
  lmq_meta_cmp *cmps = calloc(n + 1, sizeof *cmps);
  int rc = 0;
  if (!oval || !v || !keys || !ops || !cmps) {
    rc = lmq__error(LMQ_ENOMEM, "create_channels: out of memory");
    goto done;
  }
  lmqpb__owner_description__pack(&od, oval);
  rc = LMQ_ECONFLICT;
  for (int attempt = 0; attempt < 64 && rc == LMQ_ECONFLICT; attempt++) {
    void *val = NULL;
    size_t vlen = 0;
    uint64_t version = 0, seq = 0;
    rc = lmq_meta_get(svc->meta, &val, &vlen, &version, SEQ_KEY,
                      strlen(SEQ_KEY));
    if (rc == LMQ_ENOTFOUND) {
      version = 0;
      rc = 0;
    } else if (rc == 0) {
      char tmp[32];
      if (vlen == 0 || vlen >= sizeof tmp) {
        free(val);
        rc = lmq__error(LMQ_ECORRUPT, "channel service counter is corrupt");
        break;
      }
      memcpy(tmp, val, vlen);
      tmp[vlen] = 0;
      seq = strtoull(tmp, NULL, 10);
    }
    free(val);
    if (rc)
      break;
    char next[32];
    int nl = snprintf(next, sizeof next, "%" PRIu64, seq + n);
    /* Reserve the n numbers: one compare and one put, whatever n is. */
    cmps[0] = (lmq_meta_cmp){LMQ_META_CMP_VERSION, SEQ_KEY, strlen(SEQ_KEY),
                             version, NULL, 0};
    ops[0] = (lmq_meta_op){LMQ_META_PUT, SEQ_KEY, strlen(SEQ_KEY), next,
                           (size_t)nl};
    if ((rc = lmq_meta_txn(svc->meta, cmps, 1, ops, 1)))
      continue;
    for (size_t i = 0; i < n; i++)
      snprintf(keys[i], sizeof keys[i], CH_PREFIX "lmq-ch-%" PRIu64, seq + 1 + i);
  }
  if (rc == LMQ_ECONFLICT)
    rc = lmq__error(LMQ_ECONFLICT, "create_channels: lost 64 races for the "
                                   "name counter");
  if (rc)
    goto done;
  /*
   * The owner records, in transactions of at most OWNER_BATCH operations:
   * etcd refuses more than 128 in one (--max-txn-ops), and n may be 4096.
   * Each name must be new even if someone wrote the key by hand. If a batch
   * fails, the records already written are deleted again (best effort) and
   * the numbers stay used: a failed call creates nothing.
   */
  size_t done_n = 0;
  while (done_n < n && !rc) {
    size_t k = n - done_n < OWNER_BATCH ? n - done_n : OWNER_BATCH;
    for (size_t i = 0; i < k; i++) {
      const char *key = keys[done_n + i];
      cmps[i] = (lmq_meta_cmp){LMQ_META_CMP_VERSION, key, strlen(key), 0, NULL, 0};
      ops[i] = (lmq_meta_op){LMQ_META_PUT, key, strlen(key), oval, olen};
    }
    if (!(rc = lmq_meta_txn(svc->meta, cmps, k, ops, k)))
      done_n += k;
  }
  if (rc) {
    for (size_t i = 0; i < done_n; i += OWNER_BATCH) {
      size_t k = done_n - i < OWNER_BATCH ? done_n - i : OWNER_BATCH;
      for (size_t j = 0; j < k; j++)
        ops[j] = (lmq_meta_op){LMQ_META_DEL, keys[i + j], strlen(keys[i + j]),
                               NULL, 0};
      lmq_meta_txn(svc->meta, NULL, 0, ops, k);
    }
    goto done;
  }
  lmq_backend *be = svc->ctx->be;
  for (size_t i = 0; i < n; i++) {
    if (!(v[i] = strdup(keys[i] + strlen(CH_PREFIX)))) {
      rc = lmq__error(LMQ_ENOMEM, "create_channels: out of memory");
      goto done;
    }
    if ((rc = be->ops->channel_create(be, v[i])))
      goto done;
  }
  *names = v;
  v = NULL;
done:
  lmq_strv_free(v);
  free(oval);
  free(keys);
  free(ops);
  free(cmps);
  return rc;
}

LMQ_API int lmq_chansvc_destroy_channels(lmq_chansvc *svc,
                                         const char *const *names, size_t n) {
  if (!svc || (n && !names))
    return lmq__error(LMQ_EINVAL, "destroy_channels: NULL argument");
  for (size_t i = 0; i < n; i++) {
    Lmqpb__OwnerDescription *od = NULL;
    int rc = owner_get(&od, svc, names[i]);
    if (rc)
      return rc;
    lmqpb__owner_description__free_unpacked(od, NULL);
  }
  lmq_backend *be = svc->ctx->be;
  for (size_t i = 0; i < n; i++) {
    int rc = be->ops->channel_destroy(be, names[i]);
    if (rc && rc != LMQ_ENOCHANNEL)
      return rc;
    char key[sizeof CH_PREFIX + LMQ_NAME_MAX];
    ch_key(key, sizeof key, names[i]);
    if ((rc = lmq_meta_del(svc->meta, key, strlen(key))) &&
        rc != LMQ_ENOTFOUND)
      return rc;
  }
  return 0;
}

LMQ_API int lmq_chansvc_describe_channels(lmq_channel_desc **out,
                                          lmq_chansvc *svc,
                                          const char *const *names, size_t n) {
  if (out)
    *out = NULL;
  if (!out || !svc || (n && !names))
    return lmq__error(LMQ_EINVAL, "describe_channels: NULL argument");
  lmq_channel_desc *d = calloc(n ? n : 1, sizeof *d);
  if (!d)
    return lmq__error(LMQ_ENOMEM, "describe_channels: out of memory");
  for (size_t i = 0; i < n; i++) {
    Lmqpb__OwnerDescription *od = NULL;
    int rc = owner_get(&od, svc, names[i]);
    if (rc) {
      lmq_channel_descs_free(d, n);
      return rc;
    }
    d[i].channel = strdup(names[i]);
    d[i].role = strdup(od->role);
    d[i].address = strdup(od->address);
    d[i].description = strdup(od->description_text);
    lmqpb__owner_description__free_unpacked(od, NULL);
    if (!d[i].channel || !d[i].role || !d[i].address || !d[i].description) {
      lmq_channel_descs_free(d, n);
      return lmq__error(LMQ_ENOMEM, "describe_channels: out of memory");
    }
  }
  *out = d;
  return 0;
}

LMQ_API void lmq_channel_descs_free(lmq_channel_desc *d, size_t n) {
  if (!d)
    return;
  for (size_t i = 0; i < n; i++) {
    free(d[i].channel);
    free(d[i].role);
    free(d[i].address);
    free(d[i].description);
  }
  free(d);
}
