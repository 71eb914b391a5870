"""`metadistill report --compare` against SciPy, number for number, on logs with known accuracies
(multiples of 1/1024, so that differences tie and vanish exactly as on a 1024-image test set).

Arms against `baseline` (seeds 0-4): `byot` (ties and a zero difference), `metadistiller` (ties,
no zero), `pair2` (n = 2), `identical` (every difference 0), `single` (one pair: not enough),
`unpaired` (seeds 10-13, no partner: Welch). Every number of every JSON row is checked:
  - means, sd, differences, d_z / d_av: numpy, 1e-12;
  - t, df, p: scipy.stats.ttest_rel / ttest_ind(equal_var=False), p within 1e-6 (observed ~1e-15);
  - Wilcoxon: scipy.stats.wilcoxon(d[d != 0], method="exact") without ties, and the exhaustive
    sign-flip scipy.stats.permutation_test of R+ with ties (scipy 1.10's wilcoxon cannot do exact
    with ties or zeros), p within 1e-6;
  - Holm: a manual Holm over the SciPy p-values of each (metric, epoch), within 1e-6;
  - power: scipy.stats.nct at the reported n (within 1e-6), >= 0.8, and < 0.8 at n - 1;
  - the bootstrap interval: scipy.stats.bootstrap(method="percentile", n_resamples=10000).
    Resampling differs, so both are Monte Carlo estimates of the same quantile: the tolerance is
    6 * sqrt(2) * sigma, sigma the standard deviation of SciPy's endpoint over 20 independent
    runs (the difference of two independent estimates has sd sqrt(2) sigma), plus 1e-12.
Plus the CSV and Markdown renderings, bad input (exit status 2), and compare()'s DataFrame.
The binary is $METADISTILL or build/metadistill; skipped when neither exists."""

import csv
import io
import json
import math
import os
import subprocess

import numpy as np
import pytest
from scipy import stats

from metadistill_analysis import CompareError, compare, load_sweep
from trial_log_writer import HEADS, make_config, write_trial_log

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

P_TOLERANCE = 1e-6
BASE = [600, 610, 590, 620, 605]  # baseline's final accuracy per seed, in 1/1024
ARMS = {  # method -> {seed: offset from BASE[seed] (in 1/1024)}; seeds >= 10 have BASE[seed % 5]
    "baseline": {0: 0, 1: 0, 2: 0, 3: 0, 4: 0},
    "byot": {0: 3, 1: -1, 2: 3, 3: 2, 4: 0},
    "metadistiller": {0: 5, 1: 4, 2: 6, 3: 5, 4: 7},
    "pair2": {0: 2, 1: 9},
    "identical": {0: 0, 1: 0, 2: 0},
    "single": {3: 4},
    "unpaired": {10: 8, 11: 2, 12: 5, 13: 12},
}
SHOWN_ALPHA = 0.05


def metadistill_binary():
    path = os.environ.get("METADISTILL") or os.path.join(REPOSITORY, "build", "metadistill")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no metadistill binary at {path} (build it, or set METADISTILL)")
    return path


def write_sweep(directory):
    for method, seeds in ARMS.items():
        for seed, offset in seeds.items():
            final = (BASE[seed % 5] + offset) / 1024
            # The best epoch is a middle one for odd seeds: last and best differ between trials.
            bump = ((seed * 7 + len(method)) % 5) / 1024 if seed % 2 else 0.0
            write_trial_log(str(directory / f"{method}-{seed}.h5"),
                            make_config(**{"method.name": method, "runtime.seed": seed}),
                            [final - 100 / 1024, final + bump, final],
                            trial_id=f"{method}-{seed}")
    # Not complete: never part of a comparison.
    write_trial_log(str(directory / "running.h5"),
                    make_config(**{"method.name": "byot", "runtime.seed": 9}), [0.3],
                    status="running", trial_id="running")


