/* nats_pub.h - pipelined JetStream publishing for the NATS backend: a
 * produce call's messages go out asynchronously and the call waits for all
 * their acknowledgements (one round trip per call, not per message).
 *
 * Guarantees of one lmq__npub_publish call (see nats_pub.c for how):
 *  - the messages stored are a prefix of the call's messages, in the call's
 *    order (another producer's messages may sit between them);
 *  - a message is stored at most once per call, even when it is sent again
 *    after a lost acknowledgement or a leader change (every message carries
 *    a Nats-Msg-Id unique to this publisher; the stream's duplicate window
 *    drops a second copy);
 *  - the call returns within its budget, and ids[] says exactly which
 *    messages were stored (their stream sequences; 0 for the others). */
#ifndef LMQ_STREAM_NATS_PUB_H
#define LMQ_STREAM_NATS_PUB_H

#include "lmq.h"

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lmq_npub lmq_npub;

/* The outcome of a call that did not store everything: the failure of the
 * first message not stored. */
typedef struct lmq_npub_fail {
  size_t index;     /* first message not stored (= number stored) */
  natsStatus st;    /* its libnats status */
  jsErrCode je;     /* and JetStream error code (0: none) */
  char text[160];   /* the server's or library's text */
} lmq_npub_fail;

/* A publisher over nc (borrowed; it must outlive the publisher). Errors:
 * LMQ_ENOMEM, LMQ_EUNAVAIL. */
int lmq__npub_create(lmq_npub **out, natsConnection *nc);
/* Free it. Call after every lmq__npub_publish has returned; nc may already
 * be closed. NULL is accepted. */
void lmq__npub_destroy(lmq_npub *p);

/*
 * Publish msgs[0..n) to subject subj, which stream `stream` must store, and
 * wait up to budget_ms for their acknowledgements, sending again what was
 * refused for a transient reason (no responders during a leader election,
 * timeouts, a lost connection). ids (may be NULL) receives each message's
 * stream sequence, 0 for those not stored. Returns 1 when all were stored,
 * 0 when not (then *fail describes the first one missing), or a negative
 * LMQ_ENOMEM. Thread-safe: concurrent calls use separate contexts.
 */
int lmq__npub_publish(lmq_npub *p, const char *subj, const char *stream,
                      const lmq_buf *msgs, size_t n, uint64_t *ids, int budget_ms,
                      lmq_npub_fail *fail);

#endif
