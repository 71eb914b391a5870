"""`pip install ./analysis` works offline and gives the same package as the PYTHONPATH route.

Builds a virtual environment with --system-site-packages (Debian's h5py, numpy, pandas,
matplotlib, yaml, setuptools and wheel satisfy everything without a network) and installs a copy
of the package source (pyproject.toml, README.md, metadistill_analysis/) with
`pip install --no-deps --no-build-isolation --no-index`: --no-deps because Debian registers its
h5py under another distribution name (h5py.-debian-h5py-serial), which pip does not count as
h5py. The copy keeps build/ and *.egg-info out of the checkout. Then, from outside the
repository with PYTHONPATH unset, the installed package reads the same logs as the one on
sys.path: load_sweep, load_curves, the figures, the metadistill-plots script, and compare() (when
a metadistill binary is at hand)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from metadistill_analysis import compare, load_curves, load_sweep
from trial_log_writer import make_config, write_trial_log

ANALYSIS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY = os.path.dirname(ANALYSIS)


def binary_or_none():
    path = os.environ.get("METADISTILL") or os.path.join(REPOSITORY, "build", "metadistill")
    return path if os.access(path, os.X_OK) else None


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ANALYSIS, name), source / name)
    shutil.copytree(os.path.join(ANALYSIS, "metadistill_analysis"),
                    source / "metadistill_analysis",
                    ignore=shutil.ignore_patterns("__pycache__"))
    environment = root / "venv"
    created = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                              str(environment)], capture_output=True, text=True, check=False)
    if created.returncode != 0:
        pytest.skip(f"python3 -m venv failed (Debian: python3-venv): {created.stderr.strip()}")
    python = str(environment / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "--no-deps",
                                "--no-build-isolation", "--no-index", str(source)],
                               capture_output=True, text=True, check=False, cwd=str(root))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return environment, python


def run_in_venv(python, script, cwd):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([python, "-c", textwrap.dedent(script)], capture_output=True,
                            text=True, check=False, cwd=str(cwd), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_installed_package_matches_the_source_tree(venv, tmp_path):
    environment, python = venv
    logs = tmp_path / "logs"
    logs.mkdir()
    for method in ("baseline", "metadistiller"):
        for seed in range(3):
            final = (600 + 7 * seed + (5 if method == "metadistiller" else 0)) / 1024
            write_trial_log(str(logs / f"{method}-{seed}.h5"),
                            make_config(**{"method.name": method, "runtime.seed": seed}),
                            [final - 0.1, final], trial_id=f"{method}-{seed}")
    binary = binary_or_none()
    output = run_in_venv(python, f"""
        import importlib.metadata, json, os
        import metadistill_analysis as package
        from metadistill_analysis import compare, load_curves, load_sweep
        from metadistill_analysis.plots import write_figures
        sweep = load_sweep({str(logs)!r})
        curves = load_curves({str(logs)!r})
        figures = write_figures({str(logs)!r}, {str(tmp_path / "figures")!r})
        binary = {binary!r}
        frame = compare({str(logs)!r}, "method.name", "baseline", binary=binary) if binary else None
        print(json.dumps({{
            "file": package.__file__,
            "requires": importlib.metadata.requires("metadistill-analysis"),
            "sweep": sweep.to_json(orient="split"),
            "curves": curves.to_json(orient="split"),
            "figures": [os.path.basename(path) for path in figures],
            "compare": None if frame is None else frame.drop(columns=["differences"]).to_json(
                orient="split"),
        }}))
    """, cwd=tmp_path)
    result = json.loads(output)
    assert result["file"].startswith(str(environment)), result["file"]
    requires = {entry.split(";")[0].strip().lower() for entry in result["requires"]
                if "extra ==" not in entry}
    assert {"h5py", "numpy", "pandas", "matplotlib"} <= requires
    assert result["sweep"] == load_sweep(str(logs)).to_json(orient="split")
    assert result["curves"] == load_curves(str(logs)).to_json(orient="split")
    assert result["figures"] == ["learning_curves.png", "head_accuracy.png"]
    for name in result["figures"]:
        assert (tmp_path / "figures" / name).stat().st_size > 1000
    if binary:
        here = compare(str(logs), "method.name", "baseline", binary=binary)
        assert result["compare"] == here.drop(columns=["differences"]).to_json(orient="split")
    script = environment / "bin" / "metadistill-plots"
    plotted = subprocess.run([str(script), str(logs), "--out", str(tmp_path / "script")],
                             capture_output=True, text=True, check=False, cwd=str(tmp_path))
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "script" / "learning_curves.png").exists()
