/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * read.c - reading messages: `read` (no group, nothing written) and
 * `consume` (a group's cursor, committed only once the output is out).
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define BATCH 1000

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Write a result's messages and flush; EXIT_IO if the output failed. */
static int emit(lmq_msgs *m, int fmt, const char *ch) {
  for (size_t i = 0; i < lmq_msgs_count(m); i++)
    cli_write_msg(stdout, fmt, ch, lmq_msgs_at(m, i));
  return cli_flush_stdout();
}

typedef struct ropts {
  const char *pos[4];
  int npos;
  int fmt;
  uint64_t count; /* 0 = unlimited */
  int have_count;
  int follow, no_commit;
  int timeout_ms, have_timeout;
  int from_kind;
  uint64_t from;
} ropts;

static int parse(ropts *o, args *a, int maxpos, const char *usage) {
  memset(o, 0, sizeof *o);
  o->fmt = g_cli.json ? FMT_JSON : FMT_TEXT;
  o->from_kind = POS_EARLIEST;
  const char *v;
  int r;
  while (a->i < a->argc) {
    if ((r = opt_value(a, "--format", &v))) {
      if (r < 0 || cli_parse_format(&o->fmt, v))
        return cli_usage_error("--format takes text, hex, base64, raw, json or lp");
    } else if ((r = opt_value(a, "--count", &v)) || (r = opt_value(a, "-n", &v))) {
      if (r < 0 || cli_parse_u64(&o->count, v) || !o->count)
        return cli_usage_error("--count needs a number >= 1");
      o->have_count = 1;
    } else if ((r = opt_value(a, "--from", &v))) {
      if (r < 0 || cli_parse_pos(&o->from_kind, &o->from, v))
        return cli_usage_error("--from: '%s' is not earliest, latest, an ID or a "
                               "time", r < 0 ? "" : v);
    } else if ((r = opt_value(a, "--timeout", &v))) {
      uint64_t t;
      if (r < 0 || cli_parse_u64(&t, v) || t > 86400000u)
        return cli_usage_error("--timeout needs milliseconds");
      o->timeout_ms = (int)t;
      o->have_timeout = 1;
    } else if (opt_flag(a, "--follow") || opt_flag(a, "-f")) {
      o->follow = 1;
    } else if (opt_flag(a, "--no-commit")) {
      o->no_commit = 1;
    } else if (a->argv[a->i][0] == '-' && a->argv[a->i][1]) {
      return cli_usage_error("unknown option '%s' (usage: lmq %s)", a->argv[a->i],
                             usage);
    } else if (o->npos == maxpos) {
      return cli_usage_error("too many arguments (usage: lmq %s)", usage);
    } else {
      o->pos[o->npos++] = arg_next(a);
    }
  }
  return EXIT_OK;
}

int cmd_read(args *a) {
  static const char usage[] = "read DIR CHANNEL [--from POS] [--count N] "
                              "[--follow] [--format F]";
  ropts o;
  int st = parse(&o, a, 2, usage);
  if (st)
    return st;
  if (o.npos < 2)
    return cli_usage_error("usage: lmq %s", usage);
  const char *ch = o.pos[1];
  lmq_env *env;
  if ((st = cli_open(&env, o.pos[0], OPEN_READ)))
    return st;
  lmq_id from = 0;
  int rc = 0;
  if (o.from_kind == POS_LATEST) {
    lmq_channel_stats cs;
    if (!(rc = lmq_channel_stats_get(&cs, env, ch)))
      from = cs.last_id + 1;
  } else if (o.from_kind == POS_TIME) {
    from = lmq_id_from_time(o.from);
  } else if (o.from_kind == POS_ID) {
    from = o.from;
  }
  uint64_t left = o.count, total = 0;
  while (!rc && !st && (!o.have_count || left)) {
    lmq_msgs *m;
    size_t want = o.have_count && left < BATCH ? (size_t)left : BATCH;
    int n = lmq_read(&m, env, ch, from, want);
    if (n < 0) {
      rc = n;
      break;
    }
    if (n > 0) {
      from = lmq_msgs_at(m, (size_t)n - 1)->id + 1;
      left -= o.have_count ? (uint64_t)n : 0;
      st = emit(m, o.fmt, ch);
      total += (uint64_t)n;
      cli_progress("read %llu messages", (unsigned long long)total);
    }
    lmq_msgs_free(m);
    if (n == 0) {
      if (!o.follow)
        break;
      sleep_ms(100); /* a read-only view sees a writer's applies: poll */
    }
  }
  lmq_env_close(env);
  return rc ? cli_fail(ch, rc) : st;
}

/* Wait until the pipe on stdout is drained (its reader took every byte we
 * wrote): 0, or -1 when the reader is gone (then what it had not read is
 * lost to it). Linux: FIONREAD on a pipe tells the bytes in it. */
static int pipe_drained(void) {
  for (int spins = 0;; spins++) {
    int pending = 0;
    if (ioctl(1, FIONREAD, &pending) != 0 || pending == 0)
      return 0; /* read (if the reader is gone now, it went after that) */
    struct pollfd pf = {1, 0, 0};
    if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLERR | POLLHUP)))
      return -1;
    sleep_ms(spins < 100 ? 1 : 10);
  }
}

