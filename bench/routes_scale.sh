#!/usr/bin/env bash
# Route matching at scale: one gateway with a single route against one with ROUTES routes (half
# of them with a header condition), both in front of the same fixed-reply nginx, the request
# matching the last route written. Servers pinned to CPU 0 and wrk to CPU 1, alternating rounds;
# prints requests/s and the gateway process's CPU time (user + system) per request, their
# medians and ratios, and how long `ganglion check` takes to load the large config.
#   ROUTES=10000 ROUNDS=5 DURATION=5 CONNS=50 bench/routes_scale.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
ROUTES=${ROUTES:-10000}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
require_uints ROUTES ROUNDS DURATION CONNS
(( ROUTES >= 2 )) || die "ROUTES must be at least 2"
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
require_load_tools
raise_nofile
PIN=1
pin_setup
bench_start ganglion-routes
READY_TIMEOUT=${READY_TIMEOUT:-30}

free_port; UP=$FREE_PORT
free_port; P_ONE=$FREE_PORT
free_port; P_MANY=$FREE_PORT
mkdir -p "$TMP/up/tmp"
render "$HERE/nginx-upstream.conf.in" "$TMP/up/nginx.conf" "$TMP/up" "$UP" 0 1
nginx_cmd "$TMP/up"
launch upstream "$UP" "${NGINX_CMD[@]}"

head_config() {  # head_config PORT
  cat <<YAML
workers: 1
access_log: { enabled: false }
listeners: [ { name: public, address: "127.0.0.1:$1" } ]
upstreams: [ { name: backend, targets: [ "127.0.0.1:$UP" ] } ]
routes:
YAML
}
{ head_config "$P_ONE"; echo '  - { name: all, match: { path_prefix: / }, upstream: backend }'; } >"$TMP/one.yaml"
{
  head_config "$P_MANY"
  awk -v n="$ROUTES" 'BEGIN {
    for (i = 0; i < n; i++) {
      if (i % 2 == 0)
        printf "  - { name: svc%05d, match: { path_prefix: /svc/%05d/, headers: { x-tenant: t%d } }, upstream: backend }\n", i, i, i
      else
        printf "  - { name: svc%05d, match: { path_prefix: /svc/%05d/ }, upstream: backend }\n", i, i
    }
  }'
} >"$TMP/many.yaml"
LAST=$(printf '/svc/%05d/item' $((ROUTES - 1)))

log_host
log "routes: 1 vs $ROUTES (half with a header condition); request: GET $LAST (the last route written)"
loads=()
for i in 1 2 3; do
  t0=$(date +%s%N)
  "$GANGLION_BIN" check --config "$TMP/many.yaml" >/dev/null
  loads+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
log "ganglion check of the $ROUTES-route config: median $(median "${loads[@]}") ms (${loads[*]})"

ganglion_cmd "$TMP/one.yaml"; launch one "$P_ONE" "${GANGLION_CMD[@]}"; PID_ONE=$STARTED_PID
ganglion_cmd "$TMP/many.yaml"; launch many "$P_MANY" "${GANGLION_CMD[@]}"; PID_MANY=$STARTED_PID
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P_MANY$LAST") == 200 ]] || die "the $ROUTES-route gateway does not answer $LAST"

declare -A RPS CPU
for r in $(seq "$ROUNDS"); do
  for which in one many; do
    if [[ $which == one ]]; then port=$P_ONE; pid=$PID_ONE; else port=$P_MANY; pid=$PID_MANY; fi
    t0=$(cpu_ticks "$pid")
    wrk_run "$TMP/wrk-$which-$r.out" "$CONNS" "$DURATION" "http://127.0.0.1:$port$LAST"
    t1=$(cpu_ticks "$pid")
    reqs=$(awk '/requests in/ { print $1 }' "$TMP/wrk-$which-$r.out")
    cpu=$(us_per_request "$((t1 - t0))" "$reqs")
    RPS[$which]+="$W_RPS "
    CPU[$which]+="$cpu "
    echo "round $r $which: $W_RPS req/s, $cpu µs CPU/request, $W_BAD bad"
  done
done
# shellcheck disable=SC2086
rps_one=$(median ${RPS[one]}); rps_many=$(median ${RPS[many]}); cpu_one=$(median ${CPU[one]}); cpu_many=$(median ${CPU[many]})
echo "medians: 1 route $rps_one req/s, $cpu_one µs/request; $ROUTES routes $rps_many req/s, $cpu_many µs/request"
echo "ratio ($ROUTES routes / 1 route): requests/s $(ratio "$rps_many" "$rps_one"), CPU per request $(ratio "$cpu_many" "$cpu_one")"
