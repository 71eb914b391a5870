#!/usr/bin/env bash
# The one way to run the GPU checks on a GPU machine: a thin wrapper around a bundle's run.sh
# (tests/gpu/bundle.sh builds the bundle, tests/gpu/bundle-run.sh is its run.sh; docs/gpu.md).
#
# Usage: tests/run_gpu.sh [--bundle DIR] [--budget-s N]
#   --bundle DIR   a bundle built elsewhere and carried here (or MD_BUNDLE=DIR); otherwise one is
#                  built here first into $BUILD_DIR/bundle (BUILD_DIR default build-gpu), which
#                  needs this machine to build the whole project (CUDA toolkit, cuDNN, OpenBLAS,
#                  MPI, HDF5, Boost, yaml-cpp, GoogleTest): on a bare GPU machine, carry a bundle.
#   --budget-s N   passed to run.sh (default 300)
# Results under $OUT (default ./gpu-results); exit status is run.sh's: 0 every check passed,
# 1 something failed, 2 no GPU visible (or a bad argument).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="${MD_BUNDLE:-}"
args=()
while (($#)); do
  case "$1" in
    --bundle) bundle="${2:?--bundle needs a folder}"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' | head -n -1; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ -z "${bundle}" ]]; then
  build_dir="${BUILD_DIR:-${repo}/build-gpu}"
  bundle="${build_dir}/bundle"
  archs="${MD_CUDA_ARCHS:-}"
  if [[ -z "${archs}" ]] && command -v nvidia-smi > /dev/null 2>&1; then
    archs="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2> /dev/null | tr -d ' .' | sort -u | paste -sd ';' || true)"
  fi
  BUILD_DIR="${build_dir}" MD_CUDA_ARCHS="${archs:-80;90}" bash "${repo}/tests/gpu/bundle.sh" "${bundle}"
fi
exec bash "${bundle}/run.sh" "${args[@]+"${args[@]}"}"
