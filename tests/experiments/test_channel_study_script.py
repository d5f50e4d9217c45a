"""experiments/channel_study.py end to end on a tiny fake Fashion-MNIST: table, report, figures and command.txt
land in RESULTS, and a rerun trains nothing again."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import rexnet.training.data
from rexnet.training.data import prepare_fashion_mnist

from ..fake_fashion_mnist import fake_set, write_gz_folder

pytestmark = pytest.mark.slow  # end-to-end runs of the experiment scripts

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "channel_study.py"


@pytest.fixture
def script(tmp_path, monkeypatch):
    """Returns the script's module with a fake 40/10-image Fashion-MNIST standing in for the real one."""
    raw, spec = fake_set({"train": 40, "t10k": 10})
    src = write_gz_folder(tmp_path / "src", raw)
    module_spec = importlib.util.spec_from_file_location("channel_study_script", SCRIPT)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(
        rexnet.training.data,
        "prepare_fashion_mnist",
        lambda root: prepare_fashion_mnist(root, src, raw_files=spec, download=False),
    )
    return module


def test_script_writes_results_and_a_rerun_trains_nothing(tmp_path, script):
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = [
        "--n",
        "3",
        "--macs",
        "2000000",
        "--blocks",
        "4",
        "--train-limit",
        "64",
        "--batch-size",
        "20",
        "--noise-configs",
        "1",
        "--workers",
        "1",
        "--data-root",
        str(tmp_path / "data"),
        "--runs",
        str(runs),
        "--results",
        str(results),
    ]
    first = CliRunner().invoke(script.main, args)
    assert first.exit_code == 0, first.output
    table = pd.read_parquet(results / "results.parquet")
    assert list(zip(table.config_id, table.seed)) == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0)]
    assert ((table.macs - 2_000_000).abs() <= 40_000).all()
    report = json.loads((results / "report.json").read_text())
    assert report["study"]["n_runs"] == 5 and len(report["figures"]) == 3
    assert all((results / name).stat().st_size > 0 for name in report["figures"])
    command = (results / "command.txt").read_text()
    assert command.startswith("python experiments/channel_study.py --n 3 --macs 2000000")
    assert '"train_limit": 64' in command and '"torch":' in command
    stamps = {p.name: p.stat().st_mtime_ns for p in (runs / "rows").glob("cfg-*.json")}
    second = CliRunner().invoke(script.main, args)
    assert second.exit_code == 0, second.output
    assert {p.name: p.stat().st_mtime_ns for p in (runs / "rows").glob("cfg-*.json")} == stamps
    assert json.loads((results / "metadata.json").read_text())["resumed_runs"] == 5


def test_a_budget_below_the_smallest_network_is_one_line_and_exit_2(tmp_path, script):
    result = CliRunner().invoke(
        script.main,
        [
            "--n",
            "3",
            "--macs",
            "1000",
            "--blocks",
            "4",
            "--noise-configs",
            "0",
            "--workers",
            "1",
            "--data-root",
            str(tmp_path / "data"),
            "--runs",
            str(tmp_path / "r"),
            "--results",
            str(tmp_path / "res"),
        ],
    )
    assert result.exit_code == 2 and "raise the budget" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "res").exists() and not (tmp_path / "r" / "manifest.json").exists()
