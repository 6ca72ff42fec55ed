/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * etcd_codec.c - base64, the etcd:// URI parser, request bodies and answer
 * decoders for the etcd driver. No I/O here (see etcd_codec.h).
 *
 * Gateway facts this file relies on (etcd 3.4): keys and values are base64;
 * int64 fields arrive as JSON strings; zero values are omitted (a PUT event
 * has no "type", a failed txn has no "succeeded", an empty value has no
 * "value"); errors are {"error","message","code"} with the gRPC code, and
 * streamed answers are wrapped in {"result":...} or {"error":...}.
 */
#include "meta/etcd_codec.h"
#include "common/error.h"
#include "config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t lmq__b64_len(size_t n) { return (n + 2) / 3 * 4; }

void lmq__b64_encode(char *dst, const void *src, size_t n) {
  const unsigned char *s = src;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *dst++ = b64_alphabet[v >> 18];
    *dst++ = b64_alphabet[(v >> 12) & 63];
    *dst++ = b64_alphabet[(v >> 6) & 63];
    *dst++ = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)s[i] << 16;
    *dst++ = b64_alphabet[v >> 18];
    *dst++ = b64_alphabet[(v >> 12) & 63];
    *dst++ = '=';
    *dst++ = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
    *dst++ = b64_alphabet[v >> 18];
    *dst++ = b64_alphabet[(v >> 12) & 63];
    *dst++ = b64_alphabet[(v >> 6) & 63];
    *dst++ = '=';
  }
  *dst = '\0';
}

static int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

int lmq__b64_decode(void **out, size_t *outlen, const char *src, size_t len) {
  *out = NULL;
  *outlen = 0;
  if (len % 4)
    return lmq__error(LMQ_EPROTO,
                      "base64 text of %zu characters (not a multiple "
                      "of 4)",
                      len);
  size_t pad = 0;
  if (len && src[len - 1] == '=')
    pad = (len >= 2 && src[len - 2] == '=') ? 2 : 1;
  size_t n = len / 4 * 3 - pad;
  unsigned char *d = malloc(n ? n : 1);
  if (!d)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    int last = i + 4 == len;
    int v[4];
    for (int j = 0; j < 4; j++) {
      unsigned char c = (unsigned char)src[i + j];
      if (c == '=' && last && j >= 4 - (int)pad) {
        v[j] = 0;
        continue;
      }
      if ((v[j] = b64_val(c)) < 0) {
        free(d);
        return lmq__error(LMQ_EPROTO, "bad base64 character 0x%02x at %zu", c,
                          i + (size_t)j);
      }
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                 (uint32_t)v[3];
    unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                          (unsigned char)w};
    size_t take = last ? 3 - pad : 3;
    /* Canonical encodings only: the bits a padded group drops must be zero. */
    if (last && ((pad == 1 && b[2]) || (pad == 2 && (b[1] || b[2])))) {
      free(d);
      return lmq__error(LMQ_EPROTO, "non-canonical base64 padding");
    }
    memcpy(d + o, b, take);
    o += take;
  }
  *out = d;
  *outlen = n;
  return 0;
}

/* ------------------------------------------------------------------ keys */

int etcd_prefix_end(unsigned char **out, size_t *outlen, const void *p, size_t n) {
  const unsigned char *s = p;
  size_t k = n;
  while (k && s[k - 1] == 0xff)
    k--;
  unsigned char *e = malloc(k ? k : 1);
  if (!e)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  if (k == 0) {
    e[0] = 0;
    *out = e;
    *outlen = 1;
    return 0;
  }
  memcpy(e, s, k);
  e[k - 1]++;
  *out = e;
  *outlen = k;
  return 0;
}

int etcd_keycmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t m = alen < blen ? alen : blen;
  int c = m ? memcmp(a, b, m) : 0;
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

/* ------------------------------------------------------------------ URI */

