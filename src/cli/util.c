/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * util.c - the lmq command's shared helpers: exit statuses, opening a data
 * directory, parsing positions and times, option scanning, and output
 * (payload formats, JSON strings, tables).
 */
#define _GNU_SOURCE
#include "cli/cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

cli g_cli;

int cli_status(int rc) {
  switch (rc) {
  case LMQ_OK:
    return EXIT_OK;
  case LMQ_EINVAL:
  case LMQ_ETOOBIG:
    return EXIT_USAGE;
  case LMQ_ENOCHANNEL:
  case LMQ_ENOGROUP:
  case LMQ_ENOTFOUND:
    return EXIT_NOTFOUND;
  case LMQ_EBUSY:
    return EXIT_BUSY;
  case LMQ_ECORRUPT:
    return EXIT_CORRUPT;
  case LMQ_EIO:
  case LMQ_ENOSPC:
  case LMQ_EMAPFULL:
  case LMQ_EFAILED:
    return EXIT_IO;
  case LMQ_EUNAVAIL:
  case LMQ_EAUTH:
  case LMQ_EPROTO:
    return EXIT_UNAVAIL;
  default:
    return EXIT_ERROR;
  }
}

int cli_fail(const char *what, int rc) {
  const char *m = lmq_errmsg();
  if (*m)
    fprintf(stderr, "lmq: %s: %s (%s)\n", what, lmq_strerror(rc), m);
  else
    fprintf(stderr, "lmq: %s: %s\n", what, lmq_strerror(rc));
  return cli_status(rc);
}

int cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("lmq: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see lmq --help)\n", stderr);
  va_end(ap);
  return EXIT_USAGE;
}

int cli_open(lmq_env **env, const char *dir, int mode) {
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = g_cli.meta_uri;
  if (g_cli.sync)
    o.sync = g_cli.sync;
  if (mode == OPEN_READ)
    o.flags = LMQ_OPEN_RDONLY;
  else if (mode == OPEN_WRITE)
    o.flags = LMQ_OPEN_NOCREATE;
  if (mode != OPEN_READ && g_cli.salvage)
    o.flags |= LMQ_OPEN_SALVAGE;
  int rc = lmq_env_open(env, dir, &o);
  if (rc) {
    int st = cli_fail(dir, rc);
    if (rc == LMQ_EBUSY && mode != OPEN_READ)
      fprintf(stderr, "lmq: read commands (channels, groups, read, verify, "
                      "backup...) work while another process has it open\n");
    return st;
  }
  if (mode == OPEN_READ) {
    lmq_env_stats s;
    if (!g_cli.quiet && lmq_env_stats_get(&s, *env) == 0 && s.unapplied_bytes)
      fprintf(stderr, "lmq: note: %llu WAL bytes are not applied to LMDB yet "
                      "and not shown (a writer has them in flight, or a "
                      "read-write open will replay them)\n",
              (unsigned long long)s.unapplied_bytes);
    return EXIT_OK;
  }
  lmq_recovery_report r = LMQ_RECOVERY_REPORT_INIT;
  if (lmq_env_recovery_get(&r, *env) == 0 && (r.cut_bytes || r.salvaged_regions))
    fprintf(stderr, "lmq: recovery: %s\n", r.summary);
  return EXIT_OK;
}

