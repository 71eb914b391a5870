"""Figures of a sweep: learning curves, per-head accuracy, sensitivity to a swept key.

    python3 -m metadistill_analysis.plots DIR --out FIGDIR [--group-by k1,k2]
        [--sensitivity KEY] [--metric acc_final]

writes PNG files into FIGDIR (created when missing) and prints their paths:

- learning_curves.png: test accuracy (the chosen metric) and train loss against the epoch, one
  line per group with a band of ± one sample standard deviation over its trials (the seeds);
- head_accuracy.png: the last-epoch accuracy of every auxiliary head, of the final head and of
  the ensemble, grouped bars (one series per group) with ± std error bars over the group's
  complete trials;
- sensitivity_<KEY>.png (with --sensitivity): the final accuracy against KEY, mean ± std over the
  complete trials, one line per group of the remaining group keys.

Groups are the config keys given by --group-by or, by default, the keys that vary across the
trials except runtime.seed (the rule of `metadistill report`). Standard deviations are sample
standard deviations (n - 1); a single trial has 0. Uses the non-interactive Agg backend, never a
display. The figure builders return matplotlib Figures so tests can inspect them before saving.
"""

import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .logs import load_curves, load_sweep, varying_config_keys  # noqa: E402

FIGURE_SIZE = (10.0, 4.5)  # inches; at DPI this is the PNG's size in pixels
DPI = 100
CURVE_STATUSES = ("complete", "running", "interrupted")  # failed/diverged curves are left out


def _group_keys(frame, group_by):
    if group_by:
        missing = [key for key in group_by if key not in frame.columns]
        if missing:
            raise ValueError(f"group-by keys not in any trial's config: {', '.join(missing)}")
        return list(group_by)
    return varying_config_keys(frame)


def _label(keys, values):
    if not keys:
        return "all trials"
    return " / ".join(_text(value) for value in values)


def _text(value):
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def _groups(frame, keys):
    """(label, sub-frame) per group, sorted by the key values."""
    if not keys:
        return [("all trials", frame)]
    groups = []
    grouper = keys[0] if len(keys) == 1 else keys
    for values, part in frame.groupby(grouper, sort=True, dropna=False):
        values = values if len(keys) > 1 else (values,)
        groups.append((_label(keys, values), part))
    return groups


