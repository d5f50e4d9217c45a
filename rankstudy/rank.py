"""Rank metrics of feature matrices, batched: numerical rank, effective rank, stable rank, rtol ranks.

All metrics come from the singular values σ of F, obtained as square roots of the eigenvalues of the
smaller Gram matrix computed in float64. The numerical rank uses `torch.linalg.matrix_rank`'s rule for
float32 data, σ > σ_max · max(m, n) · eps_float32, whatever precision the computation uses: a float64
tolerance would count the float32 rounding noise of the features as rank. In float64 the Gram matrix
resolves singular values down to ~1e-8 σ_max, well under that tolerance (≥ 1.2e-7 σ_max · max(m, n)).
"""
import math

import numpy as np
import torch

from .batched import bmm, eigvalsh, single_thread
from .errors import StudyError

EPS_FLOAT32 = torch.finfo(torch.float32).eps
DEFAULT_RTOLS: tuple[float, ...] = (1e-3, 1e-2)


def rtol_column(rtol: float) -> str:
    """Returns the results-table column name of the rank at relative tolerance `rtol` (e.g. rank_rtol_1e-3)."""
    mantissa, exponent = f"{rtol:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"rank_rtol_{mantissa}e{int(exponent)}"


def metric_columns(rtols: tuple[float, ...] = DEFAULT_RTOLS) -> list[str]:
    """Returns the names of the metric columns `rank_metrics` produces, in table order."""
    cols = ["rank", "normalized_rank", "effective_rank", "normalized_effective_rank",
            "stable_rank", "normalized_stable_rank"]
    for rtol in rtols:
        cols += [rtol_column(rtol), "normalized_" + rtol_column(rtol)]
    return cols + ["nuclear_norm", "sigma_max"]


def singular_values(features: torch.Tensor) -> torch.Tensor:
    """Returns the singular values (B, min(m, n)), float64, descending, of a batch of (B, m, n) matrices.

    Raises StudyError if any entry is NaN or infinite.
    """
    f = features.unsqueeze(0) if features.dim() == 2 else features
    if f.dim() != 3:
        raise StudyError(f"features must be a matrix or a batch of matrices, got shape {tuple(features.shape)}")
    with single_thread():
        return _singular_values(f.to(torch.float64))


def _singular_values(f: torch.Tensor) -> torch.Tensor:
    amax = f.abs().flatten(1).amax(dim=1)  # NaN and inf propagate: one pass checks finiteness too
    finite = torch.isfinite(amax)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise StudyError(f"feature matrix {bad[:5]} of the batch contains NaN or inf; "
                         "check the network's scale (init, depth) or drop those rows")
    # Scale each matrix by a power of two (exact) so that the Gram matrix neither overflows nor underflows.
    scale = torch.where(amax > 0, torch.exp2(torch.floor(torch.log2(amax.clamp_min(1e-300)))), torch.ones_like(amax))
    f = f / scale[:, None, None]
    gram = bmm(f, f.mT) if f.shape[1] <= f.shape[2] else bmm(f.mT, f)
    eig = eigvalsh(gram).flip(-1).clamp_min(0)
    return eig.sqrt() * scale[:, None]


def _row_metrics(s: np.ndarray, m: int, n: int, rtols: tuple[float, ...]) -> list[float]:
    """Returns one matrix's metrics, in `metric_columns` order, from its descending singular values."""
    smax = float(s[0]) if s.size else 0.0
    if smax == 0.0:  # all-zero matrix: every rank is 0, the entropy is undefined
        return [0, 0.0, 0.0, 0.0, 0.0, 0.0] + [0, 0.0] * len(rtols) + [0.0, 0.0]
    rank = int((s > smax * max(m, n) * EPS_FLOAT32).sum())
    # math.fsum is exactly rounded, so these sums do not depend on how rows were batched.
    total = math.fsum(s)
    p = s[s > 0] / total
    effective = math.exp(-math.fsum(p * np.log(p)))
    stable = math.fsum(s * s) / (smax * smax)
    row = [rank, rank / m, effective, effective / m, stable, stable / m]
    for rtol in rtols:
        r = int((s > rtol * smax).sum())
        row += [r, r / m]
    return row + [total, smax]


def metrics_from_singular_values(sigma: torch.Tensor, shape: tuple[int, int],
                                 rtols: tuple[float, ...] = DEFAULT_RTOLS) -> dict[str, torch.Tensor]:
    """Returns each metric of `metric_columns(rtols)` as a (B,) tensor, from descending singular values.

    `shape` is (m, n) of the feature matrices; normalised metrics divide by m (= d_out). For an all-zero
    matrix every rank is 0 (effective rank included, where the entropy is undefined).
    """
    m, n = shape
    rows = [_row_metrics(s, m, n, rtols) for s in sigma.detach().cpu().to(torch.float64).numpy()]
    columns = list(zip(*rows))
    return {name: torch.tensor(col, dtype=torch.int64 if name.startswith("rank") else torch.float64)
            for name, col in zip(metric_columns(rtols), columns)}


def rank_metrics(features: torch.Tensor, rtols: tuple[float, ...] = DEFAULT_RTOLS) -> dict[str, torch.Tensor]:
    """Returns the metrics of `metric_columns(rtols)` for a (B, m, n) batch (or one m × n matrix), each (B,)."""
    f = features.unsqueeze(0) if features.dim() == 2 else features
    return metrics_from_singular_values(singular_values(f), (f.shape[1], f.shape[2]), rtols)


def numerical_rank(features: torch.Tensor) -> torch.Tensor:
    """Returns the rank(s) under the float32 tolerance σ > σ_max · max(m, n) · eps_float32."""
    return rank_metrics(features)["rank"]
