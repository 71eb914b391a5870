# Reads an ASHA (or full) sweep's output directory for tests/sweep/run_asha_mpi.sh.
#   asha_check.py best DIR        the swept config (the `grid` overrides but runtime.seed) whose
#                                 complete trials have the highest mean last acc_final, and the
#                                 trial ids of that config, tab-separated
#   asha_check.py epochs DIR      trial-epochs trained: the /epoch rows of every log, summed
#   asha_check.py decisions DIR   one line per ASHA record: "level<k>/<unit> <decision>", sorted
#   asha_check.py same A B        exit 1 unless checkpoints A and B hold bit-identical /model
#                                 /aux and /optim tensors
import glob
import os
import re
import sys

import h5py
import numpy as np


def logs(directory):
    for path in sorted(glob.glob(os.path.join(directory, "*.h5"))):
        if not path.endswith(".ckpt.h5"):
            yield path


def config_key(config):
    # The trial config without its seed: the configuration a trial belongs to.
    return re.sub(r"\n  seed: \S+", "", config)


def best(directory):
    groups = {}
    for path in logs(directory):
        with h5py.File(path, "r") as log:
            if log.attrs["status"] != "complete":
                continue
            key = config_key(log.attrs["config"])
            accuracy = float(log["epoch"]["test_acc_final"][-1])
            groups.setdefault(key, []).append((accuracy, log.attrs["trial_id"]))
    key = max(groups, key=lambda k: np.mean([a for a, _ in groups[k]]))
    lr = re.search(r"\n  lr: (\S+)", key).group(1)
    print(f"lr={lr}\t" + " ".join(sorted(i for _, i in groups[key])))


def epochs(directory):
    total = 0
    for path in logs(directory):
        with h5py.File(path, "r") as log:
            if "epoch" in log and "epoch" in log["epoch"]:
                total += len(log["epoch"]["epoch"])
    print(total)


def decisions(directory):
    lines = []
    for path in sorted(glob.glob(os.path.join(directory, ".asha", "level*", "*"))):
        with open(path) as record:
            decision = record.readline().strip().split(": ")[1]
        lines.append(f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)} {decision}")
    print("\n".join(sorted(lines)))


def same(a, b):
    with h5py.File(a, "r") as first, h5py.File(b, "r") as second:
        for group in ("model", "aux", "optim"):
            if group not in first and group not in second:
                continue
            names = sorted(first[group].keys())
            if names != sorted(second[group].keys()):
                sys.exit(f"{group}: different tensors")
            for name in names:
                if not np.array_equal(first[group][name][()], second[group][name][()]):
                    sys.exit(f"{group}/{name} differs")


command = sys.argv[1]
if command == "best":
    best(sys.argv[2])
elif command == "epochs":
    epochs(sys.argv[2])
elif command == "decisions":
    decisions(sys.argv[2])
elif command == "same":
    same(sys.argv[2], sys.argv[3])
else:
    sys.exit(f"unknown command {command}")
