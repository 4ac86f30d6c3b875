#!/usr/bin/env bash
# Installs dependencies, builds, and starts the gateway on the default config.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
if [ -z "${GANGLION_ADMIN_TOKEN:-}" ]; then
  GANGLION_ADMIN_TOKEN=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  export GANGLION_ADMIN_TOKEN
  echo "admin token for this run: $GANGLION_ADMIN_TOKEN" >&2
fi
exec build/ganglion serve --config "${GANGLION_CONFIG:-config/ganglion.yaml}"
