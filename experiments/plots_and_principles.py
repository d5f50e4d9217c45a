"""Figures and findings of a finished study: results/figures/*, results/findings.json, results/FINDINGS.md.

    python experiments/plots_and_principles.py [STUDY_DIR] [RESULTS_DIR]     (defaults: results/study, results)

`experiments/main_study.py` calls `figures_and_findings` after `rankstudy sample`. The findings' design rules
read the rule study in RESULTS_DIR/rules (`experiments/rule_study.py`) and their design measure is chosen
from the proxy benchmark's report RESULTS_DIR/proxies/report.json, each where it exists (the findings record
which were read). The figure set: the
paper's figure, its dimension-ratio version, heatmaps and rank vs depth under three measures, and the
paper's figure split by each unstated factor (N/d_out, init, norm) under the default-tolerance rank and
the design measure. figures/figures.json lists every file with the command, source and versions.
"""

import sys
import time
from pathlib import Path

from rankstudy.findings.design import load_proxy_report
from rankstudy.findings.plots import plot_all
from rankstudy.findings.principles import write_findings
from rankstudy.findings.rules import load_rule_study
from rankstudy.store import load_results, write_json
from rexnet.io import versions

METRICS = (
    "normalized_rank",
    "rank_rtol_1e-2",
    "effective_rank",
    "bound_relative_rank_rtol_1e-2",
    "bound_relative_effective_rank",
)
FACETED_METRICS = ("normalized_rank", "rank_rtol_1e-2")
FACETS = ("n_over_d_bin", "init", "norm", "input_dist")


def figures_and_findings(
    study_dir: str | Path = "results/study", results_dir: str | Path = "results", command: str | None = None
) -> dict:
    """Returns the findings after drawing every figure and writing findings.json / FINDINGS.md under results_dir."""
    start = time.perf_counter()
    command = command or " ".join(["python", *sys.argv])
    results_dir = Path(results_dir)
    figures_dir = results_dir / "figures"
    table, meta = load_results(study_dir)
    figures = []
    for metric in METRICS:
        figures += [
            {"path": p.name, "metric": metric, "facet": None} for p in plot_all(table, meta, figures_dir, metric)
        ]
    for metric in FACETED_METRICS:
        for facet in FACETS:
            figures += [
                {"path": p.name, "metric": metric, "facet": facet}
                for p in plot_all(table, meta, figures_dir, metric, facet=facet)
            ]
    rules_dir, report = results_dir / "rules", results_dir / "proxies" / "report.json"
    findings = write_findings(
        table,
        meta,
        results_dir / "findings.json",
        results_dir / "FINDINGS.md",
        command=command,
        rule_tables=load_rule_study(rules_dir) if rules_dir.is_dir() else None,
        proxy_report=load_proxy_report(report) if report.is_file() else None,
    )
    write_json(
        figures_dir / "figures.json",
        {
            "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions(),
            "source": {
                "study": str(study_dir),
                "n_rows": meta.get("n_rows"),
                "seed": meta.get("seed"),
                "command": meta.get("command"),
                "config": meta.get("config"),
            },
            "wall_time_s": round(time.perf_counter() - start, 1),
            "figures": figures,
        },
    )
    return findings


if __name__ == "__main__":
    args = sys.argv[1:]
    found = figures_and_findings(*(args or ["results/study", "results"]))
    rec = found["recommendations"]
    print(
        f"recommended nonlinearity {rec['recommended_nonlinearity']}, max expansion {rec['max_expansion']}, "
        f"gradual beats single: {rec['gradual_expansion_beats_single']}"
    )
    for key, item in found["paper_findings"].items():
        print(f"({key}) {item['verdict']}: {item['claim']}")
