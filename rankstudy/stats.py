"""Statistics on results tables: bootstrap confidence intervals, expansion-ratio bands, pairwise tests with
Holm correction, and fitted rank-vs-expansion curves with the ratio at which they fall below τ.

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
    """A mean (or difference of means) with its bootstrap CI and sample size(s)."""

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


def welch_p(x, y) -> float:
    """Returns the two-sided p-value of Welch's t-test for equal means (NaN if a group has < 2 values)."""
    x, y = _finite(x), _finite(y)
    if x.size < 2 or y.size < 2:
        return math.nan
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # exact test: rounding in var() must not decide it
        return 1.0 if x[0] == y[0] else 0.0
    a, b = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = x.mean() - y.mean()
    t = diff / math.sqrt(a + b)
    df = (a + b) ** 2 / (a**2 / (x.size - 1) + b**2 / (y.size - 1))  # Welch–Satterthwaite
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


def fit_curve(ratios, values) -> CurveFit:
    """Returns the least-squares CURVE_FAMILY fit to (ratio, value) points; converged=False when it fails.

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
    p0 = _grid_start(log_r, means, counts)
    start_sse = float(np.sum(counts * (model(log_r, *p0) - means) ** 2))
    best, converged = (np.asarray(p0), start_sse), False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = optimize.curve_fit(
                model, log_r, means, p0=p0, sigma=sigma, method="trf", bounds=(lo, hi), jac=jacobian, max_nfev=300
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
