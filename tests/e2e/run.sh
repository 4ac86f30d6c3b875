#!/usr/bin/env bash
# End-to-end tests with the official openai and @anthropic-ai/sdk Node clients against the real
# gateway binary ($GANGLION_BIN, default build/ganglion) and the fake provider.
# Installs the pinned clients from package-lock.json when node_modules is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export GANGLION_BIN="$(realpath -m "${GANGLION_BIN:-$repo/build/ganglion}")"  # the tests run from tests/e2e
if [[ ! -x "$GANGLION_BIN" ]]; then
  echo "e2e: gateway binary not found at $GANGLION_BIN (build it, or set GANGLION_BIN)" >&2
  exit 1
fi
command -v node >/dev/null || { echo "e2e: node not found (Node 20 or later is needed)" >&2; exit 1; }
cd "$here"
if [[ ! -d node_modules/openai || ! -d node_modules/@anthropic-ai/sdk ]]; then
  npm ci --prefer-offline --no-audit --no-fund
fi
exec node --test --test-concurrency=1 sdk.test.mjs
