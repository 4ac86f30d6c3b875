#!/usr/bin/env bash
# A/B of two ganglion binaries on the LLM path: both in front of the same canned nginx provider
# (bench/nginx-llm-upstream.conf.in), servers pinned to CPU 0 and wrk to CPU 1, alternating
# rounds; prints requests/s and the gateway process's CPU time (user + system) per request.
#   OLD=/path/to/old/ganglion NEW=build/ganglion ROUNDS=5 DURATION=5 bench/ab_llm.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
OLD=${OLD:?set OLD to the baseline binary}
NEW=${NEW:-$REPO/build/ganglion}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
D=$(mktemp -d)
mkdir -p "$D/tmp"
free_port; UP=$FREE_PORT
free_port; P_OLD=$FREE_PORT
free_port; P_NEW=$FREE_PORT
sed -e "s|@DIR@|$D|g; s|@NOFILE@|65536|g; s|@PORT@|$UP|g; s|@VARS@||g" "$HERE/nginx-llm-upstream.conf.in" >"$D/nginx.conf"
taskset -c 0 /usr/sbin/nginx -p "$D" -c "$D/nginx.conf" &
NG=$!
for which in OLD NEW; do
  port=P_$which
  sed -e "s|@WORKERS@|1|; s|@PORT@|${!port}|; s|@UPSTREAM_PORT@|$UP|g; s|@VARS@||g" "$HERE/ganglion-llm.yaml.in" >"$D/$which.yaml"
done
taskset -c 0 "$OLD" serve --config "$D/OLD.yaml" 2>"$D/old.log" &
G_OLD=$!
taskset -c 0 "$NEW" serve --config "$D/NEW.yaml" 2>"$D/new.log" &
G_NEW=$!
trap 'kill $NG $G_OLD $G_NEW 2>/dev/null; rm -rf "$D"' EXIT
sleep 1
for r in $(seq "$ROUNDS"); do
  for which in OLD NEW; do
    port=P_$which; pid=G_$which
    t0=$(cpu_ticks "${!pid}")
    out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" -s "$HERE/llm_post.lua" "http://127.0.0.1:${!port}/" -- \
          "Authorization: Bearer sk-bench-key-123")
    t1=$(cpu_ticks "${!pid}")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    echo "round $r $which rps=$rps cpu_us_per_req=$(us_per_request "$((t1 - t0))" "$reqs")"
  done
done
