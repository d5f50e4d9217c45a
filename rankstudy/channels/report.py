"""Analysis of a channel study (`rankstudy channels`): does a linear width schedule beat a stage-wise one?

The paper (§4, CVPR Table 3) groups ~200 searched models into top / middle / bottom 10% and finds linearly
increasing widths on top and stage-wise ones in the middle. This module measures, on the table of runs:

- accuracy per family and per slope tercile, each a mean over configs with a percentile-bootstrap 95% CI
  (`rankstudy.stats`; stored, as every estimate, as {value, ci: [low, high], n}); between-config comparisons
  use the study's main seeds only, so every config is measured the same way;
- the seed noise: the pooled standard deviation of test accuracy over the seeds of the configs run with
  several seeds (the spread one run of one config has);
- linear − stage-wise: the difference of family means with its bootstrap CI. "Linear wins" needs the CI
  above 0; it is called *beyond the seed noise* when, in addition, the difference exceeds the seed noise of
  a single run (a difference smaller than that would not show when comparing two trained models);
- the top / middle / bottom 10% of configs by accuracy (the paper's Table 3): mean accuracy, families, best
  and worst schedules;
- Spearman's ρ (paired-bootstrap 95% CI) between each init-time rank proxy and trained accuracy, and between
  the schedules' straightness (R² of a line through the widths) and accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sstats

from rexnet.io import atomic_write_text

from .. import stats, store
from .config import FAMILIES, PROXIES
from .plots import plot_channel_study

TIER_FRACTION = 0.10
N_RESAMPLES = 1999


def config_table(table: pd.DataFrame, main_seeds: int) -> pd.DataFrame:
    """Returns one row per config: its schedule columns and its mean over the main seeds (0..main_seeds-1)."""
    runs = table[table["seed"] < main_seeds]
    first = runs.groupby("config_id", sort=True).first()
    means = runs.groupby("config_id", sort=True)[["top1", *PROXIES]].mean()
    out = first.drop(columns=["seed", "top1", *PROXIES]).join(means).reset_index()
    return out


def seed_noise(table: pd.DataFrame) -> dict:
    """Returns the pooled standard deviation of top-1 over seeds, from every config run with ≥ 2 seeds."""
    groups = [g["top1"].to_numpy() for _, g in table.groupby("config_id") if len(g) >= 2]
    if not groups:
        return {"n_configs": 0, "pooled_sd": math.nan, "max_range": math.nan}
    variances = [np.var(g, ddof=1) for g in groups]
    return {
        "n_configs": len(groups),
        "seeds_per_config": int(np.median([len(g) for g in groups])),
        "pooled_sd": float(math.sqrt(np.mean(variances))),
        "max_range": float(max(np.ptp(g) for g in groups)),
    }


def compare(configs: pd.DataFrame, a: str, b: str, noise_sd: float) -> dict:
    """Returns mean top-1 of family a − family b (bootstrap CI over configs) and how it stands against noise."""
    est = stats.diff_ci(configs.loc[configs.family == a, "top1"], configs.loc[configs.family == b, "top1"])
    if est.n < 2 or math.isnan(est.low):
        outcome = "not enough configs"
    elif est.low > 0:
        outcome = f"{a} higher"
    elif est.high < 0:
        outcome = f"{b} higher"
    else:
        outcome = "no difference resolved"
    beyond = bool(outcome.endswith("higher") and not math.isnan(noise_sd) and abs(est.mean) > noise_sd)
    return {"a": a, "b": b, **est.to_dict(), "outcome": outcome, "beyond_seed_noise": beyond}


def tiers(configs: pd.DataFrame, fraction: float = TIER_FRACTION) -> list[dict]:
    """Returns the top, middle and bottom `fraction` of configs by top-1: mean accuracy, families, extremes."""
    ranked = configs.sort_values(["top1", "config_id"], ascending=[False, True]).reset_index(drop=True)
    k = max(1, int(round(fraction * len(ranked))))
    middle = (len(ranked) - k) // 2
    out = []
    for name, part in (
        ("top", ranked.iloc[:k]),
        ("middle", ranked.iloc[middle : middle + k]),
        ("bottom", ranked.iloc[len(ranked) - k :]),
    ):
        best, worst = part.iloc[0], part.iloc[-1]
        out.append(
            {
                "tier": name,
                "n": len(part),
                "mean_top1": float(part.top1.mean()),
                "families": {f: int((part.family == f).sum()) for f in FAMILIES},
                "mean_linearity_r2": float(part.linearity_r2.mean()),
                "mean_slope": float(part.slope.mean()),
                "best": {"widths": best.widths, "family": best.family, "top1": float(best.top1)},
                "worst": {"widths": worst.widths, "family": worst.family, "top1": float(worst.top1)},
            }
        )
    return out


def _spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Returns Spearman's ρ along `axis` (Pearson's r of average ranks); 0 where a resample is all ties."""
    ra = sstats.rankdata(a, axis=axis)
    rb = sstats.rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=axis) * (rb * rb).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=axis) / denom
    return np.where(denom > 0, r, 0.0)


