#!/usr/bin/env bash
# Whole sweeps under mpirun on Fashion-MNIST with a tiny budget (resnet20, a few batches), one
# case per ctest test. Exit 77 (reported as skipped) when mpirun, the data or h5py is missing.
# Usage: run_sweep_mpi.sh CASE METADISTILL_BINARY WORK_DIR
#   np2, np3        every trial runs exactly once (the logged "rank R runs trial I" lines), all
#                   logs end complete; with np2 a rerun skips them all
#   failure         a trial whose data file is missing ends failed (a log is written for it),
#                   the others complete, exit status 1
#   kill_resume     kill -9 of mpirun and its ranks mid-sweep, then a rerun: finished trials are
#                   not rerun (start_time unchanged), every trial ends complete and readable
#   interrupt       SIGUSR1 to the ranks: the running trials checkpoint and end interrupted, no
#                   rank takes another trial, exit status 3; a rerun resumes and completes all
#   trial_index     --trial-index runs that trial alone; --no-resume reruns a complete one
#   data_parallel   a 2-rank trial (ranks_per_trial 2) equals a 1-rank trial of the same global
#                   batch (exact by construction, see make_constant_idx.py), while a 1-rank trial
#                   of half the batch does not; with runtime.cuda_graph the 2-rank trial is the
#                   same bit for bit
set -euo pipefail
case_name="$1"
binary="$2"
work="$3/$case_name"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python=/usr/bin/python3
data=/usr/share/datasets/fashion-mnist

if ! command -v mpirun >/dev/null 2>&1; then echo "SKIPPED: mpirun not found"; exit 77; fi
if [[ ! -f $data/train-images-idx3-ubyte.gz ]]; then echo "SKIPPED: no $data"; exit 77; fi
if ! $python -c "import h5py, numpy" 2>/dev/null; then echo "SKIPPED: no h5py"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() { echo "FAIL: $*"; exit 1; }

# tiny.yaml: 3 methods x 2 seeds = 6 trials of 2 training batches each (by default).
write_tiny_sweep() {
  local epochs="${1:-1}" batches="${2:-2}" methods="${3:-baseline, byot, metadistiller}"
  cat > tiny.yaml <<YAML
name: tiny
base:
  dataset: {name: idx, root: $data}
  model: {arch: resnet20, num_classes: 10}
  optim: {epochs: $epochs, batch_size: 16}
  augment: {random_crop: 0}
  runtime: {device: cpu, threads: 1, max_train_batches: $batches, max_eval_batches: 1, log_every: 1}
grid:
  method.name: [$methods]
  runtime.seed: [0, 1]
YAML
}

mpi() {
  local ranks="$1"
  shift
  mpirun -np "$ranks" --oversubscribe --bind-to none "$binary" "$@"
}

# The trial indices of "rank R runs trial I" lines in a log, one per line, sorted.
started_trials() { grep -o "rank [0-9]* runs trial [0-9]*" "$1" | awk '{print $5}' | sort -n || true; }

# Every trial 0..count-1 started exactly once in the log.
check_each_once() {
  local log="$1" count="$2"
  local expected actual
  expected="$(seq 0 $((count - 1)))"
  actual="$(started_trials "$log")"
  [[ "$actual" == "$expected" ]] || fail "trials started: $(echo $actual) expected $(echo $expected)"
}

# The STATUS column of --list, space-separated.
statuses() { "$binary" sweep "$1" --out "$2" --list | cut -f3 | tr '\n' ' ' | sed 's/ $//'; }

