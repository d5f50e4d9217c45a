"""Figures of a channel study: accuracy by family and slope, the tiers' schedules, proxy vs accuracy (PNG).

They draw what `rankstudy.channels.report` computed (the per-config table and the report dict), on matplotlib
Figure objects saved through its PNG canvas: no pyplot, so no backend to choose and no display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .config import FAMILIES, PROXIES, parse_widths

COLOURS = {"linear": "#0072B2", "piecewise": "#009E73", "stagewise": "#D55E00"}
DPI = 150


def _save(fig, out: Path, stem: str) -> Path:
    path = out / f"{stem}.png"
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _caption(report: dict) -> str:
    c = report["study"]["config"] or {}
    return (
        f"{report['study']['n_configs']} configs, {c.get('macs', 0) / 1e6:.3g}M MACs, {c.get('blocks')} blocks, "
        f"{c.get('data')}, {c.get('epochs')} epoch(s) on {c.get('train_limit') or 'all'} images; "
        f"test top-1 on the full test set; 95% bootstrap CIs"
    )


def plot_channel_study(configs: pd.DataFrame, report: dict, out: Path) -> list[Path]:
    """Returns the PNG files written into `out`: accuracy by family and slope, tiers' schedules, proxy vs accuracy.

    `configs` is the report's per-config table (`rankstudy.channels.report.config_table`), `report` its dict.
    """
    caption = _caption(report)
    paths = []

    # 1. Accuracy per config against slope and straightness, by family; family means with CIs.
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
    fam = {r["family"]: r for r in report["by_family"]}
    for i, f in enumerate(FAMILIES):
        part = configs[configs.family == f]
        jitter = np.linspace(-0.15, 0.15, len(part)) if len(part) > 1 else np.zeros(len(part))
        axes[0].scatter(i + jitter, part.top1, s=10, alpha=0.5, color=COLOURS[f])
        if f in fam:
            mean, (low, high) = fam[f]["value"], fam[f]["ci"]
            axes[0].errorbar(i + 0.3, mean, yerr=[[mean - low], [high - mean]], fmt="o", color="black", capsize=3)
        axes[1].scatter(part.slope, part.top1, s=12, alpha=0.7, color=COLOURS[f], label=f)
        axes[2].scatter(part.linearity_r2, part.top1, s=12, alpha=0.7, color=COLOURS[f], label=f)
    axes[0].set_xticks(range(len(FAMILIES)), FAMILIES)
    axes[0].set_ylabel("test top-1 (%)")
    axes[0].set_title("by family (mean, 95% CI)")
    axes[1].set_xlabel("slope (channels per block, least squares)")
    axes[1].set_title("by slope")
    axes[2].set_xlabel("R² of a straight line through the widths")
    axes[2].set_title("by straightness")
    axes[1].legend(fontsize=8)
    fig.suptitle(caption, fontsize=8, y=-0.04, va="top")
    paths.append(_save(fig, out, "accuracy_by_family_slope"))

    # 2. The schedules of the top / middle / bottom 10% (the paper's Table 3 groups).
    fig = Figure(figsize=(12, 3.5))
    axes = fig.subplots(1, 3, sharey=True)
    for ax, tier in zip(axes, report["tiers"]):
        ranked = configs.sort_values(["top1", "config_id"], ascending=[False, True]).reset_index(drop=True)
        k, n = tier["n"], len(ranked)
        start = {"top": 0, "middle": (n - k) // 2, "bottom": n - k}[tier["tier"]]
        for _, row in ranked.iloc[start : start + k].iterrows():
            ax.plot(parse_widths(row.widths), color=COLOURS[row.family], alpha=0.7, marker=".")
        ax.set_title(f"{tier['tier']} 10%: mean top-1 {tier['mean_top1']:.2f}")
        ax.set_xlabel("block")
    axes[0].set_ylabel("channels")
    handles = [Line2D([], [], color=COLOURS[f], label=f) for f in FAMILIES]
    axes[-1].legend(handles=handles, fontsize=8)
    fig.suptitle(caption, fontsize=8, y=-0.04, va="top")
    paths.append(_save(fig, out, "tiers_schedules"))

    # 3. Init-time rank proxies against trained accuracy.
    fig = Figure(figsize=(9, 3.8))
    axes = fig.subplots(1, len(PROXIES), sharey=True)
    for ax, proxy in zip(axes, PROXIES):
        for f in FAMILIES:
            part = configs[configs.family == f]
            ax.scatter(part[proxy], part.top1, s=12, alpha=0.7, color=COLOURS[f], label=f)
        r = report["spearman_vs_top1"][proxy]
        title = (
            f"Spearman ρ undefined: {r['note']}"
            if r.get("note")
            else f"Spearman ρ = {r['value']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"{proxy} (at init)")
    axes[0].set_ylabel("test top-1 (%)")
    axes[0].legend(fontsize=8)
    fig.suptitle(caption, fontsize=8, y=-0.04, va="top")
    paths.append(_save(fig, out, "proxy_vs_accuracy"))
    return paths