void etcd_uri_free(etcd_uri *u) {
  if (!u)
    return;
  for (size_t i = 0; i < u->nep; i++)
    free(u->eps[i]);
  free(u->ns);
  free(u->user);
  if (u->password) {
    /* Do not leave the password in freed heap memory. */
    volatile char *p = u->password;
    while (*p)
      *p++ = 0;
  }
  free(u->password);
  free(u->cacert);
  free(u->cert);
  free(u->key);
  memset(u, 0, sizeof *u);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Percent-decode s[0..n) into a new NUL-terminated buffer. */
static int pct_decode(char **out, size_t *outlen, const char *s, size_t n,
                      const char *what) {
  char *d = malloc(n + 1);
  if (!d)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
      int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        free(d);
        return lmq__error(LMQ_EINVAL, "metadata URI: bad %%-escape in %s", what);
      }
      d[o++] = (char)(hi << 4 | lo);
      i += 2;
    } else {
      d[o++] = s[i];
    }
  }
  d[o] = '\0';
  *out = d;
  if (outlen)
    *outlen = o;
  return 0;
}

static int parse_long(long *v, const char *s, long lo, long hi, const char *name) {
  char *end;
  errno = 0;
  long x = strtol(s, &end, 10);
  if (!*s || *end || errno || x < lo || x > hi || !isdigit((unsigned char)*s))
    return lmq__error(LMQ_EINVAL,
                      "metadata URI: %s='%.40s' is not an integer in "
                      "[%ld, %ld]",
                      name, s, lo, hi);
  *v = x;
  return 0;
}

static int parse_endpoint(char **out, const char *s, size_t n) {
  if (n == 0)
    return lmq__error(LMQ_EINVAL, "metadata URI: empty endpoint");
  size_t hend; /* end of the host part (exclusive) */
  size_t pstart;
  if (s[0] == '[') {
    const char *rb = memchr(s, ']', n);
    if (!rb)
      return lmq__error(LMQ_EINVAL, "metadata URI: '[' without ']' in '%.*s'", (int)n,
                        s);
    hend = (size_t)(rb - s) + 1;
    if (hend == 2)
      return lmq__error(LMQ_EINVAL, "metadata URI: empty IPv6 address");
    for (size_t i = 1; i + 1 < hend; i++)
      if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
        return lmq__error(LMQ_EINVAL, "metadata URI: bad IPv6 address '%.*s'", (int)n,
                          s);
    if (hend < n && s[hend] != ':')
      return lmq__error(LMQ_EINVAL, "metadata URI: junk after ']' in '%.*s'", (int)n,
                        s);
    pstart = hend < n ? hend + 1 : n;
  } else {
    const char *c = memchr(s, ':', n);
    hend = c ? (size_t)(c - s) : n;
    if (hend == 0)
      return lmq__error(LMQ_EINVAL, "metadata URI: endpoint '%.*s' has no host", (int)n,
                        s);
    for (size_t i = 0; i < hend; i++) {
      unsigned char ch = (unsigned char)s[i];
      if (!isalnum(ch) && ch != '.' && ch != '-' && ch != '_')
        return lmq__error(LMQ_EINVAL,
                          "metadata URI: bad character 0x%02x in host "
                          "'%.*s'",
                          ch, (int)hend, s);
    }
    pstart = c ? hend + 1 : n;
  }
  long port = 2379;
  if (pstart < n || (pstart == n && hend < n)) {
    size_t plen = n - pstart;
    char buf[8];
    if (plen == 0 || plen >= sizeof buf)
      return lmq__error(LMQ_EINVAL, "metadata URI: bad port in '%.*s'", (int)n, s);
    memcpy(buf, s + pstart, plen);
    buf[plen] = '\0';
    int rc = parse_long(&port, buf, 1, 65535, "port");
    if (rc)
      return rc;
  }
  char *ep = malloc(hend + 8);
  if (!ep)
    return lmq__error(LMQ_ENOMEM, "out of memory");
  snprintf(ep, hend + 8, "%.*s:%ld", (int)hend, s, port);
  *out = ep;
  return 0;
}

static int set_str(char **dst, const char *v, const char *name) {
  free(*dst);
  *dst = strdup(v);
  return *dst ? 0 : lmq__error(LMQ_ENOMEM, "out of memory");
}

