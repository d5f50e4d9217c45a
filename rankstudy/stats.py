"""Statistics on results tables: bootstrap confidence intervals, expansion-ratio bands, pairwise tests with
Holm correction, false-discovery-rate control, verdicts (equivalence, materiality, the best of several
options), and fitted rank-vs-expansion curves with the ratio at which they fall below τ.

Choices (recorded in findings.json `settings`):
- CIs are percentile bootstrap intervals (scipy.stats.bootstrap, `method="percentile"`) with a fixed seed,
  so a findings file is reproducible bit for bit. Percentile rather than BCa because the measures are
  bounded and often constant within a group (every network full rank), where BCa is undefined.
- Pairwise differences between nonlinearities use Welch's t-test on the means (the ranking is by mean),
  Holm-corrected over all pairs of one comparison family. Two constant groups are "significantly
  different" exactly when their values differ (the t statistic is infinite).
- The curve family is a smoothly broken power law in the expansion ratio r:
      y(r) = top · (1 + (r / r_break)^sharpness)^(−tail / sharpness)
  with top ∈ [0, 1.2], r_break ∈ [1e-3, 1e4], tail ∈ [0, 5], sharpness ∈ [0.5, 30]: monotone
  non-increasing, a plateau `top` at small r, a power-law decline r^(−tail) past `r_break`, and
  `sharpness` setting how abruptly one turns into the other. It holds the linear bound min(1, 1/r)
  (top 1, r_break 1, tail 1, sharpness → ∞) and the bound of a bottleneck of width k·d_in, min(1, k/r);
  saturated data (y ≡ 1) fit as a flat curve (tail ≈ 0 or r_break beyond the data).

Verdicts (what a report may say about a difference, and on what evidence):
- "Tied" / "equivalent" needs an equivalence test with a stated margin (`tost`): a Welch test that fails to
  reject says "not shown different", never "tied" (at ~48 networks a group it cannot show equivalence).
- Materiality is judged on the CI, not the point estimate (`material`): a difference whose CI straddles the
  margin is "undecided", whatever side its mean falls on.
- Many CIs or tests at once get false-discovery-rate control (`benjamini_hochberg`).
- A choice among options reports each option's bootstrap probability of having the best mean (`prob_best`)
  and is made only when one option's probability reaches a threshold (`decided`).
"""

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

CONFIDENCE = 0.95
N_RESAMPLES = 1999
RNG_SEED = 0
ALPHA = 0.05
DEFAULT_BAND_EDGES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)


# --- bootstrap -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean (or difference of means) with its CI and sample size(s); the CI is a percentile bootstrap one
    unless the function that made it says otherwise (`tost` gives a Welch t interval)."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        """Returns True when the whole CI lies on one side of 0."""
        return bool(self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        """Returns the estimate as the reports store it: {"value": mean, "ci": [low, high], "n": n} (findings.json
        and the channel study's report.json share this one shape)."""
        return {"value": self.mean, "ci": [self.low, self.high], "n": self.n}


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def mean_ci(values, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = RNG_SEED) -> Estimate:
    """Returns the mean of `values` with its percentile-bootstrap CI (NaN bounds for fewer than 2 values)."""
    x = _finite(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, math.nan, math.nan, 1)
    if np.ptp(x) == 0:
        return Estimate(mean, mean, mean, int(x.size))
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Estimate(mean, float(ci.low), float(ci.high), int(x.size))


def _mean_diff(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def diff_ci(x, y, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = RNG_SEED) -> Estimate:
    """Returns mean(x) − mean(y) with the percentile-bootstrap CI resampling x and y independently.

    `n` of the result is min(len(x), len(y)); NaN bounds when either has fewer than 2 values.
    """
    x, y = _finite(x), _finite(y)
    if x.size == 0 or y.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    diff = float(x.mean() - y.mean())
    n = int(min(x.size, y.size))
    if n < 2:
        return Estimate(diff, math.nan, math.nan, n)
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return Estimate(diff, diff, diff, n)
    res = stats.bootstrap(
        (x, y),
        _mean_diff,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        vectorized=True,
        paired=False,
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Estimate(diff, float(ci.low), float(ci.high), n)


def group_means(
    table: pd.DataFrame,
    by: list[str],
    column: str,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> pd.DataFrame:
    """Returns one row per group of `by`: the group keys, n, mean, ci_low, ci_high of `column`."""
    rows = []
    for key, group in table.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        est = mean_ci(group[column], confidence, n_resamples, seed)
        rows.append({**dict(zip(by, key)), "n": est.n, "mean": est.mean, "ci_low": est.low, "ci_high": est.high})
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "ci_low", "ci_high"])


def group_estimates(
    table: pd.DataFrame,
    by: list[str],
    column: str,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
) -> list[dict]:
    """Returns one dict per group of `by` (in sorted group order): the group keys and the mean of `column` with
    its bootstrap CI, as `Estimate.to_dict` ({value, ci, n}); `group_means` gives the same as table columns."""
    rows = []
    for key, group in table.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **mean_ci(group[column], confidence, n_resamples, seed).to_dict()})
    return rows


