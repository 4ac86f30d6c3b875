#!/usr/bin/env bash
# Ganglion vs the Portkey gateway (@portkey-ai/gateway, pinned in bench/package.json) proxying
# OpenAI chat completions to the same fixed-reply nginx upstream, on loopback.
# See bench/README.md for what it measures and prints.
#
# Environment (all optional):
#   RUNS=3 DURATION=10 CONNS=50 WARMUP=3 WORKERS=1   load rounds (wrk -t1 -c$CONNS -d$DURATION)
#   TTFB_N=500 TTFB_WARMUP=50   streamed requests per gateway per round for time to first byte
#   PIN=0               1: taskset servers onto PIN_SERVER_CPUS (default 0) and wrk / the
#                       TTFB client onto PIN_WRK_CPUS (default 1)
#   GANGLION_BIN        default <repo>/build/ganglion
#   GANGLION_CONFIG_FLAG  default "serve --config"
#   GANGLION_TEMPLATE   default bench/ganglion-llm.yaml.in
#   PORTKEY_DIR         default bench/node_modules/@portkey-ai/gateway (npm ci --prefix bench
#                       runs when it is missing or not the version in bench/package-lock.json)
#   NODE_BIN=node NPM_BIN=npm NGINX_BIN=/usr/sbin/nginx WRK_BIN=wrk READY_TIMEOUT=20 KEEP_TMP=0
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$HERE/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-3}
WORKERS=${WORKERS:-1}
TTFB_N=${TTFB_N:-500}
TTFB_WARMUP=${TTFB_WARMUP:-50}
PIN=${PIN:-0}
PIN_SERVER_CPUS=${PIN_SERVER_CPUS:-0}
PIN_WRK_CPUS=${PIN_WRK_CPUS:-1}
READY_TIMEOUT=${READY_TIMEOUT:-20}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
WRK_BIN=${WRK_BIN:-wrk}
NODE_BIN=${NODE_BIN:-node}
NPM_BIN=${NPM_BIN:-npm}
GANGLION_BIN=${GANGLION_BIN:-$REPO/build/ganglion}
GANGLION_CONFIG_FLAG=${GANGLION_CONFIG_FLAG-serve --config}
GANGLION_TEMPLATE=${GANGLION_TEMPLATE:-$HERE/ganglion-llm.yaml.in}
PORTKEY_DIR=${PORTKEY_DIR:-$HERE/node_modules/@portkey-ai/gateway}
KEEP_TMP=${KEEP_TMP:-0}

GATEWAY_KEY=sk-bench-key-123          # Ganglion's gateway key (ganglion-llm.yaml.in)
PROVIDER_KEY=sk-bench-provider-key    # what a gateway sends upstream; nginx ignores it
CANNED_CONTENT="Hello! How can I help you today?"

require_uints RUNS DURATION CONNS WARMUP WORKERS TTFB_N TTFB_WARMUP READY_TIMEOUT
(( RUNS >= 1 && DURATION >= 1 && CONNS >= 1 && WORKERS >= 1 && TTFB_N >= 1 )) ||
  die "RUNS, DURATION, CONNS, WORKERS, TTFB_N must be >= 1"
require_load_tools

raise_nofile
pin_setup
bench_start ganglion-llm-bench

# --- Portkey install -------------------------------------------------------------------

PORTKEY_WANT=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["packages"]["node_modules/@portkey-ai/gateway"]["version"])' "$HERE/package-lock.json" 2>/dev/null || true)
portkey_version() {
  "$NODE_BIN" -p "require(process.argv[1]).version" "$PORTKEY_DIR/package.json" 2>/dev/null || true
}

P_OK=1
P_WHY=""
if ! command -v "$NODE_BIN" >/dev/null; then
  P_OK=0; P_WHY="node not found (NODE_BIN=$NODE_BIN)"
