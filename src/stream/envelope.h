/*
 * envelope.h - writing the message envelope (lmqpb.Envelope) by hand.
 *
 * marshal used to pack the body into a buffer, pack the envelope around a
 * copy of it into a second buffer, and free the first: two allocations, a
 * copy and protobuf-c's generic walk of the envelope per message. The
 * envelope's fields are fixed and the body is its last field, so its bytes
 * can be written directly and the body packed in place after them. The
 * bytes are exactly what protobuf-c writes for the same values (fields in
 * number order, proto3 zero values omitted, hash keys packed); decoding
 * stays protobuf-c's, and fuzz/fuzz_msg.c checks the round trip.
 */
#ifndef LMQ_STREAM_ENVELOPE_H
#define LMQ_STREAM_ENVELOPE_H

#include "stream/msg.h"

#include <stddef.h>

/* Bytes of m's envelope before the body bytes, for a body of blen bytes
 * (the body's tag and length included). */
size_t lmq__envelope_head_size(const lmq_tsmsg *m, size_t blen);
/* Write those bytes to out (lmq__envelope_head_size(m, blen) of room);
 * returns how many were written. Pure: no allocation, no I/O. */
size_t lmq__envelope_head_write(unsigned char *out, const lmq_tsmsg *m,
                                size_t blen);

/*
 * Reading the envelope without protobuf-c (the stream's receive path). It
 * accepts exactly the bytes protobuf-c's lmqpb__envelope__unpack accepts,
 * followed by the field-number check lmq_msg_unmarshal makes, and gives the
 * same values: fields in any order, the last of a repeated singular field
 * wins (a second msg_base replaces the first, as protobuf-c's merge of
 * proto3 sub-messages does), hash keys packed or not and concatenated,
 * unknown fields skipped by wire type. fuzz/fuzz_msg.c holds it to that.
 * Pure: no allocation, no I/O.
 */
typedef struct lmq__envelope_view {
  int has_base;
  uint32_t type; /* MsgBase.msg_type, an int32 on the wire */
  int64_t id;
  uint64_t timestamp;
  int64_t source_id;
  uint64_t begin_ts, end_ts;
  size_t nkeys;               /* hash keys (read them with _keys) */
  const unsigned char *keys_at; /* the last hash-key field's value */
  size_t keys_vlen, keys_hdr;
  unsigned keys_wt, keys_fields;
  const unsigned char *tp;    /* traceparent bytes (not NUL-terminated) */
  size_t tplen;
  const unsigned char *body;  /* body bytes, inside the input */
  size_t bodylen;
} lmq__envelope_view;

/* 0 and *v, or LMQ_ECORRUPT (with lmq_errmsg) for bytes protobuf-c would
 * refuse, or that carry field number 0 or one above 2^29-1. */
int lmq__envelope_parse(lmq__envelope_view *v, const void *data, size_t len);
/* Write the v->nkeys hash keys of data (which _parse accepted into v) to
 * out. */
void lmq__envelope_keys(uint32_t *out, const lmq__envelope_view *v,
                        const void *data, size_t len);

#endif
