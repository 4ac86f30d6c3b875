#!/usr/bin/env bash
# Installs every Debian package Ganglion needs to build, test and benchmark.
# Safe to run any number of times: apt-get skips what is already installed.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # libraries (Debian 12 versions recorded in docs/dependencies.md)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libyaml-cpp-dev libfmt-dev libspdlog-dev libcli11-dev libsqlite3-dev libhiredis-dev
  libpcre2-dev libre2-dev libmodbus-dev libcoap3-dev
  node-llhttp
  libgtest-dev libgmock-dev libbenchmark-dev
  # test and benchmark peers
  nginx-light wrk curl openssl python3 procps redis-server sqlite3 strace haproxy
  mosquitto mosquitto-clients influxdb libcoap3-bin
  clang-14 libclang-rt-14-dev clang-format-14
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Node.js (20 or later) and npm run the end-to-end SDK tests and the Portkey benchmark; the
# pinned npm packages themselves are installed by tests/e2e/run.sh and bench/llm_vs_portkey.sh.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# OpenAI's BPE vocabularies for exact token counts, from npm, checked against OpenAI's hashes.
bash "$(dirname "$0")/tokenizer-data.sh"
# nginx, redis-server, haproxy and influxdb from Debian start system services on install; the tests and
# benchmarks run their own on free ports.
for service in nginx redis-server haproxy influxdb; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done
