"""Turns a StudyConfig into the table of random network configurations, one row per network."""

import math

import numpy as np
import pandas as pd

from .config import StudyConfig

# Columns that fix a network's tensor shapes: rows equal on these are built and analysed as one batch.
SHAPE_COLUMNS: tuple[str, ...] = ("kind", "d_in", "d_out", "n_samples", "depth", "spatial", "block_expansion")
CONFIG_COLUMNS: tuple[str, ...] = (
    "id",
    "kind",
    "nonlinearity",
    "d_in",
    "d_out",
    "expansion_ratio",
    "dimension_ratio",
    "depth",
    "n_samples",
    "n_over_d",
    "n_over_d_actual",
    "spatial",
    "block_expansion",
    "init",
    "input_dist",
    "norm",
    "seed",
)


def row_seed(study_seed: int, row_id: int) -> int:
    """Returns the 63-bit seed of one network, a function of (study seed, row id) only."""
    hi, lo = np.random.SeedSequence([study_seed, row_id]).generate_state(2, dtype=np.uint32)
    return int(((int(hi) << 32) | int(lo)) & (2**63 - 1))


def _balanced(rng: np.random.Generator, values, n: int) -> np.ndarray:
    """Returns n draws in which each value appears equally often (±1), in random order."""
    return rng.permutation(np.resize(np.asarray(values, dtype=object), n))


def stack_widths(d_in: int, d_out: int, depth: int) -> list[int]:
    """Returns the depth+1 channel widths of a stack growing geometrically from d_in to d_out."""
    r = d_out / d_in
    return [d_in] + [max(1, round(d_in * r ** (j / depth))) for j in range(1, depth)] + [d_out]


def sample_networks(config: StudyConfig) -> pd.DataFrame:
    """Returns the study's network table: one row per network, ordered by id, fully determined by config."""
    config = config.validate()  # the default study may leave out fmnist (see StudyConfig.validate)
    n, rng = config.n, np.random.default_rng(np.random.SeedSequence([config.seed, 0x5EED]))
    kind = _balanced(rng, config.kinds, n)
    nonlinearity = _balanced(rng, config.nonlinearities, n)
    d_in = _balanced(rng, config.d_in, n).astype(np.int64)
    ratio = _balanced(rng, config.ratio_grid(), n).astype(np.float64)
    n_over_d = _balanced(rng, config.n_over_d, n).astype(np.float64)
    init = _balanced(rng, config.inits, n)
    norm = _balanced(rng, config.norms, n)
    # Drawn after the older factors, so the rest of a study's table does not move when inputs are added.
    input_dist = _balanced(rng, config.input_dists, n)
    depth = np.where(kind == "stack", rng.choice(np.asarray(config.stack_depths or (2,)), n), 1).astype(np.int64)
    # Drawn last and only when several are asked for, so a study with one block expansion keeps its table.
    # Balanced over the block rows themselves, so every t gets the same share of each block kind's rows (±1).
    expansions = config.block_expansions()
    is_block = np.isin(kind, ["block", "block_conv", "stack"])
    expansion = np.full(n, expansions[0], dtype=np.int64)
    if len(expansions) > 1:
        expansion[is_block] = _balanced(rng, expansions, int(is_block.sum())).astype(np.int64)

    d_out = np.maximum(1, np.rint(d_in * ratio)).astype(np.int64)
    is_conv = kind != "linear"
    spatial = np.where(is_conv, config.spatial, 1).astype(np.int64)
    positions = spatial**2
    # N >= n_over_d·d_out samples: whole images for the conv kinds, single vectors for linear.
    n_images = np.array([math.ceil(a * b / p) for a, b, p in zip(n_over_d, d_out, positions)], dtype=np.int64)
    n_samples = np.maximum(n_images, 1) * positions
    table = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "kind": kind.astype(str),
            "nonlinearity": nonlinearity.astype(str),
            "d_in": d_in,
            "d_out": d_out,
            "expansion_ratio": d_out / d_in,
            "dimension_ratio": d_in / d_out,
            "depth": depth,
            "n_samples": n_samples,
            "n_over_d": n_over_d,
            # Whole maps round N up: for small conv layers the real N/d_out is several times the nominal one.
            "n_over_d_actual": n_samples / d_out,
            "spatial": spatial,
            "block_expansion": np.where(is_block, expansion, 0).astype(np.int64),
            "init": init.astype(str),
            "input_dist": input_dist.astype(str),
            "norm": norm.astype(str),
            "seed": np.array([row_seed(config.seed, i) for i in range(n)], dtype=np.int64),
        }
    )
    return table[list(CONFIG_COLUMNS)]
