#!/usr/bin/env bash
# Installs dependencies, builds, and starts the gateway on the default config: the welcome
# page on http://127.0.0.1:8080/, the LLM API for whichever of OPENAI_API_KEY,
# ANTHROPIC_API_KEY and GEMINI_API_KEY are set, the admin API on 127.0.0.1:9901.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
new_secret() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }
if [ -z "${GANGLION_ADMIN_TOKEN:-}" ]; then
  GANGLION_ADMIN_TOKEN=$(new_secret)
  export GANGLION_ADMIN_TOKEN
  echo "admin token for this run:        export GANGLION_ADMIN_TOKEN=$GANGLION_ADMIN_TOKEN" >&2
fi
if [ -z "${GANGLION_API_KEY:-}" ]; then
  GANGLION_API_KEY="sk-gw-$(new_secret)"
  export GANGLION_API_KEY
  echo "gateway key for the LLM API:     export GANGLION_API_KEY=$GANGLION_API_KEY" >&2
fi
echo "open http://127.0.0.1:8080/ to see what is configured" >&2
exec build/ganglion serve --config "${GANGLION_CONFIG:-config/ganglion.yaml}"
