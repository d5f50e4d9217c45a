"""Benchmark of the rank analyzer on 1,000 configurations of the default study, in one run.

Pipeline (build the networks + measure):
  (a) naive:  build each network alone, then torch.linalg.matrix_rank (float32 SVD) one at a time
  (b) ours:   rankstudy.analyze: batched build + every metric (exact float32-tolerance ranks), one process
Rank part only (on the same, prebuilt features):
  (b') ours:  rankstudy.rank_metrics (float64 Gram + eigenvalues + all metrics)
  (c) floor:  torch.linalg.eigvalsh alone on the same float64 Gram matrices — the faster of one batched
      call per shape (default threads) and one matrix at a time on one thread; float32 shown too
Prints seconds and ratios, overall and per size band of d_out (< 128, 128–512, > 512), then the
full `run_study` with one worker process per core (and on CUDA, where there is one).

    python benchmarks/bench_rank.py [--n 1000] [--seed 0]
"""
import argparse
import os
import time

import pandas as pd
import torch

from rankstudy import StudyConfig, analyze, build_features, rank_metrics, rebuild_features, run_study, sample_networks
from rankstudy.batched import single_thread
from rankstudy.sampling import SHAPE_COLUMNS

BANDS = [("d_out < 128", 0, 128), ("128–512", 128, 513), ("> 512", 513, 10**9)]


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def naive(rows: pd.DataFrame) -> None:
    for _, row in rows.iterrows():
        torch.linalg.matrix_rank(rebuild_features(row))


def eig_floor(grams: list[torch.Tensor]) -> float:
    batched = timed(lambda: [torch.linalg.eigvalsh(g) for g in grams])
    with single_thread():
        one_by_one = timed(lambda: [torch.linalg.eigvalsh(m.clone()) for g in grams for m in g])
    return min(batched, one_by_one)


def band_times(rows: pd.DataFrame) -> list[float]:
    features = [build_features(g) for _, g in rows.groupby(list(SHAPE_COLUMNS))]
    grams = {dt: [f.to(dt) @ f.to(dt).mT if f.shape[1] <= f.shape[2] else f.to(dt).mT @ f.to(dt) for f in features]
             for dt in (torch.float64, torch.float32)}
    return [timed(naive, rows), timed(analyze, rows, torch.device("cpu")),
            timed(lambda: [rank_metrics(f) for f in features]),
            eig_floor(grams[torch.float64]), eig_floor(grams[torch.float32])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = sample_networks(StudyConfig(n=args.n, seed=args.seed))
    print(f"{len(rows)} configs of the default study (seed {args.seed}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores")
    analyze(rows.head(20), torch.device("cpu"))  # warm-up

    print(f"{'band':<13}{'rows':>6}{'(a) naive':>11}{'(b) ours':>10}{'a/b':>7}   |{'(b′) rank':>11}"
          f"{'(c) eig64':>11}{'b′/c':>7}{'eig32':>8}{'b′/eig32':>10}")
    totals = [0.0] * 5

    def line(name: str, n: int, t: list[float]) -> None:
        print(f"{name:<13}{n:>6}{t[0]:>10.2f}s{t[1]:>9.2f}s{t[0] / t[1]:>7.2f}   |{t[2]:>10.2f}s"
              f"{t[3]:>10.2f}s{t[2] / t[3]:>7.2f}{t[4]:>7.2f}s{t[2] / t[4]:>10.2f}")

    for name, lo, hi in BANDS:
        band = rows[(rows.d_out >= lo) & (rows.d_out < hi)]
        if not band.empty:
            t = band_times(band)
            totals = [a + b for a, b in zip(totals, t)]
            line(name, len(band), t)
    line("overall", len(rows), totals)

    workers = os.cpu_count() or 1
    b2 = timed(run_study, StudyConfig(n=args.n, seed=args.seed), "cpu", None, workers=workers, chunk_rows=100,
               progress=False)
    print(f"run_study, {workers} worker processes (incl. start-up): {b2:.2f}s → (a)/this = {totals[0] / b2:.2f}")
    if torch.cuda.is_available():
        cfg = StudyConfig(n=args.n, seed=args.seed)
        run_study(cfg, device="cuda", progress=False)  # warm-up
        g = timed(run_study, cfg, "cuda", None, progress=False)
        print(f"run_study on {torch.cuda.get_device_name()}: {g:.2f}s → (a)/this = {totals[0] / g:.1f}")


if __name__ == "__main__":
    main()
