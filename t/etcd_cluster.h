/* etcd_cluster.h - a private 3-member etcd cluster for one test: three etcd
 * processes on free loopback ports with their own data directories and fast
 * elections (10 ms heartbeats, 100 ms election timeout). */
#ifndef LMQ_T_ETCD_CLUSTER_H
#define LMQ_T_ETCD_CLUSTER_H
#include <sys/types.h>

#define EC_MEMBERS 3

typedef struct ec_member {
  pid_t pid;     /* 0 when not running */
  int port;      /* client port */
  int peer_port;
} ec_member;

typedef struct ec_cluster {
  ec_member m[EC_MEMBERS];
  char dir[256];     /* m<i>/ data directories and m<i>.log */
  char bin[512];
  char initial[512]; /* --initial-cluster */
  char endpoints[256]; /* "127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2" for etcd:// */
} ec_cluster;

/* Start the three members and wait (up to 20 s) until each is healthy. A
 * missing etcd or a cluster that does not form fails the calling test. The
 * members die with the test process. */
void ec_start(ec_cluster *c);
/* The index of the current leader (asked of the running members, waiting up
 * to wait_ms for one), or -1. */
int ec_leader(ec_cluster *c, int wait_ms);
/* SIGKILL member i and reap it; SIGSTOP / SIGCONT it; start it again on its
 * ports and data (it rejoins as a member of the existing cluster). */
void ec_kill(ec_cluster *c, int i);
void ec_pause(ec_cluster *c, int i);
void ec_resume(ec_cluster *c, int i);
void ec_restart(ec_cluster *c, int i);
/* Kill every member and remove the directory. Safe to call twice. */
void ec_stop(ec_cluster *c);
#endif
