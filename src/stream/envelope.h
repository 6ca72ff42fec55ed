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

#endif
