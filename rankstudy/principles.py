"""Turns a results table into quantified design rules and verdicts on the paper's findings (findings.json,
schema in docs/findings_schema.md) and renders them as FINDINGS.md.

The data flows one way: results table → `find_principles` → findings dict → JSON / Markdown. Every number
comes from `rankstudy.stats`; the choices behind each rule are recorded in the findings' `settings`.
"""
import importlib.metadata
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .errors import StudyError
from .measures import (FACTORS, FINDING_MEASURES, MEASURES, PAPER_NONLINEARITIES, check_table, get_measure,
                       kinds_in, nearest_grid_ratio, nonlinearities_in, ratio_grid)
from .store import atomic_path, write_json

SCHEMA_VERSION = 1
DEFAULT_TAUS: tuple[float, ...] = (0.9, 0.95)
VERDICTS: tuple[str, ...] = ("reproduced", "not_reproduced", "mixed", "untestable")
# "Complicated" and "simple" nonlinearities as the paper's finding (b) names them.
COMPLICATED: tuple[str, ...] = ("elu", "silu")
SIMPLE: tuple[str, ...] = ("relu", "relu6")


@dataclass(frozen=True)
class Settings:
    """How findings are computed; recorded verbatim in findings.json `settings`.

    design_measure: the measure the design rules (max expansion, gradual vs single) are read from. The
    default, rank at rtol 1e-2, counts directions carrying at least 1 % of the largest singular value:
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
    design_measure: str = "rank_rtol_1e-2"
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

def _clean(obj):
    """Returns `obj` as plain JSON data: numpy scalars → Python, NaN/inf → None, tuples → lists."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):   # 6 significant digits: far below any CI's width
        return float(f"{obj:.6g}") if math.isfinite(obj) else None
    return obj


