"""Principles on synthetic tables with a known answer: rankings, significance, thresholds, recommendations,
paper-finding verdicts that flip when the data flips, the findings schema, and the CLI's bad-input paths.
The rules with their uncertainty, the design measure and the cell verdicts: tests/rankstudy/findings/test_rules.py."""

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from rankstudy import StudyError
from rankstudy.cli import main
from rankstudy.findings import SCHEMA_VERSION, VERDICTS, Settings, find_principles, findings_markdown, write_findings
from rankstudy.findings.principles import CELL_STATUSES

from ..synthetic import synthetic_table, write_study

FAST = Settings(n_resamples=199, threshold_resamples=5)
NO_EXTRAS = ["--rules-in", "none", "--proxy-report", "none"]  # the CLI would read results/rules and the proxy report


def paper_like(silu=0.98, relu=0.80, drop=True, k=6.0):
    """Identity at the linear bound; relu/relu6 at `relu`, elu/silu at `silu`; all but identity fall as
    min(1, k/r) for r > k when `drop` (so every measure ≥ τ up to k/τ); stacks stay full rank."""

    def value(row):
        r, nl = row["expansion_ratio"], row["nonlinearity"]
        if nl == "identity":
            return min(1.0, 1.0 / r)
        level = silu if nl in ("elu", "silu") else relu
        shape = min(1.0, k / r) if drop and row["kind"] != "stack" else 1.0
        return level * shape if r > 1 else 1.0

    return value


@pytest.fixture(scope="module")
def findings():
    table, meta = synthetic_table(paper_like())
    return find_principles(table, meta, FAST, command="test")


def ranking(findings, measure="normalized_rank", kind="linear", band="2-4"):
    return next(r for r in findings["rankings"] if r["measure"] == measure and r["kind"] == kind and r["band"] == band)


def test_ranking_and_significance_of_constant_groups(findings):
    r = ranking(findings)
    order = [o["nonlinearity"] for o in r["order"]]
    assert order[:2] == ["elu", "silu"] and set(order[2:4]) == {"relu", "relu6"} and order[-1] == "identity"
    top = r["order"][0]
    assert top["mean"] == pytest.approx(0.98) and top["ci"] == [pytest.approx(0.98)] * 2
    assert set(top["significantly_above"]) == {"relu", "relu6", "identity"}  # not its twin elu/silu
    assert set(r["top_group"]) == {"elu", "silu"}


def test_no_significance_between_equal_noisy_groups():
    table, meta = synthetic_table(lambda row: 0.9, nonlinearities=("relu", "silu"), kinds=("linear",), noise=0.05)
    rankings = [x for x in find_principles(table, meta, FAST)["rankings"] if x["kind"] == "linear"]
    assert len(rankings) == 40  # (4 normalised + 4 bound-relative) measures × 5 bands
    false_alarms = sum(len(r["top_group"]) == 1 for r in rankings)
    assert false_alarms <= 6  # α = 0.05: about 2 expected
    assert all(r["order"][0]["mean"] == pytest.approx(0.9, abs=0.03) for r in rankings)


def test_thresholds_at_the_known_crossing(findings):
    """The known curve min(1, k/r)·level crosses τ at k·level/τ; the fit must find it for every measure."""
    curve = next(
        c
        for c in findings["curves"]
        if c["measure"] == "rank_rtol_1e-2" and c["kind"] == "linear" and c["nonlinearity"] == "relu"
    )
    # relu: 0.8 for r > 1, so it is below τ = 0.9 from the first grid point after r = 1
    assert curve["thresholds"]["0.9"]["empirical"]["status"] == "below_range"
    assert curve["thresholds"]["0.9"]["fit"]["ratio"] is None or curve["thresholds"]["0.9"]["fit"]["ratio"] < 1.3
    silu = next(
        c
        for c in findings["curves"]
        if c["measure"] == "rank_rtol_1e-2" and c["kind"] == "linear" and c["nonlinearity"] == "silu"
    )
    assert silu["thresholds"]["0.9"]["fit"]["ratio"] == pytest.approx(6 * 0.98 / 0.9, rel=0.03)
    assert silu["thresholds"]["0.9"]["empirical"]["status"] == "crossed"
    assert silu["thresholds"]["0.9"]["empirical"]["ratio"] <= 6 * 0.98 / 0.9
    stack = next(c for c in findings["curves"] if c["kind"] == "stack" and c["nonlinearity"] == "silu")
    assert stack["thresholds"]["0.9"]["fit"]["status"] == "above_range"


