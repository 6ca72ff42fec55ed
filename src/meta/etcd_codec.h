/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd_codec.h - the pure half of the etcd driver: base64, the etcd:// URI
 * parser, request bodies and decoders for the etcd v3 JSON gateway's answers.
 *
 * Nothing here does I/O or keeps state between calls: every function takes
 * bytes and returns values, so each decoder can be fed arbitrary input (unit
 * tests, fuzzers). Functions returning int give 0 or a negative LMQ_E* code
 * and record the detail with lmq__error(). Everything is thread-safe.
 * Ownership: what a function returns through a pointer belongs to the caller
 * and is released with free() unless the comment names another function.
 */
#ifndef LMQ_META_ETCD_CODEC_H
#define LMQ_META_ETCD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "meta/meta.h"

/* ------------------------------------------------------------------ base64 */

/* Length of the padded base64 text for n bytes (without the NUL). */
size_t lmq__b64_len(size_t n);
/* Encode n bytes into dst, which holds lmq__b64_len(n) + 1 bytes; NUL-ends it. */
void lmq__b64_encode(char *dst, const void *src, size_t n);
/*
 * Decode len characters of standard, padded base64 (RFC 4648 section 4) into
 * a new buffer *out of *outlen bytes (never NULL on success, even when empty).
 * Errors: LMQ_EPROTO (bad character, bad padding or length), LMQ_ENOMEM.
 */
int lmq__b64_decode(void **out, size_t *outlen, const char *src, size_t len);

/* ------------------------------------------------------------------ URI */

#define ETCD_MAX_ENDPOINTS 16

typedef struct etcd_uri {
  int tls;                       /* 1 for etcds:// */
  size_t nep;                    /* number of endpoints, 1..ETCD_MAX_ENDPOINTS */
  char *eps[ETCD_MAX_ENDPOINTS]; /* "host:port" or "[v6]:port", URL-ready */
  char *ns;                      /* namespace: decoded path, always ends in '/' */
  size_t nslen;
  long timeout_ms;           /* whole-request budget incl. retries (5000) */
  long connect_timeout_ms;   /* per connection attempt (1000) */
  char *user, *password;     /* both or neither */
  char *cacert, *cert, *key; /* TLS files (etcds:// only) */
  size_t max_request_bytes;  /* client-side size check (1.5 MiB) */
  size_t max_txn_ops;        /* etcd's --max-txn-ops (128) */
} etcd_uri;

/*
 * Parse "etcd[s]://host[:port][,host[:port]...][/path][?k=v&...]" into u
 * (which need not be initialised). The path, percent-decoded, becomes the
 * namespace (a '/' is appended unless it ends in one; no path means "/").
 * The port defaults to 2379. Options: timeout_ms, connect_timeout_ms, user,
 * password, cacert, cert, key, max_request_bytes, max_txn_ops.
 * Errors: LMQ_EINVAL with a message naming the fault, LMQ_ENOMEM. On error u
 * holds nothing that needs freeing; on success free it with etcd_uri_free().
 */
int etcd_uri_parse(etcd_uri *u, const char *uri);
void etcd_uri_free(etcd_uri *u);

/* ------------------------------------------------------------------ keys */

/*
 * The exclusive end of the range of keys starting with p: p with trailing
 * 0xff bytes dropped and the last remaining byte incremented. When p is empty
 * or all 0xff there is no such key; the result is then the single byte 0,
 * which etcd reads as "to the end of the keyspace". *out is malloc'ed.
 * Errors: LMQ_ENOMEM.
 */
int etcd_prefix_end(unsigned char **out, size_t *outlen, const void *p, size_t n);
/* memcmp order on byte strings of different lengths (shorter first on ties). */
int etcd_keycmp(const void *a, size_t alen, const void *b, size_t blen);

/* ------------------------------------------------------------------ answers */

/* What the caller should do after one HTTP exchange. */
enum etcd_verdict {
  ETCD_DONE = 0,       /* HTTP 200: decode the body */
  ETCD_RETRY = 1,      /* refused before it was applied: any request may retry */
  ETCD_RETRY_IDEM = 2, /* transient but possibly applied: only idempotent ones */
  ETCD_REAUTH = 3,     /* token invalid or expired: authenticate, then retry */
  ETCD_FAIL = 4        /* a definite answer: *code says which */
};

