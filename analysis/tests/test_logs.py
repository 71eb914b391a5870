"""load_sweep / load_curves on logs written in the trial-log format (trial_log_writer.py): the
DataFrames must hold exactly the numbers written, one row per trial (or per trial, epoch and
metric), and unreadable files must be skipped with a warning that names them."""

import math
import os
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest

from metadistill_analysis import (
    find_trial_logs,
    flatten_config,
    load_curves,
    load_sweep,
    varying_config_keys,
)
from trial_log_writer import HEADS, head_value, make_config, write_trial_log

BASELINE_LAST = [0.70, 0.72, 0.74]
META_LAST = [0.75, 0.76, 0.80]


def baseline_epochs(seed):
    return [0.50, 0.60 + 0.01 * seed, BASELINE_LAST[seed]]


def meta_epochs(seed):
    return [0.55, 0.82 + 0.01 * seed, META_LAST[seed]]  # best epoch is the second


def write_two_methods(directory):
    for seed in range(3):
        write_trial_log(os.path.join(directory, f"b{seed}.h5"),
                        make_config(**{"method.name": "baseline", "runtime.seed": seed}),
                        baseline_epochs(seed), trial_id=f"b{seed}", gpu_hours=0.5)
        write_trial_log(os.path.join(directory, f"m{seed}.h5"),
                        make_config(**{"method.name": "metadistiller", "runtime.seed": seed}),
                        meta_epochs(seed), trial_id=f"m{seed}", gpu_hours=1.25,
                        wall_per_epoch=20.0)


def test_load_sweep_one_row_per_trial_with_config_and_final_metrics(tmp_path):
    write_two_methods(str(tmp_path))
    sweep = load_sweep(str(tmp_path))
    assert len(sweep) == 6
    assert list(sweep.columns[:2]) == ["trial_id", "status"]
    assert set(sweep["status"]) == {"complete"}
    assert sweep["has_final"].all()
    assert (sweep["heads"] == HEADS).all()
    assert sweep["runtime.seed"].tolist() == [0, 1, 2, 0, 1, 2]
    assert sweep["optim.schedule.milestones"].iloc[0] == (100, 150)
    assert sweep["optim.lr"].iloc[0] == 0.1
    by_id = sweep.set_index("trial_id")
    for seed in range(3):
        assert by_id.loc[f"b{seed}", "last_acc_final"] == BASELINE_LAST[seed]
        assert by_id.loc[f"m{seed}", "best_acc_final"] == 0.82 + 0.01 * seed
        assert by_id.loc[f"m{seed}", "last_acc_ensemble"] == META_LAST[seed] + 0.005
        for head in range(HEADS):
            assert by_id.loc[f"b{seed}", f"last_acc_head{head}"] == head_value(BASELINE_LAST[seed], head)
    assert by_id.loc["m0", "total_wall_s"] == 60.0
    assert by_id.loc["m0", "epochs"] == 3.0
    assert by_id.loc["m0", "host"] == "localhost"
    assert by_id.loc["m0", "ranks"] == 1
    stats = sweep.groupby("method.name")["last_acc_final"].agg(["mean", "std", "count"])
    assert stats.loc["baseline", "mean"] == pytest.approx(0.72, abs=1e-12)
    assert stats.loc["baseline", "std"] == pytest.approx(0.02, abs=1e-12)
    assert stats.loc["metadistiller", "std"] == pytest.approx(math.sqrt(7e-4), abs=1e-12)
    assert sweep.groupby("method.name")["gpu_hours"].sum()["metadistiller"] == pytest.approx(3.75)
    assert varying_config_keys(sweep) == ["method.name"]


def test_top5_columns_appear_only_for_logs_that_have_them(tmp_path):
    write_two_methods(str(tmp_path))
    top5 = write_trial_log(os.path.join(str(tmp_path), "t0.h5"), make_config(), [0.4, 0.5],
                           trial_id="t0")
    with h5py.File(top5, "a") as handle:
        for which in ("last", "best"):
            handle["final"].attrs[f"{which}_top5_final"] = np.float64(0.9)
            handle["final"].attrs[f"{which}_top5_ensemble"] = np.float64(0.91)
    by_id = load_sweep(str(tmp_path)).set_index("trial_id")
    assert by_id.loc["t0", "last_top5_final"] == 0.9
    assert by_id.loc["t0", "best_top5_ensemble"] == 0.91
    assert math.isnan(by_id.loc["t0", "last_top5_head0"])  # not logged: NaN, not invented
    assert math.isnan(by_id.loc["b0", "last_top5_final"])  # a log without top-5
    assert by_id.loc["b0", "last_acc_final"] == BASELINE_LAST[0]


def test_running_trial_is_summarized_from_its_epoch_rows(tmp_path):
    write_trial_log(str(tmp_path / "run.h5"), make_config(), [0.30, 0.45, 0.40],
                    status="running", trial_id="run")
    row = load_sweep(str(tmp_path)).iloc[0]
    assert row["status"] == "running"
    assert not row["has_final"]
    assert row["last_acc_final"] == 0.40
    assert row["best_acc_final"] == 0.45
    assert row["last_acc_head0"] == head_value(0.40, 0)
    assert row["epochs"] == 3.0
    assert row["total_wall_s"] == 30.0
    assert row["end_time"] is None


