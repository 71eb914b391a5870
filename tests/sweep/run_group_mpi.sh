#!/usr/bin/env bash
# Runs test_group_mpi (the readiness exchange of a trial's rank group) under mpirun -np 2.
# Exit 77 (reported as skipped) when mpirun is missing.
# Usage: run_group_mpi.sh TEST_BINARY
set -euo pipefail
binary="$1"
if ! command -v mpirun >/dev/null 2>&1; then echo "SKIPPED: mpirun not found"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
exec mpirun -np 2 --oversubscribe --bind-to none "$binary"
