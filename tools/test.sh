#!/usr/bin/env bash
# The test command of the README and CI: installs dependencies, builds everything (with the CUDA
# backend when nvcc is present), runs the whole ctest suite (gpu tests report skipped without a
# GPU) and the Python tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/install-deps.sh"
"$root/tools/build.sh" -DMD_WERROR=ON
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir "$root/build" --output-on-failure -j 2 --timeout 900
if compgen -G "$root/analysis/tests/test_*.py" >/dev/null; then
  (cd "$root" && /usr/bin/python3 -m pytest -q analysis/tests)
fi
