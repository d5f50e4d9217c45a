"""The model a `rankstudy probe --model` value names: a rexnet name or block table, timm:NAME or torchvision:NAME,
optionally loaded from a checkpoint; a checkpoint written by `rexnet train` rebuilds its own network, and a block
table (a variant JSON) builds the network it records (its input channels and classes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rexnet.arch import budget_img_size
from rexnet.errors import RexnetError
from rexnet.names import is_block_table
from rexnet.registry import create_model, model_from_checkpoint

from ..errors import StudyError


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to probe, with the input it expects."""

    model: nn.Module
    in_chans: int
    img_size: int | None  # None: not known from the model (the data decides)
    description: str


def load_model(
    spec: str | None, checkpoint: str | os.PathLike | None = None, *, in_chans: int = 3, num_classes: int | None = None
) -> LoadedModel:
    """Returns the model a `--model` value names (rexnet name or block table, timm:NAME, torchvision:NAME).

    A checkpoint written by `rexnet train` rebuilds its own network (block table, small-input stem stride,
    input channels, classes, image size: `rexnet.registry.model_from_checkpoint`); `spec` may then be omitted,
    and a `spec` naming another network is refused. A block table without a checkpoint builds the network it
    records (its in_chans, not the data's: 1-channel images are repeated for a 3-channel table; classes
    unless `num_classes` is given; the image size it was matched to a budget at), with a checkpoint too.
    `in_chans` (the data's) applies to model names.
    timm and torchvision models are built with random weights (pretrained=False / weights=None), then loaded
    from `checkpoint` if given. Raises StudyError for unknown names and checkpoints that do not fit.
    """
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise StudyError(f"checkpoint {checkpoint} not found; check --checkpoint")
    try:
        if spec is not None and spec.startswith("timm:"):
            return _timm_model(spec, checkpoint, in_chans, num_classes)
        if spec is not None and spec.startswith("torchvision:"):
            return _torchvision_model(spec, checkpoint, num_classes)
        return _rexnet_model(spec, checkpoint, in_chans, num_classes)
    except RexnetError as e:
        raise StudyError(str(e)) from None


def _timm_model(spec: str, checkpoint, in_chans: int, num_classes: int | None) -> LoadedModel:
    import timm  # noqa: PLC0415 - timm takes seconds to import and is optional: only for a timm: model

    name = spec.removeprefix("timm:")
    if not timm.is_model(name):
        raise StudyError(f"unknown timm model {name!r}; list names with timm.list_models()")
    kwargs = {"num_classes": num_classes} if num_classes else {}
    model = timm.create_model(name, pretrained=False, in_chans=in_chans, **kwargs)
    if checkpoint is not None:
        _load_state_dict(model, checkpoint, spec)
    return LoadedModel(model, in_chans, None, spec)


def _torchvision_model(spec: str, checkpoint, num_classes: int | None) -> LoadedModel:
    import torchvision  # noqa: PLC0415 - torchvision takes seconds to import: only for a torchvision: model

    name = spec.removeprefix("torchvision:")
    if name not in torchvision.models.list_models():
        raise StudyError(f"unknown torchvision model {name!r}; list names with torchvision.models.list_models()")
    kwargs = {"num_classes": num_classes} if num_classes else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    if checkpoint is not None:
        _load_state_dict(model, checkpoint, spec)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return LoadedModel(model, conv.in_channels if conv is not None else 3, None, spec)


def _load_state_dict(model: nn.Module, checkpoint: str | os.PathLike, what: str) -> None:
    """Loads a plain (or wrapped) state_dict file into a timm/torchvision `model` strictly, read with
    weights_only=True. (`rexnet.checkpoint.read_checkpoint` reads ReXNet layouts only: it refuses other
    networks' keys and renames timm's to the official ReXNet layout.)"""
    try:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refused, not a torch file, truncated
        raise StudyError(
            f"{checkpoint} is not a loadable weights file ({type(e).__name__}); pass a state_dict saved with torch.save"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise StudyError(f"{checkpoint} holds no state_dict; pass a state_dict saved with torch.save")
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise StudyError(f"{checkpoint} does not fit {what} ({detail[:160]}); check --model") from None


def _rexnet_model(spec: str | None, checkpoint, in_chans: int, num_classes: int | None) -> LoadedModel:
    if checkpoint is None:
        if spec is None:
            raise StudyError("give --model (a rexnet name, block-table .json, timm:NAME or torchvision:NAME)")
        if is_block_table(spec):
            model = create_model(spec, num_classes=num_classes)
            return LoadedModel(model, model.in_chans, budget_img_size(model.arch), str(spec))
        model = create_model(spec, num_classes=num_classes or 1000, in_chans=in_chans)
        return LoadedModel(model, in_chans, None, spec)
    own_chans = spec is not None and is_block_table(spec)  # a table's stem keeps its in_chans (images adapt)
    model, info = model_from_checkpoint(
        checkpoint, spec, num_classes=num_classes, in_chans=None if own_chans else in_chans
    )
    if info["trained_here"]:  # a `rexnet train` run: its own network, input channels and image size
        config = info["metadata"].get("config", {})
        return LoadedModel(
            model, info["in_chans"], info["img_size"], f"{config.get('model', info['name'])} ({checkpoint})"
        )
    return LoadedModel(model, info["in_chans"], None, spec)
