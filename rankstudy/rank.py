"""Rank metrics of feature matrices, batched: numerical rank, effective rank, stable rank, rtol ranks.

All metrics come from the singular values σ of F, obtained as square roots of the eigenvalues of the
smaller Gram matrix computed in float64. The numerical rank uses `torch.linalg.matrix_rank`'s rule for
float32 data, σ > σ_max · max(m, n) · eps_float32, whatever precision the computation uses: a float64
tolerance would count the float32 rounding noise of the features as rank. In float64 the Gram matrix
resolves singular values down to ~1e-8 σ_max, well under that tolerance (≥ 1.2e-7 σ_max · max(m, n)).

Why not a float32 first pass: on 1,000 default rows (one thread, torch/MKL) a float32 Gram + eigen-solve took 0.57×
the time of the float64 one, but its eigenvalue error bound, ~n · eps_float32 · σ_max², resolves singular
values only down to ~sqrt(n · eps_float32) · σ_max (≈ 9e-3 σ_max at n = 640), far above the float32 rank
tolerance (≤ 1.5e-4 σ_max): it could certify no matrix with a singular value in between, which includes
every rank-deficient and every square random feature matrix (σ_min ~ σ_max / n), and the effective rank
and nuclear norm need those small singular values to float64 accuracy anyway. So every row is solved once,
in float64.

Determinism: a batch's metrics come from a few tensor calls, and each row's values depend on that row only,
bit for bit, on the CPU: the batch-independent products and eigen-solves of `rankstudy.batched`, sums by a fixed
tree of IEEE additions (`_pairwise_sum`) and log/exp on rows padded to `batched.ROW_ALIGN`. No weaker
guarantee (such as 1e-12 relative) is needed on the CPU. On CUDA the same code runs as batched calls; its
floats differ from the CPU's in the last bits, its ranks are compared with the CPU's by
benchmarks/gpu_check.sh.
"""

import torch

from rexnet.rank_tolerance import EPS_FLOAT32, float32_rtol  # noqa: F401 - the rule's one home; EPS_FLOAT32 re-exported

from .batched import ROW_ALIGN, eigvalsh, gram, rowwise, single_thread
from .errors import StudyError

DEFAULT_RTOLS: tuple[float, ...] = (1e-3, 1e-2)


def rtol_column(rtol: float) -> str:
    """Returns the results-table column name of the rank at relative tolerance `rtol` (e.g. rank_rtol_1e-3)."""
    mantissa, exponent = f"{rtol:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"rank_rtol_{mantissa}e{int(exponent)}"


def metric_columns(rtols: tuple[float, ...] = DEFAULT_RTOLS) -> list[str]:
    """Returns the names of the metric columns `rank_metrics` produces, in table order."""
    cols = [
        "rank",
        "normalized_rank",
        "effective_rank",
        "normalized_effective_rank",
        "stable_rank",
        "normalized_stable_rank",
    ]
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
    flat = f.flatten(1)  # max |f| per matrix without an |f| copy; NaN and inf propagate: checks finiteness too
    amax = torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))
    finite = torch.isfinite(amax)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten().tolist()
        raise StudyError(
            f"feature matrix {bad[:5]} of the batch contains NaN or inf; "
            "check the network's scale (init, depth) or drop those rows"
        )
    # Scale a matrix by a power of two (exact; frexp, not log2, so no rounding) only where its Gram matrix
    # could overflow or underflow float64 (never for float32 features): amax = mantissa · 2**exponent.
    exponent = torch.frexp(amax).exponent
    extreme = (amax > 0) & ((exponent > 400) | (exponent < -400))
    scale = torch.where(extreme, torch.ldexp(torch.ones_like(amax), exponent - 1), torch.ones_like(amax))
    if bool(extreme.any()):
        f = f / scale[:, None, None]
    eig = eigvalsh(gram(f)).flip(-1).clamp_min(0)
    return eig.sqrt() * scale[:, None]


def _pad_rows(x: torch.Tensor, value: float) -> torch.Tensor:
    """Returns (B, n) `x` padded with `value` to a power-of-two width that is a multiple of ROW_ALIGN."""
    width = max(ROW_ALIGN, 1 << max(0, x.shape[1] - 1).bit_length())
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)


