"""What a model costs: parameters, multiply-accumulates (via torch.utils.flop_counter) and activation memory.

Everything runs on the meta device: shapes only, no weights allocated, no arithmetic done, so a 3.0×
model at 224×224 is summarised in about a second on any machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .arch import ArchSpec, budget_img_size, format_block_table
from .model import STEM_LAYERS, ReXNet
from .names import model_arch
from .small_input import small_input_variant


@dataclass(frozen=True)
class ModelSummary:
    """Costs of one model at one input size (batch 1, float32); `arch` is the network built (in_chans,
    stem stride, small-input mode and classes included)."""

    arch: ArchSpec
    img_size: int
    num_classes: int
    params: int
    flops: int  # as counted by FlopCounterMode: 2 per multiply-accumulate of convs and matmuls
    saved_activation_bytes: int  # tensors autograd keeps for backward in a training step, per image
    block_params: tuple[int, ...]
    block_flops: tuple[int, ...]

    @property
    def macs(self) -> int:
        """Returns multiply-accumulates (the unit papers call FLOPs: ReXNet-1.0× = 0.40 G)."""
        return self.flops // 2


def count_params(model: nn.Module) -> int:
    """Returns the number of parameters (buffers such as BN running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Returns (total FLOPs, FLOPs per module path) of one forward pass on `x`, counted by FlopCounterMode."""
    # torch.utils.flop_counter pulls in triton (~0.2 s), which every process that imports rexnet would pay
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415 - ~0.2 s, loaded only to count

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    root = type(model).__name__
    per_module = {
        name[len(root) + 1 :] if name.startswith(root + ".") else name: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
    }
    return counter.get_total_flops(), per_module


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Returns the bytes of the distinct non-parameter tensors autograd saves for backward in a forward on `x`."""
    seen = {t.untyped_storage()._cdata for t in [*model.parameters(), *model.buffers()]}
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        key = t.untyped_storage()._cdata  # in-place ops share storage: count each buffer once
        if key not in seen:
            seen.add(key)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return total


def summarize(
    name: str | ArchSpec | os.PathLike,
    img_size: int | None = None,
    num_classes: int | None = None,
    *,
    in_chans: int | None = None,
    small_input: str | None = None,
) -> ModelSummary:
    """Returns the ModelSummary of a registered name, block-table JSON or ArchSpec at img_size×img_size.

    The network is the table's own (its input channels, stem stride, small-input mode and classes: a variant
    JSON is summarised as built) unless `in_chans`, `num_classes` or `small_input` (applied with
    `small_input_variant`) say otherwise; `img_size` defaults to the size the table was matched to a MACs
    budget at (its provenance), else 224.
    """
    arch = model_arch(name)
    if small_input is not None:
        arch, _ = small_input_variant(arch, small_input)
    img_size = img_size or budget_img_size(arch) or 224
    with torch.device("meta"):
        model = ReXNet(arch, num_classes=num_classes, in_chans=in_chans)
        chans = model.in_chans
        flops, per_module = count_flops(model.eval(), torch.empty(1, chans, img_size, img_size))
        # Batch 2: training-mode BN refuses a single value per channel (SE pools to 1×1).
        saved = saved_activation_bytes(model.train(), torch.empty(2, chans, img_size, img_size)) // 2
    blocks = [model.features[STEM_LAYERS + i] for i in range(len(arch.blocks))]
    return ModelSummary(
        arch=model.arch,
        img_size=img_size,
        num_classes=model.num_classes,
        params=count_params(model),
        flops=flops,
        saved_activation_bytes=saved,
        block_params=tuple(count_params(b) for b in blocks),
        block_flops=tuple(per_module.get(f"features.{STEM_LAYERS + i}", 0) for i in range(len(blocks))),
    )


def format_count(value: float) -> str:
    """Returns a MAC or FLOP count readably: in G from 0.1 G up ('0.398 G'), in M below ('12.87 M')."""
    return f"{value / 1e9:.3f} G" if value >= 1e8 else f"{value / 1e6:.2f} M"


def format_summary(summary: ModelSummary) -> str:
    """Returns the block table with per-block params and MACs, then the totals, as printable text."""
    table = format_block_table(summary.arch).splitlines()
    header_at = 1
    table[header_at] += f" {'params':>9} {'MMACs':>8}"
    table[header_at + 1] = "-" * len(table[header_at])
    for i, (p, f) in enumerate(zip(summary.block_params, summary.block_flops)):
        table[header_at + 3 + i] += f" {p:>9,} {f / 2e6:>8.2f}"
    mib = summary.saved_activation_bytes / 2**20
    arch = summary.arch
    table += [
        "",
        f"input                {arch.in_chans}×{summary.img_size}×{summary.img_size}, {summary.num_classes} classes, "
        f"small-input mode {arch.small_input}",
        f"parameters           {summary.params:,}",
        f"MACs                 {format_count(summary.macs)}  "
        f"(FLOPs {format_count(summary.flops)}, counted by torch.utils.flop_counter)",
        f"activation memory    {mib:.1f} MiB per image (float32 tensors saved for backward in a training step)",
    ]
    return "\n".join(table)


def model_costs(
    arch: ArchSpec, img_size: int, *, num_classes: int = 10, in_chans: int = 3, stem_stride: int = 2
) -> tuple[int, int]:
    """Returns (parameters, MACs) of one image through ReXNet(arch), counted on the meta device."""
    with torch.device("meta"):
        model = ReXNet(arch, num_classes=num_classes, in_chans=in_chans, stem_stride=stem_stride).eval()
        flops, _ = count_flops(model, torch.empty(1, in_chans, img_size, img_size))
    return count_params(model), flops // 2
