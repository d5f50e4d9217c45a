"""ReXNet models built from an `ArchSpec`: the official V1 and lite layouts, and a multi-scale feature extractor.

Module names and order are those of the official release, so its state_dicts load with strict=True:
`features` = stem conv/BN/act, the blocks, penultimate conv/BN/act; V1's classifier is `output` = [dropout,
1×1 conv]; lite's `output` is [1×1 conv → 1024, BN, act, dropout, 1×1 conv]. The global pool (no parameters)
is `global_pool`, between the two (the release keeps V1's inside `features`; the keys are the same).

The model speaks timm's model interface (`num_classes=0`, `reset_classifier`, `global_pool`, `forward_head`,
`forward_intermediates`, `feature_info`, `pretrained_cfg`, `set_grad_checkpointing`, `group_matcher`): see
docs/models.md for what each does here and the few timm features that do not apply. Every forward is free
of data-dependent Python branches, so torch.fx traces it and TorchScript compiles it (the speed tricks of
`blocks.py` and `activations.py` are functions fx records as single calls).

No `from __future__ import annotations` here: torch.fx copies forward's annotations into the code it
generates, where TorchScript must be able to read them as types.
"""

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, checkpoint_sequential

from .arch import ArchSpec, rexnet_lite_arch, rexnet_v1_arch
from .blocks import LinearBottleneck, conv_bn, make_activation
from .errors import RexnetError
from .pretrained import PretrainedCfg, cfg_dict

STEM_LAYERS = 3  # features.0-2: stem conv, BN, activation; blocks start at features.3
OUTPUT_STRIDES = (8, 16, 32)
GLOBAL_POOLS = ("avg", "max", "avgmax", "")  # timm's names; "" = no pooling (forward returns the feature map)


def feature_take_indices(num_taps: int, indices: int | Sequence[int] | None = None) -> tuple[list[int], int]:
    """Returns (tap indices, the largest) as timm's `feature_take_indices` reads `indices`: None = all taps,
    an int n = the last n, a sequence = those taps (negative counts from the end); RexnetError if out of range."""
    if indices is None:
        take = list(range(num_taps))
    elif isinstance(indices, int):
        if not 0 < indices <= num_taps:
            raise RexnetError(f"indices={indices} asks for the last {indices} of {num_taps} taps; use 1..{num_taps}")
        take = list(range(num_taps - indices, num_taps))
    else:
        raw = list(indices)
        bad = [i for i in raw if not -num_taps <= i < num_taps]
        if bad or not raw:
            raise RexnetError(
                f"out_indices {raw} outside 0..{num_taps - 1} (or -{num_taps}..-1 from the end); pick from those"
            )
        take = sorted({i % num_taps for i in raw})
    return take, max(take)