static int parse_option(etcd_uri *u, const char *k, const char *v) {
  long x;
  int rc;
  if (!strcmp(k, "timeout_ms")) {
    if ((rc = parse_long(&x, v, 1, 3600000, k)))
      return rc;
    u->timeout_ms = x;
  } else if (!strcmp(k, "connect_timeout_ms")) {
    if ((rc = parse_long(&x, v, 1, 3600000, k)))
      return rc;
    u->connect_timeout_ms = x;
  } else if (!strcmp(k, "max_request_bytes")) {
    if ((rc = parse_long(&x, v, 1, 1L << 30, k)))
      return rc;
    u->max_request_bytes = (size_t)x;
  } else if (!strcmp(k, "max_txn_ops")) {
    if ((rc = parse_long(&x, v, 1, 1L << 20, k)))
      return rc;
    u->max_txn_ops = (size_t)x;
  } else if (!strcmp(k, "user")) {
    return set_str(&u->user, v, k);
  } else if (!strcmp(k, "password")) {
    return set_str(&u->password, v, k);
  } else if (!strcmp(k, "cacert") || !strcmp(k, "cert") || !strcmp(k, "key")) {
    if (!u->tls)
      return lmq__error(LMQ_EINVAL, "metadata URI: option '%s' needs etcds://", k);
    if (!*v)
      return lmq__error(LMQ_EINVAL, "metadata URI: option '%s' is empty", k);
    return set_str(!strcmp(k, "cacert") ? &u->cacert
                   : !strcmp(k, "cert") ? &u->cert
                                        : &u->key,
                   v, k);
  } else {
    return lmq__error(LMQ_EINVAL, "metadata URI: unknown option '%.40s'", k);
  }
  return 0;
}

static int parse_query(etcd_uri *u, const char *q) {
  while (*q) {
    size_t n = strcspn(q, "&");
    if (n) {
      const char *eq = memchr(q, '=', n);
      if (!eq)
        return lmq__error(LMQ_EINVAL, "metadata URI: option '%.*s' has no '='",
                          (int)(n > 40 ? 40 : n), q);
      char *k, *v;
      size_t klen, vlen;
      int rc = pct_decode(&k, &klen, q, (size_t)(eq - q), "an option name");
      if (rc)
        return rc;
      if ((rc = pct_decode(&v, &vlen, eq + 1, n - (size_t)(eq - q) - 1,
                           "an option value"))) {
        free(k);
        return rc;
      }
      if (strlen(k) != klen || strlen(v) != vlen)
        rc = lmq__error(LMQ_EINVAL, "metadata URI: option contains a zero byte");
      else
        rc = parse_option(u, k, v);
      free(k);
      free(v);
      if (rc)
        return rc;
    }
    q += n;
    if (*q == '&')
      q++;
  }
  return 0;
}

int etcd_uri_parse(etcd_uri *u, const char *uri) {
  memset(u, 0, sizeof *u);
  u->timeout_ms = 5000;
  u->connect_timeout_ms = 1000;
  u->max_request_bytes = 1536 * 1024;
  u->max_txn_ops = 128;
  if (!uri)
    return lmq__error(LMQ_EINVAL, "metadata URI is NULL");
  const char *p;
  if (!strncmp(uri, "etcd://", 7)) {
    p = uri + 7;
  } else if (!strncmp(uri, "etcds://", 8)) {
    u->tls = 1;
    p = uri + 8;
  } else {
    return lmq__error(LMQ_EINVAL,
                      "metadata URI '%.100s': scheme must be etcd:// "
                      "or etcds://",
                      uri);
  }
  int rc = 0;
  if (strchr(p, '#')) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI: '#' fragments are not allowed");
    goto fail;
  }
  size_t alen = strcspn(p, "/?");
  if (memchr(p, '@', alen)) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI: credentials go in ?user=&password=, "
                                "not before '@'");
    goto fail;
  }
  if (alen == 0) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI '%.100s' names no endpoint", uri);
    goto fail;
  }
  for (size_t i = 0; i <= alen;) {
    size_t n = strcspn(p + i, ",/?");
    if (n > alen - i)
      n = alen - i;
    if (u->nep == ETCD_MAX_ENDPOINTS) {
      rc = lmq__error(LMQ_EINVAL, "metadata URI: more than %d endpoints",
                      ETCD_MAX_ENDPOINTS);
      goto fail;
    }
    if ((rc = parse_endpoint(&u->eps[u->nep], p + i, n)))
      goto fail;
    u->nep++;
    i += n + 1;
    if (i - 1 == alen)
      break;
  }
  p += alen;
  size_t plen = strcspn(p, "?");
  char *path;
  size_t pathlen;
  if ((rc = pct_decode(&path, &pathlen, p, plen, "the path")))
    goto fail;
  if (pathlen == 0 || path[pathlen - 1] != '/') {
    char *np = realloc(path, pathlen + 2);
    if (!np) {
      free(path);
      rc = lmq__error(LMQ_ENOMEM, "out of memory");
      goto fail;
    }
    path = np;
    path[pathlen++] = '/';
    path[pathlen] = '\0';
  }
  u->ns = path;
  u->nslen = pathlen;
  p += plen;
  if (*p == '?' && (rc = parse_query(u, p + 1)))
    goto fail;
  if (!u->user != !u->password) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI: give both user and password");
    goto fail;
  }
  if (u->user && !*u->user) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI: user is empty");
    goto fail;
  }
  if (!u->cert != !u->key) {
    rc = lmq__error(LMQ_EINVAL, "metadata URI: give both cert and key");
    goto fail;
  }
  return 0;
