"""pytest setup for the analysis package: puts analysis/ on sys.path so that
`import metadistill_analysis` works from the repository root (tools/test.sh runs
`/usr/bin/python3 -m pytest -q analysis/tests`) and from anywhere else."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
