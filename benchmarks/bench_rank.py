"""Benchmark of the rank analyzer on the default study, in one run: ratios, measured side by side.

  (a) naive   for each network: build it alone (`build_features` of one row), `torch.linalg.matrix_rank`
              (float32 SVD); one process, on torch's default threads or on one thread, whichever is faster
              on the first 200 rows (on a shared CPU, idle-spinning threads can make the default slower)
  (b) ours    `run_study` on the CPU with one worker process per core, as `rankstudy sample` runs it
              (process start-up included); its wall time and peak memory (all processes) are printed too
  (b1) ours   `analyze` in this process on one thread: build + float64 Gram + eigen-solve + every metric
  (c) floor   the bare linear algebra of (b1) on the same feature matrices (built beforehand, untimed):
              float64 conversion, Gram product and `torch.linalg.eigvalsh`, one batched call each per shape,
              on one thread
Goals (issue #14): a/b ≥ 4 on the default 10k study, b1/c ≤ 1.5 (b1 and c use the same single core).
On a shared machine the seconds are noisy; the ratios are what each run reports.

    python benchmarks/bench_rank.py               # the default 10k study, seed 0 (several minutes)
    python benchmarks/bench_rank.py --n 2000      # a quicker reading on the first 2,000 rows' configs
"""
import argparse
import os
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rankstudy import StudyConfig, analyze, build_features, run_study, sample_networks
from rankstudy.batched import single_thread
from rankstudy.sampling import SHAPE_COLUMNS

FLOOR_BATCH_ELEMENTS = 2**24  # features per floor batch (elements), to bound memory


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


class PeakMemory:
    """Samples the summed resident memory of this process and its descendants (Linux /proc) while open."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def _tree_rss() -> int:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid = int(stat.parent.name)
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                status = (stat.parent / "status").read_text()
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(pid)
            rss[pid] = next((int(line.split()[1]) * 1024 for line in status.splitlines()
                             if line.startswith("VmRSS:")), 0)
        total, todo = 0, [os.getpid()]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            todo += children.get(pid, [])
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._tree_rss())

    def __enter__(self) -> "PeakMemory":
        self.peak = self._tree_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def naive(frames: list) -> None:
    for frame in tqdm(frames, desc="(a) naive", leave=False, unit="net"):
        torch.linalg.matrix_rank(build_features(frame)[0])


def floor_and_batches(rows) -> float:
    """Returns the seconds of the bare float64 Gram + eigen-solve on every row's features (one thread)."""
    total = 0.0
    groups = list(rows.groupby(list(SHAPE_COLUMNS)))
    for _, group in tqdm(groups, desc="(c) floor", leave=False, unit="shape"):
        first = group.iloc[0]
        per_batch = max(1, FLOOR_BATCH_ELEMENTS // int(first.d_out * first.n_samples))
        for start in range(0, len(group), per_batch):
            f = build_features(group.iloc[start:start + per_batch])
            with single_thread():
                t0 = time.perf_counter()
                f64 = f.to(torch.float64)
                gram = f64 @ f64.mT if f.shape[1] <= f.shape[2] else f64.mT @ f64
                torch.linalg.eigvalsh(gram)
                total += time.perf_counter() - t0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=StudyConfig().n, help="rows of the default study (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = StudyConfig(n=args.n, seed=args.seed)
    rows = sample_networks(config)
    workers = os.cpu_count() or 1
    print(f"{len(rows)} configs of the default study (seed {args.seed}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores")
    analyze(rows.head(50), torch.device("cpu"))  # warm-up

    frames = [rows.iloc[i:i + 1] for i in range(len(rows))]
    default_threads = torch.get_num_threads()
    with single_thread():
        one = timed(naive, frames[:200])
    naive_threads = 1 if one < timed(naive, frames[:200]) else default_threads
    torch.set_num_threads(naive_threads)
    t_naive = timed(naive, frames)
    torch.set_num_threads(default_threads)
    with PeakMemory() as mem:
        t_ours = timed(run_study, config, "cpu", None, workers=workers, progress=False)
    with single_thread():
        t_one = timed(analyze, rows, torch.device("cpu"))
    t_floor = floor_and_batches(rows)

    print(f"(a)  naive loop, 1 process, {naive_threads} thread(s):         {t_naive:8.1f} s")
    print(f"(b)  run_study, {workers} worker processes:           {t_ours:8.1f} s   peak memory {mem.peak / 2**30:.2f} GiB")
    print(f"(b1) analyze, 1 process, 1 thread:              {t_one:8.1f} s")
    print(f"(c)  floor: float64 Gram + eigvalsh, 1 thread:  {t_floor:8.1f} s")
    print(f"a/b  = {t_naive / t_ours:5.2f}   (goal ≥ 4)")
    print(f"a/b1 = {t_naive / t_one:5.2f}   (one core against the naive loop on all cores)")
    print(f"b1/c = {t_one / t_floor:5.2f}   (goal ≤ 1.5)")
    if torch.cuda.is_available():
        run_study(StudyConfig(n=200, seed=args.seed), "cuda", progress=False)  # warm-up
        t_gpu = timed(run_study, config, "cuda", None, progress=False)
        print(f"run_study on {torch.cuda.get_device_name()}: {t_gpu:.1f} s → a/this = {t_naive / t_gpu:.1f}")


if __name__ == "__main__":
    main()