def test_recommendations(findings):
    rec = findings["recommendations"]
    nl = rec["rules"]["nonlinearity"]
    # elu and silu are planted equal: the best of the two is not decided, so no nonlinearity is recommended
    assert nl["best"] in ("elu", "silu") and nl["decided"] is False and rec["recommended_nonlinearity"] is None
    assert nl["lead"]["over"] in ("elu", "silu") and nl["lead"]["material"] == "immaterial"
    # the cap is read for the nonlinearity the variant keeps (ReXNet's SiLU): min(1, 6/r)·0.98 crosses τ at 6·0.98/τ
    assert rec["rules"]["expansion"]["nonlinearity"] == "silu"
    assert rec["max_expansion_per_layer"]["0.9"] == pytest.approx(6 * 0.98 / 0.9, rel=0.03)
    assert rec["max_expansion_per_layer"]["0.95"] == pytest.approx(6 * 0.98 / 0.95, rel=0.03)
    assert rec["gradual_expansion_beats_single"] is True
    schedule = rec["rules"]["schedule"]
    assert schedule["value"] > 0 and schedule["ci"][0] > 0 and schedule["choice"] == "linear"
    assert ["norm", "==", "bn"] in rec["rules"]["expansion"]["threshold"]["rows"]["filters"]


def test_gradual_flips_when_blocks_beat_stacks():
    def value(row):
        return 0.6 if row["kind"] == "stack" and row["expansion_ratio"] > 1 else 1.0

    table, meta = synthetic_table(value, kinds=("block", "stack"), nonlinearities=("relu", "silu"))
    assert find_principles(table, meta, FAST)["recommendations"]["gradual_expansion_beats_single"] is False


def test_paper_verdicts_reproduced_on_paper_like_data(findings):
    pf = findings["paper_findings"]
    assert pf["a"]["verdict"] == "reproduced"
    assert pf["b"]["parts"]["complicated_above_relu"]["verdict"] == "reproduced"
    assert pf["b"]["parts"]["nonlinear_above_linear"]["verdict"] == "reproduced"
    assert pf["b"]["verdict"] == "reproduced"
    cell = next(
        c
        for c in pf["b"]["parts"]["complicated_above_relu"]["cells"]
        if c["kind"] == "linear" and c["measure"] == "normalized_rank" and c["factor"] == "all"
    )
    assert cell["holds"] and cell["difference"] > 0.1


def test_paper_verdicts_flip_when_the_data_flips():
    table, meta = synthetic_table(paper_like(silu=0.80, relu=0.95, drop=False))
    pf = find_principles(table, meta, FAST)["paper_findings"]
    assert pf["b"]["parts"]["complicated_above_relu"]["verdict"] == "not_reproduced"
    assert pf["b"]["verdict"] == "conditional"  # nonlinear > linear still holds
    assert pf["a"]["verdict"] == "not_reproduced"  # no drop with expansion


