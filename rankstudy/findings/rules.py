"""The design rules a ReXNet variant takes from the rank study (findings.json `recommendations.rules`), each read
where the variant applies it and reported with its uncertainty.

The paper (§3, §4) turns its rank measurements into three design choices: the nonlinearity after an
expanding 1×1 conv (SiLU in ReXNet), how far one layer may expand (ReXNet's blocks expand t = 6, Table 1),
and expanding gradually over many blocks rather than in a few (ReXNet's linear channel schedule). A rule
here is one of these choices, and each says:

- which rows it read (`rows`: the filters, any filter relaxed for lack of rows, how many networks) — read
  *where the variant applies it*, not pooled over the whole study:
  - nonlinearity: one 1×1 conv → BN → f (`linear`), expansion 3–6× (ReXNet's t = 6 and the caps down to 3
    a variant may apply), inputs like a block's expansion conv sees: the previous block's projection,
    linear and batch-normalised, i.e. zero-mean and correlated across channels (`gaussian`, `correlated`;
    not post-ReLU `halfnormal`, nor raw image patches `fmnist`, which only the stem sees), and many samples
    per channel (measured N/d_out ≥ 3: a real layer sees batch × H × W ≫ d_out positions);
  - expansion cap: the threshold is read from the block's expanding 1×1 conv (`linear`, any r ≥ 1) with
    the variant's nonlinearity; where the design measure never crosses τ in the sampled range, the rule is
    instead a comparison of the expansions t a block may take (`block` rows with t ∈ the sampled set,
    block widening 1–1.75× as ReXNet's blocks do: 16 → 185 channels over 16 blocks, 1.06–1.69× each);
  - schedule: stacks of 2–4 blocks expanding geometrically (`stack`) vs one block (`block`) at the same
    total ratio r > 1, with the variant's nonlinearity;
- its estimate with a percentile-bootstrap CI over networks and, for a choice among options, each
  option's bootstrap probability of being best (`stats.prob_best`); a threshold carries its bootstrap CI
  and the distribution of the empirical threshold over the resamples;
- whether it is `decided`, and if not, why. A choice is decided when the best option's probability of
  being best is ≥ `Settings.prob_best` (0.8) *and* its lead over the runner-up is material on its CI
  (`stats.material`: the whole CI ≥ the margin). A threshold is decided when the integer cap it implies
  is the same at both ends of its CI. The schedule is decided when stack − block is material on its CI
  (either sign); equivalent within the margin is not a reason to leave ReXNet's schedule. An undecided
  rule has `choice` null: the builder keeps ReXNet's choice (`BASELINE`).
- sensitivity: the same choice per input distribution, leaving each design input out, and under every
  measure, so a reader sees where it flips.
"""

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .. import stats
from ..errors import StudyError
from ..store import load_results

# ReXNet's own choices (§4 and Table 1 of the paper): what a variant keeps when a rule is undecided.
BASELINE: dict[str, object] = {"nonlinearity": "silu", "expansion": 6, "schedule": "linear"}
# The inputs a block's expansion conv sees in ReXNet (module docstring).
DESIGN_INPUTS: tuple[str, ...] = ("gaussian", "correlated")
NONLINEARITY_RANGE: tuple[float, float] = (3.0, 6.0)
BLOCK_RATIO_RANGE: tuple[float, float] = (1.0, 1.75)
MIN_N_OVER_D = 3.0
# The sub-studies of the rule study (experiments/rule_study.py) and the rule part each feeds.
RULE_TABLES: tuple[str, ...] = ("nonlinearity", "threshold", "expansion", "schedule")


@dataclass(frozen=True)
class Where:
    """The rows a rule reads. Kind, ratio and the identity exclusion always apply; the others are relaxed
    (dropped, and recorded) when no row would be left, e.g. on a study that never sampled N/d_out ≥ 3."""

    kinds: tuple[str, ...]
    ratio_low: float | None = None  # inclusive; None = open
    ratio_high: float | None = None  # inclusive; None = open
    above_one: bool = False  # r > 1 strictly
    norm: str | None = "bn"
    inputs: tuple[str, ...] | None = DESIGN_INPUTS
    min_n_over_d: float | None = MIN_N_OVER_D
    nonlinearities: tuple[str, ...] | None = None
    exclude_identity: bool = True


NONLINEARITY_WHERE = Where(("linear",), *NONLINEARITY_RANGE)
THRESHOLD_WHERE = Where(("linear",), ratio_low=1.0)
EXPANSION_WHERE = Where(("block",), *BLOCK_RATIO_RANGE)
SCHEDULE_WHERE = Where(("stack", "block"), above_one=True)


