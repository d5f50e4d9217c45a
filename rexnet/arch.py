"""The ReXNet architecture as data: a table of blocks computed from width/depth, saved and loaded as JSON.

`rexnet_v1_arch` and `rexnet_lite_arch` reproduce the channel arithmetic of the official release
(clovaai/rexnet) exactly, float accumulation included, because the parameter counts and the state_dict
shapes of the released checkpoints depend on every rounding. `ReXNet` in `model.py` builds any `ArchSpec`;
variants (e.g. built from the rank study's findings) are just other tables.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .activations import ACTIVATIONS
from .errors import RexnetError
from .io import atomic_write_text

# Stages shared by ReXNet-V1 and lite: (blocks, stride of the first block, expansion, squeeze-excitation).
# The same stage/stride/expansion pattern as MobileNetV2; ReXNet's difference is the channel schedule.
STAGES: tuple[tuple[int, int, int, bool], ...] = (
    (1, 1, 1, False),
    (2, 2, 6, False),
    (2, 2, 6, True),
    (3, 2, 6, True),
    (3, 1, 6, True),
    (5, 2, 6, True),
)

ARCH_FORMAT = "rexnet.arch/1"
# The small-input modes a table can be in (`ArchSpec.small_input`); what each changes is small_input.py's.
SMALL_INPUTS = ("off", "s16", "s8")


@dataclass(frozen=True)
class BlockSpec:
    """One inverted bottleneck: [1×1 expand → act] → k×k depthwise (stride) → [SE] → dw_act → 1×1 project."""

    in_channels: int
    out_channels: int
    expansion: int
    stride: int
    se: bool
    act: str = "silu"
    dw_act: str = "relu6"
    kernel_size: int = 3
    # Set only where a family rounds them (timm's rexnetr_*: multiples of 8 or 16); None = the official rule.
    expanded: int | None = None  # depthwise width; default in_channels × expansion
    se_channels: int | None = None  # SE hidden width; default mid_channels // se_reduction

    @property
    def mid_channels(self) -> int:
        """Returns the width of the depthwise conv (the expanded width)."""
        if self.expanded is not None:
            return self.expanded
        return self.in_channels * self.expansion if self.expansion != 1 else self.in_channels

    def se_hidden(self, se_reduction: int) -> int:
        """Returns the SE block's hidden width: `se_channels` if set, else mid_channels // se_reduction."""
        return self.se_channels if self.se_channels is not None else self.mid_channels // se_reduction

    @property
    def shortcut(self) -> bool:
        """Returns whether the block adds its input to the first in_channels of its output (partial residual)."""
        return self.stride == 1 and self.in_channels <= self.out_channels


@dataclass(frozen=True)
class ArchSpec:
    """A whole network: stem, block table, penultimate conv and classifier head (`head_channels` set = lite head)."""

    name: str
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    penultimate_channels: int
    stem_act: str = "silu"
    penultimate_act: str = "silu"
    head_channels: int | None = None
    head_act: str = "relu6"
    se_reduction: int = 12
    dropout: float = 0.2
    # The rest of the network, so that a table (a variant JSON, a checkpoint's "arch") builds exactly one network:
    # the stem conv's stride (1 in small-input mode s8), the small-input mode the table was made for (its
    # block strides already carry it; "off" for the 224-px layouts), input channels and classes.
    stem_stride: int = 2
    small_input: str = "off"
    in_chans: int = 3
    num_classes: int = 1000
    # Where the table came from (e.g. which finding chose each rule, for variants built from the rank study);
    # JSON data, kept through save/load, not part of the network (ignored by ==).
    provenance: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def strides(self) -> tuple[int, ...]:
        """Returns the cumulative stride after the stem and after each block."""
        out = [self.stem_stride]
        for block in self.blocks:
            out.append(out[-1] * block.stride)
        return tuple(out)


