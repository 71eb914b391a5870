#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/reference and tests/models compare against.

Run with Debian's python3-torch / python3-torchvision (the pyenv python on PATH has no torch):

    /usr/bin/python3 tests/reference/make_fixtures.py [--out tests/fixtures]

Every fixture is a file of named tensors in the format read by tests/support/fixture.h: magic
"MDFX", uint32 version, uint32 count, then per tensor uint32 name length, name, uint8 dtype
(0 float32, 1 float64, 3 int32), uint32 rank, int64 extents, raw little-endian data.

What is written (all small; the whole directory stays well under 5 MB):
  ops_*.bin       one file per op family; keys "<case>/<tensor>". Inputs are float32; "out" is
                  PyTorch's float32 forward; "r" a fixed random tensor of out's shape; "grad_<x>"
                  the float32 gradient of sum(r * out) with respect to input x. Hyperparameters
                  of a case are float64 scalars ("<case>/stride", ...).
  optim.bin       SGD and Adam: 3 steps of torch.optim on fixed gradients.
  blocks.bin      torchvision BasicBlock / Bottleneck: parameters by name ("<case>/param/<name>"),
                  train-mode output, gradients of the input and of every parameter, updated
                  running statistics.
  models.bin      for each model: input "<arch>/x", logits in eval mode "<arch>/logits_eval"
                  and in train mode (batch statistics) "<arch>/logits_train". The parameters are
                  NOT stored: every state_dict entry is set from a formula the C++ test
                  reproduces (see formula_values()).
                  Inputs: batch 2 at 32x32 (CIFAR variants), 64x64 (mobilenetv2), 96x96
                  (resnet50: 3x3 maps in layer4, so train-mode BN sees 18 values per channel).
  <arch>.names.txt  one line per state_dict entry, in state_dict order:
                  "<name> <param|buffer> <extent> <extent> ..." (no extents for a scalar),
                  for every architecture of models::known_architectures().

Deterministic: one seeded generator per case, one thread; two runs write identical bytes.
The script also prints, per case, how far PyTorch's float32 result is from its float64 result
on the same inputs: the scale of the rounding noise the C++ tolerances must allow for.

Model definitions (DESIGN.md section 4):
  resnet*        torchvision.models.resnet*.
  resnet*_cifar  the same with conv1 = 3x3 stride 1 padding 1 without bias, maxpool = Identity.
  resnet20/32/56/110  He et al. 2016 CIFAR ResNets built from torchvision's BasicBlock with
                 torchvision's names; 16/32/64 channels; shortcuts on downsampling are option B
                 (1x1 convolution stride 2 + BN, torchvision's "downsample.0/.1").
  wrn_D_K        pre-activation Wide ResNet (Zagoruyko & Komodakis 2016), written as the widely
                 used PyTorch port (xternalz/WideResNet-pytorch, also RepDistiller) with its
                 names: conv1, block<i>.layer.<j>.{bn1,conv1,bn2,conv2,convShortcut}, bn1, fc;
                 no dropout; global average pooling before fc.
  vgg*_bn        torchvision's features; CIFAR head: global average pooling (a no-op on the
                 1x1 map of a 32x32 input) and a single Linear(512, num_classes) "classifier".
  mobilenetv2    torchvision's mobilenet_v2 (ImageNet stem, stride 32), fixture at 64x64.
  mobilenetv2_cifar  the same with the stem convolution at stride 1 (total stride 16),
                 fixture at 32x32. Our MobileNetV2 has no dropout layer: the fixture sets the
                 classifier's Dropout p to 0, so train-mode logits are comparable.
