"""The channel-configuration study (ReXNet, arXiv 2007.00992, §4 and CVPR Table 3): width schedules at one MACs
budget, trained briefly, with an init-time rank proxy; then which family of schedules wins.

    config     ChannelStudyConfig, the fixed parts of the networks, column and file names
    schedules  profiles of the three families, their networks (`schedule_arch`), MACs matching
    run        one run (proxy + training), the resumable study, reading a finished one back
    report     the analysis (report.json, REPORT.md); plots: its figures

The names below are imported on first use (PEP 562), so the worker processes that import `run` to train load
neither the report's scipy.stats nor matplotlib, and the report side loads no torchvision.
"""

import importlib

# public name → submodule holding it
_EXPORTS: dict[str, str] = {
    **{
        n: "config"
        for n in (
            "FAMILIES",
            "PROXIES",
            "RESULT_COLUMNS",
            "ROWS",
            "SCHEDULES",
            "SCHEDULE_COLUMNS",
            "SCHEMA",
            "TIMING_COLUMNS",
            "ChannelStudyConfig",
            "parse_widths",
        )
    },
    **{
        n: "schedules"
        for n in (
            "architecture",
            "sample_profile",
            "sample_schedules",
            "schedule_arch",
            "schedule_row",
            "schedule_widths",
            "strides",
        )
    },
    **{n: "run" for n in ("load_channel_results", "proxy_ranks", "row_name", "run_channel_study", "run_config")},
    **{
        n: "report"
        for n in (
            "analyze",
            "compare",
            "config_table",
            "partial_spearman_ci",
            "report_markdown",
            "seed_noise",
            "seed_noise_of_difference",
            "spearman_ci",
            "tiers",
            "write_report",
        )
    },
    "plot_channel_study": "plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