int cli_parse_sync(int *sync, const char *s) {
  if (!strcmp(s, "always"))
    *sync = LMQ_SYNC_ALWAYS;
  else if (!strcmp(s, "interval"))
    *sync = LMQ_SYNC_INTERVAL;
  else if (!strcmp(s, "none"))
    *sync = LMQ_SYNC_NONE;
  else
    return -1;
  return 0;
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double progress_last, progress_start;
static int progress_shown;

void cli_progress(const char *fmt, ...) {
  double now = cli_now();
  if (!progress_start)
    progress_start = now;
  if (g_cli.quiet || !isatty(2) || now - progress_last < 1.0 ||
      now - progress_start < 1.0)
    return;
  progress_last = now;
  va_list ap;
  va_start(ap, fmt);
  fputs("\r\033[K", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  progress_shown = 1;
}

void cli_progress_end(void) {
  if (progress_shown)
    fputs("\r\033[K", stderr);
  progress_shown = 0;
  progress_start = progress_last = 0;
}

static struct {
  pthread_t t;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int on, stop;
  const char *what;
} busy = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *busy_main(void *arg) {
  (void)arg;
  double t0 = cli_now();
  pthread_mutex_lock(&busy.mu);
  while (!busy.stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&busy.cv, &busy.mu, &ts);
    if (!busy.stop)
      cli_progress("lmq: %s: %.0f s", busy.what, cli_now() - t0);
  }
  pthread_mutex_unlock(&busy.mu);
  return NULL;
}

void cli_busy_start(const char *what) {
  if (g_cli.quiet || !isatty(2) || busy.on)
    return;
  busy.what = what;
  busy.stop = 0;
  progress_start = cli_now(); /* the first line after one second */
  busy.on = pthread_create(&busy.t, NULL, busy_main, NULL) == 0;
}

void cli_busy_end(void) {
  if (!busy.on)
    return;
  pthread_mutex_lock(&busy.mu);
  busy.stop = 1;
  pthread_cond_signal(&busy.cv);
  pthread_mutex_unlock(&busy.mu);
  pthread_join(busy.t, NULL);
  busy.on = 0;
  cli_progress_end();
}

int cli_parse_u64(uint64_t *out, const char *s) {
  if (!s || !*s || *s == '-' || *s == '+')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int cli_parse_time(uint64_t *ms, const char *s) {
  if (!s || !*s)
    return -1;
  if (!strcmp(s, "now")) {
    *ms = now_ms();
    return 0;
  }
  if (s[0] == '@')
    return cli_parse_u64(ms, s + 1);
  if (s[0] == '-') {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s + 1, &end, 10);
    uint64_t unit = 0;
    if (end == s + 1 || errno || end[0] == '\0' || end[1] != '\0')
      return -1;
    switch (*end) {
    case 's': unit = 1000; break;
    case 'm': unit = 60000; break;
    case 'h': unit = 3600000; break;
    case 'd': unit = 86400000; break;
    default: return -1;
    }
    uint64_t now = now_ms();
    *ms = n * unit > now ? 0 : now - n * unit;
    return 0;
  }
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p)
    p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
  if (!p)
    return -1;
  unsigned frac = 0;
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3)
        frac = frac * 10 + (unsigned)(*p - '0');
    if (!digits)
      return -1;
    for (; digits < 3; digits++)
      frac *= 10;
  }
  if (*p == 'Z')
    p++;
  if (*p)
    return -1;
  time_t t = timegm(&tm);
  if (t < 0)
    return -1;
  *ms = (uint64_t)t * 1000 + frac;
  return 0;
}

int cli_parse_pos(int *kind, uint64_t *value, const char *s) {
  *value = 0;
  if (!s)
    return -1;
  if (!strcmp(s, "earliest") || !strcmp(s, "beginning")) {
    *kind = POS_EARLIEST;
    return 0;
  }
  if (!strcmp(s, "latest") || !strcmp(s, "end")) {
    *kind = POS_LATEST;
    return 0;
  }
  if (cli_parse_u64(value, s) == 0) {
    *kind = POS_ID;
    return *value > LMQ_ID_MAX ? -1 : 0;
  }
  *kind = POS_TIME;
  return cli_parse_time(value, s);
}

void cli_fmt_time(char *buf, size_t len, uint64_t ms) {
  if (!ms) {
    snprintf(buf, len, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&t, &tm);
  char b[32];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%03uZ", b, (unsigned)(ms % 1000));
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  if (p[0] < 0x80)
    return 1;
  size_t need;
  uint32_t cp;
  if ((p[0] & 0xE0) == 0xC0) {
    need = 2;
    cp = p[0] & 0x1F;
  } else if ((p[0] & 0xF0) == 0xE0) {
    need = 3;
    cp = p[0] & 0x0F;
  } else if ((p[0] & 0xF8) == 0xF0) {
    need = 4;
    cp = p[0] & 0x07;
  } else {
    return 0;
  }
  if (n < need)
    return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
      (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return need;
}

void cli_json_str(FILE *f, const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', f);
  for (size_t i = 0; i < len;) {
    unsigned char c = p[i];
    size_t u = utf8_len(p + i, len - i);
    if (c == '"' || c == '\\') {
      fputc('\\', f);
      fputc(c, f);
    } else if (c == '\n') {
      fputs("\\n", f);
    } else if (c == '\t') {
      fputs("\\t", f);
    } else if (c == '\r') {
      fputs("\\r", f);
    } else if (c < 0x20 || c == 0x7f || u == 0) {
      fprintf(f, "\\u%04x", c);
      u = 1;
    } else {
      fwrite(p + i, 1, u, f);
    }
    i += u ? u : 1;
  }
  fputc('"', f);
}

int cli_parse_format(int *fmt, const char *s) {
  static const char *const names[] = {"text", "hex", "base64", "raw", "json", "lp"};
  for (int i = 0; i < 6; i++)
    if (!strcmp(s, names[i])) {
      *fmt = i;
      return 0;
    }
  return -1;
}

static void write_text(FILE *f, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    if (c == '\\')
      fputs("\\\\", f);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c == '\r')
      fputs("\\r", f);
    else if (c < 0x20 || c >= 0x7f)
      fprintf(f, "\\x%02x", c);
    else
      fputc(c, f);
  }
}

