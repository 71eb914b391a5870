#!/usr/bin/python3
"""PyTorch twin of `metadistill bench` (DESIGN.md section 9): one whole training step of the
same model, batch, precision, layout and optimizer, timed the same way.

  model       resnet18_cifar (torchvision's ResNet-18 with conv1 3x3 stride 1, no max-pool)
              or resnet20/32/56/110 (He et al. CIFAR ResNets, option-B shortcuts), as
              src/models/resnet.cpp; num_classes --classes
  baseline    CE on the final head
  byot        + one BYOT auxiliary head per stage but the last (src/models/student.cpp):
              sum_s (1-a)*CE(z_s) + a*T^2*KL(softmax(z_S/T) || softmax(z_s/T)), z_S detached
  metadistiller
              the same loss with the label generator's targets u_s (src/models/
              label_generator.cpp: top-down pyramid of 1x1 laterals, nearest resize, 3x3
              conv, ReLU, pool, linear), then the finite-difference meta step of
              src/train/learner.cpp every step: virtual step theta' = theta - lr*g, meta CE
              summed over the heads at theta' on a meta batch, v = its gradient,
              eps = eps0/|v|, forwards at theta +- eps*v without grad, one backward through
              the generator with -lr*(dKL/du(+) - dKL/du(-))/(2 eps), an Adam step of the
              generator. The passes at theta', theta+- use batch statistics without
              updating the running ones (momentum 0 for those passes).
  optimizer   SGD lr 0.01 momentum 0.9 weight decay 5e-4 (the config defaults; `metadistill
              bench` sets the same), generator Adam lr 1e-3; a = 0.3, T = 3, eps0 = 0.01.
The parameters are swapped in place (the optimizer's own tensors), as a user would write it.

Timing: --warmup untimed steps, then --steps steps, synchronized at the end; images/s =
batch * steps / seconds. Peak memory: on CUDA torch.cuda.max_memory_allocated() (the caching
allocator's peak of bytes handed out, since the start); on the CPU the process's peak RSS
(ru_maxrss) minus its RSS before the model was built.

Usage: /usr/bin/python3 tests/bench/bench_step_torch.py [--arch A] [--method M] [--batch B]
       [--steps N] [--warmup N] [--device cpu|cuda] [--threads N]
       [--precision fp32|tf32|bf16] [--channels-last] [--compile] [--json]
--precision tf32 is for CUDA only (TF32 tensor cores in cuDNN and cuBLAS); fp32 turns TF32 off
explicitly (PyTorch allows it in cuDNN by default); bf16 runs the forward passes under
torch.autocast(bfloat16). --compile wraps the student in torch.compile (PyTorch 2 or newer);
the extra passes of the meta step then run the uncompiled module.
Works with Debian's python3-torch 1.13 and a current PyPI torch. Exit status: 0; 2 bad
arguments; 77 when torch cannot be imported.
"""

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import time

from bench_common import positive_int

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as error:  # compare_steps.py turns this status into a skipped smoke test
    print(f"bench_step_torch.py: cannot import torch ({error})", file=sys.stderr)
    sys.exit(77)

LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
ALPHA = 0.3
TEMPERATURE = 3.0
META_EPSILON = 0.01
GENERATOR_LR = 1e-3
GENERATOR_WIDTH = 128


# ---- models (src/models/resnet.cpp, blocks.cpp, student.cpp, label_generator.cpp)