def test_a_finding_that_holds_under_one_measure_only_says_so():
    def value(row):
        base = paper_like()(row)
        if not row["measure"].endswith("effective_rank") and row["nonlinearity"] != "identity":
            return 1.0  # default/rtol ranks: every nonlinearity full rank
        return base

    table, meta = synthetic_table(value)
    b2 = find_principles(table, meta, FAST)["paper_findings"]["b"]["parts"]["complicated_above_relu"]
    assert b2["measure"] == "bound_relative_rank_rtol_1e-2"
    # single layers have no bound-relative cells: their effects are read under the twin, equal there
    assert {e["measure"] for e in b2["effects"]} == {"rank_rtol_1e-2"}
    assert b2["verdict"] == "not_reproduced"  # read under the design measure, where the two are equal
    assert b2["by_measure"]["effective_rank"] == "reproduced"
    assert b2["by_measure"]["normalized_rank"] == "not_reproduced"
    assert "effective_rank: reproduced" in b2["summary"]
    under_effective = find_principles(table, meta, replace(FAST, design_measure="bound_relative_effective_rank"))
    assert under_effective["paper_findings"]["b"]["parts"]["complicated_above_relu"]["verdict"] == "reproduced"


def test_factor_dependence_is_reported_per_level():
    def value(row):  # silu beats relu only with unit-variance weights
        base = paper_like()(row)
        if row["init"] == "kaiming" and row["nonlinearity"] in ("elu", "silu") and row["expansion_ratio"] > 1:
            return paper_like()({**row, "nonlinearity": "relu"})
        return base

    table, meta = synthetic_table(value, kinds=("linear",))
    b2 = find_principles(table, meta, FAST)["paper_findings"]["b"]["parts"]["complicated_above_relu"]
    cells = {(c["factor"], c["level"]): c["holds"] for c in b2["cells"] if c["measure"] == "normalized_rank"}
    # kaiming: equal means, but ratios spread the values too widely for TOST to show them within ±0.02
    assert cells[("init", "unit")] is True and cells[("init", "kaiming")] is None
    # pooled it holds, and no level contradicts it (kaiming is undecided, not tied): reproduced, with the flip named
    assert b2["verdict"] == "reproduced"
    assert b2["factor_dependence"]["init"]["kaiming"]["normalized_rank"] == "not_reproduced"
    assert b2["factor_dependence"]["init"]["unit"]["normalized_rank"] == "reproduced"
    assert "init=kaiming" in b2["summary"] and "init=kaiming" in b2["where"]
    flip = next(x for x in b2["flips"] if x["factor"] == "init" and x["level"] == "kaiming")
    assert flip["status"] == "undecided" and flip["pooled_status"] == "holds" and flip["difference"] == 0


def structural_drop(bound_relative_drops: bool):
    """Blocks lose rank past (t + 1)·d_in = 7·d_in exactly as their structural bound says (normalised
    min(1, 7/r)); relative to the bound they stay full, unless `bound_relative_drops`. One layer and
    stacks: full rank for every nonlinearity, identity at the linear bound."""

    def value(row):
        r, nl, bound_rel = row["expansion_ratio"], row["nonlinearity"], row["measure"].startswith("bound_relative")
        if nl == "identity":
            return min(1.0, 1.0 / r)
        if row["kind"] == "block":
            return min(1.0, 3.0 / r) if bound_rel and bound_relative_drops else 1.0 if bound_rel else min(1.0, 7.0 / r)
        return 1.0

    return value


@pytest.mark.parametrize("drops", [False, True])
def test_structural_and_nonlinearity_causes_flip_with_the_data(drops):
    table, meta = synthetic_table(
        structural_drop(drops), kinds=("linear", "block", "stack"), nonlinearities=("identity", "relu", "silu")
    )
    f = find_principles(table, meta, FAST)
    a = {(x["kind"], x["measure"]): x["cause"] for x in f["paper_findings"]["a"]["attribution"]}
    assert {a["block", m] for m in ("normalized_rank", "rank_rtol_1e-2", "effective_rank")} == {
        "nonlinearity" if drops else "structural"
    }
    assert a["linear", "normalized_rank"] == "none"  # full rank: no drop at all
    rec = f["recommendations"]
    assert rec["gradual_expansion_beats_single"] is drops  # read relative to the bound only
    assert rec["structural"]["gradual_expansion_beats_single_normalized"] is True
    assert rec["structural"]["gradual_expansion_raises_bound"] is True
    assert rec["structural"]["block_cap_expansion"] == 7
    md = findings_markdown(f)
    assert "Structural, or caused by the nonlinearity?" in md and ("| **structural**" in md) is not drops


