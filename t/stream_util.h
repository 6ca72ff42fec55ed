/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* stream_util.h - helpers shared by the stream tests. */
#ifndef LMQ_T_STREAM_UTIL_H
#define LMQ_T_STREAM_UTIL_H
#include "lmq_stream.h"

/* A factory over a fresh env in dir (SYNC_NONE: these tests are not about
 * durability). */
lmq_stream_factory *su_factory(const char *dir);
/* An Insert of one row at ts with hash key key and message ID id. */
lmq_tsmsg *su_insert(int64_t id, uint64_t ts, uint32_t key);
/* Produce one message through the default repack (the pack takes m). */
void su_produce(lmq_msgstream *p, lmq_tsmsg *m);
/* Broadcast a TimeTick at ts to every producer channel. */
void su_tick(lmq_msgstream *p, uint64_t ts);
/* Consume one pack (asserts success within 5 s). */
lmq_msg_pack *su_pack(lmq_msgstream *s);
#endif
