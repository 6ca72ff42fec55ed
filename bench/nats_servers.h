/* nats_servers.h - nats-server processes for the benchmarks: one node, or a
 * 3-node JetStream cluster, on free loopback ports with fresh store
 * directories (the tests have their own harness, t/nats_cluster.c). */
#ifndef LMQ_BENCH_NATS_SERVERS_H
#define LMQ_BENCH_NATS_SERVERS_H
#include <sys/types.h>

typedef struct bns_set {
  int n;             /* 1 or 3 */
  pid_t pid[3];
  char dir[3][64];
  char urls[256];    /* client URLs, comma-separated */
} bns_set;

/* Start n (1 or 3) servers and wait until JetStream answers; 0 on success,
 * -1 with a message on stderr (no nats-server, did not start). */
int bns_start(bns_set *s, int n);
/* Kill them and remove their stores. */
void bns_stop(bns_set *s);
#endif