static void write_base64(FILE *f, const unsigned char *p, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)p[i + 1] << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    fputc(tab[v >> 18 & 63], f);
    fputc(tab[v >> 12 & 63], f);
    fputc(i + 1 < n ? tab[v >> 6 & 63] : '=', f);
    fputc(i + 2 < n ? tab[v & 63] : '=', f);
  }
}

void cli_write_msg(FILE *f, int fmt, const char *channel, const lmq_msg *m) {
  const unsigned char *p = m->data;
  unsigned long long id = (unsigned long long)m->id;
  switch (fmt) {
  case FMT_TEXT:
    fprintf(f, "%llu\t", id);
    write_text(f, p, m->len);
    fputc('\n', f);
    break;
  case FMT_HEX:
    fprintf(f, "%llu\t", id);
    for (size_t i = 0; i < m->len; i++)
      fprintf(f, "%02x", p[i]);
    fputc('\n', f);
    break;
  case FMT_BASE64:
    fprintf(f, "%llu\t", id);
    write_base64(f, p, m->len);
    fputc('\n', f);
    break;
  case FMT_RAW:
    fwrite(p, 1, m->len, f);
    fputc('\n', f);
    break;
  case FMT_LP: {
    unsigned char h[4] = {(unsigned char)(m->len >> 24), (unsigned char)(m->len >> 16),
                          (unsigned char)(m->len >> 8), (unsigned char)m->len};
    fwrite(h, 1, 4, f);
    fwrite(p, 1, m->len, f);
    break;
  }
  case FMT_JSON: {
    char t[40];
    cli_fmt_time(t, sizeof t, lmq_id_time(m->id));
    fprintf(f, "{\"channel\":");
    cli_json_str(f, channel, strlen(channel));
    fprintf(f, ",\"id\":%llu,\"time\":\"%s\",\"size\":%zu,\"base64\":\"", id, t,
            m->len);
    write_base64(f, p, m->len);
    fprintf(f, "\",\"text\":");
    cli_json_str(f, (const char *)p, m->len);
    fputs("}\n", f);
    break;
  }
  }
}

int cli_flush_stdout(void) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "lmq: writing the output failed: %s\n", strerror(errno));
    return EXIT_IO;
  }
  return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Tables                                                             */

struct table {
  int ncols;
  size_t nrows, cap;
  char **cells; /* row-major, row 0 = headers */
};

table *table_new(int ncols, const char *const *headers) {
  table *t = calloc(1, sizeof *t);
  if (!t)
    return NULL;
  t->ncols = ncols;
  t->cap = 16;
  t->cells = calloc(t->cap * (size_t)ncols, sizeof *t->cells);
  if (!t->cells) {
    free(t);
    return NULL;
  }
  for (int c = 0; c < ncols; c++)
    t->cells[c] = strdup(headers[c]);
  t->nrows = 1;
  return t;
}

void table_add(table *t, ...) {
  if (!t)
    return;
  if (t->nrows == t->cap) {
    char **n = realloc(t->cells, t->cap * 2 * (size_t)t->ncols * sizeof *n);
    if (!n)
      return;
    t->cells = n;
    t->cap *= 2;
  }
  va_list ap;
  va_start(ap, t);
  for (int c = 0; c < t->ncols; c++) {
    const char *s = va_arg(ap, const char *);
    t->cells[t->nrows * (size_t)t->ncols + (size_t)c] = strdup(s ? s : "");
  }
  va_end(ap);
  t->nrows++;
}

void table_print(table *t, FILE *f) {
  if (!t)
    return;
  size_t w[32] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (int c = 0; c < t->ncols && c < 32; c++) {
      const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
      size_t l = s ? strlen(s) : 0;
      if (l > w[c])
        w[c] = l;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (int c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * (size_t)t->ncols + (size_t)c];
      if (c == t->ncols - 1)
        fprintf(f, "%s\n", s ? s : "");
      else
        fprintf(f, "%-*s  ", (int)w[c], s ? s : "");
    }
  }
}

void table_free(table *t) {
  if (!t)
    return;
  for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(t);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                          */

int opt_value(args *a, const char *name, const char **val) {
  if (a->i >= a->argc)
    return 0;
  const char *w = a->argv[a->i];
  size_t n = strlen(name);
  if (strncmp(w, name, n))
    return 0;
  if (w[n] == '=') {
    *val = w + n + 1;
    a->i++;
    return 1;
  }
  if (w[n])
    return 0;
  if (a->i + 1 >= a->argc) {
    cli_usage_error("%s needs a value", name);
    return -1;
  }
  *val = a->argv[a->i + 1];
  a->i += 2;
  return 1;
}

int opt_flag(args *a, const char *name) {
  if (a->i < a->argc && !strcmp(a->argv[a->i], name)) {
    a->i++;
    return 1;
  }
  return 0;
}

const char *arg_next(args *a) {
  if (a->i >= a->argc)
    return NULL;
  return a->argv[a->i++];
}
