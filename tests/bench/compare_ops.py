#!/usr/bin/python3
r"""Our CPU ops beside PyTorch's, as ratios (DESIGN.md section 9). Builds nothing.

Usage (after building bench_ops, e.g. cmake -DMD_BUILD_BENCH=ON && make bench_ops):

  /usr/bin/python3 tests/bench/compare_ops.py --bench-ops BUILD/tests/bench/bench_ops \
      [--python /usr/bin/python3] [--threads N] [--batch N] [--repeats R] [--min-time S] \
      [--filter REGEX] [--rounds N] [--interleave] [--clock wall|cpu] [--json-out FILE]

It runs `bench_ops --benchmark_format=json` and `bench_ops_torch.py --json` with the same
thread count (--threads, else env MD_THREADS, else all cores), batch, repetitions and time per
repetition, pairs the results by name and prints one row per op and shape: our time, PyTorch's
time, and ratio = PyTorch time / our time (> 1: we are faster), then the geometric mean of the
ratios per op kind and over all. Both sides report the median over the repetitions of the time
per call. --python picks the interpreter of the PyTorch side (a virtual environment with a
current PyTorch, say).

On a machine that others load:
  --rounds N     runs both sides N times and keeps each name's fastest median, so a burst of
                 someone else's load spoils one round, not the figure;
  --interleave   alternates the two sides op by op (one process per op and side, so both see
                 the same load; the sides swap order from round to round);
  --clock cpu    compares process CPU time instead of wall-clock time: the figure to trust
                 with --threads 1 (wall-clock time then measures the scheduler); with more
                 threads it counts spin-waiting and says little.

Defaults (batch 32, 5 repetitions of 0.1 s, 1 round) take under a minute a side on 2 idle cores.

Exit status: 0; 1 when a run fails or a name has no twin; 77 when the Python has no torch.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict

from bench_common import build_path, positive_int

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_SCRIPT = os.path.join(HERE, "bench_ops_torch.py")
SKIP_STATUS = 77


def run_json(command, what, quiet=False):
    if not quiet:
        print("+ " + " ".join(command), file=sys.stderr, flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if completed.returncode == SKIP_STATUS:
        sys.exit(SKIP_STATUS)
    if completed.returncode != 0:
        sys.exit(f"compare_ops: {what} failed with status {completed.returncode}")
    try:
        return json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        sys.exit(f"compare_ops: {what} did not print JSON ({error})")


def list_names(bench_ops, name_filter):
    """bench_ops's benchmark names matching `name_filter`, without the timer suffixes."""
    completed = subprocess.run([bench_ops, "--benchmark_list_tests",
                                f"--benchmark_filter={name_filter}"],
                               stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"compare_ops: bench_ops --benchmark_list_tests failed "
                 f"with status {completed.returncode}")
    return [re.sub(r"(/process_time|/real_time)+$", "", line)
            for line in completed.stdout.split()]


def ours_ms(report, clock):
    """Milliseconds per call by name from Google Benchmark's JSON: the median aggregate when
    there are repetitions, else the single run; `clock` picks real_time or cpu_time."""
    unit_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    single, median = {}, {}
    for entry in report["benchmarks"]:
        if entry.get("error_occurred"):
            sys.exit(f"compare_ops: bench_ops {entry['name']}: {entry.get('error_message')}")
        name = re.sub(r"(/process_time|/real_time)+$", "", entry.get("run_name", entry["name"]))
        ms = entry[f"{clock}_time"] * unit_ms[entry.get("time_unit", "ns")]
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                median[name] = ms
        else:
            single.setdefault(name, ms)
    return {**single, **median}


