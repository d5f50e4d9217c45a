"""Rank metrics of feature matrices, batched: numerical rank, effective rank, stable rank, rtol ranks.

All metrics come from the singular values σ of F, obtained as square roots of the eigenvalues of the
smaller Gram matrix computed in float64. The numerical rank uses `torch.linalg.matrix_rank`'s rule for
float32 data, σ > σ_max · max(m, n) · eps_float32, whatever precision the computation uses: a float64
tolerance would count the float32 rounding noise of the features as rank. In float64 the Gram matrix
resolves singular values down to ~1e-8 σ_max, well under that tolerance (≥ 1.2e-7 σ_max · max(m, n)).
"""
import math

import torch

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
    finite = torch.isfinite(f).flatten(1).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise StudyError(f"feature matrix {bad[:5]} of the batch contains NaN or inf; "
                         "check the network's scale (init, depth) or drop those rows")
    f = f.to(torch.float64)
    # Scale each matrix by a power of two (exact) so that the Gram matrix neither overflows nor underflows.
    amax = f.abs().flatten(1).amax(dim=1)
    scale = torch.where(amax > 0, torch.exp2(torch.floor(torch.log2(amax.clamp_min(1e-300)))), torch.ones_like(amax))
    f = f / scale[:, None, None]
    gram = f @ f.mT if f.shape[1] <= f.shape[2] else f.mT @ f
    eig = torch.linalg.eigvalsh(gram).flip(-1).clamp_min(0)
    return eig.sqrt() * scale[:, None]


def metrics_from_singular_values(sigma: torch.Tensor, shape: tuple[int, int],
                                 rtols: tuple[float, ...] = DEFAULT_RTOLS) -> dict[str, torch.Tensor]:
    """Returns each metric of `metric_columns(rtols)` as a (B,) tensor, from descending singular values.

    `shape` is (m, n) of the feature matrices; normalised metrics divide by m (= d_out). For an all-zero
    matrix every rank is 0 (effective rank included, where the entropy is undefined).
    """
    m, n = shape
    smax = sigma[:, 0]
    nonzero = smax > 0
    rank = (sigma > (smax * max(m, n) * EPS_FLOAT32)[:, None]).sum(dim=1)
    total = sigma.sum(dim=1)
    p = sigma / torch.where(nonzero, total, 1.0)[:, None]
    entropy = -(torch.where(p > 0, p * torch.log(p), 0.0)).sum(dim=1)
    effective = torch.where(nonzero, torch.exp(entropy), 0.0)
    stable = torch.where(nonzero, (sigma**2).sum(dim=1) / torch.where(nonzero, smax**2, 1.0), 0.0)
    out = {"rank": rank, "normalized_rank": rank.double() / m,
           "effective_rank": effective, "normalized_effective_rank": effective / m,
           "stable_rank": stable, "normalized_stable_rank": stable / m}
    for rtol in rtols:
        r = (sigma > (smax * rtol)[:, None]).sum(dim=1)
        out[rtol_column(rtol)] = r
        out["normalized_" + rtol_column(rtol)] = r.double() / m
    out["nuclear_norm"] = total
    out["sigma_max"] = smax
    return out


def rank_metrics(features: torch.Tensor, rtols: tuple[float, ...] = DEFAULT_RTOLS) -> dict[str, torch.Tensor]:
    """Returns the metrics of `metric_columns(rtols)` for a (B, m, n) batch (or one m × n matrix), each (B,)."""
    f = features.unsqueeze(0) if features.dim() == 2 else features
    return metrics_from_singular_values(singular_values(f), (f.shape[1], f.shape[2]), rtols)


def numerical_rank(features: torch.Tensor) -> torch.Tensor:
    """Returns the rank(s) under the float32 tolerance σ > σ_max · max(m, n) · eps_float32."""
    return rank_metrics(features)["rank"]
