"""Verdict statistics against independent references: TOST against scipy's one-sided Welch tests,
Benjamini–Hochberg against scipy, a brute-force transcription and hand-worked p-values (and FDR control in a
simulation), materiality on the CI, the bootstrap probability of being best, and a planted rule recovered."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from rankstudy import stats

# --- exceeds_p: is a difference materially positive? ----------------------------------------------------


def test_exceeds_p_matches_scipy_one_sided_welch_on_shifted_data():
    rng = np.random.default_rng(5)
    x, y = rng.normal(0.3, 1.0, 40), rng.normal(0.0, 2.0, 25)
    for margin in (0.0, 0.2, -0.1):
        ref = sps.ttest_ind(x - margin, y, equal_var=False, alternative="greater").pvalue
        assert stats.exceeds_p(x, y, margin) == pytest.approx(ref, rel=1e-9)
    assert stats.exceeds_p(np.full(3, 0.5), np.full(4, 0.4), 0.05) == 0.0  # constant groups: decided exactly
    assert stats.exceeds_p(np.full(3, 0.5), np.full(4, 0.49), 0.05) == 1.0
    assert math.isnan(stats.exceeds_p([1.0], [0.0, 1.0]))


# --- tost ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_x", "n_y", "sd_x", "sd_y", "shift", "margin"),
    [(20, 33, 1.0, 2.0, 0.3, 0.5), (48, 48, 0.05, 0.02, 0.004, 0.02), (7, 150, 3.0, 0.5, -1.0, 2.0)],
)
def test_tost_matches_scipy_one_sided_welch_tests_on_shifted_data(n_x, n_y, sd_x, sd_y, shift, margin):
    rng = np.random.default_rng(n_x + n_y)
    x, y = rng.normal(shift, sd_x, n_x), rng.normal(0.0, sd_y, n_y)
    res = stats.tost(x, y, margin, alpha=0.05)
    # H0 d ≤ −margin is H0 mean(x + margin) ≤ mean(y); H0 d ≥ margin is H0 mean(x − margin) ≥ mean(y).
    p_lower = sps.ttest_ind(x + margin, y, equal_var=False, alternative="greater").pvalue
    p_upper = sps.ttest_ind(x - margin, y, equal_var=False, alternative="less").pvalue
    assert res.p_tost == pytest.approx(max(p_lower, p_upper), rel=1e-9)
    welch = sps.ttest_ind(x, y, equal_var=False)
    assert res.p_welch == pytest.approx(welch.pvalue, rel=1e-9)
    ci = welch.confidence_interval(confidence_level=0.90)  # the (1 − 2α) interval TOST inverts
    assert (res.difference.low, res.difference.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert res.difference.mean == pytest.approx(x.mean() - y.mean()) and res.difference.n == min(n_x, n_y)
    inside = -margin < ci.low and ci.high < margin
    assert (res.verdict == "equivalent") == inside == (res.p_tost < 0.05)


def test_tost_verdicts_on_constructed_data():
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 1.0, 400)
    centred = base - base.mean()
    # The same values: d = 0 exactly, 90% CI ±0.16 inside ±0.5.
    assert stats.tost(centred, centred, 0.5).verdict == "equivalent"
    # d = 1 with a tight CI: different (and not equivalent at margin 0.5).
    far = stats.tost(centred + 1.0, centred, 0.5)
    assert far.verdict == "different" and far.p_welch < 1e-10 and far.p_tost > 0.5
    # d = 0.3 is nonzero at alpha, but its CI lies inside a margin of 1: equivalent, not different.
    near = stats.tost(centred + 0.3, centred, 1.0)
    assert near.p_welch < 0.05 and near.verdict == "equivalent"
    # 8 values a group with sd 1: neither test decides. "Not shown different" is not "tied".
    few = stats.tost(centred[:8] - centred[:8].mean(), centred[8:16] - centred[8:16].mean(), 0.5)
    assert few.verdict == "inconclusive" and few.p_welch > 0.05 and few.p_tost > 0.05


def test_tost_has_its_size_at_the_margin():
    # A true difference exactly at the margin: "equivalent" must come out at most ~alpha of the time (each
    # one-sided test has size alpha there). Swapping the two one-sided tests would make this ~100%.
    rng = np.random.default_rng(5)
    hits = [
        stats.tost(rng.normal(0.2, 1.0, 30), rng.normal(0.0, 1.0, 25), 0.2).verdict == "equivalent" for _ in range(600)
    ]
    assert np.mean(hits) <= 0.05 + 0.025


def test_tost_edge_cases():
    exact = stats.tost([1.0] * 5, [0.99] * 4, 0.05)
    assert exact.verdict == "equivalent" and exact.p_tost == 0.0 and exact.p_welch == 0.0
    assert exact.difference.low == exact.difference.high == pytest.approx(0.01)
    assert stats.tost([1.0] * 5, [0.9] * 4, 0.05).verdict == "different"
    assert stats.tost([1.0] * 5, [1.0] * 4, 0.05).verdict == "equivalent"
    one = stats.tost([1.0], [0.2, 0.3, np.nan], 0.5)
    assert one.verdict == "inconclusive" and math.isnan(one.p_tost) and one.difference.n == 1
    assert stats.tost([], [1.0, 2.0], 0.5).verdict == "inconclusive"
    d = stats.tost([0.1, 0.2, 0.3], [0.2, 0.2, 0.1], 0.5).to_dict()
    assert {"value", "ci", "n", "confidence", "margin", "p_tost", "p_welch", "verdict"} == set(d)
    assert d["confidence"] == pytest.approx(0.90)
    with pytest.raises(ValueError):
        stats.tost([1.0, 2.0], [1.0, 2.0], 0.0)
    with pytest.raises(ValueError):
        stats.tost([1.0, 2.0], [1.0, 2.0], 0.1, alpha=0.5)


# --- benjamini_hochberg ----------------------------------------------------------------------------------


def bh_by_definition(p: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """A slow transcription of Benjamini & Hochberg (1995): adjusted p_i = min over p_j ≥ p_i of p_j·m/rank_j;
    reject every p ≤ p_(k) for the largest k with p_(k) ≤ k·q/m."""
    m = p.size
    ranks = np.array([np.sum(p <= v) for v in p])  # ties share the largest rank, as step-up does
    adjusted = np.array([min(1.0, min(p[j] * m / ranks[j] for j in range(m) if p[j] >= p[i])) for i in range(m)])
    ordered = np.sort(p)
    passing = [k for k in range(1, m + 1) if ordered[k - 1] <= k * q / m]
    reject = p <= ordered[max(passing) - 1] if passing else np.zeros(m, bool)
    return adjusted, reject


def test_bh_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 → ·m/i: 0.02, 0.02, 0.04, 0.04 (already monotone)
    adjusted, reject = stats.benjamini_hochberg([0.01, 0.04, 0.03, 0.005], q=0.03)
    assert adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert reject.tolist() == [True, False, False, True]
    # Step-up: p_(2) = 0.02 > 2·q/4 = 0.0175, yet it is rejected because p_(3) = 0.024 ≤ 3·q/4 = 0.02625.
    adjusted, reject = stats.benjamini_hochberg([0.001, 0.02, 0.024, 0.9], q=0.035)
    assert adjusted == pytest.approx([0.004, 0.032, 0.032, 0.9])
    assert reject.tolist() == [True, True, True, False]
    # On the line: p_(2) = 2·q/m exactly is rejected (≤, as in the 1995 paper).
    adjusted, reject = stats.benjamini_hochberg([0.01, 0.02, 0.5, 0.5], q=0.04)
    assert adjusted.tolist()[:2] == [0.04, 0.04] and reject.tolist() == [True, True, False, False]


def test_bh_nan_stays_nan_and_does_not_count():
    adjusted, reject = stats.benjamini_hochberg([0.01, np.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    assert reject.tolist() == [True, False, True]  # with m = 3 it would be 0.03 and 0.06: one rejection
    adjusted, reject = stats.benjamini_hochberg([np.nan, np.nan])
    assert np.isnan(adjusted).all() and not reject.any()
    adjusted, reject = stats.benjamini_hochberg([])
    assert adjusted.size == 0 and reject.size == 0
    with pytest.raises(ValueError):
        stats.benjamini_hochberg([0.1], q=0.0)


def test_bh_matches_scipy_and_the_definition():
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(size=40), sps.norm.sf(rng.normal(3.0, 1.0, 12)), [0.5, 0.5, 1.0]])
    p = rng.permutation(p)
    with_nan = p.copy()
    with_nan[[3, 17, 30]] = np.nan
    adjusted, reject = stats.benjamini_hochberg(with_nan, q=0.1)
    ok = np.isfinite(with_nan)
    assert np.isnan(adjusted[~ok]).all() and not reject[~ok].any()
    assert adjusted[ok] == pytest.approx(sps.false_discovery_control(with_nan[ok], method="bh"), rel=1e-12)
    ref_adjusted, ref_reject = bh_by_definition(with_nan[ok], 0.1)
    assert adjusted[ok] == pytest.approx(ref_adjusted, rel=1e-12)
    assert reject[ok].tolist() == ref_reject.tolist() and 0 < reject.sum() < ok.sum()
    order = np.argsort(with_nan[ok])
    assert np.all(np.diff(adjusted[ok][order]) >= 0) and adjusted[ok].max() <= 1.0


def test_bh_controls_the_false_discovery_rate():
    # 200 repetitions of 50 nulls + 10 strong effects: BH's FDR is m0/m·q ≈ 0.042; unadjusted p ≤ q has ~0.2.
    rng = np.random.default_rng(11)
    q, m0, m1, reps = 0.05, 50, 10, 200
    fdp, power, fdp_raw = [], [], []
    for _ in range(reps):
        p = np.concatenate([rng.uniform(size=m0), sps.norm.sf(rng.normal(4.0, 1.0, m1))])
        _, reject = stats.benjamini_hochberg(p, q)
        fdp.append(reject[:m0].sum() / max(1, reject.sum()))
        power.append(reject[m0:].mean())
        raw = p <= q
        fdp_raw.append(raw[:m0].sum() / max(1, raw.sum()))
    assert np.mean(fdp) <= q + 0.01
    assert np.mean(power) > 0.8  # it controls the FDR by finding the effects, not by rejecting nothing
    assert np.mean(fdp_raw) > 2 * q  # the simulation can tell control from no control


# --- material ----------------------------------------------------------------------------------------------


def test_material_judges_the_ci_not_the_point_estimate():
    audit = stats.Estimate(0.021, 0.013, 0.028, 48)  # gradual_expansion_beats_single in the v2 findings
    assert audit.mean >= 0.02 and audit.low > 0  # the old rule (point estimate ≥ margin, CI excludes 0) passed it
    assert stats.material(audit, 0.02) == "undecided"
    assert stats.material(stats.Estimate(0.03, 0.021, 0.04, 48), 0.02) == "material"
    assert stats.material(stats.Estimate(-0.03, -0.04, -0.021, 48), 0.02) == "material"
    assert stats.material(stats.Estimate(0.02, 0.02, 0.04, 48), 0.02) == "material"  # "at least the margin"
    assert stats.material(stats.Estimate(0.0, -0.019, 0.019, 48), 0.02) == "immaterial"
    assert stats.material(stats.Estimate(0.01, 0.0, 0.02, 48), 0.02) == "undecided"  # touches the line
    assert stats.material(stats.Estimate(0.0, -0.05, 0.05, 48), 0.02) == "undecided"
    assert stats.material(stats.Estimate(0.5, math.nan, math.nan, 1), 0.02) == "undecided"
    with pytest.raises(ValueError):
        stats.material(audit, -0.02)


# --- prob_best ---------------------------------------------------------------------------------------------


def test_prob_best_finds_a_clearly_best_option():
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.05, 48)
    groups = {"a": a, "b": rng.normal(0.7, 0.05, 48), "c": rng.permutation(a)}  # c: a's values
    choice = stats.prob_best(groups, n_resamples=999, seed=0)
    assert choice.prob["b"] == pytest.approx(1.0) and sum(choice.prob.values()) == pytest.approx(1.0)
    assert stats.decided(choice.prob) == "b"
    assert choice.means["b"] == stats.mean_ci(groups["b"], n_resamples=999, seed=0)
    lowest = stats.prob_best(groups, n_resamples=999, seed=0, higher_is_better=False)
    assert lowest.prob["b"] == 0.0 and stats.decided(lowest.prob) is None  # a and c are alike: no choice
    assert lowest.prob["a"] + lowest.prob["c"] == pytest.approx(1.0) and lowest.prob["a"] > 0.4
    assert stats.prob_best(groups, n_resamples=999, seed=0) == choice  # seeded: reproducible


def test_prob_best_splits_identical_options_evenly():
    x = np.random.default_rng(4).normal(0.6, 0.1, 48)
    n = 1999  # the share's resampling sd is sqrt(¼/n) ≈ 0.011; 0.05 is 4.5 of them
    choice = stats.prob_best({"a": x, "b": np.random.default_rng(9).permutation(x)}, n_resamples=n, seed=1)
    assert choice.prob["a"] == pytest.approx(0.5, abs=0.05) and choice.prob["b"] == pytest.approx(0.5, abs=0.05)
    assert stats.decided(choice.prob) is None
    tied = stats.prob_best({"a": [1.0] * 5, "b": [1.0] * 3, "c": [0.0] * 4, "empty": [np.nan]}, n_resamples=50)
    assert tied.prob == {"a": 0.5, "b": 0.5, "c": 0.0, "empty": 0.0} and math.isnan(tied.means["empty"].mean)
    with pytest.raises(ValueError):
        stats.prob_best({"a": [], "b": [np.nan]})


def test_prob_best_agrees_with_the_normal_approximation():
    # For two groups the bootstrap difference of means is close to normal: P(a best) ≈ Φ(d / se).
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.0, 1.0, 60), rng.normal(0.0, 1.5, 45)
    a += 0.2 - (a.mean() - b.mean())  # observed d = 0.2 exactly
    se = math.sqrt(a.var() / a.size + b.var() / b.size)  # ddof 0: the bootstrap's own variance
    expected = sps.norm.cdf(0.2 / se)
    assert 0.7 < expected < 0.9
    assert stats.prob_best({"a": a, "b": b}, n_resamples=1999, seed=2).prob["a"] == pytest.approx(expected, abs=0.03)


def test_decided_needs_the_threshold():
    assert stats.decided({"a": 0.79, "b": 0.21}) is None
    assert stats.decided({"a": 0.8, "b": 0.2}) == "a"
    assert stats.decided({"a": 0.6, "b": 0.4}, threshold=0.55) == "a"
    with pytest.raises(ValueError):
        stats.decided({"a": 0.5, "b": 0.5}, threshold=0.5)


# --- a planted rule ------------------------------------------------------------------------------------------


def planted(effect: float, sd: float, n: int = 48, seed: int = 0, exact: bool = False) -> pd.DataFrame:
    """Returns a long table (option, value): option A = B + effect, n networks each, noise sd; with exact=True
    the sample means are moved to 0.6 + effect and 0.6, so the observed difference is the planted one."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.6 + effect, sd, n), rng.normal(0.6, sd, n)
    if exact:
        a, b = a - a.mean() + 0.6 + effect, b - b.mean() + 0.6
    return pd.DataFrame({"option": ["A"] * n + ["B"] * n, "value": np.concatenate([a, b])})


