"""Width schedules of the channel study (paper §4, CVPR Table 3): profiles, their networks, and MACs matching.

The paper samples schedules c_i = a·f(i) + b over the block index i with f piecewise linear. Here a schedule is a
*profile* g_0 ≤ … ≤ g_{d-1} (mean 1) of one of three families, and its widths are c_i = round(s·g_i), with the
scale s chosen by `rexnet.variants.match_macs` so every network costs the budget within 2%:

- `linear`: g_i ∝ 1 + (G − 1)·i/(d − 1), one piece (the paper's ReXNet rule);
- `piecewise`: 2–3 linear pieces with random knots and random non-negative slopes (the paper's f);
- `stagewise`: 2–5 stages of equal width with random boundaries and steps (MobileNetV2's kind of schedule).

G = c_last/c_first is drawn log-uniform in [1, max_growth] for every family, so the families differ in shape,
not in how much they grow. Everything else is fixed (`schedule_arch`): a 16-channel stride-2 stem, inverted
bottlenecks with expansion 6 (the paper fixes it), SiLU after the expansion and ReLU6 after the depthwise conv
(ReXNet's block, no SE), stride 2 at blocks ⌊d/4⌋, ⌊d/2⌋, ⌊3d/4⌋ and a 320-channel penultimate conv.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from joblib import delayed
from tqdm.auto import tqdm

from rexnet.arch import ArchSpec, BlockSpec
from rexnet.errors import BudgetUnreachable, RexnetError

from ..errors import StudyError
from ..parallel import run_tasks
from .config import (
    EXPANSION,
    FAMILIES,
    MAX_DRAWS,
    MIN_WIDTH,
    PENULTIMATE_CHANNELS,
    SCHEDULE_COLUMNS,
    STEM_CHANNELS,
    ChannelStudyConfig,
)


def sample_profile(family: str, blocks: int, rng: np.random.Generator, max_growth: float) -> tuple[int, np.ndarray]:
    """Returns (pieces or stages, profile): a non-decreasing profile of `blocks` values with mean 1."""
    growth = math.exp(rng.uniform(0.0, math.log(max_growth)))
    i = np.arange(blocks, dtype=float)
    if family == "linear":
        pieces, g = 1, 1.0 + (growth - 1.0) * i / (blocks - 1)
    elif family == "piecewise":
        pieces = int(rng.integers(2, 4))
        knots = np.concatenate(
            [[0], np.sort(rng.choice(np.arange(1, blocks - 1), pieces - 1, replace=False)), [blocks - 1]]
        )
        values = 1.0 + np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.ones(pieces)))]) * (growth - 1.0)
        g = np.interp(i, knots, values)
    elif family == "stagewise":
        pieces = int(rng.integers(2, min(5, blocks) + 1))
        starts = np.sort(rng.choice(np.arange(1, blocks), pieces - 1, replace=False))
        levels = 1.0 + np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.ones(pieces - 1)))]) * (growth - 1.0)
        g = levels[np.searchsorted(starts, i, side="right")]
    else:
        raise StudyError(f"unknown schedule family {family!r}; use one of {', '.join(FAMILIES)}")
    return pieces, g / g.mean()


def strides(blocks: int) -> list[int]:
    """Returns each block's stride: 2 at blocks ⌊d/4⌋, ⌊d/2⌋, ⌊3d/4⌋ (with the stem, total stride 16)."""
    down = {blocks * k // 4 for k in (1, 2, 3)}
    return [2 if i in down else 1 for i in range(blocks)]


def schedule_widths(profile, scale: float) -> list[int]:
    """Returns the block widths round(scale·g_i), at least MIN_WIDTH (rounding keeps them non-decreasing)."""
    return [max(MIN_WIDTH, int(round(scale * g))) for g in profile]


def schedule_arch(widths: list[int], name: str = "channels") -> ArchSpec:
    """Returns the ArchSpec of a width schedule: fixed stem, strides, expansion 6 blocks and head (module doc)."""
    ins = [STEM_CHANNELS, *widths[:-1]]
    blocks = tuple(
        BlockSpec(i, o, EXPANSION, s, False, act="silu", dw_act="relu6")
        for i, o, s in zip(ins, widths, strides(len(widths)))
    )
    return ArchSpec(
        name=name,
        stem_channels=STEM_CHANNELS,
        blocks=blocks,
        penultimate_channels=PENULTIMATE_CHANNELS,
        stem_act="silu",
        penultimate_act="silu",
    )


def architecture(blocks: int) -> dict:
    """Returns the fixed parts of every network of `blocks` blocks (as metadata.json records them)."""
    return {
        "stem": STEM_CHANNELS,
        "expansion": EXPANSION,
        "penultimate": PENULTIMATE_CHANNELS,
        "strides": strides(blocks),
        "min_width": MIN_WIDTH,
        "block": "silu/relu6, no SE",
    }


def _shape_stats(widths: list[int]) -> tuple[float, float, float]:
    """Returns (slope in channels per block, c_last/c_first, R² of a straight line through the widths)."""
    i = np.arange(len(widths), dtype=float)
    w = np.asarray(widths, dtype=float)
    slope, intercept = np.polyfit(i, w, 1)
    total = float(((w - w.mean()) ** 2).sum())
    r2 = 1.0 if total == 0 else 1.0 - float(((w - (slope * i + intercept)) ** 2).sum()) / total
    return float(slope), float(w[-1] / w[0]), r2


def schedule_row(cfg: dict, config_id: int, in_chans: int, num_classes: int) -> dict:
    """Returns one config's schedule row (SCHEDULE_COLUMNS): its family, widths scaled to the MACs budget, costs.

    Config i draws from its own generator (seed, i), so a study of n configs is the first n of a larger one.
    """
    from rexnet.summary import model_costs  # noqa: PLC0415 - loads torchvision (~3 s); the report side must not
    from rexnet.variants import match_macs  # noqa: PLC0415 - loads torchvision (~3 s); the report side must not

    study = ChannelStudyConfig.from_dict(cfg)
    family = FAMILIES[config_id % len(FAMILIES)]
    rng = np.random.default_rng((study.seed, config_id))
    name = f"ch{config_id:04d}"
    # A step schedule moves whole stages by a channel at once, so at small budgets its MACs can jump over the
    # ±2% window; such a draw is replaced by the next one from the config's own generator (`draws` counts them).
    for draws in range(1, MAX_DRAWS + 1):
        pieces, profile = sample_profile(family, study.blocks, rng, study.max_growth)
        try:
            scale, arch, macs = match_macs(
                lambda s, g=profile: schedule_arch(schedule_widths(g, s), name),
                study.macs,
                img_size=study.img_size,
                num_classes=num_classes,
                in_chans=in_chans,
                lo=1.0,
                hi=4096.0,
            )
            break
        except BudgetUnreachable as exc:
            if draws == MAX_DRAWS:
                raise StudyError(f"config {config_id}: {exc}") from None
        except RexnetError as exc:
            raise StudyError(f"config {config_id}: {exc}") from None
    widths = [b.out_channels for b in arch.blocks]
    params, _ = model_costs(arch, study.img_size, num_classes=num_classes, in_chans=in_chans)
    slope, growth, r2 = _shape_stats(widths)
    return {
        "config_id": config_id,
        "family": family,
        "pieces": pieces,
        "draws": draws,
        "widths": "-".join(map(str, widths)),
        "scale": scale,
        "params": params,
        "macs": macs,
        "slope": slope,
        "growth": growth,
        "linearity_r2": r2,
    }


def sample_schedules(
    cfg: ChannelStudyConfig,
    *,
    in_chans: int,
    num_classes: int,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Returns one row per config (SCHEDULE_COLUMNS), by config id; the MACs matching runs as parallel tasks
    (`rankstudy.parallel`), as it counts each candidate's MACs with torch.utils.flop_counter (~0.15 s each)."""
    jobs = (delayed(schedule_row)(cfg.to_dict(), cid, in_chans, num_classes) for cid in range(cfg.n))
    rows = list(
        tqdm(
            run_tasks(jobs, workers, scheduler), total=cfg.n, desc="schedules", disable=not progress, dynamic_ncols=True
        )
    )
    return pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS)).sort_values("config_id").reset_index(drop=True)
