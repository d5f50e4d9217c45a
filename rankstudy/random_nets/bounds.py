"""Structural rank bounds: the largest rank a network's architecture allows, whatever its nonlinearity.

The paper (§3, Figure 1) reads the rank of random networks' features as an effect of the nonlinearity,
but part of every curve is fixed by the architecture alone. This module gives, per results-table row,

- `structural_bound(row)`: the largest rank of the features F (d_out × N) over *every* elementwise
  nonlinearity and normalisation, for the row's shapes. A rank measure divided by min(d_out, bound) is
  its `bound_relative` version (1.0 = the architecture's capacity is used); what is left below 1 is
  caused by the nonlinearity (or the rank tolerance), not by the shapes.
- `linear_bound(row)`: the rank of the same network with no nonlinearity and no normalisation, for
  generic (random) weights and inputs: what the nonlinearity has to lift the rank above.

Derivation (rank(AB) ≤ min(rank A, rank B); rank(A + B) ≤ rank A + rank B; an m × n matrix has rank
≤ min(m, n); the input X is d_in × N of rank r_X ≤ min(d_in, N)):

The input's rank r_X is the table's `input_rank` column (the float32-tolerance rank of the X each network
was fed) where the table has it, else min(d_in, N), which every continuous input distribution reaches;
likewise r₉, the rank of X's 3×3 im2col (its 9 shifted copies, `input_rank_3x3`), else 9·r_X. Fashion-MNIST
patches reach neither: few samples with blank background repeat columns of X, and smooth images leave the
9 shifts of a channel nearly dependent, so identity networks fed them sat below bounds that assumed
min(d_in, N) and 9·d_in. Below, "d_in" where it stands for X's rank (the linear bounds, the shortcut term,
b₀) is r_X and "9·d_in" where it stands for the rank of X's shifts is r₉; the widths of the layers stay d_in.

- linear (Figure 1 (a)), conv3x3 (b), depthwise: F = f(norm(L X)) for a linear map L. f comes last and
  is elementwise, so nothing but the shape caps it: structural = min(d_out, N). Without f, F = L X:
  a 1×1 conv gives min(d_in, d_out, N). A 3×3 conv with zero padding is W · im2col(X), and im2col(X)
  stacks the 9 shifted copies of X's d_in channels: min(d_out, 9·d_in, N). The 1×1 conv → 3×3
  depthwise kind mixes the same 9·d_in shifted channels (output channel c uses the coefficients
  taps_c ⊗ W_c, generic rank-one tensors, which span min(d_out, 9·d_in) dimensions): min(d_out, 9·d_in, N).
- block (Figure 1 (d), ReXNet's inverted bottleneck, §3) and block_conv ((c), full 3×3 conv in the
  middle): out = norm(W₂ H) (+ X on the first d_in channels when d_out ≥ d_in), where H, the hidden
  features after the second f, is (t·d_in) × N. Batch norm is a per-channel scale and a centring
  (F ↦ D F P with P = I − 11ᵀ/N), which never raises rank and brings norm(W₂ H) to at most N − 1.
  So, whatever f: rank(out) ≤ min(d_out, N, min(t·d_in, N − [bn]) + [shortcut]·min(d_in, N)), and a
  generic nonlinear f reaches it. With t = 6 that is the issue's (t + 1)·d_in = 7·d_in cap on a block:
  past 7×, drastic expansion *must* lower rank/d_out, whatever the nonlinearity.
  Without f (and norm): H's rows lie in the span of the 9 shifted copies of X (each 3×3 conv output
  channel is a combination of them, and X itself is the centre shift), so
  min(d_out, N, 9·d_in, min(t·d_in, 9·d_in, N) + [shortcut]·d_in).
- stack: the block bound applied block by block, with the previous block's bound in place of
  rank(X): b₀ = min(d_in, N); b_i = min(c_i, N, min(t·c_{i−1}, N − [bn]) + [shortcut_i]·b_{i−1}).
  Without f, after i blocks of 3×3 convs the rows lie in the span of X shifted inside a
  (2i + 1) × (2i + 1) window (shifts wider than the S × S map are zero): w_i = (2·min(i, S − 1) + 1)²·d_in,
  and b_i = min(c_i, N, w_i, min(t·c_{i−1}, 9·b_{i−1}, w_i, N) + [shortcut_i]·b_{i−1}) — an upper bound
  (the tests check that identity stacks never exceed it; single layers and single blocks reach it).

Where d_out ≤ bound, min(d_out, bound) = d_out and the bound-relative measure equals the normalised one:
for one layer it always does (N ≥ d_out in the study), so only blocks and stacks differ.
"""