else
  PORTKEY_HAVE=$(portkey_version)
  if [[ ! -f $PORTKEY_DIR/build/start-server.js || ( -n $PORTKEY_WANT && $PORTKEY_HAVE != "$PORTKEY_WANT" &&
        $PORTKEY_DIR == "$HERE/node_modules/@portkey-ai/gateway" ) ]]; then
    if ! command -v "$NPM_BIN" >/dev/null; then
      P_OK=0; P_WHY="Portkey is not installed and npm is missing (NPM_BIN=$NPM_BIN)"
    else
      log "installing @portkey-ai/gateway ${PORTKEY_WANT:-?} into bench/node_modules (npm ci --prefix bench)"
      if ! "$NPM_BIN" ci --prefix "$HERE" --no-audit --no-fund >"$TMP/npm-ci.log" 2>&1; then
        tail -n 20 "$TMP/npm-ci.log" >&2
        P_OK=0; P_WHY="npm ci --prefix bench failed"
      fi
    fi
  fi
  if ((P_OK)) && [[ ! -f $PORTKEY_DIR/build/start-server.js ]]; then
    P_OK=0; P_WHY="no $PORTKEY_DIR/build/start-server.js"
  fi
fi
PORTKEY_HAVE=$(portkey_version)
HONO_NODE=$("$NODE_BIN" -p "require(process.argv[1]).version" \
  "$HERE/node_modules/@hono/node-server/package.json" 2>/dev/null || echo "?")

# --- checking replies ------------------------------------------------------------------

# check_chat PORT PATH MODEL STREAM(0|1) [HEADER...]: 0 if the gateway answers 200 with the
# canned completion (whole: JSON whose first choice says CANNED_CONTENT; streamed: an SSE body
# with the content chunks and data: [DONE])
check_chat() {
  python3 - "$CANNED_CONTENT" "$@" <<'EOF'
import http.client, json, sys
want, port, path, model, stream, headers = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1", sys.argv[6:]
h = {"Content-Type": "application/json"}
for x in headers:
    k, _, v = x.partition(":")
    h[k.strip()] = v.strip()
req = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 32}
if stream:
    req["stream"] = True
    req["stream_options"] = {"include_usage": True}
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=json.dumps(req), headers=h)
    r = c.getresponse()
    body = r.read()
    ok = r.status == 200
    if ok and stream:
        text = body.decode("utf-8", "replace")
        pieces = []
        for line in text.splitlines():
            if line.startswith("data: {"):
                for ch in json.loads(line[6:]).get("choices", []):
                    pieces.append((ch.get("delta") or {}).get("content") or "")
        ok = r.getheader("content-type", "").startswith("text/event-stream") and \
            "".join(pieces) == want and text.rstrip().endswith("data: [DONE]")
    elif ok:
        ok = json.loads(body)["choices"][0]["message"]["content"] == want
    if not ok:
        print(f"!! got {r.status} {r.getheader('content-type')} {body[:300]!r}", file=sys.stderr)
    sys.exit(0 if ok else 1)
except Exception as e:
    print(f"!! request failed: {e!r}", file=sys.stderr)
    sys.exit(1)
EOF
}

# --- measuring -------------------------------------------------------------------------

# run_wrk PORT CONNS SECONDS OUTFILE HEADER... -> W_RPS, W_P50_US, W_P99_US, W_BAD
run_wrk() {
  local port=$1 conns=$2 secs=$3 out=$4
  shift 4
  wrk_run "$out" "$conns" "$secs" -s "$HERE/llm_post.lua" "http://127.0.0.1:$port/" -- "$@"
}

