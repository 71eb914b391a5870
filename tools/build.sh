#!/usr/bin/env bash
# Configures and builds metadistill into ./build (Release). The CUDA backend is compiled when
# nvcc is found (on PATH or under /usr/local/cuda); it runs only where a GPU is present.
# Usage: tools/build.sh [--target NAME]... [extra cmake args...]
#   --target NAME  build only NAME (e.g. metadistill) instead of everything, tests included
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
targets=()
cmake_args=()
while (($#)); do
  if [[ "$1" == "--target" ]]; then
    (($# >= 2)) || { echo "tools/build.sh: --target needs a name" >&2; exit 2; }
    targets+=(--target "$2")
    shift 2
  else
    cmake_args+=("$1")
    shift
  fi
done
jobs="$(nproc)"
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
cmake --build "$root/build" -j "$jobs" "${targets[@]}"
