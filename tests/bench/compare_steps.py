#!/usr/bin/python3
r"""Whole training steps, ours beside PyTorch's, as ratios (DESIGN.md section 9). Builds nothing.

Usage (after building metadistill):

  /usr/bin/python3 tests/bench/compare_steps.py [--metadistill BUILD/metadistill]
      [--python /usr/bin/python3] [--device cpu|cuda] [--archs resnet20,resnet18_cifar]
      [--methods baseline,byot,metadistiller] [--batch 128] [--steps N] [--warmup N]
      [--threads N] [--rounds R] [--json-out FILE]

For every (arch, method) it runs `metadistill bench --json` and its twin
`bench_step_torch.py --json` (same model, batch, optimizer, threads, precision), R rounds,
interleaved (ours, torch, ours, torch, ...; the order swaps from round to round so both see the
same load), and keeps the median images/s and peak memory of each side. It prints a markdown
table: config, our images/s, PyTorch's, ratio = ours / PyTorch (> 1: we are faster), the peak
memory of each (CUDA: allocator peaks; CPU: peak RSS minus the RSS before the model was built),
then the metadistiller / baseline step-time ratio of each side (goal: ours <= 2.5).

--device cpu (default): PyTorch eager fp32, NCHW (our layout), --threads on both sides (else
env MD_THREADS, else all cores). --device cuda: ours in fp32 and tf32, each against PyTorch
eager channels_last at the same precision, tf32 also against torch.compile and eager NCHW, and
PyTorch bf16 channels_last (autocast) against ours in bf16 (bfloat16 NHWC convolutions and
bfloat16 GEMMs, float32 master weights and batch norm); ours tf32 and bf16 also with
--cuda-graph (the step recorded once and replayed; baseline and byot) against the same twins.

Exit status: 0; 1 when a run fails; 77 when the twin's Python has no torch.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from bench_common import build_path, positive_int

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_SCRIPT = os.path.join(HERE, "bench_step_torch.py")
SKIP_STATUS = 77
INPUT_ERROR_STATUS = 2


class Variant:
    """One way to run a step: `side` is ours or torch; `key` pairs a torch variant with ours."""

    def __init__(self, side, precision, channels_last=False, compile_=False, graph=False):
        self.side, self.precision = side, precision
        self.channels_last, self.compile, self.graph = channels_last, compile_, graph

    @property
    def name(self):
        if self.side == "ours":
            return f"ours {self.precision}" + (" cuda_graph" if self.graph else "")
        layout = "channels_last" if self.channels_last else "NCHW"
        mode = "compile" if self.compile else "eager"
        return f"torch {mode} {self.precision} {layout}"


def variants(device):
    """(our variants, [(torch variant, the our variant it is compared with)])."""
    if device == "cpu":
        ours = Variant("ours", "fp32")
        return [ours], [(Variant("torch", "fp32"), ours)]
    fp32, tf32, bf16 = Variant("ours", "fp32"), Variant("ours", "tf32"), Variant("ours", "bf16")
    tf32_graph = Variant("ours", "tf32", graph=True)
    bf16_graph = Variant("ours", "bf16", graph=True)
    eager_tf32_cl = Variant("torch", "tf32", channels_last=True)
    compile_tf32_cl = Variant("torch", "tf32", channels_last=True, compile_=True)
    eager_bf16_cl = Variant("torch", "bf16", channels_last=True)
    return [fp32, tf32, bf16, tf32_graph, bf16_graph], [
        (Variant("torch", "fp32", channels_last=True), fp32),
        (eager_tf32_cl, tf32),
        (Variant("torch", "tf32"), tf32),
        (compile_tf32_cl, tf32),
        (eager_bf16_cl, bf16),
        (eager_tf32_cl, tf32_graph),
        (compile_tf32_cl, tf32_graph),
        (eager_bf16_cl, bf16_graph),
    ]


def command_of(args, variant, arch, method):
    common = ["--arch", arch, "--method", method, "--batch", str(args.batch),
              "--steps", str(args.steps), "--warmup", str(args.warmup),
              "--device", args.device, "--precision", variant.precision, "--json"]
    if args.device == "cpu":
        common += ["--threads", str(args.threads)]
    if variant.side == "ours":
        return [args.metadistill, "bench"] + common + (["--cuda-graph"] if variant.graph else [])
    command = [args.python, TORCH_SCRIPT] + common
    if variant.channels_last:
        command.append("--channels-last")
    if variant.compile:
        command.append("--compile")
    return command


def run_one(command):
    """The JSON result, or {"missing": reason} when the run refused its arguments (status 2)."""
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    # Both sides run with the same OpenMP wait policy: metadistill picks passive itself when none
    # is set, so the twin gets it too (a spinning libgomp is several times slower on a shared
    # machine); set OMP_WAIT_POLICY to compare under another policy.
    environment = dict(os.environ)
    environment.setdefault("OMP_WAIT_POLICY", "passive")
    completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, check=False, env=environment)
    sys.stderr.write(completed.stderr)
    if completed.returncode == SKIP_STATUS:
        sys.exit(SKIP_STATUS)
    if completed.returncode == INPUT_ERROR_STATUS:
        lines = completed.stderr.strip().splitlines()
        return {"missing": lines[-1] if lines else "exit status 2"}
    if completed.returncode != 0:
        sys.exit(f"compare_steps: {' '.join(command)} failed with status {completed.returncode}")
    for line in reversed(completed.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    sys.exit(f"compare_steps: {' '.join(command)} printed no JSON line")


def median_result(runs):
    if any("missing" in run for run in runs):
        return next(run for run in runs if "missing" in run)
    result = dict(runs[-1])
    result["images_per_s"] = statistics.median(run["images_per_s"] for run in runs)
    result["ms_per_step"] = statistics.median(run["ms_per_step"] for run in runs)
    result["peak_bytes"] = statistics.median(run["peak_bytes"] for run in runs)
    result["rounds"] = len(runs)
    return result


def mib(result):
    return "-" if "missing" in result else f"{result['peak_bytes'] / 2**20:.0f}"


def rate(result):
    return "missing" if "missing" in result else f"{result['images_per_s']:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metadistill", default=build_path("metadistill"))
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the PyTorch side (default: this one)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--archs", default="resnet20,resnet18_cifar")
    parser.add_argument("--methods", default="baseline,byot,metadistiller")
    parser.add_argument("--batch", type=positive_int, default=128)
    parser.add_argument("--steps", type=positive_int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=positive_int,
                        default=int(os.environ.get("MD_THREADS", "0")) or os.cpu_count())
    parser.add_argument("--rounds", type=positive_int, default=3)
    parser.add_argument("--compile-methods",
                        help="methods that get the torch.compile twin (default: all of --methods; "
                             "each compiled run costs a minute of compilation)")
    parser.add_argument("--json-out", help="write every run's JSON result here")
    args = parser.parse_args()
    if not os.access(args.metadistill, os.X_OK):
        parser.error(f"--metadistill {args.metadistill} is not an executable "
                     f"(build it, or set MD_BUILD_DIR)")

    ours_variants, torch_variants = variants(args.device)
    all_variants = ours_variants + [twin for twin, _ in torch_variants]
    configs = [(arch, method) for arch in args.archs.split(",") for method in args.methods.split(",")]
    compile_methods = (args.methods if args.compile_methods is None
                       else args.compile_methods).split(",")

    def wanted(variant, method):
        if variant.graph and method == "metadistiller":
            return False  # metadistiller steps are not captured
        return not variant.compile or method in compile_methods
    runs = {}  # (arch, method, variant name) -> [result]
    missing = {}  # variant name -> result, for a variant that refused its arguments once
    for round_index in range(args.rounds):
        for arch, method in configs:
            order = all_variants if round_index % 2 == 0 else list(reversed(all_variants))
            for variant in order:
                if not wanted(variant, method):
                    continue
                key = (arch, method, variant.name)
                if (arch, method, variant.name) in missing:
                    continue
                result = run_one(command_of(args, variant, arch, method))
                if "missing" in result:
                    missing[key] = result
                runs.setdefault(key, []).append(result)
    results = {key: median_result(value) for key, value in runs.items()}

    print(f"\n### Training steps, {args.device}, batch {args.batch}, "
          f"{'threads ' + str(args.threads) + ', ' if args.device == 'cpu' else ''}"
          f"median of {args.rounds} rounds of {args.steps} steps\n")
    print("| config | ours img/s | torch img/s | ours/torch | ours peak MiB | torch peak MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for arch, method in configs:
        for twin, ours_variant in torch_variants:
            if not wanted(twin, method) or not wanted(ours_variant, method):
                continue
            ours = results[(arch, method, ours_variant.name)]
            theirs = results[(arch, method, twin.name)]
            ratio = ("-" if "missing" in ours or "missing" in theirs
                     else f"{ours['images_per_s'] / theirs['images_per_s']:.2f}")
            print(f"| {arch} {method} — {ours_variant.name} vs {twin.name} | {rate(ours)} | "
                  f"{rate(theirs)} | {ratio} | {mib(ours)} | {mib(theirs)} |")

    methods = args.methods.split(",")
    if "baseline" in methods and "metadistiller" in methods:
        shown = [v for v in all_variants
                 if wanted(v, "baseline") and wanted(v, "metadistiller")]
        print("\n### metadistiller / baseline step time (goal for ours: <= 2.5)\n")
        print("| arch | " + " | ".join(v.name for v in shown) + " |")
        print("| --- |" + " ---: |" * len(shown))
        for arch in args.archs.split(","):
            cells = []
            for variant in shown:
                meta = results[(arch, "metadistiller", variant.name)]
                base = results[(arch, "baseline", variant.name)]
                cells.append("-" if "missing" in meta or "missing" in base
                             else f"{meta['ms_per_step'] / base['ms_per_step']:.2f}")
            print(f"| {arch} | " + " | ".join(cells) + " |")

    reasons = sorted({result["missing"] for result in missing.values()})
    for reason in reasons:
        print(f"\nmissing: {reason}")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump([{"arch": arch, "method": method, "variant": name, "runs": value}
                       for (arch, method, name), value in runs.items()], out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
