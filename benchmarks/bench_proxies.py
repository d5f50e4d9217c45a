"""Benchmark of the proxy harness: one architecture of each size, the whole proxy set vs one forward + backward.

For each cell below (from the cheapest, a parameter-free cell, to the most expensive, all 3×3 convs) the network
is built at initialisation and, on one thread and the default batch (64 fmnist-shaped gaussian images), timed:

  (base)  one forward + one backward of the cross-entropy loss of the batch, train mode (what one training step
          costs without the optimiser): the better of `--repeats` timings
  (all)   `score_network` with every registered proxy: the better of `--repeats` timings, with the time of
          each pass
  ratio   all / base (goal of issue #20: ≤ 2)

Base and all are timed interleaved (base, all, base, all, ...) so that load from other jobs hits them alike. The
machine's load average is printed with the figures: on a shared machine they are upper bounds. The FLOP counter's
one-off start-up (seconds, once per process) is paid before timing, as the harness's workers do.
Then an estimate of the committed experiment: the mean of `all` over a seeded sample of `--sample` cells of
archs.csv (the experiment's own seed) × 3,000 cells / 2 workers.

    python benchmarks/bench_proxies.py                 # ~2-4 minutes on 2 idle cores
    python benchmarks/bench_proxies.py --sample 0      # the four sizes only
"""

import argparse
import os
import time

import numpy as np
import torch

from rankstudy.batched import single_thread
from rankstudy.proxies import build_network, cell_string, get_space, list_proxies, score_network
from rankstudy.proxies.run import _warm_up, sample_ids

SIZES = {
    "parameter-free (skip/pool/none)": [
        "skip_connect",
        "avg_pool_3x3",
        "none",
        "skip_connect",
        "avg_pool_3x3",
        "skip_connect",
    ],
    "all nor_conv_1x1": ["nor_conv_1x1"] * 6,
    "mixed (2×3x3, 2×1x1)": [
        "nor_conv_3x3",
        "nor_conv_1x1",
        "skip_connect",
        "nor_conv_3x3",
        "nor_conv_1x1",
        "avg_pool_3x3",
    ],
    "all nor_conv_3x3": ["nor_conv_3x3"] * 6,
}


def base_step(net, x, y) -> float:
    start = time.perf_counter()
    net.train()
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    net.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def time_arch(arch: str, x, y, repeats: int) -> dict:
    net = build_network(arch, seed=0)
    base, full, passes = [], [], None
    with single_thread():
        for _ in range(repeats):
            base.append(base_step(net, x, y))
            start = time.perf_counter()
            _, seconds = score_network(net, x, y)
            full.append(time.perf_counter() - start)
            if full[-1] == min(full):
                passes = {k.removeprefix("pass."): v for k, v in seconds.items() if k.startswith("pass.")}
    return {"base": min(base), "all": min(full), "passes": passes, "params": sum(p.numel() for p in net.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample", type=int, default=12, help="cells of archs.csv timed for the experiment estimate")
    ap.add_argument("--experiment-n", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.batch, 3, 32, 32, generator=gen), torch.randint(0, 10, (args.batch,), generator=gen)
    _warm_up()
    print(
        f"{len(list_proxies())} proxies, batch {args.batch}, one thread; load average {os.getloadavg()} "
        f"on {os.cpu_count()} cores"
    )
    print(f"{'cell':34s} {'params':>9s} {'fwd+bwd s':>9s} {'all s':>7s} {'ratio':>6s}  passes (s)")
    for label, ops in SIZES.items():
        r = time_arch(cell_string(ops), x, y, args.repeats)
        passes = ", ".join(f"{k} {v:.3f}" for k, v in r["passes"].items() if k != "total")
        print(f"{label:34s} {r['params']:9d} {r['base']:9.3f} {r['all']:7.3f} {r['all'] / r['base']:6.2f}  {passes}")
    if args.sample:
        space = get_space()
        ids = sample_ids(space.ids(), args.experiment_n, seed=0)
        picked = np.random.default_rng(1).choice(ids, size=args.sample, replace=False)
        times = [time_arch(space.arch(int(i)), x, y, 1)["all"] for i in picked]
        mean = float(np.mean(times))
        hours = mean * args.experiment_n / args.workers / 3600
        print(
            f"experiment estimate: {args.sample} sampled cells, mean {mean:.2f} s (min {min(times):.2f}, max "
            f"{max(times):.2f}) per cell → {args.experiment_n} cells on {args.workers} workers ≈ {hours:.2f} h "
            f"(load average now {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