class BasicBlock(nn.Module):
    def __init__(self, in_channels, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


def resnet_config(arch):
    if arch == "resnet18_cifar":
        return [2, 2, 2, 2], [64, 128, 256, 512], 64
    if arch == "resnet34_cifar":
        return [3, 4, 6, 3], [64, 128, 256, 512], 64
    for depth in (20, 32, 56, 110):
        if arch == f"resnet{depth}":
            blocks = (depth - 2) // 6
            return [blocks] * 3, [16, 32, 64], 16
    raise ValueError(f"--arch must be resnet18_cifar, resnet34_cifar or resnet20/32/56/110, "
                     f"got '{arch}'")


class ResNet(nn.Module):
    """CIFAR stem (3x3 stride 1, no max-pool); returns (stage features, logits)."""

    def __init__(self, arch, num_classes, in_channels):
        super().__init__()
        blocks, planes, stem = resnet_config(arch)
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        layers = []
        channels = stem
        for s, (count, width) in enumerate(zip(blocks, planes)):
            stage = [BasicBlock(channels if b == 0 else width, width,
                                2 if (s > 0 and b == 0) else 1) for b in range(count)]
            layers.append(nn.Sequential(*stage))
            channels = width
        self.layers = nn.ModuleList(layers)
        self.fc = nn.Linear(channels, num_classes)
        self.stage_channels = list(planes)
        self.stage_strides = [1 << s for s in range(len(planes))]

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        features = []
        for layer in self.layers:
            h = layer(h)
            features.append(h)
        return features, self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class AuxHead(nn.Module):
    def __init__(self, in_channels, downsample, out_width, num_classes):
        super().__init__()
        mid = max(8, in_channels // 4)
        if downsample > 1:
            conv2 = nn.Conv2d(mid, mid, downsample, downsample, bias=False)
        else:
            conv2 = nn.Conv2d(mid, mid, 3, 1, 1, bias=False)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            conv2, nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_width, 1, bias=False), nn.BatchNorm2d(out_width),
            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(out_width, num_classes)

    def forward(self, x):
        return self.fc(self.body(x))


class Student(nn.Module):
    """The backbone plus BYOT heads; returns (stage features, logits per head, final last)."""

    def __init__(self, arch, num_classes, in_channels, aux_heads):
        super().__init__()
        self.network = ResNet(arch, num_classes, in_channels)
        channels, strides = self.network.stage_channels, self.network.stage_strides
        heads = []
        if aux_heads:
            for s in range(len(channels) - 1):
                heads.append(AuxHead(channels[s], strides[-1] // strides[s], channels[-1],
                                     num_classes))
        self.aux = nn.ModuleList(heads)

    def forward(self, x):
        features, logits = self.network(x)
        return features, [head(features[s]) for s, head in enumerate(self.aux)] + [logits]


class LabelGenerator(nn.Module):
    def __init__(self, stage_channels, width, num_classes):
        super().__init__()
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in stage_channels])
        self.smooth = nn.ModuleList([nn.Conv2d(width, width, 3, 1, 1)
                                     for _ in stage_channels[:-1]])
        self.fc = nn.ModuleList([nn.Linear(width, num_classes) for _ in stage_channels[:-1]])

    def forward(self, features):
        stages = len(features)
        pyramid = [None] * stages
        pyramid[-1] = self.lateral[-1](features[-1])
        for s in range(stages - 2, -1, -1):
            lateral = self.lateral[s](features[s])
            upper = F.interpolate(pyramid[s + 1], size=lateral.shape[2:], mode="nearest")
            pyramid[s] = lateral + upper
        return [self.fc[s](torch.flatten(F.adaptive_avg_pool2d(F.relu(self.smooth[s](pyramid[s])),
                                                               1), 1))
                for s in range(stages - 1)]


# ---- losses (src/train/losses.cpp)

def kl_div(student, teacher):
    """T^2 * mean_n KL(softmax(teacher/T) || softmax(student/T))."""
    return F.kl_div(F.log_softmax(student / TEMPERATURE, dim=1),
                    F.softmax(teacher / TEMPERATURE, dim=1),
                    reduction="batchmean") * (TEMPERATURE * TEMPERATURE)


def student_loss(logits, labels, teachers):
    total = F.cross_entropy(logits[-1], labels)
    for s, teacher in enumerate(teachers):
        total = total + (1 - ALPHA) * F.cross_entropy(logits[s], labels) \
            + ALPHA * kl_div(logits[s], teacher)
    return total


# ---- the step

