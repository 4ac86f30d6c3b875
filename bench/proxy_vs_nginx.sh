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

die() { echo "error: $*" >&2; exit 1; }
log() { echo "# $*"; }

for n in RUNS DURATION CONNS WARMUP WORKERS STARTS IDLE_CONNS READY_TIMEOUT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer (got '${!n}')"
done
(( RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && WORKERS >= 1 )) || die "RUNS, DURATION, CONNS, WORKERS must be >= 1"
[[ -x $NGINX_BIN ]] || die "nginx not found at $NGINX_BIN (apt-get install nginx-light)"
command -v "$WRK_BIN" >/dev/null || die "wrk not found (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
[[ $GANGLION_IMPL == ganglion || $GANGLION_IMPL == nginx ]] || die "GANGLION_IMPL must be ganglion or nginx"

# 10,000 idle clients need 10,000+ descriptors in the client and in each gateway.
# Without CAP_SYS_RESOURCE the hard limit caps this; the nginx configs get the same figure.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=65536
((NOFILE <= 65536)) || NOFILE=65536
# nginx preallocates its connection table, so size it to the need, not to the limit.
NGX_WORKER_CONNS=$((IDLE_CONNS + 1024))
((NGX_WORKER_CONNS <= NOFILE)) || NGX_WORKER_CONNS=$NOFILE

SERVER_PIN=()
WRK_PIN=()
if [[ $PIN == 1 ]]; then
  if command -v taskset >/dev/null; then
    SERVER_PIN=(taskset -c "$PIN_SERVER_CPUS")
    WRK_PIN=(taskset -c "$PIN_WRK_CPUS")
  else
    log "PIN=1 but taskset is missing: running unpinned"
  fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ganglion-bench.XXXXXX")
PIDS=()   # every long-running process this script started

descendants() {  # pid and all its descendants, one per line
  ps -e -o pid=,ppid= 2>/dev/null | awk -v root="$1" '
    { parent[$1] = $2 }
    END {
      keep[root] = 1; changed = 1
      while (changed) { changed = 0
        for (c in parent) if (!(c in keep) && (parent[c] in keep)) { keep[c] = 1; changed = 1 } }
      for (p in keep) print p
    }'
}

stop_pid() {  # TERM, wait up to 5 s, then KILL the process and anything left under it
  local pid=$1 i all
  kill -0 "$pid" 2>/dev/null || return 0
  all=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  for p in $all; do kill -KILL "$p" 2>/dev/null || true; done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ $KEEP_TMP == 1 ]]; then
    echo "# kept temp dir $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

USED_PORTS=" "
free_port() {  # sets FREE_PORT: a loopback port nobody listens on now, not handed out before
  local p i
  for ((i = 0; i < 20; i++)); do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [[ $USED_PORTS != *" $p "* ]]; then
      USED_PORTS+="$p "
      FREE_PORT=$p
      return 0
    fi
  done
  die "could not find a free port"
}

render() {  # render TEMPLATE OUT DIR PORT UPSTREAM_PORT WORKERS
  sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@UPSTREAM_PORT@|$5|g" -e "s|@WORKERS@|$6|g" \
    -e "s|@NOFILE@|$NOFILE|g" -e "s|@WORKER_CONNECTIONS@|$NGX_WORKER_CONNS|g" "$1" >"$2"
}

