/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd.c - the etcd v3 metadata driver: lmq_meta_ops over etcd's JSON
 * gateway with libcurl. The pure parts (URI, base64, JSON bodies and
 * decoders) live in etcd_codec.c; this file does the I/O.
 *
 * Transport. Requests are POSTs of small JSON bodies. CURL easy handles are
 * not thread-safe, so the driver keeps a small pool guarded by a mutex: a
 * call takes a handle (or makes one), uses it alone, and gives it back, so
 * connections are reused across calls and threads without sharing a handle.
 *
 * Time budget and retries. Every call has a deadline of timeout_ms from its
 * start. Within it, transient failures (connection refused or reset,
 * timeouts, HTTP 5xx, "no leader"/"leader changed") move to the next
 * endpoint; after every endpoint has failed once the call sleeps with
 * exponential backoff (20 ms doubling to 1 s, jittered) and tries again. A
 * failure that may have been applied (the request was sent but no answer came
 * back) is retried only for idempotent requests: reads, lease calls, blind
 * puts and deletes; a txn with compares then returns LMQ_EUNKNOWN (the outcome
 * is unknown). Definite answers (conflict, auth, size) never retry. When the
 * deadline passes the call returns LMQ_EUNAVAIL -- or, for a write of which
 * an earlier attempt may have arrived, LMQ_EUNKNOWN.
 *
 * Auth. With user/password the driver authenticates at open and sends the
 * token in the Authorization header; when etcd says the token is invalid
 * (expired, or etcd restarted) it authenticates again once and retries.
 *
 * Watches. Each watch owns a thread, a CURL multi handle and an easy handle
 * doing the streaming POST /v3/watch. It starts at the revision after the
 * one current when lmq_meta_watch() was called, remembers the last revision
 * delivered and, when the stream breaks (etcd restarted, endpoint down),
 * reconnects with backoff from the next revision, so no event is lost or
 * repeated unless etcd compacted the history in between (then delivery
 * resumes at the compaction revision). Unwatch wakes the thread through
 * curl_multi_wakeup() and joins it.
 */
#include "common/error.h"
#include "common/os.h"
#include "config.h"
#include "meta/etcd_codec.h"
#include "meta/meta.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 8                       /* idle easy handles kept */
#define RESPONSE_MAX ((size_t)256 << 20) /* refuse answers larger than this */
#define WATCH_LINE_MAX ((size_t)64 << 20)
#define BACKOFF_FIRST_MS 20
#define ATTEMPT_MIN_MS 250
#define BACKOFF_MAX_MS 1000

enum { CALL_IDEM = 1, CALL_NOAUTH = 2 };

typedef struct etcd_watch etcd_watch;

typedef struct etcd {
  lmq_meta base;
  etcd_uri u;
  pthread_mutex_t lock; /* guards everything below */
  CURL *pool[POOL_MAX];
  size_t npool;
  char *token;        /* NULL without auth */
  uint64_t token_gen; /* bumped on every new token */
  size_t cur;         /* the endpoint that answered last */
  etcd_watch *watches;
} etcd;

struct etcd_watch {
  etcd_watch *next;
  etcd *e;
  pthread_t thr;
  CURLM *multi;
  CURL *h;
  atomic_int stop;
  unsigned char *key, *end; /* full etcd keys (namespace included) */
  size_t klen, elen;
  int64_t next_rev; /* first revision not yet delivered */
  lmq_meta_watch_fn fn;
  void *arg;
  /* Stream state, used by the watch thread only. */
  char *line;
  size_t nline, capline;
  int restart, reauth, created;
};

/* ------------------------------------------------------------------ helpers */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_ALL); }

static uint64_t now_ms(void) { return lmq__mono_ns() / 1000000u; }

