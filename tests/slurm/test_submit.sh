#!/usr/bin/env bash
# Golden-file test of slurm/submit, without a Slurm cluster: a fake --binary prints a fixed
# `sweep --list` (tests/slurm/golden/list.txt), and the sbatch command lines of --dry-run are
# compared with tests/slurm/golden/submit_dry_run.txt. The sweep file, output directory and
# binary live under a path with a space and a `$(...)`, so quoting mistakes show up as
# differences (or as a file named pwned). Then a fake sbatch on PATH records the arguments of a
# real (non-dry) submission: they must be the dry-run's lines, word for word, with the index
# files written. Usage: test_submit.sh REPO_ROOT [--update] (--update rewrites the golden file).
set -euo pipefail

repo=$(cd "${1:?usage: test_submit.sh REPO_ROOT [--update]}" && pwd)
update=${2:-}
golden_dir="$repo/tests/slurm/golden"
base=$(mktemp -d)
trap 'rm -rf "$base"' EXIT
work="$base/a dir \$(touch pwned)"
mkdir -p "$work/bin"
cd "$work"

export MD_FAKE_LIST="$golden_dir/list.txt"
cat >"$work/bin/metadistill" <<'FAKE'
#!/usr/bin/env bash
set -euo pipefail
[[ $1 == sweep && $3 == --out ]] || { echo "unexpected arguments: $*" >&2; exit 2; }
case $5 in
  --list) cat "$MD_FAKE_LIST" ;;
  --dry-run) echo "sweep golden: 9 trials, ${MD_FAKE_RANKS:-1} rank(s) per trial, output $4" ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
FAKE
chmod +x "$work/bin/metadistill"
echo "name: golden" >"$work/sweep \$(x).yaml"
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

submit() {
  "$repo/slurm/submit" "$work/sweep \$(x).yaml" --out "$work/out dir" --binary "$work/bin/metadistill" "$@"
}
# Paths are machine-specific: write them as @REPO@ and @WORK@ in the golden file.
normalize() {
  /usr/bin/env python3 -c '
import sys
text = sys.stdin.read().replace(sys.argv[2], "@WORK@").replace(sys.argv[1], "@REPO@")
sys.stdout.write(text)' "$repo" "$work"
}

{
  echo "## array: MaxArraySize 4, throttle 2, one GPU per task, extra sbatch arguments"
  submit --max-array-size 4 --throttle 2 --signal-seconds 120 --dry-run -- --partition=gpu --time=1:00:00
  echo "## array: CPU partition (--gpus 0), no throttle, default signal time"
  submit --max-array-size 1001 --gpus 0 --dry-run
  echo "## mpi: 3 ranks, one GPU each"
  submit --mode mpi --ranks 3 --dry-run
  echo "## mpi: one rank per pending trial, CPU only, pmi2"
  submit --mode mpi --gpus 0 --mpi pmi2 --dry-run
} >"$base/dry_run.txt" 2>"$base/stderr.txt"
normalize <"$base/dry_run.txt" >"$base/dry_run.normalized"

if [[ $update == --update ]]; then
  cp "$base/dry_run.normalized" "$golden_dir/submit_dry_run.txt"
  echo "updated $golden_dir/submit_dry_run.txt"
fi
diff -u "$golden_dir/submit_dry_run.txt" "$base/dry_run.normalized" || fail "dry-run output differs from the golden file"
grep -q "9 trials, 2 complete, 7 to submit" "$base/stderr.txt" || fail "summary line missing: $(cat "$base/stderr.txt")"
[[ ! -e "$work/out dir" ]] || fail "--dry-run created the output directory"