wait_port() {  # wait_port PORT PID TIMEOUT_S: 0 once PORT accepts, 1 if PID died or time ran out
  local port=$1 pid=$2 deadline=$((SECONDS + $3))
  while ((SECONDS <= deadline)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# --- starting servers ------------------------------------------------------------------
# Each start_* sets STARTED_PID and STARTED_LOG, or returns 1 (after printing the log tail).

nginx_cmd() {  # nginx_cmd DIR -> NGINX_CMD array
  NGINX_CMD=("${SERVER_PIN[@]}" "$NGINX_BIN" -p "$1/" -c "$1/nginx.conf" -e "$1/error.log")
}

prepare_nginx() {  # prepare_nginx NAME TEMPLATE PORT UPSTREAM_PORT WORKERS -> PREP_DIR
  PREP_DIR=$TMP/$1
  mkdir -p "$PREP_DIR/tmp"
  render "$2" "$PREP_DIR/nginx.conf" "$PREP_DIR" "$3" "$4" "$5"
}

prepare_ganglion() {  # prepare_ganglion NAME PORT UPSTREAM_PORT -> PREP_DIR, GANGLION_CMD
  PREP_DIR=$TMP/$1
  mkdir -p "$PREP_DIR"
  render "$GANGLION_TEMPLATE" "$PREP_DIR/ganglion.yaml" "$PREP_DIR" "$2" "$3" "$WORKERS"
  if [[ -n $GANGLION_CONFIG_FLAG ]]; then
    # shellcheck disable=SC2206  # the flag is deliberately split into words ("serve --config")
    GANGLION_CMD=("${SERVER_PIN[@]}" "$GANGLION_BIN" $GANGLION_CONFIG_FLAG "$PREP_DIR/ganglion.yaml")
  else
    GANGLION_CMD=("${SERVER_PIN[@]}" "$GANGLION_BIN" "$PREP_DIR/ganglion.yaml")
  fi
}

launch() {  # launch NAME PORT CMD... : start CMD in the background and wait for PORT
  local name=$1 port=$2
  shift 2
  STARTED_LOG=$TMP/$name/stdout.log
  "$@" >"$STARTED_LOG" 2>&1 </dev/null &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  if ! wait_port "$port" "$STARTED_PID" "$READY_TIMEOUT"; then
    echo "!! $name did not accept connections on 127.0.0.1:$port within ${READY_TIMEOUT}s" >&2
    echo "!! command: $*" >&2
    for f in "$STARTED_LOG" "$TMP/$name/error.log"; do
      [[ -s $f ]] && { echo "!! --- $f (tail)" >&2; tail -n 20 "$f" >&2; }
    done
    stop_pid "$STARTED_PID"
    return 1
  fi
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

rss_kb() {  # VmRSS of PID plus all its descendants, in kB
  local total=0 kb p
  for p in $(descendants "$1"); do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

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
run_wrk() {
  local port=$1 out=$2 secs=$3
  timeout -k 5 $((secs + 30)) "${WRK_PIN[@]}" "$WRK_BIN" -t1 -c"$CONNS" -d"${secs}s" --latency \
    "http://127.0.0.1:$port/" >"$out" 2>&1 || true
  W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  W_P99_US=$(awk '
    $1 == "99%" {
      v = $2; n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000
      else if (u == "m") f = 60000000; else if (u == "h") f = 3600000000; else f = -1
      if (f > 0) printf "%.0f", n * f
      exit
    }' "$out")
  W_BAD=$(awk '
    /Non-2xx or 3xx responses:/ { bad += $NF }
    /Socket errors:/ { for (i = 3; i <= NF; i++) { x = $i; gsub(/,/, "", x); if (x ~ /^[0-9]+$/) bad += x } }
    END { print bad + 0 }' "$out")
  [[ -n $W_RPS ]] || W_RPS=nan
  [[ -n $W_P99_US ]] || W_P99_US=nan
}

median() {  # median of the numeric arguments ("nan" ones ignored)
  (($#)) || { echo nan; return 0; }
  printf '%s\n' "$@" | awk '$1 != "nan" && $1 != ""' | sort -g | awk '
    { a[NR] = $1 }
    END { if (NR == 0) print "nan"; else if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

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
log "host: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null), kernel $(uname -r)"
log "nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), wrk: $("$WRK_BIN" -v 2>&1 | awk 'NR==1 { print $2 }')"
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
fmt_mb() { [[ $1 == nan ]] && echo "n/a" || echo "$(mb "$1") MB"; }

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
