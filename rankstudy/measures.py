"""What the plots and findings look at: the rank measures (table columns and labels), the factors a view is
split by, the expansion-ratio grid, and the row selection that views start from.

Every measure is normalised by d_out, so 1.0 means full rank whatever the layer's width.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import StudyError


@dataclass(frozen=True)
class Measure:
    """A normalised rank measure: the name users type, the results-table column, and an axis label."""
    name: str
    column: str
    label: str


MEASURES: dict[str, Measure] = {m.name: m for m in (
    Measure("normalized_rank", "normalized_rank", "rank / d_out (float32 tolerance)"),
    Measure("rank_rtol_1e-3", "normalized_rank_rtol_1e-3", "rank at rtol 1e-3 / d_out"),
    Measure("rank_rtol_1e-2", "normalized_rank_rtol_1e-2", "rank at rtol 1e-2 / d_out"),
    Measure("effective_rank", "normalized_effective_rank", "effective rank / d_out"),
    Measure("stable_rank", "normalized_stable_rank", "stable rank / d_out"),
)}
# The measures the paper-finding verdicts are checked under (stable rank is drawn, not judged: it is
# dominated by σ_max and sits far below 1 even for full-rank features).
FINDING_MEASURES: tuple[str, ...] = ("normalized_rank", "rank_rtol_1e-3", "rank_rtol_1e-2", "effective_rank")
# Factors REXNET.md §1 leaves unstated; every verdict is also checked within each of their levels.
FACTORS: tuple[str, ...] = ("n_over_d", "init", "norm")
FACET_CHOICES: tuple[str, ...] = ("n_over_d", "init", "norm", "d_in", "input_dist")
KIND_ORDER: tuple[str, ...] = ("linear", "depthwise", "block", "stack")
# The nonlinearities of the paper's Figure 1 (identity is its "linear").
PAPER_NONLINEARITIES: tuple[str, ...] = ("identity", "relu6", "relu", "leaky_relu", "elu", "softplus",
                                         "hardswish", "silu")
REQUIRED_COLUMNS: tuple[str, ...] = ("kind", "nonlinearity", "d_in", "d_out", "expansion_ratio",
                                     "dimension_ratio", "depth", "n_over_d", "init", "norm",
                                     *(m.column for m in MEASURES.values()))


def get_measure(name: str) -> Measure:
    """Returns the measure called `name` (its short name or its column), or raises StudyError listing them."""
    for m in MEASURES.values():
        if name in (m.name, m.column):
            return m
    raise StudyError(f"unknown metric {name!r}; choose from {', '.join(MEASURES)}")


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Returns `table` if it has the columns the views need, else raises StudyError naming the missing ones."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise StudyError(f"results table lacks columns {missing}; regenerate it with this version's "
                         "`rankstudy sample`")
    if table.empty:
        raise StudyError("results table has no rows; run `rankstudy sample` with --n > 0")
    return table


def _ordered(present, preferred) -> list[str]:
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def kinds_in(table: pd.DataFrame) -> list[str]:
    """Returns the kinds present in `table`, in the paper's panel order."""
    return _ordered(set(table["kind"]), KIND_ORDER)


def nonlinearities_in(table: pd.DataFrame) -> list[str]:
    """Returns the nonlinearities present in `table`, identity first, then the paper's, then the rest."""
    return _ordered(set(table["nonlinearity"]), PAPER_NONLINEARITIES)


def select_rows(table: pd.DataFrame, kinds=None, nonlinearities=None) -> pd.DataFrame:
    """Returns the rows of the given kinds and nonlinearities (None = all); StudyError if none is left."""
    check_table(table)
    keep = np.ones(len(table), dtype=bool)
    for column, wanted in (("kind", kinds), ("nonlinearity", nonlinearities)):
        if wanted is None:
            continue
        present = set(table[column])
        unknown = [w for w in wanted if w not in present]
        if unknown:
            raise StudyError(f"{column} {unknown} not in the table; it holds {', '.join(sorted(present))}")
        keep &= table[column].isin(list(wanted)).to_numpy()
    table = table[keep]
    if table.empty:
        raise StudyError("the selection is empty; widen --kinds / --nonlinearities")
    return table


def ratio_grid(table: pd.DataFrame, meta: dict | None = None) -> np.ndarray:
    """Returns the study's grid of target expansion ratios (from its config, else 16 log steps over the table)."""
    config = (meta or {}).get("config") or {}
    if all(k in config for k in ("ratio_min", "ratio_max", "n_ratios")):
        return np.geomspace(config["ratio_min"], config["ratio_max"], config["n_ratios"])
    lo, hi = float(table["expansion_ratio"].min()), float(table["expansion_ratio"].max())
    return np.geomspace(lo, hi, 16) if hi > lo else np.array([lo])


def nearest_grid_ratio(ratios, grid: np.ndarray) -> np.ndarray:
    """Returns, for each expansion ratio, the grid ratio nearest in log scale (rounding d_out moves ratios)."""
    log_r, log_g = np.log(np.asarray(ratios, dtype=float)), np.log(np.asarray(grid, dtype=float))
    return np.asarray(grid)[np.abs(log_r[:, None] - log_g[None, :]).argmin(axis=1)]