fail:
  etcd_uri_free(u);
  return rc;
}

/* ------------------------------------------------------------------ JSON */

/* An int64 field that etcd sends as a string (or, leniently, as a number).
 * Absent means 0. */
static int jint(int64_t *v, const cJSON *o, const char *name) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
  *v = 0;
  if (!it || cJSON_IsNull(it))
    return 0;
  if (cJSON_IsNumber(it)) {
    if (!(it->valuedouble >= -9.2e18 && it->valuedouble <= 9.2e18)) /* NaN too */
      return lmq__error(LMQ_EPROTO, "etcd answer: '%s' out of range", name);
    *v = (int64_t)it->valuedouble;
    return 0;
  }
  if (!cJSON_IsString(it) || !it->valuestring[0])
    return lmq__error(LMQ_EPROTO, "etcd answer: '%s' is not an integer", name);
  char *end;
  errno = 0;
  long long x = strtoll(it->valuestring, &end, 10);
  if (*end || errno)
    return lmq__error(LMQ_EPROTO, "etcd answer: '%s'='%.30s' is not an int64", name,
                      it->valuestring);
  *v = x;
  return 0;
}

/* A base64 bytes field; absent means empty. *out is never NULL on success. */
static int jbytes(unsigned char **out, size_t *n, const cJSON *o, const char *name) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!it || cJSON_IsNull(it))
    return lmq__b64_decode((void **)out, n, "", 0);
  if (!cJSON_IsString(it))
    return lmq__error(LMQ_EPROTO, "etcd answer: '%s' is not a string", name);
  return lmq__b64_decode((void **)out, n, it->valuestring, strlen(it->valuestring));
}

/* Copy printable text for messages (answers may hold any bytes). */
static void copy_msg(char *dst, size_t cap, const char *src, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 1 < cap; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[o++] = (c >= 32 && c < 127) ? (char)c : '?';
  }
  while (o && (dst[o - 1] == '\n' || dst[o - 1] == ' '))
    o--;
  if (cap)
    dst[o] = '\0';
}

static cJSON *parse_obj(const char *body, size_t len, const char *what) {
  cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
  if (!j || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    /* The body is len bytes, not a C string: quote a bounded copy. */
    char head[61];
    copy_msg(head, sizeof head, body ? body : "", body ? len : 0);
    lmq__error(LMQ_EPROTO, "etcd %s answer is not a JSON object: '%s'", what, head);
    return NULL;
  }
  return j;
}