# --- bands -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """An expansion-ratio band low < r ≤ high (low = 0 / high = inf at the ends)."""

    label: str
    low: float
    high: float


def _fmt(x: float) -> str:
    return f"{x:g}"


def make_bands(edges: tuple[float, ...] = DEFAULT_BAND_EDGES) -> list[Band]:
    """Returns the bands cut at `edges`: r ≤ e0, e0 < r ≤ e1, …, r > e_last."""
    edges = tuple(sorted(edges))
    bounds = [0.0, *edges, math.inf]
    bands = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        label = f"<={_fmt(hi)}" if lo == 0 else f">{_fmt(lo)}" if hi == math.inf else f"{_fmt(lo)}-{_fmt(hi)}"
        bands.append(Band(label, lo, hi))
    return bands


def band_of(ratios, bands: list[Band]) -> pd.Categorical:
    """Returns each expansion ratio's band label, as an ordered categorical."""
    r = np.asarray(ratios, dtype=float)
    labels = np.empty(r.shape, dtype=object)
    for b in bands:
        labels[(r > b.low) & (r <= b.high)] = b.label
    return pd.Categorical(labels, categories=[b.label for b in bands], ordered=True)


# --- pairwise tests --------------------------------------------------------------------------------------


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Returns (mean(x) − mean(y), its standard error, Welch–Satterthwaite df) of two groups of ≥ 2 values,
    not both constant."""
    a, b = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    df = (a + b) ** 2 / (a**2 / (x.size - 1) + b**2 / (y.size - 1))
    return float(x.mean() - y.mean()), math.sqrt(a + b), float(df)


def welch_p(x, y) -> float:
    """Returns the two-sided p-value of Welch's t-test for equal means (NaN if a group has < 2 values)."""
    x, y = _finite(x), _finite(y)
    if x.size < 2 or y.size < 2:
        return math.nan
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # exact test: rounding in var() must not decide it
        return 1.0 if x[0] == y[0] else 0.0
    diff, se, df = _welch(x, y)
    t = diff / se
    return float(min(1.0, 2.0 * stats.t.sf(abs(t), df)))


