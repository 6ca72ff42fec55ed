/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * model.c - the power-loss simulator's file-system model (see model.h and
 * docs/crashsim.md for the rules it implements).
 */
#define _GNU_SOURCE
#include "model.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ trace */

int pl_trace_load(pl_trace *t, const char *path) {
  memset(t, 0, sizeof *t);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "plsim: %s: %s\n", path, strerror(errno));
    return -1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *raw = malloc((size_t)size + 1);
  if (!raw || fread(raw, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(raw);
    return -1;
  }
  fclose(f);
  /* Count, then copy into a layout with NUL-terminated paths. */
  size_t cap = 1024, n = 0;
  t->ops = malloc(cap * sizeof *t->ops);
  size_t o = 0, extra = 0;
  while (o + sizeof(struct plsim_rec) <= (size_t)size) {
    struct plsim_rec h;
    memcpy(&h, raw + o, sizeof h);
    size_t len = sizeof h + h.len1 + h.len2 + h.dlen;
    if (o + len > (size_t)size)
      break; /* torn last record: the child died writing it */
    extra += h.len1 + h.len2 + h.dlen + 2;
    o += len;
    n++;
  }
  t->buf = malloc(extra + 1);
  size_t b = 0;
  o = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == cap) {
      cap *= 2;
      t->ops = realloc(t->ops, cap * sizeof *t->ops);
    }
    pl_op *op = &t->ops[i];
    memcpy(&op->h, raw + o, sizeof op->h);
    o += sizeof op->h;
    char *p1 = (char *)t->buf + b;
    memcpy(p1, raw + o, op->h.len1);
    p1[op->h.len1] = '\0';
    b += op->h.len1 + 1;
    o += op->h.len1;
    char *p2 = (char *)t->buf + b;
    memcpy(p2, raw + o, op->h.len2);
    p2[op->h.len2] = '\0';
    b += op->h.len2 + 1;
    o += op->h.len2;
    op->data = t->buf + b;
    memcpy(t->buf + b, raw + o, op->h.dlen);
    b += op->h.dlen;
    o += op->h.dlen;
    op->p1 = p1;
    op->p2 = p2;
  }
  t->n = n;
  free(raw);
  return 0;
}

void pl_trace_free(pl_trace *t) {
  free(t->ops);
  free(t->buf);
  memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ model */

typedef struct bytes {
  unsigned char *p;
  uint64_t size, cap;
} bytes;

static void bytes_resize(bytes *b, uint64_t size) {
  if (size > b->cap) {
    uint64_t c = b->cap ? b->cap : 4096;
    while (c < size)
      c *= 2;
    b->p = realloc(b->p, c);
    if (!b->p)
      abort();
    b->cap = c;
  }
  if (size > b->size)
    memset(b->p + b->size, 0, size - b->size);
  b->size = size;
}

typedef struct pl_file {
  bytes dur;
  const pl_op **pend;
  size_t npend, cappend;
  uint64_t cur_size;
} pl_file;

typedef struct dsync {
  const char *path;
  size_t t; /* dir ops below this index are durable in path */
} dsync;

struct pl_model {
  pl_file *files; /* by fid - 1 */
  size_t nfiles;
  const pl_op **dirops;
  size_t ndirops, capdirops;
  dsync *syncs;
  size_t nsyncs, capsyncs;
  size_t floor; /* sync(): every dir op below is durable */
  char *events;
  size_t nevents, capevents;
};

pl_model *pl_model_new(void) { return calloc(1, sizeof(pl_model)); }

void pl_model_free(pl_model *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->nfiles; i++) {
    free(m->files[i].dur.p);
    free(m->files[i].pend);
  }
  free(m->files);
  free(m->dirops);
  free(m->syncs);
  free(m->events);
  free(m);
}

const char *pl_model_events(const pl_model *m, size_t *len) {
  *len = m->nevents;
  return m->events ? m->events : "";
}