static const char *jstr(const cJSON *o, const char *name) {
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int classify_text(int *code, const char *m, int64_t gcode, long status) {
  if (strstr(m, "invalid auth token") || strstr(m, "revision in header is old") ||
      gcode == 16 || status == 401)
    return ETCD_REAUTH;
  if (strstr(m, "authentication failed") || strstr(m, "user name is empty") ||
      strstr(m, "permission denied") || strstr(m, "user name not found") ||
      gcode == 7 || status == 403) {
    *code = LMQ_EAUTH;
    return ETCD_FAIL;
  }
  if (strstr(m, "too large") || strstr(m, "larger than max")) {
    *code = LMQ_ETOOBIG;
    return ETCD_FAIL;
  }
  if (strstr(m, "too many operations")) {
    *code = LMQ_ELIMIT;
    return ETCD_FAIL;
  }
  if (strstr(m, "lease not found")) {
    *code = LMQ_ENOTFOUND;
    return ETCD_FAIL;
  }
  /* Refused before being proposed to raft: safe to resend anything. */
  if (strstr(m, "no leader") || strstr(m, "leader changed") ||
      strstr(m, "too many requests") || strstr(m, "not capable"))
    return ETCD_RETRY;
  if (strstr(m, "timed out") || strstr(m, "server stopped") || strstr(m, "unhealthy") ||
      gcode == 14 || gcode == 4 || status >= 500)
    return ETCD_RETRY_IDEM;
  if (strstr(m, "duplicate key") || strstr(m, "key is not provided")) {
    *code = LMQ_EINVAL;
    return ETCD_FAIL;
  }
  *code = LMQ_EPROTO;
  return ETCD_FAIL;
}

int etcd_classify(int *code, char *msg, size_t msgcap, long status, const char *body,
                  size_t len) {
  *code = 0;
  if (msgcap)
    msg[0] = '\0';
  if (status == 200) {
    if (body && len)
      return ETCD_DONE;
    /* The gateway always answers a JSON object, "{}" at the least. */
    *code = LMQ_EPROTO;
    if (msgcap)
      snprintf(msg, msgcap, "HTTP 200 with an empty body (not an etcd v3 answer)");
    return ETCD_FAIL;
  }
  cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
  const char *m = NULL;
  int64_t gcode = -1;
  if (cJSON_IsObject(j)) {
    const cJSON *inner = j;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(e)) /* streamed form: {"error":{"grpc_code":..}} */
      inner = e;
    m = jstr(inner, "message");
    if (!m)
      m = jstr(inner, "error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(inner, "code");
    if (!c)
      c = cJSON_GetObjectItemCaseSensitive(inner, "grpc_code");
    /* Converting a double outside int64's range is undefined: such a
     * code is no gRPC code at all. */
    if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble <= 1e6)
      gcode = (int64_t)c->valuedouble;
  }
  int v;
  if (m) {
    copy_msg(msg, msgcap, m, strlen(m));
    v = classify_text(code, m, gcode, status);
  } else {
    char tmp[96];
    copy_msg(tmp, sizeof tmp, body ? body : "", body ? len : 0);
    snprintf(msg, msgcap, "HTTP %ld%s%s", status, tmp[0] ? ": " : "", tmp);
    if (status >= 500 || status == 429)
      v = ETCD_RETRY_IDEM;
    else if (status == 401)
      v = ETCD_REAUTH;
    else {
      *code = status == 403 ? LMQ_EAUTH : LMQ_EPROTO;
      if (status == 404 && msgcap)
        snprintf(msg, msgcap,
                 "HTTP 404: not an etcd v3 JSON gateway (etcd >= 3.4 "
                 "serves /v3/)");
      v = ETCD_FAIL;
    }
  }
  cJSON_Delete(j);
  return v;
}

int etcd_decode_revision(int64_t *rev, const char *body, size_t len) {
  cJSON *j = parse_obj(body, len, "KV");
  if (!j)
    return LMQ_EPROTO;
  int rc = jint(rev, cJSON_GetObjectItemCaseSensitive(j, "header"), "revision");
  cJSON_Delete(j);
  return rc;
}

