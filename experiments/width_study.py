"""Width experiment: do the rank study's findings change at realistic widths (d_in up to 256)?

The default study uses d_in 8–32, far below ReXNet's layers (16–185 channels in the blocks, up to ~1,100 in
the head of the wider models, §4 of the paper). This runs the paper's four panels (Figure 1 (a)–(d): kinds
linear, conv3x3, block_conv, block) at d_in 32, 128 and 256, with the paper's nonlinearities, BN before
each nonlinearity (the CVPR version), Kaiming weights, Gaussian and Fashion-MNIST-patch inputs, and
expansion ratios 1.25–10 (dimension ratios 0.8–0.1), then judges the paper's findings separately at each
width. block_conv is skipped at d_in 256 (its 1,536-wide full 3×3 conv costs ~20× a block; the budget is
~15 min on 2 cores).

    python experiments/width_study.py [--out results/width] [--seed 0] [--workers 2]

Writes OUT/d{32,128,256}/ (study tables), OUT/width.csv (mean of each measure per width, kind,
nonlinearity and ratio), OUT/verdicts.csv (finding × width × measure), OUT/WIDTH.md and OUT/run.json
(command, seed, versions, wall time).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

from rankstudy import StudyConfig, run_study
from rankstudy.findings.measures import check_table
from rankstudy.findings.principles import Settings, find_principles
from rankstudy.store import write_csv, write_json
from rexnet.io import atomic_write_text, versions

NONLINEARITIES = ("identity", "relu6", "relu", "leaky_relu", "elu", "softplus", "hardswish", "silu")
MEASURES = (
    "normalized_rank",
    "rank_rtol_1e-2",
    "effective_rank",
    "bound_relative_rank",
    "bound_relative_rank_rtol_1e-2",
    "bound_relative_effective_rank",
)
# (d_in, kinds, networks): fewer networks where each costs more (the SVD grows as d_out³).
WIDTHS = (
    (32, ("linear", "conv3x3", "block", "block_conv"), 1024),
    (128, ("linear", "conv3x3", "block", "block_conv"), 640),
    (256, ("linear", "conv3x3", "block"), 360),
)


def config(d_in: int, kinds: tuple[str, ...], n: int, seed: int) -> StudyConfig:
    """Returns the study config of one width."""
    return StudyConfig(
        n=n,
        seed=seed,
        kinds=kinds,
        nonlinearities=NONLINEARITIES,
        d_in=(d_in,),
        ratio_min=1.25,
        ratio_max=10.0,
        n_ratios=4,
        n_over_d=(1.0,),
        inits=("kaiming",),
        norms=("bn",),
        input_dists=("gaussian", "fmnist"),
    )


def summarise(tables: dict[int, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Returns (means per width × kind × nonlinearity × ratio, verdicts per finding × width × measure, findings)."""
    means, verdicts, findings = [], [], {}
    settings = Settings(
        measures=MEASURES, design_measure="bound_relative_rank_rtol_1e-2", n_resamples=999, threshold_resamples=50
    )
    for d_in, table in tables.items():
        t = check_table(table)
        cols = [f"normalized_{m}" if not m.startswith(("bound", "normalized")) else m for m in MEASURES]
        g = t.groupby(["kind", "nonlinearity", "input_dist", "d_out"])[cols].mean().reset_index()
        means.append(g.assign(d_in=d_in, dimension_ratio=d_in / g["d_out"]))
        f = find_principles(t, {"n_rows": len(t)}, settings)
        findings[d_in] = f
        for key, item in f["paper_findings"].items():
            for name, part in (item.get("parts") or {"": item}).items():
                for m in MEASURES:
                    pooled = [c for c in part["cells"] if c["measure"] == m and c["factor"] == "all"]
                    verdicts.append(
                        {
                            "finding": key + (f":{name}" if name else ""),
                            "d_in": d_in,
                            "measure": m,
                            "verdict": part["by_measure"].get(m),
                            **{f"diff_{c['kind']}": c["difference"] for c in pooled},
                            **{f"holds_{c['kind']}": c["holds"] for c in pooled},
                        }
                    )
    return pd.concat(means, ignore_index=True), pd.DataFrame(verdicts), findings


