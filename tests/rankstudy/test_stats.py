"""Statistics against known answers: bootstrap CIs, Welch/Holm, bands, curve fits and thresholds."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from rankstudy import stats


def test_mean_ci_matches_t_interval_and_is_reproducible():
    x = np.random.default_rng(1).normal(0.7, 0.1, 400)
    est = stats.mean_ci(x)
    half = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert est.mean == pytest.approx(x.mean())
    assert est.low == pytest.approx(x.mean() - half, abs=0.2 * half)
    assert est.high == pytest.approx(x.mean() + half, abs=0.2 * half)
    assert stats.mean_ci(x) == est  # fixed seed: the same CI every time
    assert est.n == 400


def test_mean_ci_edge_cases():
    assert stats.mean_ci([0.8] * 5) == stats.Estimate(0.8, 0.8, 0.8, 5)
    one = stats.mean_ci([0.3])
    assert one.mean == 0.3 and math.isnan(one.low) and one.n == 1
    assert stats.mean_ci([]).n == 0
    assert stats.mean_ci([1.0, np.nan, 0.0]).mean == 0.5  # NaN rows are dropped


def test_diff_ci_exact_for_constant_groups_and_covers_zero_for_equal_ones():
    d = stats.diff_ci([0.95] * 10, [0.8] * 12)
    assert d.mean == pytest.approx(0.15) and d.low == pytest.approx(0.15) and d.excludes_zero()
    rng = np.random.default_rng(2)
    same = stats.diff_ci(rng.normal(0.5, 0.1, 300), rng.normal(0.5, 0.1, 300))
    assert same.low < 0 < same.high and not same.excludes_zero()


def test_welch_matches_scipy_and_handles_constant_groups():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 1, 20), rng.normal(0.4, 2, 33)
    assert stats.welch_p(x, y) == pytest.approx(sps.ttest_ind(x, y, equal_var=False).pvalue, rel=1e-9)
    assert stats.welch_p([1.0] * 5, [1.0] * 7) == 1.0
    assert stats.welch_p([1.0] * 5, [0.9] * 7) == 0.0
    assert math.isnan(stats.welch_p([1.0], [0.2, 0.3]))


def test_holm_by_hand():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = stats.holm([0.01, np.nan, 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_pairwise_finds_the_real_difference_only():
    rng = np.random.default_rng(4)
    groups = {
        "silu": np.full(30, 0.95),
        "relu": np.full(30, 0.8),
        "a": rng.normal(0.5, 0.05, 40),
        "b": rng.normal(0.5, 0.05, 40),
    }
    result = {(c.a, c.b): c for c in stats.pairwise(groups)}
    assert result[("silu", "relu")].significant and result[("silu", "relu")].difference == pytest.approx(0.15)
    assert not result[("a", "b")].significant
    assert all(c.p_holm >= c.p for c in result.values())


def test_bands_and_membership_at_the_edges():
    bands = stats.make_bands((1, 2, 4, 8))
    assert [b.label for b in bands] == ["<=1", "1-2", "2-4", "4-8", ">8"]
    got = stats.band_of([0.5, 1.0, 1.0001, 2.0, 8.0, 8.01, 20.0], bands)
    assert list(got) == ["<=1", "<=1", "1-2", "1-2", "4-8", ">8", ">8"]


def test_fit_recovers_the_parameters_of_its_own_family():
    r = np.repeat(np.geomspace(0.5, 20, 16), 30)
    truth = dict(top=0.97, r_break=6.0, tail=1.5, sharpness=4.0)
    y = stats.curve(r, **truth) + np.random.default_rng(5).normal(0, 0.003, r.size)
    fit = stats.fit_curve(r, y)
    assert fit.converged
    assert fit.top == pytest.approx(0.97, abs=0.005)
    assert fit.r_break == pytest.approx(6.0, rel=0.1)
    assert fit.tail == pytest.approx(1.5, rel=0.1)
    assert fit.sharpness == pytest.approx(4.0, rel=0.3)
    assert fit.rmse == pytest.approx(0.003, rel=0.2)
    # The threshold is where the true curve crosses τ.
    tau = 0.9
    true_r = 6.0 * ((0.97 / tau) ** (4.0 / 1.5) - 1) ** (1 / 4.0)
    assert stats.fit_threshold(fit, tau) == stats.Threshold(pytest.approx(true_r, rel=0.02), "crossed")
    assert fit.predict(fit.crossing(tau)) == pytest.approx(tau, abs=1e-9)


@pytest.mark.parametrize("k", [1.0, 6.0])
def test_bottleneck_bound_crosses_at_k_over_tau(k):
    """min(1, k/r) is the rank bound of a width-k·d_in bottleneck (k = 1: the linear layer)."""
    r = np.geomspace(0.5, 20, 16)
    fit = stats.fit_curve(r, np.minimum(1, k / r))
    for tau in (0.9, 0.95):
        assert fit.crossing(tau) == pytest.approx(k / tau, rel=0.02)


def test_threshold_statuses_out_of_range():
    r = np.geomspace(0.5, 20, 16)
    flat = stats.fit_curve(r, np.ones_like(r))
    assert stats.fit_threshold(flat, 0.9) == stats.Threshold(20.0, "above_range")
    low = stats.fit_curve(r, np.full_like(r, 0.5))
    assert stats.fit_threshold(low, 0.9) == stats.Threshold(None, "below_range")
    none = stats.fit_curve([1.0, 2.0], [1.0, 0.5])
    assert not none.converged and stats.fit_threshold(none, 0.9).status == "no_fit"


def test_empirical_threshold():
    g = [0.5, 1, 2, 4, 8, 16]
    assert stats.empirical_threshold(g, [0.3, 1, 0.98, 0.93, 0.85, 0.95], 0.9) == stats.Threshold(4.0, "crossed")
    assert stats.empirical_threshold(g, [1] * 6, 0.9) == stats.Threshold(16.0, "above_range")
    assert stats.empirical_threshold(g, [1, 0.8, 1, 1, 1, 1], 0.9) == stats.Threshold(None, "below_range")


def test_failed_curve_fit_is_reported_and_thresholds_fall_back(monkeypatch):
    r = np.repeat(np.geomspace(0.5, 20, 12), 3)
    y = np.minimum(1.0, 6.0 / r)
    assert stats.fit_curve(r, y).converged

    def fail(*args, **kwargs):
        raise RuntimeError("Optimal parameters not found: The maximum number of function evaluations is exceeded.")

    monkeypatch.setattr(stats.optimize, "curve_fit", fail)
    fit = stats.fit_curve(r, y)
    assert not fit.converged and math.isfinite(fit.rmse)  # the grid start, reported as such
    assert math.isnan(fit.crossing(0.9)) and stats.fit_threshold(fit, 0.9).status == "no_fit"


def test_design_rule_uses_the_empirical_threshold_when_the_fit_fails(monkeypatch):
    from rankstudy.findings.principles import Settings, find_principles

    from .synthetic import synthetic_table

    def value(row):
        r = row["expansion_ratio"]
        return (
            1.0
            if row["nonlinearity"] != "identity" and r <= 6
            else min(1.0, 1 / r)
            if row["nonlinearity"] == "identity"
            else 6 / r
        )

    table, meta = synthetic_table(value, kinds=("linear",), nonlinearities=("identity", "relu", "silu"))
    settings = Settings(n_resamples=99, threshold_resamples=5)

    def threshold(findings):
        rule = findings["recommendations"]["rules"]["expansion"]
        return rule["threshold"]["by_measure"][rule["measure"]]["0.9"]

    ok = threshold(find_principles(table, meta, settings))
    assert ok["source"] == "fit"
    monkeypatch.setattr(stats.optimize, "curve_fit", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no")))
    findings = find_principles(table, meta, settings)
    basis = threshold(findings)
    assert basis["source"] == "empirical" and basis["ratio"] == basis["empirical"]["ratio"]
    assert findings["recommendations"]["max_expansion_per_layer"]["0.9"] == basis["empirical"]["ratio"]
    assert not any(c["converged"] for c in findings["curves"])
