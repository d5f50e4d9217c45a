"""Which rank measure the design rules read: the one whose rank proxy best predicts trained accuracy.

The paper (§3) reads its design rules off the rank of random networks' features but never asks which rank
measure carries information about a trained network's accuracy; under the float32 tolerance, rtol 1e-2 and
effective rank the same rule gives different answers (the expansion cap is ≥ 20, 3.25 and below the grid).
So the design measure is not a setting chosen by taste: it is read from the proxy benchmark's report
(`rankstudy proxies-report`, results/proxies/report.json), which correlates each rank measure of NAS-Bench-201
cells at initialisation with their trained accuracy. Among the study's measures (float32-tolerance rank,
rtol 1e-3, rtol 1e-2, effective rank, stable rank) the design measure is the one whose best rank proxy
(over the report's reductions: mean, min, last, stage1–3) has the highest Spearman ρ on `ACCURACY_COLUMN`;
the rules then read its bound-relative twin. The report is re-read whenever the findings are regenerated,
so a regenerated (or completed) benchmark moves the choice with it; the findings record the report, its
ρ with CI and n, and whether the benchmark was still partial.
"""

import json
import math
from pathlib import Path

from ..errors import StudyError
from .measures import MEASURES

# The proxy benchmark's rank-measure families (`rank.<family>.<reduction>`) that are measures of this study,
# each with its study measure (normalised by d_out; the rules read its bound-relative twin). The report's
# other families (effective_cov, nuclear, nuclear_rank) have no column in the study's table.
PROXY_FAMILIES: dict[str, str] = {
    "float32": "normalized_rank",
    "rtol_1e-3": "rank_rtol_1e-3",
    "rtol_1e-2": "rank_rtol_1e-2",
    "effective": "effective_rank",
    "stable": "stable_rank",
}
ACCURACY_COLUMN = "cifar10_200ep"  # NAS-Bench-201's CIFAR-10 accuracy after the full 200-epoch schedule
FALLBACK_DESIGN_MEASURE = "bound_relative_rank_rtol_1e-2"  # schema 2's choice, used only without a report
DEFAULT_REPORT = "results/proxies/report.json"


def bound_twin(measure: str) -> str:
    """Returns the bound-relative twin of a normalised measure name (effective_rank → bound_relative_effective_rank)."""
    column = MEASURES[measure].column
    return "bound_relative_" + column.removeprefix("normalized_")


def load_proxy_report(path: str | Path) -> dict:
    """Returns {"path", "report", "metadata"} of a proxy benchmark report (report.json, metadata.json beside it
    if present), or raises StudyError naming the problem."""
    path = Path(path)
    report_path = path / "report.json" if path.is_dir() else path
    if not report_path.is_file():
        raise StudyError(
            f"no proxy report at {report_path}; run `rankstudy proxies-report` or pass --proxy-report none"
        )
    try:
        report = json.loads(report_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StudyError(
            f"{report_path} is not valid JSON ({e}); regenerate it with `rankstudy proxies-report`"
        ) from None
    if not isinstance(report, dict) or not isinstance(report.get("correlations"), list):
        raise StudyError(
            f"{report_path} has no `correlations` list; pass the report.json of `rankstudy proxies-report`"
        )
    meta_path = report_path.parent / "metadata.json"
    metadata = {}
    if meta_path.is_file():
        try:
            metadata = json.loads(meta_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            metadata = {}
    return {"path": str(report_path), "report": report, "metadata": metadata}


def choose_design_measure(proxy: dict | None, column: str = ACCURACY_COLUMN) -> dict:
    """Returns the design measure and why: {"measure" (the bound-relative measure the rules read), "source",
    "base_measure", "proxy", "rho", "rho_ci", "n", "accuracy_column", "candidates", "report", "partial", …}.

    `proxy` is `load_proxy_report`'s dict (None: no report, the schema-2 fallback is used and said so).
    """
    if proxy is None:
        return {
            "measure": FALLBACK_DESIGN_MEASURE,
            "source": "fallback",
            "why": "no proxy benchmark report given: schema 2's design measure (rank at rtol 1e-2, bound-relative)",
        }
    report, meta = proxy["report"], proxy.get("metadata") or {}
    candidates = {}
    for family, measure in PROXY_FAMILIES.items():
        rows = [
            r
            for r in report["correlations"]
            if r.get("column") == column
            and str(r.get("proxy", "")).startswith(f"rank.{family}.")
            and "." not in str(r["proxy"])[len(f"rank.{family}.") :]
            and isinstance(r.get("rho"), (int, float))
            and math.isfinite(r["rho"])
        ]
        if rows:
            best = max(rows, key=lambda r: r["rho"])
            candidates[measure] = {
                "proxy": best["proxy"],
                "rho": best["rho"],
                "rho_ci": best.get("rho_ci"),
                "n": best.get("n"),
                "reductions": len(rows),
            }
    if not candidates:
        raise StudyError(
            f"{proxy['path']} has no rank proxy of this study's measures on {column!r}; "
            "regenerate it with `rankstudy proxies-report` or pass --proxy-report none"
        )
    base = max(candidates, key=lambda m: candidates[m]["rho"])
    settings = report.get("settings") or {}
    chosen = candidates[base]
    others = [c for m, c in candidates.items() if m != base]
    runner = max(others, key=lambda c: c["rho"]) if others else None
    overlap = (
        None
        if runner is None or not chosen.get("rho_ci") or not runner.get("rho_ci") or None in chosen["rho_ci"]
        else bool(chosen["rho_ci"][0] <= runner["rho_ci"][1])
    )
    return {
        "measure": bound_twin(base),
        "source": "proxy_report",
        "base_measure": base,
        "proxy": chosen["proxy"],
        "rho": chosen["rho"],
        "rho_ci": chosen["rho_ci"],
        "n": chosen["n"],
        "n_unit": "NAS-Bench-201 architectures",
        "accuracy_column": column,
        "dataset": column.split("_")[0],
        "candidates": candidates,
        "ci_overlaps_runner_up": overlap,
        "report": proxy["path"],
        "report_created": meta.get("created"),
        "report_command": meta.get("command"),
        "partial": settings.get("partial", meta.get("partial")),
        "n_scored": settings.get("n_scored", meta.get("n_scored")),
        "n_planned": settings.get("n_planned", meta.get("n_planned")),
        "why": f"highest Spearman rho with {column} among the study's measures' best rank proxies "
        "(over reductions); the rules read its bound-relative twin",
    }
