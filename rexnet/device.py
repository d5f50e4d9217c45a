"""Device names as the CLIs take them ('auto' | 'cpu' | 'cuda' | 'cuda:i'), resolved once for both packages."""

import os

import torch

from .errors import RexnetError


def resolve_device(name: str | torch.device) -> torch.device:
    """Returns the torch device for 'auto' | 'cpu' | 'cuda' | 'cuda:i'; RexnetError if unknown or not available.

    'auto' is the GPU when one is visible, else the CPU. A plain 'cuda' (or 'auto' on a GPU) is the process's
    local GPU under torchrun (cuda:LOCAL_RANK), cuda:0 otherwise.
    """
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise RexnetError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:i") from None
    if dev.type not in ("cpu", "cuda"):
        raise RexnetError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:i")
    if dev.type == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RexnetError(f"--device {name} was asked for but no CUDA GPU is visible; use --device cpu or auto")
    index = dev.index if dev.index is not None else int(os.environ.get("LOCAL_RANK", 0))
    if index >= torch.cuda.device_count():
        raise RexnetError(
            f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible; "
            f"use cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", index)
