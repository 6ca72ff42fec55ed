/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * cli_helper - states the lmq(1) tests (t/test_cli.sh) cannot make with
 * the command itself:
 *   cli_helper hold DIR            open DIR, print "ready", keep it open
 *                                  until standard input closes
 *   cli_helper crash DIR CHANNEL N produce N synced messages with the
 *                                  applier held back, then _exit without
 *                                  closing: the WAL holds unapplied records
 */
#include "lmq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int die(const char *what, int rc) {
  fprintf(stderr, "cli_helper: %s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  lmq_env *env;
  int rc;
  if (argc == 3 && !strcmp(argv[1], "hold")) {
    if ((rc = lmq_env_open(&env, argv[2], NULL)))
      return die("open", rc);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (fread(buf, 1, sizeof buf, stdin) > 0)
      ;
    lmq_env_close(env);
    return 0;
  }
  if (argc == 5 && !strcmp(argv[1], "crash")) {
    lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
    o.apply_interval_ms = 3600000; /* the applier waits: records stay in the WAL */
    o.apply_bytes = (uint64_t)64 << 20;
    o.max_unapplied = (uint64_t)128 << 20;
    if ((rc = lmq_env_open(&env, argv[2], &o)))
      return die("open", rc);
    if ((rc = lmq_channel_create(env, argv[3])))
      return die("create", rc);
    long n = atol(argv[4]);
    char msg[64];
    for (long i = 0; i < n; i++) {
      int len = snprintf(msg, sizeof msg, "crash message %ld", i);
      lmq_buf b = {msg, (size_t)len};
      if ((rc = lmq_produce(env, argv[3], &b, 1, NULL, LMQ_SYNC_ALWAYS)))
        return die("produce", rc);
    }
    _exit(0); /* no close: as if the process had been killed */
  }
  fprintf(stderr, "usage: cli_helper hold DIR | crash DIR CHANNEL N\n");
  return 2;
}
