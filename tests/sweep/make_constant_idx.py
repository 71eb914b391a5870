# Writes an IDX data set of one 28x28 image repeated COUNT times with varied labels
# (images-idx3-ubyte, labels-idx1-ubyte in OUT_DIR). Every part of a batch then has the same
# batch-norm statistics, so a data-parallel trial (each rank normalizing its own part) must
# equal a single-rank trial of the same global batch up to float rounding: the exact check of
# the sweep's allreduce, batch split and parameter broadcast (run_sweep_mpi.sh data_parallel).
# Usage: make_constant_idx.py OUT_DIR COUNT
import struct
import sys

import numpy as np

out_dir, count = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
image = rng.integers(0, 256, size=(28, 28), dtype=np.uint8)
labels = rng.integers(0, 10, size=count, dtype=np.uint8)
with open(f"{out_dir}/images-idx3-ubyte", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, count, 28, 28))
    f.write(np.repeat(image[None], count, axis=0).tobytes())
with open(f"{out_dir}/labels-idx1-ubyte", "wb") as f:
    f.write(struct.pack(">II", 0x801, count))
    f.write(labels.tobytes())
