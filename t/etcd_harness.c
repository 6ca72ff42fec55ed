/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* etcd_harness.c - a private etcd for tests (see etcd_harness.h). */
#define _GNU_SOURCE
#include "etcd_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int fail(etcd_harness *h, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(h->err, sizeof h->err, fmt, ap);
  va_end(ap);
  return -1;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int eh_free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

int eh_find(etcd_harness *h) {
  const char *env = getenv("LMQ_ETCD");
  if (env && *env) {
    if (access(env, X_OK) != 0)
      return fail(h, "LMQ_ETCD=%s is not executable", env);
    snprintf(h->bin, sizeof h->bin, "%s", env);
    return 0;
  }
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", path ? path : "/usr/bin:/bin");
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
       d = strtok_r(NULL, ":", &save)) {
    if (!*d)
      continue;
    snprintf(h->bin, sizeof h->bin, "%s/etcd", d);
    if (access(h->bin, X_OK) == 0)
      return 0;
  }
  h->bin[0] = '\0';
  return fail(h, "etcd not found on PATH, /usr/sbin or /sbin (Debian: etcd-server; "
                 "or set LMQ_ETCD)");
}

/* One HTTP/1.0 exchange with 127.0.0.1:port. Returns the status or -1. */
static int http(int port, const char *method, const char *path, const char *body,
                const char *auth, char *resp, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  size_t blen = body ? strlen(body) : 0;
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n%s%s%s"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                   method, path, port, auth ? "Authorization: " : "", auth ? auth : "",
                   auth ? "\r\n" : "", blen);
  if (write(fd, head, (size_t)n) != n ||
      (blen && write(fd, body, blen) != (ssize_t)blen)) {
    close(fd);
    return -1;
  }
  char *all = NULL;
  size_t got = 0, acap = 0;
  for (;;) {
    if (got + 4096 + 1 > acap) {
      acap = acap ? acap * 2 : 8192;
      char *na = realloc(all, acap);
      if (!na)
        break;
      all = na;
    }
    ssize_t r = read(fd, all + got, 4096);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  int status = -1;
  if (all) {
    all[got] = '\0';
    if (sscanf(all, "HTTP/%*s %d", &status) != 1)
      status = -1;
    char *b = strstr(all, "\r\n\r\n");
    if (resp && cap)
      snprintf(resp, cap, "%s", b ? b + 4 : "");
    free(all);
  }
  return status;
}

int eh_post(etcd_harness *h, const char *path, const char *body, const char *auth,
            char *resp, size_t cap) {
  int st = http(h->port, "POST", path, body, auth, resp, cap);
  if (st < 0)
    fail(h, "POST %s to 127.0.0.1:%d failed", path, h->port);
  return st;
}

static int healthy_port(int port) {
  char resp[256];
  return http(port, "GET", "/health", NULL, NULL, resp, sizeof resp) == 200 &&
         strstr(resp, "\"health\":\"true\"") != NULL;
}

static int spawn(etcd_harness *h) {
  char data[300], log[300], curl[64], purl[64], cluster[96];
  snprintf(data, sizeof data, "%s/data", h->dir);
  snprintf(log, sizeof log, "%s/etcd.log", h->dir);
  snprintf(curl, sizeof curl, "%s://127.0.0.1:%d", h->ca[0] ? "https" : "http",
           h->port);
  char murl[64];
  snprintf(murl, sizeof murl, "http://127.0.0.1:%d", h->metrics_port);
  snprintf(purl, sizeof purl, "http://127.0.0.1:%d", h->peer_port);
  snprintf(cluster, sizeof cluster, "default=%s", purl);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    return fail(h, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Never outlive the test process, whatever happens to it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0)
      dup2(nul, 0);
    if (h->ca[0])
      execl(h->bin, h->bin, "--data-dir", data, "--listen-client-urls", curl,
            "--advertise-client-urls", curl, "--listen-peer-urls", purl,
            "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
            "--heartbeat-interval", "10", "--election-timeout", "100",
            "--cert-file", h->cert, "--key-file", h->key, "--trusted-ca-file",
            h->ca, "--client-cert-auth", "--listen-metrics-urls", murl,
            (char *)NULL);
    else
      execl(h->bin, h->bin, "--data-dir", data, "--listen-client-urls", curl,
            "--advertise-client-urls", curl, "--listen-peer-urls", purl,
            "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
            "--heartbeat-interval", "10", "--election-timeout", "100", (char *)NULL);
    _exit(127);
  }
  h->pid = pid;
  long until = mono_ms() + 20000;
  while (mono_ms() < until) {
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      h->pid = 0;
      return fail(h, "etcd exited during start-up (status %d); see %s", st, log);
    }
    if (healthy_port(h->ca[0] ? h->metrics_port : h->port)) {
      /* Whoever answered may be another test's etcd that took the port
       * first (ours then exits on its failed bind): it must be ours,
       * still running a moment later. start() then tries new ports. */
      nap_ms(200);
      if (waitpid(pid, &st, WNOHANG) == pid) {
        h->pid = 0;
        return fail(h, "etcd exited right after start-up (status %d; its port "
                    "taken?); see %s", st, log);
      }
      return 0;
    }
    nap_ms(20);
  }
  eh_stop(h);
  return fail(h, "etcd on port %d not healthy after 20 s; see %s", h->port, log);
}

