#!/usr/bin/env bash
# ASHA under mpirun -np 2 on Fashion-MNIST (label mpi; exit 77, reported as skipped, when mpirun,
# the data or h5py is missing). One sweep of 12 learning rates x 2 seeds (wrn_10_1, 2048 images,
# 12 batches an epoch, 6 epochs, cosine schedule: the ranking by learning rate is clear), run
#   1. in full (no early_stop): its best configuration and its trial-epochs (144);
#   2. with early_stop {rungs: [1, 2], reduction: 3}: at most 40% of the full sweep's
#      trial-epochs, the same best configuration, whose trials end bit-identical to the full
#      sweep's (same weights, same optimizer state), every other trial `stopped` with its log and
#      checkpoint;
#   3. the same ASHA sweep killed with kill -9 (mpirun and its ranks) once decisions were recorded
#      and a trial was running, then the same command: the same decisions, statuses and best
#      weights as run 2, and no trial that was complete or stopped for good trained again (its
#      log is byte-identical).
# Before them, bad early_stop and budget sections: exit status 2 naming the key, and a budget of
# trial-epochs that stops starting new work once spent.
# The figures go to stdout (ctest --output-on-failure, or -V, shows them).
# Usage: run_asha_mpi.sh METADISTILL_BINARY WORK_DIR
set -euo pipefail
binary="$1"
work="$2/asha"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python=/usr/bin/python3
data=/usr/share/datasets/fashion-mnist

if ! command -v mpirun >/dev/null 2>&1; then echo "SKIPPED: mpirun not found"; exit 77; fi
if [[ ! -f $data/train-images-idx3-ubyte.gz ]]; then echo "SKIPPED: no $data"; exit 77; fi
if ! $python -c "import h5py, numpy" 2>/dev/null; then echo "SKIPPED: no h5py"; exit 77; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive
rm -rf "$work"
mkdir -p "$work"
cd "$work"

fail() { echo "FAIL: $*"; exit 1; }
check() { $python "$here/asha_check.py" "$@"; }
mpi() { mpirun -np 2 --oversubscribe --bind-to none "$binary" "$@"; }
statuses() { "$binary" sweep "$1" --out "$2" --list | cut -f1,3; }

# The learning rates in a shuffled order, as a random search would draw them: asynchronous
# promotion depends on the order units reach a rung (docs/cluster.md#early-stopping-asha).
cat > full.yaml <<YAML
name: asha_test
base:
  dataset: {name: idx, root: $data, train_count: 2048}
  model: {arch: wrn_10_1, num_classes: 10}
  optim: {epochs: 6, batch_size: 32, schedule: {name: cosine}}
  augment: {random_crop: 0}
  runtime: {device: cpu, threads: 1, max_train_batches: 12, max_eval_batches: 8, log_every: 12}
grid:
  optim.lr: [0.003, 0.0003, 0.02, 0.0001, 0.001, 0.01, 0.00003, 0.002, 0.0002, 0.005, 0.0005, 0.00005]
  runtime.seed: [0, 1]
YAML
{ cat full.yaml; echo "early_stop: {method: asha, metric: acc_final, rungs: [1, 2], reduction: 3}"; } > asha.yaml

# Bad input: exit status 2, the message naming the key.
bad_input() {
  local key="$1" section="$2" status=0
  { cat full.yaml; echo "$section"; } > bad.yaml
  "$binary" sweep bad.yaml --out bad --dry-run > bad.out 2> bad.err || status=$?
  [[ $status -eq 2 ]] || fail "$section: exit status $status, expected 2"
  grep -q "$key" bad.err || fail "$section: the message does not name $key: $(cat bad.err)"
}
bad_input early_stop.metric "early_stop: {method: asha, metric: acc_best, rungs: [1, 2]}"
bad_input early_stop.rungs "early_stop: {method: asha, rungs: [1, 7]}"
bad_input early_stop.reduction "early_stop: {method: asha, rungs: [1, 2], reduction: 1}"
bad_input budget.gpu_hours "$(printf 'early_stop: {method: asha, rungs: [1]}\nbudget: {gpu_hours: 0}')"
bad_input budget.epochs "$(printf 'early_stop: {method: asha, rungs: [1]}\nbudget: {epochs: 0}')"

# A budget of 5 trial-epochs on one rank (4 configurations, rung at epoch 1 of 3, reduction 2):
# units 0 and 1 reach the rung, the better one is promoted (2 more epochs), unit 2 starts with
# the last epoch of the budget; then nothing new starts, what waits at the rung is stopped and
# unit 3 stays pending.
cat > budget.yaml <<YAML
name: asha_budget
base:
  dataset: {name: idx, root: $data, train_count: 512}
  model: {arch: wrn_10_1, num_classes: 10}
  optim: {epochs: 3, batch_size: 32, schedule: {name: cosine}}
  augment: {random_crop: 0}
  runtime: {device: cpu, threads: 1, max_train_batches: 2, max_eval_batches: 1, log_every: 2}
grid:
  optim.lr: [0.02, 0.001, 0.01, 0.003]
early_stop: {method: asha, rungs: [1], reduction: 2}
budget: {epochs: 5}
YAML
"$binary" sweep budget.yaml --out budget --progress off > budget.out 2> budget.err ||
  { cat budget.err; fail "budget sweep exit $?"; }
