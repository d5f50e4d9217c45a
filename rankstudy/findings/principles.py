"""Turns a results table into design rules with their uncertainty and verdicts on the paper's findings
(findings.json, schema in docs/findings_schema.md); `rankstudy.findings.report` renders them as FINDINGS.md.

The data flows one way: results table(s) → `find_principles` → findings dict → JSON / Markdown. Every number
comes from `rankstudy.stats`; the choices behind each rule are recorded in the findings' `settings`.

- The design rules (`rankstudy.findings.rules`) are read where a variant applies them (ReXNet's expansion
  range, BN, the inputs its layers see), from a dedicated rule study where one is given, each with a
  bootstrap CI over networks, the probability of being best and whether it is decided.
- The design measure they read is the one whose rank proxy best predicts trained accuracy in the proxy
  benchmark (`rankstudy.findings.design`), re-read from its report every time the findings are made.
- Each of the paper's findings (§3, Figure 1) is judged cell by cell (kind × factor level × measure), with
  false-discovery-rate control over a finding's cells (Benjamini–Hochberg), materiality judged on the CI,
  and "tied" only where an equivalence test (TOST) shows it; its verdict is read under the design measure
  and reported with its effect size and CI per kind and where it flips. Every finding is judged under each
  measure normalised by d_out and, for blocks and stacks, relative to the architecture's structural bound
  (`rankstudy.random_nets.bounds`): a finding that holds under the first but not the second follows from
  the shapes alone ("structural"); one that holds relative to the bound is caused by the nonlinearity.
  For one layer the bound-relative measures equal their normalised twins (the bound is d_out), so those
  cells are not counted twice.
"""

import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from rexnet.io import atomic_write_text, versions

from .. import stats
from ..errors import StudyError
from ..random_nets.bounds import BLOCK_KINDS, SINGLE_LAYER_KINDS
from ..store import json_ready, prepare_out_dir, write_json
from .design import choose_design_measure
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
from .rules import RULE_TABLES, Source, find_rules

# 3: rules with uncertainty read where they are applied (`recommendations.rules`), the design measure from the
# proxy benchmark, cell statuses (holds / opposite / tied / undecided) with FDR control, verdicts read under
# the design measure with effects and flips, no single-layer bound-relative duplicates (docs/findings_schema.md).
SCHEMA_VERSION = 3
FLOAT_DIGITS = 6  # significant digits of every float in findings.json: far below any CI's width
DEFAULT_TAUS: tuple[float, ...] = (0.9, 0.95)
VERDICTS: tuple[str, ...] = ("reproduced", "not_reproduced", "conditional", "untestable")
CELL_STATUSES: tuple[str, ...] = ("holds", "opposite", "tied", "undecided", "untestable")
# "Complicated" and "simple" nonlinearities as the paper's finding (b) names them.
COMPLICATED: tuple[str, ...] = ("elu", "silu")
SIMPLE: tuple[str, ...] = ("relu", "relu6")


