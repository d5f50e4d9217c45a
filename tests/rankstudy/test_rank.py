"""Rank metrics against independent references: float64 SVD, and matrices built to have a known rank."""

import math

import numpy as np
import pytest
import torch

from rankstudy import StudyError, rank_metrics, singular_values
from rankstudy.rank import EPS_FLOAT32, metric_columns, metrics_from_singular_values, rtol_column

gen = torch.Generator().manual_seed(0)


def known_rank(m: int, n: int, k: int, scale: float = 1.0, batch: int = 1) -> torch.Tensor:
    """A float32 (batch, m, n) matrix of exact rank k with well-separated singular values."""
    if k == 0:
        return torch.zeros(batch, m, n)
    u, _ = torch.linalg.qr(torch.randn(batch, m, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(batch, n, k, generator=gen, dtype=torch.float64))
    s = torch.linspace(1.0, 0.1, k, dtype=torch.float64)
    return ((u * s) @ v.mT * scale).float()


def reference(f: torch.Tensor) -> dict[str, float]:
    """Metrics of one matrix from a float64 SVD, written independently of rankstudy.rank."""
    a = f.double().numpy()
    s = np.linalg.svd(a, compute_uv=False)
    m, n = a.shape
    tol = s[0] * max(m, n) * np.finfo(np.float32).eps
    p = s / s.sum()
    p = p[p > 0]
    return {
        "rank": int((s > tol).sum()),
        "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
        "stable_rank": float((a**2).sum() / s[0] ** 2),
        "rank_rtol_1e-3": int((s > 1e-3 * s[0]).sum()),
        "rank_rtol_1e-2": int((s > 1e-2 * s[0]).sum()),
        "nuclear_norm": float(s.sum()),
        "sigma_max": float(s[0]),
    }


@pytest.mark.parametrize("m,n,k", [(20, 40, 7), (40, 20, 13), (32, 32, 32), (64, 128, 1), (5, 300, 5), (128, 256, 100)])
def test_rank_of_known_rank_matrices(m, n, k):
    f = known_rank(m, n, k, batch=3)
    got = rank_metrics(f)
    assert got["rank"].tolist() == [k] * 3
    assert torch.equal(got["rank"], torch.linalg.matrix_rank(f.double(), rtol=max(m, n) * EPS_FLOAT32))
    assert np.allclose(got["normalized_rank"].numpy(), k / m)


@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1.0, 1e12, 1e30])
def test_metrics_match_float64_svd_at_any_scale(scale):
    f = known_rank(48, 96, 20, scale=scale)[0] + 1e-3 * scale * torch.randn(48, 96, generator=gen)
    got = {k: v.item() for k, v in rank_metrics(f).items()}
    ref = reference(f)
    for key in ("rank", "rank_rtol_1e-3", "rank_rtol_1e-2"):
        assert got[key] == ref[key], key
    for key in ("effective_rank", "stable_rank"):
        assert math.isclose(got[key], ref[key], rel_tol=1e-9), key
    for key in ("nuclear_norm", "sigma_max"):
        assert math.isclose(got[key], ref[key], rel_tol=1e-9), key


def test_random_float32_features_agree_with_svd_rank():
    # Features as the study makes them: float32, rank-deficient products and nonlinear maps of them.
    mats = [
        torch.randn(60, 8, generator=gen) @ torch.randn(8, 120, generator=gen),
        torch.relu(torch.randn(60, 8, generator=gen) @ torch.randn(8, 120, generator=gen)),
        torch.sigmoid(torch.randn(60, 30, generator=gen) @ torch.randn(30, 60, generator=gen) * 5),
        torch.tanh(torch.randn(100, 4, generator=gen) @ torch.randn(4, 100, generator=gen)),
    ]
    for f in mats:
        assert rank_metrics(f)["rank"].item() == reference(f)["rank"]


def test_zero_rank_one_and_constant_matrices():
    zero = rank_metrics(torch.zeros(10, 20))
    assert zero["rank"].item() == 0 and zero["effective_rank"].item() == 0 and zero["stable_rank"].item() == 0
    f = known_rank(30, 50, 1)[0]
    one = rank_metrics(f)
    assert one["rank"].item() == 1
    # float32 rounding leaves singular values ~1e-7·σ_max: close to, not exactly, 1
    assert math.isclose(one["effective_rank"].item(), 1.0, rel_tol=1e-4)
    assert math.isclose(one["effective_rank"].item(), reference(f)["effective_rank"], rel_tol=1e-6)
    assert math.isclose(one["stable_rank"].item(), 1.0, rel_tol=1e-6)
    assert rank_metrics(torch.ones(7, 9))["rank"].item() == 1


def test_effective_rank_of_equal_singular_values_is_their_count():
    q, _ = torch.linalg.qr(torch.randn(50, 50, generator=gen, dtype=torch.float64))
    f = q[:, :12].mT.float()  # 12 orthonormal rows: 12 singular values equal to 1
    got = rank_metrics(f)
    assert math.isclose(got["effective_rank"].item(), 12.0, rel_tol=1e-6)
    assert math.isclose(got["stable_rank"].item(), 12.0, rel_tol=1e-6)


# Shapes whose slices of a batch are not 64-byte aligned; each once broke bit-identity (see rankstudy.batched).
@pytest.mark.parametrize("b,m,n", [(6, 30, 45), (5, 7, 13), (3, 73, 73), (4, 33, 401), (3, 45, 30), (9, 13, 5)])
def test_batched_equals_one_at_a_time(b, m, n):
    f = torch.randn(b, m, n, generator=gen)
    f[1] = known_rank(m, n, max(1, min(m, n) // 3))[0]  # a rank-deficient member: tiny singular values
    batched = rank_metrics(f)
    for i in range(b):
        single = rank_metrics(f[i])
        for key in batched:
            assert torch.equal(batched[key][i], single[key][0]), key


def test_metrics_are_batch_independent_for_every_size_up_to_70():
    # every padding remainder of the pairwise sums and of the rowwise log/exp
    for m in range(1, 71):
        f = torch.randn(3, m, m + 3, generator=gen)
        batched = metrics_from_singular_values(singular_values(f), (m, m + 3))
        for i in range(3):
            single = metrics_from_singular_values(singular_values(f[i]), (m, m + 3))
            assert all(torch.equal(batched[k][i], single[k][0]) for k in batched), m


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features_are_rejected(bad):
    f = torch.randn(3, 10, 20, generator=gen)
    f[1, 2, 3] = bad
    with pytest.raises(StudyError, match=r"\[1\].*NaN or inf"):
        singular_values(f)


def test_wrong_dimensions_are_rejected():
    with pytest.raises(StudyError, match="matrix or a batch"):
        rank_metrics(torch.randn(2, 3, 4, 5))


def test_metric_columns_cover_rank_metrics():
    assert list(rank_metrics(torch.randn(4, 8), rtols=(1e-3, 0.05))) == metric_columns((1e-3, 0.05))
    assert rtol_column(1e-3) == "rank_rtol_1e-3" and rtol_column(0.05) == "rank_rtol_5e-2"