/*
 * Write m's messages and find how many the output took: *ok. To a file or
 * terminal, all of them once the flush succeeds. To a pipe, one at a time,
 * each taken only once the reader has read it: `lmq consume ... | head -1`
 * commits one message, not all that fit in the pipe.
 */
static int emit_confirmed(lmq_msgs *m, int fmt, const char *ch, size_t *ok) {
  struct stat sb;
  *ok = 0;
  int is_pipe = fstat(1, &sb) == 0 && S_ISFIFO(sb.st_mode);
  size_t n = lmq_msgs_count(m);
  if (!is_pipe) {
    int st = emit(m, fmt, ch);
    if (!st)
      *ok = n;
    return st;
  }
  for (size_t i = 0; i < n; i++) {
    cli_write_msg(stdout, fmt, ch, lmq_msgs_at(m, i));
    int st = cli_flush_stdout();
    if (st)
      return st;
    if (pipe_drained()) {
      fprintf(stderr, "lmq: the reader of the output went away\n");
      return EXIT_IO;
    }
    *ok = i + 1;
  }
  return EXIT_OK;
}

int cmd_consume(args *a) {
  static const char usage[] = "consume DIR CHANNEL GROUP [MAX] [--count N] "
                              "[--timeout MS] [--follow] [--no-commit] [--format F]";
  ropts o;
  int st = parse(&o, a, 4, usage);
  if (st)
    return st;
  if (o.npos < 3)
    return cli_usage_error("usage: lmq %s", usage);
  if (o.npos == 4) { /* the older positional MAX */
    if (cli_parse_u64(&o.count, o.pos[3]) || !o.count)
      return cli_usage_error("MAX must be a number >= 1");
    o.have_count = 1;
  }
  if (!o.have_count && !o.follow) {
    o.count = 10;
    o.have_count = 1;
  }
  int timeout = o.have_timeout ? o.timeout_ms : o.follow ? -1 : 0;
  const char *ch = o.pos[1], *g = o.pos[2];
  lmq_env *env;
  /* Without commits nothing is written: a read-only open, which also works
   * beside the directory's writer. */
  if ((st = cli_open(&env, o.pos[0], o.no_commit ? OPEN_READ : OPEN_WRITE)))
    return st;
  int rc = 0;
  if (!o.no_commit && lmq_group_exists(env, ch, g) == 0)
    rc = lmq_group_create(env, ch, g, LMQ_START_EARLIEST);
  uint64_t left = o.count, done = 0;
  while (!rc && !st && (!o.have_count || left)) {
    lmq_msgs *m;
    size_t want = o.have_count && left < BATCH ? (size_t)left : BATCH;
    int n = lmq_consume(&m, env, ch, g, want, timeout);
    if (n < 0) {
      rc = n;
      break;
    }
    if (n > 0) {
      left -= o.have_count ? (uint64_t)n : 0;
      /* The cursor is committed only after the output is flushed: a write
       * that fails (disk full, closed pipe) commits nothing, and the
       * messages are delivered again next time. */
      size_t ok;
      st = emit_confirmed(m, o.fmt, ch, &ok);
      if (ok && !o.no_commit &&
          (rc = lmq_ack(env, ch, g, lmq_msgs_at(m, ok - 1)->id)))
        fprintf(stderr, "lmq: the output was written but the commit failed: "
                        "these messages will be delivered again\n");
      if (!rc)
        done += ok;
      cli_progress("consumed and committed %llu messages", (unsigned long long)done);
    }
    lmq_msgs_free(m);
    if (n == 0 && !o.follow)
      break;
    if (n == 0 && timeout >= 0)
      break; /* --follow --timeout: stop after that long without messages */
  }
  cli_progress_end();
  if (st == EXIT_IO && !g_cli.quiet)
    fprintf(stderr, "lmq: only what was written out was committed (%llu "
                    "messages in this run); the rest is delivered again\n",
            (unsigned long long)done);
  lmq_env_close(env);
  return rc ? cli_fail(ch, rc) : st;
}
