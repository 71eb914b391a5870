#!/usr/bin/env bash
# The test command of the README and CI: installs dependencies, builds everything (with the CUDA
# backend when nvcc is present), runs the whole ctest suite (gpu tests report skipped without a
# GPU), the GPU bundle's rehearsal (CUDA builds) and the Python tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/install-deps.sh"
"$root/tools/build.sh" -DMD_WERROR=ON
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "$root/build" --output-on-failure -j 2 --timeout 900
# The GPU bundle's rehearsal (tests/gpu/rehearse.sh, about a minute): the bundle of this CUDA
# build run in a sandbox without this machine's libraries, as a bare GPU machine would run it.
if grep -q '^MD_CUDA:BOOL=ON' "$root/build/CMakeCache.txt"; then
  if ! command -v bwrap >/dev/null || ! command -v patchelf >/dev/null; then
    apt-get install -y -qq bubblewrap patchelf >/dev/null
  fi
  MD_BUNDLE_NO_BUILD=1 BUILD_DIR="$root/build" bash "$root/tests/gpu/rehearse.sh"
else
  echo "tools/test.sh: no CUDA build, so no GPU bundle to rehearse"
fi
if compgen -G "$root/analysis/tests/test_*.py" >/dev/null; then
  (cd "$root" && /usr/bin/python3 -m pytest -q analysis/tests)
fi
