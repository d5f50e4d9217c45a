"""rankstudy.batched: each matrix's product, Gram matrix and eigenvalues are the same bit for bit alone, in any
batch, at any memory alignment and thread count; and they agree with independent float64 references."""

import numpy as np
import pytest
import torch

from rankstudy import StudyConfig, analyze, sample_networks
from rankstudy.batched import bmm, eigvalsh, gram, single_thread, torch_kernels
from rankstudy.rank import metric_columns

gen = torch.Generator().manual_seed(0)


def misaligned(x: torch.Tensor, offset: int) -> torch.Tensor:
    """Returns a copy of x that starts `offset` elements into a fresh buffer (so 4·offset or 8·offset bytes off)."""
    buf = torch.empty(x.numel() + offset, dtype=x.dtype)
    out = buf[offset:].view(x.shape)
    out.copy_(x)
    return out


SHAPES = [(7, 13, 7), (33, 401, 33), (13, 7, 13), (73, 146, 73), (96, 16, 640)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_products_do_not_depend_on_the_batch_or_alignment(m, k, n, dtype):
    a = torch.randn(5, m, k, generator=gen, dtype=dtype)
    b = torch.randn(5, k, n, generator=gen, dtype=dtype)
    with single_thread():
        out, grams = bmm(a, b), gram(a)
        for i in range(5):
            for offset in (0, 1, 3):
                ai, bi = misaligned(a[i : i + 1], offset), misaligned(b[i : i + 1], offset)
                assert torch.equal(out[i], bmm(ai, bi)[0])
                assert torch.equal(grams[i], gram(ai)[0])
                assert torch.equal(grams[i], gram(a[i : i + 1].mT.contiguous().mT)[0])  # a Fortran-ordered copy


@pytest.mark.parametrize("n", [1, 7, 13, 73, 130])
def test_eigenvalues_do_not_depend_on_the_batch_or_alignment(n):
    x = torch.randn(6, n, n + 5, generator=gen, dtype=torch.float64)
    with single_thread():
        g = gram(x)
        eig = eigvalsh(g)
        for i in range(6):
            for offset in (0, 1, 3):
                assert torch.equal(eig[i], eigvalsh(misaligned(g[i : i + 1], offset))[0])
        assert torch.equal(eig[1:4], eigvalsh(g[1:4]))


def test_results_match_torch_float64_references():
    a = torch.randn(4, 30, 50, generator=gen, dtype=torch.float64)
    b = torch.randn(4, 50, 20, generator=gen, dtype=torch.float64)
    with single_thread():
        torch.testing.assert_close(bmm(a, b), torch.bmm(a, b), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gram(a), a @ a.mT, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gram(a.mT), a @ a.mT, rtol=1e-12, atol=1e-12)  # tall: Fᵀ F
        g = a @ a.mT
        torch.testing.assert_close(eigvalsh(g), torch.linalg.eigvalsh(g), rtol=1e-10, atol=1e-10)


def test_single_thread_limits_torch_and_blas_and_restores_them():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    with single_thread():
        assert torch.get_num_threads() == 1
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert torch.get_num_threads() == before
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == [i["num_threads"] for i in blas]
    assert blas, "NumPy's BLAS was not found by threadpoolctl: the thread limit would not apply"


def test_the_cuda_code_path_gives_the_same_ranks_on_the_cpu():
    """`torch_kernels` runs the batched torch calls CUDA makes (one call per batch, not NumPy): on 400 rows of the
    default study every rank equals the CPU path's, and the float metrics agree to float32 feature precision
    (the two libraries' float32 products differ in the last bits, which moves effective ranks by ~1e-6)."""
    rows = sample_networks(StudyConfig(n=400, seed=3))
    cpu = analyze(rows, torch.device("cpu"))
    with torch_kernels():
        batched = analyze(rows, torch.device("cpu"), batch_size=400)
    for column in metric_columns():
        if column.startswith("rank") or column.startswith("normalized_rank"):
            assert (cpu[column] == batched[column]).all(), column
        else:
            np.testing.assert_allclose(batched[column], cpu[column], rtol=1e-4, err_msg=column)
