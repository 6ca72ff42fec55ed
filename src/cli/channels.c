/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * channels.c - channel commands: channels, channel info|retention, create,
 * destroy, and env-wide stats.
 */
#include "config.h"
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* Collect up to max positional words; options are an error here. */
static int positionals(args *a, const char **out, int min, int max, int *n,
                       const char *usage) {
  *n = 0;
  while (a->i < a->argc) {
    const char *w = arg_next(a);
    if (w[0] == '-' && w[1])
      return cli_usage_error("unknown option '%s' (usage: lmq %s)", w, usage);
    if (*n == max)
      return cli_usage_error("too many arguments (usage: lmq %s)", usage);
    out[(*n)++] = w;
  }
  if (*n < min)
    return cli_usage_error("missing arguments (usage: lmq %s)", usage);
  return EXIT_OK;
}

static const char *u64s(char *buf, uint64_t v) {
  sprintf(buf, "%llu", (unsigned long long)v);
  return buf;
}

static void json_channel(FILE *f, const char *name, const lmq_channel_info *ci) {
  char t1[40], t2[40], t3[40];
  cli_fmt_time(t1, sizeof t1, ci->first_id ? lmq_id_time(ci->first_id) : 0);
  cli_fmt_time(t2, sizeof t2, ci->last_id ? lmq_id_time(ci->last_id) : 0);
  cli_fmt_time(t3, sizeof t3, ci->created_ms);
  fprintf(f, "{\"name\":");
  cli_json_str(f, name, strlen(name));
  fprintf(f, ",\"messages\":%llu,\"bytes\":%llu,\"first_id\":%llu,"
             "\"last_id\":%llu,\"first_time\":%s%s%s,\"last_time\":%s%s%s,"
             "\"created\":\"%s\",\"retention_age_ms\":%llu,"
             "\"retention_bytes\":%llu,\"groups\":%llu}",
          (unsigned long long)ci->messages, (unsigned long long)ci->bytes,
          (unsigned long long)ci->first_id, (unsigned long long)ci->last_id,
          ci->first_id ? "\"" : "", ci->first_id ? t1 : "null",
          ci->first_id ? "\"" : "", ci->last_id ? "\"" : "",
          ci->last_id ? t2 : "null", ci->last_id ? "\"" : "", t3,
          (unsigned long long)ci->retention_age_ms,
          (unsigned long long)ci->retention_bytes, (unsigned long long)ci->groups);
}

static const char *retention(char *buf, size_t len, const lmq_channel_info *ci) {
  if (!ci->retention_age_ms && !ci->retention_bytes)
    snprintf(buf, len, "-");
  else if (!ci->retention_bytes)
    snprintf(buf, len, "%llums", (unsigned long long)ci->retention_age_ms);
  else if (!ci->retention_age_ms)
    snprintf(buf, len, "%lluB", (unsigned long long)ci->retention_bytes);
  else
    snprintf(buf, len, "%llums/%lluB", (unsigned long long)ci->retention_age_ms,
             (unsigned long long)ci->retention_bytes);
  return buf;
}

int cmd_channels(args *a) {
  const char *pos[1];
  int n, st = positionals(a, pos, 1, 1, &n, "channels DIR");
  if (st)
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, pos[0], OPEN_READ)))
    return st;
  char **names;
  size_t cnt;
  int rc = lmq_channel_list(&names, &cnt, env);
  if (rc) {
    lmq_env_close(env);
    return cli_fail("list channels", rc);
  }
  static const char *const hdr[] = {"CHANNEL", "MESSAGES", "BYTES", "FIRST_ID",
                                    "LAST_ID", "FIRST_TIME", "LAST_TIME",
                                    "RETENTION", "GROUPS"};
  table *t = g_cli.json ? NULL : table_new(9, hdr);
  if (g_cli.json)
    printf("[");
  for (size_t i = 0; i < cnt && !st; i++) {
    lmq_channel_info ci = LMQ_CHANNEL_INFO_INIT;
    if ((rc = lmq_channel_info_get(&ci, env, names[i]))) {
      st = cli_fail(names[i], rc);
      break;
    }
    if (g_cli.json) {
      printf(i ? ",\n " : "\n ");
      json_channel(stdout, names[i], &ci);
      continue;
    }
    char b[5][32], t1[40], t2[40], r[64];
    cli_fmt_time(t1, sizeof t1, ci.first_id ? lmq_id_time(ci.first_id) : 0);
    cli_fmt_time(t2, sizeof t2, ci.last_id ? lmq_id_time(ci.last_id) : 0);
    table_add(t, names[i], u64s(b[0], ci.messages), u64s(b[1], ci.bytes),
              u64s(b[2], ci.first_id), u64s(b[3], ci.last_id), t1, t2,
              retention(r, sizeof r, &ci), u64s(b[4], ci.groups));
  }
  if (g_cli.json)
    printf("\n]\n");
  else
    table_print(t, stdout);
  table_free(t);
  lmq_strv_free(names);
  lmq_env_close(env);
  return st;
}

/* One group's line in a table or JSON array (groups.c shares it). */
int cli_group_row(table *t, FILE *json, lmq_env *env, const char *ch,
                  const char *g, int first);

