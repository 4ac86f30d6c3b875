#!/usr/bin/env bash
# The edge pipeline alone on one core (issue 11's goal: >= 2,000,000 readings/s): runs
# ganglion_edge_bench (bench/edge_pipeline.cc, built with the project) RUNS times pinned to
# CPU 0 for each series count, and prints each run and the medians of readings/s and CPU ns
# per reading. JOIN=1 measures the HVAC join pipeline instead (join → filter; SERIES counts
# room temperature and occupancy series together). FLOOD=1: every reading names a new device
# (SERIES is then max_series), idle series are forgotten, and each run also prints what was
# refused and forgotten and the longest sweep. DEVICE_LIMIT=RATE puts each reading through the
# per-device flood limit first (device_limit: { rate: RATE }; 0: none).
#   RUNS=5 READINGS=20000000 SERIES="1000 10000" [JOIN=1] [FLOOD=1] [DEVICE_LIMIT=1000] bench/edge_pipeline.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
BENCH_BIN=${BENCH_BIN:-$REPO/build/ganglion_edge_bench}
RUNS=${RUNS:-5}
READINGS=${READINGS:-20000000}
SERIES=${SERIES:-1000 10000}
JOIN=${JOIN:-0}
FLOOD=${FLOOD:-0}
DEVICE_LIMIT=${DEVICE_LIMIT:-0}
require_uints RUNS READINGS JOIN FLOOD DEVICE_LIMIT
[[ -x $BENCH_BIN ]] || die "$BENCH_BIN not built (cmake --build build --target ganglion_edge_bench)"
log_host
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
for series in $SERIES; do
  rates=() ns=()
  for ((i = 1; i <= RUNS; i++)); do
    line=$("${pin[@]}" "$BENCH_BIN" --readings "$READINGS" --series "$series" --rate-per-series 100 --join "$JOIN" --flood "$FLOOD" --device-limit "$DEVICE_LIMIT" | tr '\n' ' ')
    echo "run $i: $line"
    rates+=("$(sed -E 's/.*: ([0-9]+) readings\/s.*/\1/' <<<"$line")")
    ns+=("$(sed -E 's/.*, ([0-9.]+) ns CPU.*/\1/' <<<"$line")")
  done
  echo "series $series: median $(median "${rates[@]}") readings/s, $(median "${ns[@]}") ns CPU per reading (goal: 2000000 readings/s)"
done