def test_input_dependence_is_reported():
    def value(row):  # complicated above ReLU on Gaussian inputs only (rows 8–15 of each group: fmnist)
        base = paper_like()(row)
        return (
            paper_like()({**row, "nonlinearity": "relu"})
            if row["seed"] >= 8 and row["nonlinearity"] in ("elu", "silu")
            else base
        )

    table, meta = synthetic_table(value, kinds=("linear",), reps=16)
    table["input_dist"] = np.where(table["seed"] >= 8, "fmnist", "gaussian")
    b2 = find_principles(table, meta, FAST)["paper_findings"]["b"]["parts"]["complicated_above_relu"]
    dep = b2["factor_dependence"]["input_dist"]
    assert dep["gaussian"]["normalized_rank"] == "reproduced" and dep["fmnist"]["normalized_rank"] == "not_reproduced"
    md = findings_markdown(find_principles(table, meta, FAST))
    assert "Verdicts by input distribution" in md and "| fmnist |" in md


def test_findings_are_strict_json_with_the_documented_keys(findings, tmp_path):
    text = json.dumps(findings, allow_nan=False)  # no NaN / inf anywhere
    assert findings["schema_version"] == SCHEMA_VERSION == 3
    for key in ("source", "settings", "recommendations", "paper_findings", "rankings", "curves", "versions"):
        assert key in findings
    rec = findings["recommendations"]
    for key in (
        "recommended_nonlinearity",
        "max_expansion",
        "max_expansion_per_layer",
        "gradual_expansion_beats_single",
        "structural",
        "rules",
    ):
        assert key in rec
    for name, rule in rec["rules"].items():
        assert {"choice", "decided", "reason", "measure", "baseline", "rows", "form"} <= set(rule), name
    assert findings["settings"]["design_measure"].startswith("bound_relative_")
    assert findings["settings"]["design_measure_choice"]["source"] == "fallback"  # no proxy report given
    for item in findings["paper_findings"].values():
        assert item["attribution"] and "factor_dependence" in next(iter((item.get("parts") or {"x": item}).values()))
    for item in findings["paper_findings"].values():
        assert item["verdict"] in VERDICTS
    a = findings["paper_findings"]["a"]
    assert {"effects", "flips", "where", "measure"} <= set(a)
    assert all(c["status"] in CELL_STATUSES for c in a["cells"])
    assert findings["source"]["seed"] == 0 and findings["source"]["n_rows"] > 0
    check = findings["bound_check"]["by_input_norm"]
    assert set(check) == {"gaussian/none", "gaussian/bn"}
    # paper_like puts identity exactly at min(1, 1/r) = its linear bound / d_out
    assert all(x["below"] == x["above"] == 0 and x["n"] > 0 for x in check.values())
    assert json.loads(text) == findings


def test_single_layer_cells_are_not_counted_twice(findings):
    """One layer's bound is d_out, so its bound-relative cells would duplicate its normalised ones."""
    cells = findings["paper_findings"]["a"]["cells"]
    single = {c["measure"] for c in cells if c["kind"] in ("linear", "depthwise")}
    blocks = {c["measure"] for c in cells if c["kind"] == "block"}
    assert not any(m.startswith("bound_relative_") for m in single)
    assert {m for m in blocks if m.startswith("bound_relative_")}  # blocks keep them
    att = [x for x in findings["paper_findings"]["a"]["attribution"] if x["kind"] == "linear"]
    assert att and all(x["holds_bound_relative"] == x["holds_normalized"] for x in att)


