/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * free_port.h - a free loopback TCP port for a test server (etcd, NATS),
 * outside the kernel's ephemeral range.
 *
 * Binding port 0 hands out a port from the ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 here), the range
 * every outgoing connection takes its source port from. A test that stops
 * a server and starts it again on the same port (etcd away and back, a
 * NATS node killed and restarted) then races every connection opened
 * meanwhile by any process: once, etcd's restart in
 * t/test_engine_etcd found its port taken and exited during start-up
 * (CI, make distcheck). Ports below that range are taken only by servers
 * that ask for them, so a port chosen there at random and found free
 * stays free while its server is down. Falls back to port 0's when the
 * range leaves no room below it.
 */
#ifndef LMQ_T_FREE_PORT_H
#define LMQ_T_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline int free_port_try(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  socklen_t len = sizeof a;
  int got = -1;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    got = ntohs(a.sin_port);
  close(fd);
  return got;
}

static inline int free_port(void) {
  static unsigned seed;
  if (!seed)
    seed = (unsigned)getpid() ^ (unsigned)time(NULL) * 2654435761u;
  int lo = 32768;
  FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
  if (f) {
    if (fscanf(f, "%d", &lo) != 1)
      lo = 32768;
    fclose(f);
  }
  const int base = 10000;
  for (int i = 0; lo - base >= 1000 && i < 200; i++) {
    int p = free_port_try(base + (int)(rand_r(&seed) % (unsigned)(lo - base)));
    if (p > 0)
      return p;
  }
  return free_port_try(0);
}

#endif