def groups_of(table: pd.DataFrame) -> dict[str, np.ndarray]:
    return {name: g["value"].to_numpy() for name, g in table.groupby("option")}


def test_planted_effect_is_covered_by_the_difference_ci():
    covered = []
    for seed in range(100):
        g = groups_of(planted(0.05, 0.02, seed=seed))
        est = stats.diff_ci(g["A"], g["B"], n_resamples=999, seed=seed)
        covered.append(est.low <= 0.05 <= est.high)
    assert np.mean(covered) >= 0.88  # nominal 0.95; the binomial sd over 100 tables is ~0.022


def test_a_material_planted_rule_is_decided_every_way():
    g = groups_of(planted(0.05, 0.02))
    est = stats.diff_ci(g["A"], g["B"])
    assert est.low > 0.02 and est.low < 0.05 < est.high
    assert stats.material(est, 0.02) == "material"
    assert stats.tost(g["A"], g["B"], 0.02).verdict == "different"
    assert stats.decided(stats.prob_best(g).prob) == "A"


def test_a_planted_rule_inside_the_margin_is_not_decided_material():
    # A is truly ahead by 0.005, well inside the 0.02 margin: tied for practical purposes, and shown so.
    g = groups_of(planted(0.005, 0.01))
    est = stats.diff_ci(g["A"], g["B"])
    assert est.low <= 0.005 <= est.high
    assert stats.material(est, 0.02) == "immaterial"
    assert stats.tost(g["A"], g["B"], 0.02).verdict == "equivalent"


