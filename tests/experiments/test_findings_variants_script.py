"""experiments/findings_variants.py end to end on a tiny fake Fashion-MNIST and synthetic findings: every
model at the same MACs, the table agrees with each run's files, the factorial cell equal to ReXNet reuses its
run, a rerun trains nothing, unfinished runs are reported as partial, the committed run records keep finished
runs on a checkout without run folders (and stop on foreign ones), rows of a report written before records
existed are adopted; Spearman over architectures and the factorial contrasts on constructed rows."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import rexnet.training.data
from rexnet import load_arch
from rexnet.training.data import prepare_fashion_mnist

from ..fake_fashion_mnist import fake_set, write_gz_folder
from ..rexnet.test_variants import synthetic_findings

pytestmark = pytest.mark.slow  # end-to-end runs of the experiment scripts

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "findings_variants.py"


@pytest.fixture
def script(tmp_path, monkeypatch):
    """Returns the script's module with a fake 20/10-image Fashion-MNIST standing in for the real one."""
    raw, spec = fake_set({"train": 20, "t10k": 10})
    src = write_gz_folder(tmp_path / "src", raw)
    module_spec = importlib.util.spec_from_file_location("findings_variants_script", SCRIPT)
    module = importlib.util.module_from_spec(module_spec)
    monkeypatch.setitem(sys.modules, module_spec.name, module)  # dataclasses look their module up there
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(
        rexnet.training.data,
        "prepare_fashion_mnist",
        lambda root: prepare_fashion_mnist(root, src, raw_files=spec, download=False),
    )
    return module


