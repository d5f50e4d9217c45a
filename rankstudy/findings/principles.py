"""Turns a results table into quantified design rules and verdicts on the paper's findings (findings.json,
schema in docs/findings_schema.md); `rankstudy.report` renders them as FINDINGS.md.

The data flows one way: results table → `find_principles` → findings dict → JSON / Markdown. Every number
comes from `rankstudy.stats`; the choices behind each rule are recorded in the findings' `settings`.
Every finding is judged under each measure twice: normalised by d_out, and relative to the architecture's
structural bound (`rankstudy.bounds`). A finding that holds under the first but not the second follows
from the shapes alone ("structural"); one that holds relative to the bound is caused by the nonlinearity.
The design rules are read from bound-relative measures only.
"""

import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rexnet.io import atomic_write_text, versions

from .. import stats
from ..errors import StudyError
from ..random_nets.bounds import BLOCK_KINDS, SINGLE_LAYER_KINDS
from ..store import json_ready, prepare_out_dir, write_json
from .measures import (
    BOUND_MEASURES,
    BOUND_TWIN,
    FACTORS,
    FINDING_MEASURES,
    MEASURES,
    PAPER_NONLINEARITIES,
    check_table,
    get_measure,
    kinds_in,
    nearest_grid_ratio,
    nonlinearities_in,
    ratio_grid,
)
from .report import findings_markdown

# 2: bound-relative measures, the design rules read from them, `attribution` and `factor_dependence` per
# finding, `recommendations.structural`, factors n_over_d_bin and input_dist (see docs/findings_schema.md).
SCHEMA_VERSION = 2
FLOAT_DIGITS = 6  # significant digits of every float in findings.json: far below any CI's width
DEFAULT_TAUS: tuple[float, ...] = (0.9, 0.95)
VERDICTS: tuple[str, ...] = ("reproduced", "not_reproduced", "mixed", "untestable")
# "Complicated" and "simple" nonlinearities as the paper's finding (b) names them.
COMPLICATED: tuple[str, ...] = ("elu", "silu")
SIMPLE: tuple[str, ...] = ("relu", "relu6")


@dataclass(frozen=True)
class Settings:
    """How findings are computed; recorded verbatim in findings.json `settings`.

    design_measure: the measure the design rules (max expansion, gradual vs single) are read from. The
    default, rank at rtol 1e-2 relative to the structural bound, counts directions carrying at least 1 %
    of the largest singular value, out of those the architecture allows (so a rule reflects what the
    nonlinearity does, not the shapes; for one layer it equals rank at rtol 1e-2 / d_out):
    under the float32 default tolerance almost every nonlinear layer stays full rank up to 20× (so that
    rule would allow any expansion), while the effective rank is below 0.9 even at ratio 1 (so it would
    forbid all). Thresholds under every measure are in `curves` either way.
    design_rows: the rows the design rules are read from, as (column, value) pairs. The default, BN before
    the nonlinearity, is how ReXNet builds its layers (1×1 conv → BN → SiLU) and the CVPR paper's setting;
    without BN the weight scale (init) alone moves tanh/sigmoid/softplus into saturation. If no row
    matches, the rules use every row and say so.
    material_difference: a difference of normalised rank counts as a finding only if it is at least this
    large *and* its bootstrap CI excludes 0 (with thousands of rows, tiny differences are "significant").
    """

    measures: tuple[str, ...] = FINDING_MEASURES
    design_measure: str = "bound_relative_rank_rtol_1e-2"
    taus: tuple[float, ...] = DEFAULT_TAUS
    band_edges: tuple[float, ...] = stats.DEFAULT_BAND_EDGES
    confidence: float = stats.CONFIDENCE
    n_resamples: int = stats.N_RESAMPLES
    rng_seed: int = stats.RNG_SEED
    alpha: float = stats.ALPHA
    design_rows: tuple[tuple[str, str], ...] = (("norm", "bn"),)
    material_difference: float = 0.02

    def validate(self) -> "Settings":
        """Returns self, or raises StudyError naming the first bad setting."""
        for m in (*self.measures, self.design_measure):
            get_measure(m)
        if self.design_measure not in self.measures:
            raise StudyError(f"design measure {self.design_measure!r} must be one of the measures {self.measures}")
        if not self.taus or not all(0 < t <= 1 for t in self.taus):
            raise StudyError(f"τ values must lie in (0, 1], got {self.taus}")
        if not 0 < self.confidence < 1 or not 0 < self.alpha < 1:
            raise StudyError("confidence and alpha must lie in (0, 1)")
        return self


