"""Model names users can type (`rexnet_100`, `rexnet_lite_130`, …) and `create_model`, the one way to build them."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .arch import ArchSpec, load_arch, rexnet_lite_arch, rexnet_v1_arch
from .errors import RexnetError
from .model import ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite

# name → (model class, width): the widths the official release trained.
_V1_WIDTHS = (0.9, 1.0, 1.3, 1.5, 2.0, 3.0)
_LITE_WIDTHS = (1.0, 1.3, 1.5, 2.0)
_MODELS: dict[str, tuple[Callable[..., ReXNet], Callable[[float], ArchSpec], float]] = {
    **{f"rexnet_{round(w * 100):03d}": (ReXNetV1, rexnet_v1_arch, w) for w in _V1_WIDTHS},
    **{f"rexnet_lite_{round(w * 100):03d}": (ReXNetV1Lite, rexnet_lite_arch, w) for w in _LITE_WIDTHS},
}


def list_models() -> list[str]:
    """Returns the registered model names, V1 then lite, by width."""
    return list(_MODELS)


def _check_name(name: str) -> None:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise RexnetError(f"unknown model {name!r}; {hint}choose one of {', '.join(_MODELS)} or a block-table .json")


def model_arch(name: str | ArchSpec | os.PathLike) -> ArchSpec:
    """Returns the block table of a registered name, of a block-table JSON file, or the ArchSpec itself."""
    if isinstance(name, ArchSpec):
        return name
    if isinstance(name, os.PathLike) or str(name).endswith(".json"):
        return load_arch(Path(name))
    _check_name(name)
    _, arch_fn, width = _MODELS[name]
    return arch_fn(width)


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

    `checkpoint` is a path or a state_dict in the official, timm or this package's layout; `skip_head`
    loads everything but the classifier (for another num_classes). With `features_only` the result's
    forward returns the feature maps at strides 2–32 (`.feature_info` lists their channels).
    kwargs go to ReXNetV1 / ReXNetV1Lite (e.g. dropout) for registered names.
    """
    from .checkpoint import load_checkpoint

    if isinstance(name, str) and name in _MODELS:
        cls, _, width = _MODELS[name]
        try:
            model = cls(width, num_classes=num_classes, in_chans=in_chans, **kwargs)
        except TypeError as exc:
            raise RexnetError(f"{name}: {exc}; see help({cls.__name__})") from None
    else:
        if kwargs:
            raise RexnetError(f"options {sorted(kwargs)} apply to registered names only; put them in the block table")
        model = ReXNet(model_arch(name), num_classes=num_classes, in_chans=in_chans)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, skip_head=skip_head)
    return ReXNetFeatures(model, out_indices) if features_only else model
