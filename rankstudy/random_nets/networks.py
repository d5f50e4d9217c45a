"""Builds random networks and returns their features F (d_out × N), batched over rows of equal shape.

Each row's input and weights are drawn on the CPU from a generator seeded with the row's own seed, in a
fixed order (input, then each layer's weights), so a row's features never depend on which rows share its
batch (drawing is ~5% of a CPU study). The forward pass then runs on any device, a few tensor calls per
layer for the whole batch: a 1×1 conv is one batched product (`batched.bmm`), a 3×3 depthwise conv one
grouped conv (`_depthwise`), a full 3×3 conv (weight (d_out, d_in, 3, 3)) im2col plus a product
(`_conv3x3`), and each nonlinearity and batch norm one call per run of rows that share it (`_RowOps`).
On the CPU every row's features are bit-identical to that row built alone (tests/rankstudy/test_networks.py).
"""

import math
from types import SimpleNamespace

import pandas as pd
import torch
import torch.nn.functional as F

from ..batched import bmm, ieee_float32, rowwise, single_thread
from ..errors import StudyError
from .inputs import draw_correlated, draw_patches
from .nonlinearities import get_nonlinearity
from .sampling import CONFIG_COLUMNS, SHAPE_COLUMNS, stack_widths

BN_EPS = 1e-5


def _draw(gen: torch.Generator, shape: tuple[int, ...], dist: str, spatial: int = 1) -> torch.Tensor:
    if dist == "gaussian":
        return torch.randn(shape, generator=gen)
    if dist == "uniform":  # unit variance
        return (torch.rand(shape, generator=gen) * 2 - 1) * math.sqrt(3)
    if dist == "halfnormal":  # non-negative, like post-ReLU features
        return torch.randn(shape, generator=gen).abs()
    if dist == "correlated":  # low rank plus noise, see rankstudy.inputs
        return draw_correlated(gen, *shape)
    if dist == "fmnist":  # real image patches, see rankstudy.inputs
        return draw_patches(gen, *shape, spatial)
    raise ValueError(dist)


def _weight(gen: torch.Generator, shape: tuple[int, ...], fan_in: int, init: str) -> torch.Tensor:
    std = math.sqrt(2.0 / fan_in) if init == "kaiming" else 1.0
    return torch.randn(shape, generator=gen) * std


def _layer_shapes(row) -> list[tuple[tuple[int, ...], int]]:
    """Returns (weight shape, fan_in) of each layer of the row's network, in drawing order."""
    if row.kind == "linear":
        return [((row.d_out, row.d_in), row.d_in)]
    if row.kind == "conv3x3":  # the paper's Figure 1 (b): weights (d_out, d_in·3·3)
        return [((row.d_out, row.d_in * 9), row.d_in * 9)]
    if row.kind == "depthwise":
        return [((row.d_out, row.d_in), row.d_in), ((row.d_out, 9), 9)]
    widths = stack_widths(row.d_in, row.d_out, row.depth) if row.kind == "stack" else [row.d_in, row.d_out]
    layers = []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        hidden = row.block_expansion * c_in
        # block_conv (Figure 1 (c)) has a full 3×3 conv in the middle, the others a depthwise one (d).
        middle = ((hidden, hidden * 9), hidden * 9) if row.kind == "block_conv" else ((hidden, 9), 9)
        layers += [((hidden, c_in), c_in), middle, ((c_out, hidden), hidden)]
    return layers


def largest_intermediate(row) -> int:
    """Returns the number of elements of the largest float32 feature map the row's network computes."""
    return max(row.d_in, *(shape[0] for shape, _ in _layer_shapes(row))) * row.n_samples


def forward_macs(row) -> int:
    """Returns the multiply-adds of the row's forward pass (its layers' weights times the N samples)."""
    return sum(math.prod(shape) for shape, _ in _layer_shapes(row)) * int(row.n_samples)


