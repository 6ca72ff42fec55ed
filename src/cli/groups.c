/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * groups.c - consumer-group commands: groups, group info|create|reset|rm.
 */
#include "config.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

int cli_group_row(table *t, FILE *json, lmq_env *env, const char *ch,
                  const char *g, int first);

int cli_group_row(table *t, FILE *json, lmq_env *env, const char *ch,
                  const char *g, int first) {
  lmq_group_stats gs;
  int rc = lmq_group_stats_get(&gs, env, ch, g);
  if (rc)
    return cli_fail(g, rc);
  if (json) {
    if (first >= 0) /* -1: a lone object */
      fprintf(json, first ? "\n " : ",\n ");
    fprintf(json, "{\"channel\":");
    cli_json_str(json, ch, strlen(ch));
    fprintf(json, ",\"group\":");
    cli_json_str(json, g, strlen(g));
    fprintf(json, ",\"cursor\":%llu,\"committed\":%llu,\"lag\":%llu}",
            (unsigned long long)gs.cursor, (unsigned long long)gs.committed,
            (unsigned long long)gs.lag);
    return EXIT_OK;
  }
  char c[24], m[24], l[24];
  snprintf(c, sizeof c, "%llu", (unsigned long long)gs.cursor);
  snprintf(m, sizeof m, "%llu", (unsigned long long)gs.committed);
  snprintf(l, sizeof l, "%llu", (unsigned long long)gs.lag);
  table_add(t, ch, g, c, m, l);
  return EXIT_OK;
}

static const char *const group_hdr[] = {"CHANNEL", "GROUP", "CURSOR", "COMMITTED",
                                        "LAG"};

int cmd_groups(args *a) {
  const char *dir = NULL, *only = NULL, *w;
  while ((w = arg_next(a))) {
    if (w[0] == '-' && w[1])
      return cli_usage_error("unknown option '%s'", w);
    if (!dir)
      dir = w;
    else if (!only)
      only = w;
    else
      return cli_usage_error("usage: lmq groups DIR [CHANNEL]");
  }
  if (!dir)
    return cli_usage_error("usage: lmq groups DIR [CHANNEL]");
  lmq_env *env;
  int st = cli_open(&env, dir, OPEN_READ);
  if (st)
    return st;
  char **chans = NULL;
  size_t nc = 0;
  int rc = only ? 0 : lmq_channel_list(&chans, &nc, env);
  if (rc) {
    lmq_env_close(env);
    return cli_fail("list channels", rc);
  }
  table *t = g_cli.json ? NULL : table_new(5, group_hdr);
  if (g_cli.json)
    printf("[");
  int first = 1;
  for (size_t i = 0; i < (only ? 1 : nc) && !st; i++) {
    const char *ch = only ? only : chans[i];
    char **groups;
    size_t ng;
    if ((rc = lmq_group_list(&groups, &ng, env, ch))) {
      st = cli_fail(ch, rc);
      break;
    }
    for (size_t j = 0; j < ng && !st; j++, first = 0)
      st = cli_group_row(t, g_cli.json ? stdout : NULL, env, ch, groups[j], first);
    lmq_strv_free(groups);
  }
  if (g_cli.json)
    printf("\n]\n");
  else if (!st)
    table_print(t, stdout);
  table_free(t);
  lmq_strv_free(chans);
  lmq_env_close(env);
  return st;
}

/* DIR CHANNEL GROUP, then options handled by the caller's loop. */
typedef struct gargs {
  const char *dir, *ch, *g;
} gargs;

static int take3(gargs *g, args *a, const char *usage) {
  g->dir = g->ch = g->g = NULL;
  const char **slot[3] = {&g->dir, &g->ch, &g->g};
  int n = 0;
  /* Positionals may come before or after options: collect them first. */
  for (int i = a->i; i < a->argc && n < 3; i++) {
    const char *w = a->argv[i];
    if (w[0] == '-' && w[1]) {
      /* an option with a value skips its value */
      if (!strchr(w, '=') && (!strcmp(w, "--to-time") || !strcmp(w, "--to-id") ||
                              !strcmp(w, "--at")))
        i++;
      continue;
    }
    *slot[n++] = w;
    /* mark it consumed by blanking (options loop skips "") */
    a->argv[i] = "";
  }
  if (n < 3)
    return cli_usage_error("usage: lmq %s", usage);
  return EXIT_OK;
}

