"""Registry of elementwise nonlinearities by name; users can add their own."""
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import StudyError

Nonlinearity = Callable[[torch.Tensor], torch.Tensor]

_REGISTRY: dict[str, Nonlinearity] = {
    "identity": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,  # negative slope 0.01, torch's default
    "elu": F.elu,
    "selu": F.selu,
    "celu": F.celu,
    "softplus": F.softplus,
    "silu": F.silu,
    "hardswish": F.hardswish,
    "mish": F.mish,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}

BUILTIN_NONLINEARITIES: tuple[str, ...] = tuple(_REGISTRY)


def register_nonlinearity(name: str, fn: Nonlinearity, *, overwrite: bool = False) -> None:
    """Adds `fn` under `name`. Register at import time of your module so joblib workers see it too."""
    if name in _REGISTRY and not overwrite:
        raise StudyError(f"nonlinearity {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = fn


def list_nonlinearities() -> list[str]:
    """Returns the registered names, built-ins first."""
    return list(_REGISTRY)


def get_nonlinearity(name: str) -> Nonlinearity:
    """Returns the function registered as `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StudyError(
            f"unknown nonlinearity {name!r}; choose from {', '.join(_REGISTRY)} "
            "or register it with rankstudy.register_nonlinearity") from None