[[ "$(check epochs budget)" == 5 ]] || fail "the budget sweep trained $(check epochs budget) trial-epochs, not 5"
[[ "$("$binary" sweep budget.yaml --out budget --list | cut -f3 | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')" == "complete=1 pending=1 stopped=2 " ]] ||
  fail "budget statuses: $("$binary" sweep budget.yaml --out budget --list | cut -f3 | tr '\n' ' ')"
grep -q "reason: budget spent" budget/.asha/level0/* || fail "no stop record gives the budget as its reason"
grep -q "not-started       1 (the budget is spent)" budget.out || fail "budget summary: $(cat budget.out)"

start=$SECONDS
mpi sweep full.yaml --out full > full.out 2> full.err || { cat full.err; fail "full sweep exit $?"; }
full_seconds=$((SECONDS - start))
full_best="$(check best full)"
full_epochs="$(check epochs full)"

start=$SECONDS
mpi sweep asha.yaml --out asha > asha.out 2> asha.err || { cat asha.err; fail "ASHA sweep exit $?"; }
asha_seconds=$((SECONDS - start))
cat asha.out
asha_best="$(check best asha)"
asha_epochs="$(check epochs asha)"
echo "full sweep: $full_epochs trial-epochs in ${full_seconds} s, best ${full_best}"
echo "ASHA:       $asha_epochs trial-epochs in ${asha_seconds} s, best ${asha_best}"
echo "fraction:   $($python -c "print(f'{$asha_epochs / $full_epochs:.3f}')")"
[[ $((asha_epochs * 100)) -le $((full_epochs * 40)) ]] ||
  fail "ASHA trained $asha_epochs trial-epochs, more than 40% of $full_epochs"
[[ "$asha_best" == "$full_best" ]] || fail "ASHA's best ($asha_best) is not the full sweep's ($full_best)"
for id in ${asha_best#*$'\t'}; do
  check same "asha/$id.ckpt.h5" "full/$id.ckpt.h5" || fail "trial $id differs from the full sweep's"
done
statuses asha.yaml asha > asha.status
[[ "$(cut -f2 asha.status | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')" == "complete=2 stopped=22 " ]] ||
  fail "statuses: $(cut -f2 asha.status | sort | uniq -c)"
for id in $("$binary" sweep asha.yaml --out asha --list | awk -F'\t' '$3 == "stopped" {print $2}'); do
  [[ -f asha/$id.h5 && -f asha/$id.ckpt.h5 ]] || fail "stopped trial $id lost its log or checkpoint"
done
grep -q "stopped           22" asha.out || fail "summary: $(cat asha.out)"
check decisions asha > asha.decisions

# 3. kill -9 midway, then the same command.
setsid mpirun -np 2 --oversubscribe --bind-to none "$binary" sweep asha.yaml --out killed \
  > killed1.out 2> killed1.err &
launcher=$!
# Killed once some units are stopped for good and a promoted trial is training.
for _ in $(seq 1 1200); do
  stops="$( (grep -l '^decision: stop' killed/.asha/level*/* 2>/dev/null || true) | wc -l)"
  running="$("$binary" sweep asha.yaml --out killed --list 2>/dev/null | grep -c $'\trunning\t' || true)"
  [[ $stops -ge 1 && $running -ge 1 ]] && break
  sleep 0.3  # each poll reads every log: not too often, the ranks need the CPU
done
[[ $stops -ge 1 && $running -ge 1 ]] || fail "never a stop recorded and a trial running"
ranks="$(pgrep -P "$launcher" || true)"
kill -9 "$launcher" $ranks 2>/dev/null || true
wait "$launcher" 2>/dev/null || true
for pid in $ranks; do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
check decisions killed > killed_before.decisions
echo "killed with $(wc -l < killed_before.decisions) decision(s) recorded:"
cat killed_before.decisions
# Trials done for good before the rerun: complete, or in a unit with a stop record.
stopped_units="$(grep ' stop$' killed_before.decisions | sed 's|.*/||; s| stop||' || true)"
"$binary" sweep asha.yaml --out killed --list > killed_before.list
: > done_before.md5
while IFS=$'\t' read -r index id status overrides; do
  if [[ $status == complete ]]; then md5sum "killed/$id.h5" >> done_before.md5; fi
done < killed_before.list
for unit in $stopped_units; do
  for id in $(grep -h '^trials:' killed/.asha/level*/"$unit" | head -1 | cut -d' ' -f2-); do
    md5sum "killed/$id.h5" >> done_before.md5
  done
done
mpi sweep asha.yaml --out killed > killed2.out 2> killed2.err ||
  { cat killed2.err; fail "rerun after kill -9: exit $?"; }
[[ -s done_before.md5 ]] || fail "no trial was complete or stopped for good at the kill"
md5sum -c --quiet done_before.md5 || fail "a trial complete or stopped before the kill trained again"
check decisions killed > killed.decisions
diff asha.decisions killed.decisions || fail "decisions differ from the uninterrupted run"
statuses asha.yaml killed > killed.status
diff asha.status killed.status || fail "statuses differ from the uninterrupted run"
[[ "$(check best killed)" == "$asha_best" ]] || fail "best after the kill: $(check best killed)"
for id in ${asha_best#*$'\t'}; do
  check same "killed/$id.ckpt.h5" "asha/$id.ckpt.h5" || fail "trial $id differs after the kill"
done
echo "kill -9 and rerun: same $(wc -l < killed.decisions) decisions, statuses and best weights"