static pl_file *file(pl_model *m, uint32_t fid) {
  if (fid == 0)
    return NULL;
  if (fid > m->nfiles) {
    m->files = realloc(m->files, fid * sizeof *m->files);
    memset(m->files + m->nfiles, 0, (fid - m->nfiles) * sizeof *m->files);
    m->nfiles = fid;
  }
  return &m->files[fid - 1];
}

/* Apply one content op to b; growing: 1 = normal semantics. */
static void apply(bytes *b, const pl_op *op) {
  switch (op->h.type) {
  case PL_WRITE:
    if (op->h.a + op->h.dlen > b->size)
      bytes_resize(b, op->h.a + op->h.dlen);
    memcpy(b->p + op->h.a, op->data, op->h.dlen);
    break;
  case PL_TRUNC:
    if (op->h.a < b->size)
      b->size = op->h.a;
    else
      bytes_resize(b, op->h.a);
    break;
  case PL_FALLOC:
    if (op->h.mode & FALLOC_FL_PUNCH_HOLE) {
      uint64_t e = op->h.a + op->h.b;
      if (e > b->size)
        e = b->size;
      if (op->h.a < e)
        memset(b->p + op->h.a, 0, e - op->h.a);
    } else if (!(op->h.mode & FALLOC_FL_KEEP_SIZE) &&
               op->h.a + op->h.b > b->size) {
      bytes_resize(b, op->h.a + op->h.b);
    }
    break;
  }
}

static uint64_t size_after(uint64_t size, const pl_op *op) {
  switch (op->h.type) {
  case PL_WRITE:
    return op->h.a + op->h.dlen > size ? op->h.a + op->h.dlen : size;
  case PL_TRUNC:
    return op->h.a;
  case PL_FALLOC:
    if (!(op->h.mode & (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) &&
        op->h.a + op->h.b > size)
      return op->h.a + op->h.b;
    return size;
  }
  return size;
}

static void file_sync(pl_file *f) {
  for (size_t i = 0; i < f->npend; i++)
    apply(&f->dur, f->pend[i]);
  f->npend = 0;
}

static void dirop_add(pl_model *m, const pl_op *op) {
  if (m->ndirops == m->capdirops) {
    m->capdirops = m->capdirops ? m->capdirops * 2 : 256;
    m->dirops = realloc(m->dirops, m->capdirops * sizeof *m->dirops);
  }
  m->dirops[m->ndirops++] = op;
}

void pl_model_step(pl_model *m, const pl_op *op) {
  pl_file *f;
  switch (op->h.type) {
  case PL_CREATE:
    f = file(m, op->h.fid);
    f->npend = 0;
    f->dur.size = 0;
    f->cur_size = 0;
    dirop_add(m, op);
    break;
  case PL_WRITE:
  case PL_TRUNC:
  case PL_FALLOC:
    if (!(f = file(m, op->h.fid)))
      break;
    if (f->npend == f->cappend) {
      f->cappend = f->cappend ? f->cappend * 2 : 64;
      f->pend = realloc(f->pend, f->cappend * sizeof *f->pend);
    }
    f->pend[f->npend++] = op;
    f->cur_size = size_after(f->cur_size, op);
    break;
  case PL_FSYNC:
    if ((f = file(m, op->h.fid)))
      file_sync(f);
    break;
  case PL_MKDIR:
  case PL_RMDIR:
  case PL_UNLINK:
  case PL_RENAME:
    dirop_add(m, op);
    break;
  case PL_DIRSYNC: {
    size_t i;
    for (i = 0; i < m->nsyncs; i++)
      if (strcmp(m->syncs[i].path, op->p1) == 0)
        break;
    if (i == m->nsyncs) {
      if (m->nsyncs == m->capsyncs) {
        m->capsyncs = m->capsyncs ? m->capsyncs * 2 : 16;
        m->syncs = realloc(m->syncs, m->capsyncs * sizeof *m->syncs);
      }
      m->syncs[m->nsyncs++].path = op->p1;
    }
    m->syncs[i].t = m->ndirops;
    break;
  }
  case PL_SYNCALL:
    for (size_t i = 0; i < m->nfiles; i++)
      file_sync(&m->files[i]);
    m->floor = m->ndirops;
    break;
  case PL_EVENT:
    if (m->nevents + op->h.dlen > m->capevents) {
      m->capevents = (m->nevents + op->h.dlen) * 2 + 4096;
      m->events = realloc(m->events, m->capevents);
    }
    memcpy(m->events + m->nevents, op->data, op->h.dlen);
    m->nevents += op->h.dlen;
    break;
  default:
    break; /* PL_NOP: sync_file_range and msync are no barriers */
  }
}

/* ------------------------------------------------------------ crash states */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static double rng_unit(uint64_t *s) {
  return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

typedef struct nsent {
  const char *path;
  int isdir;
  uint32_t fid;
} nsent;

typedef struct ns {
  nsent *e;
  size_t n, cap;
} ns;

static nsent *ns_find(ns *t, const char *path) {
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->e[i].path, path) == 0)
      return &t->e[i];
  return NULL;
}
static void ns_set(ns *t, const char *path, int isdir, uint32_t fid) {
  nsent *e = ns_find(t, path);
  if (!e) {
    if (t->n == t->cap) {
      t->cap = t->cap ? t->cap * 2 : 64;
      t->e = realloc(t->e, t->cap * sizeof *t->e);
    }
    e = &t->e[t->n++];
  }
  *e = (nsent){path, isdir, fid};
}
static void ns_del(ns *t, const char *path) {
  nsent *e = ns_find(t, path);
  if (e)
    *e = t->e[--t->n];
}

