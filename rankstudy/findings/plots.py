"""Figures of a results table: the paper's figure (mean normalised rank vs expansion ratio, a line and a 95 %
bootstrap band per nonlinearity, a panel per kind), the same in the paper's own axis (dimension ratio
d_in/d_out), the paper's Figure 1 values (read by eye) beside ours per panel, a heatmap per kind
(nonlinearity × expansion ratio), and rank vs depth for stacks. Figures of kinds with a structural bound
below d_out draw it (`rankstudy.random_nets.bounds`) as a grey line.

matplotlib only: every figure is a `matplotlib.figure.Figure` of its own (no pyplot state, no backend
chosen: saving renders through matplotlib's own PNG/PDF canvases, headless), written as PNG and PDF with a
caption line giving the study's n, seed and config. Colours are Okabe–Ito (colour-blind safe); with 14
nonlinearities each colour is shared by two, told apart by line style and marker.
"""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from .. import stats
from ..errors import StudyError
from ..store import prepare_out_dir
from .measures import (
    FACET_CHOICES,
    PAPER_NONLINEARITIES,
    PAPER_PANELS,
    Measure,
    get_measure,
    kinds_in,
    nearest_grid_ratio,
    nonlinearities_in,
    ratio_grid,
    select_rows,
)

DPI = 150
PLOT_RESAMPLES = 999
OKABE_ITO = {
    "orange": "#E69F00",
    "sky": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
    "grey": "#8C8C8C",
}
# name → (colour, line style, marker); the pairs sharing a colour differ in style and marker.
STYLES: dict[str, tuple[str, str, str]] = {
    "identity": (OKABE_ITO["black"], (0, (5, 2)), ""),
    "relu": (OKABE_ITO["orange"], "-", "o"),
    "relu6": (OKABE_ITO["orange"], "--", "s"),
    "leaky_relu": (OKABE_ITO["vermillion"], "-", "^"),
    "hardswish": (OKABE_ITO["vermillion"], "--", "v"),
    "silu": (OKABE_ITO["blue"], "-", "o"),
    "mish": (OKABE_ITO["blue"], "--", "D"),
    "gelu": (OKABE_ITO["sky"], "-", "s"),
    "softplus": (OKABE_ITO["sky"], "--", "^"),
    "elu": (OKABE_ITO["green"], "-", "D"),
    "celu": (OKABE_ITO["green"], "--", "o"),
    "selu": (OKABE_ITO["purple"], "-", "v"),
    "tanh": (OKABE_ITO["purple"], "--", "s"),
    "sigmoid": (OKABE_ITO["grey"], "-", "X"),
}
_EXTRA_MARKERS = "PhH*pd<>"
PAPER_LABELS = {"identity": "identity (linear)"}
KIND_TITLES = {
    "linear": "linear: one 1×1 conv / FC layer (Fig. 1a)",
    "conv3x3": "conv3x3: one full 3×3 conv (Fig. 1b)",
    "depthwise": "depthwise: 1×1 conv → 3×3 depthwise",
    "block": "block: IB, 3×3 depthwise (Fig. 1d)",
    "block_conv": "block_conv: IB, full 3×3 conv (Fig. 1c)",
    "stack": "stack: 2–4 blocks, gradual expansion",
}
# The paper's Figure 1 (arXiv 2007.00992 §3; CVPR 2021 version with BN), read by eye: per panel, per group
# of nonlinearities, (dimension ratio d_in/d_out, low, high) of the average rank ratio as far as it can be
# read. Panel (d) gives no readable numbers: its nonlinear curves lie "close to linear, slightly above".
PAPER_FIGURE1: dict[str, dict[str, list[tuple[float, float, float]]]] = {
    "a": {
        "relu, relu6": [(0.1, 0.85, 0.85), (0.5, 0.95, 0.97), (1.0, 0.95, 0.97)],
        "elu, softplus, hardswish, silu": [(0.1, 0.93, 0.97), (0.35, 1.0, 1.0), (1.0, 1.0, 1.0)],
        "linear": [(0.1, 0.1, 0.1), (1.0, 1.0, 1.0)],
    },
    "b": {
        "relu, relu6": [(0.1, 0.85, 0.85), (0.5, 0.95, 0.97), (1.0, 0.95, 0.97)],
        "elu, softplus, hardswish, silu": [(0.1, 0.93, 0.97), (0.35, 1.0, 1.0), (1.0, 1.0, 1.0)],
        "linear": [(0.1, 0.1, 0.1), (1.0, 1.0, 1.0)],
    },
    "c": {"nonlinear (all)": [(0.1, 0.35, 0.40), (0.35, 0.80, 0.90)]},
    "d": {"linear": [(0.1, 0.1, 0.1), (1.0, 1.0, 1.0)]},
}
PAPER_GROUPS: dict[str, tuple[str, ...]] = {
    "relu, relu6": ("relu", "relu6"),
    "elu, softplus, hardswish, silu": ("elu", "softplus", "hardswish", "silu"),
    "linear": ("identity",),
    "nonlinear (all)": tuple(n for n in PAPER_NONLINEARITIES if n != "identity"),
}
GROUP_COLOURS = {
    "relu, relu6": OKABE_ITO["orange"],
    "elu, softplus, hardswish, silu": OKABE_ITO["blue"],
    "linear": OKABE_ITO["black"],
    "nonlinear (all)": OKABE_ITO["purple"],
}