@contextlib.contextmanager
def frozen_running_stats(module):
    """Batch statistics without running-stat updates (RunningStatsUpdate::Skip)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


class Step:
    def __init__(self, args, device):
        self.method = args.method
        self.autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                         if args.precision == "bf16" else contextlib.nullcontext())
        self.student = Student(args.arch, args.classes, args.channels,
                               aux_heads=args.method != "baseline").to(device)
        memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.student = self.student.to(memory_format=memory_format)
        self.params = [p for p in self.student.parameters()]
        self.optimizer = torch.optim.SGD(self.params, lr=LEARNING_RATE, momentum=MOMENTUM,
                                         weight_decay=WEIGHT_DECAY)
        self.forward = torch.compile(self.student) if args.compile else self.student
        self.generator = None
        if args.method == "metadistiller":
            self.generator = LabelGenerator(self.student.network.stage_channels, GENERATOR_WIDTH,
                                            args.classes).to(device).to(memory_format=memory_format)
            self.generator_optimizer = torch.optim.Adam(self.generator.parameters(),
                                                        lr=GENERATOR_LR)

    def passes(self, images):
        with self.autocast:
            return self.student(images)[1]

    def __call__(self, images, labels, meta_images, meta_labels):
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            features, logits = self.forward(images)
            targets = []
            if self.method == "byot":
                teachers = [logits[-1].detach()] * (len(logits) - 1)
            elif self.method == "metadistiller":
                targets = self.generator([f.detach() for f in features])
                teachers = [t.detach() for t in targets]
            else:
                teachers = []
            loss = student_loss(logits, labels, teachers)
        loss.backward()
        if self.generator is not None:
            self.meta_step(images, targets, meta_images, meta_labels)
        self.optimizer.step()

    def meta_step(self, images, targets, meta_images, meta_labels):
        params = self.params
        gradients = [p.grad for p in params]
        with torch.no_grad():
            theta = [p.detach().clone() for p in params]
            torch._foreach_add_(params, gradients, alpha=-LEARNING_RATE)  # theta'
        for p in params:
            p.grad = None
        with frozen_running_stats(self.student):
            meta_loss = sum(F.cross_entropy(z, meta_labels) for z in self.passes(meta_images))
            meta_loss.backward()
            v = [p.grad for p in params]
            with torch.no_grad():
                v_norm = math.sqrt(sum(float(t.float().pow(2).sum()) for t in v))
                epsilon = META_EPSILON / v_norm

                def target_gradients(sign):
                    for p, t in zip(params, theta):
                        p.copy_(t)
                    torch._foreach_add_(params, v, alpha=sign * epsilon)
                    logits = self.passes(images)
                    result = []
                    for s, target in enumerate(targets):
                        with torch.enable_grad():
                            u = target.detach().float().requires_grad_()
                            kd = ALPHA * kl_div(logits[s].float(), u)
                            result.append(torch.autograd.grad(kd, u)[0])
                    return result

                plus = target_gradients(+1.0)
                minus = target_gradients(-1.0)
                for p, t in zip(params, theta):
                    p.copy_(t)
        scale = -LEARNING_RATE / (2.0 * epsilon)
        upstream = [((gp - gm) * scale).to(t.dtype) for gp, gm, t in zip(plus, minus, targets)]
        self.generator_optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(targets, upstream)
        self.generator_optimizer.step()
        for p, g in zip(params, gradients):
            p.grad = g


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18_cifar")
    parser.add_argument("--method", default="baseline",
                        choices=["baseline", "byot", "metadistiller"])
    parser.add_argument("--batch", type=positive_int, default=128)
    parser.add_argument("--steps", type=positive_int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads (0: env MD_THREADS, else all cores)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--image-size", type=positive_int, default=32)
    parser.add_argument("--channels", type=positive_int, default=3)
    parser.add_argument("--classes", type=positive_int, default=100)
    parser.add_argument("--json", action="store_true", help="print one JSON object line")
    args = parser.parse_args()
    try:
        resnet_config(args.arch)
    except ValueError as error:
        parser.error(str(error))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.precision == "tf32" and device.type != "cuda":
        parser.error("--precision tf32 is for --device cuda only")
    if args.compile and not hasattr(torch, "compile"):
        parser.error(f"--compile needs PyTorch 2 or newer (this is {torch.__version__})")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")

    threads = args.threads or int(os.environ.get("MD_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        tf32 = args.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)

    rss_before = resident_bytes()
    step = Step(args, device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    def random_batch():
        images = torch.randn(args.batch, args.channels, args.image_size, args.image_size,
                             device=device).contiguous(memory_format=memory_format)
        labels = torch.randint(0, args.classes, (args.batch,), device=device)
        return images, labels

    images, labels = random_batch()
    meta_images, meta_labels = random_batch()

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step(images, labels, meta_images, meta_labels)
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step(images, labels, meta_images, meta_labels)
    synchronize()
    seconds = time.perf_counter() - start

    if device.type == "cuda":
        peak_bytes, peak_kind = torch.cuda.max_memory_allocated(device), "cuda_max_allocated"
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak_bytes, peak_kind = max(0, peak_rss - rss_before), "rss_delta"
    result = {
        "impl": "torch", "torch_version": torch.__version__, "arch": args.arch,
        "method": args.method, "device": str(device), "batch": args.batch, "steps": args.steps,
        "precision": args.precision, "channels_last": args.channels_last,
        "compile": args.compile, "threads": torch.get_num_threads(),
        "images_per_s": args.batch * args.steps / seconds,
        "ms_per_step": 1000.0 * seconds / args.steps,
        "peak_bytes": peak_bytes, "peak_kind": peak_kind,
    }
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print(f"bench_step_torch arch={args.arch} method={args.method} device={device} "
              f"batch={args.batch} steps={args.steps} precision={args.precision} "
              f"channels_last={int(args.channels_last)} compile={int(args.compile)} "
              f"images_per_s={result['images_per_s']:.1f} ms_per_step={result['ms_per_step']:.2f} "
              f"threads={result['threads']} peak_mib={peak_bytes / 2**20:.1f} ({peak_kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