def test_write_findings_writes_json_and_markdown(tmp_path):
    table, meta = synthetic_table(paper_like(), kinds=("linear", "block", "stack"), reps=4)
    out = tmp_path / "sub" / "findings.json"
    f = write_findings(table, meta, out, settings=FAST, command="cmd")
    assert json.loads(out.read_text())["recommendations"] == f["recommendations"]
    md = (tmp_path / "sub" / "FINDINGS.md").read_text()
    assert md == findings_markdown(f)
    assert md.index("## Summary") < md.index("## Design rules") < md.index("## Appendix")
    assert f["paper_findings"]["a"]["verdict"].replace("_", " ") in md
    assert "### Nonlinearity after an expanding 1×1 conv" in md and "P(best)" in md


def test_bad_settings_and_tables():
    table, meta = synthetic_table(paper_like(), kinds=("linear",), reps=2)
    with pytest.raises(StudyError, match="unknown metric"):
        find_principles(table, meta, Settings(design_measure="nope"))
    with pytest.raises(StudyError, match="lacks columns"):
        find_principles(table.drop(columns=["normalized_effective_rank"]), meta)
    with pytest.raises(StudyError, match="no rows"):
        find_principles(table.iloc[:0], meta)


# --- CLI -------------------------------------------------------------------------------------------------


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_cli_principles_writes_files(tmp_path):
    table, meta = synthetic_table(paper_like(), kinds=("linear", "block", "stack"), reps=4)
    study = write_study(tmp_path / "study", table, meta)
    out = tmp_path / "res" / "findings.json"
    result = CliRunner().invoke(
        main, ["principles", "--in", str(study), "--out", str(out), "--taus", "0.9", *NO_EXTRAS]
    )
    assert result.exit_code == 0, result.output
    f = json.loads(out.read_text())
    assert list(f["recommendations"]["max_expansion_per_layer"]) == ["0.9"]
    assert f["command"].startswith("rankstudy ") and f["source"]["command"] == "synthetic"
    assert (tmp_path / "res" / "FINDINGS.md").exists()
    assert "recommended nonlinearity" in result.output


def test_cli_principles_bad_input(tmp_path):
    runner = CliRunner()
    assert "no results table" in _one_line_error(runner.invoke(main, ["principles", "--in", str(tmp_path / "none")]))
    table, meta = synthetic_table(paper_like(), kinds=("linear",), reps=2)
    old = write_study(tmp_path / "old", table, {**meta, "schema_version": 0})
    assert "schema version" in _one_line_error(runner.invoke(main, ["principles", "--in", str(old)]))
    ok = write_study(tmp_path / "ok", table, meta)
    assert "τ" in _one_line_error(
        runner.invoke(main, ["principles", "--in", str(ok), "--taus", "1.5", "--out", str(tmp_path / "f.json")])
    )


def test_findings_are_reproducible():
    table, meta = synthetic_table(
        paper_like(), kinds=("linear", "stack"), nonlinearities=("identity", "relu", "silu"), noise=0.02
    )
    one, two = (find_principles(table, meta, FAST) for _ in range(2))
    one.pop("created"), two.pop("created")
    assert one == two


def test_cli_principles_progress_bar_on_stderr_unless_quiet(tmp_path):
    table, meta = synthetic_table(paper_like(), kinds=("linear", "block", "stack"), reps=4)
    study = write_study(tmp_path / "study", table, meta)
    argv = ["principles", "--in", str(study), "--out", str(tmp_path / "f.json"), "--taus", "0.9", *NO_EXTRAS]
    shown = CliRunner().invoke(main, argv)
    assert shown.exit_code == 0, shown.output
    assert "findings: 100%" in shown.stderr and "findings:" not in shown.stdout
    quiet = CliRunner().invoke(main, [*argv, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "recommended nonlinearity" in quiet.stdout
