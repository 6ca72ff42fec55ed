#!/bin/sh
# Copyright (c) 2026 The lmq authors. SPDX-License-Identifier: MIT
# test_examples.sh - run the programs of examples/ (built by make check) as
# a user would; etcd_meta against an etcd started here on free ports (SKIP
# when no etcd binary is installed). TAP.
set -u
ex=${LMQ_EXAMPLES:-./examples}
tmp=$(mktemp -d)
etcd_pid=""
trap '[ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
run() { # description, program and arguments
  d=$1; shift
  if "$@" >"$tmp/out" 2>&1; then ok "$d"; else
    not_ok "$d (exit $?)"; sed 's/^/# /' "$tmp/out"; fi
}
run "produce_consume" "$ex/produce_consume" "$tmp/pc"
run "produce_consume again (resumes after the committed cursor)" \
  "$ex/produce_consume" "$tmp/pc"
run "ttstream" "$ex/ttstream" "$tmp/tt"

# The README's C snippet compiles as written (strict C99).
if [ -n "${LMQ_SRCDIR:-}" ]; then
  sed -n '/^```c$/,/^```$/p' "$LMQ_SRCDIR/README.md" | sed '1d;$d' >"$tmp/readme.c"
  if ${CC:-cc} -std=c99 -pedantic -Wall -Werror -I"$LMQ_SRCDIR/include" \
    -c "$tmp/readme.c" -o "$tmp/readme.o" 2>"$tmp/out"; then
    ok "the README's C snippet compiles"
  else
    not_ok "the README's C snippet compiles"; sed 's/^/# /' "$tmp/out"
  fi
fi

# bench/plot.gp draws its charts from the committed results.
if [ -n "${LMQ_SRCDIR:-}" ] && command -v gnuplot >/dev/null 2>&1; then
  mkdir "$tmp/plot"
  cp "$LMQ_SRCDIR"/bench/results/suite-*.csv "$LMQ_SRCDIR"/bench/results/suite-*.txt "$tmp/plot/"
  if (cd "$LMQ_SRCDIR/bench" && gnuplot -e "res='$tmp/plot'" plot.gp) >"$tmp/out" 2>&1 &&
    [ -s "$tmp/plot/msgs.png" ] && [ -s "$tmp/plot/devbytes.png" ] && [ -s "$tmp/plot/rss.png" ]; then
    ok "bench/plot.gp draws the committed results"
  else
    not_ok "bench/plot.gp draws the committed results"; sed 's/^/# /' "$tmp/out"
  fi
fi

# liblmq.so never links librocksdb (the backend is the module lmq_rocksdb.so).
if [ -n "${LMQ_MODULE_DIR:-}" ] && [ -f "$LMQ_MODULE_DIR/liblmq.so" ] &&
  command -v readelf >/dev/null 2>&1; then
  if readelf -d "$LMQ_MODULE_DIR/liblmq.so" | grep -q 'NEEDED.*rocksdb'; then
    not_ok "liblmq.so does not link librocksdb"
  else
    ok "liblmq.so does not link librocksdb"
  fi
fi

PATH="$PATH:/usr/sbin:/sbin"
if command -v etcd >/dev/null 2>&1; then
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  c=$(port) p=$(port) m=$(port)
  etcd --name ex --data-dir "$tmp/etcd" \
    --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
    --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
    --initial-cluster "ex=http://127.0.0.1:$p" --listen-metrics-urls "http://127.0.0.1:$m" \
    >"$tmp/etcd.log" 2>&1 &
  etcd_pid=$!
  i=0
  until curl -s "http://127.0.0.1:$c/health" 2>/dev/null | grep -q true; do
    i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
  done
  "$ex/etcd_meta" "$tmp/em" "etcd://127.0.0.1:$c/lmq/example" >"$tmp/out" 2>&1
  st=$?
  if [ $st -eq 77 ]; then
    n=$((n + 1)); echo "ok $n - etcd_meta # SKIP library built --without-etcd"
  elif [ $st -eq 0 ]; then ok "etcd_meta"
  else not_ok "etcd_meta (exit $st)"; sed 's/^/# /' "$tmp/out"; fi
  if [ $st -eq 0 ] && [ -n "${LMQ:-}" ]; then
    # The directory remembers its store: no shadow groups from the CLI.
    if $LMQ --json channels "$tmp/em" >"$tmp/out" 2>&1 &&
      python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))[0]["groups"]==1 else 1)' "$tmp/out"; then
      ok "a read-only open finds the etcd groups without --meta"
    else
      not_ok "a read-only open finds the etcd groups without --meta"; sed 's/^/# /' "$tmp/out"
    fi
    $LMQ produce "$tmp/em" events x >"$tmp/out" 2>&1
    st=$?
    if [ $st -eq 2 ] && grep -q "etcd://127.0.0.1:$c/lmq/example" "$tmp/out"; then
      ok "a write without --meta is refused, naming the store"
    else
      not_ok "a write without --meta is refused, naming the store (exit $st)"; sed 's/^/# /' "$tmp/out"
    fi
    if $LMQ --meta "etcd://127.0.0.1:$c/lmq/example" consume "$tmp/em" events audit \
      >"$tmp/out" 2>&1; then
      ok "with --meta the write works"
    else
      not_ok "with --meta the write works"; sed 's/^/# /' "$tmp/out"
    fi
  fi
else
  n=$((n + 1)); echo "ok $n - etcd_meta # SKIP no etcd binary"
fi
echo "1..$n"
[ "$failed" -eq 0 ]