int etcd_decode_range(lmq_meta_kv **out, size_t *n, int *more, const char *body,
                      size_t len, const void *ns, size_t nslen) {
  *out = NULL;
  *n = 0;
  if (more)
    *more = 0;
  cJSON *j = parse_obj(body, len, "range");
  if (!j)
    return LMQ_EPROTO;
  int rc = 0;
  const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs");
  if (more)
    *more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "more"));
  if (!kvs) {
    cJSON_Delete(j);
    return 0;
  }
  if (!cJSON_IsArray(kvs)) {
    cJSON_Delete(j);
    return lmq__error(LMQ_EPROTO, "etcd range answer: 'kvs' is not an array");
  }
  size_t cnt = (size_t)cJSON_GetArraySize(kvs);
  lmq_meta_kv *arr = cnt ? calloc(cnt, sizeof *arr) : NULL;
  if (cnt && !arr) {
    cJSON_Delete(j);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  size_t i = 0;
  const cJSON *kv;
  cJSON_ArrayForEach(kv, kvs) {
    unsigned char *k = NULL, *v = NULL;
    size_t klen, vlen;
    int64_t ver;
    if (!cJSON_IsObject(kv)) {
      rc = lmq__error(LMQ_EPROTO, "etcd range answer: kv %zu is not an object", i);
      break;
    }
    if ((rc = jbytes(&k, &klen, kv, "key")))
      break;
    if (klen < nslen || memcmp(k, ns, nslen)) {
      free(k);
      rc = lmq__error(LMQ_EPROTO, "etcd range answer: key outside the namespace");
      break;
    }
    if ((rc = jbytes(&v, &vlen, kv, "value")) || (rc = jint(&ver, kv, "version"))) {
      free(k);
      free(v);
      break;
    }
    memmove(k, k + nslen, klen - nslen);
    arr[i].key = k;
    arr[i].klen = klen - nslen;
    arr[i].val = v;
    arr[i].vlen = vlen;
    arr[i].version = (uint64_t)ver;
    i++;
  }
  cJSON_Delete(j);
  if (rc) {
    lmq_meta_kv_free(arr, i);
    return rc;
  }
  *out = arr;
  *n = i;
  return 0;
}

int etcd_decode_txn(int *succeeded, const char *body, size_t len) {
  cJSON *j = parse_obj(body, len, "txn");
  if (!j)
    return LMQ_EPROTO;
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "succeeded");
  int rc = 0;
  if (s && !cJSON_IsBool(s))
    rc = lmq__error(LMQ_EPROTO, "etcd txn answer: 'succeeded' is not a boolean");
  *succeeded = cJSON_IsTrue(s);
  cJSON_Delete(j);
  return rc;
}

int etcd_decode_lease_grant(int64_t *id, int64_t *ttl, const char *body, size_t len) {
  cJSON *j = parse_obj(body, len, "lease grant");
  if (!j)
    return LMQ_EPROTO;
  int rc;
  const char *err = jstr(j, "error");
  if (err && *err)
    rc = lmq__error(LMQ_EUNAVAIL, "etcd lease grant: %.200s", err);
  else if (!(rc = jint(id, j, "ID")) && !(rc = jint(ttl, j, "TTL")) &&
           (*id == 0 || *ttl <= 0))
    rc = lmq__error(LMQ_EPROTO, "etcd lease grant answer lacks ID or TTL");
  cJSON_Delete(j);
  return rc;
}

int etcd_decode_keepalive(int64_t *ttl, const char *body, size_t len) {
  *ttl = 0;
  cJSON *j = parse_obj(body, len, "keepalive");
  if (!j)
    return LMQ_EPROTO;
  int rc;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
  if (cJSON_IsObject(r)) {
    rc = jint(ttl, r, "TTL");
  } else if (cJSON_GetObjectItemCaseSensitive(j, "error")) {
    char msg[200];
    int code;
    int v = etcd_classify(&code, msg, sizeof msg, 500, body, len);
    rc = lmq__error(v == ETCD_FAIL ? code : LMQ_EUNAVAIL, "etcd keepalive: %s", msg);
  } else {
    rc = lmq__error(LMQ_EPROTO, "etcd keepalive answer has no 'result'");
  }
  cJSON_Delete(j);
  return rc;
}

int etcd_decode_auth(char **token, const char *body, size_t len) {
  *token = NULL;
  cJSON *j = parse_obj(body, len, "authenticate");
  if (!j)
    return LMQ_EPROTO;
  const char *t = jstr(j, "token");
  int rc = 0;
  if (!t || !*t)
    rc = lmq__error(LMQ_EAUTH, "etcd authenticate answer has no token");
  else if (strpbrk(t, "\r\n"))
    rc = lmq__error(LMQ_EPROTO, "etcd auth token contains a line break");
  else if (!(*token = strdup(t)))
    rc = lmq__error(LMQ_ENOMEM, "out of memory");
  cJSON_Delete(j);
  return rc;
}

void etcd_watch_msg_free(etcd_watch_msg *m) {
  if (!m)
    return;
  for (size_t i = 0; i < m->nevents; i++) {
    free(m->events[i].key);
    free(m->events[i].val);
  }
  free(m->events);
  m->events = NULL;
  m->nevents = 0;
}

