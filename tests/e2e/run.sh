#!/usr/bin/env bash
# End-to-end tests against the real gateway binary ($GANGLION_BIN, default build/ganglion) and the
# fake provider: the official openai and @anthropic-ai/sdk Node clients (sdk.test.mjs), then the
# Vercel AI SDK, LangChain.js and LlamaIndex.TS (clients.test.mjs); then the token counts against
# tiktoken, OpenAI's own tokenizer (tokenizer.test.mjs).
# Installs the pinned clients from package-lock.json when any of them is missing.
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
# npm ci when any dependency of package.json (the test files import them all) is not installed.
missing="$(node -e 'const fs = require("fs");
const deps = Object.keys(JSON.parse(fs.readFileSync("package.json", "utf8")).dependencies);
console.log(deps.filter((d) => !fs.existsSync(`node_modules/${d}/package.json`)).join(" "));')"
if [[ -n "$missing" ]]; then
  echo "e2e: installing the pinned clients (missing: $missing)" >&2
  npm ci --prefer-offline --no-audit --no-fund
fi
# The official SDKs first, then the libraries on top of them; each file starts its own gateway and
# fake provider. (One node --test per file: given several, it runs them in name order.) Both run
# whatever the first one's outcome; the script fails if either does.
status=0
node --test --test-concurrency=1 sdk.test.mjs || status=$?
node --test --test-concurrency=1 clients.test.mjs || status=$?
node --test tokenizer.test.mjs || status=$?
exit "$status"