def _level(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def _tau_key(tau: float) -> str:
    return f"{tau:g}"


def _estimate(est: stats.Estimate) -> dict:
    return {"value": est.mean, "ci": [est.low, est.high], "n": est.n}


def analysis_versions() -> dict:
    """Returns the versions of Python and the packages that shape the findings and figures."""
    def v(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    import platform
    return {"python": platform.python_version(), **{p: v(p) for p in ("rankstudy-rexnet", "numpy", "scipy",
                                                                       "pandas", "matplotlib")}}


class _Context:
    """The table with its band and grid columns, and the settings: what every section below reads."""

    def __init__(self, table: pd.DataFrame, meta: dict, settings: Settings):
        self.settings = settings
        self.bands = stats.make_bands(settings.band_edges)
        self.grid = ratio_grid(table, meta)
        table = table.copy()
        table["band"] = stats.band_of(table["expansion_ratio"], self.bands)
        table["grid_ratio"] = nearest_grid_ratio(table["expansion_ratio"], self.grid)
        self.table = table
        self.kinds = kinds_in(table)
        self.nonlinearities = nonlinearities_in(table)
        self.columns = {m: get_measure(m).column for m in settings.measures}
        mask = np.ones(len(table), dtype=bool)
        for column, value in settings.design_rows:
            if column not in table.columns:
                raise StudyError(f"design_rows names column {column!r}, which the table lacks")
            mask &= (table[column].astype(str) == str(value)).to_numpy()
        self.design_filter = [list(p) for p in settings.design_rows] if mask.any() else []
        self.design_table = table[mask] if mask.any() else table

    def ci(self, values) -> stats.Estimate:
        s = self.settings
        return stats.mean_ci(values, s.confidence, s.n_resamples, s.rng_seed)

    def diff(self, x, y) -> stats.Estimate:
        s = self.settings
        return stats.diff_ci(x, y, s.confidence, s.n_resamples, s.rng_seed)

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
                for c in comparisons:   # a precedes b in `order`, so a's mean ≥ b's
                    if c.significant:
                        above[c.a].append(c.b)
                best = order[0]
                below_best = set(above[best])
                rankings.append({
                    "measure": measure, "kind": kind, "band": band.label,
                    "order": [{"rank": i + 1, "nonlinearity": nl, "mean": est[nl].mean,
                               "ci": [est[nl].low, est[nl].high], "n": est[nl].n,
                               "significantly_above": above[nl]} for i, nl in enumerate(order)],
                    "top_group": [nl for nl in order if nl not in below_best],
                })
    return rankings


def _curves(ctx: _Context) -> list[dict]:
    """Returns a fitted curve per measure × kind × nonlinearity, with fitted and empirical thresholds per τ."""
    out = []
    for measure, column in ctx.columns.items():
        for (kind, nl), rows in ctx.table.groupby(["kind", "nonlinearity"], sort=False):
            fit, thresholds = _thresholds(ctx, rows, column)
            out.append({"measure": measure, "kind": kind, "nonlinearity": nl, "converged": fit.converged,
                        "params": {"top": fit.top, "r_break": fit.r_break, "tail": fit.tail,
                                   "sharpness": fit.sharpness},
                        "rmse": fit.rmse, "n": fit.n, "ratio_range": [fit.r_min, fit.r_max],
                        "thresholds": thresholds})
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
    for measure, column in ctx.columns.items():
        values = {nl: g[column].to_numpy() for nl, g in rows.groupby("nonlinearity")}
        est = {nl: ctx.ci(v) for nl, v in values.items()}
        order = sorted(values, key=lambda nl: (-est[nl].mean, nl))
        comparisons = stats.pairwise({nl: values[nl] for nl in order}, ctx.settings.alpha)
        below_best = {c.b for c in comparisons if c.a == order[0] and c.significant}
        position = {nl: 1 + sum(c.b == nl and c.significant for c in comparisons) for nl in order}
        by_measure[measure] = {"order": order, "best": order[0],
                               "top_group": [nl for nl in order if nl not in below_best],
                               "position": position,
                               "means": {nl: _estimate(est[nl]) for nl in order}}
        for nl in order:
            positions.setdefault(nl, []).append(position[nl])
    design = ctx.settings.design_measure
    design_mean = {nl: by_measure[design]["means"][nl]["value"] for nl in positions}
    mean_position = {nl: float(np.mean(p)) for nl, p in positions.items()}
    ranked = sorted(mean_position, key=lambda nl: (mean_position[nl], -design_mean[nl], nl))
    tied = [nl for nl in ranked[1:] if mean_position[nl] == mean_position[ranked[0]]]
    return {"name": ranked[0], "tied_with": tied, "kind": kind,
            "rows": "expansion_ratio > 1, nonlinearity != identity",
            "design_rows": ctx.design_filter,
            "n_rows": int(len(rows)),
            "rule": "lowest mean position over the measures (position = 1 + number of nonlinearities "
                    "significantly above, Welch-Holm); ties broken by the design measure's mean",
            "mean_position": {nl: mean_position[nl] for nl in ranked}, "by_measure": by_measure}


def _thresholds(ctx: _Context, rows: pd.DataFrame, column: str) -> tuple[stats.CurveFit, dict]:
    """Returns the curve fitted to `rows` and, per τ, its fitted and empirical thresholds."""
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
        out[key] = {"ratio": chosen[source]["ratio"], "status": chosen[source]["status"], "source": source,
                    "empirical": chosen["empirical"],
                    "by_measure": {m: per_measure[m][key] for m in ctx.columns}}
    return {"nonlinearity": nonlinearity, "kind": kind, "measure": design, "design_rows": ctx.design_filter,
            "n_rows": int(len(rows)), "per_tau": out}


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
        by_measure[measure] = {**_estimate(est), "beats": ctx.holds(est)}
        for band in ctx.bands:
            s, b = stack[stack["band"] == band.label], block[block["band"] == band.label]
            if len(s) and len(b):
                e = ctx.diff(s[column], b[column])
                by_band.append({"measure": measure, "band": band.label, **_estimate(e), "beats": ctx.holds(e)})
        for depth, s in stack.groupby("depth"):
            e = ctx.diff(s[column], block[column])
            by_depth.append({"measure": measure, "depth": int(depth), **_estimate(e), "beats": ctx.holds(e)})
    design = by_measure[ctx.settings.design_measure]
    return {"value": design["beats"], "measure": ctx.settings.design_measure, "difference": design["value"],
            "ci": design["ci"], "comparison": "mean(stack) - mean(block), expansion_ratio > 1, non-identity",
            "design_rows": ctx.design_filter,
            "by_measure": by_measure, "by_band": by_band, "by_depth": by_depth}


# --- paper findings --------------------------------------------------------------------------------------

def _cells(ctx: _Context, kinds, select_x, select_y) -> list[dict]:
    """Returns one comparison mean(x) − mean(y) per measure × kind × (all rows, each factor level)."""
    cells = []
    table = ctx.table
    for measure, column in ctx.columns.items():
        for kind in kinds:
            rows = table[table["kind"] == kind]
            if rows.empty:
                continue
            slices = [("all", "all", rows)]
            for factor in FACTORS:
                for level, part in rows.groupby(factor, sort=True):
                    if rows[factor].nunique() > 1:
                        slices.append((factor, _level(level), part))
            for factor, level, part in slices:
                x, y = select_x(part)[column], select_y(part)[column]
                est = ctx.diff(x, y)
                cells.append({"measure": measure, "kind": kind, "factor": factor, "level": level,
                              "difference": est.mean, "ci": [est.low, est.high], "n": [int(len(x)), int(len(y))],
                              "holds": ctx.holds(est)})
    return cells


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
            partial.append(f"{kind} {word} {', '.join(levels)}" if levels
                           else f"{kind} {'holds' if pooled else 'fails'} pooled only")
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


def _finding(ctx: _Context, claim: str, operationalised: str, kinds, select_x, select_y) -> dict:
    cells = _cells(ctx, [k for k in kinds if k in ctx.kinds], select_x, select_y)
    by_measure, summary = _summary(cells, ctx.columns)
    return {"claim": claim, "operationalised": operationalised, "verdict": _verdict(cells),
            "by_measure": by_measure, "summary": summary, "cells": cells}


def _paper_findings(ctx: _Context) -> dict:
    """Returns the verdicts on REXNET.md §1 findings (a)–(c), each cell a bootstrap CI of a difference."""
    expansion = [b for b in ctx.bands if b.low >= 1]
    mild, drastic = (expansion[0].label, expansion[-1].label) if len(expansion) >= 2 else (None, None)
    paper_nl = [nl for nl in PAPER_NONLINEARITIES if nl != "identity"]

    def nonlinear(rows):
        return rows[rows["nonlinearity"] != "identity"]

    def expanded(rows):
        return rows[rows["expansion_ratio"] > 1]

    def named(names):
        return lambda rows: expanded(rows)[expanded(rows)["nonlinearity"].isin(names)]

    a = _finding(
        ctx, "drastic channel expansion harms the rank",
        f"mean over non-identity nonlinearities in band {mild} minus band {drastic}; holds when the drop is "
        f">= {ctx.settings.material_difference} and its CI excludes 0",
        ("linear", "depthwise", "block"),
        lambda rows: nonlinear(rows[rows["band"] == mild]), lambda rows: nonlinear(rows[rows["band"] == drastic]))
    b1 = _finding(
        ctx, "nonlinearities expand the rank",
        f"expansion rows (r > 1): mean over the paper's nonlinearities {paper_nl} minus identity",
        ("linear", "depthwise"), named(paper_nl), named(["identity"]))
    b2 = _finding(
        ctx, "complicated nonlinearities (ELU, SiLU) expand it more than ReLU/ReLU6",
        f"expansion rows (r > 1): mean over {list(COMPLICATED)} minus mean over {list(SIMPLE)}",
        ("linear", "depthwise"), named(COMPLICATED), named(SIMPLE))
    parts = [b1["verdict"], b2["verdict"]]
    b_verdict = ("untestable" if "untestable" in parts else parts[0] if parts[0] == parts[1] else "mixed")
    c = _finding(
        ctx, "nonlinearities are critical for convolutions",
        f"convolutional kinds, expansion rows (r > 1): mean over the paper's nonlinearities minus identity",
        ("depthwise", "block", "stack"), named(paper_nl), named(["identity"]))
    b = {"claim": "nonlinearities expand the rank, complicated ones (ELU, SiLU) more than ReLU/ReLU6",
         "verdict": b_verdict,
         "by_measure": {m: _combine(b1["by_measure"][m], b2["by_measure"][m]) for m in ctx.columns},
         "summary": f"nonlinear vs linear: {b1['verdict']}; complicated vs ReLU: {b2['verdict']}",
         "parts": {"nonlinear_above_linear": b1, "complicated_above_relu": b2}}
    return {"a": a, "b": b, "c": c}


def _combine(v1: str, v2: str) -> str:
    return "untestable" if "untestable" in (v1, v2) else v1 if v1 == v2 else "mixed"


# --- public API ------------------------------------------------------------------------------------------

def find_principles(table: pd.DataFrame, meta: dict | None = None, settings: Settings = Settings(),
                    command: str | None = None) -> dict:
    """Returns the findings dict (schema docs/findings_schema.md, version SCHEMA_VERSION) of a results table."""
    settings.validate()
    check_table(table)
    meta = meta or {}
    ctx = _Context(table, meta, settings)
    rankings = _rankings(ctx)
    curves = _curves(ctx)
    rec = _recommended_nonlinearity(ctx)
    max_exp = _max_expansion(ctx, rec.get("name"), rec.get("kind", "linear"))
    gradual = _gradual(ctx)
    findings = {
        "schema_version": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "versions": analysis_versions(),
        "source": {"n_rows": meta.get("n_rows", len(table)), "rows_used": len(table), "seed": meta.get("seed"),
                   "config": meta.get("config"), "command": meta.get("command"), "versions": meta.get("versions"),
                   "device": meta.get("device"), "created": meta.get("created"),
                   "table_schema_version": meta.get("schema_version"),
                   "rank_tolerance": meta.get("rank_tolerance")},
        "settings": {**{k: v for k, v in asdict(settings).items()},
                     "measure_columns": {m: MEASURES[m].column for m in settings.measures},
                     "bands": [asdict(b) for b in ctx.bands],
                     "ratio_grid": ctx.grid.tolist(),
                     "ci_method": f"percentile bootstrap (scipy.stats.bootstrap), {settings.n_resamples} resamples, "
                                  f"seed {settings.rng_seed}",
                     "significance": f"Welch t-test on means, Holm-corrected within each (measure, kind, band) "
                                     f"family, alpha {settings.alpha}",
                     "curve_family": stats.CURVE_FAMILY,
                     "factors": list(FACTORS), "paper_nonlinearities": list(PAPER_NONLINEARITIES)},
        "recommendations": {
            "recommended_nonlinearity": rec.get("name"),
            "max_expansion_per_layer": {k: v["ratio"] for k, v in max_exp["per_tau"].items()},
            "gradual_expansion_beats_single": gradual.get("value"),
            "basis": {"recommended_nonlinearity": rec, "max_expansion_per_layer": max_exp,
                      "gradual_expansion_beats_single": gradual},
        },
        "paper_findings": _paper_findings(ctx),
        "rankings": rankings,
        "curves": curves,
    }
    return _clean(findings)


def write_findings(table: pd.DataFrame, meta: dict | None, json_path: str | Path, md_path: str | Path | None = None,
                   settings: Settings = Settings(), command: str | None = None) -> dict:
    """Returns the findings after writing them to `json_path` and, rendered, to `md_path` (both atomically).

    `md_path` defaults to FINDINGS.md beside the JSON file.
    """
    findings = find_principles(table, meta, settings, command)
    json_path = Path(json_path)
    md_path = Path(md_path) if md_path is not None else json_path.parent / "FINDINGS.md"
    for p in (json_path, md_path):
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"cannot create {p.parent} ({e.strerror}); choose a writable --out") from None
    write_json(json_path, findings)
    with atomic_path(md_path) as tmp:
        tmp.write_text(findings_markdown(findings))
    return findings


# --- Markdown --------------------------------------------------------------------------------------------

def _num(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci) -> str:
    return "" if ci is None or ci[0] is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _ratio(t: dict) -> str:
    if t["status"] == "above_range":
        return f"≥ {t['ratio']:.3g} (never below τ)"
    if t["status"] == "below_range":
        return "< smallest ratio"
    if t["status"] == "no_fit":
        return "no fit"
    return f"{t['ratio']:.3g}"


def findings_markdown(findings: dict) -> str:
    """Returns FINDINGS.md: the verdicts, the design rules, the rankings and thresholds, readable as text."""
    f, src, st = findings, findings["source"], findings["settings"]
    rec = f["recommendations"]
    basis = rec["basis"]
    config = src.get("config") or {}
    lines = [
        "# Rank study: findings",
        "",
        f"Source: {src['rows_used']} random networks (seed {src['seed']}), `{src['command']}`, created "
        f"{src['created']}. Findings written by `{f['command']}` at {f['created']} (findings schema "
        f"v{f['schema_version']}; versions: " + ", ".join(f"{k} {v}" for k, v in f["versions"].items()) + ").",
        "",
        f"Config: kinds {config.get('kinds')}, d_in {config.get('d_in')}, expansion ratio "
        f"{config.get('ratio_min')}–{config.get('ratio_max')} ({config.get('n_ratios')} log steps), N/d_out "
        f"{config.get('n_over_d')}, init {config.get('inits')}, norm {config.get('norms')}, input "
        f"{config.get('input_dist')}.",
        "",
        f"Measures (all divided by d_out): {', '.join(st['measures'])}. Design rules read from "
        f"**{st['design_measure']}**. CIs: {st['ci_method']}, {st['confidence']:.0%}. Significance: "
        f"{st['significance']}. A difference counts only if ≥ {st['material_difference']} and its CI excludes 0.",
        "",
        "## The paper's findings (REXNET.md §1)",
        "",
        "| finding | verdict | " + " | ".join(st["measures"]) + " |",
        "|---|---|" + "---|" * len(st["measures"]),
    ]
    for key, item in f["paper_findings"].items():
        lines.append(f"| ({key}) {item['claim']} | **{item['verdict']}** | "
                     + " | ".join(item["by_measure"].get(m, "–") for m in st["measures"]) + " |")
    lines.append("")
    for key, item in f["paper_findings"].items():
        parts = item.get("parts", {"": item})
        for name, part in parts.items():
            title = f"({key}) {part['claim']}" + (f" — part `{name}`" if name else "")
            lines += [f"### {title}: {part['verdict']}", "", f"Tested as: {part['operationalised']}.", "",
                      f"Where it holds: {part['summary']}.", "",
                      "Differences pooled over the factors (mean [95% CI]; ✓ = holds):", "",
                      "| kind | " + " | ".join(st["measures"]) + " |", "|---|" + "---|" * len(st["measures"])]
            kinds = list(dict.fromkeys(c["kind"] for c in part["cells"]))
            for kind in kinds:
                row = []
                for m in st["measures"]:
                    cell = next((c for c in part["cells"] if c["kind"] == kind and c["measure"] == m
                                 and c["factor"] == "all"), None)
                    mark = "" if cell is None or cell["holds"] is None else " ✓" if cell["holds"] else " ✗"
                    row.append("–" if cell is None else f"{_num(cell['difference'])}{_ci(cell['ci'])}{mark}")
                lines.append(f"| {kind} | " + " | ".join(row) + " |")
            lines.append("")

    r = basis["recommended_nonlinearity"]
    lines += ["## Design rules", "",
              f"**Recommended nonlinearity after an expansion layer: `{rec['recommended_nonlinearity']}`** "
              f"(kind {r.get('kind')}, {r.get('rows')}, rows {r.get('design_rows')}; {r.get('rule')})."
              + (f" Statistically tied with: {', '.join(r['tied_with'])}." if r.get("tied_with") else ""), "",
              "| measure | best | not significantly below the best |", "|---|---|---|"]
    for m, b in r.get("by_measure", {}).items():
        lines.append(f"| {m} | {b['best']} ({_num(b['means'][b['best']]['value'])}) | {', '.join(b['top_group'])} |")
    lines += ["", "Mean position over the measures: " + ", ".join(
        f"{nl} {p:.1f}" for nl, p in r.get("mean_position", {}).items()) + ".", ""]

    mx = basis["max_expansion_per_layer"]
    lines += [f"**Maximum expansion per layer** ({mx['nonlinearity']}, kind {mx['kind']}, measure {mx['measure']}, "
              "from the fitted curve; empirical = largest sampled ratio whose mean and all smaller ones "
              "are ≥ τ):", "",
              "| τ | max expansion (fit) | empirical | " + " | ".join(st["measures"]) + " (fit) |",
              "|---|---|---|" + "---|" * len(st["measures"])]
    for tau, t in mx["per_tau"].items():
        per = [_ratio(t["by_measure"][m]["fit"]) if m in t["by_measure"] else "–" for m in st["measures"]]
        emp = _ratio(t["empirical"]) if t.get("empirical") else "–"
        main = "–" if t["ratio"] is None else _ratio({"ratio": t["ratio"], "status": t["status"]})
        lines.append(f"| {tau} | **{main}** | {emp} | " + " | ".join(per) + " |")
    lines.append("")

    g = basis["gradual_expansion_beats_single"]
    if g.get("value") is None and "reason" in g:
        lines += [f"**Gradual vs one large expansion**: not tested ({g['reason']}).", ""]
    else:
        lines += [f"**Gradual expansion over several blocks beats one large expansion: {g['value']}** "
                  f"({g['comparison']}; {g['measure']}: {_num(g['difference'])}{_ci(g['ci'])}).", "",
                  "| measure | all r > 1 | " + " | ".join(b["label"] for b in st["bands"] if b["low"] >= 1)
                  + " | " + " | ".join(f"depth {d}" for d in sorted({x['depth'] for x in g['by_depth']})) + " |"]
        n_cols = 1 + sum(1 for b in st["bands"] if b["low"] >= 1) + len({x['depth'] for x in g['by_depth']})
        lines.append("|---|" + "---|" * n_cols)
        for m, overall in g["by_measure"].items():
            cells = [f"{_num(overall['value'])}{_ci(overall['ci'])}"]
            for b in (b for b in st["bands"] if b["low"] >= 1):
                x = next((x for x in g["by_band"] if x["measure"] == m and x["band"] == b["label"]), None)
                cells.append("–" if x is None else _num(x["value"]))
            for d in sorted({x['depth'] for x in g['by_depth']}):
                x = next(x for x in g["by_depth"] if x["measure"] == m and x["depth"] == d)
                cells.append(_num(x["value"]))
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## Nonlinearities ranked per expansion-ratio band (all kinds pooled)", "",
              "Mean [95% CI] (rank); **bold** = not significantly below the band's best.", ""]
    band_labels = [b["label"] for b in st["bands"]]
    for m in st["measures"]:
        ranks = {x["band"]: x for x in f["rankings"] if x["measure"] == m and x["kind"] == "all"}
        if not ranks:
            continue
        nls = [o["nonlinearity"] for o in next(iter(ranks.values()))["order"]]
        lines += [f"### {m}", "", "| nonlinearity | " + " | ".join(f"r {b}" for b in band_labels) + " |",
                  "|---|" + "---|" * len(band_labels)]
        for nl in sorted(nls):
            cells = []
            for b in band_labels:
                o = next((o for o in ranks[b]["order"] if o["nonlinearity"] == nl), None) if b in ranks else None
                if o is None:
                    cells.append("–")
                    continue
                text = f"{_num(o['mean'])}{_ci(o['ci'])} ({o['rank']})"
                cells.append(f"**{text}**" if nl in ranks[b]["top_group"] else text)
            lines.append(f"| {nl} | " + " | ".join(cells) + " |")
        lines.append("")

    design = st["design_measure"]
    for tau in st["taus"]:
        key = _tau_key(tau)
        curves = [c for c in f["curves"] if c["measure"] == design]
        kinds = list(dict.fromkeys(c["kind"] for c in curves))
        nls = list(dict.fromkeys(c["nonlinearity"] for c in curves))
        lines += [f"## Largest expansion ratio keeping {design} ≥ {tau} (fitted curve / empirical)", "",
                  "| nonlinearity | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for nl in nls:
            cells = []
            for kind in kinds:
                c = next((c for c in curves if c["kind"] == kind and c["nonlinearity"] == nl), None)
                cells.append("–" if c is None else
                             f"{_ratio(c['thresholds'][key]['fit'])} / {_ratio(c['thresholds'][key]['empirical'])}")
            lines.append(f"| {nl} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [f"Curve family: `{st['curve_family']}`; parameters, fit RMSE and the thresholds under every "
              "measure are in findings.json (`curves`).", ""]
    return "\n".join(lines)
