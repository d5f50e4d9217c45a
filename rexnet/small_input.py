"""Small-input modes for 28–32 px data (Fashion-MNIST, CIFAR): fewer downsamplings, for any block table.

ReXNet, like MobileNetV2, is laid out for 224×224 ImageNet images (the paper's ReXNet-V1: five stride-2 layers,
total stride 32), which leaves a 32×32 image as a single pixel after the last stage. The modes remove downsampling:
"s16" makes the first stride-2 block stride 1 (total stride 16: 32×32 ends as 2×2); "s8" also sets the stem
conv's stride to 1 (total stride 8, 4×4), as CIFAR variants of MobileNetV2 do, at about four times s16's cost
on CPU. Whichever is chosen is applied identically to every model compared. The stem stride is a constructor
argument of `ReXNet` (`stem_stride`), so the model's `feature_info` strides are those of the network built.
"""

from __future__ import annotations

from dataclasses import replace

from .arch import ArchSpec
from .errors import RexnetError

# mode → (remove the first downsampling block's stride, stem stride)
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