def spearman_ci(x, y, seed: int = stats.RNG_SEED) -> dict:
    """Returns Spearman's ρ of paired values with a percentile-bootstrap 95% CI (resampling pairs), as an estimate
    ({value, ci, n}, `rankstudy.stats.Estimate.to_dict`) with a note saying why ρ is undefined where it is."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        why = "fewer than 4 configs" if len(x) < 4 else "constant values: no ordering to correlate"
        return {**stats.Estimate(math.nan, math.nan, math.nan, int(len(x))).to_dict(), "note": why}
    rho = float(sstats.spearmanr(x, y).statistic)
    res = sstats.bootstrap(
        (x, y),
        _spearman,
        paired=True,
        vectorized=True,
        n_resamples=N_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return {**stats.Estimate(rho, float(ci.low), float(ci.high), int(len(x))).to_dict(), "note": ""}


def _slope_bins(configs: pd.DataFrame) -> pd.Series:
    """Returns each config's slope tercile (low / mid / high channels per block)."""
    ranks = configs["slope"].rank(method="first")
    return pd.cut(ranks, 3, labels=["low", "mid", "high"]) if len(configs) >= 3 else pd.Series("all", configs.index)


def _verdict(linear_vs_stage: dict, top: dict, noise: dict) -> tuple[str, str]:
    outcome = linear_vs_stage["outcome"]
    d, (lo, hi) = linear_vs_stage["value"], linear_vs_stage["ci"]
    where = f"linear − stage-wise = {d:+.2f} points (95% CI {lo:+.2f} to {hi:+.2f})"
    sd = noise["pooled_sd"]
    noise_text = f"seed noise of one run σ = {sd:.2f}" if not math.isnan(sd) else "seed noise not measured"
    fam = top["families"]
    top_text = (
        f"top 10%: {fam.get('linear', 0)} linear, {fam.get('piecewise', 0)} piecewise, "
        f"{fam.get('stagewise', 0)} stage-wise"
    )
    if outcome == "linear higher":
        label = "reproduced" if linear_vs_stage["beyond_seed_noise"] else "reproduced, within seed noise"
    elif outcome == "stagewise higher":
        label = "contradicted"
    elif outcome == "not enough configs":
        label = "not tested"
    else:
        label = "not resolved"
    return label, f"Linear beats stage-wise: {label}. {where}; {noise_text}; {top_text}."


def analyze(table: pd.DataFrame, meta: dict | None = None) -> dict:
    """Returns the report as a JSON-ready dict (see the module docstring)."""
    cfg = (meta or {}).get("config", {})
    main_seeds = int(cfg.get("seeds", 1))
    configs = config_table(table, main_seeds)
    noise = seed_noise(table)
    configs = configs.assign(slope_bin=_slope_bins(configs))
    by_family = stats.group_estimates(configs, ["family"], "top1")
    by_slope = stats.group_estimates(configs, ["slope_bin"], "top1")
    by_family_slope = stats.group_estimates(configs, ["family", "slope_bin"], "top1")
    comparisons = [
        compare(configs, a, b, noise["pooled_sd"])
        for a, b in (("linear", "stagewise"), ("piecewise", "stagewise"), ("linear", "piecewise"))
    ]
    tier_rows = tiers(configs)
    proxies = {p: spearman_ci(configs[p], configs.top1) for p in PROXIES}
    proxies["linearity_r2"] = spearman_ci(configs.linearity_r2, configs.top1)
    proxies["slope"] = spearman_ci(configs.slope, configs.top1)
    label, text = _verdict(comparisons[0], tier_rows[0], noise)
    return {
        "settings": {
            "main_seeds": main_seeds,
            "tier_fraction": TIER_FRACTION,
            "confidence": stats.CONFIDENCE,
            "bootstrap_resamples": {"means": stats.N_RESAMPLES, "spearman": N_RESAMPLES},
            "bootstrap_seed": stats.RNG_SEED,
        },
        "study": {
            "n_configs": int(len(configs)),
            "n_runs": int(len(table)),
            "config": cfg,
            "command": (meta or {}).get("command"),
            "versions": (meta or {}).get("versions"),
        },
        "by_family": by_family,
        "by_slope": [{**r, "slope_bin": str(r["slope_bin"])} for r in by_slope],
        "by_family_slope": [{**r, "slope_bin": str(r["slope_bin"])} for r in by_family_slope],
        "slope_bins": {
            str(b): [float(g.slope.min()), float(g.slope.max())] for b, g in configs.groupby("slope_bin", observed=True)
        },
        "seed_noise": noise,
        "comparisons": comparisons,
        "tiers": tier_rows,
        "spearman_vs_top1": proxies,
        "verdict_label": label,
        "verdict": text,
    }


