"""experiments/proxy_benchmark.py end to end on a few cells (fake fmnist images, tests/rankstudy/conftest.py):
table, report and command.txt land in RESULTS, a partial sitting says so, and the rerun finishes it."""

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.slow  # end-to-end runs of the experiment scripts

SCRIPT = Path(__file__).resolve().parents[3] / "experiments" / "proxy_benchmark.py"


def test_script_partial_then_complete(tmp_path):
    spec = importlib.util.spec_from_file_location("proxy_benchmark_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs, results = tmp_path / "runs", tmp_path / "results"
    args = ["--n", "3", "--batch", "4", "--workers", "1", "--runs", str(runs), "--results", str(results)]
    res = CliRunner().invoke(module.main, [*args, "--max-units", "1"])
    assert res.exit_code == 0, res.output
    assert "partial: 1 of 3" in res.output
    assert json.loads((results / "metadata.json").read_text())["partial"]
    assert (results / "REPORT.md").read_text().count("**Partial**: 1 of 3") == 1
    res = CliRunner().invoke(module.main, args)
    assert res.exit_code == 0, res.output
    assert "(complete)" in res.output and "--max-units" not in (results / "command.txt").read_text()
    assert len(list((runs / "scores").glob("arch-*.json"))) == 3
    res = CliRunner().invoke(
        module.main, [*args[:-4], "--runs", str(runs), "--results", str(results), "--inputs", "nope"]
    )
    assert res.exit_code == 2 and "unknown inputs" in res.output
