"""Batched linear algebra whose result for each matrix does not depend on the rest of the batch.

On CUDA the products and eigen-solves are one batched torch call each. On the CPU they are one batched
NumPy call each, i.e. OpenBLAS/LAPACK (NumPy's BLAS), on one thread: a stacked `np.matmul` or
`np.linalg.eigvalsh` loops over the matrices, calling the same kernel on each, and OpenBLAS packs its
operands into its own buffers, so a matrix's result is the same bit for bit alone, in any batch, at any
memory alignment (measured here for products of 7×13 to 640×1280 and eigen-solves of 7×7 to 640×640;
tests/rankstudy/test_batched.py keeps it, and would catch a NumPy built on a BLAS that breaks it).
torch's CPU kernels (MKL) do not give that: a 7×13 float32 product written into a slice of a batch, a
73×73 float64 Gram matrix read 8 bytes past a 64-byte line, and the eigenvalues of a 7×7 matrix in a batch
of 5 all differed from the same matrix alone, so the CPU path used to make one torch call per matrix.
OpenBLAS is also the faster library on the AMD EPYC CPU measured here: on the default study's shapes a
float64 Gram product (`a @ a.T` runs as one SYRK, half the flops) took 1/1.9 and an eigen-solve 1/1.4 of
MKL's time (benchmarks/bench_rank.py reports both libraries' floor).
"""

import contextlib
import functools

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

_TORCH_ON_CPU = False  # set by `torch_kernels()`


@contextlib.contextmanager
def torch_kernels():
    """Runs the block's products, Gram matrices and eigen-solves as the batched torch calls CUDA makes, on CPU
    tensors too: how the tests exercise the CUDA code path without a GPU. Not for studies: on the CPU those
    calls (MKL) are not bit-identical per matrix across batches. Not thread-safe."""
    global _TORCH_ON_CPU
    saved, _TORCH_ON_CPU = _TORCH_ON_CPU, True
    try:
        yield
    finally:
        _TORCH_ON_CPU = saved


def _on_numpy(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and not _TORCH_ON_CPU


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Returns the (B, m, n) products a[i] @ b[i], one batched call (NumPy's on the CPU)."""
    if _on_numpy(a):
        return torch.from_numpy(np.matmul(_numpy(a), _numpy(b)))
    return torch.bmm(a, b)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Returns the smaller Gram matrices of (B, m, n) matrices: f[i] @ f[i]ᵀ if m <= n, else f[i]ᵀ @ f[i]."""
    wide = f.shape[1] <= f.shape[2]
    if _on_numpy(f):
        x = _numpy(f)
        xt = x.transpose(0, 2, 1)
        return torch.from_numpy(np.matmul(x, xt) if wide else np.matmul(xt, x))
    return f @ f.mT if wide else f.mT @ f


def eigvalsh(a: torch.Tensor) -> torch.Tensor:
    """Returns the ascending eigenvalues (B, n) of symmetric (B, n, n) matrices, one batched call."""
    if _on_numpy(a):
        return torch.from_numpy(np.linalg.eigvalsh(_numpy(a)))
    return torch.linalg.eigvalsh(a)


@functools.cache
def _blas_threads():
    """Returns threadpoolctl's controller of the BLAS libraries loaded in this process (NumPy's OpenBLAS)."""
    return ThreadpoolController()


@contextlib.contextmanager
def single_thread():
    """Runs the block with one intra-op thread in torch and in NumPy's BLAS, so that results do not depend
    on the thread count.

    MKL's and OpenBLAS's products and LAPACK's eigen-solvers split work at thread-count-dependent points
    (measured here: float32 7×14 products in torch, and OpenBLAS float64 300×600 Gram products and 300×300
    eigen-solves, changed in the last bits between 1 and 2 threads), and so do the vectorised body and
    scalar tail of exp-based elementwise functions. The study therefore gets its parallelism from worker
    processes instead.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_threads().limit(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(n)


# Elements per matrix that an elementwise call is padded to. CPU kernels run a vectorised body over blocks
# of two SIMD registers (32 float32 with AVX-512) from the start of the tensor and a scalar tail, and
# exp-based functions (silu, elu, mish, sigmoid, ...) differ in the last bit between the two (measured
# here: a 7×13 float32 map in a batch of 2 and alone). With every matrix's block a multiple of this, each
# element takes the same path whatever its position in the batch. Plain arithmetic (+, −, ×, ÷, √) is
# exactly rounded on both paths and needs no padding.
ROW_ALIGN = 64


def rowwise(fn, z: torch.Tensor) -> torch.Tensor:
    """Returns the elementwise `fn` of a (B, ...) batch, each matrix's result independent of the batch."""
    b, size = z.shape[0], z[0].numel()
    pad = -size % ROW_ALIGN
    if pad == 0:
        return fn(z)
    padded = torch.nn.functional.pad(z.reshape(b, size), (0, pad))
    return fn(padded)[:, :size].reshape(z.shape)


@contextlib.contextmanager
def ieee_float32():
    """Runs the block with float32 products and convs in IEEE float32 on CUDA, not TF32.

    TF32 keeps 10 mantissa bits (errors ~1e-3 relative), far above the rank tolerance; cuDNN convs use it
    by default. The previous settings are restored on exit.
    """
    mm, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = mm.fp32_precision, conv.fp32_precision
    mm.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        mm.fp32_precision, conv.fp32_precision = saved