def style(name: str, index: int = 0) -> dict:
    """Returns matplotlib line keywords (color, linestyle, marker) for a nonlinearity."""
    colour, ls, marker = STYLES.get(
        name, (list(OKABE_ITO.values())[index % 7], ":", _EXTRA_MARKERS[index % len(_EXTRA_MARKERS)])
    )
    return {"color": colour, "linestyle": ls, "marker": marker}


def caption(table: pd.DataFrame, meta: dict, extra: str = "") -> str:
    """Returns the one-paragraph caption: rows drawn, study n and seed, config, and how to read the figure."""
    c = (meta or {}).get("config") or {}

    def vals(key):
        v = c.get(key)
        return "?" if v is None else ", ".join(str(x) for x in v) if isinstance(v, list) else str(v)

    n_study = (meta or {}).get("n_rows", len(table))
    parts = [
        f"n = {len(table)} networks drawn (study n = {n_study}, seed {(meta or {}).get('seed', '?')})",
        f"d_in ∈ {{{vals('d_in')}}}",
        f"expansion ratio {c.get('ratio_min', '?')}–{c.get('ratio_max', '?')} ({c.get('n_ratios', '?')} log steps)",
        f"N/d_out ∈ {{{vals('n_over_d')}}}",
        f"init ∈ {{{vals('inits')}}}",
        f"norm ∈ {{{vals('norms')}}}",
        f"inputs {{{vals('input_dists') if c.get('input_dists') else vals('input_dist')}}}",
        f"block expansion {vals('block_expansion')}",
        f"stack depths {{{vals('stack_depths')}}}",
        f"spatial {vals('spatial')}×{vals('spatial')}",
    ]
    text = "; ".join(parts) + "."
    if extra:
        text += " " + extra
    if meta and meta.get("command"):
        text += f" Table: `{meta['command']}`."
    return text


def _save(fig, out_dir: Path, stem: str, text: str) -> list[Path]:
    width_chars = int(fig.get_figwidth() * 15)
    fig.text(
        0.01,
        0.0,
        textwrap.fill(text, width_chars),
        ha="left",
        va="top",
        fontsize=7,
        color="#333333",
        transform=fig.transFigure,
    )
    paths = []
    for ext in ("png", "pdf"):
        path = out_dir / f"{stem}.{ext}"
        fig.savefig(
            path,
            dpi=DPI,
            bbox_inches="tight",
            pad_inches=0.15,
            metadata=None if ext == "png" else {"Creator": "rankstudy"},
        )
        paths.append(path)
    return paths


def _levels(table: pd.DataFrame, facet: str | None) -> list:
    if facet is None:
        return [None]
    if facet not in FACET_CHOICES:
        raise StudyError(f"unknown facet {facet!r}; choose from {', '.join(FACET_CHOICES)}")
    return sorted(table[facet].unique())


def _facet_rows(table: pd.DataFrame, facet: str | None, level) -> pd.DataFrame:
    return table if facet is None else table[table[facet] == level]


