#!/usr/bin/env bash
# One Ganglion binary against another on the proxy path (GET, and POST with a 220-byte JSON
# body), side by side in front of the same fixed-reply nginx: servers pinned to CPU 0, wrk to
# CPU 1, rounds alternating OLD/NEW so drift hits both. Prints req/s and the gateway's CPU
# time per request (user + system over requests) per round, then the medians.
#   OLD=/tmp/old/build/ganglion [NEW=build/ganglion] ROUNDS=5 DURATION=5 MODES="get post" bench/ab_proxy.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
source "$HERE/lib.sh"
OLD=${OLD:?set OLD to the baseline binary}
NEW=${NEW:-$REPO/build/ganglion}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
MODES=${MODES:-get post}
require_uints ROUNDS DURATION

NOFILE=65536
D=$(mktemp -d)
mkdir -p "$D/up/tmp" "$D/OLD" "$D/NEW"
free_port
UP=$FREE_PORT
render "$HERE/nginx-upstream.conf.in" "$D/up/nginx.conf" "$D/up" "$UP" 0 1
taskset -c 0 /usr/sbin/nginx -p "$D/up/" -c "$D/up/nginx.conf" -e "$D/up/error.log" &
NG=$!
declare -A PORT PID
for which in OLD NEW; do
  free_port
  PORT[$which]=$FREE_PORT
  render "$HERE/ganglion.yaml.in" "$D/$which/ganglion.yaml" "$D/$which" "${PORT[$which]}" "$UP" 1
done
bin_of() { [[ $1 == OLD ]] && echo "$OLD" || echo "$NEW"; }
for which in OLD NEW; do
  taskset -c 0 "$(bin_of $which)" serve --config "$D/$which/ganglion.yaml" 2>"$D/$which/log" &
  PID[$which]=$!
done
trap 'kill $NG ${PID[OLD]} ${PID[NEW]} 2>/dev/null; rm -rf "$D"' EXIT
for which in OLD NEW; do wait_port "${PORT[$which]}" "${PID[$which]}" 5 || die "$which did not start: $(cat "$D/$which/log")"; done
wait_port "$UP" "$NG" 5 || die "nginx did not start"

declare -A RPS CPU
for mode in $MODES; do
  for r in $(seq "$ROUNDS"); do
    for which in OLD NEW; do
      args=(-t1 -c50 -d"${DURATION}s" "http://127.0.0.1:${PORT[$which]}/")
      [[ $mode != get ]] && args=(-s "$HERE/proxy_post.lua" "${args[@]}" -- "$mode")
      t0=$(cpu_ticks "${PID[$which]}")
      out=$(taskset -c 1 wrk "${args[@]}")
      t1=$(cpu_ticks "${PID[$which]}")
      reqs=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      cpu=$(us_per_request "$((t1 - t0))" "$reqs")
      echo "$mode round $r $which rps=$rps cpu_us_per_req=$cpu"
      RPS[$mode/$which]+="$rps "
      CPU[$mode/$which]+="$cpu "
    done
  done
done
echo
printf '%-6s %-4s %12s %16s\n' mode bin "median req/s" "median µs CPU/req"
for mode in $MODES; do
  for which in OLD NEW; do
    # shellcheck disable=SC2086  # the lists are space-separated numbers
    printf '%-6s %-4s %12s %16s\n' "$mode" "$which" "$(median ${RPS[$mode/$which]})" "$(median ${CPU[$mode/$which]})"
  done
done
