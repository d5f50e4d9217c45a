"""Models by name: `create_model` (name, block table or checkpoint → model, optionally loaded from a checkpoint),
`model_from_checkpoint` (a checkpoint → the network it holds: the one reader behind `rexnet eval`, `rexnet
export` and the rank study's probe), `checkpoint_network` (the table a checkpoint records) and `resolve_arch`
(a `--model` value → block table with the small-input change).

A table (a variant JSON) and a checkpoint written by this package each record a whole network: the block
table, the stem stride and small-input mode, input channels and classes. Whatever builds a model from one
builds that network, and a checkpoint whose recorded network differs from the model asked for is refused
(`network_diff`: blocks, stem, head and strides; not the name, the provenance or the dropout).

Names are resolved by `rexnet.names` (re-exported here: `list_models`, `parse_name`, `model_arch`,
`pretrained_cfg`); the checkpoint layouts are `rexnet.checkpoint`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .arch import ArchSpec, arch_from_dict, network_diff
from .checkpoint import Checkpoint, load_checkpoint, read_checkpoint
from .errors import RexnetError
from .model import ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite
from .names import MODEL_OPTIONS, is_block_table, list_models, model_arch, parse_name, pretrained_cfg, split_tag
from .pretrained import cfg_dict, find_weights, verify_file
from .small_input import SMALL_INPUT_MODES, small_input_variant

__all__ = [
    "checkpoint_network",
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
    small_input: str | None = None,
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

    `small_input` ('s16', 's8'; None or 'off': none) puts the table in a small-input mode (`small_input_variant`;
    a table already in that mode is kept). A block-table JSON builds the network it records, stem stride, input
    channels and classes included. `name` may be a checkpoint written by this package (.pth, .pt, .safetensors):
    the model is then the network it records, with its weights (`model_from_checkpoint`), in training mode like
    every model returned here. A `checkpoint` that records another network than the one built (other blocks,
    stem stride or small-input mode) is refused with the call that fits it.
    """
    if not isinstance(pretrained, bool):
        raise RexnetError(f"pretrained={pretrained!r}; use True or False")
    if _is_checkpoint_path(name):
        flags = (("pretrained", pretrained), ("checkpoint", checkpoint is not None), ("skip_head", skip_head))
        given = [k for k, on in flags if on] + sorted(kwargs)
        if given:
            raise RexnetError(
                f"create_model({str(name)!r}) builds the network the checkpoint records, with its weights, so "
                f"{', '.join(given)} do not apply; drop them, or build a model by name with checkpoint={str(name)!r}"
            )
        model = _from_checkpoint_path(name, num_classes, in_chans, small_input).train()
        return ReXNetFeatures(model, out_indices, feature_cls) if features_only else model
    model_kwargs = {k: kwargs.pop(k) for k in MODEL_OPTIONS if k in kwargs}
    if "dropout" in kwargs and "drop_rate" not in model_kwargs:  # this package's older name for timm's drop_rate
        model_kwargs["drop_rate"] = kwargs.pop("dropout")
    kwargs.pop("dropout", None)
    arch = model_arch(name, **kwargs)  # validates the name, its tag and the options
    moded = small_input not in (None, "off")
    if moded:
        arch, _ = small_input_variant(arch, small_input)
    cfg = pretrained_cfg(name)
    named = not (isinstance(name, ArchSpec) or is_block_table(name))
    if num_classes is None:
        num_classes = cfg.num_classes if named else arch.num_classes
    family = parse_name(name)[0] if named and not moded else None  # the release's classes build its layouts only
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
        # Before loading: a stem or head message would come first; shape mismatches are load_checkpoint's to name.
        check_network(model.arch, ckpt, name, checkpoint, defer_shapes=True)
        head_differs = pretrained and ckpt.classifier_classes not in (None, model.num_classes)
        load_checkpoint(model, ckpt, skip_head=skip_head or model.num_classes == 0 or head_differs)
    return ReXNetFeatures(model, out_indices, feature_cls) if features_only else model


CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")


def _is_checkpoint_path(name: Any) -> bool:
    return isinstance(name, (str, os.PathLike)) and Path(name).suffix in CHECKPOINT_SUFFIXES


def _from_checkpoint_path(path, num_classes: int | None, in_chans: int | None, small_input: str | None) -> ReXNet:
    """Returns the network a checkpoint file records, with its weights (create_model's checkpoint-as-name)."""
    ckpt = read_checkpoint(path)
    if checkpoint_network(ckpt) is None:
        raise RexnetError(
            f"checkpoint {path} does not record its network (official or timm layout, or an older save); "
            f"name the model it holds: create_model(NAME, checkpoint={str(path)!r})"
        )
    # num_classes=0 (no classifier, as elsewhere in create_model): the checkpoint's network, its head removed.
    model, info = model_from_checkpoint(
        ckpt, num_classes=num_classes or None, small_input=small_input, source=f"checkpoint {path}"
    )
    if in_chans is not None and in_chans != info["in_chans"]:
        raise RexnetError(
            f"checkpoint {path} holds a network with {info['in_chans']}-channel input, not in_chans={in_chans}; "
            "leave in_chans out to use the checkpoint's"
        )
    if num_classes == 0:
        model.reset_classifier(0)
    return model