case "$case_name" in
  np2 | np3)
    ranks="${case_name#np}"
    write_tiny_sweep
    mpi "$ranks" sweep tiny.yaml --out out > run1.out 2> run1.err || fail "sweep exit status $?"
    cat run1.err
    check_each_once run1.err 6
    [[ "$(statuses tiny.yaml out)" == "complete complete complete complete complete complete" ]] ||
      fail "statuses: $(statuses tiny.yaml out)"
    for rank in $(seq 0 $((ranks - 1))); do
      grep -q "rank $rank runs trial" run1.err || fail "rank $rank ran no trial"
    done
    grep -q "complete          6" run1.out || fail "summary: $(cat run1.out)"
    [[ $(ls out/*.h5 | grep -vc ckpt) -eq 6 ]] || fail "expected 6 logs"
    if [[ $ranks == 2 ]]; then
      mpi 2 sweep tiny.yaml --out out > run2.out 2> run2.err || fail "rerun exit status $?"
      [[ -z "$(started_trials run2.err)" ]] || fail "rerun started trials $(started_trials run2.err)"
      grep -q "skipped-complete  6" run2.out || fail "rerun summary: $(cat run2.out)"
      "$binary" report out > report.txt || fail "report failed"
    fi
    ;;

  failure)
    cat > failing.yaml <<YAML
name: failing
base:
  dataset: {name: idx, root: $data}
  model: {arch: resnet20, num_classes: 10}
  optim: {epochs: 1, batch_size: 16}
  runtime: {device: cpu, threads: 1, max_train_batches: 2, max_eval_batches: 1}
grid:
  dataset.train_images: [train-images-idx3-ubyte.gz, no-such-file.gz]
  runtime.seed: [0, 1]
YAML
    status=0
    mpi 2 sweep failing.yaml --out out > run.out 2> run.err || status=$?
    cat run.err run.out
    [[ $status -eq 1 ]] || fail "exit status $status, expected 1"
    check_each_once run.err 4
    [[ "$(statuses failing.yaml out)" == "complete complete failed failed" ]] ||
      fail "statuses: $(statuses failing.yaml out)"
    for id in $("$binary" sweep failing.yaml --out out --list | awk -F'\t' '$3 == "failed" {print $2}'); do
      $python "$here/read_log.py" error "out/$id.h5" | grep -q "no-such-file.gz" ||
        fail "the log of $id does not name the missing file"
    done
    grep -q "failed            2" run.out || fail "summary: $(cat run.out)"
    ;;

  kill_resume)
    write_tiny_sweep 2 4
    setsid mpirun -np 2 --oversubscribe --bind-to none "$binary" sweep tiny.yaml --out out \
      > run1.out 2> run1.err &
    launcher=$!
    # Killed while two trials are complete and one is running (its log open for writing).
    complete=0 running=0
    for _ in $(seq 1 600); do
      "$binary" sweep tiny.yaml --out out --list > poll.list 2>/dev/null || true
      complete="$(grep -c $'\tcomplete\t' poll.list || true)"
      running="$(grep -c $'\trunning\t' poll.list || true)"
      [[ $complete -ge 2 && $running -ge 1 ]] && break
      sleep 0.1
    done
    [[ $complete -ge 2 && $running -ge 1 ]] || fail "never two trials complete and one running"
    ranks="$(pgrep -P "$launcher" || true)"
    kill -9 "$launcher" $ranks 2>/dev/null || true
    wait "$launcher" 2>/dev/null || true
    for pid in $ranks; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
    "$binary" sweep tiny.yaml --out out --list > before.list
    cat before.list
    grep -q $'\trunning\t' before.list || fail "no trial was running at the kill"
    done_ids="$(awk -F'\t' '$3 == "complete" {print $2}' before.list)"
    done_indices="$(awk -F'\t' '$3 == "complete" {print $1}' before.list)"
    for id in $done_ids; do $python "$here/read_log.py" start_time "out/$id.h5"; done > start_before.txt

    mpi 2 sweep tiny.yaml --out out > run2.out 2> run2.err || fail "rerun exit status $?"
    cat run2.err run2.out
    [[ "$(statuses tiny.yaml out)" == "complete complete complete complete complete complete" ]] ||
      fail "statuses after the rerun: $(statuses tiny.yaml out)"
    for index in $done_indices; do
      started_trials run2.err | grep -qx "$index" && fail "complete trial $index was rerun"
    done
    for id in $done_ids; do $python "$here/read_log.py" start_time "out/$id.h5"; done > start_after.txt
    diff start_before.txt start_after.txt || fail "start_time of a finished trial changed"
    "$binary" report out > report.txt || fail "report cannot read the logs"
    ;;

  interrupt)
    write_tiny_sweep 1 30 "baseline, byot"
    mpirun -np 2 --oversubscribe --bind-to none "$binary" sweep tiny.yaml --out out \
      > run1.out 2> run1.err &
    launcher=$!
    running=0
    for _ in $(seq 1 600); do
      running="$("$binary" sweep tiny.yaml --out out --list 2>/dev/null | grep -c $'\trunning\t' || true)"
      [[ $running -ge 2 ]] && break
      sleep 0.1
    done
    [[ $running -ge 2 ]] || fail "no two trials running"
    kill -USR1 $(pgrep -P "$launcher")  # what Slurm's --signal=USR1@N sends to every rank
    status=0
    wait "$launcher" || status=$?
    cat run1.err run1.out
    [[ $status -eq 3 ]] || fail "exit status $status after SIGUSR1, expected 3"
    grep -q "interrupted       2" run1.out || fail "summary: $(cat run1.out)"
    [[ "$(statuses tiny.yaml out)" == "interrupted interrupted pending pending" ]] ||
      fail "statuses: $(statuses tiny.yaml out)"
    for id in $("$binary" sweep tiny.yaml --out out --list | awk -F'\t' '$3 == "interrupted" {print $2}'); do
      [[ -f out/$id.ckpt.h5 ]] || fail "interrupted trial $id left no checkpoint"
    done
    mpi 2 sweep tiny.yaml --out out > run2.out 2> run2.err || fail "rerun exit status $?"
    grep -q "resum" run2.err || fail "no trial resumed from its checkpoint: $(cat run2.err)"
    [[ "$(statuses tiny.yaml out)" == "complete complete complete complete" ]] ||
      fail "statuses after the rerun: $(statuses tiny.yaml out)"
    ;;

  trial_index)
    write_tiny_sweep
    id4="$("$binary" sweep tiny.yaml --out out --list | awk -F'\t' '$1 == 4 {print $2}')"
    "$binary" sweep tiny.yaml --out out --trial-index 4 > run1.out 2> run1.err || fail "exit $?"
    [[ "$(statuses tiny.yaml out)" == "pending pending pending pending complete pending" ]] ||
      fail "statuses: $(statuses tiny.yaml out)"
    first="$($python "$here/read_log.py" start_time "out/$id4.h5")"
    "$binary" sweep tiny.yaml --out out --trial-index 4 > run2.out 2> run2.err || fail "exit $?"
    grep -q "skipped-complete  1" run2.out || fail "a complete trial was rerun: $(cat run2.out)"
    sleep 1.1
    "$binary" sweep tiny.yaml --out out --trial-index 4 --no-resume > run3.out 2> run3.err ||
      fail "exit $?"
    second="$($python "$here/read_log.py" start_time "out/$id4.h5")"
    [[ "$first" != "$second" ]] || fail "--no-resume did not rerun trial 4"
    status=0
    "$binary" sweep tiny.yaml --out out --trial-index 6 2> run4.err || status=$?
    [[ $status -eq 2 ]] || fail "--trial-index 6 of 6 trials: exit status $status, expected 2"
    ;;

  data_parallel)
    $python "$here/make_constant_idx.py" . 64
    cat > trial.yaml <<YAML
dataset: {name: idx, root: ., train_images: images-idx3-ubyte, train_labels: labels-idx1-ubyte,
          test_images: images-idx3-ubyte, test_labels: labels-idx1-ubyte}
model: {arch: resnet20, num_classes: 10}
optim: {epochs: 1, batch_size: 32, lr: 0.05, momentum: 0.9}
augment: {random_crop: 0, flip: false}
runtime: {device: cpu, threads: 1, max_train_batches: 2, max_eval_batches: 1, ranks_per_trial: 2}
YAML
    printf 'name: dp\nbase: trial.yaml\n' > dp.yaml
    mpi 2 sweep dp.yaml --out dp > dp.out 2> dp.err || { cat dp.err; fail "sweep exit status $?"; }
    grep -q "1 group(s) of 2 rank(s)" dp.out || fail "not one group of 2 ranks: $(cat dp.out)"
    grep -q "rank 1 joins trial 0" dp.err || fail "rank 1 did not join the trial"
    single() { "$binary" train --config trial.yaml --set runtime.ranks_per_trial=1 --progress off "$@" > /dev/null; }
    single --out one
    single --out init --set optim.lr=1.0e-30
    single --out half --set optim.batch_size=16
    dp_vs_one="$($python "$here/compare_checkpoints.py" dp/*.ckpt.h5 one/*.ckpt.h5 init/*.ckpt.h5)"
    half_vs_one="$($python "$here/compare_checkpoints.py" half/*.ckpt.h5 one/*.ckpt.h5 init/*.ckpt.h5)"
    echo "relative update difference: 2 ranks vs 1 rank $dp_vs_one, half batch vs full $half_vs_one"
    $python -c "import sys; sys.exit(0 if float('$dp_vs_one') < 1e-4 else 1)" ||
      fail "2-rank trial differs from the 1-rank trial: $dp_vs_one"
    $python -c "import sys; sys.exit(0 if float('$half_vs_one') > 1e-2 else 1)" ||
      fail "the control (half batch) should differ: $half_vs_one"
    # runtime.cuda_graph: the recorded step's gradients averaged outside the recording give the
    # same trial over 2 ranks.
    sed 's/ranks_per_trial: 2}/ranks_per_trial: 2, cuda_graph: true}/' trial.yaml > graph.yaml
    printf 'name: dpg\nbase: graph.yaml\n' > dpg.yaml
    mpi 2 sweep dpg.yaml --out dpg > dpg.out 2> dpg.err || { cat dpg.err; fail "sweep exit status $?"; }
    grep -q "runtime.cuda_graph: recorded" dpg.err || fail "the 2-rank trial recorded no step"
    graph_vs_dp="$($python "$here/compare_checkpoints.py" dpg/*.ckpt.h5 dp/*.ckpt.h5 init/*.ckpt.h5)"
    echo "relative update difference: 2 ranks captured vs 2 ranks op by op $graph_vs_dp"
    $python -c "import sys; sys.exit(0 if float('$graph_vs_dp') == 0.0 else 1)" ||
      fail "the captured 2-rank trial differs from the op-by-op one: $graph_vs_dp"
    ;;

  *)
    fail "unknown case $case_name"
    ;;
esac
echo "PASS: $case_name"
