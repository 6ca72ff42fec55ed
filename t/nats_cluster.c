/* nats_cluster.c - see nats_cluster.h. */
#include "nats_cluster.h"
#include "nats_harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <nats/nats.h>
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

static void spawn(nc_cluster *c, int i) {
  nc_node *n = &c->node[i];
  char exe[4096], port[16], cl[64];
  cr_assert(nh_find_server(exe, sizeof exe),
            "nats-server not found on PATH, in /usr/sbin or /sbin: the NATS "
            "cluster tests need it");
  snprintf(port, sizeof port, "%d", n->port);
  snprintf(cl, sizeof cl, "nats://127.0.0.1:%d", n->cport);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
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
    execl(exe, exe, "-js", "-a", "127.0.0.1", "-p", port, "--server_name", n->name,
          "--cluster_name", c->name, "--cluster", cl, "--routes", c->routes, "-sd",
          n->dir, (char *)NULL);
    _exit(127);
  }
  n->pid = pid;
  for (int k = 0; k < 1000; k++) { /* 10 s */
    int st;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      n->pid = 0;
      cr_assert_fail("nats-server %s exited at start (port %d)", n->name, n->port);
    }
    if (nh_accepts(n->port))
      return;
    nap(10);
  }
  cr_assert_fail("nats-server %s did not listen on 127.0.0.1:%d", n->name, n->port);
}

/* 1 once JetStream answers an account request through node i. */
static int js_ready(nc_node *n, int wait_ms) {
  natsOptions *o = NULL;
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  int ok = 0;
  if (natsOptions_Create(&o) != NATS_OK)
    return 0;
  natsOptions_SetURL(o, n->url);
  natsOptions_SetTimeout(o, 1000);
  natsOptions_SetAllowReconnect(o, false);
  long long end = now_ms() + wait_ms;
  if (natsConnection_Connect(&nc, o) == NATS_OK) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 1000;
    if (natsConnection_JetStream(&js, nc, &jo) == NATS_OK) {
      while (!ok && now_ms() < end) {
        jsAccountInfo *ai = NULL;
        ok = js_GetAccountInfo(&ai, js, NULL, NULL) == NATS_OK;
        jsAccountInfo_Destroy(ai);
        if (!ok)
          nap(100);
      }
    }
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(o);
  return ok;
}

void nc_start(nc_cluster *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "lmqt%d", (int)getpid());
  size_t u = 0, r = 0;
  for (int i = 0; i < NC_NODES; i++) {
    nc_node *n = &c->node[i];
    char tmpl[] = "/tmp/lmq-natsc-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl), "mkdtemp: %s", strerror(errno));
    n->dir = strdup(tmpl);
    snprintf(n->name, sizeof n->name, "n%d", i);
    n->port = nh_free_port();
    do
      n->cport = nh_free_port();
    while (n->cport == n->port);
    cr_assert(n->port > 0 && n->cport > 0, "no free loopback port");
    snprintf(n->url, sizeof n->url, "nats://127.0.0.1:%d", n->port);
    u += (size_t)snprintf(c->urls + u, sizeof c->urls - u, "%s%s", i ? "," : "", n->url);
    r += (size_t)snprintf(c->routes + r, sizeof c->routes - r, "%snats://127.0.0.1:%d",
                          i ? "," : "", n->cport);
  }
  for (int i = 0; i < NC_NODES; i++)
    spawn(c, i);
  cr_assert(js_ready(&c->node[0], 15000), "the JetStream cluster did not form in 15 s");
}

void nc_kill(nc_cluster *c, int i) {
  nc_node *n = &c->node[i];
  if (n->pid > 0) {
    kill(n->pid, SIGCONT);
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
  }
  n->pid = 0;
}

void nc_restart(nc_cluster *c, int i) {
  cr_assert_eq(c->node[i].pid, 0, "nc_restart: node %d still runs", i);
  spawn(c, i);
}

void nc_pause(nc_cluster *c, int i) {
  if (c->node[i].pid > 0)
    kill(c->node[i].pid, SIGSTOP);
}

void nc_resume(nc_cluster *c, int i) {
  if (c->node[i].pid > 0)
    kill(c->node[i].pid, SIGCONT);
}

void nc_stop(nc_cluster *c) {
  for (int i = 0; i < NC_NODES; i++) {
    nc_kill(c, i);
    if (c->node[i].dir) {
      char cmd[4200];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->node[i].dir);
      if (system(cmd) != 0)
        fprintf(stderr, "nats cluster: could not remove %s\n", c->node[i].dir);
      free(c->node[i].dir);
      c->node[i].dir = NULL;
    }
  }
}

int nc_index(const nc_cluster *c, const char *name) {
  for (int i = 0; i < NC_NODES; i++)
    if (name && !strcmp(c->node[i].name, name))
      return i;
  return -1;
}

/* A short-lived JetStream context on node i (500 ms timeouts, no
 * reconnect): 0 when usable, 1 when the node does not answer, -1 when the
 * options cannot even be made. node_close() in every case but -1. */
typedef struct node_conn {
  natsOptions *o;
  natsConnection *nc;
  jsCtx *js;
} node_conn;

static int node_open(node_conn *k, nc_cluster *c, int i) {
  k->o = NULL;
  k->nc = NULL;
  k->js = NULL;
  if (natsOptions_Create(&k->o) != NATS_OK)
    return -1;
  natsOptions_SetURL(k->o, c->node[i].url);
  natsOptions_SetTimeout(k->o, 500);
  natsOptions_SetAllowReconnect(k->o, false);
  if (natsConnection_Connect(&k->nc, k->o) != NATS_OK)
    return 1;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 500;
  return natsConnection_JetStream(&k->js, k->nc, &jo) == NATS_OK ? 0 : 1;
}