/* The parent directory of path ("" for the root's children), into buf. */
static const char *parent(const char *path, char *buf, size_t len) {
  const char *s = strrchr(path, '/');
  size_t n = s ? (size_t)(s - path) : 0;
  if (n >= len)
    n = len - 1;
  memcpy(buf, path, n);
  buf[n] = '\0';
  return buf;
}

static size_t cutoff(const pl_model *m, const char *dir, size_t c) {
  size_t t = m->floor > c ? m->floor : c;
  for (size_t i = 0; i < m->nsyncs; i++)
    if (strcmp(m->syncs[i].path, dir) == 0 && m->syncs[i].t > t)
      t = m->syncs[i].t;
  return t;
}

/* Replay the directory ops: each applies to a directory only below that
 * directory's cutoff. */
static void build_ns(const pl_model *m, size_t c, ns *out) {
  ns truth = {0};
  char pb[4096];
  for (size_t i = 0; i < m->ndirops; i++) {
    const pl_op *op = m->dirops[i];
    int in1 = i < cutoff(m, parent(op->p1, pb, sizeof pb), c);
    switch (op->h.type) {
    case PL_CREATE:
      ns_set(&truth, op->p1, 0, op->h.fid);
      if (in1)
        ns_set(out, op->p1, 0, op->h.fid);
      break;
    case PL_MKDIR:
      ns_set(&truth, op->p1, 1, 0);
      if (in1)
        ns_set(out, op->p1, 1, 0);
      break;
    case PL_UNLINK:
    case PL_RMDIR:
      ns_del(&truth, op->p1);
      if (in1)
        ns_del(out, op->p1);
      break;
    case PL_RENAME: {
      nsent *src = ns_find(&truth, op->p1);
      nsent e = src ? *src : (nsent){op->p2, 0, 0};
      int in2 = i < cutoff(m, parent(op->p2, pb, sizeof pb), c);
      if (e.isdir)
        fprintf(stderr, "plsim: directory rename %s not modelled\n", op->p1);
      ns_del(&truth, op->p1);
      ns_set(&truth, op->p2, e.isdir, e.fid);
      if (in1)
        ns_del(out, op->p1);
      if (in2)
        ns_set(out, op->p2, e.isdir, e.fid);
      break;
    }
    }
  }
  free(truth.e);
}

