#!/usr/bin/python3
"""Weights from PyTorch into metadistill: writes a checkpoint the way docs/formats.md tells a PyTorch
user to (h5py, /model/<state_dict name>, root attributes arch and num_classes), an input x and
PyTorch's logits for it, for tests/e2e/test_predict.cpp, which runs `metadistill predict` on
them and compares the logits.

The model is resnet20 (He et al. 2016 CIFAR ResNet, defined as in tests/reference/
make_fixtures.py with torchvision's BasicBlock and names) for one-channel 28x28 images (the
Fashion-MNIST shape; the first convolution tells predict the channel count) and 10 classes, with
random weights and random BN running statistics, in eval mode. It is the smallest model of the
zoo with every layer kind of a torchvision ResNet (strided blocks, 1x1 downsample shortcuts);
its 0.27 M float32 parameters (1.1 MB raw) are drawn on a grid of 2^-12 and the larger tensors
stored with HDF5's shuffle + gzip filters (what h5py users often write), which keeps the
committed file under 1 MB; the float32 values and dtype are those a PyTorch user writes.

Run with Debian's python3-torch (/usr/bin/python3):
  /usr/bin/python3 tests/e2e/make_torch_checkpoint.py [--out tests/fixtures]
writes torch_resnet20.h5 (the checkpoint) and torch_resnet20_io.h5 (datasets x, logits).
Deterministic: byte-identical files on every run (fixed seeds, one thread).
"""

import argparse
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from make_fixtures import CifarResNet  # noqa: E402

ARCH = "resnet20"
NUM_CLASSES = 10
IMAGES = 4


def build_model():
    torch.manual_seed(2020)
    model = CifarResNet(20, NUM_CLASSES)
    model.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
    nn.init.kaiming_uniform_(model.conv1.weight)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                # Non-trivial eval-mode statistics and affine parameters.
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)
                module.num_batches_tracked.fill_(100)
        # Weights on a grid of 2^-12 (exact in float32, every product and sum of the forward
        # pass still rounds as usual): the low mantissa bytes are zero, which HDF5's shuffle +
        # gzip filters compress away. Running statistics stay full float32.
        for name, tensor in model.named_parameters():
            tensor.copy_(torch.round(tensor * 4096.0) / 4096.0)
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "..", "fixtures"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = build_model()
    x = torch.rand(IMAGES, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2.0 - 1.0
    with torch.no_grad():
        logits = model(x)

    checkpoint = os.path.join(args.out, "torch_resnet20.h5")
    with h5py.File(checkpoint, "w") as f:
        f.attrs["arch"], f.attrs["num_classes"] = ARCH, NUM_CLASSES
        for name, tensor in model.state_dict().items():
            value = tensor.numpy()
            if value.size < 4096:
                f[f"model/{name}"] = value
            else:
                f.create_dataset(f"model/{name}", data=value, compression="gzip", shuffle=True)
    io_path = os.path.join(args.out, "torch_resnet20_io.h5")
    with h5py.File(io_path, "w") as f:
        f["x"] = x.numpy().astype(np.float32)
        f["logits"] = logits.numpy().astype(np.float32)
    for path in (checkpoint, io_path):
        print(f"{path}: {os.path.getsize(path)} bytes")
    print("logits[0]:", logits[0].numpy())


if __name__ == "__main__":
    main()