@dataclass(frozen=True)
class Source:
    """A prepared table (band and grid_ratio columns) a rule reads, with its grid and a label for the record."""

    table: pd.DataFrame
    grid: np.ndarray
    label: str


def _close_low(r: pd.Series, low: float) -> pd.Series:
    return r >= low * (1 - 1e-9)


def _close_high(r: pd.Series, high: float) -> pd.Series:
    return r <= high * (1 + 1e-9)


def select(source: Source, where: Where) -> tuple[pd.DataFrame, dict]:
    """Returns (rows, record) of the rows `where` selects from `source`; the record lists the filters applied,
    the ones relaxed for lack of rows and the number of networks."""
    t = source.table
    applied: list[list] = [["kind", "in", list(where.kinds)]]
    mask = t["kind"].isin(where.kinds)
    r = t["expansion_ratio"]
    if where.ratio_low is not None:
        mask &= _close_low(r, where.ratio_low)
    if where.ratio_high is not None:
        mask &= _close_high(r, where.ratio_high)
    if where.ratio_low is not None or where.ratio_high is not None:
        applied.append(["expansion_ratio", "between", [where.ratio_low, where.ratio_high]])
    if where.above_one:
        mask &= r > 1
        applied.append(["expansion_ratio", ">", 1])
    if where.exclude_identity:
        mask &= t["nonlinearity"] != "identity"
        applied.append(["nonlinearity", "!=", "identity"])
    relaxed = []
    soft = []
    if where.norm is not None:
        soft.append((["norm", "==", where.norm], t["norm"].astype(str) == where.norm))
    if where.min_n_over_d is not None:
        soft.append((["n_over_d_actual", ">=", where.min_n_over_d], t["n_over_d_actual"] >= where.min_n_over_d))
    if where.inputs is not None and "input_dist" in t.columns:
        soft.append((["input_dist", "in", list(where.inputs)], t["input_dist"].isin(where.inputs)))
    if where.nonlinearities is not None:
        soft.append((["nonlinearity", "in", list(where.nonlinearities)], t["nonlinearity"].isin(where.nonlinearities)))
    for spec, m in soft:
        if (mask & m).any():
            mask &= m
            applied.append(spec)
        else:
            relaxed.append({"filter": spec, "why": "no row of the table would be left"})
    rows = t[mask.to_numpy()]
    return rows, {"source": source.label, "filters": applied, "relaxed": relaxed, "n_networks": int(len(rows))}


def _key(*arrays) -> tuple:
    return tuple(
        hashlib.blake2b(np.ascontiguousarray(a, dtype=float).tobytes(), digest_size=16).digest() for a in arrays
    )