@dataclass(frozen=True)
class Settings:
    """How findings are computed; recorded verbatim in findings.json `settings`.

    design_measure: the measure the design rules and the headline verdicts are read from. "auto" (the
    default) takes it from the proxy benchmark's report (`rankstudy.findings.design`): the bound-relative
    twin of the study measure whose rank proxy best predicts trained accuracy; without a report, rank at
    rtol 1e-2 relative to the bound (schema 2's choice), and the findings say so.
    The rules choose their own rows where a variant applies them (`rankstudy.findings.rules.Where`).
    material_difference: the margin of every verdict: a difference is material when its whole bootstrap CI
    is at least this far from 0 (`stats.material`), and "tied" when TOST shows it inside ±margin.
    prob_best: a choice among options is made only when the best's bootstrap probability of being best
    reaches this (and its lead over the runner-up is material).
    fdr: the false-discovery rate (Benjamini–Hochberg) over the cells of one finding.
    threshold_resamples: bootstrap resamples of a threshold (each refits the curve, so fewer than the CIs').
    """

    measures: tuple[str, ...] = FINDING_MEASURES
    design_measure: str = "auto"
    taus: tuple[float, ...] = DEFAULT_TAUS
    band_edges: tuple[float, ...] = stats.DEFAULT_BAND_EDGES
    confidence: float = stats.CONFIDENCE
    n_resamples: int = stats.N_RESAMPLES
    rng_seed: int = stats.RNG_SEED
    alpha: float = stats.ALPHA
    material_difference: float = 0.02
    prob_best: float = 0.8
    fdr: float = 0.05
    threshold_resamples: int = 400

    def validate(self) -> "Settings":
        """Returns self, or raises StudyError naming the first bad setting."""
        for m in self.measures:
            get_measure(m)
        if self.design_measure != "auto":
            get_measure(self.design_measure)
            if self.design_measure not in MEASURES:
                raise StudyError(
                    f"design measure {self.design_measure!r}: give a measure name, e.g. {', '.join(BOUND_MEASURES)}"
                )
        if not self.taus or not all(0 < t <= 1 for t in self.taus):
            raise StudyError(f"τ values must lie in (0, 1], got {self.taus}")
        if not 0 < self.confidence < 1 or not 0 < self.alpha < 0.5 or not 0 < self.fdr < 1:
            raise StudyError("confidence and fdr must lie in (0, 1), alpha in (0, 0.5)")
        if not 0.5 < self.prob_best <= 1:
            raise StudyError(f"prob_best must lie in (0.5, 1], got {self.prob_best}")
        if not self.material_difference > 0:
            raise StudyError(f"material_difference must be > 0, got {self.material_difference}")
        if self.threshold_resamples < 1 or self.n_resamples < 1:
            raise StudyError("n_resamples and threshold_resamples must be >= 1")
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
        self.table, self.grid = self.prepare(table, meta)
        self.kinds = kinds_in(self.table)
        self.nonlinearities = nonlinearities_in(self.table)
        self.columns = {m: get_measure(m).column for m in settings.measures}

    def prepare(self, table: pd.DataFrame, meta: dict | None) -> tuple[pd.DataFrame, np.ndarray]:
        """Returns (table with its derived, band and grid_ratio columns, its ratio grid)."""
        grid = ratio_grid(table, meta)
        table = check_table(table).copy()
        table["band"] = stats.band_of(table["expansion_ratio"], self.bands)
        table["grid_ratio"] = nearest_grid_ratio(table["expansion_ratio"], grid)
        return table, grid

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


# --- paper findings --------------------------------------------------------------------------------------


def _cells(ctx: _Context, kinds, select_x, select_y) -> list[dict]:
    """Returns one comparison mean(x) − mean(y) per measure × kind × (all rows, each factor level), judged
    (`judge_cells`). Single layers get no bound-relative cells: there they equal their normalised twins."""
    s = ctx.settings
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
                if kind in SINGLE_LAYER_KINDS and measure in BOUND_MEASURES:
                    continue
                x, y = x_rows[column].to_numpy(dtype=float), y_rows[column].to_numpy(dtype=float)
                est = ctx.diff(x, y)
                cells[measure].append(
                    {
                        "measure": measure,
                        "kind": kind,
                        "factor": factor,
                        "level": level,
                        "difference": est.mean,
                        "ci": [est.low, est.high],
                        "n": [int(len(x_rows)), int(len(y_rows))],
                        "material": stats.material(est, s.material_difference),
                        "p_above": stats.exceeds_p(x, y, s.material_difference),
                        "p_below": stats.exceeds_p(y, x, s.material_difference),
                        "p_tost": stats.tost(x, y, s.material_difference, s.alpha).p_tost
                        if len(x) >= 2 and len(y) >= 2
                        else math.nan,
                    }
                )
    return judge_cells([c for m in ctx.columns for c in cells[m]], s.fdr)


