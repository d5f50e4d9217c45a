"""The committed proxy experiment: 3,000 seeded random NAS-Bench-201 cells scored with every proxy, and the report.

A seeded random sample (seed 0) of 3,000 of the 15,625 cells of archs.csv (about half of them, ~1,500, have
accuracies in the shipped table), each network built at initialisation from seed 0 (the same seed for every
cell, NAS-Bench-201's macro net with 10 classes), one batch of 64 Fashion-MNIST images (padded to 32×32,
replicated to 3 channels, seed 0) and every registered proxy (`rankstudy proxies --list`), on 2 worker
processes with one thread each. Then `rankstudy proxies-report` on the scored cells with accuracies.

Sizing (benchmarks/bench_proxies.py, 2026-12-01, on this 2-core machine shared with other jobs): the whole
proxy set took 4.2 s per cell on average over 8 cells of this sample at load average 2 (9.9 s at load 5-7),
2.7-3.5× one forward + backward, on one thread; on 2 workers 3,000 cells ≈ 3,000 × 4.2 s / 2 ≈ 1.8 h (≈ 4.1 h
at load 5-7), within the 3-hour budget only if the cores are not shared. It resumes: scores live in
RUNS (one small file per cell, written atomically), and a rerun of the same command scores only the missing
cells; `--max-units N` stops a sitting after N cells. Every sitting copies the table of what is finished and its
report to RESULTS; while cells are missing, metadata.json says `"partial": true` and REPORT.md opens with
"Partial: k of 3000". Usage:

    python experiments/proxy_benchmark.py                              # all 3,000 (or what is left of them)
    python experiments/proxy_benchmark.py --max-units 1000             # one sitting (~0.6 h, ~1.4 h at load 5-7)
    python experiments/proxy_benchmark.py --n 40 --runs /tmp/px_runs --results /tmp/px_results   # a smoke run
    python experiments/proxy_benchmark.py --scheduler tcp://HOST:8786  # on a dask cluster
"""

from __future__ import annotations

import sys

import click

from rankstudy import store
from rankstudy.errors import StudyError
from rankstudy.proxies import ProxyStudyConfig, run_proxies, write_proxies_report
from rexnet.io import command_line

COPIED = ("results.parquet", "results.csv", "metadata.json")


@click.command()
@click.option("--n", type=click.IntRange(min=1), default=3000, show_default=True, help="Cells sampled from archs.csv.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--inputs", default="fmnist", show_default=True)
@click.option("--batch", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--bench", help="Official benchmark file (nats_bench) instead of the shipped table.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--scheduler", help="tcp://HOST:PORT of a dask scheduler (then --workers is unused).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--max-units", type=click.IntRange(min=0), help="Score at most this many cells in this sitting.")
@click.option("--runs", default="runs/proxies", show_default=True, help="Study state (resumable).")
@click.option("--results", default="results/proxies", show_default=True)
def main(n, seed, inputs, batch, bench, workers, scheduler, device, max_units, runs, results) -> None:
    """Score (or resume scoring) the sample, then write its table and report to RESULTS."""
    cfg = ProxyStudyConfig(n=n, seed=seed, inputs=inputs, batch=batch, bench=bench)
    command = command_line(click.get_current_context(), __file__)
    try:
        table = run_proxies(
            cfg, runs, device=device, workers=workers, scheduler=scheduler, max_units=max_units, command=command
        )
        results = store.prepare_out_dir(results)
    except StudyError as exc:  # bad input: one line, exit code 2, nothing written to RESULTS
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    meta = store.publish(runs, results, COPIED, command=command, settings=cfg.to_dict())
    report = write_proxies_report(table, meta, results)
    state = f"partial: {meta['n_scored']} of {meta['n_planned']}" if meta["partial"] else "complete"
    print(f"{len(table)} cells scored ({state}) → {results}")
    for column, text in report["verdicts"].items():
        print(f"  {column}: {text}")


if __name__ == "__main__":
    main()
