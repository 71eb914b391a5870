"""Reading a sweep's trial logs into pandas DataFrames.

A trial log (`DIR/<trial-id>.h5`, written by src/io/trial_log.cpp) holds root attributes
(schema_version, trial_id, sweep, status, error, config = the resolved trial YAML, git_sha, host,
device_name, ranks, start_time, end_time), tables /train/<metric> and /epoch/<metric> (1-D
float64 datasets, one row per log interval or epoch) and /final attributes (last_acc_* and
best_acc_* per head and for the final head and the ensemble, total_wall_s, gpu_hours, epochs,
steps). This module reads them the way the C++ report does (analysis/report.cpp): recursively,
checkpoints (*.ckpt.h5) excluded, unreadable files skipped with a warning naming the file, a
trial without /final (running, interrupted, killed) summarized from its /epoch rows. It never
writes a file.
"""

import json
import math
import os
import re
import warnings

import h5py
import numpy as np
import pandas as pd
import yaml

TRIAL_LOG_SCHEMA_VERSION = 1

# The key table of the trial config as `metadistill config --schema` prints it, copied beside
# this module (tools/config_generated.py writes it; a ctest fails when it is stale), so that the
# package needs no binary.
CONFIG_SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config_schema.json")


def config_schema():
    """The trial-config and sweep-file keys: a list of dicts (path, type, default, in_trial_id,
    doc, ...), as `metadistill config --schema` prints them."""
    with open(CONFIG_SCHEMA_PATH, encoding="utf-8") as schema:
        return json.load(schema)


# Keys never grouped by default: the replicate key (the seed, what a group averages over) and
# the keys that the trial id ignores because they do not change a trial's result (in_trial_id
# "no"); the same list as the C++ report.
DEFAULT_EXCLUDED_KEYS = frozenset(
    key["path"]
    for key in config_schema()
    if key["scope"] == "trial" and (key.get("replicate") or key["in_trial_id"] == "no")
)

ROOT_ATTRIBUTES = (
    "trial_id",
    "sweep",
    "status",
    "error",
    "git_sha",
    "host",
    "device_name",
    "ranks",
    "start_time",
    "end_time",
)

_HEAD_METRIC = re.compile(r"^acc_head(\d+)$")


class TrialLogError(ValueError):
    """A file that is not a readable trial log (corrupt, truncated, foreign, newer schema)."""


def find_trial_logs(directory):
    """Paths of the trial logs under `directory` (recursive, sorted): *.h5 but not *.ckpt.h5.

    `directory` may also be one log file. FileNotFoundError when it does not exist.
    """
    if os.path.isfile(directory):
        return [directory]
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    paths = []
    for root, _, files in os.walk(directory):
        for name in files:
            if name.endswith(".h5") and not name.endswith(".ckpt.h5"):
                paths.append(os.path.join(root, name))
    return sorted(paths)


def _python_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def flatten_config(config, prefix=""):
    """A nested mapping (or YAML text) as {dotted key: value}; lists become tuples (hashable)."""
    if isinstance(config, str):
        config = yaml.safe_load(config) if config.strip() else {}
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError("the config is not a YAML mapping")
    flat = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, path + "."))
        elif isinstance(value, list):
            flat[path] = tuple(value)
        else:
            flat[path] = value
    return flat


def read_trial_log(path):
    """One trial log as a dict: attributes, tables {table: {metric: ndarray}}, final {name: float}.

    Raises TrialLogError naming the file when it is not a readable trial log. A table whose
    metrics have unequal lengths (a writer killed mid-flush) keeps its complete rows only.
    """
    try:
        with h5py.File(path, "r", locking=False) as handle:
            attributes = {name: _python_value(value) for name, value in handle.attrs.items()}
            version = attributes.get("schema_version")
            if version is None:
                raise TrialLogError(
                    f"{path}: not a metadistill trial log (no root attribute schema_version)"
                )
            if not isinstance(version, int) or not 1 <= version <= TRIAL_LOG_SCHEMA_VERSION:
                raise TrialLogError(
                    f"{path}: trial log schema_version {version} is not supported "
                    f"(this reader reads 1 to {TRIAL_LOG_SCHEMA_VERSION})"
                )
            tables = {}
            final = {}
            for name, item in handle.items():
                if not isinstance(item, h5py.Group):
                    raise TrialLogError(f"{path}: /{name}: expected a table group or /final")
                if name == "final":
                    final = {key: float(value) for key, value in item.attrs.items()}
                    continue
                columns = {}
                for metric, dataset in item.items():
                    if not isinstance(dataset, h5py.Dataset) or dataset.ndim != 1:
                        raise TrialLogError(f"{path}: /{name}/{metric}: not a 1-D metric dataset")
                    columns[metric] = np.asarray(dataset[()], dtype=np.float64)
                rows = min((len(values) for values in columns.values()), default=0)
                tables[name] = {metric: values[:rows] for metric, values in columns.items()}
    except TrialLogError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise TrialLogError(f"{path}: not a readable trial log: {error}") from error
    return {"attributes": attributes, "tables": tables, "final": final}


