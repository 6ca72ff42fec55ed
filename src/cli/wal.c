/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * wal.c - looking at the log and checking a directory: `wal dump` and
 * `verify`. Both only read (safe beside a running writer).
 */
#include "config.h"
#include "cli/cli.h"

#include <string.h>

typedef struct dump {
  table *t;
  int first;
  uint64_t records, damaged, corrupt;
} dump;

static const char *kind_name(int k) {
  switch (k) {
  case LMQ_WAL_PRODUCE: return "produce";
  case LMQ_WAL_MARK: return "mark";
  case LMQ_WAL_END: return "end";
  default: return "DAMAGE";
  }
}

static int dump_one(void *arg, const lmq_wal_entry *e) {
  dump *d = arg;
  if (e->kind == LMQ_WAL_DAMAGE) {
    d->damaged++;
    d->corrupt += e->corrupt != 0;
  } else {
    d->records++;
  }
  if (g_cli.json) {
    printf(d->first ? "\n " : ",\n ");
    d->first = 0;
    printf("{\"segment\":%llu,\"offset\":%llu,\"type\":\"%s\",\"bytes\":%llu,"
           "\"applied\":%s",
           (unsigned long long)e->segment, (unsigned long long)e->offset,
           kind_name(e->kind), (unsigned long long)e->bytes,
           e->applied ? "true" : "false");
    if (e->kind == LMQ_WAL_DAMAGE)
      printf(",\"corrupt\":%s", e->corrupt ? "true" : "false");
    else
      printf(",\"checksum\":\"%016llx\"", (unsigned long long)e->checksum);
    if (e->kind == LMQ_WAL_MARK || e->kind == LMQ_WAL_END)
      printf(",\"arg\":%llu", (unsigned long long)e->arg);
    if (e->kind == LMQ_WAL_PRODUCE) {
      printf(",\"channel\":");
      cli_json_str(stdout, e->channel, e->channel_len);
      printf(",\"first_id\":%llu,\"count\":%u,\"payload_bytes\":%llu",
             (unsigned long long)e->first_id, (unsigned)e->count,
             (unsigned long long)e->payload_bytes);
    }
    printf("}");
    return 0;
  }
  char seg[24], off[24], bytes[24], sum[24], chan[300] = "", ids[48] = "", pb[24] = "";
  snprintf(seg, sizeof seg, "%llu", (unsigned long long)e->segment);
  snprintf(off, sizeof off, "%llu", (unsigned long long)e->offset);
  snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)e->bytes);
  if (e->kind == LMQ_WAL_DAMAGE)
    snprintf(sum, sizeof sum, "%s", e->corrupt ? "CORRUPT" : "torn tail");
  else
    snprintf(sum, sizeof sum, "%016llx", (unsigned long long)e->checksum);
  if (e->kind == LMQ_WAL_PRODUCE) {
    snprintf(chan, sizeof chan, "%.*s", (int)e->channel_len, e->channel);
    if (e->count > 1)
      snprintf(ids, sizeof ids, "%llu..+%u", (unsigned long long)e->first_id,
               (unsigned)e->count - 1);
    else
      snprintf(ids, sizeof ids, "%llu", (unsigned long long)e->first_id);
    snprintf(pb, sizeof pb, "%llu", (unsigned long long)e->payload_bytes);
  } else if (e->kind != LMQ_WAL_DAMAGE) {
    snprintf(ids, sizeof ids, "%s %llu", e->kind == LMQ_WAL_MARK ? "synced" : "next",
             (unsigned long long)e->arg);
  }
  table_add(d->t, seg, off, kind_name(e->kind), bytes, sum, chan, ids, pb,
            e->applied ? "yes" : "no");
  return 0;
}

int cmd_wal(args *a) {
  const char *sub = arg_next(a), *dir = arg_next(a);
  if (!sub || strcmp(sub, "dump") || !dir || a->i < a->argc)
    return cli_usage_error("usage: lmq wal dump DIR");
  static const char *const hdr[] = {"SEGMENT", "OFFSET", "TYPE", "BYTES", "CHECKSUM",
                                    "CHANNEL", "IDS", "PAYLOAD", "APPLIED"};
  dump d = {g_cli.json ? NULL : table_new(9, hdr), 1, 0, 0, 0};
  if (g_cli.json)
    printf("[");
  int rc = lmq_wal_scan(dir, dump_one, &d);
  if (g_cli.json)
    printf("\n]\n");
  else
    table_print(d.t, stdout);
  table_free(d.t);
  if (rc)
    return cli_fail(dir, rc);
  if (!g_cli.json && !g_cli.quiet)
    fprintf(stderr, "lmq: %llu records, %llu damaged regions (%llu corrupt)\n",
            (unsigned long long)d.records, (unsigned long long)d.damaged,
            (unsigned long long)d.corrupt);
  return d.corrupt ? EXIT_CORRUPT : EXIT_OK;
}

int cmd_verify(args *a) {
  const char *dir = arg_next(a);
  if (!dir || a->i < a->argc)
    return cli_usage_error("usage: lmq verify DIR");
  lmq_verify_report r = LMQ_VERIFY_REPORT_INIT;
  cli_busy_start("verify");
  int rc = lmq_verify(&r, dir);
  cli_busy_end();
  if (rc && rc != LMQ_ECORRUPT)
    return cli_fail(dir, rc);
  if (g_cli.json) {
    printf("{\"ok\":%s,\"channels\":%llu,\"messages\":%llu,\"bytes\":%llu,"
           "\"groups\":%llu,\"wal_segments\":%llu,\"wal_records\":%llu,"
           "\"wal_unapplied_bytes\":%llu,\"torn_bytes\":%llu,\"problems\":%llu,"
           "\"first_problem\":",
           rc ? "false" : "true", (unsigned long long)r.channels,
           (unsigned long long)r.messages, (unsigned long long)r.bytes,
           (unsigned long long)r.groups, (unsigned long long)r.wal_segments,
           (unsigned long long)r.wal_records, (unsigned long long)r.wal_unapplied,
           (unsigned long long)r.torn_bytes, (unsigned long long)r.problems);
    cli_json_str(stdout, r.first_problem, strlen(r.first_problem));
    printf("}\n");
  } else {
    printf("channels       %llu\nmessages       %llu\nbytes          %llu\n"
           "groups         %llu\nwal segments   %llu\nwal records    %llu\n"
           "wal unapplied  %llu bytes\ntorn tail      %llu bytes\n"
           "problems       %llu\n",
           (unsigned long long)r.channels, (unsigned long long)r.messages,
           (unsigned long long)r.bytes, (unsigned long long)r.groups,
           (unsigned long long)r.wal_segments, (unsigned long long)r.wal_records,
           (unsigned long long)r.wal_unapplied, (unsigned long long)r.torn_bytes,
           (unsigned long long)r.problems);
    printf("%s%s\n", rc ? "CORRUPT: " : "ok", r.first_problem);
  }
  return rc ? EXIT_CORRUPT : EXIT_OK;
}
