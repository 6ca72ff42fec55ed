/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd over TLS with client certificates, against a real etcd that the
 * test starts with a throwaway CA it makes itself (openssl): mutual TLS
 * works end to end; a missing or untrusted client certificate, or a server
 * we do not trust, is LMQ_EAUTH at once, not LMQ_EUNAVAIL after the whole
 * timeout (the server's TLS alert used to be taken for a network fault).
 */
#define _GNU_SOURCE
#include "etcd_harness.h"
#include "util.h"
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static etcd_harness eh;
static char *dir, pki[512];

static void sh(const char *fmt, const char *arg) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, fmt, arg, arg, arg, arg, arg, arg, arg, arg);
  char full[4200];
  snprintf(full, sizeof full, "(%s) >/dev/null 2>&1", cmd);
  cr_assert_eq(system(full), 0, "failed: %s", cmd);
}

/* CA, server certificate for 127.0.0.1, a client certificate without a
 * CommonName (etcd's JSON gateway refuses client certificates that have
 * one), and a second CA with its own client certificate. */
static void make_pki(const char *d) {
  sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt "
     "-days 2 -subj /O=lmq-test-ca", d);
  sh("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key "
     "-out rogue.crt -days 2 -subj /O=lmq-rogue-ca", d);
  sh("cd %s && printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext && "
     "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr "
     "-subj /O=lmq-test-server && openssl x509 -req -in srv.csr -CA ca.crt "
     "-CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile srv.ext", d);
  sh("cd %s && printf 'extendedKeyUsage=clientAuth\\n' > cli.ext && "
     "openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr "
     "-subj /O=lmq-test-client && openssl x509 -req -in cli.csr -CA ca.crt "
     "-CAkey ca.key -CAcreateserial -out cli.crt -days 2 -extfile cli.ext", d);
  sh("cd %s && openssl req -newkey rsa:2048 -nodes -keyout bad.key -out bad.csr "
     "-subj /O=lmq-rogue-client && openssl x509 -req -in bad.csr -CA rogue.crt "
     "-CAkey rogue.key -CAcreateserial -out bad.crt -days 2 -extfile cli.ext", d);
}

static void setup(void) {
  dir = tmpdir_new();
  snprintf(pki, sizeof pki, "%s/pki", dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", pki);
  cr_assert_eq(system(cmd), 0);
  make_pki(pki);
  char cert[600], key[600], ca[600];
  snprintf(cert, sizeof cert, "%s/srv.crt", pki);
  snprintf(key, sizeof key, "%s/srv.key", pki);
  snprintf(ca, sizeof ca, "%s/ca.crt", pki);
  cr_assert_eq(eh_start_tls(&eh, NULL, cert, key, ca), 0, "cannot start etcd: %s",
               eh.err);
}
static void teardown(void) {
  eh_destroy(&eh);
  tmpdir_rm(dir);
}
TestSuite(etcd_tls, .init = setup, .fini = teardown, .timeout = 120);

/* Open an env in a fresh subdirectory with the given URI options. */
static int open_with(lmq_env **env, const char *opts, uint64_t *took_ms) {
  static int n;
  char uri[2048], d[600];
  snprintf(uri, sizeof uri, "etcds://127.0.0.1:%d/tls?timeout_ms=5000&%s", eh.port,
           opts);
  snprintf(d, sizeof d, "%s/env%d", dir, n++);
  lmq_env_options o = LMQ_ENV_OPTIONS_INIT;
  o.meta_uri = uri;
  uint64_t t0 = now_ms();
  int rc = lmq_env_open(env, d, &o);
  *took_ms = now_ms() - t0;
  return rc;
}

static void opts(char *buf, size_t len, const char *ca, const char *cert) {
  if (cert)
    snprintf(buf, len, "cacert=%s/%s.crt&cert=%s/%s.crt&key=%s/%s.key", pki, ca, pki,
             cert, pki, cert);
  else
    snprintf(buf, len, "cacert=%s/%s.crt", pki, ca);
}

Test(etcd_tls, mutual_tls_works_end_to_end) {
  char o[2048];
  opts(o, sizeof o, "ca", "cli");
  lmq_env *env;
  uint64_t ms;
  cr_assert_eq(open_with(&env, o, &ms), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_channel_create(env, "c"), 0, "%s", lmq_errmsg());
  cr_assert_eq(lmq_group_create(env, "c", "g", LMQ_START_EARLIEST), 0, "%s",
               lmq_errmsg());
  put_str(env, "c", "x");
  lmq_msgs *m;
  cr_assert_eq(lmq_consume(&m, env, "c", "g", 10, 0), 1);
  lmq_msgs_free(m);
  cr_assert_eq(lmq_group_commit(env, "c", "g"), 0, "%s", lmq_errmsg());
  lmq_env_close(env);
}

Test(etcd_tls, no_client_certificate_is_eauth_at_once) {
  char o[2048];
  opts(o, sizeof o, "ca", NULL);
  lmq_env *env = NULL;
  uint64_t ms;
  int rc = open_with(&env, o, &ms);
  cr_assert_eq(rc, LMQ_EAUTH, "got %d after %llu ms: %s", rc, (unsigned long long)ms,
               lmq_errmsg());
  cr_assert_lt(ms, 2000, "took %llu ms (timeout 5000)", (unsigned long long)ms);
  cr_assert_not_null(strstr(lmq_errmsg(), "cert="), "%s", lmq_errmsg());
}

Test(etcd_tls, client_certificate_from_an_untrusted_ca_is_eauth_at_once) {
  char o[2048];
  opts(o, sizeof o, "ca", "bad");
  lmq_env *env = NULL;
  uint64_t ms;
  int rc = open_with(&env, o, &ms);
  cr_assert_eq(rc, LMQ_EAUTH, "got %d after %llu ms: %s", rc, (unsigned long long)ms,
               lmq_errmsg());
  cr_assert_lt(ms, 2000, "took %llu ms (timeout 5000)", (unsigned long long)ms);
}

Test(etcd_tls, a_server_we_do_not_trust_is_eauth_at_once) {
  char o[2048];
  opts(o, sizeof o, "rogue", "cli");
  lmq_env *env = NULL;
  uint64_t ms;
  int rc = open_with(&env, o, &ms);
  cr_assert_eq(rc, LMQ_EAUTH, "got %d after %llu ms: %s", rc, (unsigned long long)ms,
               lmq_errmsg());
  cr_assert_lt(ms, 2000, "took %llu ms (timeout 5000)", (unsigned long long)ms);
}
