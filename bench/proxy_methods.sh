#!/usr/bin/env bash
# Ganglion vs nginx (and HAProxy when installed) as reverse proxies, by request kind: GET, a
# POST with a 220-byte JSON body, and the same body as a chunked upload. All in front of the
# same fixed-reply nginx; servers pinned to CPU 0, wrk to CPU 1; rounds alternate. Prints each
# proxy's requests/s and CPU time (user + system of all its processes) per request, medians
# and ratios to nginx.
#   RUNS=3 DURATION=5 CONNS=50 MODES="get post chunked" bench/proxy_methods.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
MODES=${MODES:-get post chunked}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
HAPROXY_BIN=${HAPROXY_BIN:-$(command -v haproxy || true)}
READY_TIMEOUT=${READY_TIMEOUT:-10}
require_uints RUNS DURATION CONNS
require_load_tools
raise_nofile
PIN=1
pin_setup
bench_start ganglion-methods

free_port; UP=$FREE_PORT
mkdir -p "$TMP/up/tmp"
render "$HERE/nginx-upstream.conf.in" "$TMP/up/nginx.conf" "$TMP/up" "$UP" 0 1
nginx_cmd "$TMP/up"
launch upstream "$UP" "${NGINX_CMD[@]}"

declare -A PORT PID
free_port; PORT[nginx]=$FREE_PORT
mkdir -p "$TMP/nginx/tmp"
NGX_WORKER_CONNS=4096
render "$HERE/nginx-proxy.conf.in" "$TMP/nginx/nginx.conf" "$TMP/nginx" "${PORT[nginx]}" "$UP" 1
nginx_cmd "$TMP/nginx"
launch nginx "${PORT[nginx]}" "${NGINX_CMD[@]}"; PID[nginx]=$STARTED_PID

free_port; PORT[ganglion]=$FREE_PORT
mkdir -p "$TMP/ganglion"
render "$HERE/ganglion.yaml.in" "$TMP/ganglion/ganglion.yaml" "$TMP/ganglion" "${PORT[ganglion]}" "$UP" 1
ganglion_cmd "$TMP/ganglion/ganglion.yaml"
launch ganglion "${PORT[ganglion]}" "${GANGLION_CMD[@]}"; PID[ganglion]=$STARTED_PID

PROXIES=(nginx ganglion)
if [[ -n $HAPROXY_BIN ]]; then
  free_port; PORT[haproxy]=$FREE_PORT
  mkdir -p "$TMP/haproxy"
  cat >"$TMP/haproxy/haproxy.cfg" <<CFG
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend public
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend upstream
backend upstream
  server up 127.0.0.1:$UP
CFG
  launch haproxy "${PORT[haproxy]}" "${SERVER_PIN[@]}" "$HAPROXY_BIN" -db -f "$TMP/haproxy/haproxy.cfg"
  PID[haproxy]=$STARTED_PID
  PROXIES+=(haproxy)
fi


log_host
log "$(tool_versions)${HAPROXY_BIN:+, haproxy: $("$HAPROXY_BIN" -v 2>/dev/null | awk 'NR==1 { print $3 }')}"
log "params: RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS, one worker each, servers on CPU 0, wrk on CPU 1"
declare -A RPS CPU
proxy_args() {  # proxy_args MODE WHO -> ARGS
  ARGS=("http://127.0.0.1:${PORT[$2]}/")
  [[ $1 != get ]] && ARGS=(-s "$HERE/proxy_post.lua" "${ARGS[@]}" -- "$1")
  return 0
}
ab_rounds proxy_args "${PROXIES[@]}"
ab_summary "${PROXIES[@]}"
