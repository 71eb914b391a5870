#!/usr/bin/python3
"""PyTorch twin of bench_ops (DESIGN.md section 9): the same ops at the same shapes.

Times, on the CPU in float32 at the shapes of resnet18_cifar, each op that bench_ops times,
under the same name ("conv_fwd/C64_O64_H32_K3_S1"), so compare_ops.py can pair them:

  conv_fwd, conv_bwd_data, conv_bwd_filter   F.conv2d and aten.convolution_backward with an
                                             output_mask that asks for one gradient only
  bn_fwd, bn_bwd                             aten.native_batch_norm (training, running stats
                                             updated) and aten.native_batch_norm_backward
  relu_fwd, relu_bwd                         torch.relu and aten.threshold_backward

Timing: a warm-up of --warmup-time seconds, then --repeats repeats of as many calls as fill
--min-time seconds; the figures are the medians over the repeats of the wall-clock time and of
the process CPU time per call (Google Benchmark's --benchmark_repetitions /
--benchmark_min_time / median with UseRealTime and MeasureProcessCPUTime, as bench_ops runs).

Usage: /usr/bin/python3 tests/bench/bench_ops_torch.py [--threads N] [--batch N] [--json]
       [--filter REGEX] [--repeats R] [--min-time S] [--warmup-time S]
Works with Debian's python3-torch (1.13) and with a current PyTorch in a virtual environment.
It must not do work that bench_ops does not do (e.g. autograd bookkeeping): it runs under
torch.no_grad() and calls the aten ops directly where a functional form would add work.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:  # compare_ops.py turns this status into a skipped smoke test
    print(f"bench_ops_torch.py: cannot import torch ({error})", file=sys.stderr)
    sys.exit(77)

# (in_channels, out_channels, size, kernel, stride): conv1, the stages' 3x3 convs, the 1x1
# stride-2 downsample convs. Padding is kernel // 2. Must match kConvShapes in bench_ops.cpp.
CONV_SHAPES = [
    (3, 64, 32, 3, 1), (64, 64, 32, 3, 1), (64, 128, 32, 3, 2), (64, 128, 32, 1, 2),
    (128, 128, 16, 3, 1), (128, 256, 16, 3, 2), (128, 256, 16, 1, 2), (256, 256, 8, 3, 1),
    (256, 512, 8, 3, 2), (256, 512, 8, 1, 2), (512, 512, 4, 3, 1),
]
# (channels, size) of the maps batch norm and ReLU see. Must match kMapShapes.
MAP_SHAPES = [(64, 32), (128, 16), (256, 8), (512, 4)]

BN_MOMENTUM = 0.1
BN_EPSILON = 1e-5


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def env_int(name, default):
    text = os.environ.get(name, "")
    return int(text) if text else default


def conv_ops(batch):
    """Yields (name, callable) for the three passes of every conv shape."""
    generator = torch.Generator().manual_seed(1)
    for in_channels, out_channels, size, kernel, stride in CONV_SHAPES:
        padding = kernel // 2
        suffix = f"C{in_channels}_O{out_channels}_H{size}_K{kernel}_S{stride}"
        x = torch.randn(batch, in_channels, size, size, generator=generator)
        weight = torch.randn(out_channels, in_channels, kernel, kernel, generator=generator)
        grad_y = torch.randn_like(F.conv2d(x, weight, None, stride, padding))

        def backward(mask, x=x, weight=weight, grad_y=grad_y, stride=stride, padding=padding):
            return torch.ops.aten.convolution_backward(
                grad_y, x, weight, None, [stride, stride], [padding, padding], [1, 1], False,
                [0, 0], 1, mask)

        yield (f"conv_fwd/{suffix}",
               lambda x=x, weight=weight, stride=stride, padding=padding:
               F.conv2d(x, weight, None, stride, padding))
        yield f"conv_bwd_data/{suffix}", lambda backward=backward: backward([True, False, False])
        yield f"conv_bwd_filter/{suffix}", lambda backward=backward: backward([False, True, False])


def map_ops(batch):
    """Yields (name, callable) for batch norm and ReLU at every map shape."""
    generator = torch.Generator().manual_seed(2)
    for channels, size in MAP_SHAPES:
        suffix = f"C{channels}_H{size}"
        x = torch.randn(batch, channels, size, size, generator=generator)
        grad_y = torch.randn(x.shape, generator=generator)
        gamma = torch.randn(channels, generator=generator)
        beta = torch.randn(channels, generator=generator)
        running_mean = torch.zeros(channels)
        running_var = torch.ones(channels)
        _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
            x, gamma, beta, None, None, True, BN_MOMENTUM, BN_EPSILON)
        y = torch.relu(x)
        yield (f"bn_fwd/{suffix}",
               lambda x=x, gamma=gamma, beta=beta, running_mean=running_mean,
               running_var=running_var: torch.ops.aten.native_batch_norm(
                   x, gamma, beta, running_mean, running_var, True, BN_MOMENTUM, BN_EPSILON))
        yield (f"bn_bwd/{suffix}",
               lambda x=x, grad_y=grad_y, gamma=gamma, save_mean=save_mean,
               save_invstd=save_invstd: torch.ops.aten.native_batch_norm_backward(
                   grad_y, x, gamma, None, None, save_mean, save_invstd, True, BN_EPSILON,
                   [True, True, True]))
        yield f"relu_fwd/{suffix}", lambda x=x: torch.relu(x)
        yield (f"relu_bwd/{suffix}",
               lambda y=y, grad_y=grad_y: torch.ops.aten.threshold_backward(grad_y, y, 0.0))


def time_per_call(function, repeats, min_time, warmup_time):
    """Medians over `repeats` of the wall-clock and process CPU seconds per call, each repeat
    filling `min_time` seconds."""
    start = time.perf_counter()
    function()
    one_call = time.perf_counter() - start
    while time.perf_counter() - start < warmup_time:
        function()
    calls = max(1, math.ceil(min_time / max(one_call, 1e-9)))
    wall_samples, cpu_samples = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(calls):
            function()
        wall_samples.append((time.perf_counter() - start) / calls)
        cpu_samples.append((time.process_time() - cpu_start) / calls)
    return statistics.median(wall_samples), statistics.median(cpu_samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=positive_int,
                        default=env_int("MD_THREADS", os.cpu_count() or 1),
                        help="torch.set_num_threads (default: env MD_THREADS, else all cores)")
    parser.add_argument("--batch", type=positive_int, default=env_int("MD_BENCH_BATCH", 32),
                        help="batch size (default: env MD_BENCH_BATCH, else 32)")
    parser.add_argument("--filter", default="", help="regular expression on the names")
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per repeat")
    parser.add_argument("--warmup-time", type=float, default=0.05, help="seconds per op")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    name_filter = re.compile(args.filter)
    results = []
    with torch.no_grad():
        for name, function in [*conv_ops(args.batch), *map_ops(args.batch)]:
            if not name_filter.search(name):
                continue
            wall, cpu = time_per_call(function, args.repeats, args.min_time, args.warmup_time)
            results.append({"name": name, "ms": wall * 1e3, "cpu_ms": cpu * 1e3})
            if not args.json:
                print(f"{name:<40} {wall * 1e3:12.4f} ms {cpu * 1e3:12.4f} ms CPU", flush=True)

    if args.json:
        context = {
            "torch_version": torch.__version__,
            "threads": torch.get_num_threads(),
            "batch": args.batch,
            "mkldnn": torch.backends.mkldnn.is_available(),
            "repeats": args.repeats,
            "min_time": args.min_time,
        }
        json.dump({"context": context, "benchmarks": results}, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()
