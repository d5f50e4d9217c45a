"""Checks every row of a results table against an independent float64 SVD of its rebuilt features.

For each row: rebuild F (rankstudy.rebuild_features), take torch.linalg.svdvals of F in float64, count
σ > σ_max · max(m, n) · eps_float32 (and σ > rtol · σ_max), and compare with the table; the effective
rank is compared as a relative difference. Writes results/exactness.json.

    python experiments/exactness.py [--in results/study] [--out results/exactness.json] [--workers CORES]
"""

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch
from joblib import Parallel, delayed

from rankstudy import load_results, rebuild_features
from rankstudy.store import write_json
from rexnet.io import versions
from rexnet.rank_tolerance import float32_rtol


def check(rows: pd.DataFrame) -> pd.DataFrame:
    torch.set_num_threads(1)
    out = []
    for _, row in rows.iterrows():
        f = rebuild_features(row).double()
        s = torch.linalg.svdvals(f)
        tol = s[0] * float32_rtol(*f.shape)
        p = (s / s.sum()).clamp_min(1e-300)
        effective = torch.exp(-(p * p.log()).sum()).item()
        out.append(
            {
                "id": row["id"],
                "svd_rank": int((s > tol).sum()),
                "svd_rank_rtol_1e-3": int((s > 1e-3 * s[0]).sum()),
                "svd_rank_rtol_1e-2": int((s > 1e-2 * s[0]).sum()),
                "svd_effective_rank": effective,
                # distance of the nearest singular value to the tolerance, in units of the tolerance
                "margin": (((s - tol).abs().min()) / tol).item(),
            }
        )
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in", dest="src", type=Path, default=Path("results/study"))
    parser.add_argument("--out", type=Path, default=Path("results/exactness.json"))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    table, meta = load_results(args.src)
    start = time.perf_counter()
    by_size, k = table.sort_values("d_out", ascending=False), 8 * args.workers
    parts = [by_size.iloc[i::k] for i in range(k)]  # interleaved, so every part gets large and small rows
    ref = pd.concat(Parallel(n_jobs=args.workers)(delayed(check)(p) for p in parts))
    merged = table.merge(ref, on="id")
    diff = (merged["rank"] - merged["svd_rank"]).abs()
    report = {
        "source": str(args.src),
        "source_command": meta.get("command"),
        "n_rows": len(merged),
        "rank_equal_fraction": float((diff == 0).mean()),
        "rank_max_abs_diff": int(diff.max()),
        "rank_differing_rows": merged.loc[
            diff > 0, ["id", "kind", "nonlinearity", "d_out", "rank", "svd_rank", "margin"]
        ].to_dict("records"),
        "rank_rtol_1e-3_equal_fraction": float((merged["rank_rtol_1e-3"] == merged["svd_rank_rtol_1e-3"]).mean()),
        "rank_rtol_1e-2_equal_fraction": float((merged["rank_rtol_1e-2"] == merged["svd_rank_rtol_1e-2"]).mean()),
        "effective_rank_max_rel_diff": float(
            ((merged["effective_rank"] - merged["svd_effective_rank"]).abs() / merged["svd_effective_rank"]).max()
        ),
        "reference": "torch.linalg.svdvals of the rebuilt float32 features in float64",
        "command": "python experiments/exactness.py "
        + " ".join(f"--{k} {v}" for k, v in [("in", args.src), ("out", args.out), ("workers", args.workers)]),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "versions": versions(),
    }
    write_json(args.out, report)
    print(
        f"ranks equal for {report['rank_equal_fraction']:.4%} of {len(merged)} rows, max |diff| "
        f"{report['rank_max_abs_diff']}; effective rank max rel diff {report['effective_rank_max_rel_diff']:.2e} "
        f"→ {args.out}"
    )


if __name__ == "__main__":
    main()
