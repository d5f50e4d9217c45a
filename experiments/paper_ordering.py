"""Does any input or setup give the paper's ordering, SoftPlus above ReLU at dimension ratio 0.1?

The paper's Figure 1 (a)/(b) draws SoftPlus (with ELU, Hardswish, SiLU) at ≈ 0.93–0.97 and ReLU/ReLU6 at
≈ 0.85 at d_in/d_out = 0.1. Under rank at rtol 1e-2 the default study has SoftPlus far below ReLU there.
This sweeps every setup the paper leaves open for one expanding layer at ratio 10 (kinds linear and
conv3x3, the panels (a) and (b)): input distribution (all five), BN or not, Kaiming or unit weights,
N/d_out 1 or 2, d_in 16 or 32, and reports SoftPlus − ReLU (and the complicated − simple groups) under
every measure with bootstrap CIs, per setup.

    python experiments/paper_ordering.py [--out results/ordering] [--seed 0] [--n 2560] [--workers 2]

Writes OUT/study/ (the table), OUT/ordering.csv (one row per setup × measure), OUT/ORDERING.md and
OUT/run.json (command, seed, versions, wall time).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

from rankstudy import StudyConfig, run_study, stats
from rankstudy.findings.measures import check_table, get_measure
from rankstudy.random_nets.config import INPUT_DISTS
from rankstudy.store import write_csv, write_json
from rexnet.io import atomic_write_text, versions

NONLINEARITIES = ("identity", "relu", "relu6", "softplus", "elu", "silu", "hardswish")
MEASURES = ("normalized_rank", "rank_rtol_1e-3", "rank_rtol_1e-2", "effective_rank")
SETUP = ("kind", "input_dist", "norm", "init")
N_RESAMPLES = 999


def config(n: int, seed: int) -> StudyConfig:
    """Returns the sweep's study config: one expanding layer at ratio 10, every open factor."""
    return StudyConfig(
        n=n,
        seed=seed,
        kinds=("linear", "conv3x3"),
        nonlinearities=NONLINEARITIES,
        d_in=(16, 32),
        ratio_min=10.0,
        ratio_max=10.0,
        n_ratios=1,
        n_over_d=(1.0, 2.0),
        inits=("kaiming", "unit"),
        norms=("none", "bn"),
        input_dists=INPUT_DISTS,
    )


def compare(table: pd.DataFrame) -> pd.DataFrame:
    """Returns SoftPlus − ReLU and mean(ELU, SiLU, Hardswish, SoftPlus) − mean(ReLU, ReLU6) per setup × measure."""
    rows = []
    groups = [(("all",) * len(SETUP), table)] + list(table.groupby(list(SETUP), sort=True))
    for key, part in groups:
        for m in MEASURES:
            col = get_measure(m).column
            by = {nl: g[col].to_numpy() for nl, g in part.groupby("nonlinearity")}
            if "softplus" not in by or "relu" not in by:
                continue
            sp = stats.diff_ci(by["softplus"], by["relu"], n_resamples=N_RESAMPLES)
            complicated = part[part.nonlinearity.isin(["elu", "silu", "hardswish", "softplus"])][col]
            simple = part[part.nonlinearity.isin(["relu", "relu6"])][col]
            grp = stats.diff_ci(complicated, simple, n_resamples=N_RESAMPLES)
            rows.append(
                {
                    **dict(zip(SETUP, key)),
                    "measure": m,
                    "softplus": by["softplus"].mean(),
                    "relu": by["relu"].mean(),
                    "softplus_minus_relu": sp.mean,
                    "ci_low": sp.low,
                    "ci_high": sp.high,
                    "paper_order": bool(sp.low > 0),
                    "complicated_minus_simple": grp.mean,
                    "group_ci_low": grp.low,
                    "group_ci_high": grp.high,
                    "n": sp.n,
                }
            )
    return pd.DataFrame(rows)


def markdown(result: pd.DataFrame, run: dict) -> str:
    """Returns ORDERING.md: the pooled answer, then every setup where SoftPlus is significantly above ReLU."""
    pooled = result[result["kind"] == "all"]
    lines = [
        "# SoftPlus vs ReLU at dimension ratio 0.1 (expansion 10×), every setup",
        "",
        f"`{run['command']}` (seed {run['seed']}, {run['n']} networks, {run['wall_time_s']:.0f} s; versions "
        "in run.json). Setups: kind (linear = Figure 1 (a), conv3x3 = (b)) × input × norm × init; d_in "
        "16/32 and N/d_out 1/2 pooled within a setup. paper order = SoftPlus − ReLU > 0 with its 95% CI.",
        "",
        "## Pooled over every setup",
        "",
        "| measure | SoftPlus | ReLU | SoftPlus − ReLU [95% CI] | complicated − ReLU/ReLU6 [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for _, r in pooled.iterrows():
        lines.append(
            f"| {r.measure} | {r.softplus:.3f} | {r.relu:.3f} | {r.softplus_minus_relu:+.3f} "
            f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {r.complicated_minus_simple:+.3f} "
            f"[{r.group_ci_low:+.3f}, {r.group_ci_high:+.3f}] |"
        )
    setups = result[result["kind"] != "all"]
    n_setups = len(setups.groupby(list(SETUP)))
    lines += ["", "## Setups with the paper's order (SoftPlus significantly above ReLU)", ""]
    for m in MEASURES:
        hits = setups[(setups.measure == m) & setups.paper_order]
        lines.append(
            f"- {m}: {len(hits)} of {n_setups} setups"
            + (
                ": "
                + "; ".join(
                    f"{r.kind}/{r.input_dist}/{r.norm}/{r.init} ({r.softplus:.3f} vs {r.relu:.3f})"
                    for r in hits.itertuples()
                )
                if len(hits)
                else ""
            )
            + "."
        )
    lines += [
        "",
        "## Every setup (rank at rtol 1e-2 / d_out)",
        "",
        "| kind | input | norm | init | SoftPlus | ReLU | difference [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in setups[setups.measure == "rank_rtol_1e-2"].itertuples():
        lines.append(
            f"| {r.kind} | {r.input_dist} | {r.norm} | {r.init} | {r.softplus:.3f} | {r.relu:.3f} | "
            f"{r.softplus_minus_relu:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/ordering"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=2560)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    command = ("python experiments/paper_ordering.py " + " ".join(sys.argv[1:])).strip()
    start = time.perf_counter()
    table = check_table(
        run_study(
            config(args.n, args.seed), device="cpu", out=args.out / "study", workers=args.workers, command=command
        )
    )
    result = compare(table)
    run = {
        "command": command,
        "seed": args.seed,
        "n": args.n,
        "workers": args.workers,
        "wall_time_s": round(time.perf_counter() - start, 1),
        "config": config(args.n, args.seed).to_dict(),
        "versions": versions(),
    }
    write_csv(args.out / "ordering.csv", result)
    write_json(args.out / "run.json", run)
    atomic_write_text(args.out / "ORDERING.md", markdown(result, run))
    print(f"→ {args.out}/ORDERING.md ({run['wall_time_s']} s)")


if __name__ == "__main__":
    main()
