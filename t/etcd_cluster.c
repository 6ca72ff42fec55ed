/* etcd_cluster.c - see etcd_cluster.h. */
#include "etcd_cluster.h"
#include "etcd_harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* POST through the single-member harness's HTTP helper (it only needs the
 * port). */
static int post(int port, const char *path, char *resp, size_t cap) {
  etcd_harness h;
  memset(&h, 0, sizeof h);
  h.port = port;
  return eh_post(&h, path, "{}", NULL, resp, cap);
}

static int field(const char *json, const char *name, char *out, size_t cap);

/* Answers, and knows a leader. */
static int healthy(int port) {
  char resp[1024], lead[32];
  return post(port, "/v3/maintenance/status", resp, sizeof resp) == 200 &&
         field(resp, "leader", lead, sizeof lead) && strcmp(lead, "0") != 0;
}

static void spawn(ec_cluster *c, int i, int fresh) {
  ec_member *m = &c->m[i];
  char name[8], data[300], log[300], curl[64], purl[64];
  snprintf(name, sizeof name, "m%d", i);
  snprintf(data, sizeof data, "%s/m%d", c->dir, i);
  snprintf(log, sizeof log, "%s/m%d.log", c->dir, i);
  snprintf(curl, sizeof curl, "http://127.0.0.1:%d", m->port);
  snprintf(purl, sizeof purl, "http://127.0.0.1:%d", m->peer_port);
  pid_t parent = getpid(), pid = fork();
  cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execl(c->bin, c->bin, "--name", name, "--data-dir", data, "--listen-client-urls", curl,
          "--advertise-client-urls", curl, "--listen-peer-urls", purl,
          "--initial-advertise-peer-urls", purl, "--initial-cluster", c->initial,
          "--initial-cluster-state", fresh ? "new" : "existing",
          "--initial-cluster-token", "lmq-test", "--heartbeat-interval", "10",
          "--election-timeout", "100", (char *)NULL);
    _exit(127);
  }
  m->pid = pid;
}

/* Pick free ports and start the three members; 1 when every member is
 * healthy, still our own child, and all three report one cluster ID. A port
 * can be taken between eh_free_port() and etcd's bind by another test running
 * in parallel (make -j): the member then exits, and a foreign etcd answers on
 * its port, so a health check alone would pass and a later request could go
 * to a server this test never pauses or kills. 0 (members killed) when that
 * happens, so the caller tries other ports. */
