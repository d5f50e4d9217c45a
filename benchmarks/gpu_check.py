"""Checks the batched analyzer on a device against the CPU, in one call: time, ratio to the naive loop, ranks.

  1. runs the default study (--n rows, --seed) on --device after a small warm-up, timed
  2. recomputes a random sample of its rows on the CPU (`analyze`) and compares: every rank column must be
     equal; the float metrics are reported by their largest relative difference
  3. times the naive per-network loop (build one network, `torch.linalg.matrix_rank`) on a random sample of
     rows, on the CPU (torch's default threads) and on the device, and scales it to --n rows
Prints one summary line per item and a final JSON line; exits 1 if any rank differs, 2 on bad input.

    python benchmarks/gpu_check.py --device cuda                 # what benchmarks/gpu_check.sh runs
    python benchmarks/gpu_check.py --device cpu --n 300 --sample 40 --naive-rows 20   # the logic, on a CPU
"""

import argparse
import json
import sys
import time

import numpy as np
import torch

from rankstudy import StudyConfig, StudyError, analyze, build_features, run_study, sample_networks
from rankstudy.rank import metric_columns
from rexnet.device import resolve_device
from rexnet.errors import RexnetError


def naive_seconds(frames: list, device: torch.device) -> float:
    start = time.perf_counter()
    for frame in frames:
        torch.linalg.matrix_rank(build_features(frame, device)[0])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def check(n: int, seed: int, device: str, sample: int, naive_rows: int) -> dict:
    dev = resolve_device(device)
    config = StudyConfig(n=n, seed=seed)
    run_study(StudyConfig(n=min(n, 200), seed=seed + 1), str(dev), progress=False)  # warm-up: kernels, caches
    start = time.perf_counter()
    table = run_study(config, str(dev), progress=False)
    study_s = time.perf_counter() - start

    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    cpu = analyze(sample_networks(config).iloc[ids], torch.device("cpu"))
    ours = table.iloc[ids].reset_index(drop=True)
    ranks = [c for c in metric_columns() if c.startswith("rank")]
    floats = [c for c in metric_columns() if not c.startswith("rank") and not c.startswith("normalized_rank")]
    mismatched = sorted({int(i) for c in ranks for i in ours.id[ours[c].to_numpy() != cpu[c].to_numpy()]})
    rel = max(float(np.max(np.abs(ours[c] - cpu[c]) / np.maximum(np.abs(cpu[c]), 1e-300))) for c in floats)

    rows = sample_networks(config)
    frames = [rows.iloc[i : i + 1] for i in np.sort(rng.choice(n, size=min(naive_rows, n), replace=False))]
    naive_cpu = naive_seconds(frames, torch.device("cpu")) * n / len(frames)
    naive_dev = naive_cpu if dev.type == "cpu" else naive_seconds(frames, dev) * n / len(frames)
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "n": n,
        "seed": seed,
        "study_s": round(study_s, 2),
        "naive_cpu_s_scaled": round(naive_cpu, 1),
        "naive_device_s_scaled": round(naive_dev, 1),
        "ratio_naive_cpu": round(naive_cpu / study_s, 2),
        "ratio_naive_device": round(naive_dev / study_s, 2),
        "naive_rows_timed": len(frames),
        "compared_rows": len(ids),
        "rank_mismatches": len(mismatched),
        "mismatched_ids": mismatched[:20],
        "max_rel_diff_float_metrics": rel,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=StudyConfig().n)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=1000, help="rows recomputed on the CPU and compared")
    parser.add_argument("--naive-rows", type=int, default=300, help="rows the naive loop is timed on")
    args = parser.parse_args()
    if min(args.n, args.sample, args.naive_rows) < 1:
        print("error: --n, --sample and --naive-rows must be >= 1", file=sys.stderr)
        return 2
    try:
        r = check(args.n, args.seed, args.device, args.sample, args.naive_rows)
    except (StudyError, RexnetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"study of {r['n']} rows on {r['device']} ({r['device_name']}): {r['study_s']:.1f} s")
    print(
        f"naive loop (scaled from {r['naive_rows_timed']} rows): CPU {r['naive_cpu_s_scaled']:.0f} s → "
        f"{r['ratio_naive_cpu']:.1f}×; on {r['device']} {r['naive_device_s_scaled']:.0f} s → "
        f"{r['ratio_naive_device']:.1f}×"
    )
    print(
        f"ranks vs CPU on {r['compared_rows']} rows: {r['rank_mismatches']} rows differ "
        f"{r['mismatched_ids'] or ''}; float metrics max relative difference {r['max_rel_diff_float_metrics']:.2e}"
    )
    print(json.dumps(r))
    return 1 if r["rank_mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