/* After take3: nothing else may follow (taken arguments are blanked). */
static int no_more(args *a) {
  for (const char *w; (w = arg_next(a));)
    if (*w)
      return cli_usage_error("unexpected argument '%s'", w);
  return EXIT_OK;
}

static int group_info(args *a) {
  gargs g;
  int st = take3(&g, a, "group info DIR CHANNEL GROUP");
  if (st || (st = no_more(a)))
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, g.dir, OPEN_READ)))
    return st;
  if (g_cli.json) {
    st = cli_group_row(NULL, stdout, env, g.ch, g.g, -1);
    printf("\n");
  } else {
    lmq_group_stats gs;
    int rc = lmq_group_stats_get(&gs, env, g.ch, g.g);
    if (rc) {
      st = cli_fail(g.g, rc);
    } else {
      char t1[40], t2[40];
      cli_fmt_time(t1, sizeof t1, gs.cursor > 1 ? lmq_id_time(gs.cursor) : 0);
      cli_fmt_time(t2, sizeof t2, gs.committed > 1 ? lmq_id_time(gs.committed) : 0);
      printf("channel     %s\ngroup       %s\ncursor      %llu  (%s)\n"
             "committed   %llu  (%s)\nlag         %llu\n",
             g.ch, g.g, (unsigned long long)gs.cursor, t1,
             (unsigned long long)gs.committed, t2, (unsigned long long)gs.lag);
    }
  }
  lmq_env_close(env);
  return st;
}

static int group_create(args *a) {
  gargs g;
  int st = take3(&g, a, "group create DIR CHANNEL GROUP [--at earliest|latest]");
  if (st)
    return st;
  int start = LMQ_START_EARLIEST, r;
  const char *v;
  while (a->i < a->argc) {
    if (!*a->argv[a->i]) {
      a->i++;
    } else if ((r = opt_value(a, "--at", &v))) {
      if (r < 0)
        return EXIT_USAGE;
      if (!strcmp(v, "earliest"))
        start = LMQ_START_EARLIEST;
      else if (!strcmp(v, "latest"))
        start = LMQ_START_LATEST;
      else
        return cli_usage_error("--at takes earliest or latest");
    } else {
      return cli_usage_error("unexpected argument '%s'", a->argv[a->i]);
    }
  }
  lmq_env *env;
  if ((st = cli_open(&env, g.dir, OPEN_WRITE)))
    return st;
  int rc = lmq_group_create(env, g.ch, g.g, start);
  lmq_env_close(env);
  return rc ? cli_fail(g.g, rc) : EXIT_OK;
}

static int group_rm(args *a) {
  gargs g;
  int st = take3(&g, a, "group rm DIR CHANNEL GROUP");
  if (st || (st = no_more(a)))
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, g.dir, OPEN_WRITE)))
    return st;
  int rc = lmq_group_destroy(env, g.ch, g.g);
  lmq_env_close(env);
  return rc ? cli_fail(g.g, rc) : EXIT_OK;
}

/* Where a reset would put the cursor: the first message with ID >= want,
 * or one past the newest when there is none. */
static int target_of(lmq_id *out, lmq_env *env, const char *ch, int kind,
                     uint64_t v) {
  lmq_channel_stats cs;
  int rc = lmq_channel_stats_get(&cs, env, ch);
  if (rc)
    return rc;
  lmq_id want = kind == POS_EARLIEST ? 0
                : kind == POS_LATEST ? cs.last_id + 1
                : kind == POS_TIME   ? lmq_id_from_time(v)
                                     : v;
  lmq_msgs *m;
  int n = lmq_read(&m, env, ch, want, 1);
  if (n < 0)
    return n;
  *out = n > 0 ? lmq_msgs_at(m, 0)->id : cs.last_id + 1;
  lmq_msgs_free(m);
  return 0;
}