# run_ttfb PORT PATH MODEL OUTFILE HEADER... -> T_P50_US, T_P99_US, T_BAD
run_ttfb() {
  local port=$1 path=$2 model=$3 out=$4 h args=()
  shift 4
  for h in "$@"; do args+=(-H "$h"); done
  timeout -k 5 300 "${WRK_PIN[@]}" python3 "$HERE/llm_ttfb.py" --port "$port" --path "$path" \
    --model "$model" -n "$TTFB_N" -w "$TTFB_WARMUP" "${args[@]}" >"$out" 2>&1 || true
  T_P50_US=$(sed -n 's/^OK .*p50_us=\([0-9.]*\).*/\1/p' "$out")
  T_P99_US=$(sed -n 's/^OK .*p99_us=\([0-9.]*\).*/\1/p' "$out")
  T_BAD=$(sed -n 's/.* bad=\([0-9]*\).*/\1/p' "$out" | tail -n 1)
  [[ -n $T_P50_US ]] || T_P50_US=nan
  [[ -n $T_P99_US ]] || T_P99_US=nan
  [[ -n $T_BAD ]] || T_BAD="?"
}

minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan") print "n/a"; else printf "%+.0f", a - b }'; }
num() { awk -v v="$1" 'BEGIN { if (v == "nan") print "n/a"; else printf "%.0f", v }'; }

# --- run -------------------------------------------------------------------------------

log "Ganglion vs Portkey LLM gateway benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log_host
log "$(tool_versions)," \
  "node: $("$NODE_BIN" --version 2>/dev/null || echo missing)"
log "ganglion: $GANGLION_BIN"
log "portkey: @portkey-ai/gateway ${PORTKEY_HAVE:-not installed} (@hono/node-server $HONO_NODE), $PORTKEY_DIR"
log "params: RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS WARMUP=${WARMUP}s WORKERS=$WORKERS" \
  "TTFB_N=$TTFB_N TTFB_WARMUP=$TTFB_WARMUP PIN=$PIN" \
  "$( ((${#SERVER_PIN[@]})) && echo "(servers on CPU $PIN_SERVER_CPUS, clients on CPU $PIN_WRK_CPUS)")"
log "temp dir: $TMP"
((P_OK)) || echo "!! Portkey left out: $P_WHY" >&2
echo

# upstream
free_port; UP_PORT=$FREE_PORT
mkdir -p "$TMP/upstream/tmp"
render "$HERE/nginx-llm-upstream.conf.in" "$TMP/upstream/nginx.conf" "$TMP/upstream" "$UP_PORT" 0 1
nginx_cmd "$TMP/upstream"
launch upstream "$UP_PORT" "${NGINX_CMD[@]}" || die "upstream nginx failed to start"

DIRECT_HDRS=("Authorization: Bearer $PROVIDER_KEY")
GAN_HDRS=("Authorization: Bearer $GATEWAY_KEY")
PK_HDRS=("Authorization: Bearer $PROVIDER_KEY" "x-portkey-provider: openai"
         "x-portkey-custom-host: http://127.0.0.1:$UP_PORT/v1")
PK_STREAM_HDRS=("Authorization: Bearer $PROVIDER_KEY" "x-portkey-provider: openai"
                "x-portkey-custom-host: http://127.0.0.1:$UP_PORT/stream/v1")

if ! check_chat "$UP_PORT" /v1/chat/completions gpt-4o-mini 0 "${DIRECT_HDRS[@]}" ||
   ! check_chat "$UP_PORT" /stream/v1/chat/completions gpt-4o-mini 1 "${DIRECT_HDRS[@]}"; then
  die "upstream nginx does not answer with the canned completions"
fi

# ganglion
G_OK=1
free_port; GAN_PORT=$FREE_PORT
GAN_PID=""
if [[ ! -x $GANGLION_BIN ]]; then
  echo "!! ganglion binary not found or not executable: $GANGLION_BIN (set GANGLION_BIN)" >&2
  G_OK=0
