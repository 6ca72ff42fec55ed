/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* stream.h - internals shared by msgstream.c, ttstream.c, factory.c and
 * chansvc.c (not installed). */
#ifndef LMQ_STREAM_STREAM_H
#define LMQ_STREAM_STREAM_H

#include "lmq_stream.h"
#include "stream/backend.h"
#include "stream/msg.h"

#include <stdatomic.h>

/* What a factory's streams share: the backend and the dispatcher. Freed
 * with its last reference. */
typedef struct lmq_stream_ctx {
  atomic_uint refs;
  lmq_backend *be;
  lmq_dispatcher *disp;
  int own_disp;
  size_t rbuf; /* receive_buffer */
} lmq_stream_ctx;

void lmq__ctx_unref(lmq_stream_ctx *c);
/* The factory's context, opened on first use, with a new reference. */
int lmq__factory_ctx(lmq_stream_ctx **out, lmq_stream_factory *f);
/* The channel service's metadata store for backend be (factory.c): the
 * factory's meta.uri, else the backend's own store, else an embedded store
 * in engine.dir/lmq-meta. *owned says whether the caller must close it
 * (lmq__meta_file_close(*out, *file_env)). */
int lmq__factory_meta(lmq_meta **out, void **file_env, int *owned,
                      lmq_stream_factory *f, lmq_backend *be);

/* Per consumed channel. */
typedef struct lmq_schan {
  char *name;
  lmq_bsub *sub;
  int fd;
  int in_set; /* fd registered in the stream's epoll set */
  /* A batch the backend handed over whose messages were not all taken
   * (a failure in the middle): its rest is read first next time, so the
   * cursor having moved past it loses nothing. */
  lmq_bbatch pend;
  size_t pend_at;    /* messages before it are taken for good */
  size_t pend_taken; /* taken by the consume in progress (>= pend_at) */
  int has_pend;
  /* TtMsgStream only */
  lmq_tsmsg **inq; /* decoded, not yet processed (read ahead) */
  size_t qhead, qlen, qcap;
  int has_tick;       /* a tick > last_ts was processed since last emit */
  uint64_t tick;      /* its timestamp */
  lmq_msg_position tick_pos; /* position of the last tick processed */
  int skipping;       /* after a seek: drop messages with end_ts <= skip_ts */
  uint64_t skip_ts;
  lmq_msg_position start; /* where the next pack begins on this channel */
  int has_start;
} lmq_schan;

struct lmq_msgstream {
  int tt;
  lmq_stream_ctx *ctx;
  /* producer */
  char **pch;
  lmq_channel **phand; /* per producer channel (engine backend only) */
  size_t npch;
  lmq_repack_fn repack;
  void *repack_arg;
  /* consumer */
  char *subname;
  lmq_schan *ch;
  size_t nch;
  size_t rr; /* round-robin start for the plain consumer */
  lmq__slab_cur slab; /* consumed messages are carved from it (slab.h) */
  int epfd, readyfd;
  /* TtMsgStream */
  lmq_tsmsg **buf; /* pending non-tick messages in arrival order */
  size_t nbuf, capbuf;
  uint64_t last_ts; /* end_ts of the last emitted pack */
};

/* Read up to the receive buffer from channel c (timeout 0) and decode each
 * message with its position; calls fn(arg, msg) per message, which takes
 * the reference. Corrupt messages are skipped. Returns the number read
 * from the backend (>= 0) or an error. */
void lmq__stream_pend_drop(lmq_msgstream *s, size_t c);
/* After lmq__stream_read: keep what it took (take), or give it back so the
 * next read delivers it again (untake), when building the pack failed. */
void lmq__stream_take(lmq_msgstream *s, size_t c);
void lmq__stream_untake(lmq_msgstream *s, size_t c);
int lmq__stream_read(lmq_msgstream *s, size_t c,
                     int (*fn)(void *arg, lmq_tsmsg *m), void *arg);
/* Wait up to timeout_ms for the epoll set (0: no wait). 1 ready, 0 not. */
int lmq__stream_wait(lmq_msgstream *s, int timeout_ms);
/* Add/remove channel c's fd to/from the epoll set. */
int lmq__stream_watch(lmq_msgstream *s, size_t c, int on);
void lmq__stream_ready(lmq_msgstream *s, int on);

/* TtMsgStream (ttstream.c). */
int lmq__tt_consume(lmq_msg_pack **out, lmq_msgstream *s, int timeout_ms);
int lmq__tt_seek(lmq_msgstream *s, const lmq_msg_position *p, size_t n);
void lmq__tt_clear(lmq_msgstream *s);

/* Remaining milliseconds until deadline_ns (monotonic), for timeouts. */
int lmq__remaining_ms(uint64_t deadline_ns, int timeout_ms);

#endif