def test_complete_status_without_final_counts_as_running(tmp_path):
    write_trial_log(str(tmp_path / "odd.h5"), make_config(), [0.3], status="complete",
                    final=False)
    assert load_sweep(str(tmp_path)).iloc[0]["status"] == "running"


def test_unreadable_files_are_skipped_with_warnings(tmp_path):
    write_two_methods(str(tmp_path))
    (tmp_path / "nested").mkdir()
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"x" * 4096)
    foreign = tmp_path / "nested" / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle.create_dataset("images", data=np.zeros(4))
    newer = tmp_path / "nested" / "newer.h5"
    write_trial_log(str(newer), make_config(), [0.5])
    with h5py.File(newer, "a") as handle:
        handle.attrs["schema_version"] = np.int64(99)
    (tmp_path / "b0.ckpt.h5").write_bytes(b"checkpoint")
    (tmp_path / "b0.ckpt.h5.tmp").write_bytes(b"temporary")
    assert find_trial_logs(str(tmp_path)) == sorted(
        [str(tmp_path / name) for name in ["b0.h5", "b1.h5", "b2.h5", "m0.h5", "m1.h5", "m2.h5",
                                           "corrupt.h5"]]
        + [str(foreign), str(newer)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep = load_sweep(str(tmp_path))
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 3, messages
    for path in (corrupt, foreign, newer):
        assert any(str(path) in message for message in messages), messages
    assert any("no root attribute schema_version" in message for message in messages)
    assert any("schema_version 99" in message for message in messages)
    assert len(sweep) == 6


def test_empty_and_missing_directories(tmp_path):
    sweep = load_sweep(str(tmp_path))
    assert sweep.empty
    assert list(sweep.columns) == ["trial_id", "status", "file"]
    curves = load_curves(str(tmp_path))
    assert curves.empty
    with pytest.raises(FileNotFoundError, match="missing"):
        load_sweep(str(tmp_path / "missing"))


def test_load_curves_long_format(tmp_path):
    write_two_methods(str(tmp_path))
    curves = load_curves(str(tmp_path))
    # every /epoch column but "epoch" itself: train_loss, test_loss, test_acc_final,
    # test_acc_ensemble, wall_s and one per head
    assert set(curves["metric"]) == {"train_loss", "test_loss", "test_acc_final",
                                     "test_acc_ensemble", "wall_s"} | {
        f"test_acc_head{head}" for head in range(HEADS)}
    assert len(curves) == 6 * 3 * (5 + HEADS)  # trials x epochs x metrics
    assert {"trial_id", "status", "epoch", "metric", "value", "method.name",
            "runtime.seed"} <= set(curves.columns)
    final = curves[(curves["metric"] == "test_acc_final") & (curves["trial_id"] == "m2")]
    assert final.sort_values("epoch")["value"].tolist() == meta_epochs(2)
    assert final["epoch"].tolist() == [1.0, 2.0, 3.0]
    assert set(final["method.name"]) == {"metadistiller"}
    mean = (curves[curves["metric"] == "test_acc_final"]
            .groupby(["method.name", "epoch"])["value"].mean())
    assert mean[("baseline", 3.0)] == pytest.approx(0.72, abs=1e-12)
    train = load_curves(str(tmp_path), table="train")
    assert set(train["metric"]) == {"step", "lr", "loss", "loss_ce", "loss_kd", "loss_hint",
                                    "images_per_s"}


def test_unequal_metric_lengths_keep_complete_rows(tmp_path):
    path = str(tmp_path / "killed.h5")
    write_trial_log(path, make_config(), [0.3, 0.4, 0.5], status="running")
    with h5py.File(path, "a") as handle:
        handle["epoch/test_acc_final"].resize((2,))
    sweep = load_sweep(str(tmp_path))
    assert sweep.iloc[0]["epochs"] == 2.0
    assert sweep.iloc[0]["last_acc_final"] == 0.4
    curves = load_curves(str(tmp_path))
    assert curves["epoch"].max() == 2.0


def test_flatten_config():
    flat = flatten_config("optim: {lr: 0.1, schedule: {milestones: [1, 2]}}\nmodel: {x: null}\n")
    assert flat == {"optim.lr": 0.1, "optim.schedule.milestones": (1, 2), "model.x": None}
    assert flatten_config("") == {}
    with pytest.raises(ValueError):
        flatten_config("- 1\n- 2\n")


def test_varying_keys_ignore_seed_and_runtime_only_keys():
    frame = pd.DataFrame({"runtime.seed": [0, 1], "runtime.threads": [1, 2],
                          "model.arch": ["a", "a"], "method.alpha": [0.1, 0.3],
                          "last_acc_final": [0.5, 0.6]})
    assert varying_config_keys(frame) == ["method.alpha"]
