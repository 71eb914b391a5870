#!/usr/bin/python3
"""Writes tests/fixtures/h5py_checkpoint.h5: a checkpoint as PyTorch + h5py write it.

test_checkpoint.cpp loads it with md::io::read_checkpoint and compares every value, so the
checkpoint format stays loadable from a torchvision-style state dict written outside this
project: /model/<name> datasets (float32, PyTorch layouts: OIHW convolutions, [out, in] linear
weights), BatchNorm's num_batches_tracked as an int64 0-d dataset, and root attributes arch
(h5py writes a Python str as a variable-length UTF-8 string) and num_classes (int64).

Values follow a formula the C++ test recomputes: element i of the k-th float tensor (in state
dict order) is ((i * 37 + k * 11) % 101 - 50) / 64, exact in float32; num_batches_tracked is 7.

Run with Debian's python (it has torch and h5py):  /usr/bin/python3 tests/io/make_h5py_checkpoint.py
"""
import pathlib

import h5py
import numpy as np
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)


class TinyResNet(nn.Module):
    """torchvision's naming on a toy scale: conv1, bn1, layer1.0.*, fc."""

    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layer1 = nn.Sequential(BasicBlock(4))
        self.fc = nn.Linear(4, num_classes)


def formula(numel, k):
    i = np.arange(numel, dtype=np.int64)
    return (((i * 37 + k * 11) % 101) - 50).astype(np.float32) / np.float32(64.0)


def main():
    model = TinyResNet()
    state = model.state_dict()
    out = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "h5py_checkpoint.h5"
    with h5py.File(out, "w") as f:
        f.attrs["arch"] = "tiny_resnet"
        f.attrs["num_classes"] = np.int64(5)
        group = f.create_group("model")
        k = 0
        for name, tensor in state.items():
            if tensor.dtype == torch.int64:
                value = np.int64(7)
                assert tensor.dim() == 0, name
                group.create_dataset(name, data=value)
                continue
            values = formula(tensor.numel(), k).reshape(tuple(tensor.shape))
            k += 1
            group.create_dataset(name, data=values)
    print(out, out.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
