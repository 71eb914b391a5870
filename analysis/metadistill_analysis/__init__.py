"""Analysis of metadistill sweeps in Python: a sweep's HDF5 trial logs as pandas DataFrames
(`load_sweep`, `load_curves`) and figures (`python3 -m metadistill_analysis.plots`).

The C++ `metadistill report` makes the tables; this package is for notebooks and plots, and
`compare` gives the report's paired comparisons (`report --compare`) as a DataFrame. It reads
the trial-log format of DESIGN.md section 6 (root attributes, /train and /epoch tables, /final
attributes) and never writes logs.
"""

from .comparison import CompareError, compare, comparison_frame
from .logs import (
    TRIAL_LOG_SCHEMA_VERSION,
    config_schema,
    find_trial_logs,
    flatten_config,
    load_curves,
    load_sweep,
    read_trial_log,
    varying_config_keys,
)

__all__ = [
    "TRIAL_LOG_SCHEMA_VERSION",
    "CompareError",
    "compare",
    "comparison_frame",
    "config_schema",
    "find_trial_logs",
    "flatten_config",
    "load_curves",
    "load_sweep",
    "read_trial_log",
    "varying_config_keys",
]