def _trained_here(ckpt: Checkpoint) -> bool:
    """Returns whether a checkpoint was written by `rexnet train` (it records the network's input channels)."""
    return ckpt.layout == "rexnet" and ckpt.arch is not None and "in_chans" in ckpt.metadata


# Fields of a checkpoint's network that tables saved before they existed lack; `rexnet train` checkpoints of
# that time record them in their metadata (stem_stride, config.small_input, in_chans).
_LATER_FIELDS = ("stem_stride", "small_input", "in_chans")


def _recorded(ckpt: Checkpoint, source: str) -> tuple[ArchSpec, frozenset[str]] | None:
    """Returns (the network a checkpoint records, the fields it does not record), or None without a table."""
    if ckpt.layout != "rexnet" or ckpt.arch is None:
        return None
    data = dict(ckpt.arch)
    if _trained_here(ckpt):  # as `rexnet train` has always recorded them (older runs: off and its stem stride)
        meta = ckpt.metadata
        mode = (meta.get("config") or {}).get("small_input", "off")
        later = {
            "small_input": mode,
            "stem_stride": meta.get("stem_stride", SMALL_INPUT_MODES.get(mode, (None, 2))[1]),
            "in_chans": meta["in_chans"],
        }
        data = {**later, **data}
    if "num_classes" not in data and ckpt.classifier_classes is not None:
        data["num_classes"] = ckpt.classifier_classes
    arch = arch_from_dict(data, source=source)
    return arch, frozenset(k for k in _LATER_FIELDS if k not in data)


def checkpoint_network(checkpoint: str | os.PathLike | Mapping[str, Any] | Checkpoint) -> ArchSpec | None:
    """Returns the network a checkpoint records (block table, stem stride, small-input mode, input channels,
    classes), or None for one that records no whole network (official or timm layout, a bare state_dict, a
    file saved before tables recorded their stem and input channels).

    `rexnet train` checkpoints written before those fields existed record them in their metadata, read here.
    """
    ckpt = read_checkpoint(checkpoint)
    source = f"checkpoint {checkpoint}" if isinstance(checkpoint, (str, os.PathLike)) else "the checkpoint"
    found = _recorded(ckpt, source)
    return found[0] if found is not None and not found[1] else None


def _call(name: Any) -> str:
    return repr(str(name)) if isinstance(name, (str, os.PathLike)) else "table"


# Fields in which two tables build networks with the same state_dict shapes: a checkpoint of one loads into the
# other without complaint, so only a comparison of the tables catches it.
_SAME_SHAPES = ("stride", "stem_stride", "act", "dw_act", "stem_act", "penultimate_act", "head_act")


def check_network(
    built: ArchSpec, ckpt: Checkpoint, name: Any = None, checkpoint: Any = None, *, defer_shapes: bool = False
) -> None:
    """Raises RexnetError (one line: what the checkpoint holds, what was asked for, the call that fits) when the
    network `ckpt` records differs from `built` (`network_diff`, in_chans and num_classes aside: a checkpoint
    loads into others by adapting the stem or replacing the classifier).

    With `defer_shapes`, a difference that changes tensor shapes is left to `load_checkpoint`, whose message
    names the model the weights fit; the rest (strides, stem stride, nonlinearities) load silently, so they are
    refused here. A checkpoint without a table (official, timm, a state_dict) records nothing to check; of one
    saved before tables recorded stem stride and input channels, only what it records is compared.
    """
    path = checkpoint if isinstance(checkpoint, (str, os.PathLike)) else None
    source = f"checkpoint {path}" if path is not None else "the checkpoint"
    found = _recorded(ckpt, source)
    if found is None:
        return
    recorded, unknown = found
    diff = [d for d in network_diff(recorded, built, io=False) if d not in unknown]
    if not diff or (defer_shapes and any(d.rsplit(".", 1)[-1] not in _SAME_SHAPES for d in diff)):
        return
    fixes = []
    if recorded.small_input != built.small_input and built.small_input == "off":
        candidate, _ = small_input_variant(built, recorded.small_input)
        if not [d for d in network_diff(recorded, candidate, io=False) if d not in unknown]:
            extra = "".join(
                f", {field}={getattr(recorded, field)}"
                for field in ("in_chans", "num_classes")
                if field not in unknown and getattr(recorded, field) != getattr(built, field)
            )
            where = repr(str(path)) if path is not None else "..."
            fixes.append(
                f"create_model({_call(name)}, small_input={recorded.small_input!r}{extra}, checkpoint={where})"
            )
    if path is not None and not unknown:
        fixes.append(f"create_model({str(path)!r}) (the network it records)")
    fix = " or ".join(fixes) if fixes else "build the model the checkpoint was saved from"
    shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
    raise RexnetError(
        f"{source} holds {recorded.name} in small-input mode {recorded.small_input} (stem stride "
        f"{recorded.stem_stride}), not {built.name} in mode {built.small_input} (stem stride {built.stem_stride}): "
        f"they differ in {shown}; use {fix}"
    )