def holm(pvalues) -> np.ndarray:
    """Returns Holm–Bonferroni adjusted p-values (NaN stays NaN and does not count as a test)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def benjamini_hochberg(pvalues, q: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Returns (Benjamini–Hochberg adjusted p-values, rejection mask) controlling the false-discovery rate at q.

    The adjusted values are the step-up ones (`scipy.stats.false_discovery_control`, method "bh"): monotone in
    p, capped at 1; a test is rejected when its adjusted value is ≤ q (p_(i) ≤ i·q/m for some i ≥ its rank).
    NaN (a test that could not be run) stays NaN, is never rejected and does not count in m, as in `holm`:
    counting it would make every other test stricter for a test that did not happen.
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    ok = np.isfinite(p)
    if ok.any():
        adjusted[ok] = stats.false_discovery_control(p[ok], method="bh")
    return adjusted, np.where(ok, adjusted <= q, False)


@dataclass(frozen=True)
class Comparison:
    """Welch test of mean(a) vs mean(b), Holm-adjusted within its family."""

    a: str
    b: str
    difference: float
    p: float
    p_holm: float
    significant: bool


def pairwise(groups: dict[str, np.ndarray], alpha: float = ALPHA) -> list[Comparison]:
    """Returns every pair (a, b), a before b in `groups` order, with Welch p-values Holm-corrected together."""
    names = list(groups)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    p = np.array([welch_p(groups[a], groups[b]) for a, b in pairs])
    adj = holm(p)
    return [
        Comparison(
            a,
            b,
            float(np.mean(groups[a]) - np.mean(groups[b])),
            float(pv),
            float(pa),
            bool(np.isfinite(pa) and pa < alpha),
        )
        for (a, b), pv, pa in zip(pairs, p, adj)
    ]


# --- verdicts: equivalence, materiality, the best of several options -------------------------------------


def exceeds_p(x, y, margin: float = 0.0) -> float:
    """Returns the one-sided Welch p-value of H0: mean(x) − mean(y) ≤ margin against "> margin".

    With margin > 0 a small p says the difference is *materially* positive (its one-sided (1 − p) lower
    confidence bound is ≥ margin); for "materially negative" pass (y, x). NaN when a group has < 2 finite
    values; two constant groups are decided exactly (0 if the difference exceeds the margin, else 1).
    """
    x, y = _finite(x), _finite(y)
    if x.size < 2 or y.size < 2:
        return math.nan
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return 0.0 if x[0] - y[0] > margin else 1.0
    diff, se, df = _welch(x, y)
    return float(stats.t.sf((diff - margin) / se, df))


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided Welch tests (TOST) of |mean(x) − mean(y)| < margin, with the usual two-sided Welch test.

    `difference` carries the (1 − 2α) Welch t interval, the one TOST inverts: "equivalent" exactly when it
    lies inside (−margin, margin).
    """

    difference: Estimate
    margin: float
    alpha: float
    p_tost: float
    p_welch: float
    verdict: str

    def to_dict(self) -> dict:
        """Returns the test as reports store it: the difference as {value, ci, n} plus the test's fields."""
        return {
            **self.difference.to_dict(),
            "confidence": 1 - 2 * self.alpha,
            "margin": self.margin,
            "p_tost": self.p_tost,
            "p_welch": self.p_welch,
            "verdict": self.verdict,
        }


