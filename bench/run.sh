#!/usr/bin/env bash
# Builds Runnel's benchmark harness in release and runs it, writing bench/RESULTS.md.
#
#   bench/run.sh            every part
#   bench/run.sh engine     the machine's limits and the embedded engine, in-process
#
# Everything runs on this machine against 127.0.0.1, bounded in time; scratch data lives in
# bench/scratch (on the project's disk, as a data directory would, not on /tmp) and is removed
# at the end. bench/ANALYSIS.md, written by hand for a given run, is appended to the results.
# RUNNEL_BENCH_BIN=path runs an already built runnel-bench instead of building it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
part=${1:-all}
case "$part" in
  all|engine) ;;
  *) echo "usage: bench/run.sh [all|engine]" >&2; exit 2 ;;
esac

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
scratch=$root/bench/scratch
mkdir -p "$scratch"
out=$(mktemp "$scratch/results.XXXXXX")

cleanup() {
  rm -f "$out"
}
trap cleanup EXIT

bench=${RUNNEL_BENCH_BIN:-}
if [[ -z $bench ]]; then
  echo "building in release…" >&2
  cargo build --release --quiet -p runnel-bench
  bench=$CARGO_TARGET_DIR/release/runnel-bench
fi

{
  echo "# Benchmark results"
  echo
  echo "Produced by \`bench/run.sh $part\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
  echo "$(nproc) cores, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM."
  echo "The machine was **shared** with other work (builds and tests) while this ran; the load"
  echo "average before the run was $(cut -d' ' -f1-3 /proc/loadavg), and each table shows the CPU"
  echo "the rest of the machine used during each phase (\"CPU others\", in cores). Figures are"
  echo "from one run; the ratios to the machine's own limits, measured in the same run, are what"
  echo "carry over to another machine."
  echo
  if [[ $part == all || $part == engine ]]; then
    "$bench" engine --dir "$scratch"
    echo
  fi
  if [[ -f bench/ANALYSIS.md ]]; then
    cat bench/ANALYSIS.md
  fi
} > "$out"

mv "$out" bench/RESULTS.md
echo "wrote bench/RESULTS.md" >&2
