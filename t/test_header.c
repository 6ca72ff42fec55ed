/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* The public headers compile alone as strict C99 (see Makefile.am flags). */
#include "lmq.h"
#include "lmq_stream.h"
#include <criterion/criterion.h>

Test(header, strerror_covers_every_code) {
  cr_assert_str_eq(lmq_strerror(LMQ_OK), "success");
  for (int c = LMQ__ERR_LAST; c < 0; c++)
    cr_assert_str_neq(lmq_strerror(c), "unknown error", "code %d", c);
  cr_assert_str_eq(lmq_strerror(-9999), "unknown error");
}

Test(header, stream_header_declares_seed_type_numbers) {
  cr_assert_eq(LMQ_MSG_INSERT, 400);
  cr_assert_eq(LMQ_MSG_TIME_TICK, 1200);
  cr_assert_eq(LMQ_MSG_DATA_NODE_TT, 1208);
  cr_assert_str_eq(lmq_msg_type_name(LMQ_MSG_TIME_TICK), "TimeTick");
}
