"""The figures: each builder's matplotlib Figure is inspected before saving (one line and one
± std band per group, one bar series per group with a bar per head, one error-bar series per
group for the sensitivity), the plotted numbers are the means of the logs, and the command
writes real PNG files of the expected pixel size."""

import os
import struct

import h5py
import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer

from metadistill_analysis import load_curves, load_sweep
from metadistill_analysis.plots import (
    DPI,
    FIGURE_SIZE,
    head_accuracy_figure,
    learning_curves_figure,
    main,
    sensitivity_figure,
)
from trial_log_writer import HEADS, head_value, make_config, write_trial_log

EXPECTED_PIXELS = (int(FIGURE_SIZE[0] * DPI), int(FIGURE_SIZE[1] * DPI))


def write_sweep(directory):
    """2 methods x 3 seeds, plus a running trial and a diverged one (not plotted as curves)."""
    for seed in range(3):
        write_trial_log(os.path.join(directory, f"b{seed}.h5"),
                        make_config(**{"method.name": "baseline", "runtime.seed": seed}),
                        [0.50, 0.60, 0.70 + 0.02 * seed], trial_id=f"b{seed}")
        write_trial_log(os.path.join(directory, f"m{seed}.h5"),
                        make_config(**{"method.name": "metadistiller", "runtime.seed": seed}),
                        [0.55, 0.65 + 0.01 * seed, 0.75 + 0.01 * seed], trial_id=f"m{seed}")
    write_trial_log(os.path.join(directory, "dead.h5"),
                    make_config(**{"method.name": "baseline", "runtime.seed": 9}),
                    [0.01], status="diverged", trial_id="dead")


def write_alpha_sweep(directory):
    """method.alpha in {0.1, 0.3, 0.5} x arch in {resnet20, resnet56} x 2 seeds."""
    os.makedirs(directory, exist_ok=True)
    for alpha in (0.1, 0.3, 0.5):
        for arch_index, arch in enumerate(("resnet20", "resnet56")):
            for seed in range(2):
                accuracy = 0.6 + alpha * 0.1 + 0.05 * arch_index + 0.01 * seed
                write_trial_log(
                    os.path.join(directory, f"{alpha}-{arch}-{seed}.h5"),
                    make_config(**{"method.name": "metadistiller", "method.alpha": alpha,
                                   "model.arch": arch, "runtime.seed": seed}),
                    [accuracy - 0.1, accuracy], trial_id=f"{alpha}-{arch}-{seed}")


