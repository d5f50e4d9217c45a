"""The channel-study analysis on synthetic tables whose answer is known (and flips when the data flips)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from rankstudy.channels import (
    FAMILIES,
    RESULT_COLUMNS,
    SCHEDULE_COLUMNS,
    analyze,
    seed_noise,
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
):
    """Returns a study table: top-1 = family mean + config effect + seed noise (sd noise_sd); the proxy
    follows the config's true accuracy exactly (so its Spearman ρ with the seed-0 accuracy is high)."""
    rng = np.random.default_rng(seed)
    rows = []
    for cid in range(per_family * len(FAMILIES)):
        family = FAMILIES[cid % 3]
        truth = family_means[family] + rng.normal(0, 0.3 if noise_sd == NOISE_SD else 0.05)
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


def test_small_difference_is_resolved_but_within_seed_noise():
    # 150 configs per family resolve a 0.5-point gap, but one run's seed noise (sd 1) is larger than it.
    report = analyze(
        *synthetic(
            {"linear": 79.5, "piecewise": 79.0, "stagewise": 79.0}, per_family=150, noise_configs=30, noise_sd=1.0
        )
    )
    lin = report["comparisons"][0]
    assert lin["outcome"] == "linear higher" and not lin["beyond_seed_noise"]
    assert lin["value"] < report["seed_noise"]["pooled_sd"]
    assert report["verdict_label"] == "reproduced, within seed noise"


def test_seed_noise_and_spearman_against_direct_computation():
    table = pd.DataFrame({"config_id": [0, 0, 0, 1, 1, 2], "top1": [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]})
    noise = seed_noise(table)
    assert noise["n_configs"] == 2 and noise["pooled_sd"] == pytest.approx(math.sqrt((1.0 + 2.0) / 2))
    x = np.arange(10.0)
    r = spearman_ci(x, x**3)
    assert r["value"] == pytest.approx(1.0) and r["ci"][0] == pytest.approx(1.0)
    y = np.random.default_rng(0).normal(size=10)
    assert spearman_ci(x, y)["value"] == pytest.approx(pd.Series(x).corr(pd.Series(y), method="spearman"))
    flat = spearman_ci([1, 1, 1, 1], [1, 2, 3, 4])
    assert math.isnan(flat["value"]) and flat["note"].startswith("constant")


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
