/*
 * MsgStream, TtMsgStream and the channel service through the public API on
 * a 3-node JetStream cluster with R3 streams (t/nats_cluster.c), the channel
 * service's store in an etcd of the test's own. The adapter's failure tests
 * are in t/test_nats_cluster.c.
 */
#include "config.h"
#include "stream_util.h"
#include "nats_cluster.h"
#include "etcd_harness.h"
#include "util.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lmq_stream_factory *fac;

static void setup(void) {
  cr_assert_eq(lmq_stream_factory_create(&fac), 0);
  cr_assert_eq(lmq_stream_factory_set(fac, "backend", "nats"), 0);
  cr_assert_eq(lmq_stream_factory_set(fac, "nats.url", nc_shared_urls()), 0);
  cr_assert_eq(lmq_stream_factory_set(fac, "nats.replicas", "3"), 0);
}
static void teardown(void) { lmq_stream_factory_destroy(fac); }
TestSuite(stream_cluster, .init = setup, .fini = teardown, .timeout = 90);

static lmq_msgstream *producer(const char *const *ch, size_t n) {
  lmq_msgstream *p = NULL;
  cr_assert_eq(lmq_msgstream_create(&p, fac), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_msgstream_as_producer(p, ch, n), 0, "%s", lmq_errmsg());
  return p;
}

static lmq_msgstream *consumer(int tt, const char *const *ch, size_t n, const char *sub) {
  lmq_msgstream *c = NULL;
  cr_assert_eq(tt ? lmq_ttmsgstream_create(&c, fac) : lmq_msgstream_create(&c, fac), 0);
  cr_assert_eq(lmq_msgstream_as_consumer(c, ch, n, sub, LMQ_SUB_EARLIEST), 0, "%s",
               lmq_errmsg());
  return c;
}