def judge_cells(cells: list[dict], fdr: float = 0.05) -> list[dict]:
    """Returns the cells (dicts with difference, ci, material, p_above, p_below, p_tost) with a `status` and
    `holds`, the three p-value families Benjamini–Hochberg-adjusted over all the cells given (one finding):

    - holds: materially positive, BH-adjusted p of H0 "difference ≤ margin" ≤ fdr *and* the bootstrap CI
      ≥ margin (`stats.material`);
    - opposite: the same, negative;
    - tied: equivalent within ±margin, BH-adjusted TOST p ≤ fdr and the CI inside (−margin, margin);
    - undecided: none of these (the data does not say); untestable: no CI.

    `holds` is True / False (opposite or tied) / None (undecided or untestable).
    """
    adjusted = {
        key: stats.benjamini_hochberg([c[key] for c in cells], fdr)[0] for key in ("p_above", "p_below", "p_tost")
    }
    out = []
    for i, c in enumerate(cells):
        c = {**c, **{f"{key}_bh": float(adjusted[key][i]) for key in adjusted}}
        lo = c["ci"][0]
        if lo is None or not math.isfinite(lo):
            status = "untestable"
        elif c["p_above_bh"] <= fdr and c["material"] == "material" and c["difference"] > 0:
            status = "holds"
        elif c["p_below_bh"] <= fdr and c["material"] == "material" and c["difference"] < 0:
            status = "opposite"
        elif c["p_tost_bh"] <= fdr and c["material"] == "immaterial":
            status = "tied"
        else:
            status = "undecided"
        c["status"] = status
        c["holds"] = True if status == "holds" else False if status in ("opposite", "tied") else None
        out.append(c)
    return out


def _verdict(cells: list[dict]) -> str:
    """Returns the verdict over one measure's cells: reproduced (every pooled kind holds and no factor level
    is tied or opposite), not_reproduced (no cell holds), conditional (between), untestable (no cell judged)."""
    judged = [c for c in cells if c["status"] != "untestable"]
    if not judged:
        return "untestable"
    if not any(c["status"] == "holds" for c in judged):
        return "not_reproduced"
    pooled = [c for c in judged if c["factor"] == "all"]
    if all(c["status"] == "holds" for c in pooled) and not any(c["status"] in ("tied", "opposite") for c in judged):
        return "reproduced"
    return "conditional"


def _fmt_effect(c: dict) -> str:
    ci = c["ci"]
    ci_text = "" if ci[0] is None or not math.isfinite(ci[0]) else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{c['difference']:+.3f}{ci_text}"


def _where(cells: list[dict]) -> str:
    """Returns where the cells of one measure hold, kind by kind, and the factor levels where the status
    differs from the kind's pooled one, e.g. "linear holds +0.12 [0.10, 0.14], tied at input_dist=gaussian"."""
    parts = []
    for kind in dict.fromkeys(c["kind"] for c in cells):
        mine = [c for c in cells if c["kind"] == kind]
        pooled = next((c for c in mine if c["factor"] == "all"), None)
        if pooled is None:
            continue
        flips = [c for c in mine if c["factor"] != "all" and c["status"] not in (pooled["status"], "untestable")]
        text = f"{kind} {pooled['status']} {_fmt_effect(pooled)}"
        if flips:
            by_status: dict[str, list[str]] = {}
            for c in flips:
                by_status.setdefault(c["status"], []).append(f"{c['factor']}={c['level']}")
            text += " (" + "; ".join(f"{st} at {', '.join(v)}" for st, v in by_status.items()) + ")"
        parts.append(text)
    return "; ".join(parts)


def _summary(cells: list[dict], measures) -> tuple[dict, str]:
    """Returns (verdict per measure, a sentence per measure saying where the finding holds and flips)."""
    by_measure, parts = {}, []
    for measure in measures:
        mine = [c for c in cells if c["measure"] == measure]
        if not mine:
            continue  # e.g. a bound-relative measure of a single-layer finding: its twin's cells say it
        by_measure[measure] = _verdict(mine)
        parts.append(f"{measure}: {by_measure[measure].replace('_', ' ')} ({_where(mine)})")
    return by_measure, "; ".join(parts)


def _design_cells(cells: list[dict], design: str) -> list[dict]:
    """Returns the cells a finding's verdict is read from: the design measure's, and for single layers (which
    have no bound-relative cells) its normalised twin's, equal to it there (the bound is d_out)."""
    twin = next((m for m, b in BOUND_TWIN.items() if b == design), design)
    return [
        c
        for c in cells
        if c["measure"] == design or (c["measure"] == twin and c["kind"] in SINGLE_LAYER_KINDS and twin != design)
    ]


