"""Benchmark of the rank analyzer on 1,000 configurations of the default study, in one run.

  (a) naive:  build each network alone, then torch.linalg.matrix_rank (float32 SVD) one at a time
  (b) ours:   rankstudy.analyze (batched build + every metric, exact float32-tolerance ranks), one process;
      (b2) the same through run_study with one worker process per core, as `rankstudy sample` runs it
  (c) floor:  torch.linalg.eigvalsh alone on the same Gram matrices, batched per shape (float64, as the
      exact ranks need; float32 shown too)
Prints seconds and ratios, overall and per size band of d_out (< 128, 128–512, > 512).

    python benchmarks/bench_rank.py [--n 1000] [--seed 0]
"""
import argparse
import os
import time

import pandas as pd
import torch

from rankstudy import StudyConfig, analyze, build_features, rebuild_features, run_study, sample_networks
from rankstudy.sampling import SHAPE_COLUMNS

BANDS = [("d_out < 128", 0, 128), ("128–512", 128, 513), ("> 512", 513, 10**9)]


def naive(rows: pd.DataFrame) -> float:
    start = time.perf_counter()
    for _, row in rows.iterrows():
        torch.linalg.matrix_rank(rebuild_features(row))
    return time.perf_counter() - start


def ours(rows: pd.DataFrame) -> float:
    start = time.perf_counter()
    analyze(rows, torch.device("cpu"))
    return time.perf_counter() - start


def floor(rows: pd.DataFrame, dtype: torch.dtype) -> float:
    grams = []
    for _, group in rows.groupby(list(SHAPE_COLUMNS)):
        f = build_features(group).to(dtype)
        grams.append(f @ f.mT if f.shape[1] <= f.shape[2] else f.mT @ f)
    start = time.perf_counter()
    for g in grams:
        torch.linalg.eigvalsh(g)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample_networks(StudyConfig(n=args.n, seed=args.seed))
    print(f"{len(rows)} configs of the default study (seed {args.seed}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores")
    analyze(rows.head(20), torch.device("cpu"))  # warm-up

    header = f"{'band':<13}{'rows':>6}{'naive s':>9}{'ours s':>9}{'floor64 s':>10}{'floor32 s':>10}" \
             f"{'naive/ours':>12}{'ours/floor64':>14}{'ours/floor32':>14}"
    print(header)
    totals = [0.0] * 4
    for name, lo, hi in BANDS:
        band = rows[(rows.d_out >= lo) & (rows.d_out < hi)]
        if band.empty:
            continue
        t = [naive(band), ours(band), floor(band, torch.float64), floor(band, torch.float32)]
        totals = [a + b for a, b in zip(totals, t)]
        print(f"{name:<13}{len(band):>6}{t[0]:>9.2f}{t[1]:>9.2f}{t[2]:>10.2f}{t[3]:>10.2f}"
              f"{t[0] / t[1]:>12.2f}{t[1] / t[2]:>14.2f}{t[1] / t[3]:>14.2f}")
    t = totals
    print(f"{'overall':<13}{len(rows):>6}{t[0]:>9.2f}{t[1]:>9.2f}{t[2]:>10.2f}{t[3]:>10.2f}"
          f"{t[0] / t[1]:>12.2f}{t[1] / t[2]:>14.2f}{t[1] / t[3]:>14.2f}")

    workers = os.cpu_count() or 1
    start = time.perf_counter()
    run_study(StudyConfig(n=args.n, seed=args.seed), device="cpu", workers=workers, chunk_rows=100, progress=False)
    b2 = time.perf_counter() - start
    print(f"run_study with {workers} workers (incl. process start-up): {b2:.2f} s → naive/ours = {t[0] / b2:.2f}")
    if torch.cuda.is_available():
        gpu = run_study(StudyConfig(n=args.n, seed=args.seed), device="cuda", progress=False)  # warm-up
        start = time.perf_counter()
        gpu = run_study(StudyConfig(n=args.n, seed=args.seed), device="cuda", progress=False)
        g = time.perf_counter() - start
        print(f"cuda: {g:.2f} s → naive(cpu)/ours(cuda) = {t[0] / g:.1f}; {len(gpu)} rows")


if __name__ == "__main__":
    main()
