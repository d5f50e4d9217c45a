"""The MobileNetV2 baseline as a block table (built by the same `ReXNet` builder), small-input modes, MAC counts.

Matching MACs across models is `rexnet.variants.match_macs`.

MobileNetV2 (Sandler et al. 2018) as data: stage-wise channels (t, c, n, s) rows, ReLU6 after the stem, the
expansions and the depthwise convs, no SE, a 1280-wide penultimate conv and dropout 0.2 → classifier, exactly
ReXNet-V1's head. So the two networks differ where the paper says: the channel schedule (stages vs linear),
SiLU vs ReLU6 after expansions, SE, and the penultimate width (1280·w vs max(1280, 1280·w)).

Two differences the builder imposes (it cannot express them otherwise; arch.py/model.py left as they are):
- Shortcuts: `BlockSpec.shortcut` adds a *partial* residual in every stride-1 block with in ≤ out, so the
  MobileNetV2 blocks 64→96 and 160→320 (and, with a small-input mode, 16→24) get one where
  MobileNetV2 has none. It adds no parameters and no MACs.
- Stem stride: `ArchSpec` has no field for it and the builder's stem is always stride 2; small-input mode
  "s8" sets it to 1 on the built model (`apply_stem_stride`), and the run's metadata records it so evaluation
  rebuilds the same network.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from .arch import ArchSpec, BlockSpec, make_divisible
from .errors import RexnetError
from .model import ReXNet

# MobileNetV2's table: expansion t, output channels c, blocks n, first stride s.
MOBILENETV2_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2_arch(width_mult: float = 1.0, *, divisor: int = 8, name: str | None = None) -> ArchSpec:
    """Returns MobileNetV2's table at a width: channels ×width rounded to multiples of 8, ReLU6, no SE."""
    stem = make_divisible(32 * width_mult, divisor)
    blocks, prev = [], stem
    for t, c, n, s in MOBILENETV2_ROWS:
        out = make_divisible(c * width_mult, divisor)
        for i in range(n):
            blocks.append(BlockSpec(prev, out, t, s if i == 0 else 1, False, act="relu6", dw_act="relu6"))
            prev = out
    return ArchSpec(
        name=name or f"mobilenetv2_{round(width_mult * 100):03d}",
        stem_channels=stem,
        blocks=tuple(blocks),
        penultimate_channels=make_divisible(1280 * max(1.0, width_mult), divisor),
        stem_act="relu6",
        penultimate_act="relu6",
    )


# Small-input modes for 28–32 px data: (remove the first downsampling block's stride, stem stride).
# "s8" is stem stride 1 plus one fewer downsampling (total stride 32 → 8: a 32×32 image ends as 4×4), as CIFAR
# variants of MobileNetV2 do; "s16" only removes the downsampling (total stride 16, 2×2), at about a quarter
# of s8's cost on CPU. Whichever is chosen is applied identically to every model compared.
SMALL_INPUT_MODES: dict[str, tuple[bool, int]] = {"off": (False, 2), "s16": (True, 2), "s8": (True, 1)}


def small_input_variant(arch: ArchSpec, mode: str = "off") -> tuple[ArchSpec, int]:
    """Returns (table, stem stride) of `arch` under a small-input mode: off, s16 or s8 (see SMALL_INPUT_MODES)."""
    if mode not in SMALL_INPUT_MODES:
        raise RexnetError(f"unknown small-input mode {mode!r}; use one of {', '.join(SMALL_INPUT_MODES)}")
    drop, stem_stride = SMALL_INPUT_MODES[mode]
    return (small_input_arch(arch) if drop else arch), stem_stride


def small_input_arch(arch: ArchSpec) -> ArchSpec:
    """Returns the table for 28–32 px inputs: the first stride-2 block made stride 1 (one fewer downsampling).

    Alone it halves the total stride (32 → 16, mode "s16"); with a stride-1 stem as well it is mode "s8".
    """
    blocks = list(arch.blocks)
    first = next((i for i, b in enumerate(blocks) if b.stride == 2), None)
    if first is None:
        raise RexnetError(f"{arch.name} has no stride-2 block to remove; use it without --small-input")
    blocks[first] = replace(blocks[first], stride=1)
    suffix = "" if arch.name.endswith("_small") else "_small"
    return replace(arch, name=arch.name + suffix, blocks=tuple(blocks))


def apply_stem_stride(model: ReXNet, stride: int) -> ReXNet:
    """Returns `model` with its stem conv's stride set (1 for small inputs); weights are unchanged."""
    model.features[0].stride = (stride, stride)
    return model


def build_classifier(arch: ArchSpec, num_classes: int, in_chans: int = 3, *, stem_stride: int = 2) -> ReXNet:
    """Returns ReXNet(arch) for `num_classes`, with the given stem stride (2 as built, 1 for small inputs)."""
    return apply_stem_stride(ReXNet(arch, num_classes=num_classes, in_chans=in_chans), stem_stride)


def model_costs(arch: ArchSpec, img_size: int, *, num_classes: int = 10, in_chans: int = 3,
                stem_stride: int = 2) -> tuple[int, int]:
    """Returns (parameters, MACs) of one image through the model, counted on the meta device."""
    from .summary import count_flops, count_params

    with torch.device("meta"):
        model = build_classifier(arch, num_classes, in_chans, stem_stride=stem_stride).eval()
        flops, _ = count_flops(model, torch.empty(1, in_chans, img_size, img_size))
    return count_params(model), flops // 2