def _pairwise_sum(x: torch.Tensor) -> torch.Tensor:
    """Returns the row sums of a (B, 2**k) tensor by a fixed binary tree of elementwise additions.

    IEEE additions are exactly rounded on every device, so a row's sum depends only on its own values, not
    on the batch, the device or a reduction kernel's blocking; the tree keeps the rounding error at
    O(log n) ulps (`math.fsum`-like accuracy is not needed: the inputs are float64 singular values).
    """
    while x.shape[1] > 1:
        x = x[:, 0::2] + x[:, 1::2]
    return x[:, 0]


def metrics_from_singular_values(
    sigma: torch.Tensor, shape: tuple[int, int], rtols: tuple[float, ...] = DEFAULT_RTOLS
) -> dict[str, torch.Tensor]:
    """Returns each metric of `metric_columns(rtols)` as a (B,) tensor, from descending singular values.

    `shape` is (m, n) of the feature matrices; normalised metrics divide by m (= d_out). For an all-zero
    matrix every rank is 0 (effective rank included, where the entropy is undefined). Computed for the
    whole batch in a few tensor calls on sigma's device; each row's values depend on that row only.
    """
    with single_thread():  # float64 log/exp call MKL (VML), whose threads spin for ms on a shared CPU
        return _metrics(sigma, shape, rtols)


def _metrics(sigma: torch.Tensor, shape: tuple[int, int], rtols: tuple[float, ...]) -> dict[str, torch.Tensor]:
    m, n = shape
    s = _pad_rows(sigma.to(torch.float64), 0.0)  # zeros add nothing to any metric
    smax = s[:, 0]
    nonzero = smax > 0
    safe_max = torch.where(nonzero, smax, torch.ones_like(smax))

    def count(threshold: torch.Tensor) -> torch.Tensor:
        return torch.where(nonzero, (s > threshold[:, None]).sum(dim=1), 0)

    rank = count(smax * float32_rtol(m, n))
    total = _pairwise_sum(s)
    p = s / torch.where(nonzero, total, torch.ones_like(total))[:, None]
    # p·log p with 0·log 0 = 0; log runs on rows padded to ROW_ALIGN, as in the networks' nonlinearities
    entropy = -_pairwise_sum(p * torch.log(torch.where(p > 0, p, torch.ones_like(p))))
    effective = torch.where(nonzero, rowwise(torch.exp, entropy[:, None])[:, 0], 0.0)
    stable = _pairwise_sum(s * s) / (safe_max * safe_max)
    out = {
        "rank": rank,
        "normalized_rank": rank.to(torch.float64) / m,
        "effective_rank": effective,
        "normalized_effective_rank": effective / m,
        "stable_rank": stable,
        "normalized_stable_rank": stable / m,
    }
    for rtol in rtols:
        r = count(rtol * smax)
        out[rtol_column(rtol)], out["normalized_" + rtol_column(rtol)] = r, r.to(torch.float64) / m
    out["nuclear_norm"], out["sigma_max"] = total, smax
    return {name: out[name] for name in metric_columns(rtols)}


def _shape(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def rank_metrics(features: torch.Tensor, rtols: tuple[float, ...] = DEFAULT_RTOLS) -> dict[str, torch.Tensor]:
    """Returns the metrics of `metric_columns(rtols)` for a (B, m, n) batch (or one m × n matrix), each (B,)."""
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 3):
        raise StudyError(f"features must be a matrix or a batch of matrices (B, m, n), got {_shape(features)}")
    if features.numel() == 0:
        raise StudyError(f"features of shape {tuple(features.shape)} are empty; give at least one row and one column")
    f = features.unsqueeze(0) if features.dim() == 2 else features
    return metrics_from_singular_values(singular_values(f), (f.shape[1], f.shape[2]), rtols)


def numerical_rank(features: torch.Tensor) -> torch.Tensor:
    """Returns the rank(s) under the float32 tolerance σ > σ_max · max(m, n) · eps_float32."""
    return rank_metrics(features)["rank"]
