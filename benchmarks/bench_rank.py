"""Benchmark of the rank analyzer on the default study, in one run: ratios, measured side by side.

  (a) naive   for each network: build it alone (`build_features` of one row), `torch.linalg.matrix_rank`
              (float32 SVD); one process on one thread, like (b1): on a shared CPU torch's default threads
              spin idle and made this loop 4× slower in one run, which no ratio should count in our favour
  (b1) ours   `analyze` in this process on one thread: build + float64 Gram + eigen-solve + every metric
  (c) floor   the bare linear algebra of (b1) on the same feature matrices (built beforehand, untimed):
              float64 conversion, Gram product and `torch.linalg.eigvalsh`, one batched call each per shape,
              on one thread
  (b) ours    `rankstudy sample` (the CLI, a subprocess) on the CPU with one worker process per core, writing
              its table to a temporary directory; its wall time and peak memory (PSS summed over its processes)
(a), (b1) and (c) run interleaved, study chunk by study chunk (the chunks `run_study` uses, so batches are
the same), so that load from other jobs on a shared machine hits them alike; (b) runs after them.
Goals (issue #14): a/b ≥ 4 on the default 10k study, b1/c ≤ 1.5 (b1 and c use the same single core).

    python benchmarks/bench_rank.py               # the default 10k study, seed 0 (4–30 minutes on 2 shared cores)
    python benchmarks/bench_rank.py --n 2000      # a quicker reading on a 2,000-row study
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from rankstudy import StudyConfig, analyze, build_features, run_study, sample_networks
from rankstudy.study import plan_chunks
from rankstudy.batched import single_thread
from rankstudy.sampling import SHAPE_COLUMNS

FLOOR_BATCH_ELEMENTS = 2**24  # features per floor batch (elements), to bound memory


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


class PeakMemory:
    """Samples the summed memory (PSS) of process `root` and its descendants (Linux /proc) while open."""

    def __init__(self, root: int, interval: float = 0.1):
        self.root, self.interval, self.peak, self._stop = root, interval, 0, threading.Event()

    def _tree_rss(self) -> int:
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(stat.parent.name))
        total, todo = 0, [self.root]
        while todo:
            pid = todo.pop()
            total += self._pss(pid)
            todo += children.get(pid, [])
        return total

    @staticmethod
    def _pss(pid: int) -> int:
        """Proportional set size: shared library pages count once across the processes, not once each."""
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            return 0
        return next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)

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
    for frame in frames:
        torch.linalg.matrix_rank(build_features(frame)[0])


def floor(rows) -> float:
    """Returns the seconds of the bare float64 Gram + eigen-solve on every row's features (one thread)."""
    total = 0.0
    for _, group in rows.groupby(list(SHAPE_COLUMNS)):
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


def cli_study(n: int, seed: int, workers: int) -> tuple[float, int]:
    """Returns the wall time and peak memory (bytes, all processes) of `rankstudy sample` on the CPU."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "rankstudy", "sample", "--n", str(n), "--seed", str(seed),
                                 "--device", "cpu", "--workers", str(workers), "--quiet", "--out", out])
        with PeakMemory(proc.pid) as mem:
            if proc.wait() != 0:
                raise SystemExit(f"rankstudy sample failed with exit code {proc.returncode}")
        return time.perf_counter() - start, mem.peak


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

    t_naive = t_one = t_floor = 0.0
    by_id = rows.set_index("id", drop=False)
    for chunk in tqdm(plan_chunks(rows), desc="(a), (b1), (c) by chunk", unit="chunk"):
        part = by_id.loc[chunk].reset_index(drop=True)
        frames = [part.iloc[i:i + 1] for i in range(len(part))]
        with single_thread():
            t_naive += timed(naive, frames)
            t_one += timed(analyze, part, torch.device("cpu"))
        t_floor += floor(part)
    t_ours, peak = cli_study(args.n, args.seed, workers)

    print(f"(a)  naive loop, 1 process, 1 thread:           {t_naive:8.1f} s")
    print(f"(b1) analyze, 1 process, 1 thread:              {t_one:8.1f} s")
    print(f"(c)  floor: float64 Gram + eigvalsh, 1 thread:  {t_floor:8.1f} s")
    print(f"(b)  rankstudy sample, {workers} worker processes:   {t_ours:8.1f} s   peak memory {peak / 2**30:.2f} GiB")
    print(f"a/b  = {t_naive / t_ours:5.2f}   (goal ≥ 4; naive loop on one core, the study on all)")
    print(f"a/b1 = {t_naive / t_one:5.2f}   (naive loop and analyze, one core each)")
    print(f"b1/c = {t_one / t_floor:5.2f}   (goal ≤ 1.5)")
    if torch.cuda.is_available():
        run_study(StudyConfig(n=200, seed=args.seed), "cuda", progress=False)  # warm-up
        t_gpu = timed(run_study, config, "cuda", None, progress=False)
        print(f"run_study on {torch.cuda.get_device_name()}: {t_gpu:.1f} s → a/this = {t_naive / t_gpu:.1f}")


if __name__ == "__main__":
    main()
