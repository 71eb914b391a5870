#!/usr/bin/env bash
# The quick start: installs the dependencies (Debian 12), builds, runs the six-trial sweep of
# jobs/quickstart.yaml on two MPI ranks (Fashion-MNIST; a few minutes on 2 CPU cores) and prints
# the report. Rerunning it skips the trials already complete.
# Usage: jobs/quickstart.sh [OUT_DIR]   (default runs/quickstart)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-runs/quickstart}"
cd "$root"
tools/install-deps.sh
tools/build.sh --target metadistill   # only what the quick start runs (the tests build with tools/test.sh)
# Open MPI refuses to start as root without these; --oversubscribe lets 2 ranks run on fewer
# cores, --bind-to none leaves the ranks' threads free to move.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenMP threads that spin while waiting starve the other rank when ranks share cores.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
mpirun -np 2 --oversubscribe --bind-to none build/metadistill sweep jobs/quickstart.yaml --out "$out"
build/metadistill report "$out"
