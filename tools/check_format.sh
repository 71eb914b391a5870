#!/usr/bin/env bash
# Checks that every C++ and CUDA file of src/, tests/ and analysis/ is formatted by the
# repository's .clang-format (clang-format 14, Debian 12's). Lists the files that are not, with
# the command that fixes them, and exits 1; exits 77 (skipped) without clang-format.
# Usage: tools/check_format.sh [ROOT]
set -euo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
if ! command -v clang-format >/dev/null 2>&1; then
  echo "clang-format not found: skipped (tools/install-deps.sh installs it)"
  exit 77
fi
cd "$root"
mapfile -t files < <(find src tests analysis -type f \
  \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) | sort)
unformatted=()
for file in "${files[@]}"; do
  clang-format --style=file "$file" | cmp -s - "$file" || unformatted+=("$file")
done
if ((${#unformatted[@]})); then
  printf '%s\n' "${unformatted[@]}"
  echo "${#unformatted[@]} of ${#files[@]} files differ from .clang-format; fix with:"
  echo "  clang-format -i ${unformatted[*]}"
  exit 1
fi
echo "${#files[@]} files formatted"