"""

import argparse
import copy
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck

FIXTURE_VERSION = 1
DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.float64): 1, np.dtype(np.int32): 3}
NUM_CLASSES = 10


# ---------------------------------------------------------------------------- fixture files


class Fixture:
    """An ordered set of named tensors, written in the MDFX format."""

    def __init__(self):
        self.tensors = {}

    def add(self, name, value):
        if name in self.tensors:
            raise ValueError("duplicate fixture tensor " + name)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.dtype not in DTYPE_CODES:
            raise ValueError("tensor %s has unsupported dtype %s" % (name, value.dtype))
        self.tensors[name] = np.array(value, order="C", copy=True)  # keeps 0-d arrays 0-d

    def scalar(self, name, value):
        self.add(name, np.array(float(value), dtype=np.float64))

    def write(self, path):
        with open(path, "wb") as out:
            out.write(b"MDFX")
            out.write(struct.pack("<II", FIXTURE_VERSION, len(self.tensors)))
            for name, value in self.tensors.items():
                encoded = name.encode("utf-8")
                out.write(struct.pack("<I", len(encoded)))
                out.write(encoded)
                out.write(struct.pack("<BI", DTYPE_CODES[value.dtype], value.ndim))
                out.write(struct.pack("<%dq" % value.ndim, *value.shape))
                out.write(value.astype(value.dtype.newbyteorder("<")).tobytes())
        return os.path.getsize(path)


class Seeds:
    """One torch.Generator per case, seeded in definition order: reruns draw the same numbers."""

    def __init__(self):
        self.next_seed = 1000

    def generator(self):
        self.next_seed += 1
        return torch.Generator().manual_seed(self.next_seed)


SEEDS = Seeds()


def randn(shape, generator, scale=1.0):
    return (torch.randn(shape, generator=generator, dtype=torch.float32) * scale).contiguous()


def away_from_zero(x, margin=0.05):
    """Moves values away from a kink at 0 (ReLU): PyTorch and we must agree on the side."""
    return x + torch.sign(x) * margin


def rel_error(actual, expected):
    """max |a - b| / max |b| over the tensor: the diagnostic printed for float32 vs float64."""
    expected = expected.double()
    scale = expected.abs().max().item()
    return (actual.double() - expected).abs().max().item() / max(scale, 1e-30)


# ---------------------------------------------------------------------------- op fixtures


def record_case(fixture, case, function, inputs, grad_inputs, params=None, extra=None):
    """Runs function(**inputs, **params) in float32 and float64; stores inputs, out, r, grads.

    inputs: name -> float32 tensor (or int32 labels); grad_inputs: names that get gradients.
    Returns the worst float32-vs-float64 relative error of out and grads (a diagnostic).
    """
    params = params or {}
    generator = SEEDS.generator()
    results = {}
    for dtype in (torch.float32, torch.float64):
        leaves = {}
        for name, value in inputs.items():
            if value.is_floating_point():
                leaf = value.to(dtype).clone().requires_grad_(name in grad_inputs)
            else:
                leaf = value.clone()
            leaves[name] = leaf
        out = function(**leaves, **params)
        if dtype == torch.float32:
            r = randn(out.shape, generator)
        (out * r.to(dtype)).sum().backward()
        results[dtype] = (out.detach(), {n: leaves[n].grad.detach() for n in grad_inputs})
    out32, grads32 = results[torch.float32]
    out64, grads64 = results[torch.float64]
    for name, value in inputs.items():
        fixture.add(case + "/" + name, value.to(torch.int32) if not value.is_floating_point() else value)
    for name, value in params.items():
        fixture.scalar(case + "/" + name, float(value))
    for name, value in (extra or {}).items():
        fixture.scalar(case + "/" + name, float(value))
    fixture.add(case + "/out", out32)
    fixture.add(case + "/r", r)
    worst = rel_error(out32, out64)
    for name in grad_inputs:
        fixture.add(case + "/grad_" + name, grads32[name])
        worst = max(worst, rel_error(grads32[name], grads64[name]))
    return worst


def conv_fixture():
    fixture = Fixture()
    cases = [
        # name, x shape, weight shape, bias, stride, padding, dilation, groups
        ("plain", (2, 3, 7, 7), (4, 3, 3, 3), False, 1, 0, 1, 1),
        ("bias", (2, 3, 6, 6), (5, 3, 3, 3), True, 1, 1, 1, 1),
        ("stride2", (2, 3, 9, 9), (4, 3, 3, 3), True, 2, 1, 1, 1),
        ("padding2", (2, 2, 6, 6), (3, 2, 3, 3), False, 1, 2, 1, 1),
        ("dilation2", (2, 3, 9, 9), (4, 3, 3, 3), False, 1, 2, 2, 1),
        ("groups2", (2, 4, 6, 6), (6, 2, 3, 3), True, 1, 1, 1, 2),
        ("depthwise", (2, 4, 7, 7), (4, 1, 3, 3), False, 2, 1, 1, 4),
        ("batch1", (1, 3, 5, 5), (2, 3, 3, 3), True, 1, 1, 1, 1),
        ("odd_spatial", (2, 2, 7, 5), (3, 2, 3, 3), False, 2, 1, 1, 1),
        ("kernel1_stride2", (2, 3, 8, 8), (4, 3, 1, 1), False, 2, 0, 1, 1),
        ("kernel2_stride3", (2, 3, 8, 8), (4, 3, 2, 2), True, 3, 0, 1, 1),
        ("kernel7_stride2", (2, 3, 11, 11), (4, 3, 7, 7), False, 2, 3, 1, 1),
    ]
    diagnostics = {}
    for name, x_shape, w_shape, bias, stride, padding, dilation, groups in cases:
        g = SEEDS.generator()
        inputs = {"x": randn(x_shape, g), "weight": randn(w_shape, g, 0.5)}
        if bias:
            inputs["bias"] = randn((w_shape[0],), g)

        def function(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
            return F.conv2d(x, weight, bias, stride=int(stride), padding=int(padding),
                            dilation=int(dilation), groups=int(groups))

        diagnostics["conv2d_" + name] = record_case(
            fixture, "conv2d_" + name, function, inputs, list(inputs),
            params={"stride": stride, "padding": padding, "dilation": dilation, "groups": groups})
    return fixture, diagnostics


def linear_fixture():
    fixture = Fixture()
    diagnostics = {}
    for name, bias in (("bias", True), ("no_bias", False)):
        g = SEEDS.generator()
        inputs = {"x": randn((4, 5), g), "weight": randn((3, 5), g, 0.5)}
        if bias:
            inputs["bias"] = randn((3,), g)

        def function(x, weight, bias=None):
            return F.linear(x, weight, bias)

        diagnostics["linear_" + name] = record_case(fixture, "linear_" + name, function, inputs,
                                                    list(inputs))
    return fixture, diagnostics


def batch_norm_fixture():
    fixture = Fixture()
    diagnostics = {}
    momentum, eps = 0.1, 1e-5
    for name, shape, training in (("train", (4, 3, 5, 5), True), ("train_2d", (6, 4), True),
                                  ("eval", (4, 3, 5, 5), False), ("eval_2d", (6, 4), False)):
        case = "batch_norm_" + name
        g = SEEDS.generator()
        channels = shape[1]
        x = randn(shape, g, 2.0) + 0.5
        gamma = 1.0 + randn((channels,), g, 0.3)
        beta = randn((channels,), g, 0.3)
        running_mean = randn((channels,), g, 0.2)
        running_var = 1.0 + torch.rand((channels,), generator=g)
        updated = {}

        def function(x, gamma, beta):
            rm = running_mean.to(x.dtype).clone()
            rv = running_var.to(x.dtype).clone()
            y = F.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=momentum, eps=eps)
            updated[x.dtype] = (rm, rv)
            return y

        diagnostics[case] = record_case(fixture, case, function,
                                        {"x": x, "gamma": gamma, "beta": beta},
                                        ["x", "gamma", "beta"],
                                        extra={"momentum": momentum, "epsilon": eps})
        fixture.add(case + "/running_mean", running_mean)
        fixture.add(case + "/running_var", running_var)
        fixture.add(case + "/running_mean_after", updated[torch.float32][0])
        fixture.add(case + "/running_var_after", updated[torch.float32][1])
    return fixture, diagnostics


def activation_fixture():
    fixture = Fixture()
    diagnostics = {}
    g = SEEDS.generator()
    x = away_from_zero(randn((2, 3, 4, 5), g, 2.0))
    diagnostics["relu"] = record_case(fixture, "relu", lambda x: F.relu(x), {"x": x}, ["x"])
    x = randn((2, 3, 4, 5), g, 3.0)
    diagnostics["sigmoid"] = record_case(fixture, "sigmoid", lambda x: torch.sigmoid(x), {"x": x},
                                         ["x"])
    return fixture, diagnostics


def pool_fixture():
    fixture = Fixture()
    diagnostics = {}
    cases = [
        ("max_k2s2", "max", (2, 3, 8, 8), 2, 2, 0),
        ("max_k3s2p1", "max", (2, 3, 7, 7), 3, 2, 1),
        ("max_k3s2p1_even", "max", (2, 2, 8, 6), 3, 2, 1),
        ("avg_k2s2", "avg", (2, 3, 8, 8), 2, 2, 0),
        ("avg_k3s2p1", "avg", (2, 3, 7, 7), 3, 2, 1),
        ("avg_k3s1p1", "avg", (2, 2, 5, 6), 3, 1, 1),
    ]
    for name, kind, shape, kernel, stride, padding in cases:
        g = SEEDS.generator()
        x = randn(shape, g)
        if kind == "max":
            def function(x, kernel, stride, padding):
                return F.max_pool2d(x, int(kernel), int(stride), int(padding))
        else:
            def function(x, kernel, stride, padding):
                return F.avg_pool2d(x, int(kernel), int(stride), int(padding),
                                    count_include_pad=True)
        case = "pool_" + name
        diagnostics[case] = record_case(fixture, case, function, {"x": x}, ["x"],
                                        params={"kernel": kernel, "stride": stride,
                                                "padding": padding})
    g = SEEDS.generator()
    x = randn((2, 3, 5, 7), g)
    diagnostics["global_avg_pool"] = record_case(
        fixture, "global_avg_pool", lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1), {"x": x},
        ["x"])
    return fixture, diagnostics


def resize_fixture():
    fixture = Fixture()
    diagnostics = {}
    cases = [
        ("nearest_up", "nearest", (2, 3, 3, 5), (7, 9)),
        ("nearest_down", "nearest", (2, 2, 7, 9), (3, 4)),
        ("nearest_2x", "nearest", (2, 2, 4, 4), (8, 8)),
        ("bilinear_up", "bilinear", (2, 3, 3, 5), (7, 9)),
        ("bilinear_down", "bilinear", (2, 2, 7, 9), (3, 4)),
        ("bilinear_2x", "bilinear", (2, 2, 4, 4), (8, 8)),
    ]
    for name, mode, shape, size in cases:
        g = SEEDS.generator()
        x = randn(shape, g)
        if mode == "nearest":
            def function(x, out_height, out_width):
                return F.interpolate(x, size=(int(out_height), int(out_width)), mode="nearest")
        else:
            def function(x, out_height, out_width):
                return F.interpolate(x, size=(int(out_height), int(out_width)), mode="bilinear",
                                     align_corners=False)
        case = "resize_" + name
        diagnostics[case] = record_case(fixture, case, function, {"x": x}, ["x"],
                                        params={"out_height": size[0], "out_width": size[1]})
    return fixture, diagnostics


def elementwise_fixture():
    fixture = Fixture()
    diagnostics = {}
    g = SEEDS.generator()
    inputs = {"x0": randn((2, 2, 3, 3), g), "x1": randn((2, 3, 3, 3), g),
              "x2": randn((2, 1, 3, 3), g)}
    diagnostics["concat"] = record_case(fixture, "concat",
                                        lambda x0, x1, x2: torch.cat([x0, x1, x2], 1), inputs,
                                        list(inputs))
    g = SEEDS.generator()
    inputs = {"a": randn((2, 3, 4, 4), g), "b": randn((2, 3, 4, 4), g)}
    diagnostics["add"] = record_case(fixture, "add", lambda a, b: a + b, inputs, ["a", "b"])
    g = SEEDS.generator()
    inputs = {"a": randn((2, 3, 4, 4), g), "b": randn((2, 3, 4, 4), g)}
    diagnostics["mul"] = record_case(fixture, "mul", lambda a, b: a * b, inputs, ["a", "b"])
    return fixture, diagnostics


def softmax_fixture():
    fixture = Fixture()
    diagnostics = {}
    g = SEEDS.generator()
    x = randn((4, 7), g, 3.0)
    diagnostics["softmax"] = record_case(fixture, "softmax", lambda x: F.softmax(x, 1), {"x": x},
                                         ["x"])
    x = randn((4, 7), g, 3.0)
    diagnostics["log_softmax"] = record_case(fixture, "log_softmax",
                                             lambda x: F.log_softmax(x, 1), {"x": x}, ["x"])
    return fixture, diagnostics


def loss_fixture():
    fixture = Fixture()
    diagnostics = {}
    for name, smoothing in (("cross_entropy", 0.0), ("cross_entropy_smooth", 0.1)):
        g = SEEDS.generator()
        logits = randn((5, 7), g, 2.0)
        labels = torch.randint(0, 7, (5,), generator=g, dtype=torch.int64)

        def function(logits, labels, label_smoothing):
            return F.cross_entropy(logits, labels, label_smoothing=float(label_smoothing))

        diagnostics[name] = record_case(fixture, name, function,
                                        {"logits": logits, "labels": labels}, ["logits"],
                                        params={"label_smoothing": smoothing})
    for name, temperature in (("kl_div_t1", 1.0), ("kl_div_t3", 3.0)):
        g = SEEDS.generator()
        inputs = {"student": randn((5, 7), g, 2.0), "teacher": randn((5, 7), g, 2.0)}

        def function(student, teacher, temperature):
            t = float(temperature)
            return t * t * F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1),
                                    reduction="batchmean")

        diagnostics[name] = record_case(fixture, name, function, inputs, ["student", "teacher"],
                                        params={"temperature": temperature})
    g = SEEDS.generator()
    inputs = {"a": randn((3, 4, 5), g), "b": randn((3, 4, 5), g)}
    diagnostics["mse"] = record_case(fixture, "mse", lambda a, b: F.mse_loss(a, b), inputs,
                                     ["a", "b"])
    return fixture, diagnostics


def optim_fixture():
    """3 steps of torch.optim.SGD / Adam from param0 on the fixed gradients grad1..grad3."""
    fixture = Fixture()
    cases = [
        ("sgd_momentum", "sgd", dict(lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False)),
        ("sgd_nesterov", "sgd", dict(lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True)),
        ("sgd_plain", "sgd", dict(lr=0.2, momentum=0.0, weight_decay=0.0, nesterov=False)),
        ("adam", "adam", dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
        ("adam_weight_decay", "adam", dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6,
                                           weight_decay=1e-2)),
    ]
    for case, kind, options in cases:
        g = SEEDS.generator()
        param0 = randn((37,), g)
        grads = [randn((37,), g) for _ in range(3)]
        param = param0.clone().requires_grad_(True)
        if kind == "sgd":
            optimizer = torch.optim.SGD([param], **options)
        else:
            optimizer = torch.optim.Adam([param], **options)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        fixture.add(case + "/param0", param0)
        for i, grad in enumerate(grads):
            fixture.add(case + "/grad%d" % (i + 1), grad)
        fixture.add(case + "/param3", param.detach())
        state = optimizer.state[param]
        fixture.scalar(case + "/learning_rate", options["lr"])
        fixture.scalar(case + "/weight_decay", options["weight_decay"])
        if kind == "sgd":
            fixture.scalar(case + "/momentum", options["momentum"])
            fixture.scalar(case + "/nesterov", 1.0 if options["nesterov"] else 0.0)
            if options["momentum"] != 0.0:
                fixture.add(case + "/momentum_buffer", state["momentum_buffer"])
        else:
            fixture.scalar(case + "/beta1", options["betas"][0])
            fixture.scalar(case + "/beta2", options["betas"][1])
            fixture.scalar(case + "/epsilon", options["eps"])
            fixture.add(case + "/exp_avg", state["exp_avg"])
            fixture.add(case + "/exp_avg_sq", state["exp_avg_sq"])
    return fixture, {}


# ---------------------------------------------------------------------------- blocks


def block_fixture():
    fixture = Fixture()
    diagnostics = {}
    cases = [
        # name, block, inplanes, planes, stride, downsample
        ("basic_identity", BasicBlock, 8, 8, 1, False),
        ("basic_downsample", BasicBlock, 8, 16, 2, True),
        ("bottleneck_identity", Bottleneck, 16, 4, 1, False),
        ("bottleneck_downsample", Bottleneck, 8, 4, 2, True),
    ]
    for name, block_class, inplanes, planes, stride, has_downsample in cases:
        g = SEEDS.generator()
        torch.manual_seed(g.initial_seed())
        downsample = None
        if has_downsample:
            out = planes * block_class.expansion
            downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(out))
        block = block_class(inplanes, planes, stride=stride, downsample=downsample)
        with torch.no_grad():
            for key, value in block.state_dict().items():
                if key.endswith("num_batches_tracked"):
                    continue
                if key.endswith("running_var"):
                    value.copy_(1.0 + torch.rand(value.shape, generator=g))
                elif key.endswith("running_mean") or key.endswith("bias"):
                    value.copy_(randn(value.shape, g, 0.2))
                elif value.dim() == 1:
                    value.copy_(1.0 + randn(value.shape, g, 0.2))
                else:
                    fan_in = value[0].numel()
                    value.copy_(randn(value.shape, g, 1.0 / math.sqrt(fan_in)))
        case = "block_" + name
        for key, value in block.state_dict().items():
            if not key.endswith("num_batches_tracked"):
                fixture.add(case + "/param/" + key, value.clone())
        x = randn((2, inplanes, 8, 8), g)
        block64 = copy.deepcopy(block).double()
        results = {}
        for dtype, module in ((torch.float32, block), (torch.float64, block64)):
            module.train()
            leaf = x.to(dtype).clone().requires_grad_(True)
            y = module(leaf)
            if dtype == torch.float32:
                r = randn(y.shape, g)
            (y * r.to(dtype)).sum().backward()
            grads = {key: p.grad.detach().clone() for key, p in module.named_parameters()}
            results[dtype] = (y.detach(), leaf.grad.detach(), grads)
        y32, grad_x32, grads32 = results[torch.float32]
        y64, grad_x64, grads64 = results[torch.float64]
        fixture.add(case + "/x", x)
        fixture.add(case + "/r", r)
        fixture.add(case + "/out", y32)
        fixture.add(case + "/grad_x", grad_x32)
        worst = max(rel_error(y32, y64), rel_error(grad_x32, grad_x64))
        for key, grad in grads32.items():
            fixture.add(case + "/grad/" + key, grad)
            worst = max(worst, rel_error(grad, grads64[key]))
        for key, value in block.state_dict().items():
            if key.endswith("running_mean") or key.endswith("running_var"):
                fixture.add(case + "/updated/" + key, value.clone())
        diagnostics[case] = worst
    return fixture, diagnostics


# ---------------------------------------------------------------------------- models


class CifarResNet(nn.Module):
    """He et al. 2016 CIFAR ResNet-(6n+2) with torchvision's BasicBlock and names; option-B
    shortcuts (1x1 conv + BN) where the shape changes."""

    def __init__(self, depth, num_classes):
        super().__init__()
        assert (depth - 2) % 6 == 0
        blocks = (depth - 2) // 6
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, blocks, 1)
        self.layer2 = self._make_layer(32, blocks, 2)
        self.layer3 = self._make_layer(64, blocks, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def _make_layer(self, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class WideBasic(nn.Module):
    """Pre-activation wide block (xternalz/WideResNet-pytorch's BasicBlock, no dropout)."""

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1,
                                                                     stride, 0, bias=False)

    def forward(self, x):
        if not self.equal_in_out:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(out))))
        return (x if self.equal_in_out else self.convShortcut(x)) + out


