#!/usr/bin/env bash
# slurm/mpi.sbatch's ending, without a Slurm cluster: shims of srun and scontrol on PATH and
# tests/slurm/fake_metadistill as the binary (its trial statuses are files in the output
# directory). A launcher that exits 3 requeues the job; one that exits 0 while a trial is still
# interrupted or running (srun reporting success for a step that never started, as it can right
# after a requeue) requeues it too, and fails it after 20 restarts; a launcher that exits 0 with
# every trial complete ends the job with 0, unrequeued. Usage: test_mpi_sbatch.sh REPO_ROOT
set -euo pipefail

repo=$(cd "${1:?usage: test_mpi_sbatch.sh REPO_ROOT}" && pwd)
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
mkdir -p "$base/bin" "$base/out"
printf 'fake_trials: 2\nfake_steps: 1\n' >"$base/sweep.yaml"
# srun: exits with $SHIM_SRUN_STATUS without starting anything.
cat >"$base/bin/srun" <<'SHIM'
#!/usr/bin/env bash
echo "srun: error: task 0 launch failed: Unspecified error (shim)" >&2
exit "${SHIM_SRUN_STATUS:-0}"
SHIM
# scontrol: records its arguments.
cat >"$base/bin/scontrol" <<'SHIM'
#!/usr/bin/env bash
echo "$*" >>"$SHIM_SCONTROL_LOG"
SHIM
chmod +x "$base/bin/srun" "$base/bin/scontrol"
export SHIM_SCONTROL_LOG="$base/scontrol.log"
failures=0

# case NAME SRUN_STATUS RESTART_COUNT STATUS0 STATUS1 EXPECTED_EXIT EXPECTED_REQUEUES
case_() {
  local name=$1 srun_status=$2 restarts=$3 expected_exit=$6 expected_requeues=$7 rc=0
  echo "$4" >"$base/out/trial0.status"
  echo "$5" >"$base/out/trial1.status"
  : >"$SHIM_SCONTROL_LOG"
  PATH="$base/bin:$PATH" SHIM_SRUN_STATUS=$srun_status SLURM_JOB_ID=42 \
    SLURM_RESTART_COUNT=$restarts SLURM_NTASKS=2 \
    bash "$repo/slurm/mpi.sbatch" "$repo/tests/slurm/fake_metadistill" "$base/sweep.yaml" \
    "$base/out" pmix >"$base/$name.log" 2>&1 || rc=$?
  local requeues
  requeues=$(grep -c "^requeue 42$" "$SHIM_SCONTROL_LOG" || true)
  if [[ $rc != "$expected_exit" || $requeues != "$expected_requeues" ]]; then
    echo "FAIL $name: exit $rc (expected $expected_exit), $requeues requeue(s) (expected" \
      "$expected_requeues)"
    cat "$base/$name.log"
    failures=$((failures + 1))
  else
    echo "ok   $name"
  fi
}

case_ checkpointed_after_signal 3 0 interrupted pending 0 1
case_ launch_failed_after_requeue 0 1 interrupted pending 0 1
case_ launch_failed_left_running 0 1 complete running 0 1
case_ launch_failed_too_often 0 20 interrupted complete 1 0
case_ sweep_complete 0 1 complete complete 0 0
case_ trial_failed 1 0 complete failed 1 0
grep -q "the launcher exited 0 but trials are still interrupted" "$base/launch_failed_after_requeue.log" ||
  { echo "FAIL: no message for the launch that did not run"; failures=$((failures + 1)); }
((failures == 0)) || exit 1
echo "test_mpi_sbatch: all cases passed"
