"""experiments/fashion_mnist.py end to end on a tiny fake Fashion-MNIST: both models × 2 seeds, the table agrees
with each run's own files, and a rerun skips finished runs instead of training them again."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import rexnet.training.data
from rexnet.training.data import prepare_fashion_mnist

from ..fake_fashion_mnist import fake_set, write_gz_folder

pytestmark = pytest.mark.slow  # end-to-end runs of the experiment scripts

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "fashion_mnist.py"


@pytest.fixture
def script(tmp_path, monkeypatch):
    """Returns the script's module with a fake 20/10-image Fashion-MNIST standing in for the real one."""
    raw, spec = fake_set({"train": 20, "t10k": 10})
    src = write_gz_folder(tmp_path / "src", raw)
    module_spec = importlib.util.spec_from_file_location("fashion_mnist_script", SCRIPT)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    # load_data prepares the files itself and would otherwise verify them against the real checksums
    monkeypatch.setattr(
        rexnet.training.data,
        "prepare_fashion_mnist",
        lambda root: prepare_fashion_mnist(root, src, raw_files=spec, download=False),
    )
    return module


def test_study_writes_a_consistent_table_and_a_rerun_skips(tmp_path, script):
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = [
        "--epochs",
        "1",
        "--seeds",
        "0,1",
        "--batch-size",
        "10",
        "--data-root",
        str(tmp_path / "data"),
        "--runs",
        str(runs),
        "--results",
        str(results),
    ]
    first = CliRunner().invoke(script.main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count(": trained") == 4 and "matched baseline mobilenetv2_" in first.output

    per_run = pd.read_csv(results / "runs.csv")
    table = pd.read_csv(results / "table.csv").set_index("model")
    assert sorted(per_run["seed"]) == [0, 0, 1, 1] and list(table.index)[0] == "rexnet_050"
    assert (table["seeds"] == 2).all()
    for model, rows in per_run.groupby("model"):
        assert table.loc[model, "top1_mean"] == pytest.approx(rows["test_top1"].mean())
        assert table.loc[model, "top1_std"] == pytest.approx(rows["test_top1"].std())
        for row in rows.itertuples():  # each row comes from that run's own metrics and evaluation
            metrics = pd.read_csv(runs / f"{model}_s{row.seed}" / "metrics.csv")
            assert row.img_per_s == pytest.approx(metrics["img_per_s"].median())
            assert 0 <= row.test_top1 <= 100 and 0 < row.feature_rank <= 1
    # matched MACs: the baseline's are within one width step of ReXNet's, and both models are really different
    rex, mob = table.loc["rexnet_050"], table.drop(index="rexnet_050").iloc[0]
    assert abs(mob["macs"] - rex["macs"]) / rex["macs"] < 0.15 and mob["params"] != rex["params"]
    assert (results / "curves.png").stat().st_size > 0
    command = (results / "command.txt").read_text()
    assert "experiments/fashion_mnist.py --epochs 1" in command and '"seeds": [0, 1]' in command
    assert '"small_input": "s16"' in command and f'"torch": "{torch.__version__.split("+")[0]}' in command

    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth")}
    again = CliRunner().invoke(script.main, args)
    assert again.exit_code == 0, again.output
    assert again.output.count(": skipped") == 4 and ": trained" not in again.output
    assert {p: p.stat().st_mtime_ns for p in runs.glob("*/model.pth")} == stamps
    assert pd.read_csv(results / "runs.csv").equals(per_run)