else
  mkdir -p "$TMP/ganglion"
  render "$GANGLION_TEMPLATE" "$TMP/ganglion/ganglion.yaml" "$TMP/ganglion" "$GAN_PORT" "$UP_PORT" "$WORKERS"
  ganglion_cmd "$TMP/ganglion/ganglion.yaml"
  if launch ganglion "$GAN_PORT" "${GANGLION_CMD[@]}"; then
    GAN_PID=$STARTED_PID
    if ! check_chat "$GAN_PORT" /v1/chat/completions gpt-4o-mini 0 "${GAN_HDRS[@]}" ||
       ! check_chat "$GAN_PORT" /v1/chat/completions gpt-4o-mini-stream 1 "${GAN_HDRS[@]}"; then
      echo "!! ganglion does not answer with the canned completion: leaving it out" >&2
      G_OK=0
    fi
  else
    G_OK=0
  fi
fi

# portkey
free_port; PK_PORT=$FREE_PORT
PK_PID=""
if ((P_OK)); then
  # --headless and NODE_ENV=production: no web console at /public, no /log/stream log
  # fan-out. Portkey listens on every interface (it has no address option), port --port=.
  if launch portkey "$PK_PORT" "${SERVER_PIN[@]}" env NODE_ENV=production "$NODE_BIN" \
      "$PORTKEY_DIR/build/start-server.js" "--port=$PK_PORT" --headless; then
    PK_PID=$STARTED_PID
    if ! check_chat "$PK_PORT" /v1/chat/completions gpt-4o-mini 0 "${PK_HDRS[@]}" ||
       ! check_chat "$PK_PORT" /v1/chat/completions gpt-4o-mini 1 "${PK_STREAM_HDRS[@]}"; then
      echo "!! portkey does not answer with the canned completion: leaving it out" >&2
      tail -n 20 "$TMP/portkey/stdout.log" >&2 || true
      P_OK=0
    fi
  else
    P_OK=0
  fi
fi
((G_OK || P_OK)) || die "neither gateway could be set up"

sleep 0.3
GAN_RSS_IDLE=nan; PK_RSS_IDLE=nan
((G_OK)) && GAN_RSS_IDLE=$(rss_kb "$GAN_PID")
((P_OK)) && PK_RSS_IDLE=$(rss_kb "$PK_PID")

alive() {  # alive NAME PID: 0 if running, else prints why and returns 1
  kill -0 "$2" 2>/dev/null && return 0
  echo "!! $1 exited (log tail below); no more $1 rounds" >&2
  tail -n 20 "$TMP/$1/stdout.log" >&2 || true
  return 1
}

# one_target WHO -> sets T_PORT, T_HDRS (for wrk), T_OK; WHO is direct, ganglion or portkey
one_target() {
  case $1 in
    direct) T_PORT=$UP_PORT; T_HDRS=("${DIRECT_HDRS[@]}"); T_OK=1 ;;
    ganglion) T_PORT=$GAN_PORT; T_HDRS=("${GAN_HDRS[@]}"); T_OK=$G_OK
      if ((T_OK)) && ! alive ganglion "$GAN_PID"; then G_OK=0; T_OK=0; fi ;;
    portkey) T_PORT=$PK_PORT; T_HDRS=("${PK_HDRS[@]}"); T_OK=$P_OK
      if ((T_OK)) && ! alive portkey "$PK_PID"; then P_OK=0; T_OK=0; fi ;;
  esac
}

WARN=0
set_mark() {  # set_mark ERRORS VALUE -> MARK (" (!)" when a run had errors or no result)
  MARK=""
  if [[ $1 != 0 || $2 == nan ]]; then WARN=1; MARK=" (!)"; fi
}

# 1. warm-up (Portkey's JIT needs it more than Ganglion does)
if ((WARMUP > 0)); then
  log "warm-up: ${WARMUP}s each at c=$CONNS"
  for who in ganglion portkey; do
    one_target "$who"
    ((T_OK)) && run_wrk "$T_PORT" "$CONNS" "$WARMUP" "$TMP/warmup-$who.txt" "${T_HDRS[@]}"
  done
fi

