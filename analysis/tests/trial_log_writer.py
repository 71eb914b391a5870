"""Writes trial logs with h5py in exactly the format of src/io/trial_log.cpp (DESIGN.md section
6), for the analysis tests: root attributes (schema_version and ranks int64, strings as
variable-length UTF-8), /train and /epoch groups of chunked, unlimited 1-D float64 datasets with
NaN fill value (groups track creation order), /final float64 attributes. The config attribute is
the YAML text of a full resolved trial config (every section, as io::to_yaml writes it)."""

import copy

import h5py
import numpy as np
import yaml

HEADS = 4

BASE_CONFIG = {
    "dataset": {"name": "idx", "root": "/data", "train_images": "train-images-idx3-ubyte.gz",
                "train_labels": "train-labels-idx1-ubyte.gz",
                "test_images": "t10k-images-idx3-ubyte.gz",
                "test_labels": "t10k-labels-idx1-ubyte.gz"},
    "model": {"arch": "resnet20", "num_classes": 0, "in_channels": 0, "init_from": ""},
    "method": {"name": "baseline", "temperature": 3.0, "alpha": 0.3, "hint": 0.0,
               "meta": {"every": 1, "epsilon": 0.01, "data": "next_batch",
                        "holdout_fraction": 0.1, "optimizer": {"name": "adam", "lr": 0.001},
                        "generator_width": 128}},
    "optim": {"epochs": 3, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": False,
              "weight_decay": 5.0e-4, "label_smoothing": 0.0,
              "schedule": {"name": "multistep", "milestones": [100, 150], "gamma": 0.1,
                           "warmup_epochs": 0}},
    "augment": {"random_crop": 4, "flip": True, "cutout": 0},
    "runtime": {"device": "auto", "precision": "fp32", "threads": 0, "seed": 0,
                "deterministic": False, "ranks_per_trial": 1, "log_every": 50,
                "checkpoint_every_epochs": 1, "max_train_batches": 0, "max_eval_batches": 0},
}


def make_config(**overrides):
    """BASE_CONFIG with dotted-key overrides: make_config(**{"method.name": "byot"})."""
    config = copy.deepcopy(BASE_CONFIG)
    for key, value in overrides.items():
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return config


def head_value(final_value, head):
    """Head s reaches final - 0.01 * (HEADS - 1 - s)."""
    return final_value - 0.01 * (HEADS - 1 - head)


def _table(group, rows):
    metrics = []
    for row in rows:
        for metric in row:
            if metric not in metrics:
                metrics.append(metric)
    for metric in metrics:
        values = np.array([row.get(metric, np.nan) for row in rows], dtype=np.float64)
        group.create_dataset(metric, data=values, maxshape=(None,), chunks=(1024,),
                             dtype="<f8", fillvalue=np.nan)


def write_trial_log(path, config, epoch_accuracies, status="complete", trial_id="0123456789abcdef",
                    wall_per_epoch=10.0, gpu_hours=0.5, train_loss=None, final=True):
    """A log whose /epoch test_acc_final rows are `epoch_accuracies` (heads and ensemble derived
    from them), with /final (last and best of those rows) when `final` and status complete."""
    epochs = len(epoch_accuracies)
    train_loss = train_loss or [2.0 / (epoch + 1) for epoch in range(epochs)]
    with h5py.File(path, "w", libver=("v108", "v110"), track_order=True) as handle:
        handle.attrs["schema_version"] = np.int64(1)
        attributes = {
            "trial_id": trial_id, "sweep": "test-sweep", "status": status, "error": "",
            "config": yaml.safe_dump(config, sort_keys=False), "git_sha": "0000000",
            "host": "localhost", "device_name": "cpu", "start_time": "2024-01-01T00:00:00Z",
        }
        for name, value in attributes.items():
            handle.attrs[name] = value
        handle.attrs["ranks"] = np.int64(1)
        train = handle.create_group("train", track_order=True)
        _table(train, [{"step": 100.0 * (epoch + 1), "epoch": epoch + 1.0, "lr": 0.1,
                        "loss": train_loss[epoch], "loss_ce": train_loss[epoch], "loss_kd": 0.0,
                        "loss_hint": 0.0, "images_per_s": 1000.0} for epoch in range(epochs)])
        rows = []
        for epoch, accuracy in enumerate(epoch_accuracies):
            row = {"epoch": epoch + 1.0, "train_loss": train_loss[epoch], "test_loss": 1.0,
                   "test_acc_final": accuracy, "test_acc_ensemble": accuracy + 0.005,
                   "wall_s": wall_per_epoch}
            for head in range(HEADS):
                row[f"test_acc_head{head}"] = head_value(accuracy, head)
            rows.append(row)
        _table(handle.create_group("epoch", track_order=True), rows)
        if final and status == "complete":
            last, best = epoch_accuracies[-1], max(epoch_accuracies)
            group = handle.create_group("final")
            values = {"last_acc_final": last, "best_acc_final": best,
                      "last_acc_ensemble": last + 0.005, "best_acc_ensemble": best + 0.005,
                      "total_wall_s": wall_per_epoch * epochs, "gpu_hours": gpu_hours,
                      "epochs": float(epochs), "steps": 100.0 * epochs}
            for head in range(HEADS):
                values[f"last_acc_head{head}"] = head_value(last, head)
                values[f"best_acc_head{head}"] = head_value(best, head)
            for name, value in values.items():
                group.attrs[name] = np.float64(value)
        if status != "running":
            handle.attrs["end_time"] = "2024-01-01T01:00:00Z"
    return path
