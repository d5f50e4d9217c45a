"""Batched matrix products whose result for each matrix does not depend on the rest of the batch.

On the CPU, `torch.bmm` and `torch.linalg.eigvalsh` take other code paths for a batch than for one
matrix (measured here: a float64 30×45 Gram matrix, and the eigenvalues of 7×7 and 13×13 matrices,
differed in the last bits between a batch of 5–6 and a batch of 1), so the CPU path works one matrix at
a time; the per-call overhead (~10 µs) is small, and a batched CPU eigen-solve is a loop over LAPACK
calls anyway. Each matrix is copied into its own allocation first: MKL's kernels also depend on the
memory alignment of their operands, which differs between a slice of a batch and a lone tensor. On
CUDA, where launch overhead dominates, one batched call is used.
"""
import contextlib

import torch


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Returns the (B, m, n) products a[i] @ b[i]; on the CPU each is computed on its own."""
    if a.device.type == "cpu":
        return torch.stack([x @ y for x, y in zip(a, b)])
    return torch.bmm(a, b)


def eigvalsh(a: torch.Tensor) -> torch.Tensor:
    """Returns the ascending eigenvalues (B, n) of symmetric (B, n, n) matrices; on the CPU one at a time."""
    if a.device.type == "cpu":
        return torch.stack([torch.linalg.eigvalsh(x.clone()) for x in a])
    return torch.linalg.eigvalsh(a)


@contextlib.contextmanager
def single_thread():
    """Runs the block with one intra-op thread, so that results do not depend on the thread count.

    MKL's matrix products and LAPACK's eigen-solvers split work at thread-count-dependent points
    (measured here: float32 7×14 products and float64 eigenvalues of ≥ 100×100 matrices changed in the
    last bits between 1 and 2 threads), and so do the vectorised body and scalar tail of exp-based
    elementwise functions. The study therefore gets its parallelism from worker processes instead.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
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
