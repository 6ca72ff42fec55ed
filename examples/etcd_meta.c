/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd_meta.c - an env whose consumer-group cursors and channel metadata
 * live in etcd (the data itself stays in the local directory): every
 * process that opens its directory with the same URI sees the same groups.
 * Every call is checked.
 *
 *   cc etcd_meta.c $(pkg-config --cflags --libs lmq) -o etcd_meta
 *   ./etcd_meta /tmp/example-etcd etcd://127.0.0.1:2379/lmq/example
 *
 * The same directory must always be opened with the same URI (lmq --meta
 * URI ... for the command-line tool).
 */
#include <lmq.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  return rc == LMQ_EUNAVAIL ? 3 : 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIR etcd://HOST:PORT/PREFIX\n", argv[0]);
    return 2;
  }
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = argv[2];
  lmq_env *env;
  int rc = lmq_env_open(&env, argv[1], &o);
  if (rc == LMQ_ENOTSUP) { /* a library built --without-etcd */
    fprintf(stderr, "%s\n", lmq_errmsg());
    return 77;
  }
  if (rc)
    return fail("open", rc);
  int status = 1;
  lmq_buf m = {"hello through etcd", 18};
  lmq_msgs *got = NULL;
  if ((rc = lmq_channel_create(env, "events")) ||
      (rc = lmq_group_create(env, "events", "audit", LMQ_START_EARLIEST)) ||
      (rc = lmq_produce(env, "events", &m, 1, NULL, LMQ_SYNC_DEFAULT))) {
    status = fail("setup", rc);
    goto out;
  }
  int n = lmq_consume(&got, env, "events", "audit", 10, 1000);
  if (n < 0) {
    status = fail("consume", n);
    goto out;
  }
  /* The commit is a compare-and-swap in etcd. */
  if ((rc = lmq_group_commit(env, "events", "audit"))) {
    status = fail("commit", rc);
    goto out;
  }
  char **groups;
  size_t ng;
  if ((rc = lmq_group_list(&groups, &ng, env, "events"))) {
    status = fail("group list", rc);
    goto out;
  }
  printf("consumed %d message(s); groups of 'events' in etcd:", n);
  for (size_t i = 0; i < ng; i++)
    printf(" %s", groups[i]);
  printf("\n");
  lmq_strv_free(groups);
  status = n >= 1 ? 0 : 1;
out:
  lmq_msgs_free(got);
  lmq_env_close(env);
  return status;
}
