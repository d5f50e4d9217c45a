"""Nonlinearities by name: the built-ins are `rexnet.activations` (the ones ReXNet layers can use); users can add
their own for the study."""

from collections.abc import Callable

import torch

from rexnet.activations import ACTIVATIONS

from ..errors import StudyError

Nonlinearity = Callable[[torch.Tensor], torch.Tensor]

# One list for both packages: a name the study measures is a name the variant builder can put in a layer.
_REGISTRY: dict[str, Nonlinearity] = {name: act.fn for name, act in ACTIVATIONS.items()}

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
            "or register it with rankstudy.register_nonlinearity"
        ) from None