def geometric_mean(values):
    return math.exp(sum(math.log(value) for value in values) / len(values))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--bench-ops", default=build_path("tests", "bench", "bench_ops"),
                        help="the bench_ops binary (default: $MD_BUILD_DIR or build/, "
                             "then tests/bench/bench_ops)")
    parser.add_argument("--python", default="/usr/bin/python3",
                        help="interpreter with torch for bench_ops_torch.py")
    parser.add_argument("--threads", type=positive_int,
                        default=int(os.environ.get("MD_THREADS") or os.cpu_count() or 1))
    parser.add_argument("--batch", type=positive_int,
                        default=int(os.environ.get("MD_BENCH_BATCH") or 32))
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per repetition")
    parser.add_argument("--filter", default="", help="regular expression on the names")
    parser.add_argument("--rounds", type=positive_int, default=1,
                        help="alternating runs of both sides; each name keeps its fastest")
    parser.add_argument("--interleave", action="store_true",
                        help="run the two sides name by name, alternating (slower to start, "
                             "fairer on a loaded machine)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall-clock time (default) or process CPU time")
    parser.add_argument("--json-out", help="also write the paired results to this file")
    args = parser.parse_args()

    if not os.access(args.bench_ops, os.X_OK):
        sys.exit(f"compare_ops: {args.bench_ops} is not an executable: build bench_ops "
                 "(-DMD_BUILD_BENCH=ON) or pass --bench-ops")

    torch_command = [args.python, TORCH_SCRIPT, "--json", f"--threads={args.threads}",
                     f"--batch={args.batch}", f"--repeats={args.repeats}",
                     f"--min-time={args.min_time}"]
    ours_command = [args.bench_ops, "--benchmark_format=json", f"--threads={args.threads}",
                    f"--batch={args.batch}", f"--benchmark_min_time={args.min_time}",
                    "--benchmark_min_warmup_time=0.05"]
    if args.repeats > 1:
        ours_command += [f"--benchmark_repetitions={args.repeats}",
                         "--benchmark_report_aggregates_only=true"]
    # (our filter, PyTorch's filter) per run: one run for everything, or one per name.
    if args.interleave:
        runs = [(f"^{name}/", f"^{name}$") for name in list_names(args.bench_ops, args.filter)]
    else:
        runs = [(args.filter, args.filter)]

    ours, theirs = {}, {}
    for round_index in range(args.rounds):
        for ours_filter, torch_filter in runs:
            sides = [("ours", ours_filter), ("torch", torch_filter)]
            for side, name_filter in sides[::-1] if round_index % 2 else sides:
                if side == "ours":
                    ours_report = run_json(ours_command + [f"--benchmark_filter={name_filter}"],
                                           "bench_ops", quiet=args.interleave)
                    clock = "real" if args.clock == "wall" else "cpu"
                    for name, ms in ours_ms(ours_report, clock).items():
                        ours[name] = min(ms, ours.get(name, math.inf))
                else:
                    torch_report = run_json(torch_command + [f"--filter={name_filter}"],
                                            "bench_ops_torch.py", quiet=args.interleave)
                    for entry in torch_report["benchmarks"]:
                        ms = entry["ms" if args.clock == "wall" else "cpu_ms"]
                        theirs[entry["name"]] = min(ms, theirs.get(entry["name"], math.inf))
    unpaired = sorted(set(ours) ^ set(theirs))
    if unpaired:
        sys.exit("compare_ops: names without a twin: " + ", ".join(unpaired))
    if not ours:
        sys.exit("compare_ops: no benchmark matched")

    context = ours_report.get("context", {})
    torch_context = torch_report["context"]
    print(f"threads: ours {context.get('md_threads')}, PyTorch {torch_context['threads']}; "
          f"batch {args.batch}; PyTorch {torch_context['torch_version']}; "
          f"{args.clock} time, median of {args.repeats} x {args.min_time} s, "
          f"best of {args.rounds} rounds; load {os.getloadavg()[0]:.1f}; "
          f"host {context.get('host_name', '?')}")
    print(f"{'op':<16} {'shape':<20} {'ours ms':>10} {'PyTorch ms':>11} {'ratio':>7}")
    ratios_by_kind = defaultdict(list)
    rows = []
    for name in ours:  # bench_ops order
        kind, shape = name.split("/", 1)
        ratio = theirs[name] / ours[name]
        ratios_by_kind[kind].append(ratio)
        rows.append({"name": name, "ours_ms": ours[name], "torch_ms": theirs[name],
                     "ratio": ratio})
        print(f"{kind:<16} {shape:<20} {ours[name]:10.3f} {theirs[name]:11.3f} {ratio:7.2f}")
    print()
    print(f"{'op':<16} {'geomean ratio':>13} {'n':>3}")
    for kind, ratios in ratios_by_kind.items():
        print(f"{kind:<16} {geometric_mean(ratios):13.2f} {len(ratios):3d}")
    all_ratios = [row["ratio"] for row in rows]
    print(f"{'all':<16} {geometric_mean(all_ratios):13.2f} {len(all_ratios):3d}")

    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump({"threads": args.threads, "batch": args.batch, "rounds": args.rounds,
                       "clock": args.clock,
                       "torch_version": torch_context["torch_version"],
                       "geomean": {kind: geometric_mean(r) for kind, r in ratios_by_kind.items()},
                       "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