def _resumed(run: dict) -> str:
    n = sum(run.get("resumed_chunks", {}).values())
    return f"; {n} study chunks resumed from an earlier run of the same command" if n else ""


def markdown(means: pd.DataFrame, verdicts: pd.DataFrame, findings: dict, run: dict) -> str:
    """Returns WIDTH.md: verdicts per width and the key means at dimension ratio 0.1."""
    lines = [
        f"# Width experiment: findings at d_in {', '.join(map(str, findings))}",
        "",
        f"`{run['command']}` (seed {run['seed']}, {run['wall_time_s']:.0f} s{_resumed(run)}, versions in run.json). Kinds "
        "= the paper's Figure 1 panels; BN, Kaiming, inputs Gaussian and Fashion-MNIST patches pooled; "
        "ratios 1.25–10.",
        "",
        "## Verdicts per width",
        "",
        "| finding | measure | " + " | ".join(f"d_in {d}" for d in findings) + " |",
        "|---|---|" + "---|" * len(findings),
    ]
    for (finding, measure), rows in verdicts.groupby(["finding", "measure"], sort=False):
        cells = []
        for d in findings:
            v = rows[rows.d_in == d]["verdict"]
            cells.append("–" if v.empty else "n/a¹" if pd.isna(v.iloc[0]) else str(v.iloc[0]).replace("_", " "))
        lines.append(f"| {finding} | {measure} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "¹ Finding (b) reads single layers, where a bound-relative measure equals its normalised twin (the bound "
        "is d_out): the cell is counted once, under the normalised measure.",
        "",
        "## Mean rank at dimension ratio 0.1 (ratio 10), rtol 1e-2 / d_out and effective rank / d_out",
        "",
        "| kind | nonlinearity | " + " | ".join(f"d_in {d} rtol / eff" for d in findings) + " |",
        "|---|---|" + "---|" * len(findings),
    ]
    at10 = means[means["d_out"] == means["d_in"] * 10]
    for (kind, nl), rows in at10.groupby(["kind", "nonlinearity"], sort=True):
        cells = []
        for d in findings:
            r = rows[rows.d_in == d]
            cells.append(
                "–"
                if r.empty
                else f"{r['normalized_rank_rtol_1e-2'].mean():.3f} / {r['normalized_effective_rank'].mean():.3f}"
            )
        lines.append(f"| {kind} | {nl} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/width"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    command = "python experiments/width_study.py " + " ".join(sys.argv[1:])
    start = time.perf_counter()
    tables, walls, resumed = {}, {}, {}
    for d_in, kinds, n in WIDTHS:
        t0 = time.perf_counter()
        tables[d_in] = run_study(
            config(d_in, kinds, n, args.seed),
            device="cpu",
            out=args.out / f"d{d_in}",
            workers=args.workers,
            command=command,
        )
        walls[d_in] = round(time.perf_counter() - t0, 1)
        meta = json.loads((args.out / f"d{d_in}" / "metadata.json").read_text())
        resumed[d_in] = int(meta.get("resumed_chunks", 0))
        print(f"d_in {d_in}: {n} networks in {walls[d_in]} s", flush=True)
    means, verdicts, findings = summarise(tables)
    run = {
        "command": command.strip(),
        "seed": args.seed,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "wall_time_s": round(time.perf_counter() - start, 1),
        "study_wall_time_s": walls,
        "resumed_chunks": resumed,  # chunks read back from an earlier run of the same command, not recomputed
        "configs": {d: config(d, k, n, args.seed).to_dict() for d, k, n in WIDTHS},
        "versions": versions(),
    }
    write_csv(args.out / "width.csv", means)
    write_csv(args.out / "verdicts.csv", verdicts)
    write_json(args.out / "run.json", run)
    atomic_write_text(args.out / "WIDTH.md", markdown(means, verdicts, findings, run))
    print(f"→ {args.out}/WIDTH.md ({run['wall_time_s']} s)")


if __name__ == "__main__":
    main()