class _Rules:
    """The rules' statistics, cached by input values (a measure and its bound-relative twin often hold the same)."""

    def __init__(self, ctx):
        self.ctx, self.s = ctx, ctx.settings
        self.margin = self.s.material_difference
        self.design = self.s.design_measure
        self._cache: dict = {}

    def column(self, measure: str | None = None) -> str:
        return self.ctx.columns[measure or self.design]

    def prob_best(self, groups: dict) -> stats.Choice:
        key = ("prob_best", tuple(groups), *_key(*groups.values()))
        if key not in self._cache:
            self._cache[key] = stats.prob_best(groups, self.s.n_resamples, self.s.rng_seed)
        return self._cache[key]

    # --- a choice among options --------------------------------------------------------------------------

    def choice(self, groups: dict, baseline) -> dict:
        """Returns the choice among `groups` (option → values): options with CI and probability of being best,
        the best's lead over the runner-up and over the baseline, and whether it is decided (module docstring)."""
        groups = {k: np.asarray(v, dtype=float) for k, v in groups.items() if len(v)}
        if not groups:
            return {"best": None, "decided": False, "reason": "no rows", "options": []}
        est = {k: self.ctx.ci(v) for k, v in groups.items()}
        order = sorted(groups, key=lambda k: (-est[k].mean, str(k)))
        pb = self.prob_best({k: groups[k] for k in order})
        best = order[0]
        out: dict = {
            "best": best,
            "prob_best": pb.prob[best],
            "options": [{"option": k, **est[k].to_dict(), "prob_best": pb.prob[k]} for k in order],
        }
        if len(order) < 2:
            return {**out, "decided": False, "reason": f"only one option ({best}) in the rows: nothing to compare"}
        runner = order[1]
        lead = self.ctx.diff(groups[best], groups[runner])
        out["lead"] = {
            "over": runner,
            **lead.to_dict(),
            "material": stats.material(lead, self.margin),
            "tost": stats.tost(groups[best], groups[runner], self.margin, self.s.alpha).verdict,
        }
        if baseline in groups and baseline != best:
            vs = self.ctx.diff(groups[best], groups[baseline])
            out["vs_baseline"] = {
                "baseline": baseline,
                **vs.to_dict(),
                "material": stats.material(vs, self.margin),
                "tost": stats.tost(groups[best], groups[baseline], self.margin, self.s.alpha).verdict,
            }
        why = []
        if pb.prob[best] < self.s.prob_best:
            why.append(f"P(best) of {best} is {pb.prob[best]:.2f} < {self.s.prob_best:g}")
        if out["lead"]["material"] != "material":
            lo, hi = lead.low, lead.high
            why.append(
                f"its lead over {runner}, {lead.mean:.3f} [{lo:.3f}, {hi:.3f}], is {out['lead']['material']} "
                f"against the margin {self.margin:g}"
            )
        out["decided"] = not why
        out["reason"] = (
            "; ".join(why)
            if why
            else f"P(best) {pb.prob[best]:.2f} >= {self.s.prob_best:g} and a material lead over {runner}"
        )
        return out

    def brief(self, groups: dict, baseline) -> dict:
        """Returns the compact form of `choice` kept for sensitivity views: best, P(best), its value and lead."""
        c = self.choice(groups, baseline)
        top = c["options"][0] if c.get("options") else {}
        return {
            "best": c["best"],
            "prob_best": c.get("prob_best"),
            "value": top.get("value"),
            "ci": top.get("ci"),
            "n": top.get("n"),
            "runner_up": (c.get("lead") or {}).get("over"),
            "lead": (c.get("lead") or {}).get("value"),
            "lead_ci": (c.get("lead") or {}).get("ci"),
            "decided": c["decided"],
        }

    # --- rules --------------------------------------------------------------------------------------------

    def nonlinearity(self, source: Source) -> dict:
        rows, record = select(source, NONLINEARITY_WHERE)
        column = self.column()
        groups = {nl: g[column].to_numpy() for nl, g in rows.groupby("nonlinearity", sort=True)}
        record["n_per_option"] = {nl: int(len(v)) for nl, v in groups.items()}
        choice = self.choice(groups, BASELINE["nonlinearity"])
        # Sensitivity: every input distribution (not only the design ones), each design input left out, every measure.
        all_inputs, _ = select(source, replace(NONLINEARITY_WHERE, inputs=None))
        by_input = {
            str(level): self.brief({nl: g[column].to_numpy() for nl, g in part.groupby("nonlinearity")}, "silu")
            for level, part in all_inputs.groupby("input_dist", sort=True)
        }
        used = sorted(set(rows["input_dist"])) if "input_dist" in rows.columns else []
        leave_out = (
            {
                f"without {level}": self.brief(
                    {nl: g[column].to_numpy() for nl, g in rows[rows["input_dist"] != level].groupby("nonlinearity")},
                    "silu",
                )
                for level in used
            }
            if len(used) > 1
            else {}
        )
        by_measure = {
            m: self.brief({nl: g[c].to_numpy() for nl, g in rows.groupby("nonlinearity")}, "silu")
            for m, c in self.ctx.columns.items()
        }
        return {
            "rule": "nonlinearity",
            "question": "which nonlinearity after an expanding 1x1 conv (paper §3, Figure 1 (a); ReXNet: SiLU)",
            "form": "choice",
            "measure": self.design,
            "baseline": BASELINE["nonlinearity"],
            "choice": choice["best"] if choice["decided"] else None,
            **choice,
            "applied": _where_dict(NONLINEARITY_WHERE),
            "rows": record,
            "sensitivity": {"by_input": by_input, "leave_one_input_out": leave_out, "by_measure": by_measure},
        }

    def expansion(self, threshold_source: Source, comparison_source: Source, nonlinearity: str) -> dict:
        s = self.s
        where_t = replace(THRESHOLD_WHERE, nonlinearities=(nonlinearity,))
        rows_t, record_t = select(threshold_source, where_t)
        thresholds = {m: self.threshold(rows_t, c) for m, c in self.ctx.columns.items()}
        design = thresholds[self.design]

        where_c = replace(EXPANSION_WHERE, nonlinearities=(nonlinearity,))
        rows_c, record_c = select(comparison_source, where_c)
        column = self.column()
        groups = {int(t): g[column].to_numpy() for t, g in rows_c.groupby("block_expansion", sort=True)}
        record_c["n_per_option"] = {str(t): int(len(v)) for t, v in groups.items()}
        comparison = self.choice(groups, BASELINE["expansion"])
        comparison["by_measure"] = {
            m: self.brief({int(t): g[c].to_numpy() for t, g in rows_c.groupby("block_expansion")}, 6)
            for m, c in self.ctx.columns.items()
        }
        all_inputs, _ = select(comparison_source, replace(where_c, inputs=None))
        comparison["by_input"] = {
            str(level): self.brief({int(t): g[column].to_numpy() for t, g in part.groupby("block_expansion")}, 6)
            for level, part in all_inputs.groupby("input_dist", sort=True)
        }

        per_tau = {}
        for tau in s.taus:
            key = f"{tau:g}"
            t = design[key]
            if t["status"] == "crossed":
                caps = [None if v is None else min(BASELINE["expansion"], math.floor(v)) for v in t["ci"]]
                decided = caps[0] is not None and caps[0] == caps[1]
                choice = min(BASELINE["expansion"], math.floor(t["ratio"]))
                per_tau[key] = {
                    "form": "threshold",
                    "choice": choice if decided else None,
                    "best": choice,
                    "decided": decided,
                    "reason": f"the cap floor(ratio) is {caps[0]} at the CI's low end and {caps[1]} at its high end"
                    + ("" if decided else ": not pinned by the data"),
                }
            else:
                per_tau[key] = {
                    "form": "comparison",
                    "choice": comparison["best"] if comparison["decided"] else None,
                    "best": comparison["best"],
                    "decided": comparison["decided"],
                    "reason": f"{self.design} is {t['status'].replace('_', ' ')} for tau {key} (never crosses it in "
                    f"the sampled ratios {t['ratio_range']}): the rule compares the expansions a block may take; "
                    + comparison["reason"],
                }
        first = per_tau[f"{s.taus[0]:g}"]
        return {
            "rule": "expansion",
            "question": "how far one block may expand (paper §3; ReXNet: t = 6)",
            "form": first["form"],
            "measure": self.design,
            "baseline": BASELINE["expansion"],
            "nonlinearity": nonlinearity,
            "choice": first["choice"],
            "best": first["best"],
            "decided": first["decided"],
            "reason": first["reason"],
            "rows": record_t if first["form"] == "threshold" else record_c,  # the rows its decision read
            "per_tau": per_tau,
            "threshold": {
                "applied": _where_dict(where_t),
                "rows": record_t,
                "by_measure": thresholds,
                "n_resamples": s.threshold_resamples,
                "resampling": "networks, with replacement within each grid ratio; the curve refitted each time",
            },
            "comparison": {"applied": _where_dict(where_c), "rows": record_c, **comparison},
        }

    def schedule(self, source: Source, nonlinearity: str) -> dict:
        where = replace(SCHEDULE_WHERE, nonlinearities=(nonlinearity,))
        rows, record = select(source, where)
        stack, block = rows[rows["kind"] == "stack"], rows[rows["kind"] == "block"]
        record["n_per_option"] = {"stack": int(len(stack)), "block": int(len(block))}
        base = {
            "rule": "schedule",
            "question": "expand gradually over several blocks or in one (paper §4; ReXNet: linear schedule)",
            "form": "comparison",
            "measure": self.design,
            "baseline": BASELINE["schedule"],
            "nonlinearity": nonlinearity,
            "applied": _where_dict(where),
            "rows": record,
        }
        if stack.empty or block.empty:
            return {
                **base,
                "choice": None,
                "decided": False,
                "beats": None,
                "reason": "needs stack and block rows with r > 1",
            }

        def judged(s_rows, b_rows, column) -> dict:
            est = self.ctx.diff(s_rows[column], b_rows[column])
            verdict = stats.material(est, self.margin)
            beats = (
                None if verdict == "undecided" else bool(verdict == "material" and est.mean > 0)
            )  # False: shown not to beat it by the margin
            return {**est.to_dict(), "material": verdict, "beats": beats}

        column = self.column()
        design = judged(stack, block, column)
        design["tost"] = stats.tost(stack[column], block[column], self.margin, self.s.alpha).verdict
        decided = design["material"] == "material"
        choice = ("linear" if design["value"] > 0 else "stagewise") if decided else None
        reason = (
            f"stack - block = {design['value']:.3f} [{design['ci'][0]:.3f}, {design['ci'][1]:.3f}] is "
            f"{design['material']} against the margin {self.margin:g}"
            + ("" if decided else ": no reason to leave ReXNet's linear schedule")
        )
        all_inputs, _ = select(source, replace(where, inputs=None))
        by_input = {
            str(level): judged(part[part["kind"] == "stack"], part[part["kind"] == "block"], column)
            for level, part in all_inputs.groupby("input_dist", sort=True)
            if (part["kind"] == "stack").any() and (part["kind"] == "block").any()
        }
        by_measure = {m: judged(stack, block, c) for m, c in self.ctx.columns.items()}
        by_band = [
            {"band": band, **judged(stack[stack["band"] == band], block[block["band"] == band], column)}
            for band in [b.label for b in self.ctx.bands]
            if (stack["band"] == band).any() and (block["band"] == band).any()
        ]
        by_depth = [{"depth": int(d), **judged(s_rows, block, column)} for d, s_rows in stack.groupby("depth")]

        def cap(t):
            return np.minimum(1.0, t["structural_bound"] / t["d_out"])

        structural = self.ctx.diff(cap(stack), cap(block))
        return {
            **base,
            "choice": choice,
            "decided": decided,
            "reason": reason,
            "beats": design["beats"],
            **design,
            "by_input": by_input,
            "by_measure": by_measure,
            "by_band": by_band,
            "by_depth": by_depth,
            "structural_capacity": {
                **structural.to_dict(),
                "material": stats.material(structural, self.margin),
                "beats": None
                if stats.material(structural, self.margin) == "undecided"
                else bool(stats.material(structural, self.margin) == "material" and structural.mean > 0),
                "what": "mean of min(1, structural_bound / d_out), stack minus block",
            },
        }

    # --- thresholds with their uncertainty ----------------------------------------------------------------

    def threshold(self, rows: pd.DataFrame, column: str) -> dict:
        """Returns, per τ, the largest r ≥ 1 keeping `column` ≥ τ: the fitted curve's (the empirical one where it
        does not fit), its bootstrap CI over networks and the bootstrap distribution of the empirical threshold."""
        r = rows["expansion_ratio"].to_numpy(dtype=float)
        y = rows[column].to_numpy(dtype=float)
        g = rows["grid_ratio"].to_numpy(dtype=float)
        key = ("threshold", *_key(r, y, g))
        if key not in self._cache:
            self._cache[key] = self._threshold(r, y, g)
        return self._cache[key]

    def _threshold(self, r: np.ndarray, y: np.ndarray, g: np.ndarray) -> dict:
        s = self.s
        taus = s.taus
        ok = np.isfinite(y)
        r, y, g = r[ok], y[ok], g[ok]
        if r.size == 0:
            return {f"{t:g}": _no_threshold() for t in taus}
        grid, gi = np.unique(g, return_inverse=True)

        def one(rr, yy, gg_index, start=None):
            fit = stats.fit_curve(rr, yy, start)
            sums = np.bincount(gg_index, weights=yy, minlength=grid.size)
            counts = np.bincount(gg_index, minlength=grid.size)
            present = counts > 0
            means = sums[present] / counts[present]
            return fit, [
                (stats.fit_threshold(fit, tau), stats.empirical_threshold(grid[present], means, tau)) for tau in taus
            ]

        fit, point = one(r, y, gi)
        rng = np.random.default_rng(s.rng_seed)
        strata = [np.flatnonzero(gi == k) for k in range(grid.size)]
        boot_fit = np.full((s.threshold_resamples, len(taus)), math.nan)
        boot_emp: list[list[str]] = [[] for _ in taus]
        for b in range(s.threshold_resamples):
            idx = np.concatenate([st[rng.integers(0, st.size, st.size)] for st in strata if st.size])
            _, res = one(r[idx], y[idx], gi[idx], fit)  # refit from the full sample's optimum
            for j, (fitted, empirical) in enumerate(res):
                source = fitted if fitted.status != "no_fit" else empirical
                boot_fit[b, j] = _as_number(source)
                boot_emp[j].append(_label(empirical))
        out = {}
        for j, tau in enumerate(taus):
            fitted, empirical = point[j]
            source = "fit" if fitted.status != "no_fit" else "empirical"
            chosen = fitted if source == "fit" else empirical
            values = boot_fit[:, j]
            values = np.sort(values[np.isfinite(values) | np.isinf(values)])
            ci, ends = [None, None], ["no_fit", "no_fit"]
            if values.size:
                alpha = (1 - s.confidence) / 2
                lo = values[int(math.floor(alpha * (values.size - 1)))]
                hi = values[int(math.ceil((1 - alpha) * (values.size - 1)))]
                ci = [float(v) if math.isfinite(v) else None for v in (lo, hi)]
                ends = ["crossed" if math.isfinite(v) else "above_range" if v > 0 else "below_range" for v in (lo, hi)]
            labels = boot_emp[j]
            spread = {k: labels.count(k) / len(labels) for k in sorted(set(labels), key=_label_order)} if labels else {}
            shares = {
                "crossed": float(np.mean(np.isfinite(boot_fit[:, j]))),
                "above_range": float(np.mean(boot_fit[:, j] == math.inf)),
                "below_range": float(np.mean(boot_fit[:, j] == -math.inf)),
                "no_fit": float(np.mean(np.isnan(boot_fit[:, j]))),
            }
            out[f"{tau:g}"] = {
                "ratio": chosen.ratio,
                "status": chosen.status,
                "source": source,
                "ci": ci,
                "ci_ends": ends,  # a null end of `ci` lies above or below the sampled ratios
                "status_shares": shares,
                "fit": {"ratio": fitted.ratio, "status": fitted.status},
                "empirical": {"ratio": empirical.ratio, "status": empirical.status},
                "empirical_spread": spread,
                "ratio_range": [float(r.min()), float(r.max())],
                "n": int(r.size),
                "converged": fit.converged,
            }
        return out


