#!/usr/bin/env bash
# Store and forward (issue 11's goal: >= 100,000 readings/s to disk with batched fsync; one
# million queued readings drain in order), RUNS times each:
#   1. ganglion_queue_bench (bench/durable_queue.cc): a durable sink queue alone, in process;
#   2. bench/durable_ingest.py: the whole gateway, HTTP ingest → pipeline → durable sink with
#      the uplink down, then up (the gateway's CPU time per reading).
# Prints each run and the medians.
#   RUNS=3 READINGS=1000000 bench/durable_queue.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
BENCH_BIN=${BENCH_BIN:-$REPO/build/ganglion_queue_bench}
RUNS=${RUNS:-3}
READINGS=${READINGS:-1000000}
require_uints RUNS READINGS
[[ -x $BENCH_BIN ]] || die "$BENCH_BIN not built (cmake --build build --target ganglion_queue_bench)"
[[ -x $REPO/build/ganglion ]] || die "$REPO/build/ganglion not built (bash scripts/build.sh)"
log_host
rate() { sed -E "s/.*$1: ([0-9]+) readings\/s.*/\1/" <<<"$2"; }
cpu() { sed -E 's/.* ([0-9]+) ns (gateway )?CPU per reading.*/\1/' <<<"$1"; }
for what in queue gateway; do
  fill=() fill_ns=() drain=() drain_ns=()
  for ((i = 1; i <= RUNS; i++)); do
    if [[ $what == queue ]]; then
      out=$("$BENCH_BIN" --readings "$READINGS")
    else
      out=$(python3 "$HERE/durable_ingest.py" --readings "$READINGS")
    fi
    echo "$what run $i:"
    sed 's/^/  /' <<<"$out"
    f=$(grep '^fill:' <<<"$out") d=$(grep '^drain:' <<<"$out")
    fill+=("$(rate fill "$f")") fill_ns+=("$(cpu "$f")") drain+=("$(rate drain "$d")") drain_ns+=("$(cpu "$d")")
  done
  echo "$what: fill median $(median "${fill[@]}") readings/s, $(median "${fill_ns[@]}") ns CPU per reading;" \
    "drain median $(median "${drain[@]}") readings/s, $(median "${drain_ns[@]}") ns CPU per reading (goal: 100000 readings/s)"
done