static void sleep_ms(long ms) {
  if (ms <= 0)
    return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* Half to full of ms, so that clients started together spread out. */
static long jitter(long ms) {
  static _Thread_local uint64_t s;
  if (!s)
    s = lmq__mono_ns() ^ (uint64_t)(uintptr_t)&s;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return ms / 2 + (long)(s % (uint64_t)(ms / 2 + 1));
}

typedef struct buf {
  char *p;
  size_t n, cap;
  int overflow;
} buf;

static void buf_free(buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

static size_t buf_write(char *ptr, size_t sz, size_t nm, void *ud) {
  buf *b = ud;
  size_t n = sz * nm;
  if (b->n + n + 1 > b->cap) {
    if (b->n + n + 1 > RESPONSE_MAX) {
      b->overflow = 1;
      return 0;
    }
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
      return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, ptr, n);
  b->n += n;
  b->p[b->n] = '\0';
  return n;
}

static CURL *pool_get(etcd *e) {
  CURL *h = NULL;
  pthread_mutex_lock(&e->lock);
  if (e->npool)
    h = e->pool[--e->npool];
  pthread_mutex_unlock(&e->lock);
  if (h)
    curl_easy_reset(h); /* keeps its live connection */
  else
    h = curl_easy_init();
  return h;
}

static void pool_put(etcd *e, CURL *h) {
  pthread_mutex_lock(&e->lock);
  if (e->npool < POOL_MAX) {
    e->pool[e->npool++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&e->lock);
  if (h)
    curl_easy_cleanup(h);
}

/* Options shared by unary calls and watches. */
static void set_common(etcd *e, CURL *h, const char *url, struct curl_slist *hdrs,
                       long connect_ms) {
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms > 0 ? connect_ms : 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never send etcd traffic via a proxy */
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  if (e->u.tls) {
    if (e->u.cacert)
      curl_easy_setopt(h, CURLOPT_CAINFO, e->u.cacert);
    if (e->u.cert) {
      curl_easy_setopt(h, CURLOPT_SSLCERT, e->u.cert);
      curl_easy_setopt(h, CURLOPT_SSLKEY, e->u.key);
    }
  }
}

/* Request headers, with the current token when auth is on. *gen receives the
 * token's generation. NULL when out of memory. */
static struct curl_slist *make_headers(etcd *e, int with_token, uint64_t *gen) {
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  struct curl_slist *t = h ? curl_slist_append(h, "Expect:") : NULL;
  if (!t) {
    curl_slist_free_all(h);
    return NULL;
  }
  h = t;
  pthread_mutex_lock(&e->lock);
  *gen = e->token_gen;
  if (with_token && e->token) {
    size_t n = strlen(e->token) + 20;
    char *line = malloc(n);
    if (line) {
      snprintf(line, n, "Authorization: %s", e->token);
      t = curl_slist_append(h, line);
      free(line);
    }
    if (!line || !t) {
      pthread_mutex_unlock(&e->lock);
      curl_slist_free_all(h);
      return NULL;
    }
    h = t;
  }
  pthread_mutex_unlock(&e->lock);
  return h;
}

static size_t endpoint(etcd *e) {
  pthread_mutex_lock(&e->lock);
  size_t i = e->cur;
  pthread_mutex_unlock(&e->lock);
  return i;
}

/* Move off endpoint i unless another thread already did. */
static void fail_over(etcd *e, size_t i) {
  pthread_mutex_lock(&e->lock);
  if (e->cur == i)
    e->cur = (i + 1) % e->u.nep;
  pthread_mutex_unlock(&e->lock);
}

static void make_url(char *url, size_t cap, etcd *e, size_t ep, const char *path) {
  snprintf(url, cap, "%s://%s%s", e->u.tls ? "https" : "http", e->u.eps[ep], path);
}

/* A curl failure that leaves the cluster state unchanged or unknown: 1 if
 * worth another try, with *ambiguous set when the request may have arrived. */
static int curl_transient(CURLcode cc, int sent, int *ambiguous) {
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_SSL_CONNECT_ERROR:
    *ambiguous = 0;
    return 1;
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    *ambiguous = sent;
    return 1;
  default:
    return 0;
  }
}

/*
 * A TLS alert from the server about our certificate: with OpenSSL curl
 * reports it as a receive or connect error ("... alert certificate
 * required", "... alert bad certificate", "... alert unknown ca"), which
 * is otherwise transient. It will not get better by retrying: the caller
 * gets LMQ_EAUTH at once instead of LMQ_EUNAVAIL after the whole timeout.
 */
static int tls_refused(const char *err) {
  static const char *const alerts[] = {
      "alert certificate required", "alert bad certificate", "alert unknown ca",
      "alert certificate unknown", "alert access denied",
      "alert unsupported certificate", "alert certificate revoked",
      "alert certificate expired"};
  if (!strstr(err, "alert"))
    return 0;
  for (size_t i = 0; i < sizeof alerts / sizeof *alerts; i++)
    if (strstr(err, alerts[i]))
      return 1;
  return 0;
}

static int curl_definite(CURLcode cc, const char *what, const char *detail) {
  int code;
  switch (cc) {
  case CURLE_PEER_FAILED_VERIFICATION:
    code = LMQ_EAUTH;
    break;
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
    code = LMQ_EINVAL;
    break;
  case CURLE_OUT_OF_MEMORY:
    code = LMQ_ENOMEM;
    break;
  default:
    code = LMQ_EUNAVAIL;
    break;
  }
  return lmq__error(code, "etcd %s: %s", what, detail);
}

static int authenticate(etcd *e, uint64_t seen_gen, uint64_t deadline);

/*
 * Send one request, retrying as described at the top of the file until
 * deadline (monotonic ms). On 0, *out holds the 200 answer's body (free with
 * buf_free). *ambiguous (may be NULL) is set when some attempt may have been
 * applied before a later one answered.
 */
static int call(etcd *e, const char *what, const char *path, const char *body,
                int flags, uint64_t deadline, buf *out, int *ambiguous) {
  memset(out, 0, sizeof *out);
  if (ambiguous)
    *ambiguous = 0;
  CURL *h = pool_get(e);
  if (!h)
    return lmq__error(LMQ_ENOMEM, "out of memory (curl handle)");
  long backoff = BACKOFF_FIRST_MS;
  size_t failed_since_sleep = 0;
  int attempts = 0, reauthed = 0;
  char last[256] = "no attempt made";
  char errbuf[CURL_ERROR_SIZE];
  char url[512];
  int rc;
  for (;;) {
    uint64_t now = now_ms();
    if (now >= deadline)
      break;
    long remain = (long)(deadline - now);
    size_t ep = endpoint(e);
    uint64_t gen;
    struct curl_slist *hdrs = make_headers(e, !(flags & CALL_NOAUTH), &gen);
    if (!hdrs) {
      rc = lmq__error(LMQ_ENOMEM, "out of memory");
      goto done;
    }
    make_url(url, sizeof url, e, ep, path);
    buf_free(out);
    errbuf[0] = '\0';
    curl_easy_reset(h);
    set_common(e, h, url, hdrs,
               e->u.connect_timeout_ms < remain ? e->u.connect_timeout_ms : remain);
    /* One attempt gets a quarter of the budget (at least ATTEMPT_MIN_MS): a
     * member that hangs, or holds a request for a leader that died, must not
     * use up the whole call before the others are tried. */
    long attempt = e->u.timeout_ms / 4 > ATTEMPT_MIN_MS ? e->u.timeout_ms / 4
                                                         : ATTEMPT_MIN_MS;
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, attempt < remain ? attempt : remain);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    attempts++;
    int amb = 0;
    if (cc == CURLE_OK) {
      long status = 0;
      int code;
      char msg[200];
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      int v = etcd_classify(&code, msg, sizeof msg, status, out->p, out->n);
      if (v == ETCD_DONE) { /* a non-empty body, NUL-terminated by buf_write */
        rc = 0;
        goto done;
      }
      if (v == ETCD_FAIL) {
        rc = lmq__error(code, "etcd %s: %s", what, msg);
        goto done;
      }
      if (v == ETCD_REAUTH) {
        if (reauthed || !e->u.user || (flags & CALL_NOAUTH)) {
          rc = lmq__error(LMQ_EAUTH, "etcd %s: %s%s", what, msg,
                          e->u.user ? "" : " (the URI has no user/password)");
          goto done;
        }
        reauthed = 1;
        if ((rc = authenticate(e, gen, deadline)))
          goto done;
        continue;
      }
      amb = v == ETCD_RETRY_IDEM;
      snprintf(last, sizeof last, "%s: %.200s", e->u.eps[ep], msg);
    } else {
      if (cc == CURLE_WRITE_ERROR) {
        rc = out->overflow ? lmq__error(LMQ_ETOOBIG,
                                        "etcd %s: answer larger than "
                                        "%zu bytes (use a limit)",
                                        what, RESPONSE_MAX)
                           : lmq__error(LMQ_ENOMEM, "out of memory reading etcd");
        goto done;
      }
      long sent = 0;
      curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
      snprintf(last, sizeof last, "%s: %.200s", e->u.eps[ep],
               errbuf[0] ? errbuf : curl_easy_strerror(cc));
      if (e->u.tls && tls_refused(errbuf)) {
        rc = lmq__error(LMQ_EAUTH,
                        "etcd %s: the server refused the TLS handshake over "
                        "our client certificate (%s)%s",
                        what, last,
                        e->u.cert ? ""
                                  : "; the URI has no cert=/key= and the "
                                    "server requires one");
        goto done;
      }
      if (!curl_transient(cc, sent > 0, &amb)) {
        rc = curl_definite(cc, what, last);
        goto done;
      }
    }
    if (amb) {
      if (!(flags & CALL_IDEM)) {
        rc = lmq__error(LMQ_EUNKNOWN,
                        "etcd %s: outcome unknown (%s); not retried "
                        "because the request is not idempotent",
                        what, last);
        goto done;
      }
      if (ambiguous)
        *ambiguous = 1;
    }
    fail_over(e, ep);
    if (++failed_since_sleep >= e->u.nep) {
      failed_since_sleep = 0;
      now = now_ms();
      if (now >= deadline)
        break;
      long nap = jitter(backoff);
      if (nap > (long)(deadline - now))
        nap = (long)(deadline - now);
      sleep_ms(nap);
      backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
  }
  rc = lmq__error(LMQ_EUNAVAIL,
                  "etcd %s: no answer within %ld ms (%d attempts; "
                  "last: %s)",
                  what, e->u.timeout_ms, attempts, last);
done:
  if (rc)
    buf_free(out);
  pool_put(e, h);
  return rc;
}

/* Get a new token unless another thread replaced the one of generation
 * seen_gen in the meantime. */
static int authenticate(etcd *e, uint64_t seen_gen, uint64_t deadline) {
  pthread_mutex_lock(&e->lock);
  int fresh = e->token_gen != seen_gen;
  pthread_mutex_unlock(&e->lock);
  if (fresh)
    return 0;
  char *body;
  int rc = etcd_body_auth(&body, e->u.user, e->u.password);
  if (rc)
    return rc;
  buf out;
  rc = call(e, "authenticate", "/v3/auth/authenticate", body, CALL_IDEM | CALL_NOAUTH,
            deadline, &out, NULL);
  /* The body holds the password: wipe it before freeing. */
  memset(body, 0, strlen(body));
  free(body);
  if (rc)
    return rc;
  char *tok;
  rc = etcd_decode_auth(&tok, out.p, out.n);
  buf_free(&out);
  if (rc)
    return rc;
  pthread_mutex_lock(&e->lock);
  free(e->token);
  e->token = tok;
  e->token_gen++;
  pthread_mutex_unlock(&e->lock);
  return 0;
}

static uint64_t deadline_of(etcd *e) { return now_ms() + (uint64_t)e->u.timeout_ms; }

/* ns + key in a new buffer. */
static unsigned char *full_key(etcd *e, const void *key, size_t klen, size_t *n) {
  unsigned char *k = malloc(e->u.nslen + klen + 1);
  if (!k) {
    lmq__error(LMQ_ENOMEM, "out of memory");
    return NULL;
  }
  memcpy(k, e->u.ns, e->u.nslen);
  if (klen)
    memcpy(k + e->u.nslen, key, klen);
  *n = e->u.nslen + klen;
  return k;
}

/* ------------------------------------------------------------------ KV ops */

static int etcd_get(lmq_meta *m, void **val, size_t *vlen, uint64_t *version,
                    const void *key, size_t klen) {
  etcd *e = (etcd *)m;
  *version = 0;
  if (klen == 0)
    return lmq__error(LMQ_EINVAL, "metadata key is empty");
  size_t fl;
  unsigned char *fk = full_key(e, key, klen, &fl);
  if (!fk)
    return LMQ_ENOMEM;
  char *body;
  int rc = etcd_body_range(&body, fk, fl, NULL, 0, 0, 0);
  free(fk);
  if (rc)
    return rc;
  buf out;
  rc = call(e, "get", "/v3/kv/range", body, CALL_IDEM, deadline_of(e), &out, NULL);
  free(body);
  if (rc)
    return rc;
  lmq_meta_kv *kvs;
  size_t n;
  rc = etcd_decode_range(&kvs, &n, NULL, out.p, out.n, e->u.ns, e->u.nslen);
  buf_free(&out);
  if (rc)
    return rc;
  if (n == 0)
    return lmq__error(LMQ_ENOTFOUND, "metadata key not found");
  if (n != 1 || kvs[0].klen != klen || memcmp(kvs[0].key, key, klen)) {
    lmq_meta_kv_free(kvs, n);
    return lmq__error(LMQ_EPROTO, "etcd get answered with another key");
  }
  *val = kvs[0].val;
  *vlen = kvs[0].vlen;
  *version = kvs[0].version;
  kvs[0].val = NULL;
  lmq_meta_kv_free(kvs, n);
  return 0;
}

/* The client-side size check: what etcd will count, roughly (keys and
 * values plus a few bytes of framing each). */
static int size_check(etcd *e, const char *what, size_t bytes) {
  if (bytes > e->u.max_request_bytes)
    return lmq__error(LMQ_ETOOBIG,
                      "etcd %s: %zu bytes exceed the request limit "
                      "of %zu (max_request_bytes)",
                      what, bytes, e->u.max_request_bytes);
  return 0;
}

static int etcd_txn(lmq_meta *m, const lmq_meta_cmp *cmps, size_t ncmp,
                    const lmq_meta_op *ops, size_t nops) {
  etcd *e = (etcd *)m;
  if (nops > e->u.max_txn_ops || ncmp > e->u.max_txn_ops)
    return lmq__error(LMQ_ELIMIT,
                      "etcd txn: %zu ops / %zu compares exceed "
                      "max_txn_ops %zu",
                      nops, ncmp, e->u.max_txn_ops);
  size_t bytes = 0;
  for (size_t i = 0; i < ncmp; i++) {
    if (cmps[i].type != LMQ_META_CMP_VERSION && cmps[i].type != LMQ_META_CMP_VALUE)
      return lmq__error(LMQ_EINVAL, "metadata compare %zu: unknown type %d", i,
                        cmps[i].type);
    if (!cmps[i].key || !cmps[i].klen ||
        (cmps[i].type == LMQ_META_CMP_VALUE && cmps[i].vlen && !cmps[i].val))
      return lmq__error(LMQ_EINVAL, "metadata compare %zu: empty key or NULL value", i);
    bytes += e->u.nslen + cmps[i].klen + 16 +
             (cmps[i].type == LMQ_META_CMP_VALUE ? cmps[i].vlen : 0);
  }
  for (size_t i = 0; i < nops; i++) {
    if (ops[i].type != LMQ_META_PUT && ops[i].type != LMQ_META_DEL)
      return lmq__error(LMQ_EINVAL, "metadata op %zu: unknown type %d", i, ops[i].type);
    if (ops[i].type == LMQ_META_PUT && ops[i].vlen && !ops[i].val)
      return lmq__error(LMQ_EINVAL, "metadata op %zu: NULL value", i);
    bytes +=
        e->u.nslen + ops[i].klen + 16 + (ops[i].type == LMQ_META_PUT ? ops[i].vlen : 0);
  }
  int rc = size_check(e, "txn", bytes);
  if (rc)
    return rc;
  char *body;
  if ((rc = etcd_body_txn(&body, cmps, ncmp, ops, nops, e->u.ns, e->u.nslen)))
    return rc;
  buf out;
  /* Without compares, applying twice equals applying once (versions aside). */
  int amb = 0;
  rc = call(e, "txn", "/v3/kv/txn", body, ncmp ? 0 : CALL_IDEM, deadline_of(e), &out,
            &amb);
  free(body);
  /* A blind write retried until the deadline after an attempt that may
   * have arrived: it may or may not be applied. */
  if (rc == LMQ_EUNAVAIL && amb)
    return lmq__error(LMQ_EUNKNOWN, "%s (outcome unknown: an earlier attempt may have "
                                    "been applied)",
                      lmq_errmsg());
  if (rc)
    return rc;
  int ok;
  rc = etcd_decode_txn(&ok, out.p, out.n);
  buf_free(&out);
  if (rc)
    return rc;
  return ok ? 0 : lmq__error(LMQ_ECONFLICT, "metadata compare failed");
}

static int etcd_range(lmq_meta *m, lmq_meta_kv **outkv, size_t *n, const void *prefix,
                      size_t plen, const void *start_after, size_t salen,
                      size_t limit) {
  etcd *e = (etcd *)m;
  size_t kl, el;
  unsigned char *key = full_key(e, prefix, plen, &kl), *end = NULL;
  if (!key)
    return LMQ_ENOMEM;
  int rc = etcd_prefix_end(&end, &el, key, kl);
  if (rc) {
    free(key);
    return rc;
  }
  if (start_after && salen) {
    /* The first key after start_after is start_after followed by a zero byte. */
    size_t sl = e->u.nslen + salen + 1;
    unsigned char *sk = malloc(sl);
    if (!sk) {
      free(key);
      free(end);
      return lmq__error(LMQ_ENOMEM, "out of memory");
    }
    memcpy(sk, e->u.ns, e->u.nslen);
    memcpy(sk + e->u.nslen, start_after, salen);
    sk[sl - 1] = 0;
    if (etcd_keycmp(sk, sl, key, kl) > 0) {
      free(key);
      key = sk;
      kl = sl;
    } else {
      free(sk);
    }
  }
  int empty = !(el == 1 && end[0] == 0) && etcd_keycmp(key, kl, end, el) >= 0;
  char *body = NULL;
  if (!empty)
    rc = etcd_body_range(&body, key, kl, end, el, limit, 0);
  free(key);
  free(end);
  if (empty || rc)
    return rc;
  buf out;
  rc = call(e, "range", "/v3/kv/range", body, CALL_IDEM, deadline_of(e), &out, NULL);
  free(body);
  if (rc)
    return rc;
  rc = etcd_decode_range(outkv, n, NULL, out.p, out.n, e->u.ns, e->u.nslen);
  buf_free(&out);
  return rc;
}

/* ------------------------------------------------------------------ leases */

static int etcd_lease_grant(lmq_meta *m, int64_t *lease_id, int ttl_s) {
  etcd *e = (etcd *)m;
  if (!lease_id || ttl_s <= 0)
    return lmq__error(LMQ_EINVAL, "lease grant: NULL id or TTL %d <= 0", ttl_s);
  char *body;
  int rc = etcd_body_lease(&body, "TTL", ttl_s);
  if (rc)
    return rc;
  buf out;
  /* A repeated grant only leaves an unused lease that expires by itself. */
  rc = call(e, "lease grant", "/v3/lease/grant", body, CALL_IDEM, deadline_of(e), &out,
            NULL);
  free(body);
  if (rc)
    return rc;
  int64_t ttl;
  rc = etcd_decode_lease_grant(lease_id, &ttl, out.p, out.n);
  buf_free(&out);
  return rc;
}

static int etcd_lease_keepalive(lmq_meta *m, int64_t lease_id) {
  etcd *e = (etcd *)m;
  char *body;
  int rc = etcd_body_lease(&body, "ID", lease_id);
  if (rc)
    return rc;
  buf out;
  rc = call(e, "lease keepalive", "/v3/lease/keepalive", body, CALL_IDEM,
            deadline_of(e), &out, NULL);
  free(body);
  if (rc)
    return rc;
  int64_t ttl;
  rc = etcd_decode_keepalive(&ttl, out.p, out.n);
  buf_free(&out);
  if (rc)
    return rc;
  if (ttl <= 0)
    return lmq__error(LMQ_ENOTFOUND, "lease %" PRId64 " expired or unknown", lease_id);
  return 0;
}

static int etcd_lease_revoke(lmq_meta *m, int64_t lease_id) {
  etcd *e = (etcd *)m;
  char *body;
  int rc = etcd_body_lease(&body, "ID", lease_id);
  if (rc)
    return rc;
  buf out;
  int amb;
  rc = call(e, "lease revoke", "/v3/lease/revoke", body, CALL_IDEM, deadline_of(e),
            &out, &amb);
  free(body);
  if (rc == LMQ_ENOTFOUND && amb)
    return 0; /* an earlier attempt revoked it */
  buf_free(&out);
  return rc;
}

static int etcd_put_lease(lmq_meta *m, const void *key, size_t klen, const void *val,
                          size_t vlen, int64_t lease_id) {
  etcd *e = (etcd *)m;
  if (!key || klen == 0 || (vlen && !val))
    return lmq__error(LMQ_EINVAL, "put_lease: empty key or NULL value");
  int rc = size_check(e, "put", e->u.nslen + klen + vlen + 32);
  if (rc)
    return rc;
  size_t fl;
  unsigned char *fk = full_key(e, key, klen, &fl);
  if (!fk)
    return LMQ_ENOMEM;
  char *body;
  rc = etcd_body_put(&body, fk, fl, val, vlen, lease_id);
  free(fk);
  if (rc)
    return rc;
  buf out;
  rc = call(e, "put", "/v3/kv/put", body, CALL_IDEM, deadline_of(e), &out, NULL);
  free(body);
  buf_free(&out);
  return rc;
}

/* ------------------------------------------------------------------ watch */

/* Deliver the complete lines in w->line; keep the partial tail. Returns 0 to
 * go on, -1 to drop the stream and reconnect. */
static int watch_lines(etcd_watch *w) {
  etcd *e = w->e;
  size_t start = 0;
  int rc = 0;
  for (;;) {
    char *nl = memchr(w->line + start, '\n', w->nline - start);
    if (!nl)
      break;
    size_t len = (size_t)(nl - (w->line + start));
    if (len) {
      etcd_watch_msg msg;
      if (etcd_decode_watch(&msg, w->line + start, len, e->u.ns, e->u.nslen)) {
        rc = -1;
        break;
      }
      int64_t top = 0;
      for (size_t i = 0; i < msg.nevents; i++) {
        etcd_watch_event *ev = &msg.events[i];
        lmq_meta_event out = {ev->type, ev->key, ev->klen, ev->val, ev->vlen};
        w->fn(w->arg, &out);
        if (ev->mod_revision > top)
          top = ev->mod_revision;
      }
      if (top >= w->next_rev)
        w->next_rev = top + 1;
      if (msg.created && !msg.canceled)
        w->created = 1;
      if (msg.canceled) {
        if (msg.compact_revision > w->next_rev)
          w->next_rev = msg.compact_revision;
        w->reauth = msg.auth_error;
        rc = -1;
      }
      etcd_watch_msg_free(&msg);
      if (rc)
        break;
    }
    start += len + 1;
  }
  memmove(w->line, w->line + start, w->nline - start);
  w->nline -= start;
  return rc;
}

static size_t watch_write(char *ptr, size_t sz, size_t nm, void *ud) {
  etcd_watch *w = ud;
  size_t n = sz * nm;
  if (atomic_load(&w->stop))
    return 0;
  long status = 0;
  curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
  if (w->nline + n > WATCH_LINE_MAX)
    return 0;
  if (w->nline + n > w->capline) {
    size_t cap = w->capline ? w->capline : 4096;
    while (cap < w->nline + n)
      cap *= 2;
    char *np = realloc(w->line, cap);
    if (!np)
      return 0;
    w->line = np;
    w->capline = cap;
  }
  memcpy(w->line + w->nline, ptr, n);
  w->nline += n;
  if (status != 200)
    return n; /* an error answer: classified when the transfer ends */
  if (watch_lines(w)) {
    w->restart = 1;
    return 0;
  }
  return n;
}

/* One streaming POST, until it ends, breaks or the watch is stopped. */
static void watch_once(etcd_watch *w, size_t ep) {
  etcd *e = w->e;
  char *body;
  uint64_t gen;
  w->nline = 0;
  w->restart = w->reauth = w->created = 0;
  if (etcd_body_watch(&body, w->key, w->klen, w->end, w->elen, w->next_rev))
    return;
  struct curl_slist *hdrs = make_headers(e, 1, &gen);
  if (!hdrs) {
    free(body);
    return;
  }
  char url[512];
  make_url(url, sizeof url, e, ep, "/v3/watch");
  curl_easy_reset(w->h);
  set_common(e, w->h, url, hdrs, e->u.connect_timeout_ms);
  curl_easy_setopt(w->h, CURLOPT_COPYPOSTFIELDS, body);
  curl_easy_setopt(w->h, CURLOPT_WRITEFUNCTION, watch_write);
  curl_easy_setopt(w->h, CURLOPT_WRITEDATA, w);
  /* Notice a peer that vanished without closing the connection. */
  curl_easy_setopt(w->h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(w->h, CURLOPT_TCP_KEEPIDLE, 10L);
  curl_easy_setopt(w->h, CURLOPT_TCP_KEEPINTVL, 5L);
  free(body);
  curl_multi_add_handle(w->multi, w->h);
  int running = 1;
  while (running && !atomic_load(&w->stop) && !w->restart) {
    if (curl_multi_perform(w->multi, &running) != CURLM_OK)
      break;
    if (running)
      curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
  }
  long status = 0;
  curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(w->multi, w->h);
  curl_slist_free_all(hdrs);
  if (status && status != 200) {
    int code;
    char msg[200];
    if (etcd_classify(&code, msg, sizeof msg, status, w->line, w->nline) == ETCD_REAUTH)
      w->reauth = 1;
  }
  if (w->reauth && e->u.user && !atomic_load(&w->stop))
    authenticate(e, gen, deadline_of(e));
}

static void *watch_main(void *arg) {
  etcd_watch *w = arg;
  etcd *e = w->e;
  long backoff = BACKOFF_FIRST_MS;
  while (!atomic_load(&w->stop)) {
    size_t ep = endpoint(e);
    watch_once(w, ep);
    if (atomic_load(&w->stop))
      break;
    if (w->created) {
      backoff = BACKOFF_FIRST_MS; /* it worked for a while: start over */
    } else {
      fail_over(e, ep);
    }
    /* Interruptible sleep: unwatch wakes the multi handle. */
    curl_multi_poll(w->multi, NULL, 0, (int)jitter(backoff), NULL);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  return NULL;
}

static void watch_free(etcd_watch *w) {
  if (w->multi)
    curl_multi_cleanup(w->multi);
  if (w->h)
    curl_easy_cleanup(w->h);
  free(w->key);
  free(w->end);
  free(w->line);
  free(w);
}

static int etcd_watch_start(lmq_meta *m, void **handle, const void *prefix, size_t plen,
                            lmq_meta_watch_fn fn, void *arg) {
  etcd *e = (etcd *)m;
  if (!handle || !fn || (plen && !prefix))
    return lmq__error(LMQ_EINVAL, "watch: NULL argument");
  *handle = NULL;
  etcd_watch *w = calloc(1, sizeof *w);
  if (!w)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  w->e = e;
  w->fn = fn;
  w->arg = arg;
  atomic_init(&w->stop, 0);
  int rc;
  if (!(w->key = full_key(e, prefix, plen, &w->klen))) {
    free(w);
    return LMQ_ENOMEM;
  }
  if ((rc = etcd_prefix_end(&w->end, &w->elen, w->key, w->klen))) {
    watch_free(w);
    return rc;
  }
  /* Start right after the current revision: every change committed after
   * this call returns is delivered, even if the stream connects later. */
  char *body;
  if ((rc = etcd_body_range(&body, w->key, w->klen, w->end, w->elen, 1, 1))) {
    watch_free(w);
    return rc;
  }
  buf out;
  rc = call(e, "watch", "/v3/kv/range", body, CALL_IDEM, deadline_of(e), &out, NULL);
  free(body);
  int64_t rev = 0;
  if (!rc) {
    rc = etcd_decode_revision(&rev, out.p, out.n);
    buf_free(&out);
  }
  if (rc) {
    watch_free(w);
    return rc;
  }
  w->next_rev = rev + 1;
  if (!(w->multi = curl_multi_init()) || !(w->h = curl_easy_init())) {
    watch_free(w);
    return lmq__error(LMQ_ENOMEM, "out of memory (curl handle)");
  }
  if ((rc = pthread_create(&w->thr, NULL, watch_main, w))) {
    watch_free(w);
    return lmq__error(LMQ_ENOMEM, "watch: cannot start a thread (error %d)", rc);
  }
  pthread_mutex_lock(&e->lock);
  w->next = e->watches;
  e->watches = w;
  pthread_mutex_unlock(&e->lock);
  *handle = w;
  return 0;
}

static void etcd_unwatch(lmq_meta *m, void *handle) {
  etcd *e = (etcd *)m;
  etcd_watch *w = NULL;
  pthread_mutex_lock(&e->lock);
  for (etcd_watch **pp = &e->watches; *pp; pp = &(*pp)->next)
    if (*pp == handle) {
      w = *pp;
      *pp = w->next;
      break;
    }
  pthread_mutex_unlock(&e->lock);
  if (!w)
    return;
  atomic_store(&w->stop, 1);
  curl_multi_wakeup(w->multi);
  pthread_join(w->thr, NULL);
  watch_free(w);
}

/* ------------------------------------------------------------------ life */

static void etcd_close(lmq_meta *m) {
  etcd *e = (etcd *)m;
  for (;;) {
    pthread_mutex_lock(&e->lock);
    etcd_watch *w = e->watches;
    pthread_mutex_unlock(&e->lock);
    if (!w)
      break;
    etcd_unwatch(m, w);
  }
  for (size_t i = 0; i < e->npool; i++)
    curl_easy_cleanup(e->pool[i]);
  free(e->token);
  etcd_uri_free(&e->u);
  pthread_mutex_destroy(&e->lock);
  free(e);
}

static const lmq_meta_ops etcd_ops = {"etcd",
                                      etcd_get,
                                      etcd_txn,
                                      etcd_range,
                                      etcd_lease_grant,
                                      etcd_lease_keepalive,
                                      etcd_lease_revoke,
                                      etcd_put_lease,
                                      etcd_watch_start,
                                      etcd_unwatch,
                                      etcd_close,
                                      NULL, /* joins: keeps its data in etcd */
                                      NULL,
                                      NULL};

int lmq__meta_etcd_open(lmq_meta **out, const char *uri) {
  *out = NULL;
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK)
    return lmq__error(LMQ_ENOMEM, "curl_global_init failed: %s",
                      curl_easy_strerror(curl_init_rc));
  etcd *e = calloc(1, sizeof *e);
  if (!e)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  int rc = etcd_uri_parse(&e->u, uri);
  if (rc) {
    free(e);
    return rc;
  }
  e->base.ops = &etcd_ops;
  pthread_mutex_init(&e->lock, NULL);
  uint64_t deadline = deadline_of(e);
  if (e->u.user && (rc = authenticate(e, 0, deadline))) {
    etcd_close(&e->base);
    return rc;
  }
  /* Probe: proves an endpoint answers and that we may read the namespace. */
  char *body;
  if (!(rc = etcd_body_range(&body, e->u.ns, e->u.nslen, NULL, 0, 1, 1))) {
    buf b;
    rc = call(e, "open", "/v3/kv/range", body, CALL_IDEM, deadline, &b, NULL);
    free(body);
    buf_free(&b);
  }
  if (rc) {
    etcd_close(&e->base);
    return rc;
  }
  *out = &e->base;
  return 0;
}
