/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * produce.c - `lmq produce`: arguments or standard input (lines or
 * length-prefixed records) in batches, one produce call (and, under
 * --sync always, one fdatasync) per batch.
 */
#define _GNU_SOURCE
#include "config.h"
#include "cli/cli.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

typedef struct batch {
  lmq_buf *b;
  char **own; /* copies of stdin records */
  size_t n, cap;
  uint64_t bytes;
} batch;

static int batch_add(batch *bt, char *data, size_t len, int owned) {
  if (bt->n == bt->cap) {
    size_t nc = bt->cap ? bt->cap * 2 : 64;
    lmq_buf *nb = realloc(bt->b, nc * sizeof *nb);
    char **no = nb ? realloc(bt->own, nc * sizeof *no) : NULL;
    if (nb)
      bt->b = nb;
    if (!no)
      return -1;
    bt->own = no;
    bt->cap = nc;
  }
  bt->b[bt->n] = (lmq_buf){data, len};
  bt->own[bt->n] = owned ? data : NULL;
  bt->n++;
  bt->bytes += len;
  return 0;
}

static void batch_clear(batch *bt) {
  for (size_t i = 0; i < bt->n; i++)
    free(bt->own[i]);
  bt->n = 0;
  bt->bytes = 0;
}

typedef struct pstate {
  lmq_env *env;
  const char *ch;
  int ids;
  uint64_t total;
  lmq_id first, last;
  lmq_id *idbuf;
  size_t idcap;
} pstate;

static int flush_batch(pstate *p, batch *bt) {
  if (!bt->n)
    return EXIT_OK;
  if (bt->n > p->idcap) {
    lmq_id *n = realloc(p->idbuf, bt->n * sizeof *n);
    if (!n)
      return cli_fail("produce", LMQ_ENOMEM);
    p->idbuf = n;
    p->idcap = bt->n;
  }
  int rc = lmq_produce(p->env, p->ch, bt->b, bt->n, p->idbuf, LMQ_SYNC_DEFAULT);
  if (rc)
    return cli_fail(p->ch, rc);
  if (!p->first)
    p->first = p->idbuf[0];
  p->last = p->idbuf[bt->n - 1];
  p->total += bt->n;
  if (p->ids)
    for (size_t i = 0; i < bt->n; i++)
      printf("%llu\n", (unsigned long long)p->idbuf[i]);
  batch_clear(bt);
  cli_progress("produced %llu messages", (unsigned long long)p->total);
  return p->ids ? cli_flush_stdout() : EXIT_OK;
}

/* 1 if stdin has more bytes right now (so a batch can wait for them). */
static int input_ready(void) {
  struct pollfd pf = {0, POLLIN, 0};
  return poll(&pf, 1, 0) > 0;
}

/* 1 if stdio holds unread input (glibc; elsewhere poll alone decides, which
 * only makes batches smaller). */
static int stdin_buffered(void) {
#ifdef __GLIBC__
  return stdin->_IO_read_ptr < stdin->_IO_read_end;
#else
  return 0;
#endif
}

/* Read one length-prefixed record: 1 = got one, 0 = clean EOF, -1 = bad. */
static int read_lp(FILE *in, char **out, size_t *len) {
  unsigned char h[4];
  size_t got = fread(h, 1, 4, in);
  if (got == 0 && feof(in))
    return 0;
  if (got != 4)
    return -1;
  size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
  char *d = malloc(n ? n : 1);
  if (!d || fread(d, 1, n, in) != n) {
    free(d);
    return -1;
  }
  *out = d;
  *len = n;
  return 1;
}

