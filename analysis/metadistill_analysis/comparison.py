"""Paired comparisons of a sweep as a pandas DataFrame: the rows of
`metadistill report DIR --format json --compare KEY=REFERENCE` (analysis/compare.h,
docs/report.md), one per (value of KEY, metric, epoch).

The numbers come from the C++ report itself, so notebooks and the report never disagree: this
module runs the `metadistill` binary and parses its JSON. The binary is the `binary` argument,
else $METADISTILL, else `metadistill` on PATH.
"""

import json
import os
import shutil
import subprocess

import pandas as pd

# Columns of compare()'s DataFrame, in order (the JSON row fields, then the comparison's).
ROW_COLUMNS = (
    "value", "metric", "epoch", "test", "pairs", "n_reference", "n_value", "reference_mean",
    "value_mean", "mean_difference", "sd_difference", "ci_low", "ci_high", "bootstrap_seed", "t",
    "df", "p", "p_holm", "wilcoxon_statistic", "wilcoxon_r_plus", "wilcoxon_nonzero",
    "wilcoxon_zeros", "wilcoxon_ties", "wilcoxon_p", "wilcoxon_p_holm", "effect_size",
    "effect_size_kind", "seeds_for_power", "power_at_seeds", "conclusion", "differences",
)


class CompareError(RuntimeError):
    """`metadistill report --compare` refused the input (unknown key, missing reference, ...):
    the message is the binary's."""


def find_binary(binary=None):
    """The metadistill executable: `binary`, $METADISTILL, or `metadistill` on PATH."""
    candidate = binary or os.environ.get("METADISTILL") or shutil.which("metadistill")
    if not candidate or not os.access(candidate, os.X_OK):
        raise FileNotFoundError(
            "no metadistill binary (pass binary=..., set METADISTILL, or put it on PATH)"
            + (f": {candidate} is not executable" if candidate else ""))
    return candidate


def comparison_frame(report):
    """The comparison rows of a parsed report JSON (a dict with a "comparison" member) as a
    DataFrame: one row per (value, metric, epoch), columns ROW_COLUMNS plus key, reference and
    pairing_keys; JSON null is NaN (None for text); pairs, n_reference, n_value and
    bootstrap_seed are integers, the other counts floats (they may be null).
    frame.attrs["comparison"] holds the whole comparison object (method descriptions, pairs,
    unpaired trials)."""
    comparison = report["comparison"]
    pairing = {entry["value"]: entry["pairing_keys"] for entry in comparison["comparisons"]}
    rows = []
    for row in comparison["rows"]:
        record = {"key": comparison["key"], "reference": comparison["reference"]}
        record.update({column: row.get(column) for column in ROW_COLUMNS})
        record["pairing_keys"] = ",".join(pairing.get(row["value"], []))
        rows.append(record)
    columns = ["key", "reference"] + list(ROW_COLUMNS) + ["pairing_keys"]
    frame = pd.DataFrame(rows, columns=columns)
    numeric = [c for c in ROW_COLUMNS if c not in ("value", "metric", "epoch", "test",
                                                    "effect_size_kind", "conclusion",
                                                    "differences", "wilcoxon_ties")]
    integers = ("pairs", "n_reference", "n_value", "bootstrap_seed")  # never null
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        frame[column] = values.astype("int64" if column in integers else float)
    frame.attrs["comparison"] = comparison
    return frame


def compare(directory, key, reference, metric=None, binary=None):
    """Every other value of `key` against `reference` over the sweep in `directory`, as the
    report computes it (`metadistill report DIR --format json --compare KEY=REFERENCE`).

    `metric` picks the lead metric (acc_final by default; it only orders the rows). Raises
    CompareError with the binary's message for bad input (exit status 2), FileNotFoundError
    when there is no binary."""
    command = [find_binary(binary), "report", str(directory), "--format", "json",
               "--compare", f"{key}={reference}"]
    if metric:
        command += ["--metric", metric]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = result.stderr.strip() or f"exit status {result.returncode}"
        raise CompareError(message)
    return comparison_frame(json.loads(result.stdout))
