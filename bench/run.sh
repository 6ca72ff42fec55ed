#!/bin/sh
# run.sh - build and run the side-by-side suite, then draw the charts.
#   sh bench/run.sh [quick|full] [extra bench_suite flags...]
# Needs a tree configured with --with-rocksdb (sh bootstrap.sh build does it).
# Results land in bench/results/ (suite-<time>.{txt,csv,json}, latest.dat,
# *.png when gnuplot is installed).
set -eu
cd "$(dirname "$0")/.."
mode=${1:-quick}
[ $# -gt 0 ] && shift
case "$mode" in
quick) flags=-q ;;
full) flags= ;;
*) echo "usage: sh bench/run.sh [quick|full] [bench_suite flags]" >&2; exit 2 ;;
esac
[ -f Makefile ] || sh bootstrap.sh build
make -s -j2 bench/bench_suite
mkdir -p bench/results
# The RocksDB backend is a module (lmq_rocksdb.so): use the one just built
# rather than an installed one.
LMQ_MODULE_DIR=${LMQ_MODULE_DIR:-$PWD/.libs}
export LMQ_MODULE_DIR
# shellcheck disable=SC2086
./bench/bench_suite $flags -o bench/results "$@"
if command -v gnuplot >/dev/null 2>&1; then
  (cd bench && gnuplot plot.gp) && echo "charts: bench/results/*.png"
else
  echo "gnuplot not found (Debian: gnuplot-nox): no charts"
fi