class FeatureInfo:
    """The taps a feature extractor returns, with timm's `FeatureInfo` API: `channels()`, `reduction()`,
    `module_name()`, `get(key)`, `get_dicts()`, `from_other(out_indices)`; `info[i]` is tap i's dict
    (`num_chs`, `reduction`, `module`) whether or not it is returned; `len(info)` counts all taps."""

    def __init__(self, feature_info: Sequence[dict[str, Any]], out_indices: int | Sequence[int] | None = None):
        self.info = [dict(entry) for entry in feature_info]
        self.out_indices = tuple(feature_take_indices(len(self.info), out_indices)[0])

    def from_other(self, out_indices: int | Sequence[int] | None) -> "FeatureInfo":
        """Returns the same taps with other out_indices."""
        return FeatureInfo(self.info, out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """Returns `key` of every returned tap (idx None), of tap `idx`, or of the taps in `idx`."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        """Returns the dicts (restricted to `keys`) of the returned taps, of tap `idx` or of the taps in `idx`."""

        def pick(i: int) -> dict[str, Any]:
            return dict(self.info[i]) if keys is None else {k: self.info[i][k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [pick(i) for i in idx]
        return pick(idx)

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Returns the channel count(s) (`num_chs`)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Returns the stride(s) relative to the input (`reduction`)."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Returns the module path(s) in this package's (official) layout, e.g. 'features.2' for the stem."""
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo(channels={self.channels()}, reduction={self.reduction()})"


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


def feature_taps(arch: ArchSpec, stem_stride: int = 2, output_stride: int = 32) -> tuple[tuple[int, dict], ...]:
    """Returns (index in `features`, tap dict) of the last layer before each downsampling and of the last block.

    The same taps as timm's ReXNet (its 'stem' is features.2 here, its 'features.k' is features.{k+3}): one
    per stride of the undilated network (2, 4, 8, 16, 32 for ReXNet), so out_indices mean the same whatever
    `output_stride`; `reduction` is the map's real stride (with output_stride 16 the last two are 16).
    """
    nominal = actual = stem_stride
    candidates = [(STEM_LAYERS - 1, arch.stem_channels, nominal, actual)]
    for i, (block, (stride, _)) in enumerate(zip(arch.blocks, block_convs(arch, stem_stride, output_stride))):
        nominal, actual = nominal * block.stride, actual * stride
        candidates.append((STEM_LAYERS + i, block.out_channels, nominal, actual))
    last: dict[int, tuple[int, int, int]] = {}
    for index, channels, key, reduction in candidates:
        last[key] = (index, channels, reduction)  # later layers at the same stride overwrite earlier ones
    return tuple(
        (i, {"num_chs": c, "reduction": r, "module": f"features.{i}"}) for _, (i, c, r) in sorted(last.items())
    )


class GlobalPool(nn.Module):
    """Global pooling by timm's names: 'avg', 'max', 'avgmax' (their mean) or '' (none: the map passes through)."""

    def __init__(self, pool_type: str = "avg"):
        super().__init__()
        if pool_type not in GLOBAL_POOLS:
            raise RexnetError(
                f"global_pool={pool_type!r}; use one of {', '.join(repr(p) for p in GLOBAL_POOLS)} ('' = no pooling)"
            )
        self.pool_type = pool_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "avg":
            return F.adaptive_avg_pool2d(x, 1)
        if self.pool_type == "max":
            return F.adaptive_max_pool2d(x, 1)
        if self.pool_type == "avgmax":
            return 0.5 * (F.adaptive_avg_pool2d(x, 1) + F.adaptive_max_pool2d(x, 1))
        return x

    def extra_repr(self) -> str:
        return f"pool_type={self.pool_type!r}"


class PooledClassifier(nn.Conv2d):
    """The classifier: a 1×1 conv's weights (the official checkpoints' layout) applied to pooled (batch, C)
    features as the matmul it is. On CPU a conv's backward on a 1×1 map costs ~20× a Linear's. Being the
    module that is called (not its weight used elsewhere), hooks on it fire."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.flatten(1), self.bias)


def _classifier(in_features: int, num_classes: int) -> nn.Module:
    """Returns a freshly initialised classifier (N(0, 0.01) weights, zero bias), or Identity for num_classes 0."""
    if num_classes == 0:
        return nn.Identity()
    layer = PooledClassifier(in_features, num_classes, 1)
    nn.init.normal_(layer.weight, 0.0, 0.01)
    nn.init.zeros_(layer.bias)
    return layer


def _check_head(num_classes: int, global_pool: str) -> None:
    if not (isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes >= 0):
        raise RexnetError(f"num_classes={num_classes!r}; use a positive integer, or 0 for no classifier (features)")
    if global_pool == "" and num_classes > 0:
        raise RexnetError(
            "global_pool='' (no pooling) leaves a feature map, which a classifier cannot take; "
            "use num_classes=0 with it, or keep global_pool='avg'"
        )


def _checkpoint_seq(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Returns layers(x) with activation checkpointing per layer (recomputed in backward; timm's checkpoint_seq)."""
    return checkpoint_sequential(layers, len(layers), x, use_reentrant=False)


class ReXNet(nn.Module):
    """A ReXNet classifier built from a block table; `forward` returns logits of shape (batch, num_classes).

    `num_classes`, `in_chans` and `stem_stride` default to the table's (1000, 3, 2 for the published layouts;
    a variant JSON records its own); `self.arch` is the table of the network built, all of them included.
    `num_classes=0` leaves no classifier: forward returns the pooled features (width `head_hidden_size`).
    `stem_stride` 1 is for small inputs (see `small_input.py`); `output_stride` 8 or 16 dilates the blocks
    past that stride (dense prediction); `drop_rate` is the classifier's dropout (default the table's 0.2);
    `global_pool` is timm's ('avg', 'max', 'avgmax', or '' with num_classes=0 for the unpooled map);
    `drop_path_rate` is stochastic depth (Huang et al. 2016) following timm's ReXNet rule: block i of n drops
    its residual branch with probability rate·i/(n−1), so the last block gets the full rate, and only blocks
    with a shortcut drop anything.
    """

    __jit_unused_properties__ = ["classifier_name", "default_cfg"]

    def __init__(
        self,
        arch: ArchSpec,
        num_classes: int | None = None,
        in_chans: int | None = None,
        *,
        stem_stride: int | None = None,
        output_stride: int = 32,
        drop_path_rate: float = 0.0,
        drop_rate: float | None = None,
        global_pool: str = "avg",
    ):
        super().__init__()
        num_classes = arch.num_classes if num_classes is None else num_classes
        in_chans = arch.in_chans if in_chans is None else in_chans
        stem_stride = arch.stem_stride if stem_stride is None else stem_stride
        drop_rate = arch.dropout if drop_rate is None else drop_rate
        _check_head(num_classes, global_pool)
        if not (isinstance(in_chans, int) and in_chans > 0):
            raise RexnetError(f"in_chans={in_chans!r} is not a positive integer; pass e.g. in_chans=1")
        if stem_stride not in (1, 2):
            raise RexnetError(f"stem_stride={stem_stride!r}; use 2 (as built) or 1 (small inputs)")
        if output_stride not in OUTPUT_STRIDES:
            raise RexnetError(f"output_stride={output_stride!r}; use one of {', '.join(map(str, OUTPUT_STRIDES))}")
        if not (isinstance(drop_path_rate, (int, float)) and 0 <= drop_path_rate < 1):
            raise RexnetError(f"drop_path_rate={drop_path_rate!r}; use a number in [0, 1), e.g. 0.1")
        if not (isinstance(drop_rate, (int, float)) and 0 <= drop_rate < 1):
            raise RexnetError(f"drop_rate={drop_rate!r}; use a number in [0, 1), e.g. 0.2")
        arch = replace(
            arch, num_classes=num_classes, in_chans=in_chans, stem_stride=stem_stride, dropout=float(drop_rate)
        )
        self.arch = arch
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.stem_stride = stem_stride
        self.output_stride = output_stride
        self.drop_rate = float(drop_rate)
        self.drop_path_rate = float(drop_path_rate)
        self.num_features = arch.penultimate_channels
        self.head_hidden_size = arch.head_channels or arch.penultimate_channels
        self.grad_checkpointing = False
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
        self.features = nn.Sequential(*layers)
        self.lite_head = arch.head_channels is not None
        self.global_pool = GlobalPool(global_pool)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        if self.lite_head:
            self.output = nn.Sequential(
                nn.Conv2d(arch.penultimate_channels, arch.head_channels, 1),
                nn.BatchNorm2d(arch.head_channels),
                make_activation(arch.head_act),
                nn.Dropout(self.drop_rate),
                _classifier(arch.head_channels, num_classes),
            )
        else:
            self.output = nn.Sequential(nn.Dropout(self.drop_rate), _classifier(self.num_features, num_classes))
        self._classifier_index = len(self.output) - 1
        self._taps = feature_taps(arch, stem_stride, output_stride)
        self.feature_info = [dict(info) for _, info in self._taps]
        self.stage_ends = [index for index, _ in self._taps]
        self.pretrained_cfg = cfg_dict(PretrainedCfg(), arch)
        self.init_weights()

    @property
    def default_cfg(self) -> dict[str, Any]:
        """Returns `pretrained_cfg` (timm's older name for it)."""
        return self.pretrained_cfg

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
        if isinstance(classifier, PooledClassifier):
            nn.init.normal_(classifier.weight, 0.0, 0.01)
            nn.init.zeros_(classifier.bias)

    @property
    def classifier_name(self) -> str:
        """Returns the state_dict prefix of the last (num_classes-sized) layer, e.g. 'output.1'."""
        return f"output.{self._classifier_index}"

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """Returns the last layer (a PooledClassifier, or Identity with num_classes 0)."""
        return self.output[self._classifier_index]

    @torch.jit.ignore
    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replaces the last layer with a fresh one for `num_classes` classes (0: none, forward returns pooled
        features of width head_hidden_size); `global_pool` also changes the pooling ('' = none, with 0 classes)."""
        pool = self.global_pool.pool_type if global_pool is None else global_pool
        _check_head(num_classes, pool)
        if global_pool is not None:
            self.global_pool = GlobalPool(global_pool)
            self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        reference = next(self.parameters())
        new = _classifier(self.head_hidden_size, num_classes).to(reference.device, reference.dtype)
        self.output[self._classifier_index] = new
        self.num_classes = num_classes
        self.arch = replace(self.arch, num_classes=num_classes)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Turns activation checkpointing of every layer of `features` on or off (less memory, one more forward)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Returns timm's parameter-group regexes (layer-wise LR decay): the stem, then one group per layer."""
        return {"stem": r"^features\.[0-2]\.", "blocks": r"^features\.(\d+)"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the unpooled penultimate feature map, (batch, num_features, H/s, W/s) at total stride s (32)."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return _checkpoint_seq(self.features, x)
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Returns logits (or, with pre_logits, the pooled vector fed to the last layer) from forward_features."""
        x = self.global_pool(x)
        last = self._classifier_index
        # Loops rather than Sequential slices: a slice is a new, unnamed module on every call, which would
        # hide the layers' names from hooks, FlopCounterMode and torch.fx.
        for i, layer in enumerate(self.output):
            if i < last:
                x = layer(x)
        x = self.flatten(x)
        if pre_logits:
            return x
        for j, classifier in enumerate(self.output):
            if j == last:
                x = classifier(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns (final features, [tap maps]) or, with intermediates_only, the tap maps, as timm's method does.

        `indices` picks taps of `feature_info` (None all, n the last n, or a list); `stop_early` stops after the
        last tap wanted (the first value is then that layer's output); `norm` does nothing (ReXNet has no final
        norm layer); only `output_fmt='NCHW'` exists for a CNN.
        """
        if output_fmt != "NCHW":
            raise RexnetError(f"output_fmt={output_fmt!r}; a ReXNet's maps are 'NCHW'")
        take, max_index = feature_take_indices(len(self.stage_ends), indices)
        wanted = [self.stage_ends[i] for i in take]
        stop = self.stage_ends[max_index] if (stop_early or intermediates_only) else len(self.features) - 1
        intermediates = []
        for index, layer in enumerate(self.features):
            if index > stop:
                break
            x = checkpoint(layer, x, use_reentrant=False) if self.grad_checkpointing else layer(x)
            if index in wanted:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Returns the tap indices kept after dropping every layer past the last of them (as timm's method).

        Past the last tap only the penultimate conv and the head follow, so with prune_head (or when a tap
        before the last is the end) they go: the model then ends at that tap and forward returns its map.
        """
        take, max_index = feature_take_indices(len(self.stage_ends), indices)
        end = self.stage_ends[max_index]
        if not (prune_norm or prune_head or max_index < len(self.stage_ends) - 1):
            return take
        self.features = self.features[: end + 1]
        self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        self.global_pool = GlobalPool("")
        self.flatten = nn.Identity()
        self.output = nn.Sequential(nn.Identity())
        self._classifier_index = 0
        self.num_classes = 0
        return take

    @torch.jit.ignore
    def feature_maps(self, x: torch.Tensor, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Returns the feature maps at strides 2, 4, 8, 16, 32 (or those picked by `indices` into feature_info)."""
        return self.forward_intermediates(x, indices, intermediates_only=True)


class ReXNetV1(ReXNet):
    """ReXNet-V1 exactly as released (module names, order, shapes); `forward` returns (batch, num_classes) logits.

    `ch_div` 8 or 16 rounds every width to that multiple (timm's `rexnetr_*`); `dropout` is `drop_rate`'s older
    name. kwargs (drop_rate, global_pool, stem_stride, output_stride, drop_path_rate) go to `ReXNet`.
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
        ch_div: int = 1,
        **kwargs,
    ):
        arch = rexnet_v1_arch(width_mult, depth_mult, se=se, act=act, ch_div=ch_div)
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


FEATURE_CLASSES = (None, "getter")  # timm's feature_cls values this package implements (both: the same module)


class ReXNetFeatures(nn.Module):
    """A backbone for detection: `forward` returns a list of feature maps, one per entry of `out_indices`.

    It shares the layers of the model it is made from, truncated after the last tap, under the same
    `features.N` names, so a classifier checkpoint's state_dict loads into it minus the head. `feature_info`
    has timm's FeatureInfo API (`.channels()`, `.reduction()`, `.module_name()`); `out_indices` may count
    from the end (-1 = the last tap), as in timm.
    """

    def __init__(
        self, model: ReXNet, out_indices: int | Sequence[int] = (0, 1, 2, 3, 4), feature_cls: str | None = None
    ):
        super().__init__()
        if feature_cls not in FEATURE_CLASSES:
            raise RexnetError(
                f"feature_cls={feature_cls!r}; this package implements 'getter' (its forward_intermediates) "
                "and the default; for hooks or fx use torchvision's create_feature_extractor on the model"
            )
        take, _ = feature_take_indices(len(model.stage_ends), out_indices)
        self.feature_info = FeatureInfo(model.feature_info, take)
        self._tap_indices = [model.stage_ends[i] for i in take]
        self.features = model.features[: self._tap_indices[-1] + 1]
        self.pretrained_cfg = model.pretrained_cfg
        self.arch = model.arch

    @property
    def default_cfg(self) -> dict[str, Any]:
        """Returns `pretrained_cfg` (timm's older name for it)."""
        return self.pretrained_cfg

    @property
    def channels(self) -> list[int]:
        """Returns the channel count of each returned map."""
        return self.feature_info.channels()

    @property
    def reductions(self) -> list[int]:
        """Returns the stride of each returned map relative to the input."""
        return self.feature_info.reduction()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._tap_indices:
                maps.append(x)
        return maps
