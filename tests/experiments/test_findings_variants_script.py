"""experiments/findings_variants.py end to end on a tiny fake Fashion-MNIST and synthetic findings: every
model at the same MACs, the table agrees with each run's files, an ablation equal to ReXNet reuses its run,
and a rerun trains nothing."""

import importlib.util
import json
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


def test_experiment_writes_a_consistent_table_and_a_rerun_skips(tmp_path, script):
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
    first = CliRunner().invoke(script.main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count(": trained") == 3  # MobileNetV2, ReXNet, variant; the ablation is ReXNet itself

    per_run = pd.read_csv(results / "runs.csv")
    table = pd.read_csv(results / "table.csv").set_index("model")
    assert list(table.index) == ["mobilenetv2", "rexnet", "variant", "variant_rexnet_nonlinearity"]
    budget = table.loc["rexnet", "macs"]
    assert (abs(table["macs"] / budget - 1) <= 0.02).all()  # all within 2% of ReXNet-0.5×'s MACs
    assert table.loc["variant_rexnet_nonlinearity", "top1_mean"] == table.loc["rexnet", "top1_mean"]
    variant = load_arch(results / "archs" / "variant.json")
    assert variant.provenance["choices"]["nonlinearity"]["finding"]["key"] == "recommendations.recommended_nonlinearity"
    assert {b.act for b in variant.blocks if b.expansion != 1} == {"gelu"}
    for row in per_run.itertuples():
        assert table.loc[row.model, "top1_mean"] == pytest.approx(per_run[per_run.model == row.model].test_top1.mean())
        ranks = json.loads((runs / row.run / "feature_ranks.json").read_text())
        assert ranks["rank_rtol_1e-2"] == pytest.approx(per_run.loc[row.Index, "rank_rtol_1e-2"])
        assert 0 < ranks["effective_rank"] <= ranks["rank_float32"] <= 1
    spearman = pd.read_csv(results / "spearman.csv")
    assert set(spearman["measure"]) == {"rank_rtol_1e-2", "effective_rank", "rank_float32"}
    assert (spearman["runs"] == 3).all()  # distinct runs: the ablation's run is ReXNet's
    assert (table["timed_img_per_s"] > 0).all()  # every model timed, the ablation with ReXNet's speed
    assert table.loc["variant_rexnet_nonlinearity", "timed_img_per_s"] == table.loc["rexnet", "timed_img_per_s"]
    assert (results / "figure.png").stat().st_size > 0 and (results / "curves.png").stat().st_size > 0
    assert "experiments/findings_variants.py --findings" in (results / "command.txt").read_text()

    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth")}
    again = CliRunner().invoke(script.main, args)
    assert again.exit_code == 0, again.output
    assert again.output.count(": skipped") == 3 and ": trained" not in again.output
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth")} == stamps
    timed = ["timed_img_per_s"]  # timed again on every call: a measurement, not a result of the runs
    assert pd.read_csv(results / "runs.csv").drop(columns=timed).equals(per_run.drop(columns=timed))


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
    assert result.exit_code != 0 and "schema_version 99" in result.output
    assert not (tmp_path / "runs").exists() and not (tmp_path / "res").exists()


def test_spearman_follows_the_order_of_rank_and_accuracy(script):
    acc = [90.0, 90.5, 91.0, 91.2, 91.9]
    rows = pd.DataFrame(
        {
            "test_top1": acc,
            "rank_rtol_1e-2": [0.1, 0.2, 0.3, 0.4, 0.5],
            "effective_rank": [0.5, 0.4, 0.3, 0.2, 0.1],
            "rank_float32": [0.2, 0.1, 0.4, 0.3, 0.5],
        }
    )
    table = script.spearman_table(rows).set_index("measure")
    assert table.loc["rank_rtol_1e-2", "spearman_rho"] == pytest.approx(1.0)
    assert table.loc["effective_rank", "spearman_rho"] == pytest.approx(-1.0)
    assert table.loc["rank_float32", "spearman_rho"] == pytest.approx(0.8)  # 1 - 6·Σd²/(n(n²-1)), Σd² = 4
    low, high = table.loc["rank_float32", ["ci_low", "ci_high"]]
    assert -1 <= low < 0.8 <= high <= 1
