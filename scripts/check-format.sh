#!/usr/bin/env bash
# Checks that the C++ sources are formatted as .clang-format says (clang-format 14, Debian's
# clang-format-14). Run by ctest as `format`. To fix: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
tool="$(command -v clang-format-14 || command -v clang-format || true)"
if [[ -z "$tool" ]]; then
  echo "check-format.sh: clang-format-14 not found (apt-get install clang-format-14)" >&2
  exit 2
fi
# Tracked files and new ones not yet added (not the ignored ones): a new file is checked before
# its first commit.
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'src/*.cc' 'src/*.h' 'tests/fuzz/*.cc' 'tests/fuzz/*.h' 'bench/*.cc' \
  2>/dev/null || find src tests/fuzz bench -name '*.cc' -o -name '*.h')
if [[ "${1:-}" == "--fix" ]]; then
  "$tool" -i "${files[@]}"
  exit 0
fi
if ! out="$("$tool" --dry-run --Werror "${files[@]}" 2>&1)"; then
  grep -E '^[^ ]+:[0-9]+:[0-9]+: error' <<<"$out" | sed -E 's/:[0-9]+:[0-9]+: .*//' | sort -u | sed 's/^/not formatted: /'
  echo "check-format.sh: run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "format ok (${#files[@]} files)"
