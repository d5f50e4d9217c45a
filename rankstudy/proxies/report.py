"""`rankstudy proxies-report`: how well each proxy ranks the architectures by trained accuracy.

For every proxy × accuracy column (cifar10, cifar100, imagenet16; 200 and 12 epochs), over the architectures that
have both a score and an accuracy:

- Spearman's ρ and Kendall's τ with percentile-bootstrap 95% CIs over architectures (`rankstudy.stats`'s
  confidence level and seed; architectures resampled with replacement, all proxies and columns on the same
  resamples, so differences between proxies are paired). ρ uses `stats.N_RESAMPLES` resamples, τ (an O(n log n)
  statistic per resample) the first TAU_RESAMPLES of them;
- the precision of its top 10%: the share of the proxy's top 10% (by score) in the top 10% by accuracy;
- ρ given #params: the partial Spearman correlation (ρ_xy − ρ_xz ρ_yz)/√((1 − ρ_xz²)(1 − ρ_yz²)), z = #params,
  with its bootstrap CI: what a proxy knows about accuracy beyond the network's size;
- ρ − ρ(#params) with its paired bootstrap CI: a proxy "beats #params" only where that CI lies above 0;
- seconds per architecture: the mean time the proxy costs alone (its passes and its own computation);
- #params combined with one rank measure (`combinations`), chosen on a random half of the architectures and
  scored on the other half only.

Scores of −inf (a singular NASWOT kernel) rank lowest; NaN scores are left out of that proxy's figures.
A figure per dataset: the forest plot of ρ with its CI for every proxy (200 and 12 epochs), and accuracy
against score for the best few proxies at 200 epochs.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sstats

from rexnet.io import atomic_write_text

from .. import stats, store
from ..errors import StudyError
from .spaces import ACCURACY_COLUMNS, DATASETS, EPOCHS

TOP_FRACTION = 0.10
TAU_RESAMPLES = 200
BASELINE = "params"
N_SCATTER = 4


def _ranks(x: np.ndarray) -> np.ndarray:
    return sstats.rankdata(x, axis=-1)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def _partial(rxy, rxz, ryz):
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt((1 - rxz**2) * (1 - ryz**2))
        return np.where(den > 0, (rxy - rxz * ryz) / np.where(den > 0, den, 1.0), np.nan)


def _ci(values: np.ndarray) -> list[float]:
    v = values[np.isfinite(values)]
    if v.size < 2:
        return [math.nan, math.nan]
    alpha = (1 - stats.CONFIDENCE) / 2
    return [float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))]


def top_precision(score: np.ndarray, acc: np.ndarray, fraction: float = TOP_FRACTION) -> float:
    """Returns the share of the top `fraction` by score that is in the top `fraction` by accuracy."""
    k = max(1, int(round(fraction * len(score))))
    top_score = set(np.argsort(-score, kind="stable")[:k])
    top_acc = set(np.argsort(-acc, kind="stable")[:k])
    return len(top_score & top_acc) / k


class _Resamples:
    """Bootstrap resamples of a set of rows, and the ranks of any column on them, each computed once."""

    def __init__(self, n: int, n_resamples: int, seed: int):
        rng = np.random.default_rng(seed)
        self.idx = rng.integers(0, n, size=(n_resamples, n))
        self._ranks: dict[str, np.ndarray] = {}
        self._rho: dict[tuple[str, str], np.ndarray] = {}

    def ranks(self, key: str, values: np.ndarray) -> np.ndarray:
        if key not in self._ranks:
            self._ranks[key] = _ranks(values[self.idx])
        return self._ranks[key]

    def rho(self, a: str, b: str) -> np.ndarray:
        """Returns the resampled Spearman rho of two columns already ranked by `ranks`."""
        if (a, b) not in self._rho:
            self._rho[(a, b)] = _pearson_rows(self._ranks[a], self._ranks[b])
        return self._rho[(a, b)]


def _finite_scores(x: np.ndarray) -> np.ndarray:
    """Returns x with −inf below and +inf above every finite value (they keep their place in the ranking)."""
    finite = x[np.isfinite(x)]
    lo, hi = (finite.min() - 1, finite.max() + 1) if finite.size else (0.0, 0.0)
    return np.where(np.isneginf(x), lo, np.where(np.isposinf(x), hi, x))


def correlations(
    table: pd.DataFrame,
    proxies: list[str],
    columns=ACCURACY_COLUMNS,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.RNG_SEED,
) -> pd.DataFrame:
    """Returns one row per proxy × accuracy column: n, rho [CI], tau [CI], top-10% precision, partial rho given
    #params [CI], rho − rho(#params) [CI] and seconds per architecture (module docstring).

    Every proxy and column measured on the same rows shares one set of resamples (the usual case: only a proxy
    with NaN scores gets its own), so ρ − ρ(#params) is a paired difference.
    """
    rows, cache = [], {}
    base = table[BASELINE].to_numpy(dtype=float) if BASELINE in table else None
    for col in columns:
        acc_all = table[col].to_numpy(dtype=float)
        for p in proxies:
            score = table[p].to_numpy(dtype=float)
            keep = np.isfinite(acc_all) & ~np.isnan(score)
            if base is not None:
                keep &= np.isfinite(base)
            seconds = table.get(f"seconds.{p}")
            row = {
                "proxy": p,
                "column": col,
                "dataset": col.rsplit("_", 1)[0],
                "epochs": int(col.rsplit("_", 1)[1].removesuffix("ep")),
                "n": int(keep.sum()),
                "seconds": float(seconds.mean()) if seconds is not None and len(seconds) else math.nan,
                "rho": math.nan,
                "rho_ci": [math.nan] * 2,
                "tau": math.nan,
                "tau_ci": [math.nan] * 2,
                "top10_precision": math.nan,
                "partial_rho": math.nan,
                "partial_rho_ci": [math.nan] * 2,
                "rho_minus_params": math.nan,
                "rho_minus_params_ci": [math.nan] * 2,
            }
            rows.append(row)
            x, y = _finite_scores(score[keep]), acc_all[keep]
            if keep.sum() < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
                continue
            key = keep.tobytes()
            if key not in cache:
                cache[key] = _Resamples(int(keep.sum()), n_resamples, seed)
            res = cache[key]
            res.ranks(p, x)
            res.ranks(col, y)
            rho_b = res.rho(p, col)
            rho = float(sstats.spearmanr(x, y).statistic)
            tau_b = np.array([sstats.kendalltau(x[i], y[i]).statistic for i in res.idx[:TAU_RESAMPLES]])
            row.update(
                {
                    "rho": rho,
                    "rho_ci": _ci(rho_b),
                    "tau": float(sstats.kendalltau(x, y).statistic),
                    "tau_ci": _ci(tau_b),
                    "top10_precision": top_precision(x, y),
                }
            )
            if base is None or p == BASELINE:
                if p == BASELINE:
                    row.update({"rho_minus_params": 0.0, "rho_minus_params_ci": [0.0, 0.0]})
                continue
            z = base[keep]
            if np.ptp(z) == 0:
                continue
            res.ranks(BASELINE, z)
            r_xz, r_yz = float(sstats.spearmanr(x, z).statistic), float(sstats.spearmanr(y, z).statistic)
            ryz_b = res.rho(col, BASELINE)
            row.update(
                {
                    "partial_rho": float(_partial(rho, r_xz, r_yz)),
                    "partial_rho_ci": _ci(_partial(rho_b, res.rho(p, BASELINE), ryz_b)),
                    "rho_minus_params": rho - r_yz,
                    "rho_minus_params_ci": _ci(rho_b - ryz_b),
                }
            )
    return pd.DataFrame(rows)


def _fmt(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _with_ci(row, key: str) -> str:
    ci = row.get(f"{key}_ci")
    if not isinstance(ci, (list, tuple)) or not all(isinstance(c, float) and math.isfinite(c) for c in ci):
        return _fmt(row.get(key))
    return f"{_fmt(row.get(key))} [{_fmt(ci[0])}, {_fmt(ci[1])}]"


def verdicts(corr: pd.DataFrame) -> dict[str, str]:
    """Returns, per accuracy column, one plain sentence: the best proxy, the best rank measure and whether any
    rank measure beats #params (ρ − ρ(#params) CI above 0)."""
    out = {}
    for col, group in corr.groupby("column", sort=False):
        g = group.dropna(subset=["rho"])
        if g.empty:
            out[col] = "no proxy has a correlation (too few architectures with accuracies)"
            continue
        best = g.loc[g["rho"].idxmax()]
        ranks = g[g["proxy"].str.startswith("rank.")]
        base = g[g["proxy"] == BASELINE]
        text = f"best proxy {best['proxy']} (rho {_with_ci(best, 'rho')})"
        if not base.empty:
            text += f"; #params rho {_with_ci(base.iloc[0], 'rho')}"
        if not ranks.empty:
            br = ranks.loc[ranks["rho"].idxmax()]
            text += f"; best rank measure {br['proxy']} (rho {_with_ci(br, 'rho')})"
            if "rho_minus_params_ci" in ranks:
                beats = [
                    r["proxy"]
                    for _, r in ranks.iterrows()
                    if isinstance(r["rho_minus_params_ci"], list)
                    and r["rho_minus_params_ci"][0] > 0
                    and r["proxy"] != BASELINE
                ]
                text += (
                    f": {len(beats)} rank measure(s) beat #params (rho difference CI above 0), "
                    f"e.g. {', '.join(beats[:3])}"
                    if beats
                    else ": no rank measure beats #params"
                )
        out[col] = text
    return out


COMBINATION_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(sstats.spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else math.nan


def combinations(
    table: pd.DataFrame,
    proxies: list[str],
    columns=ACCURACY_COLUMNS,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.RNG_SEED,
) -> list[dict]:
    """Returns, per accuracy column, #params combined with one rank measure, fitted on one half and scored on
    the other (AZ-NAS-style rank aggregation: rank(#params) + w · rank(measure)).

    The architectures with scores and accuracies are split in two halves at random (`seed`); on the *fit* half
    the measure and w ∈ COMBINATION_WEIGHTS with the highest Spearman rho are chosen; on the *test* half the
    rho of the combination and of #params alone are reported, each with its bootstrap CI, and their paired
    difference with its CI.
    """
    ranks = [p for p in proxies if p.startswith("rank.")]
    if BASELINE not in table or not ranks:
        return []
    out = []
    for col in columns:
        keep = table[col].notna() & table[BASELINE].notna() & table[ranks].notna().all(axis=1)
        t = table[keep]
        if len(t) < 8:
            continue
        order = np.random.default_rng(seed).permutation(len(t))
        fit, test = t.iloc[order[: len(t) // 2]], t.iloc[order[len(t) // 2 :]]

        def combined(part, measure, w):
            return _ranks(part[BASELINE].to_numpy(float)) + w * _ranks(_finite_scores(part[measure].to_numpy(float)))

        candidates = [
            (_spearman(combined(fit, m, w), fit[col].to_numpy(float)), m, w) for m in ranks for w in COMBINATION_WEIGHTS
        ]
        candidates = [c for c in candidates if math.isfinite(c[0])]
        if not candidates:
            continue
        fit_rho, measure, weight = max(candidates)
        x, z, y = combined(test, measure, weight), test[BASELINE].to_numpy(float), test[col].to_numpy(float)
        res = _Resamples(len(test), n_resamples, seed)
        rx, rz, ry = res.ranks("x", x), res.ranks("z", z), res.ranks("y", y)
        rho_b, base_b = _pearson_rows(rx, ry), _pearson_rows(rz, ry)
        out.append(
            {
                "column": col,
                "measure": measure,
                "weight": weight,
                "n_fit": len(fit),
                "n_test": len(test),
                "fit_rho": fit_rho,
                "rho": _spearman(x, y),
                "rho_ci": _ci(rho_b),
                "params_rho": _spearman(z, y),
                "params_rho_ci": _ci(base_b),
                "difference": _spearman(x, y) - _spearman(z, y),
                "difference_ci": _ci(rho_b - base_b),
            }
        )
    return out


def analyze(table: pd.DataFrame, meta: dict, n_resamples: int = stats.N_RESAMPLES) -> dict:
    """Returns the report as a dict (JSON-ready with `store.json_ready`): settings, correlations, verdicts."""
    proxies = [p for p in meta.get("proxies", []) if p in table]
    if not proxies:
        raise StudyError("the proxy table has no proxy columns; rerun `rankstudy proxies`")
    corr = correlations(table, proxies, n_resamples=n_resamples)
    with_acc = int(table[list(ACCURACY_COLUMNS)].notna().all(axis=1).sum())
    return {
        "settings": {
            "n_scored": len(table),
            "n_with_accuracy": with_acc,
            "n_planned": meta.get("n_planned"),
            "partial": bool(meta.get("partial", False)),
            "inputs": meta.get("inputs"),
            "bench": meta.get("bench"),
            "bn_modes": meta.get("bn_modes"),
            "confidence": stats.CONFIDENCE,
            "n_resamples": n_resamples,
            "tau_resamples": min(TAU_RESAMPLES, n_resamples),
            "bootstrap_seed": stats.RNG_SEED,
            "top_fraction": TOP_FRACTION,
            "seconds_total_mean": _mean(table, "seconds.pass.total"),
        },
        "verdicts": verdicts(corr),
        "correlations": corr.to_dict("records"),
        "combinations": combinations(table, proxies, n_resamples=n_resamples),
    }


def _mean(table: pd.DataFrame, col: str) -> float:
    return float(table[col].mean()) if col in table and len(table) else math.nan


def report_markdown(report: dict) -> str:
    s = report["settings"]
    inputs = s.get("inputs") or {}
    lines = ["# Zero-cost proxies on NAS-Bench-201", ""]
    if s["partial"]:
        lines += [f"**Partial**: {s['n_scored']} of {s['n_planned']} planned architectures scored so far.", ""]
    lines += [
        f"{s['n_scored']} architectures scored, {s['n_with_accuracy']} with accuracies ({s['bench']}). "
        f"Inputs: {inputs.get('name')} (batch {inputs.get('batch')}, seed {inputs.get('seed')}, labels "
        f"{inputs.get('labels')}). Spearman rho and Kendall tau with percentile-bootstrap "
        f"{int(100 * s['confidence'])}% CIs over architectures ({s['n_resamples']} resamples; tau "
        f"{s['tau_resamples']}); top-10% precision; rho given #params (partial); mean seconds per "
        f"architecture of the proxy alone (whole set: {_fmt(s['seconds_total_mean'], 2)} s).",
        "",
    ]
    lines += ["## Verdicts", ""] + [f"- **{col}**: {text}" for col, text in report["verdicts"].items()] + [""]
    if report.get("combinations"):
        lines += [
            "## #params + one rank measure (fitted on one half, scored on the other)",
            "",
            "| column | measure | w | n fit / test | rho (test) [95% CI] | #params rho (test) | difference |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in report["combinations"]:
            lines.append(
                f"| {c['column']} | {c['measure']} | {c['weight']:g} | {c['n_fit']} / {c['n_test']} | "
                f"{_with_ci(c, 'rho')} | {_with_ci(c, 'params_rho')} | {_with_ci(c, 'difference')} |"
            )
        lines.append("")
    corr = pd.DataFrame(report["correlations"])
    for col in ACCURACY_COLUMNS:
        g = corr[corr["column"] == col]
        if g.empty:
            continue
        g = g.sort_values("rho", ascending=False, na_position="last")
        lines += [
            f"## {col}",
            "",
            "| proxy | BN | rho [95% CI] | tau [95% CI] | top-10% | rho given #params | rho − rho(#params) | s/arch |",
            "|---|---|---|---|---|---|---|---|",
        ]
        modes = s.get("bn_modes") or {}
        for _, r in g.iterrows():
            r = r.to_dict()
            lines.append(
                f"| {r['proxy']} | {modes.get(r['proxy'], '')} | {_with_ci(r, 'rho')} | {_with_ci(r, 'tau')}"
                f" | {_fmt(r.get('top10_precision'), 2)} | {_with_ci(r, 'partial_rho')} | "
                f"{_with_ci(r, 'rho_minus_params')} | {_fmt(r.get('seconds'), 3)} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_report(table: pd.DataFrame, report: dict, out: Path) -> list[Path]:
    """Writes one figure per dataset (forest plot of rho for every proxy; scatter of the best few); returns paths."""
    import matplotlib  # noqa: PLC0415 - matplotlib loads in ~1 s; only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - as above

    corr = pd.DataFrame(report["correlations"])
    paths = []
    for dataset in DATASETS:
        g200 = corr[(corr["dataset"] == dataset) & (corr["epochs"] == EPOCHS[0])]
        if g200.empty or "rho" not in g200 or g200["rho"].notna().sum() == 0:
            continue
        order = g200.sort_values("rho", na_position="first")["proxy"].tolist()
        best = [p for p in reversed(order) if np.isfinite(g200.set_index("proxy").loc[p, "rho"])][:N_SCATTER]
        fig = plt.figure(figsize=(13, max(5.0, 0.17 * len(order) + 1.5)))
        grid = fig.add_gridspec(len(best), 2, width_ratios=[1.3, 1])
        ax = fig.add_subplot(grid[:, 0])
        for k, epochs in enumerate(EPOCHS):
            g = corr[(corr["dataset"] == dataset) & (corr["epochs"] == epochs)].set_index("proxy").reindex(order)
            y = np.arange(len(order)) + (0.2 if k else -0.2)
            lo = np.array([c[0] if isinstance(c, list) else np.nan for c in g["rho_ci"]], dtype=float)
            hi = np.array([c[1] if isinstance(c, list) else np.nan for c in g["rho_ci"]], dtype=float)
            rho = g["rho"].to_numpy(dtype=float)
            # a percentile interval need not contain the estimate (small samples): bars clipped at it
            err = [np.clip(rho - lo, 0, None), np.clip(hi - rho, 0, None)]
            ax.errorbar(rho, y, xerr=err, fmt="o", ms=3, capsize=2, label=f"{epochs} epochs")
        ax.set_yticks(np.arange(len(order)), order, fontsize=6)
        ax.axvline(0, color="grey", lw=0.5)
        base = g200[g200["proxy"] == BASELINE]
        if not base.empty:
            ax.axvline(float(base["rho"].iloc[0]), color="C3", lw=0.8, ls="--", label="#params (200 ep)")
        ax.set_xlabel("Spearman rho with test accuracy (95% bootstrap CI)")
        ax.set_title(f"{dataset}: every proxy")
        ax.legend(fontsize=7, loc="lower right")
        col = f"{dataset}_{EPOCHS[0]}ep"
        for i, p in enumerate(best):
            a = fig.add_subplot(grid[i, 1])
            keep = table[col].notna()
            a.scatter(table.loc[keep, p], table.loc[keep, col], s=3, alpha=0.4)
            a.set_title(f"{p} (rho {_fmt(float(g200.set_index('proxy').loc[p, 'rho']), 2)})", fontsize=8)
            a.set_ylabel(f"{col} (%)", fontsize=7)
            a.tick_params(labelsize=6)
        fig.tight_layout()
        path = out / f"proxies-{dataset}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(table: pd.DataFrame, meta: dict, out: str | Path, n_resamples: int = stats.N_RESAMPLES) -> dict:
    """Writes report.json, REPORT.md and the figures into `out`; returns the report."""
    out = store.prepare_out_dir(out)
    report = analyze(table, meta, n_resamples=n_resamples)
    report["figures"] = [p.name for p in plot_report(table, report, out)]
    store.write_json(out / "report.json", report)
    atomic_write_text(out / "REPORT.md", report_markdown(report) + "\n")
    return report