def _attribution(cells: list[dict], claim: str) -> list[dict]:
    """Returns, per kind and normalised measure, whether the pooled finding is structural or the
    nonlinearity's: "nonlinearity" when it holds relative to the structural bound, "structural" when it
    holds only normalised by d_out, "none" when it holds under neither, "untestable" when not estimable.
    For one layer the bound-relative measure is its normalised twin (the bound is d_out)."""
    pooled = {(c["kind"], c["measure"]): c["holds"] for c in cells if c["factor"] == "all"}
    out = []
    for kind in dict.fromkeys(c["kind"] for c in cells):
        for m, b in BOUND_TWIN.items():
            if (kind, m) not in pooled:
                continue
            raw = pooled[kind, m]
            rel = pooled.get((kind, b), raw if kind in SINGLE_LAYER_KINDS else None)
            if (kind, b) not in pooled and kind not in SINGLE_LAYER_KINDS:
                continue
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

    def level_verdict(v: list[dict]) -> str:
        known = [c for c in v if c["status"] != "untestable"]
        if not known:
            return "untestable"
        holds = [c["status"] == "holds" for c in known]
        return "reproduced" if all(holds) else "not_reproduced" if not any(holds) else "conditional"

    return {
        f: {lv: {m: level_verdict(v[m]) for m in measures if m in v} for lv, v in levels.items()}
        for f, levels in out.items()
    }


def _effects(cells: list[dict]) -> tuple[list[dict], list[dict]]:
    """Returns (the pooled effect per kind, the factor-level cells whose status differs from their kind's
    pooled one, untestable levels left out) of one measure's cells: the effect sizes and where they flip."""
    keep = ("kind", "measure", "difference", "ci", "n", "status")
    effects = [{k: c[k] for k in keep} for c in cells if c["factor"] == "all"]
    pooled = {c["kind"]: c["status"] for c in cells if c["factor"] == "all"}
    flips = [
        {**{k: c[k] for k in keep}, "factor": c["factor"], "level": c["level"], "pooled_status": pooled.get(c["kind"])}
        for c in cells
        if c["factor"] != "all" and c["status"] not in (pooled.get(c["kind"]), "untestable")
    ]
    return effects, flips


def _finding(ctx: _Context, claim: str, operationalised: str, kinds, select_x, select_y) -> dict:
    cells = _cells(ctx, [k for k in kinds if k in ctx.kinds], select_x, select_y)
    by_measure, summary = _summary(cells, ctx.columns)
    measure = ctx.settings.design_measure
    mine = _design_cells(cells, measure)
    effects, flips = _effects(mine)
    return {
        "claim": claim,
        "operationalised": operationalised,
        "verdict": _verdict(mine) if mine else "untestable",
        "measure": measure,
        "effects": effects,
        "flips": flips,
        "where": _where(mine),
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
        f"mean over non-identity nonlinearities in band {mild} minus band {drastic}; holds where the drop is "
        f"material (its CI >= {ctx.settings.material_difference}) at a false-discovery rate of {ctx.settings.fdr:g}",
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
    b_verdict = _combine(*parts)
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
        "by_measure": {
            m: _combine(b1["by_measure"][m], b2["by_measure"][m])
            for m in ctx.columns
            if m in b1["by_measure"] and m in b2["by_measure"]
        },
        "measure": ctx.settings.design_measure,
        "summary": f"nonlinear vs linear: {b1['verdict']}; complicated vs ReLU: {b2['verdict']}",
        "parts": {"nonlinear_above_linear": b1, "complicated_above_relu": b2},
    }
    b["attribution"] = b1["attribution"] + b2["attribution"]
    return {"a": a, "b": b, "c": c}


def _structural(ctx: _Context, schedule: dict) -> dict:
    """Returns what the architecture alone implies (not read from any nonlinearity): the block's rank cap
    and whether gradual expansion raises the structural capacity (its bound) over one block."""
    t = (
        int(ctx.table.loc[ctx.table["kind"].isin(BLOCK_KINDS), "block_expansion"].max())
        if ctx.table["kind"].isin(BLOCK_KINDS).any()
        else None
    )
    cap = schedule.get("structural_capacity") or {}
    normalized = next((m for m, b in BOUND_TWIN.items() if b == ctx.settings.design_measure), None)
    return {
        "block_rank_cap": None if t is None else f"min(d_out, N, {t + 1}·d_in) with shortcut (t = {t})",
        "block_cap_expansion": None if t is None else t + 1,
        "gradual_expansion_raises_bound": cap.get("beats"),
        "gradual_expansion_beats_single_normalized": (schedule.get("by_measure") or {}).get(normalized, {}).get("beats")
        if normalized
        else None,
    }


def _combine(v1: str, v2: str) -> str:
    return "untestable" if "untestable" in (v1, v2) else v1 if v1 == v2 else "conditional"