static int start(etcd_harness *h, const char *base);

int eh_start(etcd_harness *h, const char *base) {
  memset(h, 0, sizeof *h);
  return start(h, base);
}

int eh_start_tls(etcd_harness *h, const char *base, const char *cert,
                 const char *key, const char *ca) {
  memset(h, 0, sizeof *h);
  snprintf(h->cert, sizeof h->cert, "%s", cert);
  snprintf(h->key, sizeof h->key, "%s", key);
  snprintf(h->ca, sizeof h->ca, "%s", ca);
  return start(h, base);
}

static int start(etcd_harness *h, const char *base) {
  if (eh_find(h))
    return -1;
  if (!base)
    base = getenv("TMPDIR");
  snprintf(h->dir, sizeof h->dir, "%s/lmq-etcd-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(h->dir))
    return fail(h, "mkdtemp %s: %s", h->dir, strerror(errno));
  /* Another process may grab a port between our check and etcd's bind:
   * try a few port pairs. */
  for (int attempt = 0; attempt < 4; attempt++) {
    h->port = eh_free_port();
    do
      h->peer_port = eh_free_port();
    while (h->peer_port == h->port);
    do
      h->metrics_port = eh_free_port();
    while (h->metrics_port == h->port || h->metrics_port == h->peer_port);
    if (h->port < 0 || h->peer_port < 0 || h->metrics_port < 0)
      return fail(h, "no free loopback port");
    char data[300];
    snprintf(data, sizeof data, "%s/data", h->dir);
    eh_rmtree(data);
    if (spawn(h) == 0)
      return 0;
  }
  return -1;
}

int eh_stop(etcd_harness *h) {
  if (!h->pid)
    return 0;
  kill(h->pid, SIGTERM);
  long until = mono_ms() + 5000;
  int st;
  while (waitpid(h->pid, &st, WNOHANG) == 0) {
    if (mono_ms() > until) {
      kill(h->pid, SIGKILL);
      waitpid(h->pid, &st, 0);
      break;
    }
    nap_ms(10);
  }
  h->pid = 0;
  return 0;
}

int eh_restart(etcd_harness *h) {
  eh_stop(h);
  return spawn(h);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb;
  (void)flag;
  (void)f;
  remove(path);
  return 0;
}

void eh_rmtree(const char *dir) {
  if (dir && *dir)
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void eh_destroy(etcd_harness *h) {
  eh_stop(h);
  eh_rmtree(h->dir);
  h->dir[0] = '\0';
}

int eh_enable_auth(etcd_harness *h, const char *user, const char *password) {
  char body[512], resp[1024];
  snprintf(body, sizeof body, "{\"name\":\"%s\",\"password\":\"%s\"}", user, password);
  if (eh_post(h, "/v3/auth/user/add", body, NULL, resp, sizeof resp) != 200)
    return fail(h, "user add: %s", resp);
  if (eh_post(h, "/v3/auth/role/add", "{\"name\":\"root\"}", NULL, resp, sizeof resp) !=
      200)
    return fail(h, "role add: %s", resp);
  snprintf(body, sizeof body, "{\"user\":\"%s\",\"role\":\"root\"}", user);
  if (eh_post(h, "/v3/auth/user/grant", body, NULL, resp, sizeof resp) != 200)
    return fail(h, "grant: %s", resp);
  if (eh_post(h, "/v3/auth/enable", "{}", NULL, resp, sizeof resp) != 200)
    return fail(h, "auth enable: %s", resp);
  return 0;
}
