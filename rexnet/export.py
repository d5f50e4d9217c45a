"""ONNX export of a ReXNet model, written atomically, with a dynamic batch dimension."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import RexnetError
from .io import atomic_path


def input_channels(model: nn.Module) -> int:
    """Returns the input channels `model` takes: its `in_chans` (ReXNet's), else its first conv's."""
    chans = getattr(model, "in_chans", None)
    if isinstance(chans, int):
        return chans
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def total_stride(model: nn.Module) -> int:
    """Returns how much `model` downsamples: the largest `reduction` of its feature_info (ReXNet's), else 32."""
    info = getattr(model, "feature_info", None) or []
    return max((tap["reduction"] for tap in info if isinstance(tap, dict) and "reduction" in tap), default=32)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, img_size: int = 224, *, opset: int = 18, dynamo: bool = False
) -> Path:
    """Returns the path of the ONNX file written for `model` (eval mode, input 'input' of shape
    (batch, in_chans, H, W), with the model's own input channels: `input_channels`).

    The TorchScript exporter is the default: here it takes ~2 s against ~20 s for the torch.export
    (dynamo) path, gives one self-contained file, and both match PyTorch to ~1e-7 on ReXNet. Pass
    dynamo=True for the newer exporter.
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise RexnetError(f"output {path} does not end in .onnx; name the file e.g. model.onnx")
    stride = total_stride(model)
    if img_size < stride:
        raise RexnetError(
            f"img_size {img_size} is below {stride}, the network's total stride; use at least {stride} (e.g. 224)"
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Batch 2: torch.export specialises a dimension of size 1, which would fix the batch at 1.
    example = torch.randn(2, input_channels(model), img_size, img_size, device=device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        raise RexnetError(f"cannot write {path} ({exc.strerror}); choose a writable folder for --onnx") from None
    try:
        with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter announces its deprecation on every call; the choice is deliberate.
            warnings.simplefilter("ignore", DeprecationWarning)
            if dynamo:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=True,
                    external_data=False,
                    opset_version=opset,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    verbose=False,
                )
            else:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    opset_version=opset,
                    input_names=["input"],
                    output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                )
    finally:
        model.train(was_training)
    return path