# --- public API ------------------------------------------------------------------------------------------


def _bound_check(table: pd.DataFrame) -> dict:
    """Returns how the identity networks' rank (float32 tolerance) sits against their linear bound, per input
    distribution and norm: a check of `rankstudy.random_nets.bounds` on the study's own rows."""
    rows = table[table["nonlinearity"] == "identity"]
    by = {}
    for (dist, norm), g in rows.groupby(["input_dist", "norm"], sort=True):
        gap = (g["linear_bound"] - g["rank"]).to_numpy(dtype=float)
        bound = np.maximum(g["linear_bound"].to_numpy(dtype=float), 1.0)
        by[f"{dist}/{norm}"] = {
            "n": int(len(g)),
            "below": int((gap > 0).sum()),
            "above": int((gap < 0).sum()),
            "mean_relative_gap": float(np.mean(np.abs(gap) / bound)),
            "max_relative_gap": float(np.max(np.abs(gap) / bound)),
        }
    return {
        "what": "identity networks: rank (float32 tolerance) against linear_bound (no nonlinearity, no norm), "
        "per input distribution / norm; the bound is exact for norm none where the inputs reach their rank",
        "uses_input_rank": "input_rank" in table.columns,
        "by_input_norm": by,
    }


def _source_record(table: pd.DataFrame, meta: dict) -> dict:
    return {
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
        "has_input_rank": "input_rank" in table.columns,
    }


def _setup(
    table: pd.DataFrame,
    meta: dict,
    settings: Settings,
    rule_tables: dict[str, tuple[pd.DataFrame, dict]] | None,
    proxy_report: dict | None,
) -> tuple[Settings, dict, _Context, dict[str, Source]]:
    """Returns (settings with the design measure resolved, the design-measure choice, the context, the rule
    sources): what the findings and the rules alone both start from."""
    settings.validate()
    unknown = sorted(set(rule_tables or {}) - set(RULE_TABLES))
    if unknown:
        raise StudyError(f"unknown rule tables {unknown}; the rule study's parts are {', '.join(RULE_TABLES)}")
    choice = (
        choose_design_measure(proxy_report)
        if settings.design_measure == "auto"
        else {"measure": settings.design_measure, "source": "settings", "why": "given explicitly"}
    )
    measures = settings.measures
    if choice["measure"] not in measures:  # e.g. stable rank won: judged beside the others
        measures = (*measures, choice["measure"])
    settings = replace(settings, design_measure=choice["measure"], measures=measures)
    ctx = _Context(table, meta, settings)
    sources = {"main": Source(ctx.table, ctx.grid, "main study")}
    for name, (t, m) in (rule_tables or {}).items():
        prepared, grid = ctx.prepare(t, m)
        sources[name] = Source(prepared, grid, f"rule study part {name!r}")
    return settings, choice, ctx, sources


def design_rules(
    table: pd.DataFrame,
    meta: dict | None = None,
    settings: Settings = Settings(),
    *,
    rule_tables: dict[str, tuple[pd.DataFrame, dict]] | None = None,
    proxy_report: dict | None = None,
) -> dict:
    """Returns {"design_measure", "design_measure_choice", "rules"}: the design rules alone, as `find_principles`
    computes them (findings.json `recommendations.rules`), without the paper findings, rankings or curves."""
    settings, choice, ctx, sources = _setup(table, meta or {}, settings, rule_tables, proxy_report)
    rules = find_rules(ctx, sources)
    return json_ready(
        {"design_measure": settings.design_measure, "design_measure_choice": choice, "rules": rules},
        digits=FLOAT_DIGITS,
    )