def _no_threshold() -> dict:
    return {
        "ratio": None,
        "status": "no_fit",
        "source": "fit",
        "ci": [None, None],
        "ci_ends": ["no_fit", "no_fit"],
        "status_shares": {},
        "fit": {"ratio": None, "status": "no_fit"},
        "empirical": {"ratio": None, "status": "no_fit"},
        "empirical_spread": {},
        "ratio_range": [None, None],
        "n": 0,
        "converged": False,
    }


def _as_number(t: stats.Threshold) -> float:
    """Returns a threshold as a number for percentiles: its ratio if crossed, +inf above the range, −inf below."""
    return {"above_range": math.inf, "below_range": -math.inf, "no_fit": math.nan}.get(t.status, t.ratio)


def _label(t: stats.Threshold) -> str:
    return f"{t.ratio:.3g}" if t.status == "crossed" else t.status


def _label_order(label: str) -> tuple:
    try:
        return (1, float(label))
    except ValueError:
        return (0 if label == "below_range" else 2, 0.0)


def _where_dict(where: Where) -> dict:
    return {
        "kinds": list(where.kinds),
        "ratio": [where.ratio_low, where.ratio_high],
        "above_one": where.above_one,
        "norm": where.norm,
        "inputs": None if where.inputs is None else list(where.inputs),
        "min_n_over_d": where.min_n_over_d,
        "nonlinearities": None if where.nonlinearities is None else list(where.nonlinearities),
    }