static int exists(ns *t, const char *path) {
  char pb[4096];
  const char *p = parent(path, pb, sizeof pb);
  while (*p) {
    nsent *e = ns_find(t, p);
    if (!e || !e->isdir)
      return 0;
    p = parent(p, pb, sizeof pb);
  }
  return 1;
}

static int by_len(const void *a, const void *b) {
  size_t x = strlen(((const nsent *)a)->path), y = strlen(((const nsent *)b)->path);
  return x < y ? -1 : x > y;
}

/* The file's content in this variant, into b. */
static void content(const pl_file *f, const pl_variant *v, uint64_t *rng,
                    bytes *b) {
  b->size = 0;
  bytes_resize(b, f->dur.size);
  if (f->dur.size)
    memcpy(b->p, f->dur.p, f->dur.size);
  if (v->kind == PL_V_DURABLE)
    return;
  for (size_t i = 0; i < f->npend; i++) {
    const pl_op *op = f->pend[i];
    if (v->kind == PL_V_ALL) {
      apply(b, op);
      continue;
    }
    if (op->h.type != PL_WRITE) {
      if (rng_unit(rng) < v->p)
        apply(b, op);
      continue;
    }
    uint64_t s = op->h.a, e = op->h.a + op->h.dlen;
    while (s < e) {
      uint64_t pe = (s / v->sector + 1) * v->sector;
      if (pe > e)
        pe = e;
      if (rng_unit(rng) < v->p) {
        if (pe > b->size)
          bytes_resize(b, pe);
        memcpy(b->p + s, op->data + (s - op->h.a), pe - s);
      }
      s = pe;
    }
  }
  if (v->kind == PL_V_RANDOM && v->full_size) {
    if (f->cur_size < b->size)
      b->size = f->cur_size;
    else
      bytes_resize(b, f->cur_size);
  }
}

int pl_model_materialize(const pl_model *m, const pl_variant *v, const char *dir) {
  uint64_t rng = v->seed;
  size_t c = 0;
  if (v->kind == PL_V_ALL) {
    c = m->ndirops;
  } else if (v->kind == PL_V_RANDOM) {
    /* A random in-order prefix of the pending dir ops (journaled in order). */
    size_t lo = m->floor;
    if (rng_unit(&rng) < v->dir_keep)
      c = m->ndirops;
    else
      c = lo + (size_t)(rng_next(&rng) % (m->ndirops - lo + 1));
  }
  ns t = {0};
  build_ns(m, c, &t);
  if (t.n)
    qsort(t.e, t.n, sizeof *t.e, by_len);
  bytes b = {0};
  char path[8192];
  int rc = 0;
  for (size_t i = 0; i < t.n && !rc; i++) {
    nsent *e = &t.e[i];
    if (!exists(&t, e->path))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->path);
    if (e->isdir) {
      if (mkdir(path, 0755) != 0 && errno != EEXIST)
        rc = -1;
      continue;
    }
    if (e->fid == 0 || e->fid > m->nfiles)
      continue;
    content(&m->files[e->fid - 1], v, &rng, &b);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      rc = -1;
      break;
    }
    uint64_t o = 0;
    while (o < b.size) {
      ssize_t w = write(fd, b.p + o, b.size - o);
      if (w <= 0) {
        rc = -1;
        break;
      }
      o += (uint64_t)w;
    }
    close(fd);
  }
  if (rc)
    fprintf(stderr, "plsim: materialize %s: %s\n", path, strerror(errno));
  free(b.p);
  free(t.e);
  return rc;
}

void pl_variant_describe(const pl_variant *v, char *buf, size_t len) {
  if (v->kind == PL_V_DURABLE)
    snprintf(buf, len, "durable-only");
  else if (v->kind == PL_V_ALL)
    snprintf(buf, len, "all-written(sigkill)");
  else
    snprintf(buf, len, "random(p=%.2f,%u-byte pieces,%s,dir_keep=%.1f,seed=%llx)",
             v->p, v->sector, v->full_size ? "full size" : "grow-to-kept",
             v->dir_keep, (unsigned long long)v->seed);
}