def tost(x, y, margin: float, alpha: float = ALPHA) -> Equivalence:
    """Returns the equivalence test of mean(x) and mean(y) within ±margin (Welch form, unequal variances).

    p_tost = max of the two one-sided p-values, of H0 d ≤ −margin and of H0 d ≥ +margin (d = mean(x) − mean(y)).
    The verdict, in this order:
    - "equivalent": p_tost < alpha (the (1 − 2α) CI lies inside (−margin, margin)); only then may a report say
      "tied". A difference that is also nonzero at alpha but smaller than the margin is equivalent: tied for
      every purpose the margin stands for.
    - "different": not equivalent, and the two-sided Welch test rejects equal means at alpha (its 1 − α CI
      excludes 0). It says a difference is shown, not that it reaches the margin (that is `material`).
    - "inconclusive": neither (too few values for either to decide); this is what "not shown different" is.
    Groups with < 2 finite values give NaN p-values and "inconclusive"; two constant groups are decided
    exactly (equivalent iff |d| < margin, different iff d ≠ 0), as in `welch_p`.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    x, y = _finite(x), _finite(y)
    n = int(min(x.size, y.size))
    if x.size < 2 or y.size < 2:
        diff = float(x.mean() - y.mean()) if n else math.nan
        est = Estimate(diff, math.nan, math.nan, n)
        return Equivalence(est, margin, alpha, math.nan, math.nan, "inconclusive")
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        diff = float(x[0] - y[0])
        p_tost, p_welch, est = float(abs(diff) >= margin), float(diff == 0), Estimate(diff, diff, diff, n)
    else:
        diff, se, df = _welch(x, y)
        p_lower = float(stats.t.sf((diff + margin) / se, df))  # H0: d ≤ −margin
        p_upper = float(stats.t.cdf((diff - margin) / se, df))  # H0: d ≥ +margin
        p_tost = max(p_lower, p_upper)
        p_welch = float(min(1.0, 2.0 * stats.t.sf(abs(diff) / se, df)))
        half = float(stats.t.ppf(1 - alpha, df)) * se
        est = Estimate(diff, diff - half, diff + half, n)
    if p_tost < alpha:
        verdict = "equivalent"
    elif p_welch < alpha:
        verdict = "different"
    else:
        verdict = "inconclusive"
    return Equivalence(est, margin, alpha, p_tost, p_welch, verdict)


def material(estimate: Estimate, margin: float) -> str:
    """Returns "material" when the whole CI is at or beyond ±margin (low ≥ margin or high ≤ −margin),
    "immaterial" when it lies inside (−margin, margin), and "undecided" otherwise (it straddles a margin
    line, or it is NaN). The point estimate does not decide: [0.013, 0.028] against 0.02 is undecided."""
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    low, high = estimate.low, estimate.high
    if math.isnan(low) or math.isnan(high):
        return "undecided"
    if low >= margin or high <= -margin:
        return "material"
    if -margin < low and high < margin:
        return "immaterial"
    return "undecided"


@dataclass(frozen=True)
class Contrast:
    """A linear contrast of group means, Σ w_i · mean_i, with pooled-variance t intervals (one-way ANOVA model).

    `estimate` carries the 95% interval (two-sided test of L = 0, `p`), `ci90` the (1 − 2α) interval that the
    equivalence test within ±margin inverts (`p_tost`); `verdict` as `tost`'s ("equivalent", "different",
    "inconclusive"). `n` is the number of values per group, `df` the pooled degrees of freedom Σ (n_i − 1).
    """

    estimate: Estimate
    ci90: tuple[float, float]
    se: float
    df: int
    p: float
    margin: float
    p_tost: float
    verdict: str
    n: tuple[int, ...]

    def to_dict(self) -> dict:
        """Returns the contrast as reports store it: {value, ci, n} plus the test's fields."""
        return {
            **self.estimate.to_dict(),
            "n": list(self.n),
            "ci90": list(self.ci90),
            "se": self.se,
            "df": self.df,
            "p": self.p,
            "margin": self.margin,
            "p_tost": self.p_tost,
            "verdict": self.verdict,
        }


def contrast(groups, weights, margin: float, alpha: float = ALPHA) -> Contrast:
    """Returns the contrast Σ w_i · mean(groups[i]) with its t interval from the variance pooled over all groups.

    The model is the one-way ANOVA's: every group has the same variance σ², estimated by the pooled s² with
    df = Σ (n_i − 1), so SE = s · √(Σ w_i² / n_i). A 2×2 factorial's main effects and interaction are contrasts of
    its four cell means (weights ±½ for a main effect, ±1 for the interaction); two groups with weights (1, −1)
    give the pooled two-sample t test. The verdict is `tost`'s: "equivalent" when the (1 − 2α) interval lies in
    (−margin, margin), else "different" when the 1 − α interval excludes 0, else "inconclusive". With df = 0
    (one value per group) the intervals and p-values are NaN and the verdict "inconclusive".
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    values = [_finite(g) for g in groups]
    w = np.asarray(weights, dtype=float)
    if len(values) != w.size:
        raise ValueError(f"{len(values)} groups but {w.size} weights")
    if any(v.size == 0 for v in values):
        raise ValueError("every group needs at least one finite value")
    n = np.array([v.size for v in values])
    est = float(sum(wi * v.mean() for wi, v in zip(w, values)))
    df = int((n - 1).sum())
    nan = math.nan
    if df == 0:
        return Contrast(
            Estimate(est, nan, nan, int(n.min())),
            (nan, nan),
            nan,
            0,
            nan,
            margin,
            nan,
            "inconclusive",
            tuple(int(k) for k in n),
        )
    pooled = sum(((v - v.mean()) ** 2).sum() for v in values) / df
    se = float(math.sqrt(pooled * float((w**2 / n).sum())))
    if se == 0:  # every group constant: decided exactly, as tost does
        p, p_tost = float(est == 0), float(abs(est) >= margin)
        ci95 = ci90 = (est, est)
    else:
        p = float(min(1.0, 2.0 * stats.t.sf(abs(est) / se, df)))
        p_tost = max(float(stats.t.sf((est + margin) / se, df)), float(stats.t.cdf((est - margin) / se, df)))
        h95, h90 = float(stats.t.ppf(1 - alpha / 2, df)) * se, float(stats.t.ppf(1 - alpha, df)) * se
        ci95, ci90 = (est - h95, est + h95), (est - h90, est + h90)
    verdict = "equivalent" if p_tost < alpha else "different" if p < alpha else "inconclusive"
    return Contrast(
        Estimate(est, *ci95, int(n.min())), ci90, se, df, p, margin, p_tost, verdict, tuple(int(k) for k in n)
    )


@dataclass(frozen=True)
class Choice:
    """Each option's bootstrap probability of having the best mean (summing to 1) and its mean with its CI."""

    prob: dict[str, float]
    means: dict[str, Estimate]
    n_resamples: int
    higher_is_better: bool


