/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/* demo.h - parts of `lmq demo`. */
#ifndef LMQ_CLI_DEMO_H
#define LMQ_CLI_DEMO_H
/* The stream demo in data directory dir; 0 on success. */
int lmq__demo_stream(const char *dir);
#endif
