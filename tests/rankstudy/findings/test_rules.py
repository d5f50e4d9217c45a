"""Design rules with their uncertainty, read where they are applied; the design measure from the proxy report;
cell verdicts (equivalence, materiality on the CI, false-discovery-rate control) at the findings level.

Each rule is planted in a synthetic table with a known answer and must be recovered with a CI that holds it,
and refused where the planted effect lies inside the margin."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from rankstudy import StudyError
from rankstudy.cli import main
from rankstudy.findings import (
    Settings,
    choose_design_measure,
    design_rules,
    find_principles,
    judge_cells,
    load_proxy_report,
    load_rule_study,
)

from ..synthetic import synthetic_table, write_study

# Two measures (one layer's bound-relative measure is its twin) and few threshold refits keep each test ~1 s.
FAST = Settings(n_resamples=199, threshold_resamples=5, measures=("rank_rtol_1e-2", "bound_relative_rank_rtol_1e-2"))
LINEAR = {"kinds": ("linear",), "nonlinearities": ("identity", "relu", "relu6", "elu", "silu")}


def levels(**by_nonlinearity):
    """A value function: each nonlinearity at its level for r > 1, identity at the linear bound."""

    def value(row):
        if row["nonlinearity"] == "identity":
            return min(1.0, 1.0 / row["expansion_ratio"])
        return by_nonlinearity.get(row["nonlinearity"], 0.5) if row["expansion_ratio"] > 1 else 1.0

    return value


def test_a_planted_nonlinearity_is_recovered_with_its_ci():
    table, meta = synthetic_table(levels(silu=0.90, elu=0.85, relu=0.80, relu6=0.78), reps=48, noise=0.03, **LINEAR)
    rule = design_rules(table, meta, FAST)["rules"]["nonlinearity"]
    assert rule["decided"] is True and rule["choice"] == "silu" and rule["prob_best"] >= 0.99
    options = {o["option"]: o for o in rule["options"]}
    for name, planted in (("silu", 0.90), ("elu", 0.85), ("relu", 0.80)):
        lo, hi = options[name]["ci"]
        assert lo <= planted <= hi, (name, options[name])
    lead = rule["lead"]
    assert lead["over"] == "elu" and lead["ci"][0] <= 0.05 <= lead["ci"][1] and lead["material"] == "material"
    assert "identity" not in options  # not an option after an expansion
    # the rows it read: one 1×1 layer with BN at 3-6×; N/d_out >= 3 relaxed (the table has none)
    filters = rule["rows"]["filters"]
    assert ["kind", "in", ["linear"]] in filters and ["norm", "==", "bn"] in filters
    assert ["expansion_ratio", "between", [3.0, 6.0]] in filters
    assert [r["filter"][0] for r in rule["rows"]["relaxed"]] == ["n_over_d_actual"]
    expected = table[
        (table.kind == "linear")
        & (table.norm == "bn")
        & (table.nonlinearity != "identity")
        & table.expansion_ratio.between(3.0, 6.0)
    ]
    assert rule["rows"]["n_networks"] == len(expected) == sum(rule["rows"]["n_per_option"].values())


def test_a_planted_effect_inside_the_margin_is_not_decided():
    """SiLU ahead of ELU by 0.008 < margin 0.02: whatever the P(best), the rule refuses to choose."""
    table, meta = synthetic_table(levels(silu=0.808, elu=0.80, relu=0.70, relu6=0.70), reps=48, noise=0.01, **LINEAR)
    rule = design_rules(table, meta, FAST)["rules"]["nonlinearity"]
    assert rule["best"] == "silu" and rule["prob_best"] >= 0.8  # the data does rank it first…
    assert rule["decided"] is False and rule["choice"] is None  # …but not by a material margin
    assert rule["lead"]["material"] == "immaterial" and rule["lead"]["tost"] == "equivalent"
    assert "margin" in rule["reason"]


def test_the_nonlinearity_is_read_in_the_range_where_it_is_applied():
    """SiLU wins at 3-6x, ReLU at r > 8 (which no ReXNet block uses): the rule reads 3-6x only."""

    def value(row):
        r, nl = row["expansion_ratio"], row["nonlinearity"]
        if nl == "identity":
            return min(1.0, 1.0 / r)
        if 3 <= r <= 6:
            return {"silu": 0.9, "relu": 0.8}.get(nl, 0.7)
        return {"silu": 0.3, "relu": 0.95}.get(nl, 0.7) if r > 1 else 1.0

    table, meta = synthetic_table(value, reps=16, noise=0.02, **LINEAR)
    rule = design_rules(table, meta, FAST)["rules"]["nonlinearity"]
    assert rule["choice"] == "silu"
    pooled = table[(table.kind == "linear") & (table.expansion_ratio > 1) & (table.nonlinearity != "identity")]
    assert pooled.groupby("nonlinearity")["normalized_rank_rtol_1e-2"].mean().idxmax() == "relu"  # pooled: ReLU


def with_block_expansions(table, value_of_t):
    """Gives the block rows inner expansions t = 2..6 in turn and sets every measure of a block to value_of_t(t)."""
    blocks = table["kind"] == "block"
    t = np.resize(np.array([2, 3, 4, 5, 6]), int(blocks.sum()))
    table.loc[blocks, "block_expansion"] = t
    for column in [c for c in table.columns if c.startswith(("normalized_", "bound_relative_"))]:
        table.loc[blocks, column] = [value_of_t(x) for x in t]
    return table


def test_expansion_becomes_a_comparison_of_the_options_where_the_measure_never_crosses_tau():
    """One layer stays below τ at every ratio (like effective rank): no threshold exists, so the rule compares
    the inner expansions a block may take; t = 4 is planted best."""
    table, meta = synthetic_table(
        lambda row: 0.7, kinds=("linear", "block"), nonlinearities=("relu", "silu"), reps=40, noise=0.01
    )
    table = with_block_expansions(table, lambda t: 0.9 if t == 4 else 0.8)
    rule = design_rules(table, meta, FAST)["rules"]["expansion"]
    assert rule["threshold"]["by_measure"][rule["measure"]]["0.9"]["status"] == "below_range"
    assert rule["form"] == "comparison" and rule["per_tau"]["0.9"]["form"] == "comparison"
    assert rule["decided"] is True and rule["choice"] == 4
    cmp_ = rule["comparison"]
    assert {o["option"] for o in cmp_["options"]} == {2, 3, 4, 5, 6} and cmp_["prob_best"] == 1.0
    assert ["expansion_ratio", "between", [1.0, 1.75]] in cmp_["rows"]["filters"]
    # Flat in t: the comparison cannot decide, so ReXNet's t = 6 is kept.
    flat, meta = synthetic_table(
        lambda row: 0.7, kinds=("linear", "block"), nonlinearities=("relu", "silu"), reps=40, noise=0.01
    )
    flat = with_block_expansions(flat, lambda t: 0.8)
    undecided = design_rules(flat, meta, FAST)["rules"]["expansion"]
    assert undecided["decided"] is False and undecided["choice"] is None and undecided["baseline"] == 6


def test_a_threshold_carries_its_bootstrap_ci_and_the_spread_of_the_empirical_one():
    k = 5.0  # silu ≥ 0.9 up to r = 0.98·k/0.9

    def value(row):
        r = row["expansion_ratio"]
        if row["nonlinearity"] == "identity":
            return min(1.0, 1.0 / r)
        return 0.98 * min(1.0, k / r) if r > 1 else 1.0

    table, meta = synthetic_table(value, reps=16, noise=0.03, **LINEAR)
    rule = design_rules(table, meta, replace(FAST, threshold_resamples=40))["rules"]["expansion"]
    t = rule["threshold"]["by_measure"][rule["measure"]]["0.9"]
    truth = 0.98 * k / 0.9
    assert t["status"] == "crossed" and t["ci"][0] <= truth <= t["ci"][1] and t["ci"][0] < t["ci"][1]
    assert sum(t["empirical_spread"].values()) == pytest.approx(1.0)
    assert rule["threshold"]["n_resamples"] == 40 and t["n"] == rule["threshold"]["rows"]["n_networks"]
    assert rule["form"] == "threshold"
    assert rule["decided"] == (math.floor(t["ci"][0]) == math.floor(t["ci"][1]))


def test_schedule_is_decided_only_when_material_on_its_ci():
    def value(gap):
        return lambda row: 0.8 + gap if row["kind"] == "stack" and row["expansion_ratio"] > 1 else 0.8

    tiny, meta = synthetic_table(value(0.005), kinds=("block", "stack"), nonlinearities=("silu",), noise=0.01)
    rule = design_rules(tiny, meta, FAST)["rules"]["schedule"]
    assert rule["decided"] is False and rule["choice"] is None and rule["beats"] is False  # equivalent: not ahead
    big, meta = synthetic_table(value(0.1), kinds=("block", "stack"), nonlinearities=("silu",), noise=0.01)
    rule = design_rules(big, meta, FAST)["rules"]["schedule"]
    assert rule["decided"] is True and rule["choice"] == "linear" and rule["beats"] is True
    assert rule["ci"][0] <= 0.1 <= rule["ci"][1]


# --- verdicts on cells: equivalence (TOST), FDR control, materiality on the CI ----------------------------


def complicated_vs_simple(gap: float, noise: float, reps: int):
    table, meta = synthetic_table(
        levels(silu=0.8 + gap, elu=0.8 + gap, relu=0.8, relu6=0.8), reps=reps, noise=noise, **LINEAR
    )
    b2 = find_principles(table, meta, FAST)["paper_findings"]["b"]["parts"]["complicated_above_relu"]
    return next(
        c for c in b2["cells"] if c["kind"] == "linear" and c["factor"] == "all" and c["measure"] == "rank_rtol_1e-2"
    )


def test_tied_needs_an_equivalence_test_not_a_failed_difference_test():
    tied = complicated_vs_simple(0.0, noise=0.01, reps=16)
    assert tied["status"] == "tied" and tied["holds"] is False and tied["p_tost_bh"] <= 0.05
    # the same zero difference measured too noisily: not shown different, and not shown equal either
    unsure = complicated_vs_simple(0.0, noise=0.3, reps=2)
    assert unsure["status"] == "undecided" and unsure["holds"] is None
    shown = complicated_vs_simple(0.1, noise=0.01, reps=16)
    assert shown["status"] == "holds" and shown["holds"] is True


def cell(p_above=1.0, difference=0.1, ci=(0.05, 0.15), material="material", p_below=1.0, p_tost=1.0):
    return {
        "difference": difference,
        "ci": list(ci),
        "material": material,
        "p_above": p_above,
        "p_below": p_below,
        "p_tost": p_tost,
    }


def test_benjamini_hochberg_controls_a_findings_cells():
    """Five material-looking cells with p = 0.01, 0.04, 0.045, 0.3, 0.5: unadjusted, three pass α = 0.05;
    step-up BH (p_(i) ≤ i·q/m: 0.01, 0.02, 0.03, …) keeps only the first."""
    p = [0.04, 0.01, 0.3, 0.045, 0.5]
    judged = judge_cells([cell(p_above=x) for x in p], fdr=0.05)
    assert sum(x < 0.05 for x in p) == 3
    assert [c["status"] for c in judged] == ["undecided", "holds", "undecided", "undecided", "undecided"]
    assert judged[1]["p_above_bh"] == pytest.approx(0.05)  # 0.01 · 5 / 1
    assert judged[0]["p_above_bh"] == pytest.approx(0.075)  # min over the step-up: 0.045 · 5 / 3
    # with a stronger second cell BH keeps two: p_(2) = 0.015 ≤ 2 · 0.05 / 5
    judged = judge_cells([cell(p_above=x) for x in (0.015, 0.01, 0.3, 0.045, 0.5)], fdr=0.05)
    assert [c["status"] for c in judged][:2] == ["holds", "holds"]


def test_materiality_is_judged_on_the_ci_not_the_point_estimate():
    """The gradual-expansion reading of schema 2: 0.021 [0.013, 0.028] against 0.02 is undecided."""
    straddling = cell(p_above=1e-6, difference=0.021, ci=(0.013, 0.028), material="undecided")
    assert judge_cells([straddling])[0]["status"] == "undecided"
    negative = cell(p_below=1e-6, difference=-0.1, ci=(-0.15, -0.05))
    assert judge_cells([negative])[0]["status"] == "opposite"
    inside = cell(p_tost=1e-6, difference=0.001, ci=(-0.004, 0.006), material="immaterial")
    assert judge_cells([inside])[0]["status"] == "tied"
    no_ci = cell(ci=(None, None), material="undecided")
    assert judge_cells([no_ci])[0]["status"] == "untestable"


# --- the design measure: read from the proxy benchmark's report ----------------------------------------------


def report(rhos: dict[str, float], partial=True, column="cifar10_200ep"):
    rows = [
        {
            "column": column,
            "proxy": f"rank.{family}.{red}",
            "rho": rho - i * 0.01,
            "rho_ci": [rho - 0.05, rho + 0.03],
            "n": 315,
        }
        for family, rho in rhos.items()
        for i, red in enumerate(("stage1", "mean", "min"))
    ]
    rows.append(
        {"column": column, "proxy": "meco", "rho": 0.99, "rho_ci": [0.98, 0.995], "n": 315}
    )  # not a rank measure
    return {"path": "report.json", "report": {"correlations": rows, "settings": {"partial": partial, "n_scored": 616}}}


def test_the_design_measure_is_the_best_predicting_rank_measure():
    choice = choose_design_measure(
        report({"effective": 0.90, "rtol_1e-2": 0.73, "float32": 0.74, "effective_cov": 0.95})
    )
    assert choice["measure"] == "bound_relative_effective_rank" and choice["base_measure"] == "effective_rank"
    assert choice["proxy"] == "rank.effective.stage1" and choice["rho"] == 0.90 and choice["n"] == 315
    assert choice["partial"] is True and choice["source"] == "proxy_report"
    assert set(choice["candidates"]) == {
        "effective_rank",
        "rank_rtol_1e-2",
        "normalized_rank",
    }  # effective_cov: no column
    # regenerated with other numbers, the choice moves
    moved = choose_design_measure(report({"effective": 0.60, "rtol_1e-2": 0.73}, partial=False))
    assert moved["measure"] == "bound_relative_rank_rtol_1e-2" and moved["partial"] is False
    assert choose_design_measure(None)["source"] == "fallback"
    with pytest.raises(StudyError, match="no rank proxy"):
        choose_design_measure(report({"effective": 0.9}, column="cifar100_200ep"))


def test_findings_record_the_design_measure_and_read_it(tmp_path):
    table, meta = synthetic_table(levels(silu=0.9, relu=0.8), reps=8, **LINEAR)
    f = find_principles(table, meta, FAST, proxy_report=report({"effective": 0.9, "rtol_1e-2": 0.7}))
    assert f["settings"]["design_measure"] == "bound_relative_effective_rank"
    assert f["settings"]["design_measure_choice"]["rho_ci"] == [0.85, 0.93]
    assert f["recommendations"]["rules"]["nonlinearity"]["measure"] == "bound_relative_effective_rank"


def test_bad_proxy_reports_and_rule_studies_are_one_line_errors(tmp_path):
    with pytest.raises(StudyError, match="no proxy report"):
        load_proxy_report(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StudyError, match="not valid JSON"):
        load_proxy_report(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(StudyError, match="correlations"):
        load_proxy_report(tmp_path / "other.json")
    with pytest.raises(StudyError, match="no rule study"):
        load_rule_study(tmp_path)
    table, meta = synthetic_table(levels(silu=0.9), reps=2, **LINEAR)
    study = write_study(tmp_path / "study", table, meta)
    runner = CliRunner()
    for extra, message in (
        (["--proxy-report", str(tmp_path / "missing.json"), "--rules-in", "none"], "no proxy report"),
        (["--rules-in", str(tmp_path / "empty"), "--proxy-report", "none"], "no rule study"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = runner.invoke(main, ["principles", "--in", str(study), "--out", str(tmp_path / "f.json"), *extra])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
        assert not (tmp_path / "f.json").exists()


def test_rules_read_a_dedicated_rule_table():
    """A rule table for one part replaces the main table for that part only, and the record says which."""
    main_table, meta = synthetic_table(levels(silu=0.7, relu=0.9), reps=8, **LINEAR)
    rule_table, rule_meta = synthetic_table(levels(silu=0.9, relu=0.7), reps=16, noise=0.01, **LINEAR)
    out = design_rules(main_table, meta, FAST, rule_tables={"nonlinearity": (rule_table, rule_meta)})
    assert out["rules"]["nonlinearity"]["choice"] == "silu"
    assert out["rules"]["nonlinearity"]["rows"]["source"] == "rule study part 'nonlinearity'"
    assert out["rules"]["schedule"]["rows"]["source"] == "main study"
    with pytest.raises(StudyError, match="unknown rule tables"):
        design_rules(main_table, meta, FAST, rule_tables={"nonsense": (rule_table, rule_meta)})
