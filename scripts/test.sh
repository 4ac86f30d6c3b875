#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, integration, fuzz smoke runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 300
