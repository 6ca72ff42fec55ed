/* nats_cluster.h - a private 3-node JetStream cluster for one test: three
 * nats-server processes on loopback ports, routed to each other, each with
 * its own store directory. */
#ifndef LMQ_T_NATS_CLUSTER_H
#define LMQ_T_NATS_CLUSTER_H
#include <sys/types.h>

#define NC_NODES 3

typedef struct nc_node {
  pid_t pid;      /* 0 when not running */
  int port;       /* client port */
  int cport;      /* cluster (route) port */
  char name[16];  /* server_name: "n0".."n2" */
  char url[64];   /* "nats://127.0.0.1:PORT" */
  char *dir;      /* its store */
} nc_node;

typedef struct nc_cluster {
  nc_node node[NC_NODES];
  char urls[256];   /* the three client URLs, comma-separated */
  char routes[256]; /* the three route URLs, comma-separated */
  char name[32];    /* cluster_name */
} nc_cluster;

/* Start the three servers and wait (bounded) until JetStream answers
 * through the cluster (a meta leader is elected). A missing nats-server or
 * a cluster that does not form fails the calling test. The servers die with
 * the test process, even by a crash. */
void nc_start(nc_cluster *c);
/* SIGKILL node i and reap it (its store stays). */
void nc_kill(nc_cluster *c, int i);
/* Start node i again on its ports and store. */
void nc_restart(nc_cluster *c, int i);
/* SIGSTOP / SIGCONT node i: a hung server, not a refused connection. */
void nc_pause(nc_cluster *c, int i);
void nc_resume(nc_cluster *c, int i);
/* Kill every node and remove the stores. Safe to call twice. */
void nc_stop(nc_cluster *c);
/* The index of the node named name ("n1"), or -1. */
int nc_index(const nc_cluster *c, const char *name);
/* The index of the node leading stream `stream` (asked through a running
 * node, waiting up to wait_ms for a leader), or -1. */
int nc_stream_leader(nc_cluster *c, const char *stream, int wait_ms);
/* The same for consumer `durable` of the stream. */
int nc_consumer_leader(nc_cluster *c, const char *stream, const char *durable,
                       int wait_ms);
/* Wait up to wait_ms until every replica of stream reports itself current
 * with no lag; 1 if so. */
int nc_stream_caught_up(nc_cluster *c, const char *stream, int wait_ms);
/* The same for consumer `durable` of the stream. */
int nc_consumer_caught_up(nc_cluster *c, const char *stream, const char *durable,
                          int wait_ms);

/* One cluster for the whole test process, stopped at exit: for the stream
 * tests built with LMQ_TEST_NATS_CLUSTER. Returns its client URLs. */
const char *nc_shared_urls(void);
#endif
