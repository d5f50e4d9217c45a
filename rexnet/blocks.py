"""ReXNet's building blocks: conv-BN-act, squeeze-excitation and the linear (inverted) bottleneck.

Module order and attribute names follow the official release (a block's layers live in `out`, SE's in
`fc`) so that its state_dict keys are reproduced exactly; see `tests/rexnet/official_reference.py`.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# The activations live in their own registry (shared with the rank study); re-exported here for old imports.
from .activations import InferenceInplaceSiLU, MemoryEfficientReLU6, autograd_on, make_activation  # noqa: F401
from .arch import BlockSpec


class _PartialResidual(torch.autograd.Function):
    """out[:, :C] += x in place; backward passes the gradient through without the copy autograd makes for
    in-place writes into a slice (CopySlices clones the whole gradient)."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.channels = x.shape[1]
        out[:, : ctx.channels] += x
        ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad[:, : ctx.channels]


# The speed tricks below are plain functions that torch.fx records as one call each (`torch.fx.wrap`), so a
# traced graph has no data-dependent Python branch; under TorchScript each takes its plain form (the
# `torch.jit.is_scripting()` branch), and the eager-only parts are `torch.jit.unused`.


@torch.jit.unused
def _partial_residual_eager(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if autograd_on(out) or autograd_on(x):
        return _PartialResidual.apply(out, x)
    out[:, : x.shape[1]] += x
    return out


def partial_residual(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Returns `out` with `x` added to its first x.shape[1] channels (in place: `out` is a fresh BN output)."""
    if torch.jit.is_scripting():
        channels = x.shape[1]
        return torch.cat([out[:, :channels] + x, out[:, channels:]], dim=1)
    return _partial_residual_eager(out, x)


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Returns x with each sample (row) zeroed with probability p and the others scaled by 1/(1 − p): stochastic
    depth (Huang et al. 2016) on a residual branch while training, as torchvision's `stochastic_depth(x, p, "row")`
    computes it (one Bernoulli draw per sample, from the same random stream), without importing torchvision."""
    if p == 0.0:
        return x
    survival = 1.0 - p
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival)
    if survival > 0.0:
        noise.div_(survival)
    return x * noise


torch.fx.wrap("partial_residual")
torch.fx.wrap("drop_path")


@functools.lru_cache(maxsize=64)
def _dense_taps(height: int, width: int, stride: int, kernel: int) -> tuple[torch.Tensor, int, int]:
    """Returns (index, out_h, out_w): index[o, p] is the kernel tap linking input pixel p to output pixel o
    of a 'same'-padded k×k conv, or k·k (a zero tap) where the window does not reach."""
    pad = kernel // 2
    out_h, out_w = (height - 1) // stride + 1, (width - 1) // stride + 1
    index = torch.full((out_h * out_w, height * width), kernel * kernel, dtype=torch.long)
    for oi in range(out_h):
        for oj in range(out_w):
            for pi in range(height):
                for pj in range(width):
                    ki, kj = pi - oi * stride + pad, pj - oj * stride + pad
                    if 0 <= ki < kernel and 0 <= kj < kernel:
                        index[oi * out_w + oj, pi * width + pj] = ki * kernel + kj
    return index, out_h, out_w


@torch.jit.unused
def _depthwise_eager(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    # Autograd first: it is off while tracing for export, where shapes must not become Python branches.
    training = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if (
        not training
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or not x.is_cpu
        or x.shape[-2] * x.shape[-1] > 16
        or dilation != 1
    ):
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])
    n, c, h, w = x.shape
    index, out_h, out_w = _dense_taps(h, w, stride, weight.shape[-1])
    taps = torch.cat([weight.view(c, -1), weight.new_zeros(c, 1)], dim=1)
    dense = taps[:, index]  # (c, out pixels, in pixels)
    y = torch.bmm(x.reshape(n, c, h * w).transpose(0, 1), dense.transpose(1, 2))  # (c, n, out pixels)
    return y.transpose(0, 1).reshape(n, c, out_h, out_w)


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, dilation: int) -> torch.Tensor:
    """Returns the depthwise conv of x (groups = channels, no bias); see DepthwiseConv2d for the CPU training path."""
    if torch.jit.is_scripting():
        return F.conv2d(x, weight, None, stride, padding, dilation, weight.shape[0])
    return _depthwise_eager(x, weight, stride, padding, dilation)