def test_the_audit_rule_on_the_margin_line_is_undecided():
    # The point estimate 0.021 is above the 0.02 line and A is best with high probability, but the CI
    # straddles the line: the rule's materiality is undecided.
    g = groups_of(planted(0.021, 0.0186, exact=True))
    est = stats.diff_ci(g["A"], g["B"])
    assert est.mean == pytest.approx(0.021) and est.low < 0.02 < est.high and est.low > 0
    assert stats.material(est, 0.02) == "undecided"
    assert stats.decided(stats.prob_best(g).prob) == "A"
    assert stats.tost(g["A"], g["B"], 0.02).verdict == "different"


def test_no_difference_at_48_networks_is_not_called_tied():
    # An observed difference of exactly 0 with sd 0.08 at 48 a group: the 90% CI (±0.027) is wider than the
    # margin, so TOST cannot say "equivalent"; the Welch test does not reject; no option is chosen.
    g = groups_of(planted(0.0, 0.08, exact=True))
    res = stats.tost(g["A"], g["B"], 0.02)
    assert res.difference.mean == pytest.approx(0.0, abs=1e-12)
    assert res.verdict == "inconclusive" and res.difference.high > 0.02
    assert stats.material(stats.diff_ci(g["A"], g["B"]), 0.02) == "undecided"
    assert stats.decided(stats.prob_best(g).prob) is None