# --- helpers ---------------------------------------------------------------------------------------------


def _level(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _tau_key(tau: float) -> str:
    return f"{tau:g}"


class _Context:
    """The table with its band and grid columns, and the settings: what every section below reads."""

    def __init__(self, table: pd.DataFrame, meta: dict, settings: Settings):
        self.settings = settings
        self._cache: dict = {}
        self.bands = stats.make_bands(settings.band_edges)
        self.grid = ratio_grid(table, meta)
        table = check_table(table).copy()
        table["band"] = stats.band_of(table["expansion_ratio"], self.bands)
        table["grid_ratio"] = nearest_grid_ratio(table["expansion_ratio"], self.grid)
        self.table = table
        self.kinds = kinds_in(table)
        self.nonlinearities = nonlinearities_in(table)
        self.columns = {m: get_measure(m).column for m in settings.measures}
        # The measures the design rules rank by: the bound-relative ones (nonlinearity effects only).
        self.design_columns = {m: c for m, c in self.columns.items() if m in BOUND_MEASURES} or self.columns
        mask = np.ones(len(table), dtype=bool)
        for column, value in settings.design_rows:
            if column not in table.columns:
                raise StudyError(f"design_rows names column {column!r}, which the table lacks")
            mask &= (table[column].astype(str) == str(value)).to_numpy()
        self.design_filter = [list(p) for p in settings.design_rows] if mask.any() else []
        self.design_table = table[mask] if mask.any() else table

    def _cached(self, fn, *arrays) -> stats.Estimate:
        # A bound-relative measure equals its normalised twin wherever the bound is ≥ d_out (every single
        # layer): the same bootstrap would run twice, so estimates are cached by their input values.
        arrays = [np.ascontiguousarray(a, dtype=float) for a in arrays]
        key = (fn.__name__, *(hashlib.blake2b(a.tobytes(), digest_size=16).digest() for a in arrays))
        if key not in self._cache:
            s = self.settings
            self._cache[key] = fn(*arrays, s.confidence, s.n_resamples, s.rng_seed)
        return self._cache[key]

    def ci(self, values) -> stats.Estimate:
        return self._cached(stats.mean_ci, values)

    def diff(self, x, y) -> stats.Estimate:
        return self._cached(stats.diff_ci, x, y)

    def holds(self, est: stats.Estimate) -> bool | None:
        """Returns whether a difference is material and its CI excludes 0 (None if it is not estimable)."""
        if est.n < 2 or not math.isfinite(est.low):
            return None
        return bool(est.low > 0 and est.mean >= self.settings.material_difference)


# --- sections --------------------------------------------------------------------------------------------


def _rankings(ctx: _Context) -> list[dict]:
    """Returns nonlinearities ranked by mean with CIs and significance, per measure × kind (+ all) × band."""
    rankings = []
    for measure, column in ctx.columns.items():
        for kind in ("all", *ctx.kinds):
            rows = ctx.table if kind == "all" else ctx.table[ctx.table["kind"] == kind]
            for band in ctx.bands:
                in_band = rows[rows["band"] == band.label]
                values = {nl: g[column].to_numpy() for nl, g in in_band.groupby("nonlinearity")}
                if not values:
                    continue
                est = {nl: ctx.ci(v) for nl, v in values.items()}
                order = sorted(values, key=lambda nl: (-est[nl].mean, nl))
                comparisons = stats.pairwise({nl: values[nl] for nl in order}, ctx.settings.alpha)
                above = {nl: [] for nl in order}
                for c in comparisons:  # a precedes b in `order`, so a's mean ≥ b's
                    if c.significant:
                        above[c.a].append(c.b)
                best = order[0]
                below_best = set(above[best])
                rankings.append(
                    {
                        "measure": measure,
                        "kind": kind,
                        "band": band.label,
                        "order": [
                            {
                                "rank": i + 1,
                                "nonlinearity": nl,
                                "mean": est[nl].mean,
                                "ci": [est[nl].low, est[nl].high],
                                "n": est[nl].n,
                                "significantly_above": above[nl],
                            }
                            for i, nl in enumerate(order)
                        ],
                        "top_group": [nl for nl in order if nl not in below_best],
                    }
                )
    return rankings


def _curves(ctx: _Context) -> list[dict]:
    """Returns a fitted curve per measure × kind × nonlinearity, with fitted and empirical thresholds per τ."""
    out = []
    for measure, column in ctx.columns.items():
        for (kind, nl), rows in ctx.table.groupby(["kind", "nonlinearity"], sort=False):
            fit, thresholds = _thresholds(ctx, rows, column)
            out.append(
                {
                    "measure": measure,
                    "kind": kind,
                    "nonlinearity": nl,
                    "converged": fit.converged,
                    "params": {"top": fit.top, "r_break": fit.r_break, "tail": fit.tail, "sharpness": fit.sharpness},
                    "rmse": fit.rmse,
                    "n": fit.n,
                    "ratio_range": [fit.r_min, fit.r_max],
                    "thresholds": thresholds,
                }
            )
    order = {k: i for i, k in enumerate(ctx.kinds)}
    nl_order = {k: i for i, k in enumerate(ctx.nonlinearities)}
    m_order = {k: i for i, k in enumerate(ctx.columns)}
    return sorted(out, key=lambda c: (m_order[c["measure"]], order[c["kind"]], nl_order[c["nonlinearity"]]))


def _expansion_rows(ctx: _Context) -> tuple[pd.DataFrame, str]:
    """Returns the rows "after an expansion" (linear kind, r > 1, not identity) and the kind used."""
    kind = "linear" if "linear" in ctx.kinds else "all"
    rows = ctx.design_table if kind == "all" else ctx.design_table[ctx.design_table["kind"] == kind]
    return rows[(rows["expansion_ratio"] > 1) & (rows["nonlinearity"] != "identity")], kind


def _recommended_nonlinearity(ctx: _Context) -> dict:
    """Returns the nonlinearity with the best mean position across the measures after expansion layers.

    A nonlinearity's position under a measure is 1 + the number of nonlinearities significantly above it,
    so statistical ties share a position and a saturated measure (everything full rank) decides nothing.
    """
    rows, kind = _expansion_rows(ctx)
    if rows.empty:
        return {"name": None, "reason": "no non-identity rows with expansion ratio > 1"}
    by_measure, positions = {}, {}
    for measure, column in ctx.design_columns.items():
        values = {nl: g[column].to_numpy() for nl, g in rows.groupby("nonlinearity")}
        est = {nl: ctx.ci(v) for nl, v in values.items()}
        order = sorted(values, key=lambda nl: (-est[nl].mean, nl))
        comparisons = stats.pairwise({nl: values[nl] for nl in order}, ctx.settings.alpha)
        below_best = {c.b for c in comparisons if c.a == order[0] and c.significant}
        position = {nl: 1 + sum(c.b == nl and c.significant for c in comparisons) for nl in order}
        by_measure[measure] = {
            "order": order,
            "best": order[0],
            "top_group": [nl for nl in order if nl not in below_best],
            "position": position,
            "means": {nl: est[nl].to_dict() for nl in order},
        }
        for nl in order:
            positions.setdefault(nl, []).append(position[nl])
    design = ctx.settings.design_measure
    design_mean = {nl: by_measure[design]["means"][nl]["value"] if design in by_measure else 0.0 for nl in positions}
    mean_position = {nl: float(np.mean(p)) for nl, p in positions.items()}
    ranked = sorted(mean_position, key=lambda nl: (mean_position[nl], -design_mean[nl], nl))
    tied = [nl for nl in ranked[1:] if mean_position[nl] == mean_position[ranked[0]]]
    return {
        "name": ranked[0],
        "tied_with": tied,
        "kind": kind,
        "rows": "expansion_ratio > 1, nonlinearity != identity",
        "design_rows": ctx.design_filter,
        "n_rows": int(len(rows)),
        "measures": list(ctx.design_columns),
        "rule": "lowest mean position over the bound-relative measures (position = 1 + number of "
        "nonlinearities significantly above, Welch-Holm); ties broken by the design measure's mean",
        "mean_position": {nl: mean_position[nl] for nl in ranked},
        "by_measure": by_measure,
    }


def _thresholds(ctx: _Context, rows: pd.DataFrame, column: str) -> tuple[stats.CurveFit, dict]:
    """Returns the curve fitted to `rows` and, per τ, its fitted and empirical thresholds."""
    key = (
        "fit",
        *(
            hashlib.blake2b(np.ascontiguousarray(rows[c], dtype=float).tobytes(), digest_size=16).digest()
            for c in ("expansion_ratio", "grid_ratio", column)
        ),
    )
    if key not in ctx._cache:  # see _Context._cached: twin measures often hold the same values
        ctx._cache[key] = _fit_thresholds(ctx, rows, column)
    return ctx._cache[key]


def _fit_thresholds(ctx: _Context, rows: pd.DataFrame, column: str) -> tuple[stats.CurveFit, dict]:
    fit = stats.fit_curve(rows["expansion_ratio"], rows[column])
    means = rows.groupby("grid_ratio")[column].mean()
    out = {}
    for tau in ctx.settings.taus:
        fitted = stats.fit_threshold(fit, tau)
        empirical = stats.empirical_threshold(means.index.to_numpy(), means.to_numpy(), tau)
        out[_tau_key(tau)] = {"fit": asdict(fitted), "empirical": asdict(empirical)}
    return fit, out


def _max_expansion(ctx: _Context, nonlinearity: str | None, kind: str) -> dict:
    """Returns, per τ, the largest expansion ratio keeping the design measure ≥ τ for `nonlinearity`.

    The curve is fitted to the design rows of that kind and nonlinearity (all ratios, reductions included);
    the headline is the fitted threshold, or the empirical one where the fit failed.
    """
    table = ctx.design_table if kind == "all" else ctx.design_table[ctx.design_table["kind"] == kind]
    rows = table[table["nonlinearity"] == nonlinearity]
    per_measure = {m: _thresholds(ctx, rows, column)[1] for m, column in ctx.columns.items()}
    design = ctx.settings.design_measure
    out = {}
    for tau in ctx.settings.taus:
        key = _tau_key(tau)
        chosen = per_measure[design][key]
        source = "fit" if chosen["fit"]["status"] != "no_fit" else "empirical"
        out[key] = {
            "ratio": chosen[source]["ratio"],
            "status": chosen[source]["status"],
            "source": source,
            "empirical": chosen["empirical"],
            "by_measure": {m: per_measure[m][key] for m in ctx.columns},
        }
    return {
        "nonlinearity": nonlinearity,
        "kind": kind,
        "measure": design,
        "design_rows": ctx.design_filter,
        "n_rows": int(len(rows)),
        "per_tau": out,
    }


def _gradual(ctx: _Context) -> dict:
    """Returns stack (gradual) minus block (one expansion) at equal total ratio, r > 1, non-identity rows."""
    table = ctx.design_table
    rows = table[(table["expansion_ratio"] > 1) & (table["nonlinearity"] != "identity")]
    stack, block = rows[rows["kind"] == "stack"], rows[rows["kind"] == "block"]
    if stack.empty or block.empty:
        return {"value": None, "reason": "needs both stack and block rows with expansion ratio > 1"}
    by_measure, by_band, by_depth = {}, [], []
    for measure, column in ctx.columns.items():
        est = ctx.diff(stack[column], block[column])
        by_measure[measure] = {**est.to_dict(), "beats": ctx.holds(est)}
        for band in ctx.bands:
            s, b = stack[stack["band"] == band.label], block[block["band"] == band.label]
            if len(s) and len(b):
                e = ctx.diff(s[column], b[column])
                by_band.append({"measure": measure, "band": band.label, **e.to_dict(), "beats": ctx.holds(e)})
        for depth, s in stack.groupby("depth"):
            e = ctx.diff(s[column], block[column])
            by_depth.append({"measure": measure, "depth": int(depth), **e.to_dict(), "beats": ctx.holds(e)})
    design = by_measure[ctx.settings.design_measure]
    # What the shapes alone give: the share of d_out the structural bound allows, stack minus block.
    cap = lambda t: np.minimum(1.0, t["structural_bound"] / t["d_out"])  # noqa: E731
    structural = ctx.diff(cap(stack), cap(block))
    return {
        "value": design["beats"],
        "measure": ctx.settings.design_measure,
        "difference": design["value"],
        "ci": design["ci"],
        "comparison": "mean(stack) - mean(block), expansion_ratio > 1, non-identity",
        "design_rows": ctx.design_filter,
        "structural_capacity": {
            **structural.to_dict(),
            "beats": ctx.holds(structural),
            "what": "mean of min(1, structural_bound / d_out), stack minus block",
        },
        "by_measure": by_measure,
        "by_band": by_band,
        "by_depth": by_depth,
    }


# --- paper findings --------------------------------------------------------------------------------------


def _cells(ctx: _Context, kinds, select_x, select_y) -> list[dict]:
    """Returns one comparison mean(x) − mean(y) per measure × kind × (all rows, each factor level)."""
    cells: dict[str, list[dict]] = {m: [] for m in ctx.columns}
    table = ctx.table
    for kind in kinds:
        rows = table[table["kind"] == kind]
        if rows.empty:
            continue
        slices = [("all", "all", rows)]
        for factor in FACTORS:
            if factor in rows.columns and rows[factor].nunique() > 1:
                slices += [(factor, _level(level), part) for level, part in rows.groupby(factor, sort=True)]
        for factor, level, part in slices:
            x_rows, y_rows = select_x(part), select_y(part)  # selected once, read under every measure
            for measure, column in ctx.columns.items():
                est = ctx.diff(x_rows[column], y_rows[column])
                cells[measure].append(
                    {
                        "measure": measure,
                        "kind": kind,
                        "factor": factor,
                        "level": level,
                        "difference": est.mean,
                        "ci": [est.low, est.high],
                        "n": [int(len(x_rows)), int(len(y_rows))],
                        "holds": ctx.holds(est),
                    }
                )
    return [c for m in ctx.columns for c in cells[m]]


def _verdict(cells: list[dict]) -> str:
    known = [c["holds"] for c in cells if c["holds"] is not None]
    if not known:
        return "untestable"
    return "reproduced" if all(known) else "not_reproduced" if not any(known) else "mixed"


def _where(cells: list[dict]) -> str:
    """Returns where the cells of one measure hold, kind by kind, e.g. "holds for block; linear: only init=unit"."""
    holds, fails, partial = [], [], []
    for kind in dict.fromkeys(c["kind"] for c in cells):
        mine = [c for c in cells if c["kind"] == kind and c["holds"] is not None]
        if not mine:
            continue
        if all(c["holds"] for c in mine):
            holds.append(kind)
        elif not any(c["holds"] for c in mine):
            fails.append(kind)
        else:
            pooled = next((c["holds"] for c in mine if c["factor"] == "all"), None)
            levels = [f"{c['factor']}={c['level']}" for c in mine if c["factor"] != "all" and c["holds"] != pooled]
            word = "holds (pooled) except" if pooled else "fails (pooled), holds for"
            partial.append(
                f"{kind} {word} {', '.join(levels)}"
                if levels
                else f"{kind} {'holds' if pooled else 'fails'} pooled only"
            )
    parts = ([f"holds for {', '.join(holds)}"] if holds else []) + ([f"fails for {', '.join(fails)}"] if fails else [])
    return "; ".join(parts + partial)


def _summary(cells: list[dict], measures) -> tuple[dict, str]:
    """Returns (verdict per measure, a sentence per measure saying where the finding holds and fails)."""
    by_measure, parts = {}, []
    for measure in measures:
        mine = [c for c in cells if c["measure"] == measure]
        by_measure[measure] = _verdict(mine)
        parts.append(f"{measure}: {by_measure[measure].replace('_', ' ')} ({_where(mine)})")
    return by_measure, "; ".join(parts)


def _attribution(cells: list[dict], claim: str) -> list[dict]:
    """Returns, per kind and normalised measure, whether the pooled finding is structural or the
    nonlinearity's: "nonlinearity" when it holds relative to the structural bound, "structural" when it
    holds only normalised by d_out, "none" when it holds under neither, "untestable" when not estimable."""
    pooled = {(c["kind"], c["measure"]): c["holds"] for c in cells if c["factor"] == "all"}
    out = []
    for kind in dict.fromkeys(c["kind"] for c in cells):
        for m, b in BOUND_TWIN.items():
            if (kind, m) not in pooled or (kind, b) not in pooled:
                continue
            raw, rel = pooled[kind, m], pooled[kind, b]
            cause = (
                "untestable"
                if raw is None and rel is None
                else "nonlinearity"
                if rel
                else "structural"
                if raw
                else "none"
            )
            out.append(
                {
                    "claim": claim,
                    "kind": kind,
                    "measure": m,
                    "bound_measure": b,
                    "holds_normalized": raw,
                    "holds_bound_relative": rel,
                    "cause": cause,
                }
            )
    return out


def _factor_dependence(cells: list[dict], measures) -> dict:
    """Returns factor → level → measure → verdict over the kinds' cells at that level: where a finding
    depends on an unstated factor (input distribution, measured N/d_out, init, norm)."""
    out: dict = {}
    for c in cells:
        if c["factor"] != "all":
            out.setdefault(c["factor"], {}).setdefault(c["level"], {}).setdefault(c["measure"], []).append(c)
    return {
        f: {lv: {m: _verdict(v[m]) for m in measures if m in v} for lv, v in levels.items()}
        for f, levels in out.items()
    }


def _finding(ctx: _Context, claim: str, operationalised: str, kinds, select_x, select_y) -> dict:
    cells = _cells(ctx, [k for k in kinds if k in ctx.kinds], select_x, select_y)
    by_measure, summary = _summary(cells, ctx.columns)
    return {
        "claim": claim,
        "operationalised": operationalised,
        "verdict": _verdict(cells),
        "by_measure": by_measure,
        "summary": summary,
        "attribution": _attribution(cells, claim),
        "factor_dependence": _factor_dependence(cells, ctx.columns),
        "cells": cells,
    }


def _paper_findings(ctx: _Context) -> dict:
    """Returns the verdicts on the paper's findings (a)–(c) (§3, Figure 1), each cell a bootstrap CI of a
    difference: (a) per kind of network, (b) on single layers, (c) on every kind with a 3×3 conv."""
    expansion = [b for b in ctx.bands if b.low >= 1]
    mild, drastic = (expansion[0].label, expansion[-1].label) if len(expansion) >= 2 else (None, None)
    paper_nl = [nl for nl in PAPER_NONLINEARITIES if nl != "identity"]

    def nonlinear(rows):
        return rows[rows["nonlinearity"] != "identity"]

    def expanded(rows):
        return rows[rows["expansion_ratio"] > 1]

    def named(names):
        return lambda rows: expanded(rows)[expanded(rows)["nonlinearity"].isin(names)]

    single, convs = SINGLE_LAYER_KINDS, ("conv3x3", "depthwise", "block", "block_conv", "stack")
    a = _finding(
        ctx,
        "drastic channel expansion harms the rank",
        f"mean over non-identity nonlinearities in band {mild} minus band {drastic}; holds when the drop is "
        f">= {ctx.settings.material_difference} and its CI excludes 0",
        (*single, *(k for k in BLOCK_KINDS if k != "stack")),
        lambda rows: nonlinear(rows[rows["band"] == mild]),
        lambda rows: nonlinear(rows[rows["band"] == drastic]),
    )
    b1 = _finding(
        ctx,
        "nonlinearities expand the rank",
        f"expansion rows (r > 1): mean over the paper's nonlinearities {paper_nl} minus identity",
        single,
        named(paper_nl),
        named(["identity"]),
    )
    b2 = _finding(
        ctx,
        "complicated nonlinearities (ELU, SiLU) expand it more than ReLU/ReLU6",
        f"expansion rows (r > 1): mean over {list(COMPLICATED)} minus mean over {list(SIMPLE)}",
        single,
        named(COMPLICATED),
        named(SIMPLE),
    )
    parts = [b1["verdict"], b2["verdict"]]
    b_verdict = "untestable" if "untestable" in parts else parts[0] if parts[0] == parts[1] else "mixed"
    c = _finding(
        ctx,
        "nonlinearities are critical for convolutions",
        "convolutional kinds, expansion rows (r > 1): mean over the paper's nonlinearities minus identity",
        convs,
        named(paper_nl),
        named(["identity"]),
    )
    b = {
        "claim": "nonlinearities expand the rank, complicated ones (ELU, SiLU) more than ReLU/ReLU6",
        "verdict": b_verdict,
        "by_measure": {m: _combine(b1["by_measure"][m], b2["by_measure"][m]) for m in ctx.columns},
        "summary": f"nonlinear vs linear: {b1['verdict']}; complicated vs ReLU: {b2['verdict']}",
        "parts": {"nonlinear_above_linear": b1, "complicated_above_relu": b2},
    }
    b["attribution"] = b1["attribution"] + b2["attribution"]
    return {"a": a, "b": b, "c": c}


def _structural(ctx: _Context, gradual: dict) -> dict:
    """Returns what the architecture alone implies (not read from any nonlinearity): the block's rank cap
    and whether gradual expansion raises the structural capacity (its bound) over one block."""
    t = (
        int(ctx.table.loc[ctx.table["kind"].isin(BLOCK_KINDS), "block_expansion"].max())
        if ctx.table["kind"].isin(BLOCK_KINDS).any()
        else None
    )
    cap = gradual.get("structural_capacity") or {}
    normalized = next((m for m, b in BOUND_TWIN.items() if b == ctx.settings.design_measure), None)
    return {
        "block_rank_cap": None if t is None else f"min(d_out, N, {t + 1}·d_in) with shortcut (t = {t})",
        "block_cap_expansion": None if t is None else t + 1,
        "gradual_expansion_raises_bound": cap.get("beats"),
        "gradual_expansion_beats_single_normalized": (gradual.get("by_measure") or {}).get(normalized, {}).get("beats")
        if normalized
        else None,
    }


def _combine(v1: str, v2: str) -> str:
    return "untestable" if "untestable" in (v1, v2) else v1 if v1 == v2 else "mixed"


# --- public API ------------------------------------------------------------------------------------------


def find_principles(
    table: pd.DataFrame,
    meta: dict | None = None,
    settings: Settings = Settings(),
    command: str | None = None,
    progress: bool = False,
) -> dict:
    """Returns the findings dict (schema docs/findings_schema.md, version SCHEMA_VERSION) of a results table.

    `progress` shows a bar (one step per part of the findings) on stderr.
    """
    settings.validate()
    meta = meta or {}
    ctx = _Context(table, meta, settings)  # checks the table before a bar is shown
    bar = tqdm(total=6, desc="findings", unit="part", disable=not progress, file=sys.stderr)

    def step(value):
        bar.update()
        return value

    rankings = step(_rankings(ctx))
    curves = step(_curves(ctx))
    rec = step(_recommended_nonlinearity(ctx))
    max_exp = step(_max_expansion(ctx, rec.get("name"), rec.get("kind", "linear")))
    gradual = step(_gradual(ctx))
    paper_findings = step(_paper_findings(ctx))
    bar.close()
    findings = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "versions": versions(),
        "source": {
            "n_rows": meta.get("n_rows", len(table)),
            "rows_used": len(table),
            "seed": meta.get("seed"),
            "config": meta.get("config"),
            "command": meta.get("command"),
            "versions": meta.get("versions"),
            "device": meta.get("device"),
            "created": meta.get("created"),
            "table_schema_version": meta.get("schema_version"),
            "rank_tolerance": meta.get("rank_tolerance"),
        },
        "settings": {
            **{k: v for k, v in asdict(settings).items()},
            "measure_columns": {m: MEASURES[m].column for m in settings.measures},
            "bands": [asdict(b) for b in ctx.bands],
            "ratio_grid": ctx.grid.tolist(),
            "ci_method": f"percentile bootstrap (scipy.stats.bootstrap), {settings.n_resamples} resamples, "
            f"seed {settings.rng_seed}",
            "significance": f"Welch t-test on means, Holm-corrected within each (measure, kind, band) "
            f"family, alpha {settings.alpha}",
            "curve_family": stats.CURVE_FAMILY,
            "factors": list(FACTORS),
            "paper_nonlinearities": list(PAPER_NONLINEARITIES),
            "bound_twins": dict(BOUND_TWIN),
            "design_measures": list(ctx.design_columns),
            "structural_bound": "rankstudy.bounds.structural_bound: the largest rank the shapes allow "
            "over every nonlinearity; bound-relative = measure · d_out / "
            "min(d_out, bound)",
        },
        "recommendations": {
            "recommended_nonlinearity": rec.get("name"),
            "max_expansion_per_layer": {k: v["ratio"] for k, v in max_exp["per_tau"].items()},
            "gradual_expansion_beats_single": gradual.get("value"),
            "structural": _structural(ctx, gradual),
            "basis": {
                "recommended_nonlinearity": rec,
                "max_expansion_per_layer": max_exp,
                "gradual_expansion_beats_single": gradual,
            },
        },
        "paper_findings": paper_findings,
        "rankings": rankings,
        "curves": curves,
    }
    return json_ready(findings, digits=FLOAT_DIGITS)


def write_findings(
    table: pd.DataFrame,
    meta: dict | None,
    json_path: str | Path,
    md_path: str | Path | None = None,
    settings: Settings = Settings(),
    command: str | None = None,
    progress: bool = False,
) -> dict:
    """Returns the findings after writing them to `json_path` and, rendered, to `md_path` (both atomically).

    `md_path` defaults to FINDINGS.md beside the JSON file.
    """
    findings = find_principles(table, meta, settings, command, progress=progress)
    json_path = Path(json_path)
    md_path = Path(md_path) if md_path is not None else json_path.parent / "FINDINGS.md"
    for folder in dict.fromkeys((json_path.parent, md_path.parent)):
        prepare_out_dir(folder)
    write_json(json_path, findings, digits=FLOAT_DIGITS)
    atomic_write_text(md_path, findings_markdown(findings))
    return findings