torch.fx.wrap("depthwise_conv")


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise k×k conv (groups = channels, 'same' padding, no bias), an nn.Conv2d with the same weight.

    With `dilation` > 1 (output_stride 8/16 for dense prediction) it is always the plain conv.
    On tiny maps (≤ 16 pixels: the last stages at 32×32 input) PyTorch's CPU depthwise backward is
    10–50× slower than the arithmetic warrants; while training on CPU such maps go through an exact
    equivalent instead — each channel's conv as a dense (out pixels × in pixels) matrix built from its
    taps, applied with one batched matmul. Elsewhere (GPU, inference, export, TorchScript) it is the plain conv.
    """

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__(
            channels,
            channels,
            kernel_size,
            stride,
            dilation * (kernel_size // 2),
            dilation,
            groups=channels,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv(x, self.weight, self.stride[0], self.padding[0], self.dilation[0])


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    stride: int = 1,
    groups: int = 1,
    act: str | None = None,
    dilation: int = 1,
) -> list[nn.Module]:
    """Returns [conv (no bias), BN] plus the activation if `act` is given: three or two Sequential slots."""
    if groups == in_channels == out_channels > 1:
        conv: nn.Conv2d = DepthwiseConv2d(out_channels, kernel_size, stride, dilation)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(out_channels)]
    if act is not None:
        layers.append(make_activation(act))
    return layers


class SqueezeExcite(nn.Module):
    """Channel gating: x · sigmoid(W2 · ReLU(BN(W1 · avgpool(x)))), with a BN the usual SE block lacks.

    `hidden` defaults to channels // reduction (the official width; timm's rexnetr rounds it, see BlockSpec)."""

    def __init__(self, channels: int, reduction: int = 12, hidden: int | None = None):
        super().__init__()
        hidden = channels // reduction if hidden is None else hidden
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(self.avg_pool(x))


class LinearBottleneck(nn.Module):
    """The ReXNet block described by a `BlockSpec`; its output keeps no activation (a linear bottleneck).

    `stride`/`dilation` override the depthwise conv's for output_stride 8/16 (a removed downsampling becomes
    dilation of the later convs); the shortcut stays the table's (a former downsampling block gets none, as in timm).
    `drop_path` (stochastic depth) drops the residual branch of a whole sample with that probability while
    training; only blocks with a shortcut have a branch to drop (a downsampling block's main path is the block).
    """

    def __init__(
        self,
        spec: BlockSpec,
        se_reduction: int = 12,
        *,
        stride: int | None = None,
        dilation: int = 1,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.in_channels = spec.in_channels
        self.out_channels = spec.out_channels
        self.use_shortcut = spec.shortcut
        self.drop_path = drop_path if spec.shortcut else 0.0
        mid = spec.mid_channels
        layers: list[nn.Module] = []
        if spec.expansion != 1:
            layers += conv_bn(spec.in_channels, mid, act=spec.act)
        layers += conv_bn(
            mid, mid, spec.kernel_size, spec.stride if stride is None else stride, groups=mid, dilation=dilation
        )
        if spec.se:
            layers.append(SqueezeExcite(mid, se_reduction, spec.se_hidden(se_reduction)))
        layers.append(make_activation(spec.dw_act))
        layers += conv_bn(mid, spec.out_channels)
        self.out = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out(x)
        if not self.use_shortcut:
            return out
        if self.drop_path > 0.0 and self.training:
            out = drop_path(out, self.drop_path)  # a fresh tensor: safe to add into
        # Partial residual, written in place into the projection's BN output (BN's backward does not need
        # its output): no extra full-size tensor, unlike a torch.cat.
        return partial_residual(out, x)
