#!/usr/bin/env bash
# Writes OpenAI's BPE vocabularies (o200k_base, cl100k_base), which the gateway embeds to count
# OpenAI-family tokens exactly, into .deps/tiktoken/ (git-ignored). Their source is the npm
# package js-tiktoken@1.0.21 (MIT), checked against its registry integrity; the converter then
# checks the ranks against OpenAI's published SHA-256 of each vocabulary. Idempotent: does
# nothing when both files are present with the pinned hashes. Called by install-deps.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${GANGLION_TOKENIZER_DATA:-$root/.deps/tiktoken}"
version=1.0.21
integrity='sha512-biOj/6M5qdgx5TKjDnFT1ymSpM5tbd3ylwDtrQvFQSu0Z7bBYko2dF+W/aUkXUPuk6IVpRxk/3Q2sHOzGlS36g=='
# SHA-256 of the .bpe files (pinned in CMakeLists.txt too).
want=(
  "90d2c2d5fadc8e02450432dbf04e6ba4c4d00ca2bc4fe493389fc2e694861ffc  o200k_base.bpe"
  "93bcb04fe23a9a8a538ee757d962bb04dd996cc4d578fae65b3f1c99bb262f07  cl100k_base.bpe"
)
present() { [ -d "$out" ] && (cd "$out" && printf '%s\n' "${want[@]}" | sha256sum -c --quiet >/dev/null 2>&1); }
present && exit 0

mkdir -p "$out"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/ganglion-tiktoken.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "js-tiktoken@$version" >/dev/null)
tarball="$scratch/js-tiktoken-$version.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "tokenizer-data.sh: js-tiktoken@$version does not match its pinned integrity ($got)" >&2
  exit 1
fi
tar xzf "$tarball" -C "$scratch"
node "$root/scripts/tokenizer-convert.mjs" "$scratch/package/dist/ranks" "$out"
if ! present; then
  echo "tokenizer-data.sh: the converted vocabularies in $out do not match the pinned hashes" >&2
  exit 1
fi
