"""The channel-study analysis on synthetic tables whose answer is known (and flips when the data flips)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rankstudy.channels import (
    FAMILIES,
    RESULT_COLUMNS,
    SCHEDULE_COLUMNS,
    analyze,
    partial_spearman_ci,
    report_markdown,
    seed_noise,
    seed_noise_of_difference,
    spearman_ci,
    write_report,
)

NOISE_SD = 0.2


def synthetic(
    family_means: dict[str, float],
    per_family: int = 12,
    noise_configs: int = 6,
    seed: int = 0,
    noise_sd: float = NOISE_SD,
    config_sd: float | None = None,
):
    """Returns a study table: top-1 = family mean + config effect (sd config_sd; by default 0.3 at the default
    noise_sd, else 0.05) + seed noise (sd noise_sd); the proxy follows the config's true accuracy exactly (so
    its Spearman ρ with the seed-0 accuracy is high)."""
    rng = np.random.default_rng(seed)
    if config_sd is None:
        config_sd = 0.3 if noise_sd == NOISE_SD else 0.05
    rows = []
    for cid in range(per_family * len(FAMILIES)):
        family = FAMILIES[cid % 3]
        truth = family_means[family] + rng.normal(0, config_sd)
        slope = float(rng.uniform(0, 10))
        widths = "-".join(str(int(16 + slope * i)) for i in range(5))
        for seed_ in range(3 if cid < noise_configs else 1):
            rows.append(
                {
                    "config_id": cid,
                    "family": family,
                    "pieces": 1,
                    "draws": 1,
                    "widths": widths,
                    "scale": 1.0,
                    "params": 1000,
                    "macs": 10**6,
                    "slope": slope,
                    "growth": 2.0,
                    "linearity_r2": {"linear": 1.0, "piecewise": 0.9, "stagewise": 0.7}[family],
                    "seed": seed_,
                    "top1": truth + rng.normal(0, noise_sd),
                    "top5": 99.0,
                    "test_loss": 1.0,
                    "train_loss": 1.0,
                    "train_top1": 50.0,
                    "proxy_rank_rtol_1e-2": truth / 100,
                    "proxy_effective_rank": -truth / 100,
                    "proxy_s": 0.1,
                    "train_s": 1.0,
                }
            )
    table = pd.DataFrame(rows)
    assert list(table.columns) == [*SCHEDULE_COLUMNS, *RESULT_COLUMNS]
    return table, {"config": {"seeds": 1, "macs": 10**6, "blocks": 5}, "command": "synthetic"}


def test_linear_ahead_by_two_points_is_found_beyond_noise():
    table, meta = synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0})
    report = analyze(table, meta)
    lin_stage = report["comparisons"][0]
    assert (lin_stage["a"], lin_stage["b"]) == ("linear", "stagewise")
    assert lin_stage["outcome"] == "linear higher" and lin_stage["beyond_seed_noise"]
    assert lin_stage["ci"][0] < 2.0 < lin_stage["ci"][1] and lin_stage["ci"][0] > 1.0
    assert report["verdict_label"] == "reproduced"
    assert report["tiers"][0]["families"]["linear"] >= 3 and report["tiers"][0]["families"]["stagewise"] == 0
    assert report["tiers"][2]["families"]["stagewise"] >= 3 and report["tiers"][2]["families"]["linear"] == 0
    assert report["seed_noise"]["n_configs"] == 6
    assert 0.5 * NOISE_SD < report["seed_noise"]["pooled_sd"] < 2 * NOISE_SD
    means = {r["family"]: r["value"] for r in report["by_family"]}
    assert means["linear"] > means["piecewise"] > means["stagewise"]
    rho = report["spearman_vs_top1"]
    assert rho["proxy_rank_rtol_1e-2"]["value"] > 0.8 and rho["proxy_rank_rtol_1e-2"]["ci"][0] > 0.5
    assert rho["proxy_effective_rank"]["value"] < -0.8 and rho["proxy_effective_rank"]["ci"][1] < -0.5


def test_verdict_flips_and_vanishes_with_the_data():
    flipped = analyze(*synthetic({"linear": 78.0, "piecewise": 79.0, "stagewise": 80.0}))
    assert flipped["comparisons"][0]["outcome"] == "stagewise higher"
    assert flipped["verdict_label"] == "contradicted"
    equal = analyze(*synthetic({"linear": 79.0, "piecewise": 79.0, "stagewise": 79.0}, seed=1))
    assert equal["comparisons"][0]["outcome"] == "no difference resolved"
    assert equal["verdict_label"] == "not resolved"
    assert not equal["comparisons"][0]["beyond_seed_noise"]


def test_seed_noise_is_judged_on_the_difference_of_family_means_not_one_run():
    # 150 configs a family resolve a 0.5-point gap. One run's seed noise (sd 1) is larger than the gap, but the
    # seed noise of a difference of two 150-config means is σ·√(2/150) ≈ 0.12: the gap is beyond it.
    report = analyze(
        *synthetic(
            {"linear": 79.5, "piecewise": 79.0, "stagewise": 79.0}, per_family=150, noise_configs=30, noise_sd=1.0
        )
    )
    lin, noise = report["comparisons"][0], report["seed_noise"]
    assert lin["value"] < noise["pooled_sd"]  # the old rule (|d| > one run's σ) called this "within seed noise"
    assert noise["df"] == 30 * 2 and (lin["n_a"], lin["n_b"]) == (150, 150)
    se = noise["pooled_sd"] * math.sqrt(1 / 150 + 1 / 150)
    assert lin["seed_noise"]["se"] == pytest.approx(se)
    assert lin["seed_noise"]["half_width"] == pytest.approx(sps.t.ppf(0.975, 60) * se)
    assert lin["outcome"] == "linear higher" and lin["beyond_seed_noise"]
    assert report["verdict_label"] == "reproduced"
    assert "and the difference is beyond it" in report["verdict"]


def test_a_gap_beyond_seed_noise_can_stay_unresolved():
    # Schedules of one family spread by sd 1.5, seeds by 0.05: a 0.5 gap is far beyond what seed noise alone
    # gives, but the CI over configs, which holds the spread between schedules, includes 0.
    report = analyze(
        *synthetic({"linear": 79.5, "piecewise": 79.0, "stagewise": 79.0}, noise_sd=0.05, config_sd=1.5, seed=2)
    )
    lin = report["comparisons"][0]
    assert lin["outcome"] == "no difference resolved" and lin["beyond_seed_noise"]
    assert report["verdict_label"] == "not resolved"
    assert "the spread between schedules, not the seeds, leaves it open" in report["verdict"]


def test_a_resolved_gap_smaller_than_the_measured_seed_noise_is_within_it():
    # The replicate seeds of the noise configs scatter by sd 2 while the main runs agree closely: the CI
    # resolves a 0.3 gap, but seed noise alone, as measured, would give a larger one.
    table, meta = synthetic({"linear": 79.3, "piecewise": 79.0, "stagewise": 79.0}, noise_sd=0.05)
    replicate = table["seed"] > 0
    table.loc[replicate, "top1"] += np.random.default_rng(3).normal(0, 2.0, int(replicate.sum()))
    report = analyze(table, meta)
    lin = report["comparisons"][0]
    assert lin["outcome"] == "linear higher" and not lin["beyond_seed_noise"]
    assert abs(lin["value"]) < lin["seed_noise"]["half_width"]
    assert report["verdict_label"] == "reproduced, within seed noise"
    assert "and the difference is within it" in report["verdict"]


def test_seed_noise_of_a_difference_by_hand():
    noise = {"pooled_sd": 0.6, "df": 12}
    out = seed_noise_of_difference(noise, 30, 20, seeds_per_config=3)
    se = 0.6 * math.sqrt((1 / 30 + 1 / 20) / 3)  # each config mean averages 3 seeds
    assert out["se"] == pytest.approx(se) and out["df"] == 12
    assert out["half_width"] == pytest.approx(2.178812829663418 * se)  # t(0.975, 12)
    unmeasured = seed_noise_of_difference({"pooled_sd": math.nan, "df": 0}, 30, 30)
    assert math.isnan(unmeasured["se"]) and math.isnan(unmeasured["half_width"])


def test_seed_noise_and_spearman_against_direct_computation():
    table = pd.DataFrame({"config_id": [0, 0, 0, 1, 1, 2], "top1": [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]})
    noise = seed_noise(table)
    # variances 1 (2 df) and 2 (1 df), pooled by their df: (2·1 + 1·2) / 3
    assert noise["n_configs"] == 2 and noise["df"] == 3
    assert noise["pooled_sd"] == pytest.approx(math.sqrt((2 * 1.0 + 1 * 2.0) / 3))
    x = np.arange(10.0)
    r = spearman_ci(x, x**3)
    assert r["value"] == pytest.approx(1.0) and r["ci"][0] == pytest.approx(1.0)
    y = np.random.default_rng(0).normal(size=10)
    assert spearman_ci(x, y)["value"] == pytest.approx(pd.Series(x).corr(pd.Series(y), method="spearman"))
    flat = spearman_ci([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(flat["value"]) and flat["note"].startswith("constant")


def partial_by_residuals(x, y, z) -> float:
    """The partial Spearman ρ the slow way: regress the ranks of x and of y on the ranks of z, correlate the
    residuals."""
    rx, ry, rz = (sps.rankdata(v) for v in (x, y, z))
    res_x = rx - np.polyval(np.polyfit(rz, rx, 1), rz)
    res_y = ry - np.polyval(np.polyfit(rz, ry, 1), rz)
    return float(np.corrcoef(res_x, res_y)[0, 1])


def test_partial_spearman_against_residuals_and_a_planted_confounder():
    rng = np.random.default_rng(0)
    params = rng.uniform(1, 5, 90)
    slope = params + rng.normal(0, 0.3, 90)  # slope follows params
    top1 = params + rng.normal(0, 0.5, 90)  # accuracy follows params only
    raw = spearman_ci(slope, top1)
    partial = partial_spearman_ci(slope, top1, params)
    assert raw["ci"][0] > 0.5  # slope "predicts" accuracy, through params
    assert partial["value"] == pytest.approx(partial_by_residuals(slope, top1, params), rel=1e-9)
    assert partial["ci"][0] < 0 < partial["ci"][1] and partial["n"] == 90
    # Accuracy follows slope beyond params: the partial ρ stays positive with its CI above 0.
    own = rng.normal(0, 1, 90)
    top1_own = params + 2 * own
    partial_own = partial_spearman_ci(params + own, top1_own, params)
    assert partial_own["value"] == pytest.approx(partial_by_residuals(params + own, top1_own, params), rel=1e-9)
    assert partial_own["ci"][0] > 0.3
    assert partial_spearman_ci(params * 2, top1, params)["note"].startswith("the given variable's ranks")
    assert math.isnan(partial_spearman_ci(slope, top1, np.ones(90))["value"])


def test_report_says_what_the_partial_rho_allows():
    # params follow slope closely; accuracy rises with params and with the part of params slope does not
    # explain (e = params − 1000·slope): at a given params, a larger slope means a smaller e, lower accuracy.
    table, meta = synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0})
    rng = np.random.default_rng(1)
    configs = table.groupby("config_id")["slope"].first()
    e = pd.Series(rng.normal(0, 300, len(configs)), configs.index)
    params = (1000 * configs + e).round()
    table["params"] = table["config_id"].map(params)
    table["top1"] = 70 + table["config_id"].map(0.3 * params / 1000 + 3 * e / 1000) + rng.normal(0, 0.05, len(table))
    report = analyze(table, meta)
    part = report["partial_spearman_vs_top1"]["slope"]
    assert part["given"] == "params" and part["n"] == 36 and part["rho_with_given"]["value"] > 0.9
    assert part["ci"][1] < 0 and report["spearman_vs_top1"]["slope"]["value"] > 0
    text = report_markdown(report)
    assert "## Slope given params" in text and "| slope | params |" in text
    assert "the CI excludes 0: at a given params rank, a larger slope goes with lower accuracy" in text
    assert "this rests on the small part of slope's ranking that params does not carry" in text
    # Accuracy from params alone: the partial ρ's CI includes 0, and the report says no more than that.
    table["top1"] = 70 + table["params"] / 1000 + rng.normal(0, 0.05, len(table))
    text = report_markdown(analyze(table, meta))
    assert "the CI includes 0: no association of slope with accuracy beyond params is resolved" in text
    flat = analyze(*synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0}))  # params constant
    assert "Slope given params: not estimable (constant values" in report_markdown(flat)


def test_report_files(tmp_path):
    table, meta = synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0})
    report = write_report(table, meta, tmp_path / "rep")
    stored = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert stored["verdict"] == report["verdict"]
    text = (tmp_path / "rep" / "REPORT.md").read_text()
    assert "Linear beats stage-wise: reproduced" in text and "| top |" in text
    assert sorted(p.name for p in (tmp_path / "rep").glob("*.png")) == sorted(report["figures"])
    assert len(report["figures"]) == 3


def test_every_estimate_has_the_one_shape():
    """Family means, differences and correlations are all stored as {value, ci: [low, high], n}, as in
    findings.json."""
    report = analyze(*synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0}))
    estimates = [
        *report["by_family"],
        *report["by_slope"],
        *report["by_family_slope"],
        *report["comparisons"],
        *report["spearman_vs_top1"].values(),
        *report["partial_spearman_vs_top1"].values(),
        *(r["rho_with_given"] for r in report["partial_spearman_vs_top1"].values()),
    ]
    for est in estimates:
        assert {"value", "ci", "n"} <= set(est) and len(est["ci"]) == 2
        assert not {"mean", "ci_low", "ci_high", "rho"} & set(est)
    assert [r["slope_bin"] for r in report["by_slope"]] == ["low", "mid", "high"]


def test_report_json_is_strict_with_nan_as_null(tmp_path):
    # One seed everywhere: no seed noise, so pooled_sd is NaN in memory and null in the file.
    table, meta = synthetic({"linear": 80.0, "piecewise": 79.0, "stagewise": 78.0}, noise_configs=0)
    report = write_report(table, meta, tmp_path)
    assert math.isnan(report["seed_noise"]["pooled_sd"])
    text = (tmp_path / "report.json").read_text()
    assert "NaN" not in text and json.loads(text)["seed_noise"]["pooled_sd"] is None


def test_the_wing_exports_resolve_and_training_does_not_load_the_report():
    import subprocess
    import sys

    import rankstudy.channels as channels

    assert all(getattr(channels, name) is not None for name in channels.__all__)
    code = (
        "import sys, rankstudy.channels.run; "
        "print(sorted(m for m in ('matplotlib', 'scipy.stats', 'torchvision') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