def find_rules(ctx, sources: dict[str, Source]) -> dict:
    """Returns {"nonlinearity", "expansion", "schedule"}: each rule read where it is applied, with its
    uncertainty (module docstring). `sources` maps each of RULE_TABLES to the table it reads ("main": the
    study's own table, used for any part without a dedicated one)."""
    rules = _Rules(ctx)
    main = sources["main"]
    nonlinearity = rules.nonlinearity(sources.get("nonlinearity", main))
    # The expansion cap and the schedule are read with the nonlinearity the variant will use.
    variant_nl = nonlinearity["choice"] or BASELINE["nonlinearity"]
    expansion = rules.expansion(sources.get("threshold", main), sources.get("expansion", main), variant_nl)
    schedule = rules.schedule(sources.get("schedule", main), variant_nl)
    return {"nonlinearity": nonlinearity, "expansion": expansion, "schedule": schedule}


def load_rule_study(path) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Returns {part: (table, metadata)} of a rule study folder (experiments/rule_study.py: one finished
    `rankstudy sample` study per part of RULE_TABLES present), or raises StudyError when it holds none."""
    root = Path(path)
    parts = {name: load_results(root / name) for name in RULE_TABLES if (root / name / "results.parquet").exists()}
    if not parts:
        raise StudyError(
            f"{root} holds no rule study (none of {', '.join(f'{n}/' for n in RULE_TABLES)} has a results table); "
            "run `python experiments/rule_study.py` or pass --rules-in none"
        )
    return parts
