"""The findings wing: what a results table says about the paper's claims (ReXNet, §3, Figure 1) — the measures
and views (`measures`), the design measure (`design`), the design rules with their uncertainty (`rules`), the
verdicts (`principles`, rendered by `report`) and the figures
(`rankstudy.findings.plots`, not imported here: it loads matplotlib)."""

from .design import choose_design_measure, load_proxy_report
from .measures import MEASURES, Measure, check_table, get_measure, kinds_in, nonlinearities_in, select_rows
from .principles import SCHEMA_VERSION, VERDICTS, Settings, design_rules, find_principles, judge_cells, write_findings
from .report import findings_markdown
from .rules import load_rule_study

__all__ = [
    "MEASURES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "Measure",
    "Settings",
    "check_table",
    "choose_design_measure",
    "design_rules",
    "find_principles",
    "findings_markdown",
    "get_measure",
    "judge_cells",
    "kinds_in",
    "load_proxy_report",
    "load_rule_study",
    "nonlinearities_in",
    "select_rows",
    "write_findings",
]