def _draw_row(row) -> tuple[torch.Tensor, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(int(row.seed))
    x = _draw(gen, (row.d_in, row.n_samples), row.input_dist, int(row.spatial))
    return x, [_weight(gen, shape, fan_in, row.init) for shape, fan_in in _layer_shapes(row)]


def _depthwise(w: torch.Tensor, z: torch.Tensor, spatial: int) -> torch.Tensor:
    """3×3 depthwise conv (zero padding) of (B, C, n_img·S·S) features with (B, C, 9) weights.

    One grouped conv in which every (network, channel, image) map is its own group: no transpose or copy of
    the features, and each map's result depends only on that map and its 9 weights (checked in the tests
    against one network at a time).
    """
    b, c, n = z.shape
    n_img = n // (spatial * spatial)
    maps = z.reshape(1, b * c * n_img, spatial, spatial)
    taps = w.reshape(b * c, 1, 1, 3, 3).expand(b * c, n_img, 1, 3, 3).reshape(b * c * n_img, 1, 3, 3)
    return F.conv2d(maps, taps, padding=1, groups=b * c * n_img).reshape(b, c, n)


def im2col(z: torch.Tensor, spatial: int) -> torch.Tensor:
    """Returns the (B, C·9, N) im2col of (B, C, n_img·S·S) features: the 9 zero-padded 3×3 shifts of every channel
    (an exact copy), the matrix a full 3×3 conv multiplies and whose row space a 1×1 → 3×3 depthwise conv spans."""
    b, c, n = z.shape
    maps = z.reshape(b * c, -1, spatial, spatial).transpose(0, 1)  # (n_img, B·C, S, S)
    cols = F.unfold(maps, 3, padding=1).view(-1, b, c * 9, spatial * spatial)  # (n_img, B, C·9, S·S)
    return cols.permute(1, 2, 0, 3).reshape(b, c * 9, n)


def _conv3x3(w: torch.Tensor, z: torch.Tensor, spatial: int) -> torch.Tensor:
    """Full 3×3 conv (zero padding) of (B, C_in, n_img·S·S) features with (B, C_out, C_in·3·3) weights.

    Written as im2col (`F.unfold`, an exact copy) and one batched product (`batched.bmm`): a conv grouped
    over the batch gives a network different last bits than the same conv alone (measured here on the CPU:
    24×6 channels, batches of 2 and 5), the product does not.
    """
    b, c, _ = z.shape
    return bmm(w.reshape(b, w.shape[1], c * 9), im2col(z, spatial))


# Rows whose pre-activations stay under this magnitude use torch's fused batch norm directly: its sums
# of squares cannot overflow float32 (N · (2·2**40)**2 ≪ 3.4e38). Larger ones (unit-variance weights in deep
# stacks without norm upstream) are first scaled per channel.
_BN_SAFE = 2.0**40


def _batch_norm(z: torch.Tensor) -> torch.Tensor:
    """Returns batch norm (no affine, eps 1e-5) of (B, C, N) pre-activations over each channel's N samples."""
    b, c, n = z.shape
    if n == 1:  # one sample: F.batch_norm refuses it; the variance is 0 and every output 0 either way
        return _scaled_batch_norm(z)
    flat = z.flatten(1)  # per network, so a row's path never depends on its batch; amax + amin: 1/18 of aminmax's time
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    safe = (high < _BN_SAFE) & (low > -_BN_SAFE)
    if bool(safe.all()):
        return F.batch_norm(z.reshape(1, b * c, n), None, None, training=True, eps=BN_EPS).view(b, c, n)
    out = torch.empty_like(z)
    for rows, fn in ((safe, _batch_norm), (~safe, _scaled_batch_norm)):
        idx = torch.nonzero(rows).flatten()
        if len(idx):
            out.index_copy_(0, idx, fn(z.index_select(0, idx)))
    return out


def _scaled_batch_norm(z: torch.Tensor) -> torch.Tensor:
    # Scaled first so that the variance of huge pre-activations cannot overflow float32; batch norm is
    # invariant to this per-channel scale, which the eps term compensates.
    scale = z.abs().amax(dim=-1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    z = z / scale
    var, mean = torch.var_mean(z, dim=-1, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + BN_EPS / scale**2)


def _runs(values) -> list[tuple[int, int, object]]:
    """Returns (start, stop, value) of each run of equal consecutive values."""
    runs, start = [], 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append((start, i, values[start]))
            start = i
    return runs


class _RowOps:
    """Per-row nonlinearity and normalisation for a batch whose rows may differ in both.

    One call per run of consecutive rows with the same function (`analyze` sorts each batch by norm and
    nonlinearity, so a batch has a few runs), never one per row.
    """

    def __init__(self, nonlinearities, norms):
        self.fns = [(a, b, get_nonlinearity(name)) for a, b, name in _runs(list(nonlinearities))]
        self.norms = _runs([n == "bn" for n in norms])

    def norm(self, z: torch.Tensor) -> torch.Tensor:
        parts = [_batch_norm(z[a:b]) if bn else z[a:b] for a, b, bn in self.norms]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def act(self, z: torch.Tensor) -> torch.Tensor:
        parts = [rowwise(fn, z[a:b]) for a, b, fn in self.fns]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def build_features(rows: pd.DataFrame, device: str | torch.device = "cpu") -> torch.Tensor:
    """Returns the float32 features (B, d_out, N) of rows that share all SHAPE_COLUMNS, on `device`.

    On the CPU it runs on one thread so that the features do not depend on the thread count; on CUDA in
    IEEE float32 (no TF32).
    """
    return build_features_with_inputs(rows, device)[0]


def build_features_with_inputs(
    rows: pd.DataFrame, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (features (B, d_out, N), inputs (B, d_in, N)) of rows that share all SHAPE_COLUMNS, on `device`.

    The inputs are the X each network was fed (float32), for measuring their own rank: Fashion-MNIST patches
    can be rank-deficient (blank background), which a bound assuming rank min(d_in, N) would miss.
    """
    with single_thread(), ieee_float32():
        return _build_features(rows, device)


def _build_features(rows: pd.DataFrame, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    columns = {c: rows[c].to_numpy() for c in rows.columns}  # plain arrays: pandas rows cost ~10 µs a field
    assert all((columns[c] == columns[c][0]).all() for c in SHAPE_COLUMNS), "rows must share one shape"
    records = [SimpleNamespace(**{c: v[i] for c, v in columns.items()}) for i in range(len(rows))]
    first, device = records[0], torch.device(device)
    drawn = [_draw_row(r) for r in records]
    x = torch.stack([d[0] for d in drawn]).to(device)
    weights = [torch.stack([d[1][i] for d in drawn]).to(device) for i in range(len(drawn[0][1]))]
    ops, layers, spatial = _RowOps(columns["nonlinearity"], columns["norm"]), _layer_shapes(first), int(first.spatial)

    if first.kind == "conv3x3":
        return ops.act(ops.norm(_conv3x3(weights[0], x, spatial))), x
    if first.kind in ("linear", "depthwise"):
        z = bmm(weights[0], x)
        if first.kind == "depthwise":
            z = _depthwise(weights[1], z, spatial)
        return ops.act(ops.norm(z)), x

    middle = _conv3x3 if first.kind == "block_conv" else _depthwise
    z = x
    for i in range(0, len(layers), 3):  # one inverted bottleneck per three layers
        expand, dw, project = weights[i : i + 3]
        h = ops.act(ops.norm(bmm(expand, z)))
        h = ops.act(ops.norm(middle(dw, h, spatial)))
        out = ops.norm(bmm(project, h))
        c_in = z.shape[1]
        if out.shape[1] >= c_in:  # ReXNet's partial residual: input added to the first c_in channels
            out[:, :c_in] += z
        z = out
    return z, x


def rebuild_features(row) -> torch.Tensor:
    """Returns the exact float32 feature matrix (d_out × N) of one results-table row, on the CPU."""
    frame = pd.DataFrame([dict(row)]) if not isinstance(row, pd.DataFrame) else row
    missing = [c for c in CONFIG_COLUMNS if c not in frame.columns]
    if missing:
        raise StudyError(
            f"the row lacks {', '.join(missing)}; pass a full row of the results table (or of sample_networks)"
        )
    if len(frame) == 0:
        raise StudyError("no row given; pass a row of the results table (or of sample_networks)")
    return build_features(frame, "cpu")[0]
