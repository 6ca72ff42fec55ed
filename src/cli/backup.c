/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * backup.c - `lmq backup DIR DEST`: a hot, consistent copy. With DIR free,
 * a read-write open applies the whole WAL first; with DIR held by a
 * running writer, a read-only open copies what LMDB holds and says how
 * many WAL bytes (at most 100 apply intervals or apply_bytes of writes) it
 * left out.
 */
#include "config.h"
#include "cli/cli.h"

#include <string.h>

int cmd_backup(args *a) {
  const char *dir = NULL, *dest = NULL, *w;
  unsigned flags = 0;
  while ((w = arg_next(a))) {
    if (!strcmp(w, "--compact"))
      flags |= LMQ_COPY_COMPACT;
    else if (w[0] == '-' && w[1])
      return cli_usage_error("unknown option '%s'", w);
    else if (!dir)
      dir = w;
    else if (!dest)
      dest = w;
    else
      return cli_usage_error("usage: lmq backup DIR DEST [--compact]");
  }
  if (!dest)
    return cli_usage_error("usage: lmq backup DIR DEST [--compact]");
  lmq_env *env;
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = g_cli.meta_uri;
  o.flags = LMQ_OPEN_NOCREATE;
  int rc = lmq_env_open(&env, dir, &o);
  if (rc == LMQ_EBUSY) {
    o.flags = LMQ_OPEN_RDONLY;
    rc = lmq_env_open(&env, dir, &o);
    lmq_env_stats s;
    if (!rc && !g_cli.quiet && lmq_env_stats_get(&s, env) == 0)
      fprintf(stderr, "lmq: %s is in use by another process: copying what is "
                      "in LMDB (%llu WAL bytes not yet applied are not in the "
                      "copy; the program itself can call lmq_env_copy())\n",
              dir, (unsigned long long)s.unapplied_bytes);
  }
  if (rc)
    return cli_fail(dir, rc);
  double t0 = cli_now();
  cli_busy_start("backup");
  rc = lmq_env_copy(env, dest, flags);
  cli_busy_end();
  lmq_env_close(env);
  if (rc)
    return cli_fail(dest, rc);
  if (!g_cli.quiet)
    fprintf(stderr, "lmq: copied %s to %s in %.2f s\n", dir, dest, cli_now() - t0);
  return EXIT_OK;
}
