# Prints ||A - B|| / ||B - INIT|| over the trainable parameters (/model, without batch-norm
# running statistics) of three checkpoints: how far A's training update is from B's, relative
# to the size of B's update. Usage: compare_checkpoints.py A.ckpt.h5 B.ckpt.h5 INIT.ckpt.h5
import sys

import h5py
import numpy as np

SKIP = ("running_mean", "running_var", "num_batches_tracked")


def load(path):
    with h5py.File(path, "r") as f:
        return {k: np.asarray(v, dtype=np.float64) for k, v in f["model"].items()
                if not k.endswith(SKIP)}


a, b, init = (load(p) for p in sys.argv[1:4])
assert a.keys() == b.keys() == init.keys(), "checkpoints of different models"
difference = np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
update = np.sqrt(sum(((b[k] - init[k]) ** 2).sum() for k in a))
assert update > 0, "B did not train"
print(f"{difference / update:.3e}")
