/* etcd.c - etcd v3 driver (JSON gateway over libcurl). Not written yet. */
#include "config.h"
#include "meta/meta.h"
#include "common/error.h"

int lmq__meta_etcd_open(lmq_meta **out, const char *uri) {
  *out = NULL;
  return lmq__error(LMQ_ENOTSUP, "etcd driver is not built yet ('%.100s')", uri);
}
