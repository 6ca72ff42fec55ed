/* Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT */
/*
 * check.h - the power-loss simulator's checker: opens a crash state with the
 * public API and compares it with the workload's event log up to the crash
 * point. See docs/crashsim.md for the rules.
 */
#ifndef PLSIM_CHECK_H
#define PLSIM_CHECK_H
#include <stddef.h>
#include <stdio.h>

/* Check the env in dir/env against events[0..len). Each failure is one
 * line "KIND<TAB>message" on out. Returns the number of failures. */
int pl_check(const char *dir, const char *events, size_t len, FILE *out);

#endif
