/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * cli.h - shared pieces of the lmq command: options, exit statuses, opening
 * a directory, parsing IDs and times, and output (tables, JSON, payloads).
 * The command uses only the public API (lmq.h, lmq_stream.h).
 */
#ifndef LMQ_CLI_H
#define LMQ_CLI_H

#include "lmq.h"

#include <stdint.h>
#include <stdio.h>

/* Exit statuses, documented in lmq(1). */
enum {
  EXIT_OK = 0,
  EXIT_ERROR = 1,    /* any other failure */
  EXIT_USAGE = 2,    /* bad command line or bad argument value */
  EXIT_NOTFOUND = 3, /* no such directory/env, channel or group */
  EXIT_BUSY = 4,     /* the directory is held by another process */
  EXIT_CORRUPT = 5,  /* stored data is corrupt (verify found a problem) */
  EXIT_IO = 6,       /* I/O error, disk full, or output could not be written */
  EXIT_UNAVAIL = 7   /* the metadata store (etcd) is unreachable */
};

/* Global options (before or after the command words). */
typedef struct cli {
  int json;             /* --json */
  int salvage;          /* --salvage */
  const char *meta_uri; /* --meta URI, or $LMQ_META */
  int quiet;            /* -q: no progress or notes on stderr */
  int sync;             /* enum lmq_sync for write opens; 0 = default */
} cli;

extern cli g_cli;

/* An argv cursor for a command's own arguments and options. */
typedef struct args {
  int argc;
  char **argv;
  int i;
} args;

/* Print "lmq: what: <strerror> (<errmsg>)" and return the exit status for
 * the lmq error code rc. */
int cli_fail(const char *what, int rc);
/* Print "lmq: <message>" and return EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The exit status for an lmq error code. */
int cli_status(int rc);

/* Open modes. */
enum { OPEN_READ, OPEN_WRITE, OPEN_CREATE };
/* Open dir: OPEN_READ is LMQ_OPEN_RDONLY (never creates, runs beside a
 * writer, and notes on stderr WAL bytes it cannot show); OPEN_WRITE needs
 * an existing env; OPEN_CREATE may create it. Returns an exit status. */
int cli_open(lmq_env **env, const char *dir, int mode);

/* Parse "always", "interval" or "none" into enum lmq_sync; 0 on success. */
int cli_parse_sync(int *sync, const char *s);
/* Monotonic seconds, for rates and progress. */
double cli_now(void);
/* Progress on stderr, at most once a second and only on a terminal (and
 * not with -q); a final call with done = 1 ends the line. */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_progress_end(void);
/* Around one long library call (verify, backup): a line with the elapsed
 * time, once a second after the first, from a thread of its own (same
 * rules as cli_progress). cli_busy_end() stops it and clears the line. */
void cli_busy_start(const char *what);
void cli_busy_end(void);

/* Parse an unsigned decimal; 0 on success. */
int cli_parse_u64(uint64_t *out, const char *s);
/* Parse a time: ISO 8601 "2026-11-29T22:10:00[.123][Z]" (UTC), "@MS" (ms
 * since the epoch), "now", or relative "-30s", "-5m", "-2h", "-1d".
 * Returns 0 and ms since the epoch. */
int cli_parse_time(uint64_t *ms, const char *s);
/* Parse a position for --from/--to: "earliest", "latest", a message ID
 * (a plain decimal number), or a time (as above). kind gets one of: */
enum { POS_EARLIEST, POS_LATEST, POS_ID, POS_TIME };
int cli_parse_pos(int *kind, uint64_t *value, const char *s);
/* Format ms since the epoch as UTC ISO 8601 with milliseconds ("-" for 0). */
void cli_fmt_time(char *buf, size_t len, uint64_t ms);

/* Output: JSON string (escaped, quoted) of len bytes. Bytes that are not
 * valid UTF-8 are written as \u00XX of their value. */
void cli_json_str(FILE *f, const char *s, size_t len);

/* Payload formats for read/consume. */
enum { FMT_TEXT, FMT_HEX, FMT_BASE64, FMT_RAW, FMT_JSON, FMT_LP };
int cli_parse_format(int *fmt, const char *s);
/* Write one message in fmt (channel is for JSON). */
void cli_write_msg(FILE *f, int fmt, const char *channel, const lmq_msg *m);
/* fflush(stdout) and check it: 0, or prints the error and returns EXIT_IO. */
int cli_flush_stdout(void);

/* A plain-text table: columns padded to their widest cell. */
typedef struct table table;
table *table_new(int ncols, const char *const *headers);
void table_add(table *t, ...); /* ncols strings (copied) */
void table_print(table *t, FILE *f);
void table_free(table *t);

/* Commands (one file per family). Each gets the words after its name and
 * returns an exit status. */
int cmd_channels(args *a);
int cmd_channel(args *a); /* channel info|create|rm|retention */
int cmd_create(args *a);
int cmd_destroy(args *a);
int cmd_stats(args *a);
int cmd_groups(args *a);
int cmd_group(args *a); /* group info|create|reset|rm */
int cmd_read(args *a);
int cmd_consume(args *a);
int cmd_produce(args *a);
int cmd_wal(args *a); /* wal dump */
int cmd_verify(args *a);
int cmd_backup(args *a);
int cmd_bench(args *a);
int cmd_demo(args *a);

/* Option helpers for commands: if argv[a->i] is the option name, take its
 * value (--name VALUE or --name=VALUE) into *val and return 1; 0 if it is
 * another word; -1 (after a usage message) if the value is missing. */
int opt_value(args *a, const char *name, const char **val);
/* 1 if argv[a->i] is the flag (and consume it). */
int opt_flag(args *a, const char *name);
/* The next positional word, or NULL. */
const char *arg_next(args *a);

#endif