def full_run(tmp_path, script) -> tuple[list[str], Path, Path, pd.DataFrame]:
    """Runs the whole experiment, checks it, and returns (its arguments, runs, results, runs.csv less the timed
    column)."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    # Findings whose only rule that differs from ReXNet is the nonlinearity (GELU; cap 8.5 does not bind; linear).
    findings = tmp_path / "findings.json"
    findings.write_text(json.dumps(synthetic_findings(nonlinearity="gelu", cap=8.5, gradual=True)))
    args = [
        "--findings",
        str(findings),
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--cell-seeds",
        "0",
        "--batch-size",
        "10",
        "--speed-steps",
        "2",
        "--data-root",
        str(tmp_path / "data"),
        "--runs",
        str(runs),
        "--results",
        str(results),
    ]
    (results / "archs").mkdir(parents=True)
    (results / "archs" / "variant_rexnet_expansion.json").write_text("{}")  # a model of an earlier plan
    first = CliRunner().invoke(script.main, args)
    assert first.exit_code == 0, first.output
    # MobileNetV2, ReXNet, the GELU variant and three factorial cells; the SiLU/6 cell is ReXNet itself.
    assert first.output.count(": trained") == 6

    per_run = pd.read_csv(results / "runs.csv")
    table = pd.read_csv(results / "table.csv").set_index("model")
    assert list(table.index) == ["mobilenetv2", "rexnet", "variant", "relu6_e3", "relu6_e6", "silu_e3", "silu_e6"]
    budget = table.loc["rexnet", "macs"]
    assert (abs(table["macs"] / budget - 1) <= 0.02).all()  # all within 2% of ReXNet-0.5×'s MACs
    assert table.loc["silu_e6", "top1_mean"] == table.loc["rexnet", "top1_mean"]
    variant = load_arch(results / "archs" / "variant.json")
    assert variant.provenance["choices"]["nonlinearity"]["finding"]["key"] == "recommendations.recommended_nonlinearity"
    assert {b.act for b in variant.blocks if b.expansion != 1} == {"gelu"}
    assert {p.stem for p in (results / "archs").glob("*.json")} == set(table.index)  # the stale table removed
    cell = load_arch(results / "archs" / "relu6_e3.json")
    assert {b.act for b in cell.blocks if b.expansion != 1} == {"relu6"}
    assert max(b.expansion for b in cell.blocks) == 3
    for row in per_run.itertuples():
        assert table.loc[row.model, "top1_mean"] == pytest.approx(per_run[per_run.model == row.model].test_top1.mean())
        ranks = json.loads((runs / row.run / "feature_ranks.json").read_text())
        assert ranks["rank_rtol_1e-2"] == pytest.approx(per_run.loc[row.Index, "rank_rtol_1e-2"])
        assert 0 < ranks["effective_rank"] <= ranks["rank_float32"] <= 1
    spearman = pd.read_csv(results / "spearman.csv")
    assert set(spearman["measure"]) == {"rank_rtol_1e-2", "effective_rank", "rank_float32"}
    assert (spearman["architectures"] == 6).all() and (spearman["runs"] == 6).all()  # silu_e6's run is ReXNet's
    effects = pd.read_csv(results / "contrasts.csv").set_index("contrast")
    top1 = table["top1_mean"]
    assert effects.loc["ReLU6 − SiLU at expansion 6", "estimate"] == pytest.approx(top1["relu6_e6"] - top1["rexnet"])
    assert effects.loc["variant − ReXNet", "estimate"] == pytest.approx(top1["variant"] - top1["rexnet"])
    assert (effects["verdict"] == "inconclusive").all() and effects["ci_low"].isna().all()  # one seed: no CI
    assert (table["timed_img_per_s"] > 0).all()  # every model timed, silu_e6 with ReXNet's speed
    assert table.loc["silu_e6", "timed_img_per_s"] == table.loc["rexnet", "timed_img_per_s"]
    assert (results / "figure.png").stat().st_size > 0 and (results / "curves.png").stat().st_size > 0
    assert "experiments/findings_variants.py --findings" in (results / "command.txt").read_text()
    assert (results / "table.md").read_text().startswith("Complete: 6 of 6 runs.")

    # Each finished run has its record beside the results: the row runs.csv holds, and its epochs.
    records = {p.stem: json.loads(p.read_text()) for p in (results / "runs").glob("*.json")}
    assert set(records) == set(per_run["run"])
    for row in per_run.drop_duplicates("run").to_dict("records"):
        record = records[row["run"]]
        assert record["source"] == "run folder" and record["recipe"]["epochs"] == 1
        assert {k: row[k] for k in record["summary"]} == pytest.approx(record["summary"])
        assert [e["epoch"] for e in record["epochs"]] == [1]

    # An unfinished run (no model.pth, no record): --no-train reports the others, labelled partial, trains nothing.
    (next(runs.glob("relu6_e3_*_s0")) / "model.pth").unlink()
    next((results / "runs").glob("relu6_e3_*_s0.json")).unlink()
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth")}
    partial = CliRunner().invoke(script.main, [*args, "--no-train"])
    assert partial.exit_code == 0, partial.output
    assert ": trained" not in partial.output
    assert (results / "table.md").read_text().startswith("**PARTIAL: 5 of 6 runs finished**; missing: relu6_e3_")
    assert "relu6_e3" not in set(pd.read_csv(results / "runs.csv")["model"])
    command = (results / "command.txt").read_text()
    assert "PARTIAL" in command
    assert "--no-train" in command.splitlines()[0].split() and "False" not in command  # the flag as typed

    # The same command again finishes the missing run only and leaves the finished ones as they were.
    again = CliRunner().invoke(script.main, args)
    assert again.exit_code == 0, again.output
    # model.pth gone, its last-epoch checkpoint kept: the run resumes there and writes model.pth again.
    # The recorded runs are not handed to the trainer at all.
    assert again.output.count("== ") == 1 and again.output.count(": resumed") == 1
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth") if p in stamps} == stamps
    assert (results / "table.md").read_text().startswith("Complete: 6 of 6 runs.")
    timed = ["timed_img_per_s"]  # timed again on every call: a measurement, not a result of the runs
    keep = pd.read_csv(results / "runs.csv").drop(columns=timed)
    assert keep[keep.model != "relu6_e3"].equals(per_run[per_run.model != "relu6_e3"].drop(columns=timed))
    return args, runs, results, keep


def test_experiment_writes_a_consistent_table_and_a_rerun_skips(tmp_path, script):
    # One experiment (training is the costly part), then what later sittings meet, stage by stage.
    args, runs, results, before = full_run(tmp_path, script)
    args = [*args, "--speed-steps", "0"]
    adopts_runs_reported_before_records_existed(script, args, runs, results, before)
    records_keep_finished_runs_when_run_folders_are_gone(script, args, runs, results, before)


def records_keep_finished_runs_when_run_folders_are_gone(script, args, runs, results, before):
    timed = ["timed_img_per_s"]

    # A fresh checkout: the records but no run folder. Nothing is retrained and the table is the same.
    shutil.rmtree(runs)
    fresh = CliRunner().invoke(script.main, args)
    assert fresh.exit_code == 0, fresh.output
    assert "== " not in fresh.output and not runs.exists()
    assert (results / "table.md").read_text().startswith("Complete: 6 of 6 runs.")
    assert pd.read_csv(results / "runs.csv").drop(columns=timed).equals(before)

    # A record trained with other settings, or not a record at all: exit 2, one line, nothing rewritten.
    files = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    other = CliRunner().invoke(script.main, [*args, "--epochs", "2"])
    assert other.exit_code == 2 and "other settings (epochs 1 there, 2 now, " in other.output
    errors = [line for line in other.output.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in other.output and len(errors) == 1 and "delete it to retrain" in errors[0]
    record = next((results / "runs").glob("rexnet_*_s0.json"))
    record.write_text('{"schema": "something else"}')
    foreign = CliRunner().invoke(script.main, args)
    assert foreign.exit_code == 2 and f"{record} is not a record of this experiment's runs" in foreign.output
    record.write_text("{not json")
    assert CliRunner().invoke(script.main, args).exit_code == 2
    assert {p: p.read_bytes() for p in files if p != record} == {p: b for p, b in files.items() if p != record}
    assert sorted(p for p in results.rglob("*") if p.is_file()) == sorted(files)


def adopts_runs_reported_before_records_existed(script, args, runs, results, before):
    args = [*args, "--no-train"]
    # The state of an earlier report: runs.csv and command.txt, no records; one run's folder is gone.
    shutil.rmtree(results / "runs")
    gone = next(runs.glob("silu_e3_*_s0"))
    shutil.rmtree(gone)
    command = (results / "command.txt").read_text()

    # Reported under another recipe (2 epochs): not adopted, so the run is missing.
    (results / "command.txt").write_text(command.replace('"epochs": 1', '"epochs": 2'))
    other = CliRunner().invoke(script.main, args)
    assert other.exit_code == 0, other.output
    assert (results / "table.md").read_text().startswith(f"**PARTIAL: 5 of 6 runs finished**; missing: {gone.name}.")

    # Restore the earlier report (its row of the gone run back in runs.csv, its command.txt): the row is adopted.
    shutil.rmtree(results / "runs")
    (results / "command.txt").write_text(command)
    before.assign(timed_img_per_s=0.0).to_csv(results / "runs.csv", index=False)
    adopted = CliRunner().invoke(script.main, args)
    assert adopted.exit_code == 0, adopted.output
    assert f"recorded 1 runs an earlier report lists (their run folders are gone): {gone.name}" in adopted.output
    record = json.loads((results / "runs" / f"{gone.name}.json").read_text())
    assert record["epochs"] is None and "written before run records existed" in record["source"]
    table_md = (results / "table.md").read_text()
    assert table_md.startswith("Complete: 6 of 6 runs.") and "curves.png leaves out 1 runs" in table_md
    after = pd.read_csv(results / "runs.csv").drop(columns=["timed_img_per_s"])
    assert after.equals(before)  # every row as reported, the adopted one included


def test_foreign_findings_stop_before_anything_is_written(tmp_path, script):
    bad = tmp_path / "findings.json"
    bad.write_text(json.dumps({"schema_version": 99}))
    result = CliRunner().invoke(
        script.main,
        [
            "--findings",
            str(bad),
            "--data-root",
            str(tmp_path / "data"),
            "--runs",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "res"),
        ],
    )
    assert result.exit_code == 2 and "schema_version 99" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "res").exists()


def test_spearman_follows_the_order_of_rank_and_accuracy_over_architectures(script):
    acc = [90.0, 90.5, 91.0, 91.2, 91.9]
    rows = pd.DataFrame(
        {
            "run": [f"m{i}_0000000{i}_s0" for i in range(5)],
            "label": [f"m{i}" for i in range(5)],
            "seed": 0,
            "test_top1": acc,
            "rank_rtol_1e-2": [0.1, 0.2, 0.3, 0.4, 0.5],
            "effective_rank": [0.5, 0.4, 0.3, 0.2, 0.1],
            "rank_float32": [0.2, 0.1, 0.4, 0.3, 0.5],
        }
    )
    # A second seed of every architecture that keeps each architecture's mean: ρ over architectures is unchanged.
    second = rows.assign(run=rows["run"].str.replace("_s0", "_s1"), seed=1)
    both = pd.concat([rows, second], ignore_index=True)
    table = script.spearman_table(both).set_index("measure")
    assert (table["architectures"] == 5).all() and (table["runs"] == 10).all()
    assert table.loc["rank_rtol_1e-2", "spearman_rho"] == pytest.approx(1.0)
    assert table.loc["effective_rank", "spearman_rho"] == pytest.approx(-1.0)
    assert table.loc["rank_float32", "spearman_rho"] == pytest.approx(0.8)  # 1 - 6·Σd²/(n(n²-1)), Σd² = 4
    # Exact permutation p of a perfect order of 5: 2 of the 120 orders reach |ρ| = 1.
    assert table.loc["rank_rtol_1e-2", "p_permutation"] == pytest.approx(2 / 120)
    # Identical seeds: the seed bootstrap cannot move ρ.
    assert table.loc["rank_float32", ["ci_low", "ci_high"]].tolist() == pytest.approx([0.8, 0.8])


def test_factorial_contrasts_read_the_right_cells(script):
    cells = {"relu6_e3": 1.0, "relu6_e6": 2.0, "silu_e3": 3.0, "silu_e6": 5.0, "rexnet": 5.0, "mobilenetv2": 4.0}
    noise = [-0.01, 0.0, 0.01]
    rows = pd.DataFrame(
        [{"model": k, "test_top1": v + e, "seed": i} for k, v in cells.items() for i, e in enumerate(noise)]
    )
    models = [script.Model(k, k, None, (0, 1, 2), "x") for k in ("mobilenetv2", "rexnet")]
    models += [script.Model("variant", "variant", None, (0, 1, 2), "x", same_as="rexnet")]
    models += [script.Model(k, k, None, (0, 1, 2), "x") for k in script.FACTORIAL]
    effects = script.contrasts(rows, models).set_index("contrast")
    assert "variant − ReXNet" not in effects.index  # the variant is ReXNet: no contrast with itself
    assert effects.loc["ReLU6 − SiLU after expansions (main effect)", "estimate"] == pytest.approx((1 + 2 - 3 - 5) / 2)
    assert effects.loc["expansion 3 − 6 (main effect)", "estimate"] == pytest.approx((1 + 3 - 2 - 5) / 2)
    assert effects.loc["interaction (ReLU6−SiLU at exp 3) − (at exp 6)", "estimate"] == pytest.approx(1 - 2 - 3 + 5)
    assert effects.loc["ReXNet − MobileNetV2", "estimate"] == pytest.approx(1.0)
    assert (effects["verdict"] == "different").all()  # planted effects ≥ 1 point with σ = 0.01
