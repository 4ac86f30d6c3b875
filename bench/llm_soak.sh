#!/usr/bin/env bash
# RSS soak of the LLM gateway: constant load (whole answers, streams, errors; bench/llm_soak.lua)
# against the canned nginx provider for MINUTES, sampling the gateway's RSS every SAMPLE_S
# seconds. Passes (exit 0) when the RSS at the end is within 5% of the largest RSS seen
# between minutes 5 and 10 (after warm-up, pools and caches filled).
#
#   MINUTES=60 SAMPLE_S=10 CONNS=16 WORKERS=1 PIN=1 bash bench/llm_soak.sh
#   GANGLION_BIN (default build/ganglion), NGINX_BIN, WRK_BIN, READY_TIMEOUT=10, KEEP_TMP=0
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
MINUTES=${MINUTES:-60}
SAMPLE_S=${SAMPLE_S:-10}
CONNS=${CONNS:-16}
WORKERS=${WORKERS:-1}
PIN=${PIN:-1}
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
READY_TIMEOUT=${READY_TIMEOUT:-10}
NOFILE=65536
pin_setup   # PIN=1: servers on CPU PIN_SERVER_CPUS (0), wrk on PIN_WRK_CPUS (1)
bench_start ganglion-llm-soak

free_port; UP_PORT=$FREE_PORT
free_port; GW_PORT=$FREE_PORT
mkdir -p "$TMP/upstream/tmp"
render "$HERE/nginx-llm-upstream.conf.in" "$TMP/upstream/nginx.conf" "$TMP/upstream" "$UP_PORT" 0 "$WORKERS"
nginx_cmd "$TMP/upstream"
launch upstream "$UP_PORT" "${NGINX_CMD[@]}" || { echo "nginx did not start" >&2; exit 1; }
mkdir -p "$TMP/ganglion"
render "$HERE/ganglion-llm.yaml.in" "$TMP/ganglion/ganglion.yaml" "$TMP/ganglion" "$GW_PORT" "$UP_PORT" "$WORKERS"
ganglion_cmd "$TMP/ganglion/ganglion.yaml"
launch ganglion "$GW_PORT" "${GANGLION_CMD[@]}" || { echo "ganglion did not start" >&2; exit 1; }
GW_PID=$STARTED_PID

echo "# LLM gateway RSS soak, $(date -u +%FT%TZ): ${MINUTES} min, wrk -c$CONNS, sample every ${SAMPLE_S}s, PIN=$PIN"
echo "# gateway pid $GW_PID, $("$GANGLION_BIN" --version 2>/dev/null | head -1)"
"${WRK_PIN[@]}" "$WRK_BIN" -t1 -c"$CONNS" -d"${MINUTES}m" --timeout 10s -s "$HERE/llm_soak.lua" \
  "http://127.0.0.1:$GW_PORT" >"$TMP/wrk.txt" 2>&1 &
WRK_PID=$!
PIDS+=("$WRK_PID")
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
