#!/usr/bin/env bash
# Fails (listing the files) when a tracked C++ source or header differs from what clang-format
# makes of it under the repository's .clang-format. `scripts/check-format.sh --fix` rewrites them.
# bpf/ keeps the kernel's style (its own .clang-format turns formatting off there).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' ':!:bpf/*')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "not formatted (scripts/check-format.sh --fix): ${bad[*]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files follow .clang-format"
