"""Synthetic results tables with a known answer, for the statistics of plots and principles."""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from rankstudy.findings.measures import MEASURES
from rankstudy.store import SCHEMA_VERSION, write_table

GRID = np.geomspace(0.5, 20.0, 16)
FACTOR_LEVELS = list(itertools.product((1.0, 2.0), ("kaiming", "unit"), ("none", "bn")))


def synthetic_table(
    value,
    kinds=("linear", "depthwise", "block", "stack"),
    nonlinearities=("identity", "relu", "relu6", "elu", "silu"),
    reps: int = 8,
    d_in: int = 64,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) with every measure column = value(row) (+ noise, clipped to [0, 1]).

    Every (kind, nonlinearity, grid ratio) gets `reps` rows cycling through the full factorial of
    n_over_d × init × norm, so each factor level holds rows of every group. `value` receives a dict with
    kind, nonlinearity, expansion_ratio, depth, n_over_d, init, norm and the measure column name, and
    returns a float.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for kind, nl, r in itertools.product(kinds, nonlinearities, GRID):
        d_out = max(1, round(d_in * r))
        for i in range(reps):
            n_over_d, init, norm = FACTOR_LEVELS[i % len(FACTOR_LEVELS)]
            rows.append(
                {
                    "id": len(rows),
                    "kind": kind,
                    "nonlinearity": nl,
                    "d_in": d_in,
                    "d_out": d_out,
                    "expansion_ratio": d_out / d_in,
                    "dimension_ratio": d_in / d_out,
                    "depth": 2 + i % 3 if kind == "stack" else 1,
                    "n_samples": int(n_over_d * d_out),
                    "n_over_d": n_over_d,
                    "spatial": 1,
                    "block_expansion": 6,
                    "init": init,
                    "input_dist": "gaussian",
                    "norm": norm,
                    "seed": i,
                }
            )
    table = pd.DataFrame(rows)
    for m in MEASURES.values():
        base = np.array([value({**row, "measure": m.name}) for row in rows], dtype=float)
        table[m.column] = np.clip(base + noise * rng.standard_normal(len(base)), 0.0, 1.0)
    table["rank"] = np.rint(table["normalized_rank"] * table["d_out"]).astype(int)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "n_rows": len(table),
        "command": "synthetic",
        "config": {
            "ratio_min": 0.5,
            "ratio_max": 20.0,
            "n_ratios": 16,
            "kinds": list(kinds),
            "nonlinearities": list(nonlinearities),
            "d_in": [d_in],
            "n_over_d": [1.0, 2.0],
            "inits": ["kaiming", "unit"],
            "norms": ["none", "bn"],
            "input_dist": "gaussian",
        },
        "versions": {},
    }
    return table, meta


def write_study(path: Path, table: pd.DataFrame, meta: dict) -> Path:
    """Returns `path` after writing `table` and `meta` there as a study directory."""
    path.mkdir(parents=True, exist_ok=True)
    write_table(path / "results.parquet", table)
    (path / "metadata.json").write_text(json.dumps(meta))
    return path