def _level_text(facet: str | None, level) -> str:
    if facet is None:
        return ""
    value = f"{level:g}" if isinstance(level, (int, float, np.integer, np.floating)) else str(level)
    return f"{'measured N/d_out' if facet == 'n_over_d_bin' else facet} = {value}"


def binned_means(table: pd.DataFrame, column: str, grid: np.ndarray, by: list[str]) -> pd.DataFrame:
    """Returns mean and 95% bootstrap CI of `column` per `by` group and grid expansion ratio, with the
    group's mean actual expansion and dimension ratios (rounding d_out moves them off the grid point)."""
    t = table.assign(grid_ratio=nearest_grid_ratio(table["expansion_ratio"], grid))
    means = stats.group_means(t, [*by, "grid_ratio"], column, n_resamples=PLOT_RESAMPLES)
    x = t.groupby([*by, "grid_ratio"], observed=True)[["expansion_ratio", "dimension_ratio"]].mean()
    return means.merge(x.reset_index(), on=[*by, "grid_ratio"], how="left")


def _legend(fig, handles_labels: dict) -> None:
    handles, labels = list(handles_labels.values()), list(handles_labels)
    fig.legend(
        handles,
        labels,
        loc="outside right upper",
        fontsize=8,
        frameon=False,
        title="nonlinearity",
        title_fontsize=8,
        handlelength=3,
    )


def _lines(ax, means: pd.DataFrame, nonlinearities: list[str], x: str, handles: dict, label_of=lambda n: n) -> None:
    for i, nl in enumerate(nonlinearities):
        m = means[means["nonlinearity"] == nl].sort_values(x)
        if m.empty:
            continue
        x_values = m[x].to_numpy(dtype=float)
        kw = style(nl, i)
        (line,) = ax.plot(x_values, m["mean"], lw=1.4, ms=3.5, label=label_of(nl), **kw)
        ok = m["ci_low"].notna().to_numpy()
        if ok.any():  # `where` leaves gaps at points without a CI (fewer than 2 networks)
            ax.fill_between(
                x_values, m["ci_low"].to_numpy(), m["ci_high"].to_numpy(), where=ok, color=kw["color"], alpha=0.10, lw=0
            )
        handles.setdefault(label_of(nl), line)


def plot_rank_vs_expansion(
    table: pd.DataFrame, meta: dict, out_dir: Path, measure: Measure, facet: str | None = None
) -> list[Path]:
    """Returns the written files of the paper's figure: mean measure vs expansion ratio, a panel per kind."""
    kinds, nls, grid = kinds_in(table), nonlinearities_in(table), ratio_grid(table, meta)
    levels = _levels(table, facet)
    means = binned_means(table, measure.column, grid, ["kind", "nonlinearity"] + ([facet] if facet else []))
    fig = Figure(figsize=(3.6 * len(kinds) + 1.6, 3.3 * len(levels)), layout="constrained")
    axes = fig.subplots(len(levels), len(kinds), sharey=True, squeeze=False)
    handles: dict = {}
    r = np.geomspace(grid.min(), grid.max(), 200)
    for i, level in enumerate(levels):
        for j, kind in enumerate(kinds):
            ax = axes[i, j]
            m = _facet_rows(means[means["kind"] == kind], facet, level)
            if kind == "linear":
                (bound,) = ax.plot(r, np.minimum(1, 1 / r), color="#BBBBBB", lw=3, zorder=0)
                handles.setdefault("linear bound min(1, d_in/d_out)", bound)
            _structural_line(ax, table[table["kind"] == kind], grid, "expansion_ratio", handles)
            _lines(ax, m, nls, "expansion_ratio", handles)
            ax.set_xscale("log")
            ax.set_xticks([0.5, 1, 2, 5, 10, 20], labels=["0.5", "1", "2", "5", "10", "20"])
            ax.set_ylim(-0.02, 1.04)
            ax.grid(True, which="major", alpha=0.3)
            title = KIND_TITLES.get(kind, kind)
            ax.set_title(title if facet is None else f"{title}\n{_level_text(facet, level)}", fontsize=9)
            if i == len(levels) - 1:
                ax.set_xlabel("expansion ratio d_out / d_in (log scale)", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"mean {measure.label}", fontsize=9)
    _legend(fig, handles)
    stem = f"rank_vs_expansion_{measure.name}" + (f"_by_{facet}" if facet else "")
    note = (
        "Points: mean over the networks nearest each grid ratio, at their mean ratio; bands: 95% "
        "percentile-bootstrap CI of the mean."
    )
    return _save(fig, out_dir, stem, caption(table, meta, note + _bn_note(table)))


