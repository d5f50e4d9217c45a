"""The `rexnet` CLI: summary, export, convert, and one-line errors with exit code 2 for bad input."""

import subprocess
import sys

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rexnet import ReXNetV1, ReXNetV1Lite, save_checkpoint
from rexnet.cli import main

from .conftest import randomize


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_summary_prints_table_params_and_macs(tmp_path):
    result = _invoke("summary", "rexnet_100", "--img-size", 224, "--save-arch", tmp_path / "a.json")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4,796,873" in out and "MACs                 0.398 G" in out and "activation memory" in out
    for width in (27, 185, 1280):
        assert f" {width} " in out
    # the saved block table is a model name too
    again = _invoke("summary", tmp_path / "a.json", "--img-size", 64)
    assert again.exit_code == 0 and "4,796,873" in again.output


def test_summary_with_a_small_input_mode_and_channels_is_that_network(tmp_path):
    from rexnet import ReXNet, load_arch, rexnet_v1_arch
    from rexnet.small_input import small_input_variant
    from rexnet.summary import count_flops

    args = ["summary", "rexnet_050", "--img-size", 32, "--small-input", "s16", "--in-chans", 1, "--num-classes", 10]
    result = _invoke(*args, "--save-arch", tmp_path / "s16.json")
    assert result.exit_code == 0, result.output
    arch, _ = small_input_variant(rexnet_v1_arch(0.5), "s16")
    flops, _ = count_flops(ReXNet(arch, 10, 1).eval(), torch.zeros(1, 1, 32, 32))  # an independent count
    assert f"MACs                 {flops / 2e6:.2f} M" in result.output  # in M: 0.013 G would hide it
    assert "input                1×32×32, 10 classes, small-input mode s16" in result.output
    saved = load_arch(tmp_path / "s16.json")  # the saved table is the network summarised, all of it
    assert (saved.small_input, saved.in_chans, saved.num_classes, saved.strides[-1]) == ("s16", 1, 10, 16)
    again = _invoke("summary", tmp_path / "s16.json", "--img-size", 32)  # the JSON alone: the same network

    def totals(output):
        return [line for line in output.splitlines() if line.startswith(("input  ", "parameters  ", "MACs  "))]

    assert again.exit_code == 0 and len(totals(again.output)) == 3 and totals(again.output) == totals(result.output)


def test_export_of_a_name_takes_in_chans_and_small_input(tmp_path, monkeypatch):
    import rexnet.cli

    seen = {}
    monkeypatch.setattr(rexnet.cli, "export_onnx", lambda model, path, **kw: seen.update(model=model, **kw) or path)
    args = ["export", "rexnet_050", "--onnx", tmp_path / "m.onnx", "--in-chans", 1, "--small-input", "s8"]
    result = _invoke(*args, "--img-size", 32)
    assert result.exit_code == 0, result.output
    model = seen["model"]
    assert (model.in_chans, model.arch.small_input, model.features[0].stride) == (1, "s8", (1, 1))
    assert "small-input mode s8, input 1×32×32" in result.output


def test_models_lists_names():
    from rexnet import list_models

    result = _invoke("models")
    assert result.exit_code == 0 and result.output.split() == list_models()
    assert "rexnet_lite_200" in result.output.split() and "rexnet_050" in result.output.split()


def test_version_and_help_for_every_train_option():
    from importlib import metadata

    from rexnet.cli import train_cmd

    result = _invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"rexnet {metadata.version('rankstudy-rexnet')}"
    missing = [p.name for p in train_cmd.params if isinstance(p, click.Option) and not p.help]
    assert not missing
    assert "--drop-path" in _invoke("train", "--help").output


def test_export_without_checkpoint_says_the_weights_are_random(tmp_path, monkeypatch):
    import rexnet.cli

    monkeypatch.setattr(rexnet.cli, "export_onnx", lambda model, path, **kw: path)  # the export itself is tested below
    result = _invoke("export", "rexnet_100", "--onnx", tmp_path / "m.onnx")
    assert result.exit_code == 0 and "random, untrained weights" in result.output