def make_divisible(value: float, divisor: int) -> int:
    """Returns `value` rounded to a multiple of `divisor`, never more than 10% below it (the MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _per_block(depths: list[int]) -> list[tuple[int, int, bool, int]]:
    """Returns (stride, expansion, se, stage index) for every block, given the number of blocks per stage."""
    rows = []
    for stage, ((_, stride, expansion, se), depth) in enumerate(zip(STAGES, depths)):
        rows += [(stride if i == 0 else 1, expansion, se, stage) for i in range(depth)]
    return rows


def _widths(num_blocks: int, start: float, growth: float, mult: float, rounder) -> list[int]:
    """Returns each block's output width: a running width grows by `growth` per block after the first.

    The official code adds `growth` repeatedly rather than computing start + i·growth; the accumulated
    float error decides some roundings (e.g. at 1.3×), so the loop is kept as is.
    """
    widths, running = [], start
    for i in range(num_blocks):
        if i > 0:
            running += growth
        widths.append(rounder(running * mult))
    return widths


def rexnet_v1_arch(
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    *,
    se: bool = True,
    act: str = "silu",
    dw_act: str = "relu6",
    initial_channels: int = 16,
    final_channels: int = 180,
    ch_div: int = 1,
    name: str | None = None,
) -> ArchSpec:
    """Returns the ReXNet-V1 table: widths grow linearly by final_channels/num_blocks (180/16 at depth 1).

    `ch_div` > 1 is timm's `rexnetr_*` ("rounded"): the stem, every block's output and expanded width, the SE
    hidden width and the penultimate conv rounded to multiples of ch_div (8; 16 for rexnetr_300) by the
    MobileNet rule (`make_divisible`), as timm computes them.
    """
    if ch_div < 1:
        raise RexnetError(f"ch_div={ch_div!r}; use 1 (the official widths) or a multiple such as 8")
    depths = [math.ceil(stage[0] * depth_mult) for stage in STAGES]
    rows = _per_block(depths)

    def rounder(v: float) -> int:
        return int(round(v)) if ch_div == 1 else make_divisible(int(round(v)), ch_div)

    # Below 1× the stem and the first block keep their 1× widths (32 and 16), as in the release.
    start = initial_channels / width_mult if width_mult < 1.0 else initial_channels
    stem = rounder((32 / width_mult if width_mult < 1.0 else 32) * width_mult)
    outs = _widths(len(rows), start, final_channels / len(rows), width_mult, rounder)
    ins = [stem] + outs[:-1]
    blocks = []
    for i, o, (s, t, use_se, _) in zip(ins, outs, rows):
        block = BlockSpec(i, o, t, s, se and use_se, act=act, dw_act=dw_act)
        if ch_div > 1:
            mid = make_divisible(int(round(i * t)), ch_div) if t != 1 else i
            hidden = make_divisible(int(mid * (1 / 12.0)), ch_div) if block.se else None
            block = replace(block, expanded=mid, se_channels=hidden)
        blocks.append(block)
    family = "rexnet" if ch_div == 1 else "rexnetr"
    return ArchSpec(
        name=name or f"{family}_{round(width_mult * 100):03d}",
        stem_channels=stem,
        blocks=tuple(blocks),
        penultimate_channels=int(1280 * width_mult) if ch_div == 1 else make_divisible(1280 * width_mult, ch_div),
        stem_act=act,
        penultimate_act=act,
    )


def rexnet_lite_arch(
    multiplier: float = 1.0,
    *,
    kernel_sizes: str = "333333",
    fix_head_stem: bool = False,
    divisor: int = 8,
    initial_channels: int = 16,
    final_channels: int = 164,
    name: str | None = None,
) -> ArchSpec:
    """Returns the ReXNet-lite table: no SE, ReLU6 everywhere, widths multiples of 8 growing by 164/15."""
    if len(kernel_sizes) != len(STAGES) or any(k not in "3579" for k in kernel_sizes):
        raise RexnetError(f"kernel_sizes {kernel_sizes!r} is not six odd digits; use e.g. '333333'")
    rows = _per_block([stage[0] for stage in STAGES])
    small = multiplier < 1.0
    start = initial_channels / multiplier if small else initial_channels
    stem = make_divisible(int(round((32 / multiplier if small or fix_head_stem else 32) * multiplier)), divisor)
    # Lite spreads the growth over num_blocks - 1 steps (V1 uses num_blocks), so the last block ends at 180.
    outs = _widths(
        len(rows),
        start,
        final_channels / (len(rows) - 1),
        multiplier,
        lambda v: make_divisible(int(round(v)), divisor),
    )
    ins = [stem] + outs[:-1]
    blocks = tuple(
        BlockSpec(i, o, t, s, False, act="relu6", dw_act="relu6", kernel_size=int(kernel_sizes[stage]))
        for i, o, (s, t, _, stage) in zip(ins, outs, rows)
    )
    return ArchSpec(
        name=name or f"rexnet_lite_{round(multiplier * 100):03d}",
        stem_channels=stem,
        blocks=blocks,
        penultimate_channels=int(1280 * multiplier) if multiplier > 1 and not fix_head_stem else 1280,
        stem_act="relu6",
        penultimate_act="relu6",
        head_channels=1024,
        head_act="relu6",
    )


# --- the table as text and as JSON -------------------------------------------------------------------


_COLUMNS = (
    ("block", 5),
    ("in", 5),
    ("mid", 5),
    ("out", 5),
    ("exp", 3),
    ("k", 2),
    ("s", 2),
    ("SE", 3),
    ("act", 10),
    ("dw_act", 8),
    ("res", 4),
)


def _table_row(*cells: object) -> str:
    return " ".join(f"{'' if c is None else c:>{w}}" for c, (_, w) in zip(cells, _COLUMNS))


def format_block_table(arch: ArchSpec) -> str:
    """Returns the block table as aligned text: one row per block plus stem, penultimate conv and head."""
    header = _table_row(*(name for name, _ in _COLUMNS))
    lines = [arch.name, header, "-" * len(header)]
    lines.append(
        _table_row("stem", arch.in_chans, None, arch.stem_channels, None, 3, arch.stem_stride, None, arch.stem_act)
    )
    for idx, b in enumerate(arch.blocks):
        lines.append(
            _table_row(
                idx,
                b.in_channels,
                b.mid_channels,
                b.out_channels,
                b.expansion,
                b.kernel_size,
                b.stride,
                "yes" if b.se else "no",
                b.act if b.expansion != 1 else "-",
                b.dw_act,
                "yes" if b.shortcut else "no",
            )
        )
    last = arch.blocks[-1].out_channels
    lines.append(_table_row("pen", last, None, arch.penultimate_channels, None, 1, 1, None, arch.penultimate_act))
    if arch.head_channels is not None:
        lines.append(
            _table_row("head", arch.penultimate_channels, None, arch.head_channels, None, 1, 1, None, arch.head_act)
        )
    lines.append(
        f"input {arch.in_chans} channel(s), {arch.num_classes} classes, small-input mode {arch.small_input}, "
        f"output stride {arch.strides[-1]}"
    )
    lines.append("mid = depthwise width; res = partial residual (input added to the first `in` channels)")
    lines += format_provenance(arch)
    return "\n".join(lines)


def format_provenance(arch: ArchSpec) -> list[str]:
    """Returns text lines saying which finding chose each rule of the table (none for tables without provenance)."""
    prov = arch.provenance or {}
    lines = []
    if isinstance(prov.get("findings"), dict):
        f = prov["findings"]
        lines.append(
            f"built from {f.get('path', 'findings')} (schema {f.get('schema_version')}, created "
            f"{f.get('created')}, by `{f.get('command')}`)"
        )
    for rule, choice in (prov.get("choices") or {}).items():
        if not isinstance(choice, dict):
            continue
        finding = choice.get("finding") or {}
        why = choice.get("because", "")
        if finding.get("key"):
            ci = finding.get("ci")
            ci_text = f", 95% CI [{ci[0]}, {ci[1]}]" if isinstance(ci, list) and len(ci) == 2 else ""
            measure = f" under {finding['measure']}" if finding.get("measure") else ""
            why = f"{finding['key']} = {finding.get('value')!r}{measure}{ci_text}" + (f"; {why}" if why else "")
        lines.append(f"  {rule}: {choice.get('value')!r} <- {why}")
    return lines


def arch_to_dict(arch: ArchSpec) -> dict[str, Any]:
    """Returns a JSON-ready dict of the table (with a format tag so loaders can reject other JSON)."""
    out = asdict(arch)
    # The family-rounding overrides are written only where set, so official tables read as before.
    out["blocks"] = [
        {k: v for k, v in asdict(b).items() if not (k in ("expanded", "se_channels") and v is None)}
        for b in arch.blocks
    ]
    if out["provenance"] is None:
        del out["provenance"]
    return {"format": ARCH_FORMAT, **out}


def _check(cond: bool, problem: str, fix: str) -> None:
    if not cond:
        raise RexnetError(f"{problem}; {fix}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _known_act(name: Any) -> bool:
    return isinstance(name, str) and name in ACTIVATIONS


def arch_from_dict(data: Any, source: str = "block table") -> ArchSpec:
    """Returns the ArchSpec a dict describes, after checking types, names and that the channels chain up."""
    fix = "write it with rexnet.save_arch or follow `rexnet summary NAME --save-arch`"
    _check(isinstance(data, dict), f"{source} is not a JSON object", fix)
    _check(data.get("format") == ARCH_FORMAT, f"{source} has format {data.get('format')!r}, not {ARCH_FORMAT!r}", fix)
    known = {f.name for f in fields(ArchSpec)} | {"format"}
    unknown = sorted(set(data) - known)
    _check(not unknown, f"{source} has unknown field(s) {unknown}", f"allowed: {sorted(known)}")
    _check(isinstance(data.get("blocks"), list) and data["blocks"], f"{source} has no 'blocks' list", fix)
    block_fields = {f.name for f in fields(BlockSpec)}
    blocks = []
    for i, row in enumerate(data["blocks"]):
        where = f"{source} block {i}"
        _check(isinstance(row, dict), f"{where} is not an object", fix)
        required = {"in_channels", "out_channels", "expansion", "stride", "se"}
        extra, missing = set(row) - block_fields, required - set(row)
        _check(
            not extra and not missing,
            f"{where} has unknown {sorted(extra)} / missing {sorted(missing)} fields",
            f"fields are {sorted(block_fields)}",
        )
        block = BlockSpec(**row)
        for name in ("in_channels", "out_channels", "expansion", "stride", "kernel_size"):
            value = getattr(block, name)
            _check(_positive_int(value), f"{where}: {name}={value!r}", "use a positive integer")
        for name in ("expanded", "se_channels"):  # family rounding (timm's rexnetr_*), absent = the official rule
            value = getattr(block, name)
            _check(
                value is None or _positive_int(value), f"{where}: {name}={value!r}", "use a positive integer or omit it"
            )
        _check(block.stride in (1, 2), f"{where}: stride={block.stride}", "use 1 or 2")
        _check(block.kernel_size % 2 == 1, f"{where}: kernel_size={block.kernel_size}", "use an odd size")
        _check(isinstance(block.se, bool), f"{where}: se={block.se!r}", "use true or false")
        for name in ("act", "dw_act"):
            _check(
                _known_act(getattr(block, name)),
                f"{where}: unknown {name} {getattr(block, name)!r}",
                f"choose one of {', '.join(ACTIVATIONS)}",
            )
        blocks.append(block)
    head = {k: v for k, v in data.items() if k not in ("format", "blocks")}
    for name in ("name", "stem_channels", "penultimate_channels"):
        _check(name in head, f"{source} lacks '{name}'", fix)
    arch = ArchSpec(blocks=tuple(blocks), **head)
    for name in ("stem_channels", "penultimate_channels", "se_reduction"):
        value = getattr(arch, name)
        _check(_positive_int(value), f"{source}: {name}={value!r}", "use a positive integer")
    # The rest of the network (fields added after the first tables were written: absent = the 224-px layout's).
    _check(
        arch.stem_stride in (1, 2) and _positive_int(arch.stem_stride),
        f"{source}: stem_stride={arch.stem_stride!r}",
        "use 1 or 2",
    )
    _check(
        isinstance(arch.small_input, str) and arch.small_input in SMALL_INPUTS,
        f"{source}: small_input={arch.small_input!r}",
        f"use one of {', '.join(SMALL_INPUTS)}",
    )
    _check(
        arch.small_input != "s8" or arch.stem_stride == 1,
        f"{source}: small_input 's8' with stem_stride {arch.stem_stride} (s8 means a stride-1 stem)",
        "set stem_stride to 1, or rebuild the table with rexnet.small_input_variant",
    )
    _check(_positive_int(arch.in_chans), f"{source}: in_chans={arch.in_chans!r}", "use a positive integer, e.g. 3")
    _check(
        isinstance(arch.num_classes, int) and not isinstance(arch.num_classes, bool) and arch.num_classes >= 0,
        f"{source}: num_classes={arch.num_classes!r}",
        "use a positive integer, or 0 for no classifier",
    )
    _check(
        arch.head_channels is None or _positive_int(arch.head_channels),
        f"{source}: head_channels={arch.head_channels!r}",
        "use a positive integer or null",
    )
    for name in ("stem_act", "penultimate_act", "head_act"):
        _check(
            _known_act(getattr(arch, name)),
            f"{source}: unknown {name} {getattr(arch, name)!r}",
            f"choose one of {', '.join(ACTIVATIONS)}",
        )
    _check(
        arch.provenance is None or isinstance(arch.provenance, dict),
        f"{source}: provenance is not an object",
        "remove it or write the table with rexnet.save_arch",
    )
    _check(
        isinstance(arch.dropout, (int, float)) and 0 <= arch.dropout < 1,
        f"{source}: dropout={arch.dropout!r}",
        "use a number in [0, 1)",
    )
    prev = arch.stem_channels
    for i, block in enumerate(arch.blocks):
        _check(
            block.in_channels == prev,
            f"{source} block {i} takes {block.in_channels} channels but receives {prev}",
            "make each block's in_channels the previous out_channels (block 0: stem_channels)",
        )
        if block.se:
            _check(
                block.se_hidden(arch.se_reduction) > 0,
                f"{source} block {i}: SE would have 0 channels",
                "lower se_reduction or widen the block",
            )
        prev = block.out_channels
    return replace(arch, dropout=float(arch.dropout))


# What two tables may differ in and still build the same network: labels (the small-input mode is carried by
# the stem and block strides), where the table came from, and the classifier's dropout (identity at inference).
_NOT_STRUCTURE = ("format", "name", "provenance", "dropout", "small_input")


def network_diff(a: ArchSpec, b: ArchSpec, *, io: bool = True) -> list[str]:
    """Returns the fields in which the networks two tables build differ (e.g. 'stem_stride', 'blocks[3].stride',
    'blocks' for another block count); [] for the same network. Name, provenance, dropout and the small-input
    label are not compared; with `io=False` neither are in_chans and num_classes (a checkpoint loads into other
    ones by adapting the stem or replacing the classifier)."""
    skip = set(_NOT_STRUCTURE) | (set() if io else {"in_chans", "num_classes"})
    da, db = arch_to_dict(a), arch_to_dict(b)
    diff = [k for k in da.keys() | db.keys() if k not in skip and k != "blocks" and da.get(k) != db.get(k)]
    if len(a.blocks) != len(b.blocks):
        diff.append("blocks")
    else:
        for i, (x, y) in enumerate(zip(da["blocks"], db["blocks"])):
            diff += [f"blocks[{i}].{k}" for k in sorted(x.keys() | y.keys()) if x.get(k) != y.get(k)]
    return sorted(diff)


def budget_img_size(arch: ArchSpec) -> int | None:
    """Returns the image size a table was matched to a MACs budget at (its provenance's `budget`), else None."""
    size = ((arch.provenance or {}).get("budget") or {}).get("img_size")
    return size if _positive_int(size) else None


def save_arch(arch: ArchSpec, path: str | os.PathLike) -> Path:
    """Returns the path written: the table as indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(arch_to_dict(arch), indent=2) + "\n")


def load_arch(path: str | os.PathLike) -> ArchSpec:
    """Returns the ArchSpec stored in a JSON file written by `save_arch` (or by hand)."""
    path = Path(path)
    _check(path.is_file(), f"block table {path} does not exist", "check the path")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RexnetError(f"block table {path} is not valid JSON ({exc}); fix the file or re-save it") from None
    return arch_from_dict(data, source=f"block table {path}")