def find_principles(
    table: pd.DataFrame,
    meta: dict | None = None,
    settings: Settings = Settings(),
    command: str | None = None,
    progress: bool = False,
    *,
    rule_tables: dict[str, tuple[pd.DataFrame, dict]] | None = None,
    proxy_report: dict | None = None,
) -> dict:
    """Returns the findings dict (schema docs/findings_schema.md, version SCHEMA_VERSION) of a results table.

    `rule_tables` maps parts of the rule study (`rankstudy.findings.rules.RULE_TABLES`) to (table, metadata)
    of the study that samples the rows that rule reads; a part without one reads `table`. `proxy_report` is
    `rankstudy.findings.design.load_proxy_report`'s dict: with `design_measure="auto"` the design measure is
    read from it. `progress` shows a bar (one step per part of the findings) on stderr.
    """
    meta = meta or {}
    settings, choice, ctx, sources = _setup(table, meta, settings, rule_tables, proxy_report)
    bar = tqdm(total=4, desc="findings", unit="part", disable=not progress, file=sys.stderr)

    def step(value):
        bar.update()
        return value

    rankings = step(_rankings(ctx))
    curves = step(_curves(ctx))
    rules = step(find_rules(ctx, sources))
    paper_findings = step(_paper_findings(ctx))
    bar.close()
    design = settings.design_measure
    expansion = rules["expansion"]
    findings = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "versions": versions(),
        "source": _source_record(table, meta),
        "rule_study": {name: _source_record(t, m) for name, (t, m) in (rule_tables or {}).items()},
        "settings": {
            **{k: v for k, v in asdict(settings).items()},
            "design_measure_choice": choice,
            "measure_columns": {m: MEASURES[m].column for m in settings.measures},
            "bands": [asdict(b) for b in ctx.bands],
            "ratio_grid": ctx.grid.tolist(),
            "ci_method": f"percentile bootstrap (scipy.stats.bootstrap), {settings.n_resamples} resamples, "
            f"seed {settings.rng_seed}, over networks",
            "significance": f"rankings: Welch t-test on means, Holm-corrected within each (measure, kind, band) "
            f"family, alpha {settings.alpha} ('not shown below the best', not 'tied')",
            "cell_rule": f"holds / opposite: one-sided Welch test of |difference| > {settings.material_difference} "
            f"Benjamini-Hochberg-adjusted over the finding's cells at FDR {settings.fdr:g}, and the bootstrap CI "
            f"beyond the margin; tied: TOST within ±{settings.material_difference}, BH-adjusted, and the CI inside "
            "the margin; undecided: neither",
            "verdict_rule": "under the design measure (its normalised twin for single-layer findings): reproduced "
            "= every kind's pooled cell holds and no factor level is tied or opposite; not_reproduced = no cell "
            "holds; conditional = between (see `effects` and `flips`)",
            "decision_rule": f"a choice is decided when P(best) >= {settings.prob_best:g} and the best's lead over "
            f"the runner-up is material on its CI (margin {settings.material_difference:g}); undecided rules "
            "have choice null and a variant keeps ReXNet's choice",
            "curve_family": stats.CURVE_FAMILY,
            "factors": list(FACTORS),
            "paper_nonlinearities": list(PAPER_NONLINEARITIES),
            "bound_twins": dict(BOUND_TWIN),
            "structural_bound": "rankstudy.random_nets.bounds.structural_bound: the largest rank the shapes "
            "allow over every nonlinearity, with the input's measured rank where the table has `input_rank`; "
            "bound-relative = measure · d_out / min(d_out, bound)",
        },
        "recommendations": {
            "recommended_nonlinearity": rules["nonlinearity"]["choice"],
            "max_expansion": expansion["choice"],
            "max_expansion_per_layer": {k: v["ratio"] for k, v in expansion["threshold"]["by_measure"][design].items()},
            "gradual_expansion_beats_single": rules["schedule"]["beats"],
            "structural": _structural(ctx, rules["schedule"]),
            "rules": rules,
        },
        "paper_findings": paper_findings,
        "bound_check": _bound_check(ctx.table) if "rank" in ctx.table.columns else None,
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
    *,
    rule_tables: dict[str, tuple[pd.DataFrame, dict]] | None = None,
    proxy_report: dict | None = None,
) -> dict:
    """Returns the findings after writing them to `json_path` and, rendered, to `md_path` (both atomically).

    `md_path` defaults to FINDINGS.md beside the JSON file; `rule_tables`, `proxy_report` as `find_principles`.
    """
    findings = find_principles(
        table, meta, settings, command, progress=progress, rule_tables=rule_tables, proxy_report=proxy_report
    )
    json_path = Path(json_path)
    md_path = Path(md_path) if md_path is not None else json_path.parent / "FINDINGS.md"
    for folder in dict.fromkeys((json_path.parent, md_path.parent)):
        prepare_out_dir(folder)
    write_json(json_path, findings, digits=FLOAT_DIGITS)
    atomic_write_text(md_path, findings_markdown(findings))
    return findings
