"""The one registry of nonlinearities: each name as a function (the rank study) and as a module (ReXNet layers).

The paper's rank study (Section 3, Figure 1) compares the nonlinearity after an expanding layer; the
study here samples the 14 below, and the variant builder puts the winner into a ReXNet. Both read this
table, so a name means the same function in the measurement and in the model. A module computes exactly
its function (tests/rexnet/test_activations.py checks it); ReLU6 and SiLU use the memory-saving modules
below, which compute the same values and gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import RexnetError


def autograd_on(x: torch.Tensor) -> bool:
    """Returns whether autograd records operations on `x` (and we are not tracing for export)."""
    return torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing()


class _ReLU6SavingOutput(torch.autograd.Function):
    """ReLU6 whose backward reads its output, not its input: the output is kept anyway by the conv that
    consumes it, so the input (a full-size tensor) can be freed. 0 < out < 6 exactly where 0 < in < 6."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp(0, 6)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return torch.ops.aten.hardtanh_backward(grad, out, 0.0, 6.0)


# As in blocks.py: functions torch.fx records as one call (torch.fx.wrap), plain under TorchScript.


@torch.jit.unused
def _relu6_eager(x: torch.Tensor) -> torch.Tensor:
    if autograd_on(x):
        return _ReLU6SavingOutput.apply(x)
    return F.hardtanh(x, 0.0, 6.0, inplace=True)


def relu6_lean(x: torch.Tensor) -> torch.Tensor:
    """Returns ReLU6(x): without autograd in place, under autograd keeping only its output for backward."""
    if torch.jit.is_scripting():
        return F.hardtanh(x, 0.0, 6.0)
    return _relu6_eager(x)


@torch.jit.unused
def _silu_eager(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x, inplace=not autograd_on(x))


def silu_lean(x: torch.Tensor) -> torch.Tensor:
    """Returns SiLU(x): in place when autograd is off, out of place under autograd."""
    if torch.jit.is_scripting():
        return F.silu(x)
    return _silu_eager(x)


torch.fx.wrap("relu6_lean")
torch.fx.wrap("silu_lean")


class MemoryEfficientReLU6(nn.ReLU6):
    """nn.ReLU6 that keeps no extra tensor for backward (see _ReLU6SavingOutput); same values and gradients.

    In-place ReLU6 does not achieve this: autograd saves a clone of an in-place op's input. Without
    autograd (inference, export) it runs in place, sparing a fresh allocation; in ReXNet its input is
    always a BN or SE output nothing else reads. As a subclass it prints and pickles as ReLU6.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu6_lean(x)


class InferenceInplaceSiLU(nn.SiLU):
    """nn.SiLU that runs in place when autograd is off (≈2× faster on CPU: no fresh tensor to fault in).

    Under autograd it is out of place: in-place SiLU saves a clone of its input, so it would only add a copy.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu_lean(x)


def identity(x: torch.Tensor) -> torch.Tensor:
    """Returns `x` (the paper's "linear": no nonlinearity)."""
    return x


@dataclass(frozen=True)
class Activation:
    """One nonlinearity: `fn` maps a tensor elementwise; `module()` builds an nn.Module computing the same."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    module: Callable[[], nn.Module]


# torch's defaults throughout (leaky_relu slope 0.01, elu/celu alpha 1, softplus beta 1, exact erf GELU).
ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", identity, nn.Identity),
        Activation("relu", F.relu, nn.ReLU),
        Activation("relu6", F.relu6, MemoryEfficientReLU6),
        Activation("leaky_relu", F.leaky_relu, nn.LeakyReLU),
        Activation("elu", F.elu, nn.ELU),
        Activation("selu", F.selu, nn.SELU),
        Activation("celu", F.celu, nn.CELU),
        Activation("softplus", F.softplus, nn.Softplus),
        Activation("silu", F.silu, InferenceInplaceSiLU),
        Activation("hardswish", F.hardswish, nn.Hardswish),
        Activation("mish", F.mish, nn.Mish),
        Activation("gelu", F.gelu, nn.GELU),
        Activation("tanh", torch.tanh, nn.Tanh),
        Activation("sigmoid", torch.sigmoid, nn.Sigmoid),
    )
}


def list_activations() -> list[str]:
    """Returns the registered names, in the rank study's order."""
    return list(ACTIVATIONS)


def get_activation(name: str) -> Activation:
    """Returns the registry entry of `name`; RexnetError naming the choices if it is unknown."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise RexnetError(f"unknown nonlinearity {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def make_activation(name: str) -> nn.Module:
    """Returns a fresh module computing the nonlinearity `name`."""
    return get_activation(name).module()
