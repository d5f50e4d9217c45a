"""The findings wing: what a results table says about the paper's claims (ReXNet, §3, Figure 1) — the measures
and views (`measures`), the design rules and verdicts (`principles`, rendered by `report`) and the figures
(`rankstudy.findings.plots`, not imported here: it loads matplotlib)."""

from .measures import MEASURES, Measure, check_table, get_measure, kinds_in, nonlinearities_in, select_rows
from .principles import SCHEMA_VERSION, VERDICTS, Settings, find_principles, write_findings
from .report import findings_markdown

__all__ = [
    "MEASURES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "Measure",
    "Settings",
    "check_table",
    "find_principles",
    "findings_markdown",
    "get_measure",
    "kinds_in",
    "nonlinearities_in",
    "select_rows",
    "write_findings",
]
