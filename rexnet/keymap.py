"""timm ↔ official key maps for ReXNet-V1 state_dicts: renames (and the classifier's Linear ↔ 1×1 conv reshape).

timm's `rexnet_*` holds the same tensors as the official release under other names: `stem.conv/bn`,
`features.i.{conv_exp,conv_dw,se,conv_pwl}` per block, `features.16` for the penultimate conv, `head.fc` for
the classifier. The official layout numbers every Sequential slot, activations included, so a block's slot
numbers depend on whether it has an expansion conv and SE (the paper's ReXNet-V1: no expansion in the first
block, SE from the third stage on).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .errors import RexnetError
from .model import STEM_LAYERS

_TIMM_BLOCK = re.compile(r"^features\.(\d+)\.(conv_exp|conv_dw|se|conv_pwl)\.(.+)$")
_OFFICIAL_BLOCK = re.compile(r"^features\.(\d+)\.out\.(\d+)\.(.+)$")


def _block_slots(has_exp: bool, has_se: bool) -> dict[str, str]:
    """Returns timm sub-module name → official `out.N` slot for one bottleneck (activations take slots too)."""
    slots, n = {}, 0
    if has_exp:
        slots.update({"conv_exp.conv": f"out.{n}", "conv_exp.bn": f"out.{n + 1}"})
        n += 3
    slots.update({"conv_dw.conv": f"out.{n}", "conv_dw.bn": f"out.{n + 1}"})
    n += 2
    if has_se:
        slots.update({"se.fc1": f"out.{n}.fc.0", "se.bn": f"out.{n}.fc.1", "se.fc2": f"out.{n}.fc.3"})
        n += 1
    n += 1  # ReLU6 after the depthwise conv (and SE)
    slots.update({"conv_pwl.conv": f"out.{n}", "conv_pwl.bn": f"out.{n + 1}"})
    return slots


def _split_sub(rest: str) -> tuple[str, str]:
    """Returns ('conv_dw.bn', 'running_mean') from 'conv_dw.bn.running_mean' (the last part is the tensor)."""
    head, _, tensor = rest.rpartition(".")
    return head, tensor


def _bad_keys(keys: list[str], layout: str) -> RexnetError:
    shown = ", ".join(keys[:3])
    return RexnetError(
        f"{len(keys)} key(s) do not fit the {layout} ReXNet layout (e.g. {shown}); "
        "is this a ReXNet-V1 checkpoint (timm's rexnetr_* and other models are not supported)?"
    )


def timm_to_official(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns timm `rexnet_*` weights renamed (and the classifier reshaped) to the official layout."""
    blocks: dict[int, set[str]] = {}
    for key in state_dict:
        if m := _TIMM_BLOCK.match(key):
            blocks.setdefault(int(m.group(1)), set()).add(m.group(2))
    num_blocks = len(blocks)
    if sorted(blocks) != list(range(num_blocks)):
        raise _bad_keys([k for k in state_dict if k.startswith("features.")], "timm")
    slots = {i: _block_slots("conv_exp" in parts, "se" in parts) for i, parts in blocks.items()}
    out, unmapped = {}, []
    for key, value in state_dict.items():
        if key.startswith("stem.conv."):
            out[f"features.0.{key[len('stem.conv.') :]}"] = value
        elif key.startswith("stem.bn."):
            out[f"features.1.{key[len('stem.bn.') :]}"] = value
        elif m := _TIMM_BLOCK.match(key):
            i = int(m.group(1))
            sub, tensor = _split_sub(f"{m.group(2)}.{m.group(3)}")
            if sub not in slots[i]:
                unmapped.append(key)
                continue
            out[f"features.{i + STEM_LAYERS}.{slots[i][sub]}.{tensor}"] = value
        elif key.startswith(f"features.{num_blocks}.conv."):  # penultimate 1×1 conv
            out[f"features.{num_blocks + STEM_LAYERS}.{key.rpartition('.')[2]}"] = value
        elif key.startswith(f"features.{num_blocks}.bn."):
            out[f"features.{num_blocks + STEM_LAYERS + 1}.{key.rpartition('.')[2]}"] = value
        elif key == "head.fc.weight":
            out["output.1.weight"] = value.reshape(*value.shape, 1, 1)  # Linear → 1×1 conv
        elif key == "head.fc.bias":
            out["output.1.bias"] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise _bad_keys(unmapped, "timm")
    return out


def official_to_timm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns official-layout ReXNet-V1 weights renamed to timm's `rexnet_*` layout (inverse of timm_to_official)."""
    if any(k.startswith("output.4.") for k in state_dict):
        raise RexnetError("timm has no ReXNet-lite model; convert V1 checkpoints (rexnet_090 … rexnet_300) only")
    blocks: dict[int, tuple[set[int], bool]] = {}
    for key in state_dict:
        if m := _OFFICIAL_BLOCK.match(key):
            slots_seen, has_se = blocks.get(int(m.group(1)), (set(), False))
            slots_seen.add(int(m.group(2)))
            blocks[int(m.group(1))] = (slots_seen, has_se or m.group(3).startswith("fc."))
    num_blocks = len(blocks)
    if sorted(blocks) != list(range(STEM_LAYERS, STEM_LAYERS + num_blocks)):
        raise _bad_keys([k for k in state_dict if ".out." in k], "official")
    # The projection's BN is the last slot; with an expansion conv it sits 3 slots further on.
    inverse = {}
    for index, (seen, has_se) in blocks.items():
        has_exp = max(seen) == (8 if has_se else 7)
        inverse[index] = {v: k for k, v in _block_slots(has_exp, has_se).items()}
    pen = STEM_LAYERS + num_blocks
    out, unmapped = {}, []
    for key, value in state_dict.items():
        prefix, _, tensor = key.rpartition(".")
        if prefix == "features.0":
            out[f"stem.conv.{tensor}"] = value
        elif prefix == "features.1":
            out[f"stem.bn.{tensor}"] = value
        elif m := _OFFICIAL_BLOCK.match(key):
            index = int(m.group(1))
            sub = f"out.{m.group(2)}.{m.group(3)}".rpartition(".")[0]
            if sub not in inverse[index]:
                unmapped.append(key)
                continue
            out[f"features.{index - STEM_LAYERS}.{inverse[index][sub]}.{tensor}"] = value
        elif prefix == f"features.{pen}":
            out[f"features.{num_blocks}.conv.{tensor}"] = value
        elif prefix == f"features.{pen + 1}":
            out[f"features.{num_blocks}.bn.{tensor}"] = value
        elif key == "output.1.weight":
            out["head.fc.weight"] = value.flatten(1)
        elif key == "output.1.bias":
            out["head.fc.bias"] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise _bad_keys(unmapped, "official")
    return out