def _mean_std(values):
    """Mean and sample std (n - 1) of the non-NaN values; std 0 for one value."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), 0.0
    return float(values.mean()), float(values.std(ddof=1))


def learning_curves_figure(curves, group_by=None, metric="acc_final"):
    """Test accuracy (`metric`, percent) and train loss per epoch: one line and one ± std band
    per group on each of the two axes."""
    curves = curves[curves["status"].isin(CURVE_STATUSES)]
    keys = _group_keys(curves, group_by)
    figure, (accuracy_axes, loss_axes) = plt.subplots(1, 2, figsize=FIGURE_SIZE, dpi=DPI)
    panels = (
        (accuracy_axes, "test_" + metric, 100.0, f"test {metric} (%)"),
        (loss_axes, "train_loss", 1.0, "train loss"),
    )
    for axes, column, scale, ylabel in panels:
        for index, (label, part) in enumerate(_groups(curves, keys)):
            rows = part[part["metric"] == column]
            color = f"C{index % 10}"
            if rows.empty:
                axes.plot([], [], color=color, label=label)
                axes.fill_between([], [], [], color=color, alpha=0.2)
                continue
            by_epoch = rows.groupby("epoch")["value"]
            epochs = np.array(sorted(by_epoch.groups.keys()), dtype=np.float64)
            stats = [_mean_std(by_epoch.get_group(epoch)) for epoch in epochs]
            mean = np.array([stat[0] for stat in stats]) * scale
            std = np.array([stat[1] for stat in stats]) * scale
            axes.plot(epochs, mean, color=color, label=label)
            axes.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
    accuracy_axes.set_title("test accuracy (mean ± std over seeds)")
    loss_axes.set_title("train loss (mean ± std over seeds)")
    accuracy_axes.legend(title=" / ".join(keys) if keys else None, fontsize="small")
    figure.tight_layout()
    return figure


def head_accuracy_figure(sweep, group_by=None):
    """Last-epoch accuracy (percent) over the complete trials of every auxiliary head, of the
    final head and of the ensemble: one bar series (BarContainer) per group, one bar per
    category. Auxiliary head s counts only trials for which head s is not the final head (a
    baseline network has only its final head: no auxiliary bars, which stay empty)."""
    complete = sweep[sweep["status"] == "complete"]
    keys = _group_keys(complete if not complete.empty else sweep, group_by)
    heads = int(complete["heads"].max()) if not complete.empty else 0
    auxiliary = max(0, heads - 1)
    categories = [f"head {head}" for head in range(auxiliary)] + ["final", "ensemble"]
    groups = _groups(complete, keys) if not complete.empty else []
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=DPI)
    positions = np.arange(len(categories), dtype=np.float64)
    width = 0.8 / max(1, len(groups))
    for index, (label, part) in enumerate(groups):
        columns = [part[f"last_acc_head{head}"].where(part["heads"] > head + 1)
                   if f"last_acc_head{head}" in part.columns else part["heads"] * math.nan
                   for head in range(auxiliary)]
        columns += [part["last_acc_final"], part["last_acc_ensemble"]]
        stats = [_mean_std(column) for column in columns]
        means = np.array([stat[0] for stat in stats]) * 100.0
        stds = np.array([stat[1] for stat in stats]) * 100.0
        offset = (index - (len(groups) - 1) / 2.0) * width
        axes.bar(positions + offset, means, width, yerr=stds, capsize=3, label=label,
                 color=f"C{index % 10}")
    axes.set_xticks(positions)
    axes.set_xticklabels(categories)
    axes.set_ylabel("last-epoch test accuracy (%)")
    axes.set_title("accuracy of every head (mean ± std over complete trials)")
    axes.grid(True, axis="y", alpha=0.3)
    if groups:
        axes.legend(title=" / ".join(keys) if keys else None, fontsize="small",
                    loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axes.text(0.5, 0.5, "no complete trials", transform=axes.transAxes, ha="center")
    figure.tight_layout()
    return figure


def _numeric(values):
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        return None


def sensitivity_figure(sweep, key, group_by=None, metric="acc_final"):
    """Last-epoch `metric` (percent) against the values of `key`, mean ± std over the complete
    trials: one error-bar line per group of the other group keys. A numeric key is plotted on
    a numeric axis, any other key as categories in sorted order."""
    if key not in sweep.columns:
        raise ValueError(f"sensitivity key {key} is not in any trial's config")
    column = "last_" + metric
    complete = sweep[sweep["status"] == "complete"]
    keys = [other for other in _group_keys(sweep, group_by) if other != key]
    figure, axes = plt.subplots(figsize=FIGURE_SIZE, dpi=DPI)
    values = sorted(complete[key].dropna().unique(), key=lambda value: (str(type(value)), value))
    numeric = _numeric(values)
    positions = numeric if numeric is not None else list(range(len(values)))
    for index, (label, part) in enumerate(_groups(complete, keys) if not complete.empty else []):
        means, stds = [], []
        for value in values:
            trials = part[part[key] == value]
            mean, std = _mean_std(trials[column]) if column in trials.columns else (math.nan, 0.0)
            means.append(mean * 100.0)
            stds.append(std * 100.0)
        axes.errorbar(positions, means, yerr=stds, marker="o", capsize=3, label=label,
                      color=f"C{index % 10}")
    if numeric is None:
        axes.set_xticks(positions)
        axes.set_xticklabels([_text(value) for value in values])
    axes.set_xlabel(key)
    axes.set_ylabel(f"last-epoch {metric} (%)")
    axes.set_title(f"sensitivity to {key} (mean ± std over complete trials)")
    axes.grid(True, alpha=0.3)
    if keys:
        axes.legend(title=" / ".join(keys), fontsize="small")
    figure.tight_layout()
    return figure


def _file_name(key):
    return "sensitivity_" + "".join(c if c.isalnum() or c in "._-" else "_" for c in key) + ".png"


def write_figures(directory, out, group_by=None, sensitivity=None, metric="acc_final"):
    """Writes the figures of the sweep under `directory` into `out`; returns their paths."""
    sweep = load_sweep(directory)
    if sweep.empty:
        raise ValueError(f"{directory}: no trial logs found (*.h5, searched recursively)")
    if "last_" + metric not in sweep.columns:
        raise ValueError(f"unknown metric {metric} (the logs have: "
                         + ", ".join(c[5:] for c in sweep.columns if c.startswith("last_")) + ")")
    curves = load_curves(directory)
    os.makedirs(out, exist_ok=True)
    figures = [
        ("learning_curves.png", learning_curves_figure(curves, group_by, metric)),
        ("head_accuracy.png", head_accuracy_figure(sweep, group_by)),
    ]
    if sensitivity:
        figures.append((_file_name(sensitivity),
                        sensitivity_figure(sweep, sensitivity, group_by, metric)))
    paths = []
    for name, figure in figures:
        path = os.path.join(out, name)
        figure.savefig(path, dpi=DPI)
        plt.close(figure)
        paths.append(path)
    return paths


def _split_keys(text):
    return [key.strip() for key in text.split(",") if key.strip()] if text else None


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m metadistill_analysis.plots",
        description="Figures of a metadistill sweep's trial logs (PNG).",
    )
    parser.add_argument("directory", metavar="DIR", help="directory of trial logs (recursive)")
    parser.add_argument("--out", required=True, metavar="FIGDIR", help="output directory")
    parser.add_argument("--group-by", metavar="k1,k2", help="config keys to group by")
    parser.add_argument("--sensitivity", metavar="KEY", help="swept config key to plot against")
    parser.add_argument("--metric", default="acc_final",
                        help="acc_final (default), acc_ensemble or acc_head<s>")
    arguments = parser.parse_args(argv)
    try:
        paths = write_figures(arguments.directory, arguments.out, _split_keys(arguments.group_by),
                              arguments.sensitivity, arguments.metric)
    except (ValueError, FileNotFoundError) as error:
        print(f"metadistill_analysis.plots: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
