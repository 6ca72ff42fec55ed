/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * ttstream.c - a TtMsgStream over the embedded engine: a producer stream
 * writes messages of a user-defined type (with its own codec) to two
 * channels, then broadcasts a time tick; the TtMsgStream returns one pack
 * per tick with the messages whose timestamps it covers. Every call is
 * checked.
 *
 *   cc ttstream.c $(pkg-config --cflags --libs lmq) -o ttstream
 *   ./ttstream /tmp/example-streams
 */
#include <lmq.h>
#include <lmq_stream.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_TYPE 2000 /* a user type: above every built-in number */

/* The codec of TEXT_TYPE: the body is a NUL-terminated string. */
static int text_marshal(unsigned char **out, size_t *len, const void *body,
                        void *arg) {
  (void)arg;
  *len = strlen(body);
  if (!(*out = malloc(*len ? *len : 1)))
    return LMQ_ENOMEM;
  memcpy(*out, body, *len);
  return 0;
}

static int text_unmarshal(void **body, lmq_body_free_fn *body_free,
                          const void *data, size_t len, void *arg) {
  (void)arg;
  char *s = malloc(len + 1);
  if (!s)
    return LMQ_ENOMEM;
  memcpy(s, data, len);
  s[len] = '\0';
  *body = s;
  *body_free = free;
  return 0;
}

static int fail(const char *what, int rc) {
  fprintf(stderr, "%s: %s (%s)\n", what, lmq_strerror(rc), lmq_errmsg());
  return 1;
}

/* A TEXT_TYPE message at timestamp ts, routed by hash key `key`. */
static int text_msg(lmq_msg_pack *p, const char *text, uint64_t ts, uint32_t key) {
  size_t len = strlen(text);
  char *body = malloc(len + 1);
  if (body)
    memcpy(body, text, len + 1);
  lmq_tsmsg *m;
  int rc = body ? lmq_tsmsg_create(&m, TEXT_TYPE, body, free) : LMQ_ENOMEM;
  if (rc) {
    free(body);
    return rc;
  }
  lmq_tsmsg_set_timestamp(m, ts);
  if ((rc = lmq_tsmsg_set_hash_keys(m, &key, 1)) || (rc = lmq_msg_pack_append(p, m)))
    lmq_tsmsg_unref(m);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const char *chans[] = {"dml-0", "dml-1"};
  lmq_stream_factory *f = NULL;
  lmq_dispatcher *d = NULL;
  lmq_msgstream *prod = NULL, *tt = NULL;
  lmq_msg_pack *p = NULL;
  int rc, status = 1;
  lmq_msg_codec codec = {text_marshal, text_unmarshal, NULL};
  if ((rc = lmq_stream_factory_create(&f)) ||
      (rc = lmq_stream_factory_set(f, "engine.dir", argv[1])) ||
      (rc = lmq_dispatcher_create_proto(&d)) ||
      (rc = lmq_dispatcher_register(d, TEXT_TYPE, &codec)) ||
      (rc = lmq_stream_factory_set_dispatcher(f, d)) ||
      (rc = lmq_msgstream_create(&prod, f)) ||
      (rc = lmq_msgstream_as_producer(prod, chans, 2)) ||
      (rc = lmq_ttmsgstream_create(&tt, f)) ||
      (rc = lmq_msgstream_as_consumer(tt, chans, 2, "example", LMQ_SUB_EARLIEST))) {
    fail("setup", rc);
    goto out;
  }
  int packs = 0;
  for (uint64_t tick = 100; tick <= 300; tick += 100) {
    /* Four messages inside (tick - 100, tick], spread over both channels
     * by their hash keys, then the tick itself on every channel. */
    lmq_tsmsg *t = NULL;
    if ((rc = lmq_msg_pack_create(&p)))
      goto fail_rc;
    for (uint32_t i = 0; i < 4 && !rc; i++) {
      char text[64];
      snprintf(text, sizeof text, "event %u before tick %llu", i,
               (unsigned long long)tick);
      rc = text_msg(p, text, tick - 90 + i * 10, i);
    }
    if (rc || (rc = lmq_msgstream_produce(prod, p)))
      goto fail_rc;
    lmq_msg_pack_destroy(p);
    p = NULL;
    if ((rc = lmq_msg_pack_create(&p)) ||
        (rc = lmq_tsmsg_new_time_tick(&t, 0, tick, 1)))
      goto fail_rc;
    if ((rc = lmq_msg_pack_append(p, t))) {
      lmq_tsmsg_unref(t);
      goto fail_rc;
    }
    if ((rc = lmq_msgstream_broadcast(NULL, NULL, prod, p)))
      goto fail_rc;
    lmq_msg_pack_destroy(p);
    p = NULL;

    lmq_msg_pack *got;
    if ((rc = lmq_msgstream_consume(&got, tt, 5000)))
      goto fail_rc;
    printf("pack (%llu, %llu]: %zu messages\n", (unsigned long long)got->begin_ts,
           (unsigned long long)got->end_ts, got->nmsgs);
    for (size_t i = 0; i < got->nmsgs; i++)
      printf("  ts %llu  %s\n",
             (unsigned long long)lmq_tsmsg_timestamp(got->msgs[i]),
             (const char *)lmq_tsmsg_body(got->msgs[i]));
    int good = got->end_ts == tick && got->nmsgs == 4;
    lmq_msg_pack_destroy(got);
    if (!good) {
      fprintf(stderr, "unexpected pack at tick %llu\n", (unsigned long long)tick);
      goto out;
    }
    packs++;
  }
  status = packs == 3 ? 0 : 1;
  goto out;
fail_rc:
  fail("stream", rc);
out:
  lmq_msg_pack_destroy(p);
  lmq_msgstream_close(tt);
  lmq_msgstream_close(prod);
  lmq_stream_factory_destroy(f);
  lmq_dispatcher_destroy(d);
  return status;
}
