"""The package's copy of the key table (metadistill_analysis/config_schema.json, written by
tools/config_generated.py; the ctest config_generated_fresh checks it against the binary) and
the grouping exclusions taken from it."""

from metadistill_analysis import config_schema
from metadistill_analysis.logs import DEFAULT_EXCLUDED_KEYS


def test_schema_lists_trial_and_sweep_keys():
    keys = config_schema()
    trial = {key["path"]: key for key in keys if key["scope"] == "trial"}
    sweep = {key["path"] for key in keys if key["scope"] == "sweep"}
    assert trial["optim.lr"]["default"] == 0.1
    assert trial["method.name"]["choices"] == ["baseline", "byot", "metadistiller"]
    assert trial["method.meta.label_weight"]["in_trial_id"] == "non_default"
    assert {"name", "base", "grid", "random"} <= sweep
    assert all(key["in_trial_id"] in ("yes", "non_default", "no") for key in keys)


def test_excluded_keys_are_the_seed_and_the_keys_outside_the_trial_id():
    assert DEFAULT_EXCLUDED_KEYS == {
        "runtime.seed",
        "runtime.device",
        "runtime.data_on_device",
        "runtime.cuda_graph",
        "runtime.threads",
        "runtime.log_every",
        "runtime.checkpoint_every_epochs",
        "dataset.local_copy",
    }
