"""Small-input modes for 28–32 px data (Fashion-MNIST, CIFAR): fewer downsamplings, for any block table.

ReXNet, like MobileNetV2, is laid out for 224×224 ImageNet images (the paper's ReXNet-V1: five stride-2 layers,
total stride 32), which leaves a 32×32 image as a single pixel after the last stage. The modes remove downsampling:
"s16" makes the first stride-2 block stride 1 (total stride 16: 32×32 ends as 2×2); "s8" also sets the stem
conv's stride to 1 (total stride 8, 4×4), as CIFAR variants of MobileNetV2 do, at about four times s16's cost
on CPU. Whichever is chosen is applied identically to every model compared.

The table returned records the mode (`ArchSpec.small_input`) and its stem stride (`ArchSpec.stem_stride`), so
a table saved in a mode (a variant JSON, a checkpoint's "arch") builds the small-input network by itself:
`ReXNet(table)` takes the stem stride from it, and its `feature_info` strides are those of the network built.
"""

from __future__ import annotations

from dataclasses import replace

from .arch import ArchSpec
from .errors import RexnetError

# mode → (remove the first downsampling block's stride, stem stride); the keys are arch.SMALL_INPUTS, the names
# a table's `small_input` may hold (arch.py cannot import this module, which imports it).
SMALL_INPUT_MODES: dict[str, tuple[bool, int]] = {"off": (False, 2), "s16": (True, 2), "s8": (True, 1)}


def small_input_variant(arch: ArchSpec, mode: str = "off") -> tuple[ArchSpec, int]:
    """Returns (table, stem stride) of `arch` in a small-input mode: off, s16 or s8 (see SMALL_INPUT_MODES).

    The table has `small_input` and `stem_stride` set. "off" changes nothing (a table already in a mode stays
    in it); a table already in `mode` is returned as it is, so applying a mode twice is applying it once; a table
    in another mode is refused (the modes do not stack: s16 then s8 would remove two downsamplings).
    """
    if mode not in SMALL_INPUT_MODES:
        raise RexnetError(f"unknown small-input mode {mode!r}; use one of {', '.join(SMALL_INPUT_MODES)}")
    if mode == "off" or arch.small_input == mode:
        return arch, arch.stem_stride
    if arch.small_input != "off":
        raise RexnetError(
            f"{arch.name} is already in small-input mode {arch.small_input}, so {mode} would stack on it; use it "
            f"as it is (small-input {arch.small_input} or off), or start from the table without a mode"
        )
    drop, mode_stride = SMALL_INPUT_MODES[mode]
    stem_stride = min(arch.stem_stride, mode_stride)  # s16 keeps the table's stem, s8 makes it stride 1
    small = small_input_arch(arch) if drop else arch
    return replace(small, small_input=mode, stem_stride=stem_stride), stem_stride


def small_input_arch(arch: ArchSpec) -> ArchSpec:
    """Returns the table with the first stride-2 block made stride 1 (one fewer downsampling), name + "_small".

    Only the blocks change: alone it is the block change of mode "s16" (total stride 32 → 16), with a stride-1
    stem as well that of "s8"; `small_input_variant` also records the mode and the stem stride in the table.
    """
    blocks = list(arch.blocks)
    first = next((i for i, b in enumerate(blocks) if b.stride == 2), None)
    if first is None:
        raise RexnetError(f"{arch.name} has no stride-2 block to remove; use it without --small-input")
    blocks[first] = replace(blocks[first], stride=1)
    suffix = "" if arch.name.endswith("_small") else "_small"
    return replace(arch, name=arch.name + suffix, blocks=tuple(blocks))