def run_report(directory, *arguments):
    return subprocess.run([metadistill_binary(), "report", str(directory), *arguments],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    directory = tmp_path_factory.mktemp("compare")
    write_sweep(directory)
    result = run_report(directory, "--format", "json", "--compare", "method.name=baseline")
    assert result.returncode == 0, result.stderr
    return directory, json.loads(result.stdout), load_sweep(str(directory))


def close(actual, expected, tolerance):
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        return actual is None
    if isinstance(expected, float) and math.isinf(expected):
        return actual is None  # JSON has no infinity: the report writes null
    return actual is not None and abs(actual - expected) <= tolerance


def arm_values(frame, method, column):
    rows = frame[(frame["method.name"] == method) & (frame["status"] == "complete")]
    return {int(seed): value for seed, value in zip(rows["runtime.seed"], rows[column])}


def holm(p_values):
    """Holm's step-down adjustment, NaN entries outside the family."""
    members = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(members):
        running = max(running, min(1.0, (len(members) - rank) * p))
        adjusted[i] = running
    return adjusted


def wilcoxon_reference(d):
    """(statistic, R+, p) of the two-sided signed-rank test with zeros dropped, exact."""
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return math.nan, math.nan, math.nan
    ranks = stats.rankdata(np.abs(nonzero))
    r_plus = ranks[nonzero > 0].sum()
    statistic = min(r_plus, ranks.sum() - r_plus)
    if len(np.unique(np.abs(nonzero))) == len(nonzero):
        result = stats.wilcoxon(nonzero, method="exact")
        assert result.statistic == statistic
        return statistic, r_plus, result.pvalue
    def r_plus_of(x, axis=-1):
        return np.sum(np.where(x > 0, ranks, 0.0), axis=axis)
    result = stats.permutation_test((nonzero,), r_plus_of, permutation_type="samples",
                                    n_resamples=np.inf, vectorized=True)
    return statistic, r_plus, result.pvalue


def nct_power(noncentrality, df):
    critical = stats.t.ppf(0.975, df)
    with np.errstate(all="ignore"):  # scipy's nct raises spurious floating-point flags
        return (stats.nct.sf(critical, df, noncentrality)
                + stats.nct.cdf(-critical, df, noncentrality))


def bootstrap_tolerance(data, statistic, interval):
    """Checks an interval against scipy's percentile bootstrap; returns the deviations."""
    runs = np.array([stats.bootstrap(data, statistic, n_resamples=10000, method="percentile",
                                     vectorized=True, random_state=seed).confidence_interval
                     for seed in range(20)])
    sigma = runs.std(axis=0, ddof=1)
    tolerance = 6 * math.sqrt(2) * sigma + 1e-12
    deviation = np.abs(np.array(interval) - runs[0])
    assert np.all(deviation <= tolerance), (interval, runs[0], tolerance)
    return deviation, sigma


def expected_row(frame, row):
    """SciPy's numbers for one report row."""
    column = f"{row['epoch']}_{row['metric']}"
    reference = arm_values(frame, "baseline", column)
    value = arm_values(frame, row["value"], column)
    seeds = sorted(set(reference) & set(value))
    expected = {}
    if len(seeds) >= 2:
        r = np.array([reference[s] for s in seeds])
        v = np.array([value[s] for s in seeds])
        d = v - r
        test = stats.ttest_rel(v, r)
        sd = d.std(ddof=1)
        d_z = d.mean() / sd if sd > 0 else (math.copysign(math.inf, d.mean()) if d.mean() else
                                            math.nan)
        statistic, r_plus, wilcoxon_p = wilcoxon_reference(d)
        expected.update(test="paired", pairs=len(d), n_reference=len(d), n_value=len(d),
                        reference_mean=r.mean(), value_mean=v.mean(), mean_difference=d.mean(),
                        sd_difference=sd, t=float(test.statistic), df=len(d) - 1.0,
                        p=float(test.pvalue), wilcoxon_statistic=statistic,
                        wilcoxon_r_plus=r_plus, wilcoxon_p=wilcoxon_p,
                        wilcoxon_ties=len(np.unique(np.abs(d[d != 0]))) < int(np.sum(d != 0)),
                        effect_size=d_z, differences=list(d),
                        wilcoxon_nonzero=int(np.sum(d != 0)), wilcoxon_zeros=int(np.sum(d == 0)))
        expected["power"] = lambda n: nct_power(d_z * math.sqrt(n), n - 1.0)
        expected["bootstrap"] = ((d,), lambda x, axis=-1: np.mean(x, axis=axis))
    else:
        r = np.array(list(reference.values()))
        v = np.array(list(value.values()))
        if len(r) < 2 or len(v) < 2:
            return {"test": "none", "pairs": len(seeds)}
        test = stats.ttest_ind(v, r, equal_var=False)
        var_v, var_r = v.var(ddof=1), r.var(ddof=1)
        a, b = var_v / len(v), var_r / len(r)
        df = (a + b) ** 2 / (a * a / (len(v) - 1) + b * b / (len(r) - 1))
        difference = v.mean() - r.mean()
        expected.update(test="welch", pairs=len(seeds), n_reference=len(r), n_value=len(v),
                        reference_mean=r.mean(), value_mean=v.mean(), mean_difference=difference,
                        sd_difference=math.nan, t=float(test.statistic), df=df,
                        p=float(test.pvalue), wilcoxon_statistic=math.nan, wilcoxon_p=math.nan,
                        effect_size=difference / math.sqrt((var_v + var_r) / 2), differences=[])

        def welch_power(n):
            spread = var_v + var_r
            return nct_power(difference / math.sqrt(spread / n),
                             (n - 1) * spread ** 2 / (var_v ** 2 + var_r ** 2))
        expected["power"] = welch_power
        expected["bootstrap"] = ((v, r), lambda x, y, axis=-1: np.mean(x, axis=axis) -
                                 np.mean(y, axis=axis))
    return expected


def test_every_number_agrees_with_scipy(sweep):
    _, report, frame = sweep
    comparison = report["comparison"]
    assert comparison["key"] == "method.name" and comparison["reference"] == "baseline"
    assert comparison["bootstrap"]["method"] == "percentile"
    assert comparison["bootstrap"]["resamples"] >= 10000
    values = [entry["value"] for entry in comparison["comparisons"]]
    assert values == sorted(m for m in ARMS if m != "baseline")
    for entry in comparison["comparisons"]:
        assert entry["pairing_keys"] == ["runtime.seed"]
        paired_seeds = [int(pair["pairing"]["runtime.seed"]) for pair in entry["pairs"]]
        assert paired_seeds == sorted(set(ARMS[entry["value"]]) & set(ARMS["baseline"]))
    rows = comparison["rows"]
    # The last head is every trial's final head, never an auxiliary one: no row of its own.
    metrics = ["acc_final", "acc_ensemble"] + [f"acc_head{h}" for h in range(HEADS - 1)]
    assert {(row["metric"], row["epoch"]) for row in rows} == {
        (metric, epoch) for metric in metrics for epoch in ("last", "best")}
    assert [row["metric"] for row in rows][0] == "acc_final"
    worst = {"p": 0.0, "wilcoxon_p": 0.0, "holm": 0.0, "power": 0.0, "ci_sigmas": 0.0}
    families = {}
    seen_tests = set()
    for row in rows:
        expected = expected_row(frame, row)
        seen_tests.add(expected["test"])
        assert row["test"] == expected["test"], row
        assert row["pairs"] == expected["pairs"]
        families.setdefault((row["metric"], row["epoch"]), []).append((row, expected))
        if expected["test"] == "none":
            for field in ("mean_difference", "ci_low", "ci_high", "t", "p", "p_holm",
                          "wilcoxon_p", "effect_size", "seeds_for_power"):
                assert row[field] is None, (field, row)
            assert row["conclusion"] == "not enough pairs"
            continue
        for field in ("n_reference", "n_value"):
            assert row[field] == expected[field]
        for field in ("reference_mean", "value_mean", "mean_difference", "sd_difference",
                      "effect_size"):
            assert close(row[field], expected[field], 1e-12), (field, row, expected[field])
        assert close(row["t"], expected["t"], 1e-9 * max(1.0, abs(expected["t"]))), row
        assert close(row["df"], expected["df"], 1e-9), row
        assert close(row["p"], expected["p"], P_TOLERANCE), (row, expected["p"])
        assert close(row["wilcoxon_p"], expected["wilcoxon_p"], P_TOLERANCE), (row, expected)
        assert close(row["wilcoxon_statistic"], expected["wilcoxon_statistic"], 0.0)
        if row["test"] == "paired":
            assert row["wilcoxon_nonzero"] == expected["wilcoxon_nonzero"]
            assert row["wilcoxon_zeros"] == expected["wilcoxon_zeros"]
            assert close(row["wilcoxon_r_plus"], expected["wilcoxon_r_plus"], 0.0)
            assert row["wilcoxon_ties"] == expected["wilcoxon_ties"]
            assert row["effect_size_kind"] == "d_z"
        else:
            assert row["effect_size_kind"] == "d_av"
        assert len(row["differences"]) == len(expected["differences"])
        for got, want in zip(row["differences"], expected["differences"]):
            assert got == want
        for field in ("p", "wilcoxon_p"):
            if row[field] is not None:
                worst[field] = max(worst[field], abs(row[field] - expected[field]))
        # Power: the smallest n reaching 80% by scipy's noncentral t as well.
        if expected["effect_size"] == 0 or math.isnan(expected["effect_size"]):
            assert row["seeds_for_power"] is None
        elif math.isinf(expected["effect_size"]):
            assert row["seeds_for_power"] == 2
        else:
            n = row["seeds_for_power"]
            power = expected["power"](n)
            assert abs(row["power_at_seeds"] - power) <= P_TOLERANCE
            worst["power"] = max(worst["power"], abs(row["power_at_seeds"] - power))
            assert power >= 0.8
            if n > 2:
                assert expected["power"](n - 1) < 0.8
        # The bootstrap interval.
        data, statistic = expected["bootstrap"]
        deviation, sigma = bootstrap_tolerance(data, statistic, (row["ci_low"], row["ci_high"]))
        for dev, s in zip(deviation, sigma):
            if s > 0:
                worst["ci_sigmas"] = max(worst["ci_sigmas"], dev / s)
    assert seen_tests == {"paired", "welch", "none"}
    # Holm per (metric, epoch), over SciPy's p-values.
    for (metric, epoch), members in families.items():
        for field, holm_field in (("p", "p_holm"), ("wilcoxon_p", "wilcoxon_p_holm")):
            p_values = [math.nan if expected["test"] == "none" else expected[field]
                        for _, expected in members]
            for (row, _), adjusted in zip(members, holm(p_values)):
                assert close(row[holm_field], adjusted, P_TOLERANCE), (metric, epoch, row)
                if row[holm_field] is not None:
                    worst["holm"] = max(worst["holm"], abs(row[holm_field] - adjusted))
        for row, expected in members:
            if expected["test"] != "none":
                shown = row["p_holm"] is not None and row["p_holm"] < SHOWN_ALPHA
                assert row["conclusion"] == ("shown" if shown else "not shown")
    print("largest deviations from SciPy:", worst)


def test_special_cases(sweep):
    _, report, _ = sweep
    rows = {(row["value"], row["metric"], row["epoch"]): row
            for row in report["comparison"]["rows"]}
    identical = rows[("identical", "acc_final", "last")]
    assert identical["mean_difference"] == 0 and identical["p"] is None
    assert identical["wilcoxon_p"] is None and identical["wilcoxon_zeros"] == 3
    assert identical["conclusion"] == "not shown"
    byot = rows[("byot", "acc_final", "last")]
    assert byot["wilcoxon_zeros"] == 1 and byot["wilcoxon_ties"] is True
    assert rows[("pair2", "acc_final", "last")]["pairs"] == 2
    assert rows[("single", "acc_final", "last")]["conclusion"] == "not enough pairs"
    assert rows[("unpaired", "acc_final", "last")]["test"] == "welch"


def test_csv_and_markdown_carry_the_same_numbers(sweep):
    directory, report, _ = sweep
    result = run_report(directory, "--format", "csv", "--compare", "method.name=baseline")
    assert result.returncode == 0, result.stderr
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    rows = report["comparison"]["rows"]
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows):
        assert (line["value"], line["metric"], line["epoch"], line["test"]) == (
            row["value"], row["metric"], row["epoch"], row["test"])
        for field in ("mean_difference", "ci_low", "ci_high", "p", "p_holm", "wilcoxon_p",
                      "effect_size", "power_at_seeds"):
            assert (float(line[field]) if line[field] else None) == row[field], field
        assert line["ci_method"] == ("percentile" if row["test"] != "none" else "")
    result = run_report(directory, "--compare", "method.name=baseline")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "## Comparison: `method.name` against baseline" in text
    assert "percentile bootstrap" in text and "Holm" in text
    row = next(r for r in rows if r["value"] == "metadistiller" and r["metric"] == "acc_final"
               and r["epoch"] == "last")
    difference = f"+{100 * row['mean_difference']:.2f}"
    assert f"- metadistiller \u2212 baseline: {difference} [" in text
    assert "(Holm): shown" in text
    assert "- single \u2212 baseline: not enough pairs (1 pair; 1 and 5 trials)\n" in text
    assert "- identical \u2212 baseline: 0.00 [0.00, 0.00], no p-value" in text
    assert "unpaired (no trial has a partner), Welch's t-test" in text


@pytest.mark.parametrize("argument, message", [
    ("method.name", "expects KEY=REFERENCE"),
    ("=baseline", "expects KEY=REFERENCE"),
    ("method.name=", "expects KEY=REFERENCE"),
    ("method.nam=baseline", "is in no trial's config"),
    ("method.name=nosuchmethod", "no complete trial has method.name = nosuchmethod"),
])
def test_bad_input_exits_2(sweep, argument, message):
    directory, _, _ = sweep
    result = run_report(directory, "--compare", argument)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_compare_dataframe_matches_the_json(sweep):
    directory, report, _ = sweep
    frame = compare(str(directory), "method.name", "baseline", binary=metadistill_binary())
    rows = report["comparison"]["rows"]
    assert len(frame) == len(rows)
    for (_, line), row in zip(frame.iterrows(), rows):
        for field, value in row.items():
            got = line[field]
            if value is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), field
            else:
                assert got == value, (field, got, value)
    assert frame.attrs["comparison"]["key"] == "method.name"
    with pytest.raises(CompareError, match="no complete trial has"):
        compare(str(directory), "method.name", "nosuchmethod", binary=metadistill_binary())
