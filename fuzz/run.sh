#!/bin/sh
# run.sh - `make fuzz`: build every fuzz target with clang's libFuzzer,
# AddressSanitizer and UBSan, then run each for FUZZ_SECONDS seconds,
# starting from its seed corpus and its crash inputs (which are thereby
# replayed first). New corpus entries go to fuzz/work/<target>/ in the build
# tree, findings to fuzz/work/<target>-crash-*; the run stops at the first
# finding with a non-zero status.
#
# Called by make with srcdir, FUZZ_CC, FUZZ_SECONDS, FUZZ_TARGETS,
# FUZZ_FLAGS (extra libFuzzer flags), FUZZ_LIB_SOURCES (the library's
# sources, compiled in so that targets reach internal functions),
# FUZZ_DEP_CFLAGS and FUZZ_DEP_LIBS in the environment.
set -eu
: "${FUZZ_CC:=clang}" "${FUZZ_SECONDS:=60}" "${FUZZ_FLAGS:=}" "${FUZZ_JOBS:=2}"
src=${srcdir:-.}
bin=fuzz/bin
work=fuzz/work
mkdir -p "$bin/obj" "$work"

if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
    "$FUZZ_CC" -x c -fsanitize=fuzzer -o "$bin/probe" - 2>/dev/null; then
  echo "fuzz: $FUZZ_CC cannot link -fsanitize=fuzzer (Debian: clang libclang-rt-14-dev)" >&2
  exit 1
fi
rm -f "$bin/probe"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -fno-omit-frame-pointer $SAN -std=gnu11 -pthread -DLMQ_BUILDING
  -I$src/include -I$src/src -I. -Isrc -Iproto -I$src/fuzz $FUZZ_DEP_CFLAGS"
export FUZZ_CC CFLAGS src bin

# The library, instrumented for coverage but without libFuzzer's main().
objs=""
list=""
for f in $FUZZ_LIB_SOURCES; do
  case $f in *.c) ;; *) continue ;; esac
  if [ -f "$f" ]; then p=$f; else p=$src/$f; fi
  o=$bin/obj/$(echo "$f" | tr '/' '_' | sed 's/\.c$/.o/')
  objs="$objs $o"
  list="$list $p:$o"
done
# shellcheck disable=SC2086
printf '%s\n' $list | xargs -P "$FUZZ_JOBS" -n 1 sh -c '
  p=${1%%:*} o=${1#*:}
  # shellcheck disable=SC2086
  $FUZZ_CC $CFLAGS -fsanitize=fuzzer-no-link -w -c "$p" -o "$o"' sh

status=0
for t in $FUZZ_TARGETS; do
  # shellcheck disable=SC2086
  $FUZZ_CC $CFLAGS -fsanitize=fuzzer -DFUZZ_TARGET="\"$t\"" "$src/fuzz/fuzz_$t.c" \
    $objs $FUZZ_DEP_LIBS -lstdc++ -o "$bin/$t"
done
for t in $FUZZ_TARGETS; do
  mkdir -p "$work/$t"
  log=$work/$t.log
  rc=0
  # shellcheck disable=SC2086
  "$bin/$t" -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$work/$t-" $FUZZ_FLAGS \
    "$work/$t" "$src/fuzz/corpus/$t" "$src/fuzz/crashes/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok, ${execs:-?} execs in ${FUZZ_SECONDS}s, $cov"
  else
    echo "fuzz $t: FAILED (status $rc) after ${execs:-?} execs; see $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz check failed|.*runtime error)' "$log" |
      head -n 5
    ls "$work/$t"-* 2>/dev/null | sed 's/^/  input: /' || true
    status=1
  fi
done
exit $status
