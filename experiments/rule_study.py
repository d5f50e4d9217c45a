"""The rule study: a second rank study that samples only the rows the design rules read, where a ReXNet variant
applies them, so that no rule rests on fewer than ~1,000 networks per option.

The default 10k study (`experiments/main_study.py`) stays for the paper's figures and findings (§3, Figure 1);
its design rules read a few dozen networks per option (e.g. 52 for the expansion cap). This study has four
parts, one `rankstudy sample` study each (`rankstudy.findings.rules` says which rule reads which and why):

- nonlinearity: one 1×1 conv → BN → f (`linear`), expansion 3–6× (ReXNet's blocks expand t = 6, Table 1 of
  the paper; a capped variant down to 3), the 13 non-identity nonlinearities, N/d_out = 4, every input
  distribution (the rule reads gaussian and correlated, the others show where it flips);
- threshold: the same layer over r = 1–16 with the 13 nonlinearities, design inputs only: the largest
  expansion keeping the design measure ≥ τ, with its bootstrap CI;
- expansion: one inverted bottleneck (`block`) widening 1.06–1.69× as ReXNet's blocks do, inner expansion
  t ∈ {2, 3, 4, 5, 6}, SiLU and ReLU6 (ReXNet's two nonlinearities, §4): which t keeps the most rank;
- schedule: stacks of 2–4 blocks vs one block at total ratio 1.25–8, SiLU and ReLU6: gradual vs one expansion.

Each part runs (resumably) in RUNS/<part> and is published to OUT/<part> (results.parquet, metadata.json,
manifest.json, command.txt); OUT/command.txt and OUT/run.json record the exact command, seed, versions and wall
times. The findings read it through `make run` (or `python experiments/plots_and_principles.py`), which
writes results/findings.json and results/FINDINGS.md.

    python experiments/rule_study.py [--seed 0] [--workers 2] [--scale 1.0] [--runs runs/rules] [--out results/rules]

`--scale` multiplies every part's n (0.05 for a smoke run).
"""

import os
import sys
import time
from pathlib import Path

import click

from rankstudy import StudyConfig, run_study, store
from rankstudy.random_nets.nonlinearities import BUILTIN_NONLINEARITIES
from rexnet.io import atomic_write_text, versions

OPTIONS = tuple(nl for nl in BUILTIN_NONLINEARITIES if nl != "identity")  # what a variant may put after a conv
DESIGN_INPUTS = ("gaussian", "correlated")
REXNET_NONLINEARITIES = ("silu", "relu6")
COPIED = ("results.parquet", "metadata.json", "manifest.json")


def parts(seed: int, scale: float = 1.0) -> dict[str, StudyConfig]:
    """Returns the config of each part of the rule study (module docstring), n scaled by `scale`."""

    def n(count: int) -> int:
        return max(1, round(count * scale))

    common = {"seed": seed, "inits": ("kaiming",), "norms": ("bn",), "n_over_d": (4.0,)}
    return {
        "nonlinearity": StudyConfig(
            n=n(65_000),
            kinds=("linear",),
            nonlinearities=OPTIONS,
            d_in=(8, 16, 32),
            ratio_min=3.0,
            ratio_max=6.0,
            n_ratios=4,
            input_dists=("gaussian", "correlated", "halfnormal", "fmnist"),
            **common,
        ),
        "threshold": StudyConfig(
            n=n(20_800),
            kinds=("linear",),
            nonlinearities=OPTIONS,
            d_in=(8, 16),
            ratio_min=1.0,
            ratio_max=16.0,
            n_ratios=9,
            input_dists=DESIGN_INPUTS,
            **common,
        ),
        "expansion": StudyConfig(
            n=n(10_000),
            kinds=("block",),
            nonlinearities=REXNET_NONLINEARITIES,
            d_in=(16, 32),
            ratio_min=1.0625,
            ratio_max=1.6875,
            n_ratios=4,
            block_expansion=(2, 3, 4, 5, 6),
            input_dists=DESIGN_INPUTS,
            **common,
        ),
        "schedule": StudyConfig(
            n=n(4_800),
            kinds=("block", "stack"),
            nonlinearities=REXNET_NONLINEARITIES,
            d_in=(8, 16),
            ratio_min=1.25,
            ratio_max=8.0,
            n_ratios=6,
            stack_depths=(2, 3, 4),
            input_dists=DESIGN_INPUTS,
            **common,
        ),
    }


@click.command(help=__doc__.splitlines()[0])
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, type=int)
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--runs", default="runs/rules", show_default=True, type=click.Path(file_okay=False))
@click.option("--out", default="results/rules", show_default=True, type=click.Path(file_okay=False))
def main(seed: int, workers: int, scale: float, runs: str, out: str) -> None:
    command = "python experiments/rule_study.py " + " ".join(sys.argv[1:])
    command = command.strip()
    start = time.perf_counter()
    walls, configs = {}, {}
    out_dir = Path(out)
    for name, cfg in parts(seed, scale).items():
        t0 = time.perf_counter()
        run_study(cfg, device="cpu", out=Path(runs) / name, workers=workers, command=command)
        walls[name] = round(time.perf_counter() - t0, 1)
        store.publish(Path(runs) / name, out_dir / name, COPIED, command=command, settings=cfg.to_dict())
        configs[name] = cfg.to_dict()
        print(f"{name}: {cfg.n:,} networks in {walls[name]} s → {out_dir / name}", flush=True)
    wall = round(time.perf_counter() - start, 1)
    total = sum(c["n"] for c in configs.values())
    store.write_json(
        out_dir / "run.json",
        {
            "command": command,
            "seed": seed,
            "workers": workers,
            "cpu_count": os.cpu_count(),
            "n_networks": total,
            "wall_time_s": wall,
            "part_wall_time_s": walls,
            "configs": configs,
            "versions": versions(),
        },
    )
    atomic_write_text(
        out_dir / "command.txt",
        f"{command}\nseed: {seed}\nnetworks: {total}\nwall time: {wall} s (parts: {walls})\nversions: {versions()}\n",
    )
    print(f"rule study: {total:,} networks in {wall} s → {out_dir}; regenerate the findings with `make run`")


if __name__ == "__main__":
    main()
