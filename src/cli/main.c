/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * main.c - the lmq command: global options, usage, and dispatch to the
 * command families (one file each: channels.c, groups.c, read.c,
 * produce.c, wal.c, backup.c, bench.c, demo.c).
 */
#include "config.h"
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: lmq [--json] [--meta URI] [--salvage] [-q] COMMAND DIR [ARGS]\n"
    "\n"
    "Read commands (never create or modify anything; they work while\n"
    "another process has DIR open):\n"
    "  channels DIR                       channels with counts, IDs, times\n"
    "  channel info DIR CHANNEL           one channel and its groups\n"
    "  groups DIR [CHANNEL]               groups with cursor, committed, lag\n"
    "  group info DIR CHANNEL GROUP       one group\n"
    "  read DIR CHANNEL [--from POS] [--count N] [--follow] [--format F]\n"
    "                                     messages, without a group\n"
    "  stats DIR                          WAL, applied position, LMDB map\n"
    "  wal dump DIR                       WAL records, IDs, sizes, checksums\n"
    "  verify DIR                         check WAL and LMDB (exit 5: corrupt)\n"
    "\n"
    "Write commands:\n"
    "  backup DIR DEST [--compact]        hot consistent copy of DIR (if no\n"
    "                                     process holds DIR, its WAL is applied\n"
    "                                     first; else LMDB is copied read-only)\n"
    "  create DIR CHANNEL...              create channels (and DIR if new)\n"
    "  destroy DIR CHANNEL...             destroy channels\n"
    "  channel retention DIR CHANNEL --max-age MS --max-bytes N\n"
    "  produce DIR CHANNEL [MESSAGE...] [--batch N] [--sync always|interval|none]\n"
    "          [--input lines|lp] [--ids]  (stdin when no MESSAGE)\n"
    "  consume DIR CHANNEL GROUP [MAX] [--count N] [--timeout MS] [--follow]\n"
    "          [--no-commit] [--format F]\n"
    "  group create DIR CHANNEL GROUP [--at earliest|latest]\n"
    "  group reset DIR CHANNEL GROUP --to-earliest|--to-latest|--to-time T|\n"
    "          --to-id ID [--dry-run]\n"
    "  group rm DIR CHANNEL GROUP\n"
    "  bench [DIR] [--messages N] [--size B] [--batch N] [--channels C]\n"
    "          [--sync always|interval|none] [--no-consume]\n"
    "  demo DIR                           engine and TtMsgStream demo\n"
    "\n"
    "POS is earliest, latest, a message ID, or a time: 2026-11-29T22:10:00Z,\n"
    "@MS (ms since the epoch), now, -30s, -5m, -2h, -1d.\n"
    "F (payload format) is text (ID TAB escaped text), hex, base64, raw,\n"
    "json (JSON lines) or lp (4-byte big-endian length + bytes).\n"
    "\n"
    "Options:\n"
    "  --json       JSON output (read commands)\n"
    "  --meta URI   the metadata store DIR uses (etcd://...; or $LMQ_META)\n"
    "  --salvage    write commands: open past WAL damage, skipping it\n"
    "  -q           no notes or progress on stderr\n"
    "  -h, --help   this text;  --version  the version\n"
    "\n"
    "Exit status: 0 ok, 1 other error, 2 usage, 3 not found, 4 busy,\n"
    "5 corrupt, 6 I/O (including output that could not be written),\n"
    "7 metadata store unavailable. See lmq(1).\n";

typedef struct command {
  const char *name;
  int (*fn)(args *a);
} command;

static const command commands[] = {
    {"channels", cmd_channels}, {"channel", cmd_channel},
    {"create", cmd_create},     {"destroy", cmd_destroy},
    {"stats", cmd_stats},       {"groups", cmd_groups},
    {"group", cmd_group},       {"read", cmd_read},
    {"consume", cmd_consume},   {"produce", cmd_produce},
    {"wal", cmd_wal},           {"verify", cmd_verify},
    {"backup", cmd_backup},     {"bench", cmd_bench},
    {"demo", cmd_demo},
};

/* Take the global options out of argv (anywhere before "--"). Returns the
 * new argc, or -1 after a usage message; *help and *version are set. */
static int global_options(int argc, char **argv, int *help, int *version) {
  int out = 1;
  for (int i = 1; i < argc; i++) {
    const char *w = argv[i];
    if (!strcmp(w, "--")) {
      while (i < argc)
        argv[out++] = argv[i++];
      break;
    }
    if (!strcmp(w, "--json"))
      g_cli.json = 1;
    else if (!strcmp(w, "--salvage"))
      g_cli.salvage = 1;
    else if (!strcmp(w, "-q") || !strcmp(w, "--quiet"))
      g_cli.quiet = 1;
    else if (!strcmp(w, "-h") || !strcmp(w, "--help"))
      *help = 1;
    else if (!strcmp(w, "--version") || !strcmp(w, "-V"))
      *version = 1;
    else if (!strncmp(w, "--meta=", 7))
      g_cli.meta_uri = w + 7;
    else if (!strcmp(w, "--meta")) {
      if (i + 1 >= argc) {
        cli_usage_error("--meta needs a URI");
        return -1;
      }
      g_cli.meta_uri = argv[++i];
    } else
      argv[out++] = argv[i];
  }
  argv[out] = NULL;
  return out;
}

int main(int argc, char **argv) {
  /* A closed pipe is an error we report (and then commit nothing), not a
   * silent death. */
  signal(SIGPIPE, SIG_IGN);
  int help = 0, version = 0;
  g_cli.meta_uri = getenv("LMQ_META");
  if (g_cli.meta_uri && !*g_cli.meta_uri)
    g_cli.meta_uri = NULL;
  argc = global_options(argc, argv, &help, &version);
  if (argc < 0)
    return EXIT_USAGE;
  if (version) {
    printf("lmq %s (library %s)\n", LMQ_VERSION_STRING, lmq_version());
    return cli_flush_stdout();
  }
  if (help || argc < 2) {
    fputs(usage_text, help ? stdout : stderr);
    return help ? cli_flush_stdout() : EXIT_USAGE;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) {
      args a = {argc, argv, 2};
      int st = commands[i].fn(&a);
      if (st == EXIT_OK)
        st = cli_flush_stdout();
      return st;
    }
  return cli_usage_error("unknown command '%s'", argv[1]);
}