static int from_stdin(pstate *p, batch *bt, uint64_t max_batch, int lp) {
  int st = EXIT_OK;
  char *line = NULL;
  size_t cap = 0;
  /* Records are buffered by stdio: "ready" means in stdin's buffer or
   * the pipe. */
  for (;;) {
    char *data;
    size_t len;
    if (lp) {
      int r = read_lp(stdin, &data, &len);
      if (r < 0) {
        st = cli_usage_error("standard input: a length-prefixed record is "
                             "truncated");
        break;
      }
      if (r == 0)
        break;
    } else {
      ssize_t n = getline(&line, &cap, stdin);
      if (n < 0)
        break;
      if (n > 0 && line[n - 1] == '\n')
        n--;
      data = malloc((size_t)n + 1);
      if (!data) {
        st = cli_fail("produce", LMQ_ENOMEM);
        break;
      }
      memcpy(data, line, (size_t)n);
      len = (size_t)n;
    }
    if (batch_add(bt, data, len, 1)) {
      free(data);
      st = cli_fail("produce", LMQ_ENOMEM);
      break;
    }
    int more = stdin_buffered() || input_ready();
    if ((bt->n >= max_batch || bt->bytes >= (8u << 20) || !more) &&
        (st = flush_batch(p, bt)))
      break;
  }
  if (!st && ferror(stdin))
    st = cli_fail("read standard input", LMQ_EIO);
  free(line);
  if (!st)
    st = flush_batch(p, bt);
  return st;
}

int cmd_produce(args *a) {
  static const char usage[] = "produce DIR CHANNEL [MESSAGE...] [--batch N] "
                              "[--sync always|interval|none] [--input lines|lp] "
                              "[--ids]";
  const char *pos[2] = {NULL, NULL}, *v;
  int npos = 0, r, lp = 0, ids = 0, sync = 0;
  uint64_t max_batch = 1000;
  batch bt = {0};
  int st = EXIT_OK;
  while (a->i < a->argc && !st) {
    if ((r = opt_value(a, "--batch", &v))) {
      if (r < 0 || cli_parse_u64(&max_batch, v) || !max_batch || max_batch > 1000000)
        st = cli_usage_error("--batch needs a number in 1..1000000");
    } else if ((r = opt_value(a, "--sync", &v))) {
      if (r < 0 || cli_parse_sync(&sync, v))
        st = cli_usage_error("--sync takes always, interval or none");
    } else if ((r = opt_value(a, "--input", &v))) {
      if (r < 0 || (strcmp(v, "lines") && strcmp(v, "lp")))
        st = cli_usage_error("--input takes lines or lp");
      else
        lp = !strcmp(v, "lp");
    } else if (opt_flag(a, "--ids")) {
      ids = 1;
    } else if (npos < 2) {
      const char *w = arg_next(a);
      if (w[0] == '-' && w[1])
        st = cli_usage_error("unknown option '%s' (usage: lmq %s)", w, usage);
      pos[npos++] = w;
    } else {
      /* a message: taken below */
      const char *w = arg_next(a);
      if (!strcmp(w, "--")) /* the rest are messages, even "-x" */
        continue;
      if (batch_add(&bt, (char *)w, strlen(w), 0))
        st = cli_fail("produce", LMQ_ENOMEM);
    }
  }
  if (!st && npos < 2)
    st = cli_usage_error("usage: lmq %s", usage);
  lmq_env *env = NULL;
  g_cli.sync = sync;
  if (!st)
    st = cli_open(&env, pos[0], OPEN_WRITE);
  pstate p = {env, pos[1], ids, 0, 0, 0, NULL, 0};
  if (!st) {
    double t0 = cli_now();
    if (bt.n) {
      /* Arguments: in batches of max_batch. */
      batch part = {0};
      for (size_t i = 0; i < bt.n && !st; i++) {
        batch_add(&part, (char *)bt.b[i].data, bt.b[i].len, 0);
        if (part.n >= max_batch || i + 1 == bt.n)
          st = flush_batch(&p, &part);
      }
      free(part.b);
      free(part.own);
    } else {
      st = from_stdin(&p, &bt, max_batch, lp);
    }
    cli_progress_end();
    double dt = cli_now() - t0;
    if (!g_cli.quiet && p.total && !ids)
      fprintf(stderr, "lmq: produced %llu messages to %s (IDs %llu..%llu) in "
                      "%.2f s\n",
              (unsigned long long)p.total, p.ch, (unsigned long long)p.first,
              (unsigned long long)p.last, dt);
  }
  batch_clear(&bt);
  free(bt.b);
  free(bt.own);
  free(p.idbuf);
  lmq_env_close(env);
  return st;
}
