"""experiments/probe.py end to end on two tiny runs trained on a fake Fashion-MNIST, laid out as
experiments/findings_variants.py's runs: the init network is exactly the one training started from, it is probed
under batch and running BN statistics and the trained one under running statistics, and the summary agrees with
the per-layer table."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import rexnet.training.data
from rexnet.arch import save_arch
from rexnet.checkpoint import read_checkpoint
from rexnet.training.data import prepare_fashion_mnist
from rexnet.training.train import TrainConfig, train

from ..fake_fashion_mnist import fake_set, write_gz_folder
from ..rexnet.train_helpers import TINY

pytestmark = pytest.mark.slow  # end-to-end runs of the experiment scripts

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "probe.py"


@pytest.fixture
def script(tmp_path, monkeypatch):
    """Returns the script's module with a fake 20/24-image Fashion-MNIST standing in for the real one."""
    raw, spec = fake_set({"train": 20, "t10k": 24})
    src = write_gz_folder(tmp_path / "src", raw)
    module_spec = importlib.util.spec_from_file_location("probe_script", SCRIPT)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    monkeypatch.setattr(
        rexnet.training.data,
        "prepare_fashion_mnist",
        lambda root: prepare_fashion_mnist(root, src, raw_files=spec, download=False),
    )
    return module


def tiny_run(tmp_path: Path, name: str, folder: str, **changes) -> Path:
    """Returns the folder RUNS/FOLDER of a 1-epoch run of the tiny block table (saved as NAME.json, the name
    the script labels it with) on the fake data."""
    arch = tmp_path / f"{name}.json"
    save_arch(replace(TINY, name=name), arch)
    cfg = TrainConfig(
        model=str(arch),
        data="fashion-mnist",
        data_root=str(tmp_path / "data"),
        out=str(tmp_path / "runs" / folder),
        epochs=1,
        batch_size=10,
        img_size=16,
        device="cpu",
        progress=False,
        **changes,
    )
    train(cfg)
    return Path(cfg.out)


def test_probe_script_on_tiny_runs(tmp_path, script):
    # lr 0: the trained weights are the initial ones (the BN running statistics still move)
    frozen = tiny_run(tmp_path, "rexnet", "rexnet_0123abcd_s0", lr=0.0, seed=2)
    trained = tiny_run(tmp_path, "mobilenetv2", "mobilenetv2_89abcdef_s0", seed=5)
    (tmp_path / "runs" / "rexnet_0123abcd_s1").mkdir()  # another seed's folder: not a seed-0 run

    init = script.init_model(frozen / "model.pth")
    saved = read_checkpoint(frozen / "model.pth").state_dict
    for name, param in init.named_parameters():
        assert torch.equal(param, saved[name]), name
    other = script.init_model(trained / "model.pth")  # another seed: other weights
    assert not torch.equal(other.features[0].weight, init.features[0].weight)
    assert script.find_runs(tmp_path / "runs") == [frozen, trained]

    results = tmp_path / "results"
    args = [
        "--runs",
        str(tmp_path / "runs"),
        "--data-root",
        str(tmp_path / "data"),
        "--n-images",
        "24",
        "--max-columns",
        "512",
        "--batch-size",
        "12",
        "--results",
        str(results),
    ]
    result = CliRunner().invoke(script.main, args)
    assert result.exit_code == 0, result.output

    layers = pd.read_csv(results / "layers.csv")
    assert list(layers.columns[:3]) == ["model", "state", "bn"]
    groups = layers.groupby(["model", "state", "bn"], sort=False).size()
    assert list(groups.index) == [
        (model, state, bn)
        for model in ("rexnet", "mobilenetv2")
        for state, bn in (("init", "batch"), ("init", "running"), ("trained", "running"))
    ]
    assert groups.nunique() == 1  # the same layers in every state
    # the two init modes probe the same weights, but the untrained running statistics (0 / 1) give other ranks
    for model in ("rexnet", "mobilenetv2"):
        init_rows = layers[(layers["model"] == model) & (layers["state"] == "init")]
        batch, running = (init_rows[init_rows["bn"] == bn].reset_index() for bn in ("batch", "running"))
        assert list(batch["name"]) == list(running["name"])
        assert (batch["nuclear_norm"] - running["nuclear_norm"]).abs().max() > 1e-3, model
    assert set(layers["role"]) == {"stem", "expand", "depthwise", "block", "penultimate", "pooled"}
    assert layers.groupby(["model", "state", "bn"])["relative_depth"].agg(["min", "max"]).eq([0.0, 1.0]).all().all()
    summary = pd.read_csv(results / "summary.csv")
    assert set(zip(summary["state"], summary["bn"])) == {("init", "batch"), ("init", "running"), ("trained", "running")}
    used = layers[~layers["capped"]]
    for row in summary[summary["by"] == "role"].itertuples():
        g = used[
            (used["model"] == row.model)
            & (used["state"] == row.state)
            & (used["bn"] == row.bn)
            & (used["role"] == row.group)
        ]
        assert summary.loc[row.Index, "rank_rtol_1e-2"] == pytest.approx(g["normalized_rank_rtol_1e-2"].mean())
    md = (results / "summary.md").read_text()
    assert "**Which keeps more rank** (rexnet − mobilenetv2)" in md and "**Does training change it**" in md
    assert "| rexnet | init | running |" in md and "**The untrained running statistics**" in md
    assert (results / "depth.png").stat().st_size > 0
    command = (results / "command.txt").read_text()
    assert f"--runs {tmp_path / 'runs'}" in command and '"seed": 0' in command and '"torch":' in command
    assert '"states": [{"state": "init", "bn": "batch"}' in command and '"bn_batch_sizes": [12, 12]' in command

    # explicit --run folders instead of --runs'
    result = CliRunner().invoke(script.main, args + ["--run", str(trained), "--results", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(tmp_path / "one" / "layers.csv")["model"]) == {"mobilenetv2"}


def test_a_missing_run_names_the_command_that_trains_it(tmp_path, script):
    runs = tmp_path / "runs"
    (runs / "rexnet_0123abcd_s0").mkdir(parents=True)
    (runs / "rexnet_0123abcd_s0" / "model.pth").write_bytes(b"")
    (runs / "mobilenetv2_89abcdef_s0").mkdir()  # started, not finished: no model.pth
    for args, message in [
        (["--runs", str(runs)], "mobilenetv2_89abcdef_s0 is not finished"),
        (["--runs", str(tmp_path / "none")], f"no run {tmp_path / 'none'}/rexnet_<hash>_s0"),
    ]:
        result = CliRunner().invoke(script.main, args + ["--results", str(tmp_path / "r")])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.output
        assert message in lines[0] and "train it with `python experiments/findings_variants.py`" in lines[0]
    assert not (tmp_path / "r").exists()