def _accuracy_metrics(names, prefix):
    heads = sorted(
        int(match.group(1))
        for match in (_HEAD_METRIC.match(name[len(prefix):]) for name in names if name.startswith(prefix))
        if match
    )
    count = heads[-1] + 1 if heads else 0
    kinds = ["acc"]
    if any(name.startswith(prefix + "top5_") for name in names):  # logged with more than 5 classes
        kinds.append("top5")
    metrics = [f"{kind}_{which}" for kind in kinds
               for which in [f"head{head}" for head in range(count)] + ["final", "ensemble"]]
    return metrics, count


def _trial_row(path, log):
    attributes = log["attributes"]
    final = log["final"]
    epoch = log["tables"].get("epoch", {})
    row = {"file": path}
    for name in ROOT_ATTRIBUTES:
        row[name] = attributes.get(name)
    if not row["trial_id"]:
        row["trial_id"] = os.path.splitext(os.path.basename(path))[0]
    has_final = bool(final)
    status = row["status"]
    if not status or (status == "complete" and not has_final):
        status = "complete" if has_final else "running"
    row["status"] = status
    row["has_final"] = has_final
    try:
        config = flatten_config(attributes.get("config", "") or "")
    except (yaml.YAMLError, ValueError) as error:
        raise TrialLogError(f"{path}: attribute config is not a YAML mapping: {error}") from error
    if has_final:
        metrics, heads = _accuracy_metrics(final, "last_")
        for metric in metrics:
            row["last_" + metric] = final.get("last_" + metric, math.nan)
            row["best_" + metric] = final.get("best_" + metric, math.nan)
        row["epochs"] = final.get("epochs", math.nan)
        row["steps"] = final.get("steps", math.nan)
        row["total_wall_s"] = final.get("total_wall_s", math.nan)
        row["gpu_hours"] = final.get("gpu_hours", math.nan)
    else:
        metrics, heads = _accuracy_metrics(epoch, "test_")
        for metric in metrics:
            values = epoch.get("test_" + metric, np.array([]))
            values = values[~np.isnan(values)]
            row["last_" + metric] = float(values[-1]) if len(values) else math.nan
            row["best_" + metric] = float(values.max()) if len(values) else math.nan
        row["epochs"] = float(max((len(values) for values in epoch.values()), default=0))
        row["steps"] = math.nan
        wall = epoch.get("wall_s", np.array([]))
        row["total_wall_s"] = float(np.nansum(wall)) if len(wall) else 0.0
        row["gpu_hours"] = 0.0
    row["heads"] = heads
    return row, config


def _load(directory):
    """(path, log) for every readable trial log under `directory`; warns for the others."""
    logs = []
    for path in find_trial_logs(directory):
        try:
            logs.append((path, read_trial_log(path)))
        except TrialLogError as error:
            warnings.warn(f"skipped: {error}", stacklevel=3)
    return logs


def load_sweep(directory):
    """One row per trial: trial_id, status, file, the root attributes, has_final, heads, the
    flattened config keys (dotted, e.g. "method.name", typed as YAML reads them), and the final
    metrics last_acc_head<s>, best_acc_head<s>, last/best_acc_final, last/best_acc_ensemble
    (and the same with top5_ for logs that have top-5 accuracies), epochs, steps, total_wall_s, gpu_hours. Accuracies are fractions in [0, 1]. A trial without
    /final has its last and best /epoch values so far. Sorted by file path."""
    rows = []
    for path, log in _load(directory):
        try:
            row, config = _trial_row(path, log)
        except TrialLogError as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            continue
        row.update(config)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["trial_id", "status", "file"])
    leading = ["trial_id", "status"]
    return frame[leading + [column for column in frame.columns if column not in leading]]


def load_curves(directory, table="epoch"):
    """Long format: one row per (trial, row of `table`, metric) with columns trial_id, status,
    epoch, metric, value, plus the flattened config keys. `table` is "epoch" (test accuracies,
    losses, wall_s per epoch) or "train" (losses, lr, images_per_s per log interval; epoch is
    then fractional). Rows with a NaN value are dropped."""
    frames = []
    for path, log in _load(directory):
        try:
            row, config = _trial_row(path, log)
        except TrialLogError as error:
            warnings.warn(f"skipped: {error}", stacklevel=2)
            continue
        columns = log["tables"].get(table, {})
        if "epoch" not in columns:
            continue
        wide = pd.DataFrame(columns)
        long = wide.melt(id_vars=["epoch"], var_name="metric", value_name="value")
        long = long.dropna(subset=["value"])
        long.insert(0, "trial_id", row["trial_id"])
        long.insert(1, "status", row["status"])
        for key, value in config.items():
            long[key] = [value] * len(long)
        frames.append(long)
    if not frames:
        return pd.DataFrame(columns=["trial_id", "status", "epoch", "metric", "value"])
    return pd.concat(frames, ignore_index=True)


def varying_config_keys(frame):
    """Config columns (dotted names) whose values differ across the rows of `frame`, except
    runtime.seed and the keys that do not change results; sorted."""
    keys = []
    for column in frame.columns:
        if "." not in column or column in DEFAULT_EXCLUDED_KEYS:
            continue
        values = frame[column]
        if values.isna().any() and not values.isna().all():
            keys.append(column)
        elif values.map(repr).nunique() > 1:
            keys.append(column)
    return sorted(keys)