def _structural_line(ax, rows: pd.DataFrame, grid: np.ndarray, x: str, handles: dict) -> None:
    """Draws the mean structural capacity min(1, bound/d_out) of `rows` per grid ratio where it is below 1."""
    if rows.empty or "structural_bound" not in rows.columns:
        return
    cap = rows.assign(
        cap=np.minimum(1.0, rows["structural_bound"] / rows["d_out"]),
        grid_ratio=nearest_grid_ratio(rows["expansion_ratio"], grid),
    )
    means = cap.groupby("grid_ratio")[["cap", "expansion_ratio", "dimension_ratio"]].mean().sort_values(x)
    if (means["cap"] < 1 - 1e-9).any():
        (line,) = ax.plot(means[x], means["cap"], color="#999999", lw=2.5, ls=":", zorder=0)
        handles.setdefault("structural bound min(1, bound/d_out)", line)


def plot_paper_comparison(table: pd.DataFrame, meta: dict, out_dir: Path, measure: Measure) -> list[Path]:
    """Returns the written files of the paper's Figure 1 beside ours: one panel per paper panel (a)–(d),
    x = dimension ratio d_in/d_out, our mean per group of nonlinearities (BN rows, as the CVPR version)
    as lines, the paper's values as read by eye (PAPER_FIGURE1) as bars."""
    kinds = [k for k in PAPER_PANELS if k in set(table["kind"])]
    rows = table[(table["expansion_ratio"] >= 1 - 1e-9) & table["kind"].isin(kinds)]
    if "bn" in set(rows["norm"]):
        rows = rows[rows["norm"] == "bn"]
    if rows.empty:
        return []
    grid = ratio_grid(table, meta)
    group_of = {nl: g for g, names in PAPER_GROUPS.items() if g != "nonlinear (all)" for nl in names}
    kinds = sorted(kinds, key=lambda k: PAPER_PANELS[k])
    fig = Figure(figsize=(3.4 * len(kinds) + 1.8, 3.4), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)
    handles: dict = {}
    for j, kind in enumerate(kinds):
        ax, panel = axes[0, j], PAPER_PANELS[kind]
        mine = rows[(rows["kind"] == kind) & rows["nonlinearity"].isin(group_of)]
        mine = mine.assign(group=mine["nonlinearity"].map(group_of))
        means = binned_means(mine, measure.column, grid[grid >= 1 - 1e-9], ["group"])
        for group in dict.fromkeys(means["group"]):
            m = means[means["group"] == group].sort_values("dimension_ratio")
            (line,) = ax.plot(m["dimension_ratio"], m["mean"], color=GROUP_COLOURS[group], lw=1.5, marker="o", ms=3)
            ax.fill_between(
                m["dimension_ratio"], m["ci_low"], m["ci_high"], color=GROUP_COLOURS[group], alpha=0.12, lw=0
            )
            handles.setdefault(f"ours: {group}", line)
        _structural_line(ax, rows[rows["kind"] == kind], grid, "dimension_ratio", handles)
        for group, points in PAPER_FIGURE1[panel].items():
            xs = np.array([p[0] for p in points])
            lo, hi = np.array([p[1] for p in points]), np.array([p[2] for p in points])
            bars = ax.errorbar(
                xs,
                (lo + hi) / 2,
                yerr=np.maximum((hi - lo) / 2, 0.01),
                fmt="s",
                ms=6,
                mfc="white",
                color=GROUP_COLOURS[group],
                capsize=3,
                lw=1.5,
                zorder=5,
            )
            handles.setdefault(f"paper Fig. 1 (read by eye): {group}", bars)
        if panel == "d":
            ax.text(
                0.5,
                0.08,
                "paper: nonlinear curves\nslightly above linear",
                fontsize=7,
                ha="center",
                transform=ax.transAxes,
            )
        ax.set_xlim(0, 1.02)
        ax.set_ylim(-0.02, 1.04)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"({panel}) {KIND_TITLES.get(kind, kind)}", fontsize=8)
        ax.set_xlabel("dimension ratio d_in / d_out", fontsize=9)
        if j == 0:
            ax.set_ylabel(f"mean {measure.label}", fontsize=9)
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=7, frameon=False)
    return _save(
        fig,
        out_dir,
        f"paper_comparison_{measure.name}",
        caption(
            rows,
            meta,
            "The paper's Figure 1 values as read by eye (squares with bars: the range "
            "read) beside this study's means (lines, 95% bootstrap bands) per group of "
            "nonlinearities; BN rows only (the CVPR version applies BN), expansion "
            "layers only (d_out ≥ d_in).",
        ),
    )


