"""Models by name: `create_model` (name or block table → model, optionally loaded from a checkpoint),
`model_from_checkpoint` (a checkpoint → the network it holds: the one reader behind `rexnet eval` and the rank
study's probe) and `resolve_arch` (a `--model` value → block table with the small-input change).

Names are resolved by `rexnet.names` (re-exported here: `list_models`, `parse_name`, `model_arch`,
`pretrained_cfg`); the checkpoint layouts are `rexnet.checkpoint`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .arch import ArchSpec, arch_from_dict, arch_to_dict
from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint
from .errors import RexnetError
from .model import ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite
from .names import MODEL_OPTIONS, is_block_table, list_models, model_arch, parse_name, pretrained_cfg, split_tag
from .pretrained import cfg_dict, find_weights, verify_file
from .small_input import small_input_variant

__all__ = [
    "create_model",
    "list_models",
    "model_arch",
    "model_from_checkpoint",
    "parse_name",
    "pretrained_cfg",
    "resolve_arch",
]


def resolve_arch(
    name: str | ArchSpec | os.PathLike, small_input: str = "off", dropout: float | None = None
) -> ArchSpec:
    """Returns the block table a `--model`/`--arch` value names, with the small-input change and dropout applied."""
    arch, _ = small_input_variant(model_arch(name, dropout=dropout), small_input)
    return arch


def create_model(
    name: str | ArchSpec | os.PathLike,
    pretrained: bool = False,
    num_classes: int | None = None,
    checkpoint=None,
    *,
    features_only: bool = False,
    out_indices: int | Sequence[int] = (0, 1, 2, 3, 4),
    feature_cls: str | None = None,
    skip_head: bool = False,
    in_chans: int | None = None,
    **kwargs,
) -> ReXNet | ReXNetFeatures:
    """Returns a model by name (or block table), optionally loaded from a checkpoint, optionally as a backbone.

    timm's signature: `create_model("rexnet_100", pretrained=False, num_classes=…)`; a name may carry timm's
    weight tag (`rexnet_100.nav_in1k`). `pretrained=True` loads the name's published weights from a local copy
    (`rexnet.pretrained.find_weights`: $REXNET_WEIGHTS, torch.hub's checkpoint folder, the Hugging Face cache;
    nothing is downloaded) or from `checkpoint`. `checkpoint` is a path or a state_dict in the official, timm or
    this package's layout; a path that is one of the model's published files is checked against its SHA-256
    where known. `num_classes` defaults to the weights' (1000) or the block table's; `num_classes=0` leaves no
    classifier (forward returns pooled features); a checkpoint with another class count then loads all but
    its classifier, as with `skip_head`. A checkpoint with 3 input channels loads into `in_chans` ≠ 3 by
    adapting the stem conv. With `features_only` the result's forward returns the feature maps at strides
    2–32 (`out_indices`, negative from the end; `.feature_info` is timm's FeatureInfo).
    kwargs: drop_rate (or dropout), global_pool ('avg', 'max', 'avgmax', ''), stem_stride, output_stride
    (8/16/32), drop_path_rate, and the family's table options.
    """
    if not isinstance(pretrained, bool):
        raise RexnetError(f"pretrained={pretrained!r}; use True or False")
    model_kwargs = {k: kwargs.pop(k) for k in MODEL_OPTIONS if k in kwargs}
    if "dropout" in kwargs and "drop_rate" not in model_kwargs:  # this package's older name for timm's drop_rate
        model_kwargs["drop_rate"] = kwargs.pop("dropout")
    kwargs.pop("dropout", None)
    arch = model_arch(name, **kwargs)  # validates the name, its tag and the options
    cfg = pretrained_cfg(name)
    named = not (isinstance(name, ArchSpec) or is_block_table(name))
    if num_classes is None:
        num_classes = cfg.num_classes if named else arch.num_classes
    family = parse_name(name)[0] if named else None
    if family in ("rexnet", "rexnetr", "rexnet_lite"):  # the classes users know from the official release
        _, width = parse_name(name)
        if family == "rexnet_lite":
            model = ReXNetV1Lite(width, num_classes=num_classes, in_chans=in_chans or 3, **kwargs, **model_kwargs)
        else:
            ch_div = 1 if family == "rexnet" else (16 if width >= 3.0 else 8)
            model = ReXNetV1(
                width, num_classes=num_classes, in_chans=in_chans or 3, ch_div=ch_div, **kwargs, **model_kwargs
            )
    else:
        model = ReXNet(arch, num_classes=num_classes, in_chans=in_chans, **model_kwargs)
    model.pretrained_cfg = cfg_dict(cfg, model.arch)
    if checkpoint is None and pretrained:
        checkpoint = find_weights(split_tag(str(name))[0] if named else str(name), cfg)
    if checkpoint is not None:
        if isinstance(checkpoint, (str, os.PathLike)):
            verify_file(checkpoint, cfg)
        ckpt = read_checkpoint(checkpoint)
        head_differs = pretrained and ckpt.classifier_classes not in (None, model.num_classes)
        load_checkpoint(model, ckpt, skip_head=skip_head or model.num_classes == 0 or head_differs)
    return ReXNetFeatures(model, out_indices, feature_cls) if features_only else model


def _trained_here(ckpt: Checkpoint) -> bool:
    """Returns whether a checkpoint was written by `rexnet train` (it records the network's input channels)."""
    return ckpt.layout == "rexnet" and ckpt.arch is not None and "in_chans" in ckpt.metadata


def model_from_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any] | Checkpoint,
    model_name: str | ArchSpec | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int = 3,
) -> tuple[ReXNet, dict[str, Any]]:
    """Returns (model with the checkpoint's weights, in eval mode, on the CPU; info) for a checkpoint (a file, a
    state_dict or a `Checkpoint` read already).

    A checkpoint written by `rexnet train` rebuilds the network it trained: block table, stem stride (small-input
    mode), input channels and classes, all read from the file; `model_name`, when given, must name that same
    network (with the run's small-input mode and dropout) and `num_classes`, when given, its class count, else
    RexnetError. Any other checkpoint (official or timm layout, or saved with `save_checkpoint`) needs
    `model_name`: that model is built with `num_classes` (default: the checkpoint's classifier's) and `in_chans`
    (a 3-channel stem is adapted to another count) and loaded strictly. Weights are read with weights_only=True.

    info: `name` (the block table's name), `num_classes`, `in_chans`, `img_size` (the training image size; None
    for checkpoints that do not record one: their preprocessing is `pretrained_cfg`), `stem_stride`,
    `small_input`, `layout`, `epoch`, `metadata` (the checkpoint's), `pretrained_cfg` (None for `rexnet train`
    checkpoints), `trained_here` (written by `rexnet train`).
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "the given checkpoint"
    ckpt = read_checkpoint(checkpoint)
    meta = ckpt.metadata
    config = meta.get("config", {})
    trained_here = _trained_here(ckpt)
    if trained_here:
        arch = arch_from_dict(ckpt.arch, source=f"checkpoint {source}")
        small = config.get("small_input", "off")
        if model_name is not None:
            wanted = resolve_arch(model_name, small, config.get("dropout"))
            if arch_to_dict(wanted) != arch_to_dict(arch):
                raise RexnetError(
                    f"{source} holds {arch.name}, not {wanted.name} (another model or width); "
                    f"evaluate it with --model {config.get('model', arch.name)} or without --model"
                )
        recorded = ckpt.classifier_classes
        if num_classes is not None and num_classes != recorded:
            raise RexnetError(
                f"{source} holds a {recorded}-class classifier, not {num_classes}; "
                "leave num_classes out to use the checkpoint's"
            )
        in_chans, stem_stride, cfg = meta["in_chans"], meta.get("stem_stride", 2), None
        model = ReXNet(arch, recorded, in_chans, stem_stride=stem_stride)
    else:
        if model_name is None:
            raise RexnetError(f"{source} was not written by `rexnet train`; give --model NAME for it")
        if isinstance(checkpoint, (str, os.PathLike)):
            verify_file(checkpoint, pretrained_cfg(model_name))
        small, stem_stride, cfg = "off", 2, pretrained_cfg(model_name)
        model = create_model(model_name, num_classes=num_classes or ckpt.classifier_classes or 1000, in_chans=in_chans)
    load_checkpoint(model, ckpt)
    info = {
        "name": model.arch.name,
        "num_classes": model.num_classes,
        "in_chans": in_chans,
        "img_size": meta.get("img_size") if trained_here else None,
        "stem_stride": stem_stride,
        "small_input": small,
        "layout": ckpt.layout,
        "epoch": ckpt.epoch,
        "metadata": meta,
        "pretrained_cfg": cfg,
        "trained_here": trained_here,
    }
    return model.eval(), info