def png_size(path):
    with open(path, "rb") as handle:
        header = handle.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_learning_curves_one_line_and_band_per_group(tmp_path):
    write_sweep(str(tmp_path))
    figure = learning_curves_figure(load_curves(str(tmp_path)))
    accuracy_axes, loss_axes = figure.axes
    for axes in (accuracy_axes, loss_axes):
        assert len(axes.lines) == 2
        bands = [c for c in axes.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 2
    labels = [line.get_label() for line in accuracy_axes.lines]
    assert labels == ["baseline", "metadistiller"]
    baseline = accuracy_axes.lines[0]
    np.testing.assert_allclose(baseline.get_xdata(), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(baseline.get_ydata(), [50.0, 60.0, 72.0], atol=1e-9)
    # The band of the last epoch spans mean ± sample std: 72 ± 2.
    vertices = accuracy_axes.collections[0].get_paths()[0].vertices
    at_last_epoch = vertices[np.isclose(vertices[:, 0], 3.0), 1]
    np.testing.assert_allclose(sorted(set(np.round(at_last_epoch, 9))), [70.0, 74.0], atol=1e-9)
    matplotlib.pyplot.close(figure)


def test_learning_curves_explicit_grouping(tmp_path):
    write_sweep(str(tmp_path))
    figure = learning_curves_figure(load_curves(str(tmp_path)), group_by=["model.arch"])
    assert len(figure.axes[0].lines) == 1  # one architecture: one group of all six trials
    np.testing.assert_allclose(figure.axes[0].lines[0].get_ydata()[0], 52.5, atol=1e-9)
    matplotlib.pyplot.close(figure)
    with pytest.raises(ValueError, match="method.nam"):
        learning_curves_figure(load_curves(str(tmp_path)), group_by=["method.nam"])


def test_head_accuracy_grouped_bars(tmp_path):
    write_sweep(str(tmp_path))
    figure = head_accuracy_figure(load_sweep(str(tmp_path)))
    axes = figure.axes[0]
    bars = [c for c in axes.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2
    for container in bars:
        assert len(container.patches) == HEADS + 1
    heights = [patch.get_height() for patch in bars[0].patches]
    expected = [100 * head_value(0.72, head) for head in range(HEADS - 1)] + [72.0, 72.5]
    np.testing.assert_allclose(heights, expected, atol=1e-9)
    assert [tick.get_text() for tick in axes.get_xticklabels()] == [
        "head 0", "head 1", "head 2", "final", "ensemble"]
    matplotlib.pyplot.close(figure)


def test_head_accuracy_baseline_has_no_auxiliary_bars(tmp_path):
    write_sweep(str(tmp_path))
    with h5py.File(tmp_path / "b0.h5", "a") as handle:  # a one-head (baseline) network
        for head in range(1, HEADS):
            for which in ("last", "best"):
                del handle["final"].attrs[f"{which}_acc_head{head}"]
        handle["final"].attrs["last_acc_head0"] = handle["final"].attrs["last_acc_final"]
    sweep = load_sweep(str(tmp_path))
    assert sweep.set_index("trial_id").loc["b0", "heads"] == 1
    figure = head_accuracy_figure(sweep)
    bars = [c for c in figure.axes[0].containers if isinstance(c, BarContainer)]
    baseline = [patch.get_height() for patch in bars[0].patches]
    # head s of the two 4-head baseline trials (b1, b2) only; final and ensemble over all three
    expected = [100 * head_value((0.72 + 0.74) / 2, head) for head in range(HEADS - 1)]
    np.testing.assert_allclose(baseline[:HEADS - 1], expected, atol=1e-9)
    np.testing.assert_allclose(baseline[HEADS - 1:], [72.0, 72.5], atol=1e-9)
    matplotlib.pyplot.close(figure)


def test_sensitivity_mean_and_std_per_group(tmp_path):
    write_alpha_sweep(str(tmp_path))
    sweep = load_sweep(str(tmp_path))
    figure = sensitivity_figure(sweep, "method.alpha")
    axes = figure.axes[0]
    series = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    assert len(series) == 2  # one per architecture (the other varying key)
    line = series[0].lines[0]  # errorbar keeps object arrays (for units): convert
    np.testing.assert_allclose(np.asarray(line.get_xdata(), dtype=float), [0.1, 0.3, 0.5])
    np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), [100 * (0.6 + a * 0.1 + 0.005) for a in
                                                  (0.1, 0.3, 0.5)], atol=1e-9)
    assert axes.get_xlabel() == "method.alpha"
    matplotlib.pyplot.close(figure)
    with pytest.raises(ValueError, match="nothing.here"):
        sensitivity_figure(sweep, "nothing.here")


def test_command_writes_pngs_of_the_expected_size(tmp_path, capsys):
    write_alpha_sweep(str(tmp_path / "logs"))
    out = tmp_path / "figures"
    assert main([str(tmp_path / "logs"), "--out", str(out), "--sensitivity", "method.alpha",
                 "--group-by", "model.arch,method.alpha"]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(os.path.basename(path) for path in written) == [
        "head_accuracy.png", "learning_curves.png", "sensitivity_method.alpha.png"]
    for path in written:
        assert png_size(path) == EXPECTED_PIXELS


def test_command_errors(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "figures")]) == 2
    assert "no trial logs" in capsys.readouterr().err
    write_sweep(str(tmp_path))
    assert main([str(tmp_path), "--out", str(tmp_path / "figures"), "--metric", "acc_head9"]) == 2
    assert "unknown metric acc_head9" in capsys.readouterr().err
