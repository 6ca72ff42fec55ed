/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * replay.c - run a fuzz target's LLVMFuzzerTestOneInput over files, without
 * libFuzzer, so that `make check` (any compiler) replays every corpus and
 * crash input. Each input is copied into a heap block of exactly its size,
 * as libFuzzer does, so that a sanitizer build catches over-reads.
 *
 *   replay_<target> [file-or-dir...]
 *
 * Without arguments it replays $srcdir/fuzz/corpus/<target> and
 * $srcdir/fuzz/crashes/<target> (the test harness exports srcdir). Output
 * is TAP, one test per file: a target that crashes ends the run, and the
 * harness reports it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=\"name\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct list {
  char **v;
  size_t n, cap;
} list;

static void add(list *l, const char *path) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 64;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v)
      abort();
  }
  if (!(l->v[l->n++] = strdup(path)))
    abort();
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add path, or the regular files of directory path (a missing directory is
 * an empty one: crash directories may not exist in a tarball). */
static void collect(list *l, const char *path, int must_exist) {
  struct stat st;
  if (stat(path, &st)) {
    if (must_exist) {
      fprintf(stderr, "replay: cannot stat %s\n", path);
      exit(2);
    }
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    add(l, path);
    return;
  }
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *e;
  char buf[4096];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue; /* ., .., .gitkeep */
    snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
    if (!stat(buf, &st) && S_ISREG(st.st_mode))
      add(l, buf);
  }
  closedir(d);
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  size_t cap = 4096, n = 0;
  unsigned char *buf = malloc(cap);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap)
      buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (!buf)
    return -1;
  /* Exactly n bytes, not NUL-terminated: reads past the end are caught. */
  unsigned char *exact = malloc(n ? n : 1);
  if (!exact)
    abort();
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

int main(int argc, char **argv) {
  list l = {0};
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      collect(&l, argv[i], 1);
  } else {
    const char *src = getenv("srcdir");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", src ? src : ".", FUZZ_TARGET);
    collect(&l, dir, 1);
    snprintf(dir, sizeof dir, "%s/fuzz/crashes/%s", src ? src : ".", FUZZ_TARGET);
    collect(&l, dir, 0);
  }
  qsort(l.v, l.n, sizeof *l.v, cmp);
  printf("1..%zu\n", l.n);
  fflush(stdout);
  int failed = 0;
  for (size_t i = 0; i < l.n; i++) {
    /* Print the name first: if the target crashes, the log shows which. */
    fprintf(stderr, "replay %s: %s\n", FUZZ_TARGET, l.v[i]);
    int rc = run_file(l.v[i]);
    printf("%s %zu - %s\n", rc ? "not ok" : "ok", i + 1, l.v[i]);
    fflush(stdout);
    failed |= rc != 0;
    free(l.v[i]);
  }
  free(l.v);
  return failed;
}