# --- rendering --------------------------------------------------------------------------------------------------


def _f(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(estimate: dict, digits: int = 2) -> str:
    low, high = estimate["ci"]
    return f"{_f(low, digits)} – {_f(high, digits)}"


def report_markdown(report: dict) -> str:
    """Returns the report as Markdown: settings, tables, verdict."""
    s = report["study"]
    c = s["config"] or {}
    lines = [
        "# Channel-configuration study",
        "",
        f"{s['n_configs']} schedules, {s['n_runs']} runs; budget {c.get('macs', '?'):,} MACs, "
        f"{c.get('blocks', '?')} blocks, {c.get('data', '?')} ({c.get('img_size', '?')}px), "
        f"{c.get('epochs', '?')} epoch(s) on {c.get('train_limit') or 'all'} training images, full test set; "
        f"seeds per config {c.get('seeds', '?')}, {c.get('noise_configs', '?')} configs × "
        f"{c.get('noise_seeds', '?')} seeds for the seed noise. Accuracy = test top-1 (%).",
        "",
        f"**Verdict.** {report['verdict']}",
        "",
        "## Accuracy by family (mean over configs, 95% bootstrap CI)",
        "",
        "| family | configs | top-1 | CI |",
        "|---|---|---|---|",
    ]
    for r in report["by_family"]:
        lines.append(f"| {r['family']} | {r['n']} | {_f(r['value'])} | {_ci(r)} |")
    lines += [
        "",
        "## Accuracy by slope (terciles of channels per block)",
        "",
        "| slope | range | configs | top-1 | CI |",
        "|---|---|---|---|---|",
    ]
    for r in report["by_slope"]:
        lo, hi = report["slope_bins"].get(r["slope_bin"], [math.nan, math.nan])
        lines.append(f"| {r['slope_bin']} | {_f(lo, 1)} – {_f(hi, 1)} | {r['n']} | {_f(r['value'])} | {_ci(r)} |")
    n = report["seed_noise"]
    lines += [
        "",
        "## Seed noise",
        "",
        f"Pooled standard deviation of top-1 over seeds: **{_f(n['pooled_sd'])}** points "
        f"({n['n_configs']} configs; largest range {_f(n['max_range'])}).",
        "",
        "## Family differences (mean over configs, 95% bootstrap CI)",
        "",
        "| comparison | difference | CI | outcome | beyond seed noise |",
        "|---|---|---|---|---|",
    ]
    for r in report["comparisons"]:
        lines.append(
            f"| {r['a']} − {r['b']} | {_f(r['value'])} | {_ci(r)} | {r['outcome']} | "
            f"{'yes' if r['beyond_seed_noise'] else 'no'} |"
        )
    lines += [
        "",
        "## Top / middle / bottom 10% (the paper's Table 3)",
        "",
        "| tier | configs | mean top-1 | linear / piecewise / stage-wise | mean R² of a line | best (top-1) |",
        "|---|---|---|---|---|---|",
    ]
    for t in report["tiers"]:
        fam = t["families"]
        lines.append(
            f"| {t['tier']} | {t['n']} | {_f(t['mean_top1'])} | {fam['linear']} / {fam['piecewise']} / "
            f"{fam['stagewise']} | {_f(t['mean_linearity_r2'], 3)} | {t['best']['widths']} "
            f"({t['best']['family']}, {_f(t['best']['top1'])}) |"
        )
    worst = report["tiers"][-1]["worst"]
    lines += [
        "",
        f"Worst config: {worst['widths']} ({worst['family']}, {_f(worst['top1'])}).",
        "",
        "## What predicts accuracy (Spearman ρ over configs, 95% paired-bootstrap CI)",
        "",
        "| predictor | ρ | CI | configs | note |",
        "|---|---|---|---|---|",
    ]
    for name, r in report["spearman_vs_top1"].items():
        lines.append(f"| {name} | {_f(r['value'], 3)} | {_ci(r, 3)} | {r['n']} | {r['note']} |")
    lines += [
        "",
        "The proxies are measured on each network at initialisation, before any training "
        "(mean over blocks of the normalised rank at rtol 1e-2 and of the normalised effective rank).",
        "",
    ]
    if s.get("command"):
        lines += [f"Table: `{s['command']}`.", ""]
    return "\n".join(lines)


def write_report(table: pd.DataFrame, meta: dict | None, out: str | Path) -> dict:
    """Returns the report after writing report.json (full precision, NaN as null), REPORT.md and the figures
    (`rankstudy.channels.plots`) into `out`."""
    out = store.prepare_out_dir(out)
    report = analyze(table, meta)
    configs = config_table(table, report["settings"]["main_seeds"])
    report["figures"] = [str(p.name) for p in plot_channel_study(configs, report, out)]
    store.write_json(out / "report.json", report)
    atomic_write_text(out / "REPORT.md", report_markdown(report))
    return report
