"""Batched linear algebra whose result for each matrix does not depend on the rest of the batch.

On the CPU, MKL's products and eigen-solvers give a matrix different last bits depending on the memory
alignment of its operands and output (measured here: 7×13 float32 and 33×401 float64 products written into
a slice of a batch, a 73×73 float64 Gram matrix read from a slice starting 8 bytes past a 64-byte line, and
the eigenvalues of 7×7 and 13×13 matrices in a batch of 5–6, all differed from the same matrix alone). So
on the CPU each matrix gets its own call, reading operands that start on a 64-byte line (a slice that does
not is copied first, as a lone tensor would be allocated) and writing a fresh output; the per-call overhead
(~10 µs) is small next to the products and eigen-solves, and a batched CPU eigen-solve is a loop over LAPACK
calls anyway. On CUDA, where launch overhead dominates, one batched call is used.
"""
import contextlib

import torch

ALIGN_BYTES = 64


def _aligned(x: torch.Tensor) -> torch.Tensor:
    """Returns x, or a copy with the same strides in a fresh (64-byte aligned) allocation if x is not aligned."""
    return x if x.data_ptr() % ALIGN_BYTES == 0 else x.clone()


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Returns the (B, m, n) products a[i] @ b[i]; on the CPU each is computed on its own."""
    if a.device.type == "cpu":
        return torch.stack([_aligned(x) @ _aligned(y) for x, y in zip(a, b)])
    return torch.bmm(a, b)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Returns the smaller Gram matrices of (B, m, n) matrices: f[i] @ f[i]ᵀ if m <= n, else f[i]ᵀ @ f[i]."""
    wide = f.shape[1] <= f.shape[2]
    if f.device.type == "cpu":
        return torch.stack([x @ x.mT if wide else x.mT @ x for x in map(_aligned, f)])
    return f @ f.mT if wide else f.mT @ f


def eigvalsh(a: torch.Tensor) -> torch.Tensor:
    """Returns the ascending eigenvalues (B, n) of symmetric (B, n, n) matrices; on the CPU one at a time."""
    if a.device.type == "cpu":
        return torch.stack([torch.linalg.eigvalsh(_aligned(x)) for x in a])
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
