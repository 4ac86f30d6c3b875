#!/usr/bin/env bash
# Ganglion vs nginx as an HTTP/1.1 reverse proxy in front of the same fixed-reply
# nginx upstream, on loopback. See bench/README.md for what it measures and prints.
#
# Environment (all optional):
#   RUNS=3 DURATION=10 CONNS=50 WARMUP=2 WORKERS=1   load rounds (wrk -t1 -c$CONNS -d$DURATION)
#   STARTS=5            starts timed for start-to-ready (median reported)
#   IDLE_CONNS=10000    idle keep-alive clients for the RSS-under-idle-connections figure (0 skips)
#   PIN=0               1: taskset servers onto PIN_SERVER_CPUS (default 0) and wrk onto
#                       PIN_WRK_CPUS (default 1)
#   GANGLION_BIN        default <repo>/build/ganglion
#   GANGLION_CONFIG_FLAG  default "serve --config"
#   GANGLION_TEMPLATE   default bench/ganglion.yaml.in
#   GANGLION_IMPL=nginx stand a second nginx proxy in for ganglion (tests this script)
#   NGINX_BIN=/usr/sbin/nginx  WRK_BIN=wrk  READY_TIMEOUT=10  KEEP_TMP=0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
WORKERS=${WORKERS:-1}
STARTS=${STARTS:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
PIN=${PIN:-0}
PIN_SERVER_CPUS=${PIN_SERVER_CPUS:-0}
PIN_WRK_CPUS=${PIN_WRK_CPUS:-1}
READY_TIMEOUT=${READY_TIMEOUT:-10}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
GANGLION_CONFIG_FLAG=${GANGLION_CONFIG_FLAG-serve --config}
GANGLION_TEMPLATE=${GANGLION_TEMPLATE:-$HERE/ganglion.yaml.in}
GANGLION_IMPL=${GANGLION_IMPL:-ganglion}
KEEP_TMP=${KEEP_TMP:-0}

require_uints RUNS DURATION CONNS WARMUP WORKERS STARTS IDLE_CONNS READY_TIMEOUT
(( RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && WORKERS >= 1 )) || die "RUNS, DURATION, CONNS, WORKERS must be >= 1"
require_load_tools
[[ $GANGLION_IMPL == ganglion || $GANGLION_IMPL == nginx ]] || die "GANGLION_IMPL must be ganglion or nginx"

# 10,000 idle clients need 10,000+ descriptors in the client and in each gateway.
# Without CAP_SYS_RESOURCE the hard limit caps this; the nginx configs get the same figure.
raise_nofile
# nginx preallocates its connection table, so size it to the need, not to the limit.
NGX_WORKER_CONNS=$((IDLE_CONNS + 1024))
((NGX_WORKER_CONNS <= NOFILE)) || NGX_WORKER_CONNS=$NOFILE

pin_setup
bench_start ganglion-bench

# --- starting servers ------------------------------------------------------------------
# Each start_* sets STARTED_PID and STARTED_LOG, or returns 1 (after printing the log tail).

prepare_nginx() {  # prepare_nginx NAME TEMPLATE PORT UPSTREAM_PORT WORKERS -> PREP_DIR
  PREP_DIR=$TMP/$1
  mkdir -p "$PREP_DIR/tmp"
  render "$2" "$PREP_DIR/nginx.conf" "$PREP_DIR" "$3" "$4" "$5"
}

prepare_ganglion() {  # prepare_ganglion NAME PORT UPSTREAM_PORT -> PREP_DIR, GANGLION_CMD
  PREP_DIR=$TMP/$1
  mkdir -p "$PREP_DIR"
  render "$GANGLION_TEMPLATE" "$PREP_DIR/ganglion.yaml" "$PREP_DIR" "$2" "$3" "$WORKERS"
  ganglion_cmd "$PREP_DIR/ganglion.yaml"
}

start_nginx() {  # start_nginx NAME TEMPLATE PORT UPSTREAM_PORT WORKERS
  prepare_nginx "$@"
  nginx_cmd "$PREP_DIR"
  launch "$1" "$3" "${NGINX_CMD[@]}"
}

start_ganglion() {  # start_ganglion NAME PORT UPSTREAM_PORT
  if [[ $GANGLION_IMPL == nginx ]]; then
    start_nginx "$1" "$HERE/nginx-proxy.conf.in" "$2" "$3" "$WORKERS"
    return
  fi
  if [[ ! -x $GANGLION_BIN ]]; then
    echo "!! ganglion binary not found or not executable: $GANGLION_BIN (set GANGLION_BIN)" >&2
    return 1
  fi
  prepare_ganglion "$@"
  launch "$1" "$2" "${GANGLION_CMD[@]}"
}

# --- measuring -------------------------------------------------------------------------

check_reply() {  # check_reply PORT: 0 if GET / answers 200 "hello world\n"
  python3 - "$1" <<'EOF'
import http.client, sys
try:
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
    c.request("GET", "/", headers={"Host": "x"})
    r = c.getresponse()
    body = r.read()
    ok = r.status == 200 and body == b"hello world\n"
    if not ok:
        print(f"!! got {r.status} {body[:200]!r}", file=sys.stderr)
    sys.exit(0 if ok else 1)
except Exception as e:
    print(f"!! request failed: {e}", file=sys.stderr)
    sys.exit(1)
EOF
}

# run_wrk PORT OUTFILE SECONDS -> W_RPS, W_P99_US, W_BAD (non-2xx + socket errors)
run_wrk() { wrk_run "$2" "$CONNS" "$3" "http://127.0.0.1:$1/"; }

# idle_rss NAME PID PORT -> IC_LINE (one-line summary); prints progress
idle_rss() {
  local name=$1 pid=$2 port=$3 out=$TMP/idle-$1.out before after i line opened failed still
  before=$(rss_kb "$pid")
  python3 "$HERE/idle_conns.py" --port "$port" -n "$IDLE_CONNS" --hold 300 >"$out" 2>"$TMP/idle-$name.err" &
  local ic=$!
  PIDS+=("$ic")
  line=""
  for ((i = 0; i < 1200; i++)); do  # up to 120 s to open them all
    line=$(grep -m1 '^READY' "$out" 2>/dev/null || true)
    [[ -n $line ]] && break
    kill -0 "$ic" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $line ]]; then
    IC_LINE="failed (idle_conns.py did not report; $(tail -n 3 "$TMP/idle-$name.err" | tr '\n' ' '))"
    stop_pid "$ic"
    return
  fi
  sleep 1  # let the gateway settle (deferred frees, buffer trimming)
  after=$(rss_kb "$pid")
  kill -TERM "$ic" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    grep -q '^DONE' "$out" 2>/dev/null && break
    kill -0 "$ic" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$ic"
  opened=$(sed -n 's/.*opened=\([0-9]*\).*/\1/p' <<<"$line")
  failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$line")
  still=$(sed -n 's/.*still_open=\([0-9]*\).*/\1/p' "$out")
  local per="n/a"
  ((${opened:-0} > 0)) && per=$(awk -v a="$after" -v b="$before" -v n="$opened" 'BEGIN { printf "%.2f", (a - b) / n }')
  IC_LINE=$(printf '%8s MB with %s idle clients (opened %s, failed %s, still open at the end %s; before %s MB, %s kB/conn)' \
    "$(mb "$after")" "$IDLE_CONNS" "$opened" "$failed" "${still:-?}" "$(mb "$before")" "$per")
}