# 2. throughput rounds at CONNS connections, order alternating
# per-gateway lists of per-round figures, filled through push's nameref
# shellcheck disable=SC2034
declare -A RPS=() P50=() P99=() C1P50=() C1P99=() TP50=() TP99=()
push() {  # push ARRAY_NAME WHO VALUE: append VALUE to the space-separated list ARRAY[WHO]
  local -n lists_=$1
  lists_[$2]="${lists_[$2]:-} $3"
}

echo
echo "-- non-streaming, wrk -t1 -c$CONNS -d${DURATION}s"
printf '%-6s %-10s %12s %10s %10s %8s\n' round gateway "requests/s" "p50 (us)" "p99 (us)" errors
for ((r = 1; r <= RUNS; r++)); do
  if ((r % 2)); then order=(ganglion portkey); else order=(portkey ganglion); fi
  for who in "${order[@]}"; do
    one_target "$who"
    ((T_OK)) || continue
    run_wrk "$T_PORT" "$CONNS" "$DURATION" "$TMP/round$r-c$CONNS-$who.txt" "${T_HDRS[@]}"
    set_mark "$W_BAD" "$W_RPS"
    push RPS "$who" "$W_RPS"; push P50 "$who" "$W_P50_US"; push P99 "$who" "$W_P99_US"
    printf '%-6s %-10s %12s %10s %10s %8s%s\n' "$r" "$who" "$W_RPS" "$W_P50_US" "$W_P99_US" "$W_BAD" "$MARK"
  done
done

# 3. one connection: latency over calling nginx directly
echo
echo "-- non-streaming, one connection, wrk -t1 -c1 -d${DURATION}s"
printf '%-6s %-10s %12s %10s %10s %8s\n' round target "requests/s" "p50 (us)" "p99 (us)" errors
TARGETS=(direct ganglion portkey)
for ((r = 1; r <= RUNS; r++)); do
  order=("${TARGETS[@]:$(((r - 1) % 3))}" "${TARGETS[@]:0:$(((r - 1) % 3))}")
  for who in "${order[@]}"; do
    one_target "$who"
    ((T_OK)) || continue
    run_wrk "$T_PORT" 1 "$DURATION" "$TMP/round$r-c1-$who.txt" "${T_HDRS[@]}"
    set_mark "$W_BAD" "$W_RPS"
    push C1P50 "$who" "$W_P50_US"; push C1P99 "$who" "$W_P99_US"
    printf '%-6s %-10s %12s %10s %10s %8s%s\n' "$r" "$who" "$W_RPS" "$W_P50_US" "$W_P99_US" "$W_BAD" "$MARK"
  done
done

# 4. streaming: time to first byte, one connection
echo
echo "-- streaming, one connection, time to first body byte (llm_ttfb.py, $TTFB_N requests after $TTFB_WARMUP)"
printf '%-6s %-10s %12s %10s %10s %8s\n' round target "" "p50 (us)" "p99 (us)" errors
for ((r = 1; r <= RUNS; r++)); do
  order=("${TARGETS[@]:$(((r - 1) % 3))}" "${TARGETS[@]:0:$(((r - 1) % 3))}")
  for who in "${order[@]}"; do
    one_target "$who"
    ((T_OK)) || continue
    case $who in
      direct) run_ttfb "$UP_PORT" /stream/v1/chat/completions gpt-4o-mini "$TMP/round$r-ttfb-$who.txt" "${DIRECT_HDRS[@]}" ;;
      ganglion) run_ttfb "$GAN_PORT" /v1/chat/completions gpt-4o-mini-stream "$TMP/round$r-ttfb-$who.txt" "${GAN_HDRS[@]}" ;;
      portkey) run_ttfb "$PK_PORT" /v1/chat/completions gpt-4o-mini "$TMP/round$r-ttfb-$who.txt" "${PK_STREAM_HDRS[@]}" ;;
    esac
    set_mark "$T_BAD" "$T_P99_US"
    push TP50 "$who" "$T_P50_US"; push TP99 "$who" "$T_P99_US"
    printf '%-6s %-10s %12s %10s %10s %8s%s\n' "$r" "$who" "" "$T_P50_US" "$T_P99_US" "$T_BAD" "$MARK"
  done
