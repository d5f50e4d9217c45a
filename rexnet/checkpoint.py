"""Checkpoints in three layouts — official (clovaai), timm's `rexnet_*`, and this package's training files.

Everything is read with `torch.load(weights_only=True)` or safetensors, normalised to the official key
layout (which `ReXNet` uses), and checked against the model before loading so that a wrong width, depth
or class count gets a one-line explanation instead of a wall of size-mismatch messages.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .arch import arch_to_dict
from .errors import RexnetError
from .io import atomic_path
from .keymap import official_to_timm, timm_to_official
from .model import ReXNet
from .names import list_models, model_arch

CHECKPOINT_FORMAT = "rexnet.checkpoint/1"
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile wrappers


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from disk: the state_dict in official layout plus whatever training state it carried."""

    state_dict: dict[str, torch.Tensor]
    layout: str  # "official", "timm" or "rexnet" (this package's training checkpoint)
    arch: dict[str, Any] | None = None
    num_classes: int | None = None
    epoch: int | None = None
    optimizer: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def classifier_classes(self) -> int | None:
        """Returns the class count: the recorded one, else the rows of the classifier, the highest-numbered
        `output.N` weight (output.1 for V1, output.4 for lite); None when there is no classifier."""
        if self.num_classes is not None:
            return self.num_classes
        heads = sorted(
            (k for k in self.state_dict if k.startswith("output.") and k.endswith(".weight")),
            key=lambda k: int(k.split(".")[1]),
        )
        return int(self.state_dict[heads[-1]].shape[0]) if heads else None


# --- reading ------------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _read_file(path: Path) -> tuple[Any, dict[str, str]]:
    """Returns (loaded object, safetensors metadata) of a checkpoint file, or raises RexnetError."""
    if not path.exists():
        raise RexnetError(f"checkpoint {path} does not exist; check the path")
    if not path.is_file():
        raise RexnetError(f"checkpoint {path} is not a file; pass the .pth/.pt/.safetensors file itself")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        except Exception as exc:  # safetensors raises its own error types for every kind of bad file
            raise RexnetError(
                f"checkpoint {path} is not a readable .safetensors file ({_first_line(exc)}); "
                "it may be truncated: re-download or re-save it"
            ) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. pickle-protocol notices: the outcome is reported below
            return torch.load(path, map_location="cpu", weights_only=True), {}
    except Exception as exc:  # truncated zip, random bytes, pickled code: all mean "not a usable checkpoint"
        if "can still be loaded" in str(exc):  # torch's wording when only the weights_only check failed
            reason = "it holds Python objects other than tensors, which weights_only loading refuses"
        elif path.stat().st_size == 0:
            reason = "the file is empty"
        else:
            reason = "not a PyTorch checkpoint, or truncated/corrupted"
        raise RexnetError(
            f"cannot read checkpoint {path}: {reason}; pass a state_dict saved with torch.save or a .safetensors file"
        ) from None


