"""The main job (`make run`): the default 10k rank study on the CPU, then its figures and findings.

Writes results/study/ (results.parquet, results.csv, metadata.json with config, seed, versions, device
and wall time; run_stats.json with peak memory), results/figures/, results/findings.json and
results/FINDINGS.md. Rerunning resumes an interrupted study from its stored chunks. The findings' design
rules read the committed rule study results/rules/ (`python experiments/rule_study.py`) and the design
measure the proxy benchmark's results/proxies/report.json, where they exist.

    python experiments/main_study.py [--n 10000] [--seed 0] [--workers CORES] [--out results]
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from plots_and_principles import figures_and_findings

from rankstudy import StudyConfig, run_study
from rankstudy.store import write_json


def peak_rss_mib() -> dict[str, float]:
    """Returns the peak resident memory of this process and of its largest child (joblib workers), MiB."""
    return {
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()

    study_dir = args.out / "study"
    command = (
        f"rankstudy sample --n {args.n} --seed {args.seed} --device cpu --workers {args.workers} "
        f"--out {study_dir}   (via: python experiments/main_study.py {' '.join(sys.argv[1:])})".rstrip()
    )
    start = time.perf_counter()
    run_study(StudyConfig(n=args.n, seed=args.seed), device="cpu", out=study_dir, workers=args.workers, command=command)
    wall = time.perf_counter() - start
    write_json(
        study_dir / "run_stats.json",
        {
            "wall_time_s": round(wall, 1),
            "peak_rss_mib": peak_rss_mib(),
            "workers": args.workers,
            "cpu_count": os.cpu_count(),
        },
    )
    print(f"study: {args.n} networks in {wall:.1f} s, peak RSS {peak_rss_mib()} MiB → {study_dir}")

    findings = figures_and_findings(
        study_dir, args.out, command=f"python experiments/main_study.py {' '.join(sys.argv[1:])}".rstrip()
    )
    rec = findings["recommendations"]
    print(f"figures → {args.out / 'figures'}; findings → {args.out / 'findings.json'}, {args.out / 'FINDINGS.md'}")
    print(
        f"recommended nonlinearity {rec['recommended_nonlinearity']}, max expansion {rec['max_expansion']}, "
        f"gradual beats single: {rec['gradual_expansion_beats_single']}"
    )
    for key, item in findings["paper_findings"].items():
        print(f"  ({key}) {item['verdict']}: {item['claim']}")


if __name__ == "__main__":
    main()
