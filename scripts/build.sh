#!/usr/bin/env bash
# Configures and builds Ganglion into build/ (Release by default; BUILD_TYPE=Debug to change,
# SANITIZE=1 for AddressSanitizer + UBSan).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" \
    -DGANGLION_SANITIZE="$([ "${SANITIZE:-0}" = 1 ] && echo ON || echo OFF)"
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
