#!/usr/bin/env bash
# Ganglion vs nginx serving static files from one directory: a 1 KiB file, a 64 KiB file, and
# a 304 (If-None-Match with the file's current ETag). One worker each, servers pinned to CPU 0,
# wrk to CPU 1, rounds alternating. Prints requests/s and CPU time (user + system of every
# process and thread: Ganglion's blocking pool included) per request, medians and ratios.
#   RUNS=3 DURATION=5 CONNS=50 MODES="small large notmodified" bench/static_files.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
MODES=${MODES:-small large notmodified}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
READY_TIMEOUT=${READY_TIMEOUT:-10}
require_uints RUNS DURATION CONNS
require_load_tools
raise_nofile
PIN=1
pin_setup
bench_start ganglion-static

mkdir -p "$TMP/www"
chmod 755 "$TMP"  # nginx workers started by root run as nobody
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 >"$TMP/www/small.txt"
head -c 65536 /dev/urandom >"$TMP/www/large.bin"

declare -A PORT PID
free_port; PORT[nginx]=$FREE_PORT
mkdir -p "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path       $TMP/nginx/tmp/proxy;
    fastcgi_temp_path     $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path       $TMP/nginx/tmp/uwsgi;
    scgi_temp_path        $TMP/nginx/tmp/scgi;
    keepalive_requests 100000;
    keepalive_timeout  300s;
    types { text/plain txt; application/octet-stream bin; }
    server {
        listen 127.0.0.1:${PORT[nginx]} backlog=4096;
        location /files/ {
            alias $TMP/www/;
            add_header Cache-Control no-cache;
        }
    }
}
CONF
nginx_cmd "$TMP/nginx"
launch nginx "${PORT[nginx]}" "${NGINX_CMD[@]}"; PID[nginx]=$STARTED_PID

free_port; PORT[ganglion]=$FREE_PORT
mkdir -p "$TMP/ganglion"
cat >"$TMP/ganglion/ganglion.yaml" <<CONF
workers: 1
access_log: { enabled: false }
listeners:
  - name: public
    address: 127.0.0.1:${PORT[ganglion]}
routes:
  - name: files
    match: { path_prefix: /files/ }
    rewrite: { path_prefix: / }
    static: { root: $TMP/www }
CONF
ganglion_cmd "$TMP/ganglion/ganglion.yaml"
launch ganglion "${PORT[ganglion]}" "${GANGLION_CMD[@]}"; PID[ganglion]=$STARTED_PID

SERVERS=(nginx ganglion)
# The 304 round sends each server its own ETag for small.txt (their formats differ).
declare -A ETAG
for who in "${SERVERS[@]}"; do
  ETAG[$who]=$(curl -sI "http://127.0.0.1:${PORT[$who]}/files/small.txt" | tr -d '\r' |
    awk -F': ' 'tolower($1) == "etag" { print $2 }')
  [[ -n ${ETAG[$who]} ]] || die "$who sent no ETag"
done

wrk_args() {  # wrk_args MODE WHO -> ARGS
  case $1 in
    small) ARGS=("http://127.0.0.1:${PORT[$2]}/files/small.txt") ;;
    large) ARGS=("http://127.0.0.1:${PORT[$2]}/files/large.bin") ;;
    notmodified) ARGS=(-H "If-None-Match: ${ETAG[$2]}" "http://127.0.0.1:${PORT[$2]}/files/small.txt") ;;
    *) die "unknown mode $1" ;;
  esac
}

log_host
log "$(tool_versions)"
log "params: RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS, one worker each, servers on CPU 0, wrk on CPU 1"
declare -A RPS CPU
ab_rounds wrk_args "${SERVERS[@]}"
ab_summary "${SERVERS[@]}"