def _bn_note(table: pd.DataFrame) -> str:
    if "linear" in set(table["kind"]) and "bn" in set(table["norm"]):
        return (
            " Linear bound: without BN; with BN, centring over the N samples costs one rank where "
            "N = d_out ≤ d_in, (N − 1)/d_out."
        )
    return ""


def plot_paper_axis(table: pd.DataFrame, meta: dict, out_dir: Path, measure: Measure) -> list[Path]:
    """Returns the written files of the figure in the paper's axis: x = dimension ratio d_in/d_out ≤ 1."""
    kinds, grid = kinds_in(table), ratio_grid(table, meta)
    present = nonlinearities_in(table)
    nls = [n for n in PAPER_NONLINEARITIES if n in present] or present
    rows = table[(table["expansion_ratio"] >= 1 - 1e-9) & table["nonlinearity"].isin(nls)]
    if rows.empty:
        return []
    means = binned_means(rows, measure.column, grid[grid >= 1 - 1e-9], ["kind", "nonlinearity"])
    fig = Figure(figsize=(3.6 * len(kinds) + 1.6, 3.4), layout="constrained")
    axes = fig.subplots(1, len(kinds), sharey=True, squeeze=False)
    handles: dict = {}
    for j, kind in enumerate(kinds):
        ax = axes[0, j]
        if kind == "linear":
            (bound,) = ax.plot([0, 1], [0, 1], color="#BBBBBB", lw=3, zorder=0)
            handles.setdefault("linear bound d_in/d_out", bound)
        _lines(
            ax, means[means["kind"] == kind], nls, "dimension_ratio", handles, label_of=lambda n: PAPER_LABELS.get(n, n)
        )
        ax.set_xlim(0, 1.02)
        ax.set_ylim(-0.02, 1.04)
        ax.grid(True, alpha=0.3)
        ax.set_title(KIND_TITLES.get(kind, kind), fontsize=9)
        ax.set_xlabel("dimension ratio d_in / d_out", fontsize=9)
        if j == 0:
            ax.set_ylabel(f"mean {measure.label}", fontsize=9)
    _legend(fig, handles)
    return _save(
        fig,
        out_dir,
        f"paper_axis_{measure.name}",
        caption(
            rows,
            meta,
            "The paper's Figure 1 axis (expansion layers only, d_out ≥ d_in) and "
            "nonlinearities. Lines: mean; bands: 95% bootstrap CI." + _bn_note(rows),
        ),
    )


def plot_heatmaps(table: pd.DataFrame, meta: dict, out_dir: Path, measure: Measure) -> list[Path]:
    """Returns the written files of one heatmap per kind: nonlinearity × expansion-ratio bin, cell = mean."""
    grid = ratio_grid(table, meta)
    t = table.assign(grid_ratio=nearest_grid_ratio(table["expansion_ratio"], grid))
    nls = nonlinearities_in(table)
    paths = []
    for kind in kinds_in(table):
        rows = t[t["kind"] == kind]
        pivot = rows.pivot_table(index="nonlinearity", columns="grid_ratio", values=measure.column, aggfunc="mean")
        pivot = pivot.reindex(index=[n for n in nls if n in pivot.index], columns=sorted(pivot.columns))
        fig = Figure(figsize=(1.2 + 0.55 * pivot.shape[1], 1.0 + 0.32 * pivot.shape[0]), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(pivot.to_numpy(), cmap="cividis", vmin=0, vmax=1, aspect="auto")
        for (i, j), v in np.ndenumerate(pivot.to_numpy()):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="black" if v > 0.6 else "white")
        ax.set_xticks(range(pivot.shape[1]), labels=[f"{g:.3g}" for g in pivot.columns], fontsize=7, rotation=45)
        ax.set_yticks(range(pivot.shape[0]), labels=pivot.index, fontsize=8)
        ax.set_xlabel("expansion ratio d_out / d_in (grid point)", fontsize=9)
        ax.set_ylabel("nonlinearity", fontsize=9)
        ax.set_title(f"{KIND_TITLES.get(kind, kind)}: mean {measure.label}", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8).set_label(f"mean {measure.label}", fontsize=8)
        paths += _save(
            fig,
            out_dir,
            f"heatmap_{kind}_{measure.name}",
            caption(rows, meta, "Cell: mean over the networks nearest that grid ratio; white: none."),
        )
    return paths