int etcd_decode_watch(etcd_watch_msg *m, const char *line, size_t len, const void *ns,
                      size_t nslen) {
  memset(m, 0, sizeof *m);
  cJSON *j = parse_obj(line, len, "watch");
  if (!j)
    return LMQ_EPROTO;
  int rc = 0;
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "result");
  if (!cJSON_IsObject(r)) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!e) {
      cJSON_Delete(j);
      return lmq__error(LMQ_EPROTO, "etcd watch line has neither result nor error");
    }
    int code;
    int v = etcd_classify(&code, m->reason, sizeof m->reason, 500, line, len);
    m->canceled = 1;
    m->auth_error = v == ETCD_REAUTH;
    cJSON_Delete(j);
    return 0;
  }
  m->created = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "created"));
  m->canceled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "canceled"));
  const char *reason = jstr(r, "cancel_reason");
  if (reason) {
    copy_msg(m->reason, sizeof m->reason, reason, strlen(reason));
    m->auth_error = strstr(reason, "Unauthenticated") != NULL ||
                    strstr(reason, "invalid auth token") != NULL;
  }
  if ((rc = jint(&m->compact_revision, r, "compact_revision")) ||
      (rc = jint(&m->header_revision, cJSON_GetObjectItemCaseSensitive(r, "header"),
                 "revision"))) {
    cJSON_Delete(j);
    return rc;
  }
  const cJSON *evs = cJSON_GetObjectItemCaseSensitive(r, "events");
  if (evs && !cJSON_IsArray(evs)) {
    cJSON_Delete(j);
    return lmq__error(LMQ_EPROTO, "etcd watch: 'events' is not an array");
  }
  size_t cnt = evs ? (size_t)cJSON_GetArraySize(evs) : 0;
  if (cnt && !(m->events = calloc(cnt, sizeof *m->events))) {
    cJSON_Delete(j);
    return lmq__error(LMQ_ENOMEM, "out of memory");
  }
  const cJSON *ev;
  cJSON_ArrayForEach(ev, evs) {
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
    if (!cJSON_IsObject(kv)) {
      rc = lmq__error(LMQ_EPROTO, "etcd watch event without kv");
      break;
    }
    const char *type = jstr(ev, "type");
    etcd_watch_event *w = &m->events[m->nevents];
    if (!type || !strcmp(type, "PUT"))
      w->type = LMQ_META_PUT;
    else if (!strcmp(type, "DELETE"))
      w->type = LMQ_META_DEL;
    else {
      rc = lmq__error(LMQ_EPROTO, "etcd watch event of type '%.20s'", type);
      break;
    }
    if ((rc = jint(&w->mod_revision, kv, "mod_revision")) ||
        (rc = jbytes(&w->key, &w->klen, kv, "key")))
      break;
    if ((rc = jbytes(&w->val, &w->vlen, kv, "value"))) {
      free(w->key);
      break;
    }
    if (w->klen < nslen || memcmp(w->key, ns, nslen)) {
      free(w->key);
      free(w->val);
      continue;
    }
    memmove(w->key, w->key + nslen, w->klen - nslen);
    w->klen -= nslen;
    m->nevents++;
  }
  cJSON_Delete(j);
  if (rc)
    etcd_watch_msg_free(m);
  return rc;
}

/* ------------------------------------------------------------------ requests */

/* Add a base64-encoded bytes field; 0 or -1 (out of memory). */
static int add_b64(cJSON *o, const char *name, const void *p, size_t n) {
  char *s = malloc(lmq__b64_len(n) + 1);
  if (!s)
    return -1;
  lmq__b64_encode(s, p, n);
  cJSON *it = cJSON_CreateString(s);
  free(s);
  if (!it || !cJSON_AddItemToObject(o, name, it)) {
    cJSON_Delete(it);
    return -1;
  }
  return 0;
}

/* Same, for the key ns+key. */
static int add_nskey(cJSON *o, const char *name, const void *ns, size_t nslen,
                     const void *key, size_t klen) {
  unsigned char *k = malloc(nslen + klen + 1);
  if (!k)
    return -1;
  memcpy(k, ns, nslen);
  if (klen)
    memcpy(k + nslen, key, klen);
  int rc = add_b64(o, name, k, nslen + klen);
  free(k);
  return rc;
}

