"""Helpers shared by the benchmark scripts of this folder (compare_steps.py, compare_ops.py,
bench_step_torch.py): argument types and where a build's binaries are."""

import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def positive_int(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_path(*parts):
    """A path inside the build directory: $MD_BUILD_DIR, else build/ of the repository."""
    build_dir = os.environ.get("MD_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
    return os.path.normpath(os.path.join(build_dir, *parts))