static int channel_info(args *a) {
  const char *pos[2];
  int n, st = positionals(a, pos, 2, 2, &n, "channel info DIR CHANNEL");
  if (st)
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, pos[0], OPEN_READ)))
    return st;
  lmq_channel_info ci = LMQ_CHANNEL_INFO_INIT;
  char **groups = NULL;
  size_t ng = 0;
  int rc = lmq_channel_info_get(&ci, env, pos[1]);
  if (!rc)
    rc = lmq_group_list(&groups, &ng, env, pos[1]);
  if (rc) {
    lmq_env_close(env);
    return cli_fail(pos[1], rc);
  }
  if (g_cli.json) {
    json_channel(stdout, pos[1], &ci);
    printf("\n");
  } else {
    char t1[40], t2[40], t3[40], r[64];
    cli_fmt_time(t1, sizeof t1, ci.first_id ? lmq_id_time(ci.first_id) : 0);
    cli_fmt_time(t2, sizeof t2, ci.last_id ? lmq_id_time(ci.last_id) : 0);
    cli_fmt_time(t3, sizeof t3, ci.created_ms);
    printf("channel     %s\ncreated     %s\nmessages    %llu\nbytes       %llu\n"
           "first_id    %llu  (%s)\nlast_id     %llu  (%s)\nretention   %s\n"
           "groups      %llu\n",
           pos[1], t3, (unsigned long long)ci.messages,
           (unsigned long long)ci.bytes, (unsigned long long)ci.first_id, t1,
           (unsigned long long)ci.last_id, t2, retention(r, sizeof r, &ci),
           (unsigned long long)ci.groups);
    if (ng) {
      static const char *const hdr[] = {"CHANNEL", "GROUP", "CURSOR", "COMMITTED",
                                        "LAG"};
      table *t = table_new(5, hdr);
      printf("\n");
      for (size_t i = 0; i < ng && !st; i++)
        st = cli_group_row(t, NULL, env, pos[1], groups[i], 0);
      table_print(t, stdout);
      table_free(t);
    }
  }
  lmq_strv_free(groups);
  lmq_env_close(env);
  return st;
}

static int channel_retention(args *a) {
  const char *pos[2], *v;
  uint64_t age = 0, bytes = 0;
  int n = 0, r;
  while (a->i < a->argc) {
    if ((r = opt_value(a, "--max-age", &v))) {
      if (r < 0 || cli_parse_u64(&age, v))
        return cli_usage_error("--max-age needs milliseconds");
    } else if ((r = opt_value(a, "--max-bytes", &v))) {
      if (r < 0 || cli_parse_u64(&bytes, v))
        return cli_usage_error("--max-bytes needs a byte count");
    } else if (a->argv[a->i][0] == '-' || n == 2) {
      return cli_usage_error("bad argument '%s'", a->argv[a->i]);
    } else {
      pos[n++] = arg_next(a);
    }
  }
  if (n < 2)
    return cli_usage_error("usage: lmq channel retention DIR CHANNEL "
                           "--max-age MS --max-bytes N");
  lmq_env *env;
  int st = cli_open(&env, pos[0], OPEN_WRITE);
  if (st)
    return st;
  int rc = lmq_channel_set_retention(env, pos[1], age, bytes);
  lmq_env_close(env);
  return rc ? cli_fail(pos[1], rc) : EXIT_OK;
}

int cmd_channel(args *a) {
  const char *sub = arg_next(a);
  if (sub && !strcmp(sub, "info"))
    return channel_info(a);
  if (sub && !strcmp(sub, "retention"))
    return channel_retention(a);
  if (sub && !strcmp(sub, "create"))
    return cmd_create(a);
  if (sub && (!strcmp(sub, "rm") || !strcmp(sub, "destroy")))
    return cmd_destroy(a);
  return cli_usage_error("usage: lmq channel info|create|rm|retention DIR CHANNEL");
}

static int create_or_destroy(args *a, int create) {
  const char *pos[64];
  int n, st = positionals(a, pos, 2, 64, &n,
                          create ? "create DIR CHANNEL..." : "destroy DIR CHANNEL...");
  if (st)
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, pos[0], create ? OPEN_CREATE : OPEN_WRITE)))
    return st;
  for (int i = 1; i < n && !st; i++) {
    int rc = create ? lmq_channel_create(env, pos[i])
                    : lmq_channel_destroy(env, pos[i]);
    if (rc)
      st = cli_fail(pos[i], rc);
  }
  lmq_env_close(env);
  return st;
}

int cmd_create(args *a) { return create_or_destroy(a, 1); }
int cmd_destroy(args *a) { return create_or_destroy(a, 0); }

int cmd_stats(args *a) {
  const char *pos[1];
  int n, st = positionals(a, pos, 1, 1, &n, "stats DIR");
  if (st)
    return st;
  lmq_env *env;
  if ((st = cli_open(&env, pos[0], OPEN_READ)))
    return st;
  lmq_env_stats s;
  int rc = lmq_env_stats_get(&s, env);
  lmq_env_close(env);
  if (rc)
    return cli_fail("stats", rc);
  struct {
    const char *k;
    uint64_t v;
  } f[] = {{"channels", s.channels},          {"applied_segment", s.applied_segment},
           {"applied_offset", s.applied_offset}, {"unapplied_bytes", s.unapplied_bytes},
           {"map_used", s.map_used},          {"map_size", s.map_size}};
  size_t nf = sizeof f / sizeof f[0];
  if (g_cli.json)
    printf("{");
  for (size_t i = 0; i < nf; i++) {
    if (g_cli.json)
      printf("%s\"%s\":%llu", i ? "," : "", f[i].k, (unsigned long long)f[i].v);
    else
      printf("%-16s %llu\n", f[i].k, (unsigned long long)f[i].v);
  }
  if (g_cli.json)
    printf("}\n");
  return EXIT_OK;
}