def model_from_checkpoint(
    checkpoint: str | os.PathLike | Mapping[str, Any] | Checkpoint,
    model_name: str | ArchSpec | os.PathLike | None = None,
    *,
    num_classes: int | None = None,
    in_chans: int | None = None,
    small_input: str | None = None,
    source: str | None = None,
) -> tuple[ReXNet, dict[str, Any]]:
    """Returns (model with the checkpoint's weights, in eval mode, on the CPU; info) for a checkpoint (a file, a
    state_dict or a `Checkpoint` read already).

    A checkpoint that records its network (`checkpoint_network`: those `rexnet train` and `save_checkpoint`
    write) rebuilds it: block table, stem stride and small-input mode, input channels and classes;
    `model_name`, when given, must name that same network (in the checkpoint's small-input mode unless
    `small_input` is given), `small_input` and `num_classes`, when given, its mode and class count, else
    RexnetError. Any other checkpoint (official or timm layout, a state_dict) needs `model_name`: that model is
    built in `small_input` mode with `num_classes` (default: the checkpoint's classifier's) and `in_chans`
    (default: the table's, 3 for names; a 3-channel stem is adapted to another count) and loaded strictly.
    Weights are read with weights_only=True. `source` names the checkpoint in messages (default: its path).

    info: `name` (the block table's name), `num_classes`, `in_chans`, `img_size` (the training image size; None
    for checkpoints that do not record one: their preprocessing is `pretrained_cfg`), `stem_stride`,
    `small_input`, `layout`, `epoch`, `metadata` (the checkpoint's), `pretrained_cfg` (None for `rexnet train`
    checkpoints), `trained_here` (written by `rexnet train`).
    """
    if source is None:
        source = f"checkpoint {checkpoint}" if isinstance(checkpoint, (str, os.PathLike)) else "the given checkpoint"
    ckpt = read_checkpoint(checkpoint)
    meta = ckpt.metadata
    config = meta.get("config", {})
    trained_here = _trained_here(ckpt)
    found = _recorded(ckpt, source)
    if found is not None and not found[1]:
        arch = found[0]
        if small_input is not None and small_input != arch.small_input:
            raise RexnetError(
                f"{source} holds {arch.name} in small-input mode {arch.small_input}, not {small_input}; "
                f"give small-input {arch.small_input} or leave it out to use the checkpoint's"
            )
        if model_name is not None:
            wanted = resolve_arch(model_name, arch.small_input)
            if network_diff(wanted, arch, io=False):
                raise RexnetError(
                    f"{source} holds {arch.name}, not {wanted.name} (another model or width); "
                    f"name {config.get('model', arch.name)} or no model to use it"
                )
        if num_classes is not None and num_classes != arch.num_classes:
            raise RexnetError(
                f"{source} holds a {arch.num_classes}-class classifier, not {num_classes}; "
                "leave num_classes out to use the checkpoint's"
            )
        model = ReXNet(arch)
        load_checkpoint(model, ckpt)
        cfg = None if trained_here else pretrained_cfg(arch if model_name is None else model_name)
    else:
        if model_name is None:
            raise RexnetError(
                f"{source} does not record its network (not written by `rexnet train`); give --model NAME for it "
                "(in Python: create_model(NAME, checkpoint=...))"
            )
        if isinstance(checkpoint, (str, os.PathLike)):
            verify_file(checkpoint, pretrained_cfg(model_name))
        cfg = pretrained_cfg(model_name)
        model = create_model(
            model_name,
            num_classes=num_classes or ckpt.classifier_classes or 1000,
            in_chans=in_chans,
            small_input=small_input,
            checkpoint=ckpt,
        )
    info = {
        "name": model.arch.name,
        "num_classes": model.num_classes,
        "in_chans": model.in_chans,
        "img_size": meta.get("img_size") if trained_here else None,
        "stem_stride": model.arch.stem_stride,
        "small_input": model.arch.small_input,
        "layout": ckpt.layout,
        "epoch": ckpt.epoch,
        "metadata": meta,
        "pretrained_cfg": cfg,
        "trained_here": trained_here,
    }
    return model.eval(), info