Test(stream_cluster, msgstream_produce_and_consume_on_r3) {
  const char *ch[2] = {"m0", "m1"};
  lmq_msgstream *p = producer(ch, 2);
  enum { N = 400 };
  lmq_msg_pack *pk = NULL;
  cr_assert_eq(lmq_msg_pack_create(&pk), 0);
  for (int i = 1; i <= N; i++)
    cr_assert_eq(lmq_msg_pack_append(pk, su_insert(i, (uint64_t)i, (uint32_t)i)), 0);
  cr_assert_eq(lmq_msgstream_produce(p, pk), 0, "%s", lmq_errmsg());
  lmq_msg_pack_destroy(pk);
  lmq_msgstream *c = consumer(0, ch, 2, "s");
  static char seen[N + 1];
  int got = 0;
  int64_t last[2] = {0, 0};
  while (got < N) {
    lmq_msg_pack *k = su_pack(c);
    for (size_t i = 0; i < k->nmsgs; i++) {
      int64_t id = lmq_tsmsg_id(k->msgs[i]);
      cr_assert(id >= 1 && id <= N && !seen[id], "id %lld", (long long)id);
      /* The default repack sends key k to channel k % 2: order per channel. */
      cr_assert_gt(id, last[id % 2]);
      last[id % 2] = id;
      seen[id] = 1;
      got++;
    }
    lmq_msg_pack_destroy(k);
  }
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

/* One pack per common tick; a new stream seeked to a pack's end positions
 * continues with the next pack, nothing lost or repeated. */
Test(stream_cluster, ttstream_packs_and_checkpoint_resume_on_r3) {
  const char *ch[2] = {"t0", "t1"};
  lmq_msgstream *p = producer(ch, 2);
  for (int t = 1; t <= 3; t++) {
    for (int i = 0; i < 10; i++) {
      int id = (t - 1) * 10 + i + 1;
      su_produce(p, su_insert(id, (uint64_t)((t - 1) * 100 + i + 1), (uint32_t)id));
    }
    su_tick(p, (uint64_t)t * 100);
  }
  lmq_msgstream *c = consumer(1, ch, 2, "tt");
  unsigned char *ckpt = NULL;
  size_t clen = 0;
  for (int t = 1; t <= 2; t++) {
    lmq_msg_pack *k = su_pack(c);
    cr_assert_eq(k->begin_ts, (uint64_t)(t - 1) * 100);
    cr_assert_eq(k->end_ts, (uint64_t)t * 100);
    cr_assert_eq(k->nmsgs, 10, "pack %d has %zu messages", t, k->nmsgs);
    if (t == 1)
      cr_assert_eq(lmq_msg_positions_marshal(&ckpt, &clen, k->end_positions, k->nend), 0);
    lmq_msg_pack_destroy(k);
  }
  lmq_msgstream_close(c);
  /* A restart from the checkpoint after pack 1: packs 2 and 3 again. */
  c = consumer(1, ch, 2, "tt2");
  lmq_msg_position *pos = NULL;
  size_t npos = 0;
  cr_assert_eq(lmq_msg_positions_unmarshal(&pos, &npos, ckpt, clen), 0);
  cr_assert_eq(lmq_msgstream_seek(c, pos, npos), 0, "%s", lmq_errmsg());
  lmq_msg_positions_free(pos, npos);
  free(ckpt);
  for (int t = 2; t <= 3; t++) {
    lmq_msg_pack *k = su_pack(c);
    cr_assert_eq(k->end_ts, (uint64_t)t * 100);
    cr_assert_eq(k->nmsgs, 10);
    for (size_t i = 0; i < k->nmsgs; i++) {
      int64_t id = lmq_tsmsg_id(k->msgs[i]);
      cr_assert(id > (t - 1) * 10 && id <= t * 10, "pack %d: id %lld", t, (long long)id);
    }
    lmq_msg_pack_destroy(k);
  }
  lmq_msgstream_close(c);
  lmq_msgstream_close(p);
}

#ifdef LMQ_HAVE_ETCD
/* The channel service on nats with its store in etcd (meta.uri): what one
 * service creates another (another process) sees. */
Test(stream_cluster, channel_service_with_an_etcd_store) {
  etcd_harness eh;
  cr_assert_eq(eh_start(&eh, NULL), 0, "%s", eh.err);
  char uri[128];
  snprintf(uri, sizeof uri, "etcd://127.0.0.1:%d/lmq/chsvc", eh.port);
  cr_assert_eq(lmq_stream_factory_set(fac, "meta.uri", uri), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_stream_factory_set(fac, "meta.uri", "file:///x"), LMQ_EINVAL);
  lmq_chansvc *svc = NULL, *other = NULL;
  cr_assert_eq(lmq_chansvc_create(&svc, fac), 0, "%s", lmq_errmsg());
  lmq_channel_owner o = {"proxy", "10.0.0.1:19530", "dml"};
  char **names = NULL;
  cr_assert_eq(lmq_chansvc_create_channels(&names, svc, &o, 2), 0, "%s", lmq_errmsg());
  lmq_stream_factory *f2 = NULL;
  cr_assert_eq(lmq_stream_factory_create(&f2), 0);
  cr_assert_eq(lmq_stream_factory_set(f2, "backend", "nats"), 0);
  cr_assert_eq(lmq_stream_factory_set(f2, "nats.url", nc_shared_urls()), 0);
  cr_assert_eq(lmq_stream_factory_set(f2, "meta.uri", uri), 0);
  cr_assert_eq(lmq_chansvc_create(&other, f2), 0, "%s", lmq_errmsg());
  lmq_channel_desc *d = NULL;
  cr_assert_eq(lmq_chansvc_describe_channels(&d, other, (const char *const *)names, 2), 0,
               "%s", lmq_errmsg());
  cr_assert_str_eq(d[1].role, "proxy");
  cr_assert_str_eq(d[1].address, "10.0.0.1:19530");
  lmq_channel_descs_free(d, 2);
  /* The channels exist on the cluster. */
  lmq_msgstream *p = producer((const char *const *)names, 2);
  su_produce(p, su_insert(1, 1, 1));
  lmq_msgstream_close(p);
  cr_assert_eq(lmq_chansvc_destroy_channels(other, (const char *const *)names, 2), 0,
               "%s", lmq_errmsg());
  cr_assert_eq(lmq_chansvc_describe_channels(&d, svc, (const char *const *)names, 1),
               LMQ_ENOCHANNEL);
  lmq_strv_free(names);
  lmq_chansvc_destroy(other);
  lmq_chansvc_destroy(svc);
  lmq_stream_factory_destroy(f2);
  eh_destroy(&eh);
}
#else
/* Built without the etcd driver: the channel service on nats keeps its
 * records in an embedded store in engine.dir. */
Test(stream_cluster, channel_service_with_an_embedded_store) {
  char *d = tmpdir_new();
  cr_assert_eq(lmq_stream_factory_set(fac, "engine.dir", d), 0);
  lmq_chansvc *svc = NULL;
  cr_assert_eq(lmq_chansvc_create(&svc, fac), 0, "%s", lmq_errmsg());
  lmq_channel_owner o = {"proxy", "10.0.0.1:19530", "dml"};
  char **names = NULL;
  cr_assert_eq(lmq_chansvc_create_channels(&names, svc, &o, 2), 0, "%s", lmq_errmsg());
  lmq_channel_desc *dd = NULL;
  cr_assert_eq(lmq_chansvc_describe_channels(&dd, svc, (const char *const *)names, 2), 0);
  cr_assert_str_eq(dd[0].role, "proxy");
  lmq_channel_descs_free(dd, 2);
  cr_assert_eq(lmq_chansvc_destroy_channels(svc, (const char *const *)names, 2), 0);
  lmq_strv_free(names);
  lmq_chansvc_destroy(svc);
  tmpdir_rm(d);
}
#endif
