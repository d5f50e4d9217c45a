"""Forward hooks that turn a model's forward pass into one feature matrix per probed module call.

A conv output (N, C, H, W) gives the feature matrix F = C × (N·H·W) (channels × every image's positions), a
linear output (N, C) gives C × N, a token output (N, L, C) gives C × (N·L): the matrices whose rank the
paper (ReXNet, §3.2) measures layer by layer. When F has more than `max_columns` columns, a fixed random
subset of columns is kept, chosen from the seed and the total column count only, so the result does not
depend on the batch size.

The model runs in eval mode. Its batch-norm layers normalise either with their running statistics (bn
"running", plain eval mode) or with the statistics of the forward batch (bn "batch"): a forward hook on each
batch-norm layer replaces its output by `torch.nn.functional.batch_norm(input, training=True)` without
running buffers, so no buffer and no `training` flag changes. The inputs go in `len(chunks(N, batch_size))`
forward batches of near-equal size (at most `batch_size` images): under "batch" each is normalised with its
own statistics.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm import tqdm

from ..errors import StudyError

# Modules that repeat their input in eval mode (or only reshape it): rows that would duplicate the one before.
SKIPPED_TYPES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
)
_CHANNELS_FIRST_3D = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
)

LayerSelection = Sequence[str] | Callable[[str, nn.Module], bool] | None
BN_MODES = ("batch", "running")


def chunks(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Returns the (start, stop) of the forward batches `n` inputs go in: ⌈n / batch_size⌉ batches of near-equal
    size (sizes differ by at most one, none above `batch_size`), e.g. 300 images at batch_size 256 → 150 + 150."""
    k = -(-n // batch_size)
    bounds = [n * i // k for i in range(k + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _batch_statistics_hook(name: str):
    """Returns a forward hook that replaces a batch-norm layer's output by its input normalised with the
    statistics of this forward batch (the layer's affine weight and bias applied; its buffers untouched)."""

    def fn(mod: _BatchNorm, args, out):
        x = args[0]
        if x.numel() <= x.shape[1]:  # one value per channel: batch_norm's training mode refuses it
            raise StudyError(
                f"bn='batch': {name} sees one value per channel in a batch of {len(x)}; give a larger batch_size "
                "or bn='running'"
            )
        return nn.functional.batch_norm(x, None, None, mod.weight, mod.bias, training=True, eps=mod.eps)

    return fn


@dataclass(frozen=True)
class LayerFeatures:
    """One module call's feature matrix: `features` is channels × columns (the columns kept), float32 on the CPU.

    `name` is the module's name, with `#k` appended for its k-th call in one forward pass (k ≥ 2); `shape` is
    the output's shape with the batch dimension replaced by the number of images; `positions` is the number of
    columns each image contributes before subsampling.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    channels: int
    positions: int
    features: torch.Tensor


def select_modules(model: nn.Module, layers: LayerSelection) -> list[tuple[str, nn.Module]]:
    """Returns the (name, module) pairs to probe: every leaf but SKIPPED_TYPES (layers None), the names given, or
    the modules a predicate (name, module) → bool accepts; StudyError for a name the model lacks."""
    named = [(name, m) for name, m in model.named_modules() if name]
    if layers is None:
        return [(n, m) for n, m in named if not list(m.children()) and not isinstance(m, SKIPPED_TYPES)]
    if callable(layers):
        return [(n, m) for n, m in named if layers(n, m)]
    if isinstance(layers, str):
        layers = [layers]
    by_name = dict(named)
    unknown = [n for n in layers if n not in by_name]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(by_name), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise StudyError(f"the model has no module {unknown[0]!r}{hint}; list names with model.named_modules()")
    return [(n, by_name[n]) for n in layers]


def _channels_dim(module: nn.Module, out: torch.Tensor) -> int:
    if out.dim() == 3 and not isinstance(module, _CHANNELS_FIRST_3D):
        return 2  # (N, tokens, C): transformers, nn.Linear on sequences
    return 1


@dataclass
class _Collector:
    """Gathers one module call's subsampled feature columns across batches."""

    name: str
    type: str
    shape: tuple[int, ...] = ()
    channels: int = 0
    positions: int = 0
    parts: list[torch.Tensor] = field(default_factory=list)

    def result(self) -> LayerFeatures:
        return LayerFeatures(
            self.name, self.type, self.shape, self.channels, self.positions, torch.cat(self.parts, dim=1)
        )


class _Hooks:
    """Forward hooks that keep, for every call of every probed module, the chosen columns of its output."""

    def __init__(self, n_images: int, max_columns: int, seed: int):
        self.n_images, self.max_columns, self.seed = n_images, max_columns, seed
        self.collectors: dict[tuple[str, int], _Collector] = {}  # insertion order = execution order
        self.calls: dict[str, int] = {}
        self.start, self.batch = 0, 0  # index of the batch's first image, batch length
        self._chosen: dict[int, torch.Tensor] = {}

    def chosen(self, total: int) -> torch.Tensor:
        """Returns the sorted global column indices used out of `total` (all, or a seeded random subset)."""
        if total not in self._chosen:
            if total <= self.max_columns:
                self._chosen[total] = torch.arange(total)
            else:
                g = torch.Generator().manual_seed(self.seed)
                self._chosen[total] = torch.randperm(total, generator=g)[: self.max_columns].sort().values
        return self._chosen[total]

    def hook(self, name: str, module: nn.Module):
        def fn(mod, args, out):
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            if (
                not isinstance(out, torch.Tensor)
                or out.dim() < 2
                or not out.is_floating_point()
                or len(out) != self.batch
            ):  # not per-image features (e.g. a sequence-first layout)
                return
            key = (name, call)
            label = name if call == 0 else f"{name}#{call + 1}"
            c = self.collectors.setdefault(key, _Collector(label, type(module).__name__))
            cdim = _channels_dim(module, out)
            x = out.detach().movedim(cdim, 1)
            b, ch = x.shape[:2]
            x = x.reshape(b, ch, -1)
            positions = x.shape[2]
            # Global column j = image · positions + position: the same columns whatever the batching.
            idx = self.chosen(self.n_images * positions)
            lo, hi = self.start * positions, (self.start + b) * positions
            local = idx[(idx >= lo) & (idx < hi)].to(x.device) - lo
            # Copy now: in-place activations and residual adds later overwrite this output.
            c.parts.append(x[local // positions, :, local % positions].T.to("cpu", torch.float32))
            c.shape, c.channels, c.positions = (self.n_images, *out.shape[1:]), ch, positions

        return fn


def collect_features(
    model: nn.Module,
    inputs: torch.Tensor,
    modules: Sequence[tuple[str, nn.Module]],
    *,
    max_columns: int,
    batch_size: int,
    seed: int,
    bn: str = "running",
    progress: bool = False,
) -> list[LayerFeatures]:
    """Returns the feature matrix of every call of the given modules (execution order) on `inputs`.

    `inputs` (N, …) is fed in the forward batches `chunks(N, batch_size)` on the device of the model's
    parameters, in eval mode and without gradients; batch-norm layers use their running statistics (`bn`
    "running") or each forward batch's statistics ("batch", see the module docstring). The model's modes are
    restored and the hooks removed, also when the forward pass fails; its buffers are never written.
    Calls whose output is not a per-image floating-point tensor (N, C, …) are left out.
    """
    if bn not in BN_MODES:
        raise StudyError(f"bn={bn!r} is not a batch-norm mode; use bn='batch' or bn='running'")
    param = next(model.parameters(), None)
    device = param.device if param is not None else inputs.device
    modes = {m: m.training for m in model.modules()}
    state = _Hooks(len(inputs), max_columns, seed)
    handles = []
    try:
        if bn == "batch":  # prepended: the probe's own hook on a batch-norm layer sees the replaced output
            handles += [
                m.register_forward_hook(_batch_statistics_hook(n or type(m).__name__), prepend=True)
                for n, m in model.named_modules()
                if isinstance(m, _BatchNorm)
            ]
        handles += [m.register_forward_hook(state.hook(n, m)) for n, m in modules]
        model.eval()
        batches = chunks(len(inputs), batch_size)
        if progress:
            batches = tqdm(batches, desc="probe", unit="batch")
        with torch.no_grad():
            for start, stop in batches:
                batch = inputs[start:stop]
                state.start, state.batch = start, len(batch)
                state.calls.clear()
                model(batch.to(device))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    return [c.result() for c in state.collectors.values()]
