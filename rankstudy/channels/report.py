"""Analysis of a channel study (`rankstudy channels`): does a linear width schedule beat a stage-wise one?

The paper (§4, CVPR Table 3) groups ~200 searched models into top / middle / bottom 10% and finds linearly
increasing widths on top and stage-wise ones in the middle. This module measures, on the table of runs:

- accuracy per family and per slope tercile, each a mean over configs with a percentile-bootstrap 95% CI
  (`rankstudy.stats`; stored, as every estimate, as {value, ci: [low, high], n}); between-config comparisons
  use the study's main seeds only, so every config is measured the same way;
- the seed noise: the pooled standard deviation σ of test accuracy over the seeds of the configs run with
  several seeds (the spread one run of one config has), with its degrees of freedom Σ(seeds − 1);
- linear − stage-wise: the difference of family means with its bootstrap CI over configs. "Linear wins" needs
  the CI above 0. Separately, the difference is *beyond the seed noise* when it is larger than seed noise
  alone would make a difference of two family means: |d| > t(0.975, df) · σ · √((1/n_a + 1/n_b) / k), for
  n_a, n_b configs of k main seeds each (the standard error of the difference of family means that seed
  noise alone gives, from the replicate configs' σ and df). The bootstrap CI holds both the seed noise and
  the spread between schedules of one family; a gap beyond the seed noise that the CI does not resolve is
  limited by that spread, which more seeds would not narrow;
- the top / middle / bottom 10% of configs by accuracy (the paper's Table 3): mean accuracy, families, best
  and worst schedules;
- Spearman's ρ (paired-bootstrap 95% CI) between each init-time rank proxy and trained accuracy, and between
  the schedules' straightness (R² of a line through the widths), slope and params and accuracy;
- the partial Spearman ρ of slope and accuracy given params: at one MACs budget a steeper schedule has more
  parameters, so slope's own ρ carries params' (its paired-bootstrap CI resamples configs; n = configs).
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
    """Returns the pooled standard deviation of top-1 over seeds, from every config run with ≥ 2 seeds: the
    within-config variances weighted by their degrees of freedom (seeds − 1), and those df summed."""
    groups = [g["top1"].to_numpy() for _, g in table.groupby("config_id") if len(g) >= 2]
    if not groups:
        return {"n_configs": 0, "pooled_sd": math.nan, "df": 0, "max_range": math.nan}
    variances = [np.var(g, ddof=1) for g in groups]
    dfs = [len(g) - 1 for g in groups]
    return {
        "n_configs": len(groups),
        "seeds_per_config": int(np.median([len(g) for g in groups])),
        "pooled_sd": float(math.sqrt(np.average(variances, weights=dfs))),
        "df": int(sum(dfs)),
        "max_range": float(max(np.ptp(g) for g in groups)),
    }


def seed_noise_of_difference(noise: dict, n_a: int, n_b: int, seeds_per_config: int = 1) -> dict:
    """Returns the seed noise of a difference of two family means (n_a and n_b configs, each the mean of
    `seeds_per_config` seeds): its standard error σ·√((1/n_a + 1/n_b)/k), the df of σ and the 95% half-width
    t(0.975, df)·se; NaN where σ is not measured."""
    sd, df = noise["pooled_sd"], int(noise["df"])
    if math.isnan(sd) or df < 1 or n_a < 1 or n_b < 1:
        return {"se": math.nan, "df": df, "half_width": math.nan}
    se = sd * math.sqrt((1 / n_a + 1 / n_b) / seeds_per_config)
    return {"se": se, "df": df, "half_width": float(sstats.t.ppf((1 + stats.CONFIDENCE) / 2, df)) * se}


def compare(configs: pd.DataFrame, a: str, b: str, noise: dict, seeds_per_config: int = 1) -> dict:
    """Returns mean top-1 of family a − family b (bootstrap CI over configs), its outcome, the seed noise of
    such a difference (`seed_noise_of_difference`) and whether the difference is beyond it."""
    xa, xb = configs.loc[configs.family == a, "top1"], configs.loc[configs.family == b, "top1"]
    est = stats.diff_ci(xa, xb)
    if est.n < 2 or math.isnan(est.low):
        outcome = "not enough configs"
    elif est.low > 0:
        outcome = f"{a} higher"
    elif est.high < 0:
        outcome = f"{b} higher"
    else:
        outcome = "no difference resolved"
    n_a, n_b = int(xa.notna().sum()), int(xb.notna().sum())
    noise_of_diff = seed_noise_of_difference(noise, n_a, n_b, seeds_per_config)
    half = noise_of_diff["half_width"]
    beyond = bool(not math.isnan(half) and abs(est.mean) > half)
    return {
        "a": a,
        "b": b,
        **est.to_dict(),
        "n_a": n_a,
        "n_b": n_b,
        "outcome": outcome,
        "seed_noise": noise_of_diff,
        "beyond_seed_noise": beyond,
    }


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


def _pearson(ra: np.ndarray, rb: np.ndarray, axis: int = -1) -> np.ndarray:
    """Returns Pearson's r along `axis`; 0 where either side is constant."""
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=axis) * (rb * rb).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=axis) / denom
    return np.where(denom > 0, r, 0.0)


