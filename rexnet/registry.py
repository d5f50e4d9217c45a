"""Model names users can type (`rexnet_100`, `rexnet_lite_130`, `mobilenetv2_070`, …): the one resolver behind
`create_model`, `rexnet models`, `rexnet train --model` and torch.hub.

A name is `<family>_<width×100>`: `rexnet` (ReXNet-V1), `rexnet_lite` and `mobilenetv2` (the baseline, built by
the same builder) at any width; `list_models()` lists the widths published or used here. A path ending in
`.json` (or an ArchSpec) is a block table.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .arch import ArchSpec, load_arch, rexnet_lite_arch, rexnet_v1_arch
from .baseline import mobilenetv2_arch
from .errors import RexnetError
from .model import ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite
from .pretrained import PretrainedCfg, lite_cfg, v1_cfg

# family → (width → block table, width → pretrained cfg, table options a name accepts)
_FAMILIES: dict[str, tuple[Callable[..., ArchSpec], Callable[[float], PretrainedCfg], tuple[str, ...]]] = {
    "rexnet": (rexnet_v1_arch, v1_cfg, ("depth_mult", "se", "act")),
    "rexnet_lite": (rexnet_lite_arch, lite_cfg, ("kernel_sizes", "fix_head_stem")),
    "mobilenetv2": (mobilenetv2_arch, lambda w: PretrainedCfg(), ()),
}
# The widths listed: the official release's (V1 0.9–3.0, lite 1.0–2.0), 0.5× (the Fashion-MNIST study's) and
# MobileNetV2 1.0×.
_LISTED = (
    [("rexnet", w) for w in (0.5, 0.9, 1.0, 1.3, 1.5, 2.0, 3.0)]
    + [("rexnet_lite", w) for w in (1.0, 1.3, 1.5, 2.0)]
    + [("mobilenetv2", 1.0)]
)
_NAME = re.compile(r"(rexnet_lite|rexnet|mobilenetv2)_(\d{3})")
_MAX_WIDTH_X100 = 400  # wider than the widest published model (3.0×) by a margin; rexnet_999 is a typo
# Options of ReXNet itself (the rest go to the block table).
_MODEL_OPTIONS = ("stem_stride", "output_stride", "drop_path_rate")


def _name(family: str, width: float) -> str:
    return f"{family}_{round(width * 100):03d}"


def list_models() -> list[str]:
    """Returns the listed model names: V1, lite, then the baseline, by width (other widths are accepted too)."""
    return [_name(f, w) for f, w in _LISTED]


def parse_name(name: str) -> tuple[str, float]:
    """Returns (family, width) of a model name such as 'rexnet_130', or raises a RexnetError with a suggestion."""
    match = _NAME.fullmatch(name)
    if match is None or not 0 < int(match.group(2)) <= _MAX_WIDTH_X100:
        close = difflib.get_close_matches(name, list_models(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise RexnetError(f"unknown model {name!r}; {hint}use one of {', '.join(list_models())} (or another width "
                          "×100 up to 4.0, e.g. rexnet_070), or a block-table .json")
    return match.group(1), int(match.group(2)) / 100


def _is_table(name) -> bool:
    return isinstance(name, os.PathLike) or str(name).endswith(".json")


def model_arch(name: str | ArchSpec | os.PathLike, *, dropout: float | None = None, **options) -> ArchSpec:
    """Returns the block table of a model name, of a block-table JSON file, or the ArchSpec itself.

    `options` are the family's table options (V1: depth_mult, se, act; lite: kernel_sizes, fix_head_stem).
    """
    if isinstance(name, ArchSpec) or _is_table(name):
        if options:
            raise RexnetError(f"options {sorted(options)} apply to model names only; put them in the block table")
        arch = name if isinstance(name, ArchSpec) else load_arch(Path(name))
    else:
        family, width = parse_name(name)
        arch_fn, _, allowed = _FAMILIES[family]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise RexnetError(f"{name} takes no option(s) {unknown}; its options are {list(allowed) or 'none'} and "
                              f"{['dropout', *_MODEL_OPTIONS]}")
        arch = arch_fn(width, **options)
    return arch if dropout is None else replace(arch, dropout=dropout)


def pretrained_cfg(name: str | ArchSpec | os.PathLike) -> PretrainedCfg:
    """Returns the preprocessing and published weights of a model name (defaults for block tables)."""
    if isinstance(name, ArchSpec) or _is_table(name):
        return PretrainedCfg()
    family, width = parse_name(name)
    return _FAMILIES[family][1](width)


def create_model(
    name: str | ArchSpec | os.PathLike,
    num_classes: int = 1000,
    checkpoint=None,
    *,
    features_only: bool = False,
    out_indices: Sequence[int] = (0, 1, 2, 3, 4),
    skip_head: bool = False,
    in_chans: int = 3,
    **kwargs,
) -> ReXNet | ReXNetFeatures:
    """Returns a model by name (or block table), optionally loaded from a checkpoint, optionally as a backbone.

    `checkpoint` is a path or a state_dict in the official, timm or this package's layout; a path that is one of
    the model's published files (`pretrained_cfg(name).files`) is checked against its SHA-256 where known.
    `skip_head` loads everything but the classifier (for another num_classes); a checkpoint with 3 input
    channels loads into `in_chans` ≠ 3 by adapting the stem conv. With `features_only` the result's forward
    returns the feature maps at strides 2–32 (`.feature_info` lists their channels and strides).
    kwargs: dropout, stem_stride, output_stride (8/16/32), drop_path_rate, and the family's table options.
    """
    from .checkpoint import load_checkpoint
    from .pretrained import verify_file

    model_kwargs = {k: kwargs.pop(k) for k in _MODEL_OPTIONS if k in kwargs}
    arch = model_arch(name, **kwargs)  # validates the name and the options
    family = None if isinstance(name, ArchSpec) or _is_table(name) else parse_name(name)[0]
    if family in ("rexnet", "rexnet_lite"):  # the classes users know from the official release
        cls = ReXNetV1 if family == "rexnet" else ReXNetV1Lite
        model = cls(parse_name(name)[1], num_classes=num_classes, in_chans=in_chans, **kwargs, **model_kwargs)
    else:
        model = ReXNet(arch, num_classes=num_classes, in_chans=in_chans, **model_kwargs)
    if checkpoint is not None:
        if isinstance(checkpoint, (str, os.PathLike)):
            verify_file(checkpoint, pretrained_cfg(name))
        load_checkpoint(model, checkpoint, skip_head=skip_head)
    return ReXNetFeatures(model, out_indices) if features_only else model