static void node_close(node_conn *k) {
  jsCtx_Destroy(k->js);
  natsConnection_Destroy(k->nc);
  natsOptions_Destroy(k->o);
}

/* The leader's name of a stream (durable NULL) or consumer, asked through
 * the first running node that answers; malloc'ed, or NULL. */
static char *leader_of(nc_cluster *c, const char *stream, const char *durable) {
  for (int i = 0; i < NC_NODES; i++) {
    if (!c->node[i].pid)
      continue;
    node_conn k;
    int r = node_open(&k, c, i);
    if (r < 0)
      return NULL;
    char *name = NULL;
    if (r == 0 && durable) {
      jsConsumerInfo *ci = NULL;
      if (js_GetConsumerInfo(&ci, k.js, stream, durable, NULL, NULL) == NATS_OK &&
          ci->Cluster && ci->Cluster->Leader)
        name = strdup(ci->Cluster->Leader);
      jsConsumerInfo_Destroy(ci);
    } else if (r == 0) {
      jsStreamInfo *si = NULL;
      if (js_GetStreamInfo(&si, k.js, stream, NULL, NULL) == NATS_OK && si->Cluster &&
          si->Cluster->Leader)
        name = strdup(si->Cluster->Leader);
      jsStreamInfo_Destroy(si);
    }
    node_close(&k);
    if (name)
      return name;
  }
  return NULL;
}

static int leader_wait(nc_cluster *c, const char *stream, const char *durable,
                       int wait_ms) {
  long long end = now_ms() + wait_ms;
  do {
    char *name = leader_of(c, stream, durable);
    int at = nc_index(c, name);
    free(name);
    if (at >= 0 && c->node[at].pid)
      return at;
    nap(100);
  } while (now_ms() < end);
  return -1;
}

int nc_consumer_leader(nc_cluster *c, const char *stream, const char *durable,
                       int wait_ms) {
  return leader_wait(c, stream, durable, wait_ms);
}

/* Stream info through any running node; NULL if none answers. */
static jsStreamInfo *info(nc_cluster *c, const char *stream) {
  for (int i = 0; i < NC_NODES; i++) {
    if (!c->node[i].pid)
      continue;
    node_conn k;
    int r = node_open(&k, c, i);
    if (r < 0)
      return NULL;
    jsStreamInfo *si = NULL;
    if (r == 0 && js_GetStreamInfo(&si, k.js, stream, NULL, NULL) != NATS_OK)
      si = NULL;
    node_close(&k);
    if (si)
      return si;
  }
  return NULL;
}

int nc_stream_leader(nc_cluster *c, const char *stream, int wait_ms) {
  return leader_wait(c, stream, NULL, wait_ms);
}

/* A leader, and every other node a replica that is current, online and
 * not lagging. */
static int all_current(const jsClusterInfo *cl) {
  int ok = cl && cl->Leader && cl->ReplicasLen == NC_NODES - 1;
  for (int i = 0; ok && i < cl->ReplicasLen; i++)
    ok = cl->Replicas[i]->Current && !cl->Replicas[i]->Offline && cl->Replicas[i]->Lag == 0;
  return ok;
}

int nc_stream_caught_up(nc_cluster *c, const char *stream, int wait_ms) {
  long long end = now_ms() + wait_ms;
  do {
    jsStreamInfo *si = info(c, stream);
    int ok = si && all_current(si->Cluster);
    jsStreamInfo_Destroy(si);
    if (ok)
      return 1;
    nap(100);
  } while (now_ms() < end);
  return 0;
}

int nc_consumer_caught_up(nc_cluster *c, const char *stream, const char *durable,
                          int wait_ms) {
  long long end = now_ms() + wait_ms;
  do {
    jsConsumerInfo *ci = NULL;
    for (int i = 0; !ci && i < NC_NODES; i++) {
      node_conn k;
      if (!c->node[i].pid || node_open(&k, c, i) < 0)
        continue;
      if (js_GetConsumerInfo(&ci, k.js, stream, durable, NULL, NULL) != NATS_OK)
        ci = NULL;
      node_close(&k);
    }
    int ok = ci && all_current(ci->Cluster);
    if (!ok && getenv("LMQ_TEST_VERBOSE") && ci && ci->Cluster) {
      fprintf(stderr, "consumer %s leader %s:", durable, ci->Cluster->Leader);
      for (int i = 0; i < ci->Cluster->ReplicasLen; i++)
        fprintf(stderr, " %s current %d offline %d lag %llu active %lld",
                ci->Cluster->Replicas[i]->Name, ci->Cluster->Replicas[i]->Current,
                ci->Cluster->Replicas[i]->Offline,
                (unsigned long long)ci->Cluster->Replicas[i]->Lag,
                (long long)ci->Cluster->Replicas[i]->Active);
      fprintf(stderr, "\n");
    }
    jsConsumerInfo_Destroy(ci);
    if (ok)
      return 1;
    nap(100);
  } while (now_ms() < end);
  return 0;
}

static nc_cluster shared;

static void shared_stop(void) { nc_stop(&shared); }

const char *nc_shared_urls(void) {
  if (!shared.node[0].pid) {
    nc_start(&shared);
    atexit(shared_stop);
  }
  return shared.urls;
}