# --- run -------------------------------------------------------------------------------

GANGLION_LABEL=ganglion
[[ $GANGLION_IMPL == nginx ]] && GANGLION_LABEL="ganglion(nginx stand-in)"

log "Ganglion vs nginx reverse proxy benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log_host
log "$(tool_versions)"
if [[ $GANGLION_IMPL == nginx ]]; then
  log "ganglion: GANGLION_IMPL=nginx, a second nginx proxy stands in for ganglion"
else
  log "ganglion: $GANGLION_BIN"
fi
log "params: RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS WARMUP=${WARMUP}s WORKERS=$WORKERS PIN=$PIN" \
  "$( ((${#SERVER_PIN[@]})) && echo "(servers on CPU $PIN_SERVER_CPUS, wrk on CPU $PIN_WRK_CPUS)")"
log "open-file limit: $NOFILE, temp dir: $TMP"
if ((IDLE_CONNS > 0 && NOFILE < IDLE_CONNS + 200)); then
  log "warning: open-file limit $NOFILE is too low for IDLE_CONNS=$IDLE_CONNS; expect failed connections"
fi
echo

free_port; UP_PORT=$FREE_PORT
start_nginx upstream "$HERE/nginx-upstream.conf.in" "$UP_PORT" 0 1 || die "upstream nginx failed to start"

