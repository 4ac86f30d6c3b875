# shellcheck shell=bash
# Helpers shared by the benchmark scripts (proxy_vs_nginx.sh, proxy_methods.sh, routes_scale.sh, ab_proxy.sh,
# ab_llm.sh, llm_vs_portkey.sh, llm_soak.sh).
# Sourced, never run: it only defines functions, and is safe under `set -euo pipefail`.
#
# Read from the calling script: PIN PIN_SERVER_CPUS PIN_WRK_CPUS NGINX_BIN WRK_BIN GANGLION_BIN
#   GANGLION_CONFIG_FLAG READY_TIMEOUT KEEP_TMP NOFILE NGX_WORKER_CONNS
# Set here: TMP PIDS SERVER_PIN WRK_PIN NOFILE FREE_PORT STARTED_PID STARTED_LOG NGINX_CMD
#   GANGLION_CMD W_RPS W_P50_US W_P99_US W_BAD
# shellcheck disable=SC2034,SC2153  # globals go both ways between this file and its scripts

# --- messages and checks ---------------------------------------------------------------

die() { echo "error: $*" >&2; exit 1; }  # print "error: ..." to stderr and exit 1
log() { echo "# $*"; }                    # a "# ..." comment line in the report

require_uints() {  # require_uints NAME...: die unless each named variable is a non-negative integer
  local n
  for n in "$@"; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer (got '${!n}')"
  done
}

require_load_tools() {  # die unless nginx, wrk, python3 and timeout are there
  [[ -x $NGINX_BIN ]] || die "nginx not found at $NGINX_BIN (apt-get install nginx-light)"
  command -v "$WRK_BIN" >/dev/null || die "wrk not found (apt-get install wrk)"
  command -v python3 >/dev/null || die "python3 not found"
  command -v timeout >/dev/null || die "timeout (coreutils) not found"
}

log_host() {  # the "# host: ..." line: CPU count, CPU model, kernel
  log "host: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null), kernel $(uname -r)"
}

tool_versions() {  # prints "nginx: VERSION, wrk: VERSION"
  echo "nginx: $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), wrk: $("$WRK_BIN" -v 2>&1 | awk 'NR==1 { print $2 }')"
}

# --- limits and CPU pinning ------------------------------------------------------------

raise_nofile() {  # raise the open-file limit towards 65536 -> NOFILE (capped at 65536)
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  NOFILE=$(ulimit -n)
  [[ $NOFILE == unlimited ]] && NOFILE=65536
  ((NOFILE <= 65536)) || NOFILE=65536
}

pin_setup() {  # PIN=1: SERVER_PIN / WRK_PIN = taskset prefixes for servers / clients, else empty
  SERVER_PIN=()
  WRK_PIN=()
  if [[ $PIN == 1 ]]; then
    if command -v taskset >/dev/null; then
      SERVER_PIN=(taskset -c "${PIN_SERVER_CPUS:-0}")
      WRK_PIN=(taskset -c "${PIN_WRK_CPUS:-1}")
    else
      log "PIN=1 but taskset is missing: running unpinned"
    fi
  fi
}

# --- background processes and cleanup --------------------------------------------------

bench_start() {  # bench_start NAME: temp dir TMP (NAME.XXXXXX), empty PIDS, cleanup traps
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()   # every long-running process the script started
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

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

# shellcheck disable=SC2317  # reached through the EXIT trap
cleanup() {  # EXIT trap: stop everything in PIDS, drop TMP (KEEP_TMP=1 keeps it), keep the exit code
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP_TMP:-0} == 1 ]]; then
    echo "# kept temp dir $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}

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