static int try_start(ec_cluster *c) {
  size_t in = 0, ep = 0;
  for (int i = 0; i < EC_MEMBERS; i++) {
    ec_member *m = &c->m[i];
    m->port = eh_free_port();
    do
      m->peer_port = eh_free_port();
    while (m->peer_port == m->port);
    cr_assert(m->port > 0 && m->peer_port > 0, "no free loopback port");
    in += (size_t)snprintf(c->initial + in, sizeof c->initial - in,
                           "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, m->peer_port);
    ep += (size_t)snprintf(c->endpoints + ep, sizeof c->endpoints - ep, "%s127.0.0.1:%d",
                           i ? "," : "", m->port);
  }
  for (int i = 0; i < EC_MEMBERS; i++)
    spawn(c, i, 1);
  long long end = now_ms() + 20000;
  int ok = 1;
  char cluster[EC_MEMBERS][32];
  for (int i = 0; i < EC_MEMBERS && ok; i++) {
    char resp[1024];
    for (;;) {
      int st;
      if (waitpid(c->m[i].pid, &st, WNOHANG) == c->m[i].pid) {
        c->m[i].pid = 0; /* exited: its port was taken */
        ok = 0;
        break;
      }
      if (healthy(c->m[i].port) &&
          post(c->m[i].port, "/v3/maintenance/status", resp, sizeof resp) == 200 &&
          field(resp, "cluster_id", cluster[i], sizeof cluster[i]))
        break;
      cr_assert_lt(now_ms(), end, "the etcd cluster did not form in 20 s (%s)", c->dir);
      nap(20);
    }
    if (ok && i && strcmp(cluster[i], cluster[0]) != 0)
      ok = 0; /* a foreign etcd answers on a port meant for ours */
  }
  if (ok)
    return 1;
  for (int i = 0; i < EC_MEMBERS; i++) {
    ec_kill(c, i);
    char data[300];
    snprintf(data, sizeof data, "%s/m%d", c->dir, i);
    eh_rmtree(data);
  }
  return 0;
}

void ec_start(ec_cluster *c) {
  memset(c, 0, sizeof *c);
  etcd_harness h;
  memset(&h, 0, sizeof h);
  cr_assert_eq(eh_find(&h), 0, "%s", h.err);
  snprintf(c->bin, sizeof c->bin, "%s", h.bin);
  const char *base = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/lmq-etcdc-XXXXXX", base && *base ? base : "/tmp");
  cr_assert_not_null(mkdtemp(c->dir), "mkdtemp: %s", strerror(errno));
  for (int attempt = 0; !try_start(c); attempt++)
    cr_assert_lt(attempt, 4, "the etcd cluster could not start on free ports; see %s/m*.log",
                 c->dir);
}

/* "member_id":"123" and "leader":"123" in a status answer (int64 as strings). */
static int field(const char *json, const char *name, char *out, size_t cap) {
  char key[32];
  snprintf(key, sizeof key, "\"%s\":\"", name);
  const char *p = strstr(json, key);
  if (!p)
    return 0;
  p += strlen(key);
  size_t n = strcspn(p, "\"");
  if (n >= cap)
    return 0;
  memcpy(out, p, n);
  out[n] = 0;
  return 1;
}

int ec_leader(ec_cluster *c, int wait_ms) {
  long long end = now_ms() + wait_ms;
  do {
    for (int i = 0; i < EC_MEMBERS; i++) {
      char resp[1024], me[32], lead[32];
      if (!c->m[i].pid || post(c->m[i].port, "/v3/maintenance/status", resp,
                               sizeof resp) != 200)
        continue;
      if (field(resp, "member_id", me, sizeof me) && field(resp, "leader", lead, sizeof lead) &&
          !strcmp(me, lead))
        return i;
    }
    nap(20);
  } while (now_ms() < end);
  return -1;
}

void ec_kill(ec_cluster *c, int i) {
  if (c->m[i].pid > 0) {
    kill(c->m[i].pid, SIGCONT);
    kill(c->m[i].pid, SIGKILL);
    waitpid(c->m[i].pid, NULL, 0);
  }
  c->m[i].pid = 0;
}

/* Send member i sig and wait until the change has taken effect: kill()
 * only queues a stop, and a thread running on another core can still
 * answer a request for a moment; the parent learns that every thread
 * stopped (or continued) from waitpid(WUNTRACED / WCONTINUED). */
static void signal_and_wait(ec_cluster *c, int i, int sig) {
  if (c->m[i].pid <= 0)
    return;
  kill(c->m[i].pid, sig);
  int st, stop = sig == SIGSTOP;
  pid_t r;
  do
    r = waitpid(c->m[i].pid, &st, stop ? WUNTRACED : WCONTINUED);
  while (r == -1 && errno == EINTR);
  cr_assert(r == c->m[i].pid && (stop ? WIFSTOPPED(st) : WIFCONTINUED(st)),
            "etcd member %d did not %s", i, stop ? "stop" : "continue");
}

void ec_pause(ec_cluster *c, int i) { signal_and_wait(c, i, SIGSTOP); }

void ec_resume(ec_cluster *c, int i) { signal_and_wait(c, i, SIGCONT); }

void ec_restart(ec_cluster *c, int i) {
  cr_assert_eq(c->m[i].pid, 0, "ec_restart: member %d still runs", i);
  spawn(c, i, 0);
  long long end = now_ms() + 20000;
  while (!healthy(c->m[i].port)) {
    cr_assert_lt(now_ms(), end, "etcd member %d did not rejoin in 20 s", i);
    nap(20);
  }
}

void ec_stop(ec_cluster *c) {
  for (int i = 0; i < EC_MEMBERS; i++)
    ec_kill(c, i);
  if (c->dir[0])
    eh_rmtree(c->dir);
  c->dir[0] = 0;
}
