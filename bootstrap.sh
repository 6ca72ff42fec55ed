#!/bin/sh
# bootstrap.sh - set up a fresh Debian 12 machine and build lmq from scratch.
#   sh bootstrap.sh demo    install deps, build, run the demo (embedded engine)
#   sh bootstrap.sh test    install deps, build, run the whole test suite
#   sh bootstrap.sh build   install deps and build only
# Extra configure flags can be passed in LMQ_CONFIGURE_FLAGS.
set -eu
cd "$(dirname "$0")"
what=${1:-demo}

PKGS="build-essential pkg-config autoconf automake libtool libcurl4-openssl-dev
liblmdb-dev libxxhash-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev
libcriterion-dev libnats-dev librocksdb-dev etcd-server etcd-client
nats-server curl gnuplot-nox clang libclang-rt-14-dev llvm openssl valgrind
linux-perf"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PATH="$PATH:/usr/sbin:/sbin"
export PATH

jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f Makefile ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
  autoreconf -fi >/dev/null
  # shellcheck disable=SC2086
  ./configure -q --with-rocksdb ${LMQ_CONFIGURE_FLAGS:-}
fi
make -s -j"$jobs"

case "$what" in
build) ;;
demo)
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
  ./lmq demo "$dir"
  ;;
test)
  status=0
  make -s -j"$jobs" check >check.out 2>&1 || status=$?
  grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' check.out | sed 's/^/  /' | tail -n 400 || true
  for f in $(find . -name '*.log' -path './t/*'); do
    if grep -qE '^(not ok|Bail out!)' "$f" 2>/dev/null || grep -q '^# FAIL' "$f"; then
      echo "---- $f"; tail -n 60 "$f"
    fi
  done
  if [ $status -ne 0 ] && ! grep -q '^# TOTAL' check.out; then tail -n 60 check.out; fi
  pass=$(sed -n 's/^# PASS: *//p' check.out | head -n1)
  fail=$(sed -n 's/^# FAIL: *//p' check.out | head -n1)
  skip=$(sed -n 's/^# SKIP: *//p' check.out | head -n1)
  err=$(sed -n 's/^# ERROR: *//p' check.out | head -n1)
  fail=$(( ${fail:-0} + ${err:-0} ))
  echo "${pass:-0} passed, ${fail} failed, ${skip:-0} skipped"
  [ $status -eq 0 ] && [ "$fail" -eq 0 ] && [ "${pass:-0}" -gt 0 ]
  ;;
*) echo "usage: sh bootstrap.sh demo|test|build" >&2; exit 2 ;;
esac
