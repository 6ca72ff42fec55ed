/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
#include "nats_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int exe_in(char *out, size_t cap, const char *dir) {
  snprintf(out, cap, "%s/nats-server", dir);
  return access(out, X_OK) == 0;
}

int nh_find_server(char *out, size_t cap) {
  const char *path = getenv("PATH");
  if (path) {
    char *p = strdup(path), *save = NULL;
    for (char *d = strtok_r(p, ":", &save); d; d = strtok_r(NULL, ":", &save))
      if (*d && exe_in(out, cap, d)) {
        free(p);
        return 1;
      }
    free(p);
  }
  return exe_in(out, cap, "/usr/sbin") || exe_in(out, cap, "/sbin");
}

int nh_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

int nh_accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Spawn on s->port; 1 once it accepts, 0 if it exited or never listened. */
static int spawn(nh_server *s, const char *exe) {
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Die with the test, whatever way it ends. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
      dup2(nul, 0);
      dup2(nul, 1);
      dup2(nul, 2);
    }
    execl(exe, exe, "-js", "-a", "127.0.0.1", "-p", port, "-sd", s->dir, (char *)NULL);
    _exit(127);
  }
  s->pid = pid;
  for (int i = 0; i < 1000; i++) { /* 10 s */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      s->pid = 0;
      return 0;
    }
    if (nh_accepts(s->port))
      return 1;
    sleep_ms(10);
  }
  nh_kill(s);
  return 0;
}

static void start_on(nh_server *s, int fixed_port) {
  char exe[4096];
  cr_assert(nh_find_server(exe, sizeof exe),
            "nats-server not found on PATH, in /usr/sbin or /sbin: the NATS "
            "tests need it");
  for (int attempt = 0; attempt < 5; attempt++) {
    if (!fixed_port)
      s->port = nh_free_port();
    cr_assert_gt(s->port, 0, "no free loopback port");
    if (spawn(s, exe)) {
      snprintf(s->url, sizeof s->url, "nats://127.0.0.1:%d", s->port);
      return;
    }
    sleep_ms(100);
  }
  cr_assert_fail("nats-server (%s) did not start on 127.0.0.1:%d", exe, s->port);
}

void nh_start(nh_server *s) {
  memset(s, 0, sizeof *s);
  char tmpl[] = "/tmp/lmq-nats-XXXXXX";
  cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
  s->dir = strdup(tmpl);
  start_on(s, 0);
}

void nh_restart(nh_server *s) {
  cr_assert_eq(s->pid, 0, "nh_restart: the server still runs");
  start_on(s, 1);
}

void nh_kill(nh_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
  }
  s->pid = 0;
}

void nh_term(nh_server *s) {
  if (s->pid > 0) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
  }
  s->pid = 0;
}

void nh_stop(nh_server *s) {
  nh_kill(s);
  if (s->dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
      fprintf(stderr, "nats harness: could not remove %s\n", s->dir);
    free(s->dir);
    s->dir = NULL;
  }
}

static nh_server shared;

static void shared_stop(void) { nh_stop(&shared); }

const char *nh_shared_url(void) {
  if (!shared.pid) {
    nh_start(&shared);
    atexit(shared_stop);
  }
  return shared.url;
}