import numpy as np
import pandas as pd

from .sampling import stack_widths

SINGLE_LAYER_KINDS: tuple[str, ...] = ("linear", "conv3x3", "depthwise")
BLOCK_KINDS: tuple[str, ...] = ("block", "block_conv", "stack")
BOUND_COLUMNS: tuple[str, ...] = ("structural_bound", "linear_bound")


def _widths(row) -> list[int]:
    return stack_widths(row.d_in, row.d_out, row.depth) if row.kind == "stack" else [row.d_in, row.d_out]


def input_rank(row) -> int:
    """Returns the rank of the row's input X: its `input_rank` if recorded, else min(d_in, N) (module docstring)."""
    full = min(int(row.d_in), int(row.n_samples))
    measured = getattr(row, "input_rank", None)
    return full if measured is None or measured != measured else min(full, int(measured))  # NaN: not measured


def input_rank_3x3(row) -> int:
    """Returns the rank of the row's input's 3×3 im2col: its `input_rank_3x3` if recorded, else 9·r_X."""
    shifts = 9 if int(getattr(row, "spatial", 1)) > 1 else 1
    full = min(shifts * input_rank(row), int(row.n_samples))
    measured = getattr(row, "input_rank_3x3", None)
    return full if measured is None or measured != measured else min(full, int(measured))


def structural_bound(row) -> int:
    """Returns the largest rank the row's architecture allows over every nonlinearity (module docstring)."""
    n = int(row.n_samples)
    if row.kind in SINGLE_LAYER_KINDS:
        return min(int(row.d_out), n)
    bn = 1 if getattr(row, "norm", "none") == "bn" else 0
    bound = input_rank(row)
    for c_in, c_out in zip(_widths(row)[:-1], _widths(row)[1:]):
        hidden = min(int(row.block_expansion) * c_in, n - bn)
        bound = min(c_out, n, hidden + (bound if c_out >= c_in else 0))
    return bound


def linear_bound(row) -> int:
    """Returns the rank of the row's network with no nonlinearity and no norm, generic weights (docstring)."""
    n, r_x = int(row.n_samples), input_rank(row)
    if row.kind == "linear":
        return min(r_x, int(row.d_out), n)
    shifts = 9 if int(row.spatial) > 1 else 1
    if row.kind in ("conv3x3", "depthwise"):
        return min(int(row.d_out), input_rank_3x3(row), n)
    bound = r_x
    for i, (c_in, c_out) in enumerate(zip(_widths(row)[:-1], _widths(row)[1:]), start=1):
        window = (2 * min(i, int(row.spatial) - 1) + 1) ** 2 * r_x
        if i == 1:
            window = min(window, input_rank_3x3(row))
        hidden = min(int(row.block_expansion) * c_in, shifts * bound, window, n)
        bound = min(c_out, n, window, hidden + (bound if c_out >= c_in else 0))
    return bound


def with_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Returns `table` with the `structural_bound` and `linear_bound` columns (int64) of every row."""
    rows = list(table.itertuples(index=False))
    return table.assign(
        structural_bound=np.array([structural_bound(r) for r in rows], dtype=np.int64),
        linear_bound=np.array([linear_bound(r) for r in rows], dtype=np.int64),
    )


def bound_relative_name(normalized_column: str) -> str:
    """Returns the bound-relative column of a normalised one (normalized_rank → bound_relative_rank)."""
    return "bound_relative_" + normalized_column.removeprefix("normalized_")


def with_bound_columns(table: pd.DataFrame) -> pd.DataFrame:
    """Returns `table` with the bound columns and, for every `normalized_*` measure, its `bound_relative_*`
    version: the measure × d_out / min(d_out, structural_bound), i.e. the raw measure over the bound."""
    table = with_bounds(table)
    cap = np.minimum(table["d_out"].to_numpy(), table["structural_bound"].to_numpy()).astype(float)
    scale = table["d_out"].to_numpy(dtype=float) / np.maximum(cap, 1.0)
    new = {
        bound_relative_name(c): table[c].to_numpy(dtype=float) * scale
        for c in table.columns
        if c.startswith("normalized_")
    }
    return table.assign(**new)
