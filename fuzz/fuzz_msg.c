/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a message from the wire, as a consumer or a relay sees it.
 * lmq_msg_unmarshal (envelope, dispatcher, the type's body decoder), then
 * the default repack over 1, 2 and 3 channels (Insert split per row, Delete
 * by key, the rest by hash key), then marshal -> unmarshal of the message
 * and of every routed message.
 *
 * Properties: no crash, leak or sanitizer report; a message that decodes
 * marshals again, and the bytes decode (a relay must never emit what its
 * peers drop) to the same message: same base fields, hash keys, trace
 * context, and a body that marshals to the same bytes. An Insert split by
 * the repack keeps every row exactly once.
 *
 * The stream's lazy decode (lmq__msg_unmarshal_lazy: envelope now, body on
 * first access) agrees with the eager one: it accepts every input the
 * eager decode accepts, with the same fields and a body that marshals to
 * the same bytes; what it accepts beyond that fails at the body's first
 * access, and such a message never marshals (is never relayed).
 * (The stream sources are compiled into this target for that.)
 */
#include "config.h"
#include "fuzz.h"
#include "lmq_msg.pb-c.h"
#include "lmq_stream.h"
#include "stream/msg.h"

static lmq_dispatcher *disp;

static void same_msg(const lmq_tsmsg *a, const lmq_tsmsg *b) {
  FUZZ_CHECK(lmq_tsmsg_type(a) == lmq_tsmsg_type(b));
  FUZZ_CHECK(lmq_tsmsg_id(a) == lmq_tsmsg_id(b));
  FUZZ_CHECK(lmq_tsmsg_timestamp(a) == lmq_tsmsg_timestamp(b));
  FUZZ_CHECK(lmq_tsmsg_begin_ts(a) == lmq_tsmsg_begin_ts(b));
  FUZZ_CHECK(lmq_tsmsg_end_ts(a) == lmq_tsmsg_end_ts(b));
  FUZZ_CHECK(lmq_tsmsg_source_id(a) == lmq_tsmsg_source_id(b));
  size_t na, nb;
  const uint32_t *ka = lmq_tsmsg_hash_keys(a, &na);
  const uint32_t *kb = lmq_tsmsg_hash_keys(b, &nb);
  FUZZ_CHECK(na == nb && (!na || !memcmp(ka, kb, na * sizeof *ka)));
  const char *ta = lmq_tsmsg_traceparent(a), *tb = lmq_tsmsg_traceparent(b);
  FUZZ_CHECK(!ta == !tb && (!ta || !strcmp(ta, tb)));
}

/* Marshal m, decode the bytes, compare, and marshal the copy to the same
 * bytes (protobuf-c's encoding is deterministic). */
static void round_trip(const lmq_tsmsg *m) {
  unsigned char *out = NULL, *out2 = NULL;
  size_t len = 0, len2 = 0;
  FUZZ_CHECK(lmq_msg_marshal(&out, &len, disp, m) == 0);
  lmq_tsmsg *c = NULL;
  int rc = lmq_msg_unmarshal(&c, disp, out, len);
  if (rc)
    fprintf(stderr, "re-decode: %s\n", lmq_errmsg());
  FUZZ_CHECK(rc == 0);
  same_msg(m, c);
  FUZZ_CHECK(lmq_msg_marshal(&out2, &len2, disp, c) == 0);
  FUZZ_CHECK(len2 == len && !memcmp(out, out2, len));
  /* The producer's batch marshal writes the same bytes. */
  lmq_tsmsg *two[2] = {(lmq_tsmsg *)m, c};
  lmq_buf bufs[2];
  unsigned char *wire = NULL;
  FUZZ_CHECK(lmq__msg_marshal_many(&wire, bufs, disp, two, 2) == 0);
  FUZZ_CHECK(bufs[0].len == len && !memcmp(bufs[0].data, out, len));
  FUZZ_CHECK(bufs[1].len == len && !memcmp(bufs[1].data, out, len));
  free(wire);
  free(out);
  free(out2);
  lmq_tsmsg_unref(c);
}

