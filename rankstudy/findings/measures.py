"""What the plots and findings look at: the rank measures (table columns and labels), the factors a view is
split by, the expansion-ratio grid, and the row selection that views start from.

Every measure comes in two versions: normalised by d_out (1.0 = full rank whatever the layer's width), and
bound-relative, divided by min(d_out, the architecture's structural bound; `rankstudy.bounds`), so that
1.0 means the network uses all the rank its shapes allow and what is missing is the nonlinearity's doing.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import StudyError
from ..random_nets.bounds import BOUND_COLUMNS, with_bound_columns, with_bounds
from ..random_nets.config import KINDS


@dataclass(frozen=True)
class Measure:
    """A normalised rank measure: the name users type, the results-table column, and an axis label."""

    name: str
    column: str
    label: str


_BASE = (
    ("normalized_rank", "rank", "rank", "(float32 tolerance)"),
    ("rank_rtol_1e-3", "rank_rtol_1e-3", "rank at rtol 1e-3", ""),
    ("rank_rtol_1e-2", "rank_rtol_1e-2", "rank at rtol 1e-2", ""),
    ("effective_rank", "effective_rank", "effective rank", ""),
    ("stable_rank", "stable_rank", "stable rank", ""),
)
MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        *(Measure(name, f"normalized_{raw}", f"{label} / d_out {note}".strip()) for name, raw, label, note in _BASE),
        *(
            Measure(f"bound_relative_{raw}", f"bound_relative_{raw}", f"{label} / min(d_out, bound) {note}".strip())
            for _, raw, label, note in _BASE
        ),
    )
}
# The measures the paper-finding verdicts are checked under, each normalised by d_out and relative to the
# structural bound (stable rank is drawn, not judged: it is dominated by σ_max and sits far below 1 even
# for full-rank features).
NORMALIZED_MEASURES: tuple[str, ...] = ("normalized_rank", "rank_rtol_1e-3", "rank_rtol_1e-2", "effective_rank")
BOUND_MEASURES: tuple[str, ...] = (
    "bound_relative_rank",
    "bound_relative_rank_rtol_1e-3",
    "bound_relative_rank_rtol_1e-2",
    "bound_relative_effective_rank",
)
FINDING_MEASURES: tuple[str, ...] = NORMALIZED_MEASURES + BOUND_MEASURES
# The bound-relative twin of each normalised measure.
BOUND_TWIN: dict[str, str] = dict(zip(NORMALIZED_MEASURES, BOUND_MEASURES))
# Factors the paper (§3) leaves unstated; every verdict is also checked within each of their levels.
# N/d_out enters as the measured value, binned (whole maps round N up for the conv kinds).
FACTORS: tuple[str, ...] = ("n_over_d_bin", "init", "norm", "input_dist")
N_OVER_D_EDGES: tuple[float, ...] = (1.5, 3.0)
FACET_CHOICES: tuple[str, ...] = ("n_over_d_bin", "init", "norm", "d_in", "input_dist")
# The kinds drawn as the panels (a)–(d) of the paper's Figure 1.
PAPER_PANELS: dict[str, str] = {"linear": "a", "conv3x3": "b", "block_conv": "c", "block": "d"}
# The nonlinearities of the paper's Figure 1 (identity is its "linear").
PAPER_NONLINEARITIES: tuple[str, ...] = (
    "identity",
    "relu6",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "hardswish",
    "silu",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "kind",
    "nonlinearity",
    "d_in",
    "d_out",
    "expansion_ratio",
    "dimension_ratio",
    "depth",
    "n_samples",
    "n_over_d",
    "init",
    "norm",
    *(m.column for m in MEASURES.values() if m.column.startswith("normalized_")),
)


def get_measure(name: str) -> Measure:
    """Returns the measure called `name` (its short name or its column), or raises StudyError listing them."""
    for m in MEASURES.values():
        if name in (m.name, m.column):
            return m
    raise StudyError(f"unknown metric {name!r}; choose from {', '.join(MEASURES)}")


def n_over_d_bin(actual) -> np.ndarray:
    """Returns the label of each measured N/d_out's bin (edges N_OVER_D_EDGES), e.g. "1-1.5", "1.5-3", ">3"."""
    x = np.asarray(actual, dtype=float)
    edges = [1.0, *N_OVER_D_EDGES]
    labels = np.full(x.shape, f">{edges[-1]:g}", dtype=object)
    for lo, hi in reversed(list(zip(edges[:-1], edges[1:]))):
        labels[x <= hi] = f"{lo:g}-{hi:g}"
    return labels


def check_table(table: pd.DataFrame) -> pd.DataFrame:
    """Returns `table` with the derived columns the views need (bounds, bound-relative measures, measured
    N/d_out and its bin, input distribution), or raises StudyError naming the missing source columns."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise StudyError(f"results table lacks columns {missing}; regenerate it with this version's `rankstudy sample`")
    if table.empty:
        raise StudyError("results table has no rows; run `rankstudy sample` with --n > 0")
    derived = {}
    if "n_over_d_actual" not in table.columns:
        derived["n_over_d_actual"] = table["n_samples"] / table["d_out"]
    if "input_dist" not in table.columns:
        derived["input_dist"] = "gaussian"
    table = table.assign(**derived) if derived else table
    if "n_over_d_bin" not in table.columns:
        table = table.assign(n_over_d_bin=n_over_d_bin(table["n_over_d_actual"]))
    if any(m.column not in table.columns for m in MEASURES.values()):
        table = with_bound_columns(table.drop(columns=[c for c in table.columns if c.startswith("bound_relative_")]))
    elif any(c not in table.columns for c in BOUND_COLUMNS):
        table = with_bounds(table)
    return table


def _ordered(present, preferred) -> list[str]:
    return [v for v in preferred if v in present] + sorted(v for v in present if v not in preferred)


def kinds_in(table: pd.DataFrame) -> list[str]:
    """Returns the kinds present in `table`, in the order of `rankstudy.random_nets.config.KINDS`."""
    return _ordered(set(table["kind"]), KINDS)


def nonlinearities_in(table: pd.DataFrame) -> list[str]:
    """Returns the nonlinearities present in `table`, identity first, then the paper's, then the rest."""
    return _ordered(set(table["nonlinearity"]), PAPER_NONLINEARITIES)


def select_rows(table: pd.DataFrame, kinds=None, nonlinearities=None) -> pd.DataFrame:
    """Returns the rows of the given kinds and nonlinearities (None = all); StudyError if none is left."""
    table = check_table(table)
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
