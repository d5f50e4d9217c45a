"""experiments/probe.py end to end on two tiny runs trained on a fake Fashion-MNIST: the init network is exactly
the one training started from, and the summary agrees with the per-layer table."""

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


def tiny_run(tmp_path: Path, name: str, **changes) -> Path:
    """Returns the folder of a 1-epoch run of the tiny block table (saved as NAME.json) on the fake data."""
    arch = tmp_path / f"{name}.json"
    save_arch(replace(TINY, name=name), arch)
    cfg = TrainConfig(
        model=str(arch),
        data="fashion-mnist",
        data_root=str(tmp_path / "data"),
        out=str(tmp_path / name),
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
    frozen = tiny_run(tmp_path, "frozen", lr=0.0, seed=2)  # lr 0: the trained weights are the initial ones
    trained = tiny_run(tmp_path, "trained", seed=5)

    init = script.init_model(frozen / "model.pth")
    saved = read_checkpoint(frozen / "model.pth").state_dict
    for name, param in init.named_parameters():
        assert torch.equal(param, saved[name]), name
    other = script.init_model(trained / "model.pth")  # another seed: other weights
    assert not torch.equal(other.features[0].weight, init.features[0].weight)

    results = tmp_path / "results"
    args = [
        "--run",
        str(frozen),
        "--run",
        str(trained),
        "--data-root",
        str(tmp_path / "data"),
        "--n-images",
        "24",
        "--max-columns",
        "512",
        "--results",
        str(results),
    ]
    result = CliRunner().invoke(script.main, args)
    assert result.exit_code == 0, result.output

    layers = pd.read_csv(results / "layers.csv")
    groups = layers.groupby(["model", "state"], sort=False).size()
    assert list(groups.index) == [
        ("frozen", "init"),
        ("frozen", "trained"),
        ("trained", "init"),
        ("trained", "trained"),
    ]
    assert set(layers["role"]) == {"stem", "expand", "depthwise", "block", "penultimate", "pooled"}
    assert layers.groupby(["model", "state"])["relative_depth"].agg(["min", "max"]).eq([0.0, 1.0]).all().all()
    summary = pd.read_csv(results / "summary.csv")
    used = layers[~layers["capped"]]
    for row in summary[summary["by"] == "role"].itertuples():
        g = used[(used["model"] == row.model) & (used["state"] == row.state) & (used["role"] == row.group)]
        assert summary.loc[row.Index, "rank_rtol_1e-2"] == pytest.approx(g["normalized_rank_rtol_1e-2"].mean())
    md = (results / "summary.md").read_text()
    assert "**Which keeps more rank** (frozen − trained)" in md and "**Does training change it**" in md
    assert (results / "depth.png").stat().st_size > 0
    command = (results / "command.txt").read_text()
    assert f"--run {frozen} --run {trained}" in command and '"seed": 0' in command and '"torch":' in command
