/* nats_servers.c - see nats_servers.h. */
#include "nats_servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
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

static int find_exe(char *out, size_t cap) {
  const char *dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/usr/local/bin"};
  const char *path = getenv("PATH");
  if (path) {
    char *p = strdup(path), *save = NULL;
    for (char *d = strtok_r(p, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
      snprintf(out, cap, "%s/nats-server", d);
      if (*d && access(out, X_OK) == 0) {
        free(p);
        return 1;
      }
    }
    free(p);
  }
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(out, cap, "%s/nats-server", dirs[i]);
    if (access(out, X_OK) == 0)
      return 1;
  }
  return 0;
}

static int free_port(void) {
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

static void nap(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static pid_t spawn(const char *exe, char *const argv[]) {
  pid_t parent = getpid(), pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int nul = open("/dev/null", O_RDWR);
    if (nul >= 0) {
      dup2(nul, 0);
      dup2(nul, 1);
      dup2(nul, 2);
    }
    execv(exe, argv);
    _exit(127);
  }
  return pid;
}

/* JetStream answers through the first URL within 20 s. */
static int ready(const char *url) {
  for (int i = 0; i < 200; i++) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    int ok = 0;
    if (natsConnection_ConnectTo(&nc, url) == NATS_OK &&
        natsConnection_JetStream(&js, nc, NULL) == NATS_OK) {
      jsAccountInfo *ai = NULL;
      ok = js_GetAccountInfo(&ai, js, NULL, NULL) == NATS_OK;
      jsAccountInfo_Destroy(ai);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (ok)
      return 1;
    nap(100);
  }
  return 0;
}

int bns_start(bns_set *s, int n) {
  memset(s, 0, sizeof *s);
  char exe[4096];
  if (n != 1 && n != 3)
    return -1;
  if (!find_exe(exe, sizeof exe)) {
    fprintf(stderr, "bench: nats-server not found (PATH, /usr/sbin)\n");
    return -1;
  }
  s->n = n;
  int port[3], cport[3];
  char routes[256] = "", cname[32];
  snprintf(cname, sizeof cname, "lmqb%d", (int)getpid());
  size_t u = 0, r = 0;
  for (int i = 0; i < n; i++) {
    port[i] = free_port();
    do
      cport[i] = free_port();
    while (cport[i] == port[i]);
    u += (size_t)snprintf(s->urls + u, sizeof s->urls - u, "%snats://127.0.0.1:%d",
                          i ? "," : "", port[i]);
    r += (size_t)snprintf(routes + r, sizeof routes - r, "%snats://127.0.0.1:%d",
                          i ? "," : "", cport[i]);
    snprintf(s->dir[i], sizeof s->dir[i], "/tmp/lmq-bnats-XXXXXX");
    if (!mkdtemp(s->dir[i])) {
      s->dir[i][0] = 0;
      bns_stop(s);
      return -1;
    }
  }
  for (int i = 0; i < n; i++) {
    char p[16], cl[64], name[16];
    snprintf(p, sizeof p, "%d", port[i]);
    snprintf(cl, sizeof cl, "nats://127.0.0.1:%d", cport[i]);
    snprintf(name, sizeof name, "b%d", i);
    char *one[] = {exe, "-js", "-a", "127.0.0.1", "-p", p, "-sd", s->dir[i], NULL};
    char *clu[] = {exe,      "-js",          "-a",  "127.0.0.1",  "-p",     p,
                   "--server_name", name,    "--cluster_name", cname, "--cluster", cl,
                   "--routes", routes,       "-sd", s->dir[i],    NULL};
    s->pid[i] = spawn(exe, n == 1 ? one : clu);
  }
  char first[64];
  snprintf(first, sizeof first, "nats://127.0.0.1:%d", port[0]);
  if (!ready(first)) {
    fprintf(stderr, "bench: nats-server (%d node%s) did not start\n", n, n > 1 ? "s" : "");
    bns_stop(s);
    return -1;
  }
  return 0;
}

void bns_stop(bns_set *s) {
  for (int i = 0; i < 3; i++) {
    if (s->pid[i] > 0) {
      kill(s->pid[i], SIGKILL);
      waitpid(s->pid[i], NULL, 0);
      s->pid[i] = 0;
    }
    if (s->dir[i][0]) {
      char cmd[256];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir[i]);
      if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", s->dir[i]);
      s->dir[i][0] = 0;
    }
  }
}
