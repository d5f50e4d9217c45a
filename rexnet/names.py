"""Model names users can type (`rexnet_100`, `rexnet_lite_130`, `mobilenetv2_070`, …) and what they stand for:
the block table and the pretrained preprocessing. The one name resolver behind `create_model`, `rexnet models`,
`rexnet train --model`, torch.hub and the checkpoint reader's "saved from" hints.

A name is `<family>_<width×100>`: `rexnet` (ReXNet-V1), `rexnetr` (timm's ReXNet with widths rounded to
multiples of 8, 16 at 3.0×), `rexnet_lite` and `mobilenetv2` (the baseline, built by the same builder) at any
width, optionally with timm's weight tag (`rexnet_100.nav_in1k`, `rexnetr_200.sw_in12k`); `list_models()`
lists the widths published or used here. A path ending in `.json` (or an ArchSpec) is a block table.
Building models from names is `rexnet.registry`'s.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .arch import ArchSpec, load_arch, rexnet_lite_arch, rexnet_v1_arch
from .baseline import mobilenetv2_arch
from .errors import RexnetError
from .pretrained import PretrainedCfg, lite_cfg, plain_cfg, rexnetr_cfg, v1_cfg


def rexnetr_arch(width_mult: float = 1.0, **options) -> ArchSpec:
    """Returns timm's rexnetr_* table: ReXNet-V1 with widths rounded to multiples of 8 (16 at 3.0×, as timm)."""
    return rexnet_v1_arch(width_mult, ch_div=16 if width_mult >= 3.0 else 8, **options)


# family → (width → block table, width → pretrained cfg, table options a name accepts)
_FAMILIES: dict[str, tuple[Callable[..., ArchSpec], Callable[..., PretrainedCfg], tuple[str, ...]]] = {
    "rexnet": (rexnet_v1_arch, v1_cfg, ("depth_mult", "se", "act")),
    "rexnetr": (rexnetr_arch, rexnetr_cfg, ("depth_mult", "se", "act")),
    "rexnet_lite": (rexnet_lite_arch, lite_cfg, ("kernel_sizes", "fix_head_stem")),
    "mobilenetv2": (mobilenetv2_arch, plain_cfg, ()),
}
# The widths listed: the official release's (V1 0.9–3.0, lite 1.0–2.0), 0.5× (the Fashion-MNIST study's) and
# MobileNetV2 1.0×.
_LISTED = (
    [("rexnet", w) for w in (0.5, 0.9, 1.0, 1.3, 1.5, 2.0, 3.0)]
    + [("rexnetr", w) for w in (1.0, 1.3, 1.5, 2.0, 3.0)]
    + [("rexnet_lite", w) for w in (1.0, 1.3, 1.5, 2.0)]
    + [("mobilenetv2", 1.0)]
)
_NAME = re.compile(r"(rexnet_lite|rexnetr|rexnet|mobilenetv2)_(\d{3})(?:\.(\w+))?")
_MAX_WIDTH_X100 = 400  # wider than the widest published model (3.0×) by a margin; rexnet_999 is a typo
# Options of ReXNet itself (the rest go to the block table).
MODEL_OPTIONS = ("stem_stride", "output_stride", "drop_path_rate", "drop_rate", "global_pool")


def _name(family: str, width: float) -> str:
    return f"{family}_{round(width * 100):03d}"


def list_models() -> list[str]:
    """Returns the listed model names: V1, lite, then the baseline, by width (other widths are accepted too)."""
    return [_name(f, w) for f, w in _LISTED]


def split_tag(name: str) -> tuple[str, str | None]:
    """Returns (name without tag, tag or None): 'rexnet_100.nav_in1k' → ('rexnet_100', 'nav_in1k')."""
    base, dot, tag = str(name).partition(".")
    return (base, tag) if dot and _NAME.fullmatch(str(name)) else (str(name), None)


def parse_name(name: str) -> tuple[str, float]:
    """Returns (family, width) of a model name such as 'rexnet_130' (or 'rexnet_130.nav_in1k'), or raises a
    RexnetError with a suggestion."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None or not 0 < int(match.group(2)) <= _MAX_WIDTH_X100:
        # Only a near miss (a swapped or missing letter) gets a suggestion, not any name of the right shape.
        close = difflib.get_close_matches(name, list_models(), n=1, cutoff=0.85)
        hint = f"did you mean {close[0]}? " if close else ""
        raise RexnetError(
            f"unknown model {name!r}; {hint}use one of {', '.join(list_models())} (or another width "
            "×100 up to 4.0, e.g. rexnet_070), or a block-table .json"
        )
    return match.group(1), int(match.group(2)) / 100


def is_block_table(name) -> bool:
    """Returns whether a model argument names a block-table file (a path, or a string ending in .json)."""
    return isinstance(name, os.PathLike) or str(name).endswith(".json")


def model_arch(name: str | ArchSpec | os.PathLike, *, dropout: float | None = None, **options) -> ArchSpec:
    """Returns the block table of a model name, of a block-table JSON file, or the ArchSpec itself.

    `options` are the family's table options (V1: depth_mult, se, act; lite: kernel_sizes, fix_head_stem).
    """
    if isinstance(name, ArchSpec) or is_block_table(name):
        if options:
            raise RexnetError(f"options {sorted(options)} apply to model names only; put them in the block table")
        arch = name if isinstance(name, ArchSpec) else load_arch(Path(name))
    else:
        family, width = parse_name(name)
        pretrained_cfg(name)  # validates a tag
        arch_fn, _, allowed = _FAMILIES[family]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise RexnetError(
                f"{name} takes no option(s) {unknown}; its options are {list(allowed) or 'none'} and "
                f"{['dropout', *MODEL_OPTIONS]}"
            )
        arch = arch_fn(width, **options)
    return arch if dropout is None else replace(arch, dropout=dropout)


def pretrained_cfg(name: str | ArchSpec | os.PathLike) -> PretrainedCfg:
    """Returns the preprocessing and published weights of a model name (defaults for block tables)."""
    if isinstance(name, ArchSpec) or is_block_table(name):
        return PretrainedCfg()
    family, width = parse_name(name)
    return _FAMILIES[family][1](width, split_tag(name)[1])