def _unwrap(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Returns (state_dict, wrapper) where wrapper is the surrounding dict of a training checkpoint (else {})."""
    if not isinstance(obj, Mapping):
        raise RexnetError(
            f"{source} holds a {type(obj).__name__}, not a state_dict; pass a checkpoint of a ReXNet model"
        )
    wrapper: dict[str, Any] = {}
    for key in _WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            wrapper, obj = dict(obj), obj[key]
            break
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(obj):
        raise RexnetError(
            f"{source} is not a state_dict (its entries are not all named tensors); pass a checkpoint of a ReXNet model"
        )
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors, wrapper


def _layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    if any(k.startswith(("stem.", "head.fc.")) or ".conv_dw." in k for k in state_dict):
        return "timm"
    if "features.0.weight" in state_dict:
        return "official"
    some = ", ".join(list(state_dict)[:3])
    raise RexnetError(
        f"no ReXNet weights found (keys start {some}); pass a ReXNet checkpoint (official, timm or rexnet layout)"
    )


def read_checkpoint(src: str | os.PathLike | Mapping[str, Any] | Checkpoint) -> Checkpoint:
    """Returns the checkpoint at a path (or given as a dict, or read already), with its state_dict in the official
    layout."""
    if isinstance(src, Checkpoint):
        return src
    if isinstance(src, Mapping):
        obj, meta, source = src, {}, "the given object"
    else:
        path = Path(src)
        (obj, meta), source = _read_file(path), f"checkpoint {path}"
    state_dict, wrapper = _unwrap(obj, source)
    if meta.get("format") == CHECKPOINT_FORMAT:  # our safetensors: training info lives in string metadata
        try:
            wrapper = {"format": CHECKPOINT_FORMAT, **{k: json.loads(v) for k, v in meta.items() if k != "format"}}
        except json.JSONDecodeError:
            raise RexnetError(f"{source} has corrupt metadata; re-save it with rexnet.save_checkpoint") from None
    layout = _layout(state_dict)
    if layout == "timm":
        state_dict = timm_to_official(state_dict)
    own = wrapper.get("format") == CHECKPOINT_FORMAT
    return Checkpoint(
        state_dict=state_dict,
        layout="rexnet" if own else layout,
        arch=wrapper.get("arch"),
        num_classes=wrapper.get("num_classes"),
        epoch=wrapper.get("epoch"),
        optimizer=wrapper.get("optimizer"),
        metadata=dict(wrapper.get("metadata") or {}),
        extra=dict(wrapper.get("extra") or {}),
    )


# --- loading into a model -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _known_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    """Returns listed name → {key: shape} of its backbone (built on the meta device: no memory, no init)."""
    shapes = {}
    with torch.device("meta"):
        for name in list_models():
            sd = ReXNet(model_arch(name)).state_dict()
            shapes[name] = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith(("output.",))}
    return shapes


def _guess_model(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Returns the listed model whose backbone shapes the state_dict matches exactly, if any."""
    for name, shapes in _known_shapes().items():
        if all(k in state_dict and tuple(state_dict[k].shape) == s for k, s in shapes.items()):
            return name
    return None


def _describe_mismatch(model: ReXNet, ckpt: Checkpoint, problem: str) -> RexnetError:
    saved = (ckpt.arch or {}).get("name") or _guess_model(ckpt.state_dict)
    ours = model.arch.name
    if saved and saved != ours:
        return RexnetError(
            f"{problem}: the checkpoint was saved from {saved}, the model is {ours}; "
            f"create the model as {saved} (rexnet.create_model('{saved}', ...))"
        )
    return RexnetError(f"{problem}: the checkpoint does not fit {ours}; check the model name or block table")


def adapt_input_conv(in_chans: int, weight: torch.Tensor) -> torch.Tensor:
    """Returns a stem conv weight (out, 3, k, k) made to take `in_chans` channels, as timm adapts pretrained stems.

    One channel: the sum of the RGB filters (a grey image x gives what the RGB image (x, x, x) gave).
    Otherwise the RGB filters repeated cyclically and scaled by 3/in_chans (the response's scale is kept
    when all channels carry the same signal).
    """
    out, rgb, kh, kw = weight.shape
    if rgb != 3:
        raise RexnetError(
            f"the checkpoint's stem takes {rgb} channels; only 3-channel (RGB) stems can be adapted "
            f"to in_chans={in_chans}: create the model with in_chans={rgb}"
        )
    dtype, w = weight.dtype, weight.float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    return w.to(dtype)


def load_checkpoint(
    model: ReXNet, src: str | os.PathLike | Mapping[str, Any] | Checkpoint, *, skip_head: bool = False
) -> Checkpoint:
    """Returns the Checkpoint read from `src` after loading its weights into `model` (strictly).

    With `skip_head`, the classifier (the only num_classes-sized layer) is left as it is and every
    other tensor must match; without it, a different class count is an error that says what to do.
    A 3-channel (RGB) checkpoint loads into a model with another `in_chans` through `adapt_input_conv`.
    """
    ckpt = read_checkpoint(src)
    state_dict = dict(ckpt.state_dict)
    own = model.state_dict()
    stem = state_dict.get("features.0.weight")
    if (
        stem is not None
        and stem.ndim == 4
        and stem.shape[1] != own["features.0.weight"].shape[1]
        and stem.shape[0] == own["features.0.weight"].shape[0]
    ):
        state_dict["features.0.weight"] = adapt_input_conv(own["features.0.weight"].shape[1], stem)
    head = model.classifier_name + "."
    if skip_head:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(head)}
    else:
        weight = state_dict.get(head + "weight")
        same_input = weight is not None and weight.shape[1:] == own[head + "weight"].shape[1:]
        if same_input and len(weight) != model.num_classes:
            raise RexnetError(
                f"the checkpoint's classifier has {len(weight)} classes, the model {model.num_classes}; "
                f"create the model with num_classes={len(weight)}, or pass skip_head=True (CLI: --skip-head) "
                "to load everything but the classifier"
            )
    expected = {k for k in own if not (skip_head and k.startswith(head))}
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        problem = (
            f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:2]) or '-'}) and {len(unexpected)} "
            f"unexpected (e.g. {', '.join(unexpected[:2]) or '-'})"
        )
        raise _describe_mismatch(model, ckpt, problem)
    wrong = [k for k in state_dict if state_dict[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        problem = (
            f"{len(wrong)} shape mismatch(es), first {k}: {tuple(state_dict[k].shape)} in the file "
            f"vs {tuple(own[k].shape)}"
        )
        raise _describe_mismatch(model, ckpt, problem)
    model.load_state_dict(state_dict, strict=not skip_head)
    return ckpt


# --- writing --------------------------------------------------------------------------------------------


def _json_ready(value: Any, what: str) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise RexnetError(
            f"{what} must be JSON-serialisable ({exc}); pass plain numbers, strings, lists, dicts"
        ) from None
    return value


def save_checkpoint(
    path: str | os.PathLike,
    model: ReXNet,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Returns the path written: a training checkpoint (weights, block table, optimizer, epoch, metadata).

    The file is written atomically and loads with weights_only=True. A `.safetensors` path stores the
    weights plus JSON metadata (no optimizer state: safetensors holds only tensors).
    """
    path = Path(path)
    info = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch_to_dict(model.arch),
        "num_classes": model.num_classes,
        "epoch": epoch,
        "metadata": _json_ready(dict(metadata or {}), "metadata"),
    }
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        if path.suffix == ".safetensors":
            if optimizer is not None or extra:
                raise RexnetError("safetensors holds weights only; save optimizer/extra state to a .pth file")
            metadata = {k: v if k == "format" else json.dumps(v) for k, v in info.items()}
            save_file(state_dict, str(tmp), metadata=metadata)
        else:
            torch.save(
                {
                    **info,
                    "state_dict": state_dict,
                    "optimizer": optimizer.state_dict() if optimizer is not None else None,
                    "extra": dict(extra or {}),
                },
                tmp,
            )
    return path


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, layout: str = "timm") -> Path:
    """Returns `dst` after writing the weights of `src` in the `layout` given ('official' or 'timm')."""
    if layout not in ("official", "timm"):
        raise RexnetError(f"unknown layout {layout!r}; use 'official' or 'timm'")
    state_dict = read_checkpoint(src).state_dict
    if layout == "timm":
        state_dict = official_to_timm(state_dict)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        if dst.suffix == ".safetensors":
            save_file({k: v.contiguous() for k, v in state_dict.items()}, str(tmp))
        else:
            torch.save(state_dict, tmp)
    return dst
