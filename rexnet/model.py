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


def feature_taps(arch: ArchSpec) -> tuple[tuple[int, FeatureInfo], ...]:
    """Returns (index in `features`, FeatureInfo) of the last layer at each stride (2, 4, 8, 16, 32 for ReXNet)."""
    candidates = [(STEM_LAYERS - 1, arch.stem_channels, 2)]
    for i, (block, reduction) in enumerate(zip(arch.blocks, arch.strides[1:])):
        candidates.append((STEM_LAYERS + i, block.out_channels, reduction))
    last: dict[int, tuple[int, int]] = {}
    for index, channels, reduction in candidates:
        last[reduction] = (index, channels)  # later layers at the same stride overwrite earlier ones
    return tuple((i, FeatureInfo(f"features.{i}", c, r)) for r, (i, c) in sorted(last.items()))


class ReXNet(nn.Module):
    """A ReXNet classifier built from a block table; `forward` returns logits of shape (batch, num_classes)."""

    def __init__(self, arch: ArchSpec, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        if not (isinstance(num_classes, int) and num_classes > 0):
            raise RexnetError(f"num_classes={num_classes!r} is not a positive integer; pass e.g. num_classes=10")
        self.arch = arch
        self.num_classes = num_classes
        self.num_features = arch.penultimate_channels
        layers = conv_bn(in_chans, arch.stem_channels, 3, stride=2, act=arch.stem_act)
        layers += [LinearBottleneck(block, arch.se_reduction) for block in arch.blocks]
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
                nn.Conv2d(arch.head_channels, num_classes, 1),
            )
        else:
            self.output = nn.Sequential(nn.Dropout(arch.dropout), nn.Conv2d(arch.penultimate_channels, num_classes, 1))
        self.feature_info = tuple(info for _, info in feature_taps(arch))
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
        new = nn.Conv2d(old.in_channels, num_classes, 1).to(old.weight.device, old.weight.dtype)
        nn.init.normal_(new.weight, 0.0, 0.01)  # as init_weights does
        nn.init.zeros_(new.bias)
        self.output[-1] = new
        self.num_classes = num_classes

    # Loops rather than Sequential slices: a slice is a new, unnamed module on every call, which would
    # hide the layers' names from hooks and from FlopCounterMode's per-module counts.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the unpooled penultimate feature map, (batch, num_features, H/32, W/32)."""
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
        if pre_logits:
            return x
        # The classifier is stored as a 1×1 conv (the official layout) but applied as the matmul it is: on
        # CPU the conv's backward on a 1×1 map costs ~20× a Linear's.
        classifier = self.output[last]
        return F.linear(x, classifier.weight.flatten(1), classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def feature_maps(self, x: torch.Tensor, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Returns the feature maps at strides 2, 4, 8, 16, 32 (or those picked by `indices` into feature_info)."""
        taps = feature_taps(self.arch)
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
    """ReXNet-V1 exactly as released (module names, order, shapes); `forward` returns (batch, num_classes) logits."""

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
    ):
        arch = rexnet_v1_arch(width_mult, depth_mult, se=se, act=act)
        super().__init__(replace(arch, dropout=dropout), num_classes, in_chans)


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
    ):
        arch = rexnet_lite_arch(multiplier, kernel_sizes=kernel_sizes, fix_head_stem=fix_head_stem)
        super().__init__(replace(arch, dropout=dropout), num_classes, in_chans)


class ReXNetFeatures(nn.Module):
    """A backbone for detection: `forward` returns a list of feature maps, one per entry of `feature_info`.

    It shares the layers of the model it is made from, truncated after the last tap, under the same
    `features.N` names, so a classifier checkpoint's state_dict loads into it minus the head.
    """

    def __init__(self, model: ReXNet, out_indices: Sequence[int] = (0, 1, 2, 3, 4)):
        super().__init__()
        taps = feature_taps(model.arch)
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