def plot_depth(table: pd.DataFrame, meta: dict, out_dir: Path, measure: Measure) -> list[Path]:
    """Returns the written files of rank vs depth: stacks of depth 2–4 and blocks (depth 1), per ratio band."""
    rows = table[table["kind"].isin(["block", "stack"]) & (table["expansion_ratio"] > 1)]
    if rows.empty or "stack" not in set(rows["kind"]):
        return []
    bands = [b for b in stats.make_bands() if b.low >= 1]
    rows = rows.assign(band=stats.band_of(rows["expansion_ratio"], bands))
    nls = nonlinearities_in(rows)
    means = stats.group_means(rows, ["band", "nonlinearity", "depth"], measure.column, n_resamples=PLOT_RESAMPLES)
    fig = Figure(figsize=(3.2 * len(bands) + 1.6, 3.4), layout="constrained")
    axes = fig.subplots(1, len(bands), sharey=True, squeeze=False)
    handles: dict = {}
    depths = sorted(rows["depth"].unique())
    for j, band in enumerate(bands):
        ax = axes[0, j]
        _lines(ax, means[means["band"] == band.label], nls, "depth", handles)
        ax.set_xticks(depths, labels=[f"{d}\n(block)" if d == 1 else str(d) for d in depths])
        ax.set_ylim(-0.02, 1.04)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"total expansion ratio {band.label.replace('>', '> ')}", fontsize=9)
        ax.set_xlabel("blocks sharing the expansion (depth)", fontsize=9)
        if j == 0:
            ax.set_ylabel(f"mean {measure.label}", fontsize=9)
    _legend(fig, handles)
    return _save(
        fig,
        out_dir,
        f"depth_{measure.name}",
        caption(
            rows,
            meta,
            "Depth 1 = one inverted bottleneck taking the whole expansion (kind block); "
            "depth L = a stack of L blocks expanding geometrically. Lines: mean; bands: "
            "95% bootstrap CI.",
        ),
    )


# The figure families drawn after the paper's figure, in order.
FIGURE_FAMILIES = (plot_paper_axis, plot_paper_comparison, plot_heatmaps, plot_depth)


def plot_all(
    table: pd.DataFrame,
    meta: dict | None,
    out_dir: str | Path,
    metric: str = "normalized_rank",
    facet: str | None = None,
    kinds=None,
    nonlinearities=None,
    progress: bool = False,
) -> list[Path]:
    """Returns the paths written (PNG and PDF of each figure) for one metric, after filtering rows.

    `progress` shows a bar (one step per figure family) on stderr.

    Without `facet`: the paper's figure, its dimension-ratio version, a heatmap per kind and rank vs depth.
    With `facet` (one of FACET_CHOICES): the paper's figure with one row of panels per level of the facet.
    """
    measure = get_measure(metric)
    table = select_rows(table, kinds, nonlinearities)
    meta = meta or {}
    out_dir = prepare_out_dir(out_dir)
    if facet is not None:
        steps = [lambda: plot_rank_vs_expansion(table, meta, out_dir, measure, facet)]
    else:
        steps = [
            lambda: plot_rank_vs_expansion(table, meta, out_dir, measure),
            *(lambda f=f: f(table, meta, out_dir, measure) for f in FIGURE_FAMILIES),
        ]
    paths: list[Path] = []
    for step in tqdm(steps, desc="figures", unit="figure", disable=not progress, file=sys.stderr):
        paths += step()
    return paths
