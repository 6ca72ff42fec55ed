/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd_harness.h - start a private, single-member etcd for tests: free
 * loopback ports, a temporary data directory, fast elections; stop, restart
 * (same ports and data) and destroy it; talk to it with plain HTTP/1.0.
 *
 * The etcd binary is $LMQ_ETCD if set, else the first "etcd" on $PATH or in
 * /usr/sbin or /sbin. Only 127.0.0.1 is ever used. Functions returning int
 * give 0 (or an HTTP status) on success and -1 on failure, with a reason in
 * h->err. Not thread-safe: one thread drives one harness.
 */
#ifndef LMQ_T_ETCD_HARNESS_H
#define LMQ_T_ETCD_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct etcd_harness {
  pid_t pid; /* running etcd, or 0 */
  int port;  /* client port */
  int peer_port;
  char dir[256]; /* temporary directory: data/ and etcd.log */
  char bin[512]; /* etcd executable */
  char err[512]; /* why the last call failed */
  /* TLS (eh_start_tls): client URLs are https with client-certificate
   * auth; /health is then read from a plain metrics listener. */
  char cert[300], key[300], ca[300];
  int metrics_port;
} etcd_harness;

/* Find the etcd binary (as described above) into h->bin. */
int eh_find(etcd_harness *h);

/* A loopback TCP port that was free a moment ago, or -1. */
int eh_free_port(void);

/* Find etcd, make a temporary directory under base (NULL = $TMPDIR or /tmp),
 * start etcd and wait until /health answers (up to 20 s). */
int eh_start(etcd_harness *h, const char *base);
/* Like eh_start, but serving https with the server certificate cert/key and
 * requiring client certificates signed by ca (--client-cert-auth). */
int eh_start_tls(etcd_harness *h, const char *base, const char *cert,
                 const char *key, const char *ca);
/* Stop etcd (SIGTERM, then SIGKILL after 5 s) and reap it. Keeps the data. */
int eh_stop(etcd_harness *h);
/* Start etcd again on the same ports and data directory. */
int eh_restart(etcd_harness *h);
/* Stop etcd and remove its directory. The struct may then be reused. */
void eh_destroy(etcd_harness *h);

/* POST body to path on the harness; auth (may be NULL) is sent as the
 * Authorization header. The answer's body goes into resp (NUL-terminated,
 * truncated to cap). Returns the HTTP status or -1. */
int eh_post(etcd_harness *h, const char *path, const char *body, const char *auth,
            char *resp, size_t cap);

/* Create user (with role root) and enable authentication. */
int eh_enable_auth(etcd_harness *h, const char *user, const char *password);

/* Remove a directory tree (best effort). */
void eh_rmtree(const char *dir);

#endif
