#!/usr/bin/env bash
# End-to-end test of slurm/ on a real one-node Slurm cluster started on localhost (DESIGN.md §7).
#
#   tests/slurm/run_slurm_test.sh REPO_ROOT [METADISTILL]
#
# Starts munged, slurmctld and slurmd as root from slurm/test-cluster/slurm.conf.in, filled in
# with this machine's CPU count and memory, free ports, and a temporary directory that holds
# the munge key, state, spool and logs (nothing under /etc or /var is touched). Then, through
# slurm/submit:
# 1. a sweep in array mode, split into two arrays (the cluster's MaxArraySize is 3);
# 2. the same sweep in array mode again, where one task gets USR1 (scancel --signal=USR1
#    --batch): its trial checkpoints and exits 3, only that task is requeued, and every trial
#    ends with the result of run 1;
# 3. the same sweep in MPI mode on 2 ranks (srun --mpi=pmix when the cluster has it, else
#    mpirun inside the allocation; MD_SLURM_TEST_MPI overrides), interrupted the same way and
#    requeued as a whole job, again with run 1's results, and with trials on both ranks;
# 4. (real metadistill only) an early_stop (ASHA) sweep as 2 array workers, one interrupted and
#    requeued: the same decisions and statuses as a plain local run. MD_SLURM_TEST_ONLY=asha
#    runs this part alone.
# METADISTILL is the real executable; without it the test uses tests/slurm/fake_metadistill,
# which honours the same contract and trains nothing (a quick check of the scripts alone).
# Sweep files and output directories live under a path with a space and a `$(...)`, to catch
# unquoted expansions.
# Exit status 77 (skipped) when slurm-wlm or munge are missing or the test is not run as root.
# Every daemon started here is stopped on exit.
set -euo pipefail

repo=$(cd "${1:?usage: run_slurm_test.sh REPO_ROOT [METADISTILL]}" && pwd)
binary=${2:-}
say() {
  echo "run_slurm_test: [$(date +%T)] $*"
}
skip() {
  echo "SKIPPED: $*"
  exit 77
}
for command in munged munge slurmctld slurmd sbatch squeue sinfo scontrol scancel srun; do
  command -v "$command" >/dev/null || skip "$command not found (apt-get install slurm-wlm munge)"
done
(($(id -u) == 0)) || skip "slurmd must run as root"

if [[ -n $binary ]]; then
  mode=real
  if ! "$binary" sweep --help >/dev/null 2>&1; then
    echo "'$binary sweep --help' fails: build the metadistill target first" >&2
    exit 1
  fi
else
  mode=fake
  binary="$repo/tests/slurm/fake_metadistill"
fi
say "using the $mode metadistill: $binary"

tmp=$(mktemp -d /tmp/md-slurm-test.XXXXXX)
state="$tmp/state"
work="$tmp/sweeps \$(touch pwned) dir"
mkdir -p "$state"/{ctld,slurmd,log,munge} "$work"
chmod 700 "$state/munge"
daemon_pids=()
failures=0

