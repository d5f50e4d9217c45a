"""The MobileNetV2 baseline as a block table (built by the same `ReXNet` builder).

Matching MACs across models is `rexnet.variants.match_macs`.

MobileNetV2 (Sandler et al. 2018) as data: stage-wise channels (t, c, n, s) rows, ReLU6 after the stem, the
expansions and the depthwise convs, no SE, a 1280-wide penultimate conv and dropout 0.2 → classifier, exactly
ReXNet-V1's head. So the two networks differ where the paper says: the channel schedule (stages vs linear),
SiLU vs ReLU6 after expansions, SE, and the penultimate width (1280·w vs max(1280, 1280·w)).

Two differences the builder imposes (it cannot express them otherwise; arch.py/model.py left as they are):
- Shortcuts: `BlockSpec.shortcut` adds a *partial* residual in every stride-1 block with in ≤ out, so the
  MobileNetV2 blocks 64→96 and 160→320 (and, with a small-input mode, 16→24) get one where
  MobileNetV2 has none. It adds no parameters and no MACs.
- Stem stride: `ArchSpec` has no field for it; small-input mode "s8" (`small_input.py`) builds the model with
  `stem_stride=1`, and the run's metadata records it so evaluation rebuilds the same network.
"""

from __future__ import annotations

from .arch import ArchSpec, BlockSpec, make_divisible

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
