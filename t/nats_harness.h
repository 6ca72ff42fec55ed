/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* nats_harness.h - a private nats-server with JetStream for one test. */
#ifndef LMQ_T_NATS_HARNESS_H
#define LMQ_T_NATS_HARNESS_H
#include <sys/types.h>

typedef struct nh_server {
  pid_t pid;    /* 0 when stopped */
  int port;     /* loopback port it listens on */
  char url[64]; /* "nats://127.0.0.1:PORT" */
  char *dir;    /* its own store directory (removed by nh_stop) */
} nh_server;

/* Start `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` on a free loopback
 * port and wait until it accepts connections. The binary is looked up on
 * PATH, then in /usr/sbin and /sbin. A missing or failing server fails the
 * calling test (cr_assert): it never passes silently. The server is killed
 * when the test process dies, even by a crash. */
void nh_start(nh_server *s);
/* Start it again on the same port and store (after nh_kill). */
void nh_restart(nh_server *s);
/* SIGKILL the server and reap it; the store stays. */
void nh_kill(nh_server *s);
/* SIGTERM: a clean shutdown (the server flushes its state), then reap. */
void nh_term(nh_server *s);
/* Kill it and remove its store. Safe to call twice. */
void nh_stop(nh_server *s);

/* Helpers shared with the cluster harness (t/nats_cluster.c): the
 * nats-server binary (1 if found), a free loopback port, and whether a
 * loopback port accepts connections. */
int nh_find_server(char *out, size_t cap);
int nh_free_port(void);
int nh_accepts(int port);

/* One server for the whole test process, stopped at exit: for the stream
 * tests built with LMQ_TEST_BACKEND "nats". Returns its URL. */
const char *nh_shared_url(void);
#endif