def _spearman(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Returns Spearman's ρ along `axis` (Pearson's r of average ranks); 0 where a resample is all ties."""
    return _pearson(sstats.rankdata(a, axis=axis), sstats.rankdata(b, axis=axis), axis)


def _partial_spearman(a: np.ndarray, b: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
    """Returns the partial Spearman ρ of a and b given c along `axis`: (ρ_ab − ρ_ac·ρ_bc) / √((1−ρ_ac²)(1−ρ_bc²)),
    the correlation of a's and b's ranks once the linear effect of c's ranks is removed from both; 0 where
    c's ranks determine a's or b's (or a resample is all ties)."""
    ra, rb, rc = (sstats.rankdata(v, axis=axis) for v in (a, b, c))
    r_ab, r_ac, r_bc = _pearson(ra, rb, axis), _pearson(ra, rc, axis), _pearson(rb, rc, axis)
    denom = np.sqrt(np.clip((1 - r_ac**2) * (1 - r_bc**2), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (r_ab - r_ac * r_bc) / denom
    return np.where(denom > 1e-12, np.clip(r, -1.0, 1.0), 0.0)


def _paired_bootstrap(value: float, samples: tuple, statistic, seed: int) -> dict:
    """Returns `value` with the percentile-bootstrap 95% CI of `statistic` over whole rows of `samples`."""
    res = sstats.bootstrap(
        samples,
        statistic,
        paired=True,
        vectorized=True,
        n_resamples=N_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return {**stats.Estimate(value, float(ci.low), float(ci.high), int(len(samples[0]))).to_dict(), "note": ""}


def spearman_ci(x, y, seed: int = stats.RNG_SEED) -> dict:
    """Returns Spearman's ρ of paired values with a percentile-bootstrap 95% CI (resampling pairs), as an estimate
    ({value, ci, n}, `rankstudy.stats.Estimate.to_dict`) with a note saying why ρ is undefined where it is."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        why = "fewer than 4 configs" if len(x) < 4 else "constant values: no ordering to correlate"
        return {**stats.Estimate(math.nan, math.nan, math.nan, int(len(x))).to_dict(), "note": why}
    return _paired_bootstrap(float(sstats.spearmanr(x, y).statistic), (x, y), _spearman, seed)


def partial_spearman_ci(x, y, given, seed: int = stats.RNG_SEED) -> dict:
    """Returns the partial Spearman ρ of x and y given `given` (`_partial_spearman`) with a percentile-bootstrap
    95% CI resampling whole rows (here: configs; n = their number), as an estimate ({value, ci, n}) with a note
    saying why ρ is undefined where it is."""
    x, y, z = (np.asarray(v, float) for v in (x, y, given))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[keep], y[keep], z[keep]
    if len(x) < 5 or min(np.ptp(x), np.ptp(y), np.ptp(z)) == 0:
        why = "fewer than 5 configs" if len(x) < 5 else "constant values: no ordering to correlate"
        return {**stats.Estimate(math.nan, math.nan, math.nan, int(len(x))).to_dict(), "note": why}
    if abs(float(_spearman(x, z))) > 1 - 1e-12 or abs(float(_spearman(y, z))) > 1 - 1e-12:
        why = "the given variable's ranks determine the others': nothing left to correlate"
        return {**stats.Estimate(math.nan, math.nan, math.nan, int(len(x))).to_dict(), "note": why}
    return _paired_bootstrap(float(_partial_spearman(x, y, z)), (x, y, z), _partial_spearman, seed)


def _slope_bins(configs: pd.DataFrame) -> pd.Series:
    """Returns each config's slope tercile (low / mid / high channels per block)."""
    ranks = configs["slope"].rank(method="first")
    return pd.cut(ranks, 3, labels=["low", "mid", "high"]) if len(configs) >= 3 else pd.Series("all", configs.index)


def _verdict(linear_vs_stage: dict, top: dict, noise: dict) -> tuple[str, str]:
    outcome = linear_vs_stage["outcome"]
    d, (lo, hi) = linear_vs_stage["value"], linear_vs_stage["ci"]
    where = f"linear − stage-wise = {d:+.2f} points (95% CI {lo:+.2f} to {hi:+.2f})"
    sd, half = noise["pooled_sd"], linear_vs_stage["seed_noise"]["half_width"]
    if math.isnan(half):
        noise_text = "seed noise not measured"
    else:
        noise_text = (
            f"seed noise alone gives ±{half:.2f} on this difference (95%; σ = {sd:.2f} per run, "
            f"{noise['df']} df, {linear_vs_stage['n_a']} and {linear_vs_stage['n_b']} configs)"
        )
        if not linear_vs_stage["beyond_seed_noise"]:
            noise_text += ", and the difference is within it"
        elif outcome == "no difference resolved":
            noise_text += (
                ", and the difference is beyond it: the spread between schedules, not the seeds, leaves it open"
            )
        else:
            noise_text += ", and the difference is beyond it"
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
        compare(configs, a, b, noise, main_seeds)
        for a, b in (("linear", "stagewise"), ("piecewise", "stagewise"), ("linear", "piecewise"))
    ]
    tier_rows = tiers(configs)
    proxies = {p: spearman_ci(configs[p], configs.top1) for p in PROXIES}
    proxies["linearity_r2"] = spearman_ci(configs.linearity_r2, configs.top1)
    proxies["slope"] = spearman_ci(configs.slope, configs.top1)
    proxies["params"] = spearman_ci(configs.params, configs.top1)
    partial = {
        "slope": {
            **partial_spearman_ci(configs.slope, configs.top1, configs.params),
            "given": "params",
            "rho_with_given": spearman_ci(configs.slope, configs.params),
        }
    }
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
        "partial_spearman_vs_top1": partial,
        "verdict_label": label,
        "verdict": text,
    }


# --- rendering --------------------------------------------------------------------------------------------------


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _f(x, digits: int = 2) -> str:
    return "–" if _missing(x) else f"{x:.{digits}f}"


def _pm(x, digits: int = 2) -> str:
    return "–" if _missing(x) else f"±{x:.{digits}f}"


def _ci(estimate: dict, digits: int = 2) -> str:
    low, high = estimate["ci"]
    return f"{_f(low, digits)} – {_f(high, digits)}"


def _partial_sentence(name: str, r: dict) -> str:
    """Returns one sentence saying what the partial ρ's CI allows, and no more."""
    low, high = r["ci"]
    given = r["given"]
    head = f"{name.capitalize()} given {given}"
    if _missing(low) or _missing(high):
        return f"{head}: not estimable ({r['note']})."
    span = f"partial ρ = {r['value']:+.2f} (95% CI {low:+.2f} to {high:+.2f}, {r['n']} configs)"
    if not (low > 0 or high < 0):
        return f"{head}: {span}; the CI includes 0: no association of {name} with accuracy beyond {given} is resolved."
    way = "higher" if low > 0 else "lower"
    text = f"{head}: {span}; the CI excludes 0: at a given {given} rank, a larger {name} goes with {way} accuracy"
    rho_given = r["rho_with_given"]["value"]
    if not _missing(rho_given) and abs(rho_given) > 0.9:
        text += (
            f". With ρ({name}, {given}) = {rho_given:.2f} this rests on the small part of {name}'s ranking that "
            f"{given} does not carry, and on the adjustment being linear in ranks"
        )
    return text + "."


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
        f"({n['n_configs']} configs, {n['df']} df; largest range {_f(n['max_range'])}).",
        "",
        "## Family differences (mean over configs, 95% bootstrap CI)",
        "",
        "| comparison | difference | CI | outcome | seed noise alone (95%) | beyond seed noise |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["comparisons"]:
        lines.append(
            f"| {r['a']} − {r['b']} | {_f(r['value'])} | {_ci(r)} | {r['outcome']} | "
            f"{_pm(r['seed_noise']['half_width'])} | {'yes' if r['beyond_seed_noise'] else 'no'} |"
        )
    lines += [
        "",
        "The bootstrap CI resamples configs, so it holds the seed noise and the spread between the schedules of "
        "a family. *Seed noise alone* is the 95% half-width that seed noise by itself gives a difference of "
        "two family means: t(0.975, df) · σ · √((1/n_a + 1/n_b) / seeds per config), from the pooled σ and its "
        "df above; *beyond seed noise* means |difference| is larger than that.",
    ]
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
        "## Slope given params (partial Spearman ρ over configs, 95% paired-bootstrap CI)",
        "",
        "At one MACs budget a steeper schedule puts more of its channels in the late, low-resolution blocks, "
        "where a channel costs fewer MACs and more parameters: slope and params move together, and slope's ρ "
        "above carries part of params'. The partial ρ correlates the ranks of slope and top-1 after removing "
        "the linear effect of the params rank from both; the CI resamples configs (n = configs, each measured "
        "at the main seeds).",
        "",
        "| predictor | given | partial ρ | CI | configs | ρ(predictor, given) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    partial = report["partial_spearman_vs_top1"]
    for name, r in partial.items():
        g = r["rho_with_given"]
        lines.append(
            f"| {name} | {r['given']} | {_f(r['value'], 3)} | {_ci(r, 3)} | {r['n']} | "
            f"{_f(g['value'], 3)} ({_ci(g, 3)}) | {r['note']} |"
        )
    lines += [""]
    lines += [_partial_sentence(name, r) for name, r in partial.items()]
    lines += [""]
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