def prob_best(
    groups: dict[str, np.ndarray],
    n_resamples: int = N_RESAMPLES,
    seed: int = RNG_SEED,
    higher_is_better: bool = True,
) -> Choice:
    """Returns each option's probability of having the best (highest, or lowest) mean, with its mean CI.

    Each bootstrap replicate resamples every group within itself (groups are independent) and credits the
    option with the best replicate mean; options tied for best share the credit equally, so two identical
    constant groups get ½ each and the probabilities always sum to 1. An option without finite values is
    never best (probability 0, NaN mean). The draws follow `groups`' order from one generator seeded with
    `seed`, so the result is reproducible; the means' CIs are `mean_ci` with the same resamples and seed.
    """
    names = list(groups)
    data = {name: _finite(groups[name]) for name in names}
    if not any(v.size for v in data.values()):
        raise ValueError("prob_best needs at least one option with a finite value")
    rng = np.random.default_rng(seed)
    boot = np.full((len(names), n_resamples), -math.inf if higher_is_better else math.inf)
    chunk = max(1, 2**22 // max(1, max(v.size for v in data.values())))  # ≤ 4M indices (32 MB) at a time
    for i, name in enumerate(names):
        x = data[name]
        if x.size == 0:
            continue
        for start in range(0, n_resamples, chunk):
            stop = min(n_resamples, start + chunk)
            boot[i, start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    best = boot.max(axis=0) if higher_is_better else boot.min(axis=0)
    winners = boot == best
    credit = (winners / winners.sum(axis=0)).mean(axis=1)
    return Choice(
        {name: float(c) for name, c in zip(names, credit)},
        {name: mean_ci(data[name], n_resamples=n_resamples, seed=seed) for name in names},
        int(n_resamples),
        bool(higher_is_better),
    )


def decided(prob: dict[str, float], threshold: float = 0.8) -> str | None:
    """Returns the option whose probability of being best is ≥ threshold, or None: no choice is made below it.

    threshold must be > ½ so that at most one option can reach it.
    """
    if not 0.5 < threshold <= 1:
        raise ValueError(f"threshold must be in (0.5, 1], got {threshold}")
    for name, p in prob.items():
        if p >= threshold:
            return name
    return None


# --- curves and thresholds -------------------------------------------------------------------------------

CURVE_FAMILY = "y = top * (1 + (r / r_break) ** sharpness) ** (-tail / sharpness)"
_BOUNDS = {
    "top": (0.0, 1.2),
    "log_r_break": (math.log(1e-3), math.log(1e4)),
    "tail": (0.0, 5.0),
    "sharpness": (0.5, 30.0),
}


def curve(r, top: float, r_break: float, tail: float, sharpness: float) -> np.ndarray:
    """Returns the smoothly broken power law top · (1 + (r/r_break)^sharpness)^(−tail/sharpness) at ratios r."""
    z = np.clip(sharpness * (np.log(np.asarray(r, dtype=float)) - math.log(r_break)), -700, 700)
    return top * np.exp(-(tail / sharpness) * np.logaddexp(0.0, z))


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve (CURVE_FAMILY) of a normalised measure vs expansion ratio; NaN parameters if no fit."""

    top: float
    r_break: float
    tail: float
    sharpness: float
    converged: bool
    rmse: float
    n: int
    r_min: float
    r_max: float

    def predict(self, r) -> np.ndarray:
        """Returns the fitted measure at expansion ratios r."""
        return curve(r, self.top, self.r_break, self.tail, self.sharpness)

    def crossing(self, tau: float) -> float:
        """Returns the ratio where the curve equals τ: +inf if it never falls to τ, 0 if it starts below."""
        if not self.converged:
            return math.nan
        if self.top <= tau:
            return 0.0
        if self.tail <= 0:
            return math.inf
        # (1 + (r/r_b)^s) = (top/τ)^(s/tail), solved in logs so huge exponents stay finite.
        log_rhs = (self.sharpness / self.tail) * math.log(self.top / tau)
        log_u = log_rhs + math.log(-math.expm1(-log_rhs)) if log_rhs < 700 else log_rhs
        log_r = math.log(self.r_break) + log_u / self.sharpness
        return math.inf if log_r > 700 else math.exp(log_r)


def fit_curve(ratios, values, start: "CurveFit | None" = None) -> CurveFit:
    """Returns the least-squares CURVE_FAMILY fit to (ratio, value) points; converged=False when it fails.

    `start` (a converged fit, e.g. to the full sample when refitting bootstrap resamples of it) replaces the
    coarse-grid start point and cuts the budget to 60 evaluations: a refit from a nearby optimum needs a
    few; one that needs more (flat data, where the parameters are not identified) reports converged=False.

    When `scipy.optimize.curve_fit` fails (no convergence within its budget, or a non-finite result) the
    fit reports converged=False and carries the coarse-grid start point as its parameters (with its
    RMSE), for inspection only: its `crossing` is NaN, so `fit_threshold` says "no_fit" and the design
    rules fall back to `empirical_threshold`. A converged refinement that ends worse than its start keeps
    the start point (least squares from a grid optimum cannot be worse; this only guards numerics).

    Points are pooled per distinct ratio (mean, weighted by count), which gives the same least-squares
    solution as fitting every point, at a fraction of the cost.
    """
    r, y = np.asarray(ratios, dtype=float), np.asarray(values, dtype=float)
    ok = np.isfinite(r) & np.isfinite(y) & (r > 0)
    r, y = r[ok], y[ok]
    nan = math.nan
    if r.size < 4 or np.unique(r).size < 3:
        return CurveFit(nan, nan, nan, nan, False, nan, int(r.size), *_range(r))
    ur, inverse, counts = np.unique(r, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    sse_within = float(np.sum((y - means[inverse]) ** 2))
    log_r, sigma = np.log(ur), 1.0 / np.sqrt(counts)

    def model(lr, top, log_rb, tail, sharp):
        z = np.clip(sharp * (lr - log_rb), -700, 700)
        return top * np.exp(-(tail / sharp) * np.logaddexp(0.0, z))

    def jacobian(lr, top, log_rb, tail, sharp):
        z = np.clip(sharp * (lr - log_rb), -700, 700)
        softplus, sig = np.logaddexp(0.0, z), 0.5 * (1.0 + np.tanh(0.5 * z))
        shape = np.exp(-(tail / sharp) * softplus)
        y = top * shape
        return np.stack(
            [
                shape,
                y * tail * sig,
                -y * softplus / sharp,
                y * tail * (softplus / sharp**2 - sig * (lr - log_rb) / sharp),
            ],
            axis=1,
        )

    lo = [b[0] for b in _BOUNDS.values()]
    hi = [b[1] for b in _BOUNDS.values()]
    p0 = (
        tuple(
            min(max(v, a), b)
            for v, a, b in zip((start.top, math.log(start.r_break), start.tail, start.sharpness), lo, hi)
        )
        if start is not None and start.converged
        else _grid_start(log_r, means, counts)
    )
    start_sse = float(np.sum(counts * (model(log_r, *p0) - means) ** 2))
    best, converged = (np.asarray(p0), start_sse), False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(
                model,
                log_r,
                means,
                p0=p0,
                sigma=sigma,
                method="trf",
                bounds=(lo, hi),
                jac=jacobian,
                max_nfev=300 if start is None else 60,
            )
        sse = float(np.sum(counts * (model(log_r, *params) - means) ** 2))
        converged = bool(np.all(np.isfinite(params)) and math.isfinite(sse))
        if converged and sse <= start_sse:
            best = (params, sse)
    except (RuntimeError, ValueError):
        pass  # not converged: the grid start is reported, and thresholds fall back to the empirical ones
    (top, log_rb, tail, sharp), sse = best
    return CurveFit(
        float(top),
        float(math.exp(log_rb)),
        float(tail),
        float(sharp),
        converged,
        math.sqrt((sse + sse_within) / r.size),
        int(r.size),
        *_range(r),
    )


def _grid_start(log_r: np.ndarray, means: np.ndarray, counts: np.ndarray) -> tuple[float, ...]:
    """Returns the best (top, log r_break, tail, sharpness) on a coarse grid, `top` solved in closed form.

    For fixed (r_break, tail, sharpness) the curve is linear in `top`, so a grid over the other three
    finds the global basin cheaply; least squares then only refines it.
    """
    log_rb = np.linspace(math.log(1e-2), math.log(1e3), 40)
    tail = np.array([0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0])
    sharp = np.geomspace(_BOUNDS["sharpness"][0], _BOUNDS["sharpness"][1], 10)
    rb, ta, sh = (a.ravel() for a in np.meshgrid(log_rb, tail, sharp, indexing="ij"))
    z = np.clip(sh[:, None] * (log_r[None, :] - rb[:, None]), -700, 700)
    shape = np.exp(-(ta / sh)[:, None] * np.logaddexp(0.0, z))
    top = np.clip((shape * counts * means).sum(1) / np.maximum((shape**2 * counts).sum(1), 1e-300), *_BOUNDS["top"])
    sse = ((top[:, None] * shape - means) ** 2 * counts).sum(1)
    i = int(np.argmin(sse))
    return float(top[i]), float(rb[i]), float(ta[i]), float(sh[i])


def _range(r: np.ndarray) -> tuple[float, float]:
    return (float(r.min()), float(r.max())) if r.size else (math.nan, math.nan)


@dataclass(frozen=True)
class Threshold:
    """The largest expansion ratio r ≥ r_floor (default 1: no expansion) keeping a measure ≥ τ.

    status: "crossed" (ratio is where the measure falls to τ inside the sampled range), "above_range"
    (it stays ≥ τ up to the largest sampled ratio, which `ratio` then holds: a lower bound), "below_range"
    (it is < τ already at r_floor or the smallest sampled ratio above it; `ratio` is None), "no_fit"
    (no estimate).
    """

    ratio: float | None
    status: str


def fit_threshold(fit: CurveFit, tau: float, r_floor: float = 1.0) -> Threshold:
    """Returns the fitted curve's largest ratio ≥ r_floor with value ≥ τ, within the sampled ratio range."""
    r = fit.crossing(tau)
    if math.isnan(r) or fit.r_max < r_floor:
        return Threshold(None, "no_fit")
    if r < max(fit.r_min, r_floor):
        return Threshold(None, "below_range")
    if r >= fit.r_max:
        return Threshold(fit.r_max, "above_range")
    return Threshold(r, "crossed")


def empirical_threshold(grid_ratios, means, tau: float, r_floor: float = 1.0) -> Threshold:
    """Returns the largest grid ratio ≥ r_floor up to which every grid point's (≥ r_floor) mean is ≥ τ."""
    g, m = np.asarray(grid_ratios, dtype=float), np.asarray(means, dtype=float)
    order = np.argsort(g)
    g, m = g[order], m[order]
    keep = np.isfinite(m) & (g >= r_floor * (1 - 1e-9))
    g, m = g[keep], m[keep]
    if g.size == 0:
        return Threshold(None, "no_fit")
    below = np.flatnonzero(m < tau)
    if below.size == 0:
        return Threshold(float(g[-1]), "above_range")
    if below[0] == 0:
        return Threshold(None, "below_range")
    return Threshold(float(g[below[0] - 1]), "crossed")