def test_contrast_of_two_groups_is_the_pooled_t_test():
    rng = np.random.default_rng(3)
    x, y = rng.normal(1.0, 0.5, 7), rng.normal(0.2, 0.5, 5)
    c = stats.contrast([x, y], [1, -1], margin=0.1)
    ref = sps.ttest_ind(x, y, equal_var=True)
    ci = ref.confidence_interval(0.95)
    assert c.p == pytest.approx(ref.pvalue)
    assert (c.estimate.low, c.estimate.high) == pytest.approx((ci.low, ci.high))
    assert c.df == 10 and c.n == (7, 5)


def test_contrast_interaction_matches_least_squares():
    # A 2×2 design with 3 values per cell: the interaction contrast and its SE equal the OLS coefficient's
    # (cell-means coding, so the contrast is w·β and its variance s²·w(XᵀX)⁻¹wᵀ), computed independently.
    rng = np.random.default_rng(4)
    means = [0.0, 0.3, 0.1, 1.0]
    cells = [rng.normal(m, 0.2, 3) for m in means]
    w = np.array([1.0, -1.0, -1.0, 1.0])
    c = stats.contrast(cells, w, margin=0.1)
    X = np.kron(np.eye(4), np.ones((3, 1)))
    y = np.concatenate(cells)
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    s2 = rss[0] / (12 - 4)
    se = np.sqrt(s2 * w @ np.linalg.inv(X.T @ X) @ w)
    assert c.estimate.mean == pytest.approx(w @ beta)
    assert c.se == pytest.approx(se)
    assert c.verdict == "different"  # planted interaction 0.6 with σ = 0.2


def test_contrast_equivalent_and_inconclusive():
    rng = np.random.default_rng(5)
    tight = [rng.normal(0.0, 0.01, 20) for _ in range(2)]
    assert stats.contrast(tight, [1, -1], margin=0.05).verdict == "equivalent"
    wide = [rng.normal(0.0, 1.0, 3) for _ in range(2)]
    assert stats.contrast(wide, [1, -1], margin=0.05).verdict == "inconclusive"
    single = stats.contrast([[1.0], [2.0]], [1, -1], margin=0.5)
    assert single.verdict == "inconclusive" and np.isnan(single.estimate.low)
    with pytest.raises(ValueError, match="weights"):
        stats.contrast(tight, [1, -1, 0], margin=0.1)