class NetworkBlock(nn.Module):
    def __init__(self, blocks, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBasic(in_planes if i == 0 else out_planes, out_planes,
                                               stride if i == 0 else 1) for i in range(blocks)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen_factor, num_classes):
        super().__init__()
        assert (depth - 4) % 6 == 0
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(blocks, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(blocks, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(blocks, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet_cifar_stem(model):
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def vgg_cifar_head(model):
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Linear(512, NUM_CLASSES)
    return model


def mobilenet(stem_stride):
    model = torchvision.models.mobilenet_v2(num_classes=NUM_CLASSES)
    model.features[0][0].stride = (stem_stride, stem_stride)
    model.classifier[0].p = 0.0
    return model


def build_model(arch):
    m = torchvision.models
    if arch in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        return getattr(m, arch)(num_classes=NUM_CLASSES)
    if arch.endswith("_cifar") and arch.startswith("resnet"):
        return resnet_cifar_stem(getattr(m, arch[:-len("_cifar")])(num_classes=NUM_CLASSES))
    if arch in ("resnet20", "resnet32", "resnet56", "resnet110"):
        return CifarResNet(int(arch[len("resnet"):]), NUM_CLASSES)
    if arch.startswith("wrn_"):
        _, depth, width = arch.split("_")
        return WideResNet(int(depth), int(width), NUM_CLASSES)
    if arch in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
        return vgg_cifar_head(getattr(m, arch)(num_classes=NUM_CLASSES))
    if arch == "mobilenetv2":
        return mobilenet(2)
    if arch == "mobilenetv2_cifar":
        return mobilenet(1)
    raise ValueError("unknown arch " + arch)


def hash_uniform(index, count):
    """count values in [-1, 1) for state_dict entry `index`: splitmix64 of (index << 32 | j),
    top 53 bits as a fraction. Integer arithmetic only, so C++ reproduces it bit for bit."""
    z = (np.uint64(index) << np.uint64(32)) | np.arange(count, dtype=np.uint64)
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53) * 2.0 - 1.0


def formula_values(name, shape, index):
    """The deterministic value of every element of state_dict entry `index` (C++ twin:
    tests/models/test_models.cpp), computed in float64 and rounded to float32.
    x_j = hash_uniform(index, count)[j] in [-1, 1):
      num_batches_tracked 0; running_mean 0.1 x; running_var 1 + 0.5 |x|;
      a 1-d weight (BN) 1 + 0.1 x; any bias 0.5 + 0.1 x; other weights x * sqrt(6 / fan_in)
      (He uniform), fan_in = product of the extents after the first.
    Conditioning matters: the reference is float32, so the network must not amplify rounding.
    A smooth formula such as sin(a j + b) makes every output channel of a layer a combination
    of the same two patterns (rank-2 layers; resnet50 float32 vs float64 differed by 20%); BN
    biases around 0 leave half the units at ReLU's kink and train-mode BN over few values per
    channel amplifies float32 noise ~30x more than with biases around 0.5."""
    count = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    x = hash_uniform(index, count)
    if name.endswith("running_mean"):
        values = 0.1 * x
    elif name.endswith("running_var"):
        values = 1.0 + 0.5 * np.abs(x)
    elif name.endswith("weight") and len(shape) == 1:
        values = 1.0 + 0.1 * x
    elif name.endswith("bias"):
        values = 0.5 + 0.1 * x
    else:
        fan_in = int(np.prod(shape[1:]))
        values = x * math.sqrt(6.0 / fan_in)
    return values.astype(np.float32).reshape(shape)


def names_text(model):
    parameter_names = {name for name, _ in model.named_parameters()}
    lines = []
    for name, value in model.state_dict().items():
        kind = "param" if name in parameter_names else "buffer"
        lines.append(" ".join([name, kind] + [str(extent) for extent in value.shape]))
    return "\n".join(lines) + "\n"


def set_formula_parameters(model):
    with torch.no_grad():
        for index, (name, value) in enumerate(model.state_dict().items()):
            value.copy_(torch.from_numpy(formula_values(name, tuple(value.shape), index)))


FORWARD_MODELS = [
    # arch, input shape
    ("resnet18_cifar", (2, 3, 32, 32)),
    ("resnet50", (2, 3, 96, 96)),
    ("resnet20", (2, 3, 32, 32)),
    ("wrn_16_4", (2, 3, 32, 32)),
    ("vgg11_bn", (2, 3, 32, 32)),
    ("mobilenetv2", (2, 3, 64, 64)),
    ("mobilenetv2_cifar", (2, 3, 32, 32)),
]

NAMES_ONLY_MODELS = [
    "resnet18", "resnet34", "resnet101", "resnet152",
    "resnet34_cifar", "resnet50_cifar", "resnet101_cifar", "resnet152_cifar",
    "resnet32", "resnet56", "resnet110",
    "wrn_16_1", "wrn_16_2", "wrn_16_8", "wrn_28_10", "wrn_40_1", "wrn_40_2", "wrn_40_4",
    "vgg13_bn", "vgg16_bn", "vgg19_bn",
]


def model_fixture(out_dir, written):
    fixture = Fixture()
    diagnostics = {}
    for arch, input_shape in FORWARD_MODELS:
        model = build_model(arch)
        set_formula_parameters(model)
        g = SEEDS.generator()
        x = randn(input_shape, g)
        fixture.add(arch + "/x", x)
        model64 = build_model(arch).double()
        model64.load_state_dict(model.state_dict())
        logits = {}
        for mode in ("eval", "train"):
            for dtype, module in ((torch.float32, model), (torch.float64, model64)):
                module.train(mode == "train")
                with torch.no_grad():
                    logits[(mode, dtype)] = module(x.to(dtype))
            fixture.add(arch + "/logits_" + mode, logits[(mode, torch.float32)])
        for mode in ("eval", "train"):
            diagnostics[arch + " " + mode] = rel_error(logits[(mode, torch.float32)],
                                                       logits[(mode, torch.float64)])
        print("  %-18s logits eval |max| %.3g, train |max| %.3g" % (
            arch, logits[("eval", torch.float32)].abs().max().item(),
            logits[("train", torch.float32)].abs().max().item()))
        write_names(out_dir, arch, model, written)
    for arch in NAMES_ONLY_MODELS:
        write_names(out_dir, arch, build_model(arch), written)
    return fixture, diagnostics


def write_names(out_dir, arch, model, written):
    path = os.path.join(out_dir, arch + ".names.txt")
    with open(path, "w") as out:
        out.write(names_text(model))
    written.append((path, os.path.getsize(path)))


# ---------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
    parser.add_argument("--out", default=os.path.normpath(default_out))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    written = []
    diagnostics = {}
    families = [
        ("ops_conv2d", conv_fixture), ("ops_linear", linear_fixture),
        ("ops_batch_norm", batch_norm_fixture), ("ops_activation", activation_fixture),
        ("ops_pool", pool_fixture), ("ops_resize", resize_fixture),
        ("ops_elementwise", elementwise_fixture), ("ops_softmax", softmax_fixture),
        ("ops_loss", loss_fixture), ("optim", optim_fixture), ("blocks", block_fixture),
    ]
    for name, make in families:
        fixture, family_diagnostics = make()
        path = os.path.join(args.out, name + ".bin")
        written.append((path, fixture.write(path)))
        diagnostics.update(family_diagnostics)
    print("models:")
    fixture, model_diagnostics = model_fixture(args.out, written)
    path = os.path.join(args.out, "models.bin")
    written.append((path, fixture.write(path)))
    diagnostics.update(model_diagnostics)

    print("float32 vs float64 PyTorch, max|a-b|/max|b| (how much float32 alone moves):")
    for case, error in diagnostics.items():
        print("  %-28s %.2e" % (case, error))
    print("wrote:")
    total = 0
    for path, size in written:
        print("  %-60s %9d bytes" % (os.path.relpath(path), size))
        total += size
    print("total %d bytes in %d files" % (total, len(written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