static int add_i64(cJSON *o, const char *name, int64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRId64, v);
  return cJSON_AddStringToObject(o, name, buf) ? 0 : -1;
}

static cJSON *add_obj(cJSON *parent, const char *name) {
  cJSON *o = cJSON_CreateObject();
  if (o && !cJSON_AddItemToObject(parent, name, o)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static int finish(char **out, cJSON *root, int failed) {
  *out = failed ? NULL : cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  return *out ? 0 : lmq__error(LMQ_ENOMEM, "out of memory building an etcd request");
}

int etcd_body_range(char **out, const void *key, size_t klen, const void *end,
                    size_t elen, size_t limit, int count_only) {
  cJSON *r = cJSON_CreateObject();
  int bad = !r || add_b64(r, "key", key, klen);
  if (!bad && end)
    bad = add_b64(r, "range_end", end, elen);
  if (!bad && limit)
    bad = add_i64(r, "limit", (int64_t)limit);
  if (!bad && count_only)
    bad = !cJSON_AddTrueToObject(r, "count_only");
  return finish(out, r, bad);
}

int etcd_body_txn(char **out, const lmq_meta_cmp *cmps, size_t ncmp,
                  const lmq_meta_op *ops, size_t nops, const void *ns, size_t nslen) {
  cJSON *r = cJSON_CreateObject();
  cJSON *ca = r ? cJSON_AddArrayToObject(r, "compare") : NULL;
  cJSON *sa = r ? cJSON_AddArrayToObject(r, "success") : NULL;
  int bad = !ca || !sa;
  for (size_t i = 0; !bad && i < ncmp; i++) {
    cJSON *c = cJSON_CreateObject();
    if (!c || !cJSON_AddItemToArray(ca, c)) {
      cJSON_Delete(c);
      bad = 1;
      break;
    }
    bad = add_nskey(c, "key", ns, nslen, cmps[i].key, cmps[i].klen) ||
          !cJSON_AddStringToObject(c, "result", "EQUAL");
    if (bad)
      break;
    if (cmps[i].type == LMQ_META_CMP_VERSION)
      bad = !cJSON_AddStringToObject(c, "target", "VERSION") ||
            add_i64(c, "version", (int64_t)cmps[i].version);
    else
      bad = !cJSON_AddStringToObject(c, "target", "VALUE") ||
            add_b64(c, "value", cmps[i].val, cmps[i].vlen);
  }
  for (size_t i = 0; !bad && i < nops; i++) {
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(sa, o)) {
      cJSON_Delete(o);
      bad = 1;
      break;
    }
    cJSON *req = add_obj(o, ops[i].type == LMQ_META_PUT ? "request_put"
                                                        : "request_delete_range");
    bad = !req || add_nskey(req, "key", ns, nslen, ops[i].key, ops[i].klen);
    if (!bad && ops[i].type == LMQ_META_PUT)
      bad = add_b64(req, "value", ops[i].val, ops[i].vlen);
  }
  return finish(out, r, bad);
}

int etcd_body_put(char **out, const void *key, size_t klen, const void *val,
                  size_t vlen, int64_t lease) {
  cJSON *r = cJSON_CreateObject();
  int bad = !r || add_b64(r, "key", key, klen) || add_b64(r, "value", val, vlen);
  if (!bad && lease)
    bad = add_i64(r, "lease", lease);
  return finish(out, r, bad);
}

int etcd_body_lease(char **out, const char *field, int64_t v) {
  cJSON *r = cJSON_CreateObject();
  return finish(out, r, !r || add_i64(r, field, v));
}

int etcd_body_auth(char **out, const char *user, const char *password) {
  cJSON *r = cJSON_CreateObject();
  int bad = !r || !cJSON_AddStringToObject(r, "name", user) ||
            !cJSON_AddStringToObject(r, "password", password);
  return finish(out, r, bad);
}

int etcd_body_watch(char **out, const void *key, size_t klen, const void *end,
                    size_t elen, int64_t start_revision) {
  cJSON *r = cJSON_CreateObject();
  cJSON *c = r ? add_obj(r, "create_request") : NULL;
  int bad = !c || add_b64(c, "key", key, klen) || add_b64(c, "range_end", end, elen);
  if (!bad && start_revision > 0)
    bad = add_i64(c, "start_revision", start_revision);
  return finish(out, r, bad);
}