/*
 * Classify a gateway answer (status and body). For ETCD_FAIL, *code is the
 * LMQ code (LMQ_EAUTH, LMQ_ETOOBIG, LMQ_ENOTFOUND, LMQ_ELIMIT, LMQ_EINVAL,
 * LMQ_EPROTO); msg receives etcd's message (or a summary) in every case.
 * ETCD_DONE means HTTP 200 with a non-empty body; a 200 with an empty body
 * is ETCD_FAIL with LMQ_EPROTO. body need not be NUL-terminated.
 */
int etcd_classify(int *code, char *msg, size_t msgcap, long http_status,
                  const char *body, size_t len);

/* Header revision of any unary answer (range, put, txn...). LMQ_EPROTO. */
int etcd_decode_revision(int64_t *rev, const char *body, size_t len);

/*
 * A range answer: the kvs whose keys start with ns, with ns stripped, in the
 * order etcd sent them. *out is freed with lmq_meta_kv_free(*out, *n) and is
 * NULL when *n is 0. *more is etcd's "more" flag (may be NULL).
 * Errors: LMQ_EPROTO (malformed JSON or base64, key outside ns), LMQ_ENOMEM.
 */
int etcd_decode_range(lmq_meta_kv **out, size_t *n, int *more, const char *body,
                      size_t len, const void *ns, size_t nslen);

/* A txn answer: *succeeded is 1 if the compares held. Errors: LMQ_EPROTO. */
int etcd_decode_txn(int *succeeded, const char *body, size_t len);

/* A lease grant answer. Errors: LMQ_EPROTO, or LMQ_EUNAVAIL/LMQ_ELIMIT when
 * etcd filled the answer's "error" field. */
int etcd_decode_lease_grant(int64_t *id, int64_t *ttl, const char *body, size_t len);

/* A keepalive answer ({"result":{...}}). *ttl is 0 when the lease is gone.
 * Errors: LMQ_EPROTO, or the classified code of an {"error":...} answer. */
int etcd_decode_keepalive(int64_t *ttl, const char *body, size_t len);

/* An authenticate answer: *token is malloc'ed. Errors: LMQ_EPROTO, LMQ_EAUTH
 * (no token in the answer), LMQ_ENOMEM. */
int etcd_decode_auth(char **token, const char *body, size_t len);

/* One decoded watch event (key and value are owned by the message). */
typedef struct etcd_watch_event {
  int type; /* LMQ_META_PUT or LMQ_META_DEL */
  unsigned char *key;
  size_t klen;
  unsigned char *val;
  size_t vlen;
  int64_t mod_revision;
} etcd_watch_event;

/* One line of a /v3/watch stream. */
typedef struct etcd_watch_msg {
  int created;              /* the watch was (re)established */
  int canceled;             /* the server ended the watch */
  int auth_error;           /* canceled because the token was refused */
  int64_t compact_revision; /* >0: history before it is gone */
  int64_t header_revision;
  char reason[160]; /* cancel_reason or the error text */
  etcd_watch_event *events;
  size_t nevents;
} etcd_watch_msg;

/*
 * Decode one line of the watch stream. Events whose keys do not start with
 * ns are dropped; ns is stripped from the rest. An {"error":...} line is
 * returned as canceled. Free with etcd_watch_msg_free().
 * Errors: LMQ_EPROTO, LMQ_ENOMEM (m then holds nothing to free).
 */
int etcd_decode_watch(etcd_watch_msg *m, const char *line, size_t len, const void *ns,
                      size_t nslen);
void etcd_watch_msg_free(etcd_watch_msg *m);

/* ------------------------------------------------------------------ requests */

/*
 * Request bodies (NUL-terminated JSON, malloc'ed into *out). Keys passed here
 * are full etcd keys (namespace included). Errors: LMQ_ENOMEM.
 */
int etcd_body_range(char **out, const void *key, size_t klen, const void *end,
                    size_t elen, size_t limit, int count_only);
int etcd_body_txn(char **out, const lmq_meta_cmp *cmps, size_t ncmp,
                  const lmq_meta_op *ops, size_t nops, const void *ns, size_t nslen);
int etcd_body_put(char **out, const void *key, size_t klen, const void *val,
                  size_t vlen, int64_t lease);
int etcd_body_lease(char **out, const char *field, int64_t v);
int etcd_body_auth(char **out, const char *user, const char *password);
int etcd_body_watch(char **out, const void *key, size_t klen, const void *end,
                    size_t elen, int64_t start_revision);

#endif