static size_t insert_rows(const lmq_tsmsg *m) {
  const Lmqpb__InsertRequest *b = lmq_tsmsg_body(m);
  return b->num_rows        ? (size_t)b->num_rows
         : b->n_hash_values ? b->n_hash_values
                            : b->n_row_ids;
}

static void repack(lmq_tsmsg *m, size_t nch) {
  lmq_msg_pack in = {0};
  in.msgs = &m;
  in.nmsgs = 1;
  lmq_msg_pack *out[3];
  if (lmq_repack_apply(out, nch, NULL, NULL, &in))
    return;
  size_t rows = 0, routed = 0;
  for (size_t c = 0; c < nch; c++) {
    if (!out[c])
      continue;
    for (size_t i = 0; i < out[c]->nmsgs; i++) {
      lmq_tsmsg *r = out[c]->msgs[i];
      routed++;
      if (lmq_tsmsg_type(r) == LMQ_MSG_INSERT && r != m)
        rows += insert_rows(r);
      round_trip(r);
    }
    lmq_msg_pack_destroy(out[c]);
  }
  FUZZ_CHECK(routed >= 1);
  if (lmq_tsmsg_type(m) == LMQ_MSG_INSERT && routed > 1)
    FUZZ_CHECK(rows == insert_rows(m));
}

/* The lazy decode of the same bytes against the eager result e (NULL when
 * the eager decode failed). */
static void lazy_vs_eager(const char *buf, size_t size, const lmq_tsmsg *e) {
  /* Odd sizes carve the message from a slab, as a stream's reader does. */
  static lmq__slab_cur slab;
  lmq_tsmsg *l = NULL;
  int rc = lmq__msg_unmarshal_lazy(&l, disp, (size & 1) ? &slab : NULL, buf, size,
                                   "ch", "grp", 0x0102030405060708ull);
  if (rc == LMQ_ENOMEM)
    return;
  if (e)
    FUZZ_CHECK(rc == 0);
  if (rc) {
    FUZZ_CHECK(!l);
    return;
  }
  const lmq_msg_position *p = lmq_tsmsg_position(l);
  FUZZ_CHECK(p && !strcmp(p->channel, "ch") && !strcmp(p->group, "grp"));
  FUZZ_CHECK(p->msg_id_len == 8 && p->msg_id[0] == 1 && p->msg_id[7] == 8);
  FUZZ_CHECK(p->timestamp == lmq_tsmsg_end_ts(l));
  unsigned char *a = NULL, *b = NULL;
  size_t al = 0, bl = 0;
  if (e) {
    same_msg(e, l);
    FUZZ_CHECK(lmq_msg_marshal(&a, &al, disp, e) == 0);
    FUZZ_CHECK(lmq_msg_marshal(&b, &bl, disp, l) == 0);
    FUZZ_CHECK(al == bl && !memcmp(a, b, al));
    FUZZ_CHECK(lmq_tsmsg_body(l) != NULL || lmq_tsmsg_body(e) == NULL);
  } else {
    /* The envelope was fine, so the body is what the eager decode refused. */
    FUZZ_CHECK(lmq_tsmsg_body(l) == NULL);
    FUZZ_CHECK(lmq_tsmsg_body(l) == NULL); /* and stays refused */
    FUZZ_CHECK(lmq_msg_marshal(&b, &bl, disp, l) != 0);
  }
  free(a);
  free(b);
  lmq_tsmsg_unref(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!disp && lmq_dispatcher_create_proto(&disp))
    abort();
  char *buf = fuzz_copy(data, size);
  lmq_tsmsg *m = NULL;
  int erc = lmq_msg_unmarshal(&m, disp, buf, size);
  if (erc != LMQ_ENOMEM)
    lazy_vs_eager(buf, size, erc == 0 ? m : NULL);
  if (erc == 0) {
    FUZZ_CHECK(m);
    round_trip(m);
    for (size_t nch = 1; nch <= 3; nch++)
      repack(m, nch);
    lmq_tsmsg_unref(m);
  }
  free(buf);
  return 0;
}
