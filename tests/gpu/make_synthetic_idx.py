"""Writes a small synthetic data set in the IDX format of Fashion-MNIST (gzipped), for short
trials on a machine without the real one (tests/bench/run_gpu_bench.sh runs them on a GPU
machine, which has no network). 28x28 uint8 images of uniform noise with a bright 8x4 block at
one of ten places, the place being the label: a residual network learns it in a few dozen
steps, so a trial's accuracy tells whether training worked.

Usage: python3 make_synthetic_idx.py DIR [--train N] [--test N]
Writes DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (the names dataset.name: idx
reads by default). Needs numpy only.
"""

import argparse
import gzip
import os
import struct

import numpy as np


def make(rng, count):
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = (rng.random((count, 28, 28)) * 80).astype(np.uint8)
    for image, label in zip(images, labels):
        row, column = divmod(int(label), 5)
        image[3 + 12 * row:11 + 12 * row, 1 + 5 * column:5 + 5 * column] = 255
    return images, labels


def write(path, magic, array):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header)
        f.write(array.tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", args.train), ("t10k", args.test)):
        images, labels = make(rng, count)
        write(os.path.join(args.dir, f"{prefix}-images-idx3-ubyte.gz"), 0x803, images)
        write(os.path.join(args.dir, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, labels)


if __name__ == "__main__":
    main()
