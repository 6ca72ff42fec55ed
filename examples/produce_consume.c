/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * produce_consume.c - the engine API end to end: open (or create) a data
 * directory, create a channel and a consumer group, produce a batch durably,
 * consume it, commit the group's cursor, and read the channel again without
 * a group. Every call is checked.
 *
 *   cc produce_consume.c $(pkg-config --cflags --libs lmq) -o produce_consume
 *   ./produce_consume /tmp/example-queue
 */
#include <lmq.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  lmq_env *env;
  lmq_env_options opts = LMQ_ENV_OPTIONS_INIT;
  opts.sync = LMQ_SYNC_ALWAYS; /* produce returns once the WAL is synced */
  int rc = lmq_env_open(&env, argv[1], &opts);
  if (rc)
    return fail("open", rc);
  printf("lmq %s, data in %s\n", lmq_version(), argv[1]);

  int status = 1;
  if ((rc = lmq_channel_create(env, "orders")) ||
      (rc = lmq_group_create(env, "orders", "billing", LMQ_START_EARLIEST))) {
    fail("create", rc);
    goto out;
  }

  /* One produce call: three messages, atomically, one fdatasync. */
  const char *text[] = {"order 1: 2 apples", "order 2: 1 pear", "order 3: 7 figs"};
  lmq_buf batch[3];
  lmq_id ids[3];
  for (int i = 0; i < 3; i++)
    batch[i] = (lmq_buf){text[i], strlen(text[i])};
  if ((rc = lmq_produce(env, "orders", batch, 3, ids, LMQ_SYNC_DEFAULT))) {
    fail("produce", rc);
    goto out;
  }
  printf("produced IDs %llu..%llu\n", (unsigned long long)ids[0],
         (unsigned long long)ids[2]);

  /* Consume what the group has not seen (waiting up to 1 s for a first
   * message), then persist the cursor: after a restart the group resumes
   * after these messages. */
  lmq_msgs *msgs;
  int n = lmq_consume(&msgs, env, "orders", "billing", 100, 1000);
  if (n < 0) {
    fail("consume", n);
    goto out;
  }
  for (int i = 0; i < n; i++) {
    const lmq_msg *m = lmq_msgs_at(msgs, (size_t)i);
    printf("billing got %llu: %.*s\n", (unsigned long long)m->id, (int)m->len,
           (const char *)m->data);
  }
  lmq_msgs_free(msgs);
  if ((rc = lmq_group_commit(env, "orders", "billing"))) {
    fail("commit", rc);
    goto out;
  }

  /* Where the group stands, and a group-less read from the first ID. */
  lmq_group_stats gs;
  if ((rc = lmq_group_stats_get(&gs, env, "orders", "billing"))) {
    fail("group stats", rc);
    goto out;
  }
  printf("billing: lag %llu\n", (unsigned long long)gs.lag);
  if ((n = lmq_read(&msgs, env, "orders", ids[0], 10)) < 0) {
    fail("read", n);
    goto out;
  }
  printf("read without a group: %d messages\n", n);
  lmq_msgs_free(msgs);
  status = gs.lag == 0 && n >= 3 ? 0 : 1;
out:
  lmq_env_close(env);
  return status;
}