wait_port() {  # wait_port PORT PID TIMEOUT_S: 0 once PORT accepts, 1 if PID died or time ran out
  local port=$1 pid=$2 deadline=$((SECONDS + $3))
  while ((SECONDS <= deadline)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

launch() {  # launch NAME PORT CMD...: start CMD in the background (log TMP/NAME/stdout.log), wait for PORT
  local name=$1 port=$2
  shift 2
  mkdir -p "$TMP/$name"
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

# --- configs and server command lines --------------------------------------------------

render() {  # render TEMPLATE OUT DIR PORT UPSTREAM_PORT WORKERS: fill the @VARS@ of a *.in template
  sed -e "s|@DIR@|$3|g" -e "s|@PORT@|$4|g" -e "s|@UPSTREAM_PORT@|$5|g" -e "s|@WORKERS@|$6|g" \
    -e "s|@NOFILE@|$NOFILE|g" -e "s|@WORKER_CONNECTIONS@|${NGX_WORKER_CONNS:-1024}|g" "$1" >"$2"
}

nginx_cmd() {  # nginx_cmd DIR -> NGINX_CMD array: (pinned) nginx on DIR/nginx.conf, logs in DIR
  NGINX_CMD=("${SERVER_PIN[@]}" "$NGINX_BIN" -p "$1/" -c "$1/nginx.conf" -e "$1/error.log")
}

ganglion_cmd() {  # ganglion_cmd CONFIG -> GANGLION_CMD array: (pinned) GANGLION_BIN serving CONFIG
  # shellcheck disable=SC2206  # the flag is deliberately split into words ("serve --config")
  GANGLION_CMD=("${SERVER_PIN[@]}" "$GANGLION_BIN" ${GANGLION_CONFIG_FLAG-serve --config} "$1")
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
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }  # kB -> MB, one decimal
fmt_mb() { [[ $1 == nan ]] && echo "n/a" || echo "$(mb "$1") MB"; }  # kB -> "X.Y MB", nan -> n/a

wrk_pct_us() {  # wrk_pct_us FILE PCT: a --latency percentile line in microseconds
  awk -v want="$2%" '
    $1 == want {
      v = $2; n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000
      else if (u == "m") f = 60000000; else if (u == "h") f = 3600000000; else f = -1
      if (f > 0) printf "%.0f", n * f
      exit
    }' "$1"
}

# wrk_run OUTFILE CONNS SECONDS WRK_ARGS...: one (pinned) wrk -t1 --latency run, output in OUTFILE
#   -> W_RPS, W_P50_US, W_P99_US ("nan" when missing), W_BAD (non-2xx + socket errors)
wrk_run() {
  local out=$1 conns=$2 secs=$3
  shift 3
  timeout -k 5 $((secs + 30)) "${WRK_PIN[@]}" "$WRK_BIN" -t1 -c"$conns" -d"${secs}s" --latency \
    "$@" >"$out" 2>&1 || true
  W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  W_P50_US=$(wrk_pct_us "$out" 50)
  W_P99_US=$(wrk_pct_us "$out" 99)
  W_BAD=$(awk '
    /Non-2xx or 3xx responses:/ { bad += $NF }
    /Socket errors:/ { for (i = 3; i <= NF; i++) { x = $i; gsub(/,/, "", x); if (x ~ /^[0-9]+$/) bad += x } }
    END { print bad + 0 }' "$out")
  [[ -n $W_RPS ]] || W_RPS=nan
  [[ -n $W_P50_US ]] || W_P50_US=nan
  [[ -n $W_P99_US ]] || W_P99_US=nan
}

cpu_ticks() {  # user + system clock ticks of PID and its descendants (nginx and HAProxy fork workers)
  local total=0 p t
  for p in $(descendants "$1"); do
    t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

us_per_request() {  # us_per_request TICKS REQUESTS: CPU µs per request, two decimals ("nan" without requests)
  awk -v t="$1" -v us="$((1000000 / $(getconf CLK_TCK)))" -v n="${2:-0}" \
    'BEGIN { if (n > 0) printf "%.2f", t * us / n; else print "nan" }'
}

median() {  # median of the numeric arguments ("nan" ones ignored)
  (($#)) || { echo nan; return 0; }
  printf '%s\n' "$@" | awk '$1 != "nan" && $1 != ""' | sort -g | awk '
    { a[NR] = $1 }
    END { if (NR == 0) print "nan"; else if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# ratio A B: A/B to two decimals, "n/a" when either is nan or B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }

# ab_rounds ARGS_FN SERVER...: for each mode in MODES, one warm-up per server, then RUNS rounds
# of DURATION seconds (the server order reversed every other round), wrk with CONNS
# connections and the arguments `ARGS_FN MODE SERVER` puts in ARGS. Each server's CPU comes
# from PID[SERVER]. Prints each round; adds to RPS[MODE-SERVER] and CPU[MODE-SERVER] (declare
# both with -A first).
ab_rounds() {
  local args_fn=$1 mode who r t0 t1 reqs cpu
  shift
  local servers=("$@") order
  for mode in $MODES; do
    for who in "${servers[@]}"; do  # warm-up
      "$args_fn" "$mode" "$who"
      wrk_run "$TMP/warm-$mode-$who.out" "$CONNS" 1 "${ARGS[@]}"
    done
    for r in $(seq "$RUNS"); do
      order=("${servers[@]}")
      ((r % 2)) || mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac)
      for who in "${order[@]}"; do
        "$args_fn" "$mode" "$who"
        t0=$(cpu_ticks "${PID[$who]}")
        wrk_run "$TMP/$mode-$who-$r.out" "$CONNS" "$DURATION" "${ARGS[@]}"
        t1=$(cpu_ticks "${PID[$who]}")
        reqs=$(awk '/requests in/ { print $1 }' "$TMP/$mode-$who-$r.out")
        cpu=$(us_per_request "$((t1 - t0))" "$reqs")
        RPS["$mode-$who"]+="$W_RPS "
        CPU["$mode-$who"]+="$cpu "
        printf '%-12s round %d %-9s %10s req/s %8s µs CPU/request %s\n' "$mode" "$r" "$who" "$W_RPS" "$cpu" \
          "$([[ $W_BAD != 0 ]] && echo "($W_BAD bad)")"
      done
    done
  done
}

# ab_summary SERVER...: per mode in MODES, each server's median requests/s and CPU µs per
# request from ab_rounds, and their ratios to the first server's.
ab_summary() {
  local mode who rps cpu base_rps base_cpu
  echo
  printf '%-12s %-9s %12s %16s %10s %10s\n' mode server "req/s" "µs CPU/request" "rps/$1" "cpu/$1"
  for mode in $MODES; do
    # shellcheck disable=SC2086  # the lists are split into arguments on purpose
    base_rps=$(median ${RPS["$mode-$1"]})
    # shellcheck disable=SC2086
    base_cpu=$(median ${CPU["$mode-$1"]})
    for who in "$@"; do
      # shellcheck disable=SC2086
      rps=$(median ${RPS["$mode-$who"]})
      # shellcheck disable=SC2086
      cpu=$(median ${CPU["$mode-$who"]})
      printf '%-12s %-9s %12s %16s %10s %10s\n' "$mode" "$who" "$rps" "$cpu" "$(ratio "$rps" "$base_rps")" \
        "$(ratio "$cpu" "$base_cpu")"
    done
  done
}