done

GAN_RSS_LOAD=nan; PK_RSS_LOAD=nan
((G_OK)) && kill -0 "$GAN_PID" 2>/dev/null && GAN_RSS_LOAD=$(rss_kb "$GAN_PID")
((P_OK)) && kill -0 "$PK_PID" 2>/dev/null && PK_RSS_LOAD=$(rss_kb "$PK_PID")

# 5. summary
# shellcheck disable=SC2086  # the lists are space-separated on purpose
med() { local -n lists=$1; median ${lists[$2]:-}; }

echo
echo "== medians over $RUNS round(s); ganglion WORKERS=$WORKERS, portkey one Node process"
printf '%-34s %12s %12s %12s\n' "" ganglion portkey "ratio g/p"
G=$(med RPS ganglion); P=$(med RPS portkey)
printf '%-34s %12s %12s %12s\n' "requests/s at c=$CONNS" "$(num "$G")" "$(num "$P")" "$(ratio "$G" "$P")"
RPS_RATIO=$(ratio "$G" "$P")
G=$(med P50 ganglion); P=$(med P50 portkey)
printf '%-34s %12s %12s %12s\n' "p50 at c=$CONNS (us)" "$(num "$G")" "$(num "$P")" "$(ratio "$G" "$P")"
G=$(med P99 ganglion); P=$(med P99 portkey)
printf '%-34s %12s %12s %12s\n' "p99 at c=$CONNS (us)" "$(num "$G")" "$(num "$P")" "$(ratio "$G" "$P")"
P99_RATIO=$(ratio "$G" "$P")
D=$(med C1P99 direct); G=$(med C1P99 ganglion); P=$(med C1P99 portkey)
printf '%-34s %12s %12s %12s\n' "p99 at c=1 (us; nginx direct $(num "$D"))" "$(num "$G")" "$(num "$P")" "$(ratio "$G" "$P")"
printf '%-34s %12s %12s\n' "added p99 at c=1 (us)" "$(minus "$G" "$D")" "$(minus "$P" "$D")"
D=$(med C1P50 direct); G=$(med C1P50 ganglion); P=$(med C1P50 portkey)
printf '%-34s %12s %12s\n' "added p50 at c=1 (us)" "$(minus "$G" "$D")" "$(minus "$P" "$D")"
D=$(med TP99 direct); G=$(med TP99 ganglion); P=$(med TP99 portkey)
printf '%-34s %12s %12s %12s\n' "stream TTFB p99 (us; direct $(num "$D"))" "$(num "$G")" "$(num "$P")" "$(ratio "$G" "$P")"
printf '%-34s %12s %12s\n' "added stream TTFB p99 (us)" "$(minus "$G" "$D")" "$(minus "$P" "$D")"
D=$(med TP50 direct); G=$(med TP50 ganglion); P=$(med TP50 portkey)
printf '%-34s %12s %12s\n' "added stream TTFB p50 (us)" "$(minus "$G" "$D")" "$(minus "$P" "$D")"
printf '%-34s %12s %12s\n' "RSS idle after start" "$(fmt_mb "$GAN_RSS_IDLE")" "$(fmt_mb "$PK_RSS_IDLE")"
printf '%-34s %12s %12s\n' "RSS after the rounds" "$(fmt_mb "$GAN_RSS_LOAD")" "$(fmt_mb "$PK_RSS_LOAD")"
echo
echo "rps ratio ganglion/portkey = $RPS_RATIO (higher is better)"
echo "p99 ratio ganglion/portkey = $P99_RATIO (lower is better)"

if ((WARN)); then
  echo "warning: some runs had non-2xx replies or errors (marked (!)); raw output: KEEP_TMP=1" >&2
fi
if ((!G_OK || !P_OK)); then
  echo "not every gateway could be measured (see messages above); its figures read n/a" >&2
  exit 2
fi
exit 0
