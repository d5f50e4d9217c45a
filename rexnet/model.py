"""ReXNet models built from an `ArchSpec`: the official V1 and lite layouts, and a multi-scale feature extractor.

Module names and order are those of the official release, so its state_dicts load with strict=True:
`features` = stem conv/BN/act, the blocks, penultimate conv/BN/act (+ the global pool for V1);
V1's classifier is `output` = [dropout, 1×1 conv]; lite pools in `avgpool` and its `output` is
[1×1 conv → 1024, BN, act, dropout, 1×1 conv].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .arch import ArchSpec, rexnet_lite_arch, rexnet_v1_arch
from .blocks import LinearBottleneck, conv_bn, make_activation
from .errors import RexnetError

STEM_LAYERS = 3  # features.0-2: stem conv, BN, activation; blocks start at features.3


@dataclass(frozen=True)
class FeatureInfo:
    """One feature map a detection backbone can tap: where it comes from, its channels and its stride."""

    module: str
    channels: int
    reduction: int


OUTPUT_STRIDES = (8, 16, 32)


def block_convs(arch: ArchSpec, stem_stride: int = 2, output_stride: int = 32) -> tuple[tuple[int, int], ...]:
    """Returns each block's depthwise (stride, dilation): downsamplings past `output_stride` become dilation.

    As in DeepLab-style backbones (and timm's output_stride): a stride-2 block reached at the target stride
    keeps stride 1 and dilates every later depthwise conv by 2, so the later layers see the same context.
    """
    convs, current, dilation = [], stem_stride, 1
    for block in arch.blocks:
        stride, next_dilation = block.stride, dilation
        if stride > 1 and current >= output_stride:
            stride, next_dilation = 1, dilation * block.stride
        convs.append((stride, dilation))
        current *= stride
        dilation = next_dilation
    return tuple(convs)


def feature_taps(arch: ArchSpec, stem_stride: int = 2, output_stride: int = 32) -> tuple[tuple[int, FeatureInfo], ...]:
    """Returns (index in `features`, FeatureInfo) of the last layer before each downsampling and of the last block.

    One tap per stride of the undilated network (2, 4, 8, 16, 32 for ReXNet), so out_indices mean the same
    whatever `output_stride`; `reduction` is the map's real stride (with output_stride 16 the last two are 16).
    """
    nominal = actual = stem_stride
    candidates = [(STEM_LAYERS - 1, arch.stem_channels, nominal, actual)]
    for i, (block, (stride, _)) in enumerate(zip(arch.blocks, block_convs(arch, stem_stride, output_stride))):
        nominal, actual = nominal * block.stride, actual * stride
        candidates.append((STEM_LAYERS + i, block.out_channels, nominal, actual))
    last: dict[int, tuple[int, int, int]] = {}
    for index, channels, key, reduction in candidates:
        last[key] = (index, channels, reduction)  # later layers at the same stride overwrite earlier ones
    return tuple((i, FeatureInfo(f"features.{i}", c, r)) for _, (i, c, r) in sorted(last.items()))


class PooledClassifier(nn.Conv2d):
    """The classifier: a 1×1 conv (the official checkpoints' layout) that, given pooled (batch, C) features,
    runs as the matmul it is. On CPU a conv's backward on a 1×1 map costs ~20× a Linear's. Being the module
    that is called (not its weight used elsewhere), hooks on it fire."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return F.linear(x, self.weight.flatten(1), self.bias)
        return super().forward(x)


class ReXNet(nn.Module):
    """A ReXNet classifier built from a block table; `forward` returns logits of shape (batch, num_classes).

    `stem_stride` 1 is for small inputs (see `small_input.py`); `output_stride` 8 or 16 dilates the blocks
    past that stride (dense prediction); `drop_path_rate` is stochastic depth (Huang et al. 2016) following
    timm's ReXNet rule: block i of n drops its residual branch with probability rate·i/(n−1), so the last
    block gets the full rate, and only blocks with a shortcut drop anything.
    """

    def __init__(
        self,
        arch: ArchSpec,
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        stem_stride: int = 2,
        output_stride: int = 32,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if not (isinstance(num_classes, int) and num_classes > 0):
            raise RexnetError(f"num_classes={num_classes!r} is not a positive integer; pass e.g. num_classes=10")
        if not (isinstance(in_chans, int) and in_chans > 0):
            raise RexnetError(f"in_chans={in_chans!r} is not a positive integer; pass e.g. in_chans=1")
        if stem_stride not in (1, 2):
            raise RexnetError(f"stem_stride={stem_stride!r}; use 2 (as built) or 1 (small inputs)")
        if output_stride not in OUTPUT_STRIDES:
            raise RexnetError(f"output_stride={output_stride!r}; use one of {', '.join(map(str, OUTPUT_STRIDES))}")
        if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate < 1):
            raise RexnetError(f"drop_path_rate={drop_path_rate!r}; use a number in [0, 1), e.g. 0.1")
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.stem_stride = stem_stride
        self.output_stride = output_stride
        self.drop_path_rate = float(drop_path_rate)
        self.num_features = arch.penultimate_channels
        n = len(arch.blocks)
        layers = conv_bn(in_chans, arch.stem_channels, 3, stride=stem_stride, act=arch.stem_act)
        layers += [
            LinearBottleneck(
                block, arch.se_reduction, stride=stride, dilation=dilation, drop_path=drop_path_rate * i / max(1, n - 1)
            )
            for i, (block, (stride, dilation)) in enumerate(
                zip(arch.blocks, block_convs(arch, stem_stride, output_stride))
            )
        ]
        layers += conv_bn(arch.blocks[-1].out_channels, arch.penultimate_channels, act=arch.penultimate_act)
        self.lite_head = arch.head_channels is not None
        if not self.lite_head:
            layers.append(nn.AdaptiveAvgPool2d(1))  # V1 keeps its pool inside `features`
        self.features = nn.Sequential(*layers)
        if self.lite_head:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.output = nn.Sequential(
                nn.Conv2d(arch.penultimate_channels, arch.head_channels, 1),
                nn.BatchNorm2d(arch.head_channels),
                make_activation(arch.head_act),
                nn.Dropout(arch.dropout),
                PooledClassifier(arch.head_channels, num_classes, 1),
            )
        else:
            self.output = nn.Sequential(
                nn.Dropout(arch.dropout), PooledClassifier(arch.penultimate_channels, num_classes, 1)
            )
        self._taps = feature_taps(arch, stem_stride, output_stride)
        self.feature_info = tuple(info for _, info in self._taps)
        self.init_weights()

    def init_weights(self) -> None:
        """Re-initialises all weights: convs He-normal over fan-out per group, BN at identity, classifier small.

        The official file relies on PyTorch's default init, which shrinks activations layer by layer:
        a fresh 1.0× model's eval-mode features are ~1e-8, deep in the range where CPUs slow down on
        denormal floats, and a poor start for training from scratch. Fan-out is counted per group (as
        EfficientNet and timm do; nn.init.kaiming_* ignores groups, which under-scales depthwise convs
        by √channels). Loading a checkpoint overrides all of this.
        """
        classifier = self.output[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not classifier:
                kh, kw = module.kernel_size
                fan_out = kh * kw * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(classifier.weight, 0.0, 0.01)
        nn.init.zeros_(classifier.bias)

    @property
    def classifier_name(self) -> str:
        """Returns the state_dict prefix of the last (num_classes-sized) layer, e.g. 'output.1'."""
        return f"output.{len(self.output) - 1}"

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the last layer with a freshly initialised one for `num_classes` classes (fine-tuning)."""
        old = self.output[-1]
        new = PooledClassifier(old.in_channels, num_classes, 1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(new.weight, 0.0, 0.01)  # as init_weights does
        nn.init.zeros_(new.bias)
        self.output[-1] = new
        self.num_classes = num_classes

    # Loops rather than Sequential slices: a slice is a new, unnamed module on every call, which would
    # hide the layers' names from hooks and from FlopCounterMode's per-module counts.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the unpooled penultimate feature map, (batch, num_features, H/s, W/s) at total stride s (32)."""
        body_len = len(self.features) - (0 if self.lite_head else 1)  # V1's last slot is the pool
        for index, layer in enumerate(self.features):
            if index == body_len:
                break
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Returns logits (or, with pre_logits, the pooled vector fed to the last layer) from forward_features."""
        x = self.avgpool(x) if self.lite_head else self.features[-1](x)
        last = len(self.output) - 1
        for index, layer in enumerate(self.output):
            if index == last:
                break
            x = layer(x)
        x = x.flatten(1)
        return x if pre_logits else self.output[last](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_maps(self, x: torch.Tensor, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Returns the feature maps at strides 2, 4, 8, 16, 32 (or those picked by `indices` into feature_info)."""
        taps = self._taps
        wanted = {taps[i][0] for i in (range(len(taps)) if indices is None else indices)}
        maps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                maps.append(x)
                if len(maps) == len(wanted):
                    break
        return maps


class ReXNetV1(ReXNet):
    """ReXNet-V1 exactly as released (module names, order, shapes); `forward` returns (batch, num_classes) logits.

    kwargs (stem_stride, output_stride, drop_path_rate) go to `ReXNet`.
    """

    def __init__(
        self,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        dropout: float = 0.2,
        se: bool = True,
        act: str = "silu",
        **kwargs,
    ):
        arch = rexnet_v1_arch(width_mult, depth_mult, se=se, act=act)
        super().__init__(replace(arch, dropout=dropout), num_classes, in_chans, **kwargs)


class ReXNetV1Lite(ReXNet):
    """ReXNet-lite exactly as released (no SE, ReLU6, 1024-wide MLP head); returns (batch, num_classes) logits."""

    def __init__(
        self,
        multiplier: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        dropout: float = 0.2,
        kernel_sizes: str = "333333",
        fix_head_stem: bool = False,
        **kwargs,
    ):
        arch = rexnet_lite_arch(multiplier, kernel_sizes=kernel_sizes, fix_head_stem=fix_head_stem)
        super().__init__(replace(arch, dropout=dropout), num_classes, in_chans, **kwargs)


class ReXNetFeatures(nn.Module):
    """A backbone for detection: `forward` returns a list of feature maps, one per entry of `feature_info`.

    It shares the layers of the model it is made from, truncated after the last tap, under the same
    `features.N` names, so a classifier checkpoint's state_dict loads into it minus the head.
    """

    def __init__(self, model: ReXNet, out_indices: Sequence[int] = (0, 1, 2, 3, 4)):
        super().__init__()
        taps = model._taps
        bad = [i for i in out_indices if not 0 <= i < len(taps)]
        if bad or not out_indices:
            raise RexnetError(f"out_indices {list(out_indices)} outside 0..{len(taps) - 1}; pick from those")
        chosen = sorted(set(out_indices))
        self._tap_indices = [taps[i][0] for i in chosen]
        self.feature_info = tuple(taps[i][1] for i in chosen)
        self.features = model.features[: self._tap_indices[-1] + 1]

    @property
    def channels(self) -> list[int]:
        """Returns the channel count of each returned map."""
        return [info.channels for info in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        """Returns the stride of each returned map relative to the input."""
        return [info.reduction for info in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        taps = set(self._tap_indices)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in taps:
                maps.append(x)
        return maps
