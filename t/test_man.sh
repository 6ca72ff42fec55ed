#!/bin/sh
# Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT
# test_man.sh - every public function has a man page (docs/man/aliases
# names its family page, which lists it), and every lmq(1) command that
# --help names is documented in lmq.1 with examples. TAP.
set -u
src=${LMQ_SRCDIR:-.}
LMQ=${LMQ:-./lmq}
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
for fn in $(sed -n 's/^LMQ_API[^(]*[ *]\(lmq_[a-z0-9_]*\)(.*/\1/p' \
  "$src/include/lmq.h" "$src/include/lmq_stream.h"); do
  page=$(awk -v f="$fn" '$1 == f { print $2 }' "$src/docs/man/aliases")
  if [ -n "$page" ] && grep -q "$fn(" "$src/docs/man/$page.3"; then
    ok "$fn is in $page(3)"
  else
    not_ok "$fn has no man page"
  fi
done
for cmd in $($LMQ --help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' | sort -u); do
  if grep -q "^\.B[IR]* *\"\?$cmd\b" "$src/docs/man/lmq.1"; then ok "lmq $cmd is in lmq(1)"
  else not_ok "lmq $cmd is not in lmq(1)"; fi
done
if grep -q '^\.SH EXAMPLES' "$src/docs/man/lmq.1"; then ok "lmq(1) has EXAMPLES"
else not_ok "lmq(1) has no EXAMPLES"; fi
for p in "$src"/docs/man/lmq_*.3; do
  if grep -q '^\.SH EXAMPLES' "$p"; then ok "$(basename "$p") has EXAMPLES"
  else not_ok "$(basename "$p") has no EXAMPLES"; fi
done
echo "1..$n"
[ "$failed" -eq 0 ]