static int group_reset(args *a) {
  gargs g;
  int st = take3(&g, a, "group reset DIR CHANNEL GROUP --to-earliest|--to-latest|"
                        "--to-time T|--to-id ID [--dry-run]");
  if (st)
    return st;
  int kind = -1, dry = 0, r;
  uint64_t v = 0;
  const char *val;
  while (a->i < a->argc) {
    if (!*a->argv[a->i]) {
      a->i++;
    } else if (opt_flag(a, "--to-earliest")) {
      kind = POS_EARLIEST;
    } else if (opt_flag(a, "--to-latest")) {
      kind = POS_LATEST;
    } else if (opt_flag(a, "--dry-run")) {
      dry = 1;
    } else if ((r = opt_value(a, "--to-time", &val))) {
      if (r < 0 || cli_parse_time(&v, val))
        return cli_usage_error("--to-time: bad time '%s'", r < 0 ? "" : val);
      kind = POS_TIME;
    } else if ((r = opt_value(a, "--to-id", &val))) {
      if (r < 0 || cli_parse_u64(&v, val) || v == 0 || v > LMQ_ID_MAX)
        return cli_usage_error("--to-id: bad message ID '%s'", r < 0 ? "" : val);
      kind = POS_ID;
    } else {
      return cli_usage_error("unexpected argument '%s'", a->argv[a->i]);
    }
  }
  if (kind < 0)
    return cli_usage_error("group reset needs --to-earliest, --to-latest, "
                           "--to-time T or --to-id ID");
  lmq_env *env;
  if ((st = cli_open(&env, g.dir, dry ? OPEN_READ : OPEN_WRITE)))
    return st;
  lmq_group_stats before, after;
  lmq_id target = 0;
  int rc = lmq_group_stats_get(&before, env, g.ch, g.g);
  if (!rc)
    rc = target_of(&target, env, g.ch, kind, v);
  if (!rc && !dry) {
    switch (kind) {
    case POS_EARLIEST: rc = lmq_seek_earliest(env, g.ch, g.g); break;
    case POS_LATEST: rc = lmq_seek_latest(env, g.ch, g.g); break;
    case POS_TIME: rc = lmq_seek_time(env, g.ch, g.g, v); break;
    default: rc = lmq_seek(env, g.ch, g.g, v); break;
    }
  }
  if (!rc && !dry)
    rc = lmq_group_stats_get(&after, env, g.ch, g.g);
  lmq_env_close(env);
  if (rc)
    return cli_fail(g.g, rc);
  unsigned long long from = before.cursor, to = dry ? target : after.cursor;
  if (g_cli.json) {
    printf("{\"channel\":");
    cli_json_str(stdout, g.ch, strlen(g.ch));
    printf(",\"group\":");
    cli_json_str(stdout, g.g, strlen(g.g));
    printf(",\"dry_run\":%s,\"from\":%llu,\"to\":%llu,\"lag_before\":%llu",
           dry ? "true" : "false", from, to, (unsigned long long)before.lag);
    if (!dry)
      printf(",\"lag_after\":%llu", (unsigned long long)after.lag);
    printf("}\n");
  } else {
    printf("%s %s/%s: cursor %llu -> %llu (lag was %llu", dry ? "would move" : "moved",
           g.ch, g.g, from, to, (unsigned long long)before.lag);
    if (!dry)
      printf(", now %llu", (unsigned long long)after.lag);
    printf(")\n");
  }
  return EXIT_OK;
}

int cmd_group(args *a) {
  const char *sub = arg_next(a);
  if (sub && !strcmp(sub, "info"))
    return group_info(a);
  if (sub && !strcmp(sub, "create"))
    return group_create(a);
  if (sub && !strcmp(sub, "reset"))
    return group_reset(a);
  if (sub && (!strcmp(sub, "rm") || !strcmp(sub, "destroy")))
    return group_rm(a);
  return cli_usage_error("usage: lmq group info|create|reset|rm DIR CHANNEL GROUP");
}
