#!/usr/bin/env bash
# What per-key limits cost on the LLM hot path: the same chat completions through three
# Ganglion instances in front of one fixed-reply nginx upstream: a key with no limits, a key
# with rpm + tpm + budget kept in the process (state: none), and the same key with the limits
# shared on Redis (state.redis: one Lua reserve and one settle per call over loopback).
# Prints requests/s and latency per setup, medians of RUNS rounds, and ratios to "none".
#
# Environment (all optional):
#   RUNS=3 DURATION=5 CONNS=50 WARMUP=2 WORKERS=1   wrk -t1 -c$CONNS -d$DURATION per round,
#                       plus a c=1 round per setup for latency
#   PIN=0               1: taskset servers onto PIN_SERVER_CPUS (0), wrk onto PIN_WRK_CPUS (1)
#   GANGLION_BIN        default <repo>/build/ganglion
#   REDIS_BIN=redis-server NGINX_BIN=/usr/sbin/nginx WRK_BIN=wrk READY_TIMEOUT=20 KEEP_TMP=0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-1}
PIN=${PIN:-0}
PIN_SERVER_CPUS=${PIN_SERVER_CPUS:-0}
PIN_WRK_CPUS=${PIN_WRK_CPUS:-1}
READY_TIMEOUT=${READY_TIMEOUT:-20}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
REDIS_BIN=${REDIS_BIN:-redis-server}
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
KEEP_TMP=${KEEP_TMP:-0}

require_uints RUNS DURATION CONNS WARMUP WORKERS READY_TIMEOUT
(( RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && WORKERS >= 1 )) || die "RUNS, DURATION, CONNS, WORKERS must be >= 1"
require_load_tools
command -v "$REDIS_BIN" >/dev/null || die "redis-server not found (scripts/install-deps.sh installs it)"
[[ -x $GANGLION_BIN ]] || die "ganglion binary not found: $GANGLION_BIN"

raise_nofile
pin_setup
bench_start ganglion-llm-limits

log_host
log "$(tool_versions), $("$REDIS_BIN" --version | awk '{ print $1, $2, $3 }')"
log "temp dir: $TMP"

free_port; UP_PORT=$FREE_PORT
mkdir -p "$TMP/upstream/tmp"
render "$HERE/nginx-llm-upstream.conf.in" "$TMP/upstream/nginx.conf" "$TMP/upstream" "$UP_PORT" 0 1
nginx_cmd "$TMP/upstream"
launch upstream "$UP_PORT" "${NGINX_CMD[@]}" || die "upstream nginx failed to start"

free_port; REDIS_PORT=$FREE_PORT
launch redis "$REDIS_PORT" "${SERVER_PIN[@]}" "$REDIS_BIN" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
  --appendonly no --daemonize no || die "redis-server failed to start"

# One config per setup; the key is the same, only where its limits live differs.
gateway_config() {  # gateway_config SETUP PORT OUT
  local limits="" state=""
  case $1 in
    local) limits="rpm: 10000000, tpm: 1000000000000, budget: { usd: 1000000, period: day }" ;;
    redis) limits="rpm: 10000000, tpm: 1000000000000, budget: { usd: 1000000, period: day }"
           state="state: { redis: \"redis://127.0.0.1:$REDIS_PORT/0\" }" ;;
  esac
  cat >"$3" <<YAML
workers: $WORKERS
access_log: { enabled: false }
listeners: [ { name: public, address: "127.0.0.1:$2" } ]
providers:
  - { name: canned, kind: openai, base_url: "http://127.0.0.1:$UP_PORT/v1", api_key: sk-bench-provider-key }
models:
  - name: gpt-4o-mini
    targets: [ { provider: canned, model: gpt-4o-mini } ]
keys:
  - { name: bench, key: sk-bench-key-123 ${limits:+, $limits} }
$state
YAML
}

SETUPS=(none local redis)
declare -A PORT=()
for s in "${SETUPS[@]}"; do
  free_port; PORT[$s]=$FREE_PORT
  mkdir -p "$TMP/$s"
  gateway_config "$s" "${PORT[$s]}" "$TMP/$s/ganglion.yaml"
  ganglion_cmd "$TMP/$s/ganglion.yaml"
  launch "gw-$s" "${PORT[$s]}" "${GANGLION_CMD[@]}" || die "ganglion ($s) failed to start"
done
HDRS=("Authorization: Bearer sk-bench-key-123")

run() {  # run SETUP CONNS SECS OUT
  wrk_run "$4" "$2" "$3" -s "$HERE/llm_post.lua" "http://127.0.0.1:${PORT[$1]}/" -- "${HDRS[@]}"
}

for s in "${SETUPS[@]}"; do
  run "$s" 1 1 "$TMP/check-$s.txt"
  [[ $W_BAD == 0 && $W_RPS != nan ]] || die "ganglion ($s) does not answer 200: $(tail -n 5 "$TMP/check-$s.txt")"
done
if ((WARMUP > 0)); then
  for s in "${SETUPS[@]}"; do run "$s" "$CONNS" "$WARMUP" "$TMP/warmup-$s.txt"; done
fi

declare -A RPS=() P99=() C1P50=() C1P99=()
push() { local -n l_=$1; l_[$2]="${l_[$2]:-} $3"; }
echo
printf '%-6s %-7s %12s %10s %12s %12s %8s\n' round limits "requests/s" "p99 (us)" "c=1 p50 (us)" "c=1 p99 (us)" errors
for ((r = 1; r <= RUNS; r++)); do
  order=("${SETUPS[@]}")
  ((r % 2)) || order=(redis local none)
  for s in "${order[@]}"; do
    run "$s" "$CONNS" "$DURATION" "$TMP/r$r-$s.txt"
    local_rps=$W_RPS; local_p99=$W_P99_US; bad=$W_BAD
    run "$s" 1 "$DURATION" "$TMP/r$r-$s-c1.txt"
    bad=$((bad + W_BAD))
    push RPS "$s" "$local_rps"; push P99 "$s" "$local_p99"; push C1P50 "$s" "$W_P50_US"; push C1P99 "$s" "$W_P99_US"
    printf '%-6s %-7s %12s %10s %12s %12s %8s\n' "$r" "$s" "$local_rps" "$local_p99" "$W_P50_US" "$W_P99_US" "$bad"
  done
done

med() { local -n l_=$1; median ${l_[$2]:-}; }
echo
echo "-- medians of $RUNS rounds (c=$CONNS for requests/s and p99; c=1 for the latency columns)"
printf '%-7s %12s %10s %12s %12s %10s %14s\n' limits "requests/s" "p99 (us)" "c=1 p50 (us)" "c=1 p99 (us)" "rps ratio" "c=1 p50 added"
for s in "${SETUPS[@]}"; do
  printf '%-7s %12s %10s %12s %12s %10s %14s\n' "$s" "$(med RPS "$s")" "$(med P99 "$s")" "$(med C1P50 "$s")" \
    "$(med C1P99 "$s")" "$(ratio "$(med RPS "$s")" "$(med RPS none)")" \
    "$(awk -v a="$(med C1P50 "$s")" -v b="$(med C1P50 none)" 'BEGIN { printf "%+.0f us", a - b }')"
done
