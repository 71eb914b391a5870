"""The C++ report (`metadistill report --format json`) and the Python DataFrames agree on the
same logs: same groups, counts, means and sample standard deviations. Runs the binary named by
$METADISTILL, else build/metadistill of this checkout (tools/test.sh builds it before running
pytest); skipped when neither exists."""

import json
import os
import subprocess

import pytest

from metadistill_analysis import load_sweep, varying_config_keys
from trial_log_writer import HEADS, make_config, write_trial_log

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def metadistill_binary():
    path = os.environ.get("METADISTILL") or os.path.join(REPOSITORY, "build", "metadistill")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no metadistill binary at {path} (build it, or set METADISTILL)")
    return path


def test_cpp_report_matches_pandas(tmp_path):
    binary = metadistill_binary()
    for method_index, method in enumerate(("baseline", "byot", "metadistiller")):
        for seed in range(3):
            final = 0.6 + 0.05 * method_index + 0.013 * seed * (method_index + 1)
            write_trial_log(str(tmp_path / f"{method}-{seed}.h5"),
                            make_config(**{"method.name": method, "runtime.seed": seed}),
                            [final - 0.2, final + 0.01, final], trial_id=f"{method}-{seed}")
    write_trial_log(str(tmp_path / "running.h5"),
                    make_config(**{"method.name": "byot", "runtime.seed": 7}), [0.3],
                    status="running", trial_id="running")
    result = subprocess.run([binary, "report", str(tmp_path), "--format", "json"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    sweep = load_sweep(str(tmp_path))
    assert report["group_by"] == varying_config_keys(sweep) == ["method.name"]
    assert report["trial_count"] == len(sweep) == 10
    assert report["heads"] == HEADS
    complete = sweep[sweep["status"] == "complete"]
    for group in report["groups"]:
        method = group["keys"]["method.name"]
        trials = sweep[sweep["method.name"] == method]
        done = complete[complete["method.name"] == method]
        assert group["n"] == len(trials)
        assert group["status"]["complete"] == len(done)
        assert group["status"]["running"] == int((trials["status"] == "running").sum())
        for metric in ["acc_final", "acc_ensemble"] + [f"acc_head{h}" for h in range(HEADS)]:
            for which in ("last", "best"):
                values = done[f"{which}_{metric}"]
                statistic = group["metrics"][metric][which]
                assert statistic["count"] == len(values)
                assert statistic["mean"] == pytest.approx(values.mean(), abs=1e-12)
                assert statistic["std"] == pytest.approx(values.std(ddof=1), abs=1e-12)
        assert group["gpu_hours_sum"] == pytest.approx(done["gpu_hours"].sum(), abs=1e-12)
        assert group["wall_s"]["mean"] == pytest.approx(done["total_wall_s"].mean(), abs=1e-12)
