#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/) with clang++-14 in build-fuzz/ and runs each for
# SECONDS (default 20) on a scratch copy of its seed corpus. Exits non-zero if any target
# crashes, leaks, times out or fails a check; the failing input is kept under
# build-fuzz/artifacts/<target>/. Safe to rerun: the build is incremental.
#
#   scripts/fuzz.sh [SECONDS]
#   env: FUZZ_JOBS (build parallelism, default 2), FUZZ_TARGETS (default: all),
#        GANGLION_FUZZ_BUILD_DIR (default build-fuzz), GANGLION_FUZZ_FORCE_PCH=ON (force-include
#        src/pch.h if a src/ file stops compiling on its own), FUZZ_CXXFLAGS (extra compiler flags).
# Reproduce a saved crash: build-fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || (( seconds < 1 )); then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GANGLION_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${FUZZ_JOBS:-2}"
targets=(${FUZZ_TARGETS:-http1_parser_fuzz keepalive_fuzz config_fuzz llm_fuzz tokenizer_fuzz output_guard_fuzz static_path_fuzz edge_expr_fuzz edge_payload_fuzz mqtt_fuzz durable_log_fuzz edge_state_fuzz})
cxx="$(command -v clang++-14 || true)"
cc="$(command -v clang-14 || true)"
if [[ -z "$cxx" || -z "$cc" ]]; then
  echo "fuzz.sh: clang-14/clang++-14 not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 2
fi

mkdir -p "$build"
# One run at a time per build tree (ctest -j, or two shells).
exec 9>"$build/.fuzz.lock"
flock 9

echo "== building fuzz targets in $build"
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_FLAGS="${FUZZ_CXXFLAGS:-}" \
  -DGANGLION_FUZZ_FORCE_PCH="${GANGLION_FUZZ_FORCE_PCH:-OFF}" >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  exit 1
}
nice -n 10 cmake --build "$build" -j "$jobs" --target "${targets[@]}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/ganglion-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
for target in "${targets[@]}"; do
  case "$target" in
    http1_parser_fuzz) seeds=http1; extra=(-dict="$root/tests/fuzz/http.dict" -max_len=4096) ;;
    keepalive_fuzz)    seeds=keepalive; extra=(-dict="$root/tests/fuzz/http.dict" -max_len=4096) ;;
    config_fuzz)       seeds=config; extra=(-max_len=8192) ;;
    llm_fuzz)          seeds=llm; extra=(-max_len=8192) ;;
    tokenizer_fuzz)    seeds=tokenizer; extra=(-max_len=4096) ;;
    output_guard_fuzz) seeds=output_guard; extra=(-max_len=8192) ;;
    static_path_fuzz)  seeds=static_path; extra=(-max_len=1024) ;;
    edge_expr_fuzz)    seeds=edge_expr; extra=(-dict="$root/tests/fuzz/edge_expr.dict" -max_len=4608) ;;
    edge_payload_fuzz) seeds=edge_payload; extra=(-max_len=8192) ;;
    edge_state_fuzz)   seeds=edge_state; extra=(-max_len=8192) ;;
    mqtt_fuzz)         seeds=mqtt; extra=(-max_len=8192) ;;
    durable_log_fuzz)  seeds=durable_log; extra=(-max_len=8192) ;;
    *) echo "fuzz.sh: unknown target $target" >&2; exit 2 ;;
  esac
  corpus="$scratch/$target"
  artifacts="$build/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  cp "$root/tests/fuzz/corpus/$seeds/"* "$corpus/"
  # Saved reproducers of bugs found before (tests/fuzz/crashes/<seeds>-*) replay first.
  shopt -s nullglob
  repros=("$root/tests/fuzz/crashes/$seeds-"*)
  shopt -u nullglob
  if (( ${#repros[@]} )); then
    echo "== $target: replaying ${#repros[@]} saved reproducer(s) from tests/fuzz/crashes/"
    if ! "$build/$target" "${repros[@]}" >"$scratch/$target.replay.log" 2>&1; then
      grep -E 'check failed|^Running|ERROR|SUMMARY|split-dependent' "$scratch/$target.replay.log" | head -20
      echo "== $target: FAILED on a saved reproducer (see tests/fuzz/crashes/README.md)" >&2
      status=1
      continue  # fuzzing would only find the same bug again
    fi
  fi
  echo "== $target: ${seconds}s"
  if "$build/$target" "$corpus" "${extra[@]}" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts" -print_final_stats=1 \
      >"$scratch/$target.log" 2>&1; then
    grep -E '^(#[0-9]+ +DONE|Done [0-9]+ runs|stat::number_of_executed_units)' "$scratch/$target.log" | tail -2 || true
    echo "== $target: ok"
  else
    rc=$?
    tail -n 80 "$scratch/$target.log"
    echo "== $target: FAILED (exit $rc); input saved under $artifacts" >&2
    ls -t "$artifacts" | head -3 | sed "s|^|   $artifacts|" >&2
    status=1
  fi
done
exit $status