cleanup() {
  local status=$?
  if [[ -S "$state/munge/munge.socket" ]] && [[ -f "$tmp/slurm.conf" ]]; then
    scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 20); do
      [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
      sleep 1
    done
  fi
  for pid in "${daemon_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${daemon_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if ((status != 0 && status != 77)) || [[ -n ${MD_SLURM_TEST_KEEP:-} ]]; then
    say "keeping $tmp for inspection (daemon logs in $state/log)"
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# --- the cluster -------------------------------------------------------------------------
dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$state/munge/munge.key"
munged --foreground --force --key-file="$state/munge/munge.key" \
  --socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
  --seed-file="$state/munge/munged.seed" --log-file="$state/log/munged.log" \
  >>"$state/log/munged.out" 2>&1 &
daemon_pids+=($!)
for _ in $(seq 1 50); do
  [[ -S "$state/munge/munge.socket" ]] && break
  sleep 0.1
done
munge -S "$state/munge/munge.socket" -n | unmunge -S "$state/munge/munge.socket" >/dev/null ||
  { echo "munged does not answer; see $state/log/munged.log" >&2; exit 1; }

read -r ctld_port slurmd_port srun_base < <(/usr/bin/env python3 -c '
import random, socket
def free(count=1):
    while True:
        base = random.randint(20000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(); s.bind(("127.0.0.1", port)); sockets.append(s)
            return base
        except OSError:
            pass
        finally:
            for s in sockets: s.close()
print(free(), free(), free(50))')
node=$(hostname -s)
cpus=$(nproc)
memory_mb=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.8) }' /proc/meminfo)
max_array_size=3
sed -e "s|@NODE@|$node|g" -e "s|@CTLD_PORT@|$ctld_port|" -e "s|@SLURMD_PORT@|$slurmd_port|" \
  -e "s|@SRUN_PORTS@|$srun_base-$((srun_base + 49))|" -e "s|@STATE_DIR@|$state|g" \
  -e "s|@MAX_ARRAY_SIZE@|$max_array_size|" -e "s|@CPUS@|$cpus|" -e "s|@MEMORY_MB@|$memory_mb|" \
  "$repo/slurm/test-cluster/slurm.conf.in" >"$tmp/slurm.conf"
export SLURM_CONF="$tmp/slurm.conf"
slurmctld -D -c -f "$SLURM_CONF" >>"$state/log/slurmctld.out" 2>&1 &
daemon_pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" >>"$state/log/slurmd.out" 2>&1 &
daemon_pids+=($!)
node_state=""
for _ in $(seq 1 60); do
  node_state=$(sinfo -h -N -o %T 2>/dev/null || true)
  [[ $node_state == idle ]] && break
  sleep 1
done
if [[ $node_state != idle ]]; then
  echo "the node did not become idle (state '$node_state'); logs in $state/log" >&2
  tail -n 20 "$state"/log/*.log >&2 || true
  exit 1
fi
say "cluster up: node $node, $cpus CPUs, ${memory_mb} MB, slurmctld port $ctld_port"

# --- the sweep ---------------------------------------------------------------------------
sweep="$work/tiny sweep \$(x).yaml"
if [[ $mode == real ]]; then
  cat >"$work/tiny trial.yaml" <<'EOF'
dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}
model: {arch: wrn_16_1, num_classes: 10, in_channels: 1}
method: {name: byot}
optim: {epochs: 3, batch_size: 32, lr: 0.05, schedule: {name: cosine}}
augment: {random_crop: 0, flip: false}
runtime: {device: cpu, threads: 1, seed: 0, log_every: 5, checkpoint_every_epochs: 1,
          max_train_batches: 24, max_eval_batches: 4}
EOF
  cat >"$sweep" <<'EOF'
name: slurm-test
base: tiny trial.yaml
grid: {runtime.seed: [0, 1], method.name: [baseline, byot]}
EOF
  trial_count=4
else
  printf 'fake_trials: 4\nfake_steps: 30\n' >"$sweep"
  trial_count=4
fi

# check_complete DIR: every trial of the sweep is complete in DIR.
check_complete() {
  local out_dir=$1 listing
  listing=$("$binary" sweep "$sweep" --out "$out_dir" --list)
  if [[ $(grep -c $'\tcomplete\t' <<<"$listing") != "$trial_count" ]]; then
    fail "not every trial is complete in '$out_dir':"$'\n'"$listing"
  fi
}

# trial_result DIR ID: what an interrupted run must reproduce exactly. Fake: the checksum.
# Real: the per-epoch losses and accuracies and the final accuracies (not the wall times).
trial_result() {
  local out_dir=$1 trial_id=$2
  if [[ $mode == fake ]]; then
    cat "$out_dir/$trial_id.result"
    return
  fi
  /usr/bin/python3 - "$out_dir/$trial_id.h5" <<'EOF'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as log:
    for name, value in sorted(log["final"].attrs.items()):
        if "wall" not in name and "hours" not in name:
            print("final", name, repr(value))
    for name in sorted(log["epoch"]):
        if name != "wall_s":
            print("epoch", name, [repr(v) for v in log["epoch"][name][()]])
EOF
}

# wait_for_jobs SECONDS: until the queue is empty. A job that a script requeued on its own
# (mpi.sbatch after a step that never started) and that Slurm holds for BeginTime is released
# after 12 s on hold (the old credential's expiry, see interrupt below) instead of Slurm's delay.
wait_for_jobs() {
  local limit=$1 queue job state reason second
  local empty_polls=0
  declare -A held_since=()
  for second in $(seq 1 "$limit"); do
    # Empty on three polls in a row: a job being requeued can vanish from squeue for a moment.
    if queue=$(squeue -h -o "%i %t %r" 2>/dev/null) && [[ -z $queue ]]; then
      ((++empty_polls >= 3)) && return 0
    else
      empty_polls=0
      while read -r job state reason; do
        [[ -n $job && $state == PD && $reason == BeginTime ]] || continue
        [[ -n ${held_since["$job"]:-} ]] || held_since["$job"]=$second
        if ((second - ${held_since["$job"]} >= 12)); then
          scontrol update JobId="$job" StartTime=now 2>/dev/null || true
          say "job $job released from a BeginTime hold after its script requeued it"
          unset 'held_since["$job"]'
        fi
      done <<<"$queue"
    fi
    sleep 1
  done
  fail "jobs still queued after ${limit}s:"$'\n'"$(squeue)"
  return 1
}

# --- array mode: 4 trials in arrays of at most MaxArraySize-1 = 2 tasks -------------------
if [[ ${MD_SLURM_TEST_ONLY:-} != asha ]]; then
array_out="$work/array out \$(x)"
array_jobs=$("$repo/slurm/submit" "$sweep" --out "$array_out" --binary "$binary" --gpus 0 \
  --throttle 2 --signal-seconds 30)
say "array mode: jobs $(tr '\n' ' ' <<<"$array_jobs")"
[[ $(wc -l <<<"$array_jobs") == 2 ]] || fail "expected 2 arrays (MaxArraySize $max_array_size), got: $array_jobs"
wait_for_jobs 240 || true
say "array mode: queue empty"
check_complete "$array_out"
log_count=$(find "$array_out/.slurm/logs" -name '*.out' | wc -l)
[[ $log_count == "$trial_count" ]] || fail "expected $trial_count array task logs, found $log_count"
grep -q "array.sbatch: trial .* exited with status 0" "$array_out/.slurm/logs/"*.out ||
  fail "array task logs lack the exit line"
resubmit=$("$repo/slurm/submit" "$sweep" --out "$array_out" --binary "$binary" --gpus 0 2>&1)
grep -q "nothing to submit" <<<"$resubmit" || fail "a complete sweep was submitted again: $resubmit"
fi

# trial_id OUT_DIR INDEX: the id of trial INDEX.
trial_id() {
  "$binary" sweep "$sweep" --out "$1" --list | awk -F"\t" -v wanted="$2" '$1 == wanted { print $2 }'
}

# interrupt JOB OUT_DIR TRIAL_ID: once the trial is well under way (its progress is on disk),
# sends USR1 to the batch shell of JOB (an array task or a whole job), then lets the requeued
# job start at once instead of after Slurm's requeue delay (reason BeginTime).
interrupt() {
  local job=$1 out_dir=$2 id=$3 started=0
  for _ in $(seq 1 600); do
    if [[ $mode == fake ]]; then
      [[ -f "$out_dir/$id.progress" && $(cat "$out_dir/$id.progress") -ge 5 ]] && started=1
    else
      [[ -f "$out_dir/$id.h5" ]] && started=1
    fi
    ((started)) && break
    sleep 0.1
  done
  ((started)) || fail "trial $id of job $job never started"
  # A few steps in (a trial of 3 x 24 steps takes several seconds), well before it ends.
  [[ $mode == real ]] && sleep 1
  scancel --signal=USR1 --batch "$job"
  say "sent USR1 to job $job (trial $id under way)"
  local reason
  for _ in $(seq 1 120); do
    reason=$(squeue -h -j "$job" -o "%t %r" 2>/dev/null) || { sleep 0.25; continue; }  # ctld busy
    # Release only once the requeue has finished (PD): updating a job still completing (CG)
    # races with the requeue itself.
    if [[ $reason == "PD BeginTime" ]]; then
      # Not at once: until the old credential expires (cred_expire in slurm.conf.in) a
      # restarted job is killed as "Job credential revoked".
      sleep 11
      scontrol update JobId="$job" StartTime=now 2>/dev/null || true
      say "requeued job $job released from its BeginTime hold"
      return 0
    fi
    [[ -z $reason ]] && return 0  # already finished: check_requeued tells whether it was requeued
    sleep 0.25
  done
  say "job $job is not held for BeginTime (reason '$reason'): waiting for Slurm's own schedule"
}

# check_requeued LOG TEXT: the batch log shows the requeue and a second run.
check_requeued() {
  local log=$1 text=$2
  if [[ ! -f $log ]]; then
    fail "no log at '$log'"
    return
  fi
  grep -qF "$text" "$log" || fail "no '$text' in '$log':"$'\n'"$(cat "$log")"
  grep -q "restart 1," "$log" || fail "the job did not run again after the requeue:"$'\n'"$(cat "$log")"
}

# check_same_results OUT_DIR: every trial has the result of the uninterrupted array run.
check_same_results() {
  local out_dir=$1 index id expected actual
  for ((index = 0; index < trial_count; ++index)); do
    id=$(trial_id "$out_dir" "$index")
    expected=$(trial_result "$array_out" "$id")
    actual=$(trial_result "$out_dir" "$id")
    if [[ -z $expected || $expected != "$actual" ]]; then
      fail "trial $index ($id) in '$out_dir' differs from the uninterrupted array run:"$'\n'"$(
        diff <(echo "$expected") <(echo "$actual"))"
    fi
  done
}

# --- array requeue: USR1 to one array task; it checkpoints, exits 3, is requeued, completes
if [[ ${MD_SLURM_TEST_ONLY:-} != asha ]]; then
requeue_out="$work/requeue out \$(x)"
requeue_jobs=$("$repo/slurm/submit" "$sweep" --out "$requeue_out" --binary "$binary" --gpus 0 \
  --throttle 1 --signal-seconds 30)
first_job=$(head -n 1 <<<"$requeue_jobs")
signalled_task="${first_job}_0"
signalled_trial=$(head -n 1 "$requeue_out/.slurm/submit-000/chunk-0.index")
interrupt "$signalled_task" "$requeue_out" "$(trial_id "$requeue_out" "$signalled_trial")"
wait_for_jobs 300 || true
say "array requeue: queue empty"
check_complete "$requeue_out"
check_requeued "$(find "$requeue_out/.slurm/logs" -name "*-${first_job}_0.out" -print -quit)" \
  "checkpointed after a signal; requeueing task $signalled_task"
check_same_results "$requeue_out"

# --- MPI mode: one allocation of 2 ranks, dynamic queue, interrupted and requeued as a whole
mpi_type=mpirun
if srun --mpi=list 2>&1 | grep -qw pmix; then
  mpi_type=pmix
fi
mpi_type=${MD_SLURM_TEST_MPI:-$mpi_type}
if [[ $mpi_type == mpirun ]]; then
  # The test's jobs run as root, which Open MPI's mpirun refuses unless told.
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
mpi_out="$work/mpi out \$(x)"
mpi_job=$("$repo/slurm/submit" "$sweep" --out "$mpi_out" --binary "$binary" --gpus 0 \
  --mode mpi --ranks 2 --mpi "$mpi_type")
say "mpi mode (--mpi=$mpi_type): job $mpi_job"
interrupt "$mpi_job" "$mpi_out" "$(trial_id "$mpi_out" 0)"
wait_for_jobs 300 || true
say "mpi mode: queue empty"
check_complete "$mpi_out"
check_requeued "$mpi_out/.slurm/logs/md-tiny sweep \$(x)-$mpi_job.out" \
  "the ranks checkpointed after a signal; requeueing job $mpi_job"
check_same_results "$mpi_out"
if [[ $mode == fake ]]; then
  ranks_seen=$(cut -d' ' -f2 "$mpi_out/ranks.log" | sort -u | tr '\n' ' ')
else
  ranks_seen=$(sed -n 's/.* info: rank \([0-9]*\) runs trial .*/\1/p' "$mpi_out/.slurm/logs/"*.out | sort -u | tr '\n' ' ')
fi
[[ $ranks_seen == "0 1 " ]] || fail "both ranks should have run trials, saw ranks: '$ranks_seen'"
fi

# --- ASHA as array workers (real metadistill only): the 12 x 2 sweep of
# tests/sweep/run_asha_mpi.sh through slurm/submit as 2 worker tasks, one of them sent USR1 and
# requeued (it resumes its own work); the decisions and statuses equal a plain local run's.
if [[ $mode == real ]]; then
  asha_sweep="$work/asha sweep \$(x).yaml"
  cat >"$asha_sweep" <<'EOF'
name: asha_slurm
base:
  dataset: {name: idx, root: /usr/share/datasets/fashion-mnist, train_count: 2048}
  model: {arch: wrn_10_1, num_classes: 10}
  optim: {epochs: 6, batch_size: 32, schedule: {name: cosine}}
  augment: {random_crop: 0}
  runtime: {device: cpu, threads: 1, max_train_batches: 12, max_eval_batches: 8, log_every: 12}
grid:
  optim.lr: [0.003, 0.0003, 0.02, 0.0001, 0.001, 0.01, 0.00003, 0.002, 0.0002, 0.005, 0.0005, 0.00005]
  runtime.seed: [0, 1]
early_stop: {method: asha, metric: acc_final, rungs: [1, 2], reduction: 3}
EOF
  asha_reference="$work/asha reference"
  OMP_WAIT_POLICY=passive "$binary" sweep "$asha_sweep" --out "$asha_reference" --progress off \
    >"$tmp/asha-reference.out" 2>&1 || fail "the local ASHA run failed: $(tail "$tmp/asha-reference.out")"
  asha_out="$work/asha out \$(x)"
  asha_job=$("$repo/slurm/submit" "$asha_sweep" --out "$asha_out" --binary "$binary" --gpus 0 \
    --workers 2 --signal-seconds 30)
  say "ASHA array workers: job $asha_job"
  asha_first=$("$binary" sweep "$asha_sweep" --out "$asha_out" --list | awk -F"\t" '$1 == 0 { print $2 }')
  interrupt "${asha_job}_0" "$asha_out" "$asha_first"
  wait_for_jobs 400 || true
  say "ASHA array workers: queue empty"
  list_asha() { "$binary" sweep "$asha_sweep" --out "$1" --list | cut -f1,3; }
  decisions() { /usr/bin/python3 "$repo/tests/sweep/asha_check.py" decisions "$1"; }
  [[ "$(list_asha "$asha_out")" == "$(list_asha "$asha_reference")" ]] ||
    fail "ASHA statuses differ from the local run:"$'\n'"$(diff <(list_asha "$asha_reference") <(list_asha "$asha_out"))"
  [[ -n "$(decisions "$asha_reference")" && "$(decisions "$asha_out")" == "$(decisions "$asha_reference")" ]] ||
    fail "ASHA decisions differ from the local run:"$'\n'"$(diff <(decisions "$asha_reference") <(decisions "$asha_out"))"
  check_requeued "$(find "$asha_out/.slurm/logs" -name "*-${asha_job}_0.out" -print -quit)" \
    "checkpointed after a signal; requeueing task ${asha_job}_0"
  resubmit=$("$repo/slurm/submit" "$asha_sweep" --out "$asha_out" --binary "$binary" --gpus 0 2>&1)
  grep -q "nothing to submit" <<<"$resubmit" || fail "a finished ASHA sweep was submitted again: $resubmit"
  say "ASHA array workers: same $(decisions "$asha_out" | wc -l) decisions as the local run"
fi

[[ -z $(find "$tmp" -name pwned) ]] || fail "a path was expanded by a shell (found a file named pwned)"
if ((failures)); then
  say "$failures failures"
  exit 1
fi
say "all checks passed ($mode metadistill)"