check_reply "$UP_PORT" || die "upstream nginx does not answer 200 'hello world'"

# 1. start-to-ready (each start on a fresh port, then stopped)
G_OK=1
declare -a NGX_START=() GAN_START=()
for ((i = 1; i <= STARTS; i++)); do
  free_port; p=$FREE_PORT
  prepare_nginx "start-nginx-$i" "$HERE/nginx-proxy.conf.in" "$p" "$UP_PORT" "$WORKERS"
  nginx_cmd "$PREP_DIR"
  if t=$(timeout -k 5 $((READY_TIMEOUT + 20)) python3 "$HERE/ready_time.py" --port "$p" \
      --timeout "$READY_TIMEOUT" --log "$PREP_DIR/stdout.log" -- "${NGINX_CMD[@]}"); then
    NGX_START+=("$t")
  fi
  if ((G_OK)); then
    free_port; p=$FREE_PORT
    if [[ $GANGLION_IMPL == nginx ]]; then
      prepare_nginx "start-ganglion-$i" "$HERE/nginx-proxy.conf.in" "$p" "$UP_PORT" "$WORKERS"
      nginx_cmd "$PREP_DIR"
      cmd=("${NGINX_CMD[@]}")
    elif [[ -x $GANGLION_BIN ]]; then
      prepare_ganglion "start-ganglion-$i" "$p" "$UP_PORT"
      cmd=("${GANGLION_CMD[@]}")
    else
      cmd=()
    fi
    if ((${#cmd[@]})) && t=$(timeout -k 5 $((READY_TIMEOUT + 20)) python3 "$HERE/ready_time.py" --port "$p" \
        --timeout "$READY_TIMEOUT" --log "$PREP_DIR/stdout.log" -- "${cmd[@]}"); then
      GAN_START+=("$t")
    else
      G_OK=0  # one failed start: stop timing it, the main start below reports why
    fi
  fi
done

# 2. the two gateways under test
free_port; NGX_PORT=$FREE_PORT
start_nginx nginx-proxy "$HERE/nginx-proxy.conf.in" "$NGX_PORT" "$UP_PORT" "$WORKERS" || die "nginx proxy failed to start"
NGX_PID=$STARTED_PID
check_reply "$NGX_PORT" || die "nginx proxy does not answer 200 'hello world'"

free_port; GAN_PORT=$FREE_PORT
GAN_PID=""
G_OK=1
if start_ganglion ganglion "$GAN_PORT" "$UP_PORT"; then
  GAN_PID=$STARTED_PID
  if ! check_reply "$GAN_PORT"; then
    echo "!! ganglion does not answer GET / with 200 'hello world': leaving it out of the load rounds" >&2
    G_OK=0
  fi
else
  G_OK=0
fi

sleep 0.3
NGX_RSS_IDLE=$(rss_kb "$NGX_PID")
GAN_RSS_IDLE=nan
if [[ -n $GAN_PID ]] && kill -0 "$GAN_PID" 2>/dev/null; then GAN_RSS_IDLE=$(rss_kb "$GAN_PID"); fi

# 3. warm-up and alternating load rounds
gan_alive() { [[ -n $GAN_PID ]] && kill -0 "$GAN_PID" 2>/dev/null; }
if ((WARMUP > 0)); then
  log "warm-up: ${WARMUP}s each"
  run_wrk "$NGX_PORT" "$TMP/warmup-nginx.txt" "$WARMUP"
  if ((G_OK)); then run_wrk "$GAN_PORT" "$TMP/warmup-ganglion.txt" "$WARMUP"; fi
fi

declare -a N_RPS=() N_P99=() G_RPS=() G_P99=()
WARN=0
echo
printf '%-6s %-26s %14s %14s %10s\n' round gateway "requests/s" "p99 (us)" "errors"
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order=(nginx ganglion); else order=(ganglion nginx); fi
  for who in "${order[@]}"; do
    if [[ $who == nginx ]]; then
      run_wrk "$NGX_PORT" "$TMP/round$r-nginx.txt" "$DURATION"
      N_RPS+=("$W_RPS"); N_P99+=("$W_P99_US")
      label=nginx
    else
      ((G_OK)) || continue
      if ! gan_alive; then
        echo "!! ganglion exited (see tail below); no more ganglion rounds" >&2
        tail -n 20 "$TMP/ganglion/stdout.log" >&2 || true
        G_OK=0
        continue
      fi
      run_wrk "$GAN_PORT" "$TMP/round$r-ganglion.txt" "$DURATION"
      G_RPS+=("$W_RPS"); G_P99+=("$W_P99_US")
      label=$GANGLION_LABEL
    fi
    mark=""
    if [[ $W_BAD != 0 || $W_RPS == nan ]]; then mark=" (!)"; WARN=1; fi
    printf '%-6s %-26s %14s %14s %10s%s\n' "$r" "$label" "$W_RPS" "$W_P99_US" "$W_BAD" "$mark"
  done
done

NGX_RSS_LOAD=$(rss_kb "$NGX_PID")
GAN_RSS_LOAD=nan
if gan_alive; then GAN_RSS_LOAD=$(rss_kb "$GAN_PID"); fi

# 4. RSS with many idle keep-alive clients
NGX_IC="skipped"; GAN_IC="skipped"
if ((IDLE_CONNS > 0)); then
  echo
  log "opening $IDLE_CONNS idle keep-alive clients against each gateway"
  idle_rss nginx "$NGX_PID" "$NGX_PORT"; NGX_IC=$IC_LINE
  if ((G_OK)) && gan_alive; then
    idle_rss ganglion "$GAN_PID" "$GAN_PORT"; GAN_IC=$IC_LINE
  elif gan_alive; then
    GAN_IC="n/a (ganglion does not proxy correctly)"
  else
    GAN_IC="n/a (not running)"
  fi
  if ! gan_alive && [[ $GAN_IC != n/a* ]]; then GAN_IC="$GAN_IC [ganglion exited afterwards]"; fi
fi

# 5. summary
NM_RPS=$(median "${N_RPS[@]}"); NM_P99=$(median "${N_P99[@]}")
GM_RPS=nan; GM_P99=nan
if ((${#G_RPS[@]})); then GM_RPS=$(median "${G_RPS[@]}"); GM_P99=$(median "${G_P99[@]}"); fi
NM_START=$(median "${NGX_START[@]}")
GM_START=$(median "${GAN_START[@]}")
fmt_ms() { [[ $1 == nan ]] && echo "n/a" || awk -v v="$1" 'BEGIN { printf "%.2f ms", v }'; }

echo
echo "== medians over $RUNS round(s), wrk -t1 -c$CONNS -d${DURATION}s, WORKERS=$WORKERS"
printf '%-26s %14s %14s\n' gateway "requests/s" "p99 (us)"
printf '%-26s %14s %14s\n' nginx "$NM_RPS" "$NM_P99"
printf '%-26s %14s %14s\n' "$GANGLION_LABEL" "$GM_RPS" "$GM_P99"
echo
echo "== footprint"
printf '%-26s %14s %14s\n' "" nginx "$GANGLION_LABEL"
printf '%-26s %14s %14s\n' "start-to-ready (median)" \
  "$(fmt_ms "$NM_START")" "$(fmt_ms "$GM_START")"
printf '%-26s %14s %14s\n' "RSS idle after start" "$(fmt_mb "$NGX_RSS_IDLE")" "$(fmt_mb "$GAN_RSS_IDLE")"
printf '%-26s %14s %14s\n' "RSS after load rounds" "$(fmt_mb "$NGX_RSS_LOAD")" "$(fmt_mb "$GAN_RSS_LOAD")"
echo "RSS with idle clients:"
echo "  nginx:    $NGX_IC"
echo "  ganglion: $GAN_IC"
echo "(start-to-ready: $STARTS starts each: nginx [${NGX_START[*]:-}] ms, ganglion [${GAN_START[*]:-}] ms;" \
  "RSS sums master and workers / all processes of the gateway)"
echo
echo "rps ratio ganglion/nginx = $(ratio "$GM_RPS" "$NM_RPS")"
echo "p99 ratio ganglion/nginx = $(ratio "$GM_P99" "$NM_P99") (lower is better)"

if ((WARN)); then
  echo "warning: some rounds had non-2xx replies or socket errors (marked (!)); raw wrk output: KEEP_TMP=1" >&2
fi
if ((!G_OK)) || [[ $GM_RPS == nan ]]; then
  echo "ganglion could not be measured (see messages above); only the nginx figures are valid" >&2
  exit 2
fi
exit 0