@pytest.mark.parametrize("rank, prints", [("0", True), ("1", False)])
def test_train_prints_on_rank_0_only(tmp_path, monkeypatch, rank, prints):
    import rexnet.training.train

    monkeypatch.setattr(rexnet.training.train, "train", lambda cfg, **kw: {"epoch": 1, "test_top1": 50.0})
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = _invoke("train", "--model", "rexnet_050", "--data", "fake", "--out", tmp_path / "run")
    assert result.exit_code == 0 and ("done:" in result.output) == prints


def test_export_with_checkpoint_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = randomize(ReXNetV1Lite(num_classes=6), seed=4)
    save_checkpoint(tmp_path / "c.pth", model)
    # --num-classes is taken from the checkpoint
    result = _invoke(
        "export", "rexnet_lite_100", "--onnx", tmp_path / "m.onnx", "--checkpoint", tmp_path / "c.pth", "--img-size", 32
    )
    assert result.exit_code == 0, result.output
    x = torch.randn(2, 3, 32, 32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_convert_to_timm(tmp_path):
    timm = pytest.importorskip("timm")
    save_checkpoint(tmp_path / "c.pth", ReXNetV1(1.3, num_classes=5))
    result = _invoke("convert", tmp_path / "c.pth", tmp_path / "t.safetensors", "--to", "timm")
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    with torch.device("meta"):
        theirs = timm.create_model("rexnet_130", num_classes=5)
    theirs.load_state_dict(load_file(tmp_path / "t.safetensors"), strict=True, assign=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    torch.save(ReXNetV1(1.3).state_dict(), folder / "w130.pth")
    data = (folder / "w130.pth").read_bytes()
    (folder / "trunc.pth").write_bytes(data[: len(data) // 3])
    (folder / "junk.pth").write_bytes(b"not a checkpoint at all")
    torch.save(ReXNetV1(num_classes=10).state_dict(), folder / "c10.pth")
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "rexnet_999"], "unknown model 'rexnet_999'"),
        (["summary", "missing.json"], "does not exist"),
        (["export", "rexnet_100", "--onnx", "{d}/o.onnx", "--checkpoint", "{d}/nope.pth"], "does not exist"),
        (["export", "rexnet_100", "--onnx", "{d}/o.onnx", "--checkpoint", "{d}/junk.pth"], "not a PyTorch checkpoint"),
        (["export", "rexnet_100", "--onnx", "{d}/o.onnx", "--checkpoint", "{d}/trunc.pth"], "truncated"),
        (["export", "rexnet_100", "--onnx", "{d}/o.onnx", "--checkpoint", "{d}/w130.pth"], "saved from rexnet_130"),
        (
            ["export", "rexnet_100", "--onnx", "{d}/o.onnx", "--checkpoint", "{d}/c10.pth", "--num-classes", "1000"],
            "10 classes, the model 1000",
        ),
        (["export", "rexnet_lite_100", "--onnx", "{d}/o.txt"], "does not end in .onnx"),
        (["convert", "{d}/c10.pth", "{d}/o.pth", "--to", "timm"], None),  # a valid conversion, for contrast
        (["convert", "{d}/junk.pth", "{d}/o2.pth"], "not a PyTorch checkpoint"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(files, args, message):
    result = _invoke(*[a.replace("{d}", str(files)) for a in args])
    if message is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0] and "; " in lines[0]
    assert "Traceback" not in result.output
    assert not (files / "o.onnx").exists() and not (files / "o2.pth").exists()
    assert not [p for p in files.iterdir() if p.name.endswith(".tmp")]


def test_console_script_exit_code_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-c", "from rexnet.cli import main; main()", "summary", "rexnet_x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown model 'rexnet_x'") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
