#!/usr/bin/env bash
# RSS soak of the LLM gateway: constant load (whole answers, streams, errors; bench/llm_soak.lua)
# against the canned nginx provider for MINUTES, sampling the gateway's RSS every SAMPLE_S
# seconds. Passes (exit 0) when the RSS at the end is within 5% of the largest RSS seen
# between minutes 5 and 10 (after warm-up, pools and caches filled).
#
#   MINUTES=60 SAMPLE_S=10 CONNS=16 WORKERS=1 PIN=1 bash bench/llm_soak.sh
#   GANGLION_BIN (default build/ganglion), NGINX_BIN, WRK_BIN, KEEP_TMP=0
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
MINUTES=${MINUTES:-60}
SAMPLE_S=${SAMPLE_S:-10}
CONNS=${CONNS:-16}
WORKERS=${WORKERS:-1}
PIN=${PIN:-1}
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
NOFILE=65536
TMP=$(mktemp -d /tmp/ganglion-llm-soak.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Backgrounded, this runs in a subshell that exec turns into the program itself, so $! is its pid.
on_cpu() { if [ "$PIN" = 1 ]; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }
render() {  # TEMPLATE OUT DIR PORT UPSTREAM_PORT
  sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@UPSTREAM_PORT@|$5|g" -e "s|@WORKERS@|$WORKERS|g" \
    -e "s|@NOFILE@|$NOFILE|g" "$1" >"$2"
}
wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

UP_PORT=$(free_port)
GW_PORT=$(free_port)
mkdir -p "$TMP/upstream/tmp"
render "$HERE/nginx-llm-upstream.conf.in" "$TMP/upstream/nginx.conf" "$TMP/upstream" "$UP_PORT" 0
on_cpu 0 "$NGINX_BIN" -c "$TMP/upstream/nginx.conf" -p "$TMP/upstream" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$UP_PORT" || { echo "nginx did not start" >&2; exit 1; }
render "$HERE/ganglion-llm.yaml.in" "$TMP/ganglion.yaml" "$TMP" "$GW_PORT" "$UP_PORT"
on_cpu 0 "$GANGLION_BIN" serve --config "$TMP/ganglion.yaml" >"$TMP/ganglion.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
wait_port "$GW_PORT" || { echo "ganglion did not start" >&2; cat "$TMP/ganglion.log" >&2; exit 1; }

echo "# LLM gateway RSS soak, $(date -u +%FT%TZ): ${MINUTES} min, wrk -c$CONNS, sample every ${SAMPLE_S}s, PIN=$PIN"
echo "# gateway pid $GW_PID, $("$GANGLION_BIN" --version 2>/dev/null | head -1)"
on_cpu 1 "$WRK_BIN" -t1 -c"$CONNS" -d"${MINUTES}m" --timeout 10s -s "$HERE/llm_soak.lua" \
  "http://127.0.0.1:$GW_PORT" >"$TMP/wrk.txt" 2>&1 &
WRK_PID=$!
PIDS+=($WRK_PID)
start=$(date +%s)
baseline=0
echo "elapsed_s rss_kb"
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep "$SAMPLE_S"
  kill -0 "$GW_PID" 2>/dev/null || { echo "gateway died" >&2; exit 1; }
  now=$(( $(date +%s) - start ))
  rss=$(rss_kb "$GW_PID")
  echo "$now $rss"
  if [ "$now" -ge 300 ] && [ "$now" -le 600 ] && [ "$rss" -gt "$baseline" ]; then baseline=$rss; fi
done
final=$(rss_kb "$GW_PID")
cat "$TMP/wrk.txt"
[ "$baseline" -gt 0 ] || baseline=$final  # runs shorter than 10 minutes: compare with the end only
growth=$(awk -v b="$baseline" -v f="$final" 'BEGIN { printf "%.2f", (f - b) * 100 / b }')
echo "RSS baseline (max over minutes 5-10): ${baseline} kB; at the end: ${final} kB; growth ${growth}% (limit 5%)"
awk -v g="$growth" 'BEGIN { exit !(g <= 5) }'