# A real submission through a fake sbatch that records its arguments, NUL-separated.
mkdir -p "$work/fake-sbatch"
cat >"$work/fake-sbatch/sbatch" <<'FAKE'
#!/usr/bin/env bash
set -euo pipefail
calls=$(dirname "$0")
count=$(find "$calls" -name 'call-*' | wc -l)
printf '%s\0' "$@" >"$calls/call-$count"
echo "$((1000 + count));cluster"
FAKE
chmod +x "$work/fake-sbatch/sbatch"
job_ids=$(PATH="$work/fake-sbatch:$PATH" submit --max-array-size 4 --throttle 2 --signal-seconds 120 -- --partition=gpu --time=1:00:00 2>/dev/null)
[[ $job_ids == $'1000\n1001\n1002' ]] || fail "job ids printed: '$job_ids'"
for call in 0 1 2; do
  if [[ ! -f "$work/fake-sbatch/call-$call" ]]; then
    fail "sbatch call $call was not made"
    continue
  fi
  recorded=$(/usr/bin/env python3 -c '
import shlex, sys
print(shlex.join(open(sys.argv[1], "rb").read().decode().split("\0")[:-1]))' "$work/fake-sbatch/call-$call")
  expected=$(grep '^sbatch' "$base/dry_run.txt" | sed -n "$((call + 1))p")
  [[ "sbatch $recorded" == "$expected" ]] || fail "sbatch call $call: 'sbatch $recorded' != '$expected'"
done
index_dir="$work/out dir/.slurm/submit-000"
[[ $(cat "$index_dir/chunk-0.index") == $'1\n2\n4' ]] || fail "chunk-0.index: $(cat "$index_dir/chunk-0.index")"
[[ $(cat "$index_dir/chunk-1.index") == $'5\n6\n7' ]] || fail "chunk-1.index"
[[ $(cat "$index_dir/chunk-2.index") == "8" ]] || fail "chunk-2.index"
[[ -d "$work/out dir/.slurm/logs" ]] || fail "log directory not created"
# A second submission gets its own index files: the first one's tasks may still be pending.
PATH="$work/fake-sbatch:$PATH" submit --max-array-size 4 >/dev/null 2>&1 || fail "second submission"
[[ -f "$work/out dir/.slurm/submit-001/chunk-0.index" ]] || fail "second submission reused submit-000"

# Bad input exits 2; an unreadable --list exits 1.
status=0
"$repo/slurm/submit" "$work/missing.yaml" --out "$work/o" --binary "$work/bin/metadistill" --dry-run 2>/dev/null || status=$?
((status == 2)) || fail "missing sweep file: exit $status, expected 2"
status=0
submit --throttle -1 --dry-run 2>/dev/null || status=$?
((status == 2)) || fail "negative throttle: exit $status, expected 2"
status=0
"$repo/slurm/submit" "$work/sweep \$(x).yaml" --out "$work/100%" --binary "$work/bin/metadistill" --dry-run 2>/dev/null || status=$?
((status == 2)) || fail "'%' in --out: exit $status, expected 2"
printf '0\tid\tbogus\t\n' >"$base/bad_list.txt"
status=0
MD_FAKE_LIST="$base/bad_list.txt" submit --dry-run 2>/dev/null || status=$?
((status == 1)) || fail "unknown status in --list: exit $status, expected 1"

# Trials of 2 ranks each (runtime.ranks_per_trial): an array task holds one rank, so array mode
# is refused; mpi mode sizes the allocation in whole trials.
status=0
MD_FAKE_RANKS=2 submit --dry-run 2>"$base/ranks.err" || status=$?
((status == 2)) || fail "array mode with 2-rank trials: exit $status, expected 2"
grep -q "submit them with --mode mpi" "$base/ranks.err" || fail "no hint to use --mode mpi: $(cat "$base/ranks.err")"
MD_FAKE_RANKS=2 submit --mode mpi --dry-run 2>/dev/null | grep -q -- "--ntasks=14" ||
  fail "mpi mode with 7 pending 2-rank trials should ask for 14 tasks"
status=0
MD_FAKE_RANKS=2 submit --mode mpi --ranks 3 --dry-run 2>/dev/null || status=$?
((status == 2)) || fail "--ranks 3 with 2-rank trials: exit $status, expected 2"

[[ -z $(find "$base" -name pwned) ]] || fail "a quoted value was executed by a shell"
if ((failures)); then
  echo "$failures failures" >&2
  exit 1
fi
echo "test_submit: all checks passed"
