"""A variant JSON and a training checkpoint each describe the whole network (block table, stem stride and
small-input mode, input channels, classes): every consumer builds exactly that network, or refuses in one line.

The references are independent of the code under test: MACs counted on the model a JSON builds, against the
budget `rexnet build` was given; logits of a network built by hand from the known table (TINY in mode s16) with
the checkpoint's raw state_dict, against those of `create_model`, the exported ONNX file and `rexnet eval`.
"""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import rexnet.training.data
from rexnet import ReXNet, RexnetError, create_model, load_arch, rexnet_v1_arch, save_arch, save_checkpoint
from rexnet.arch import arch_to_dict
from rexnet.cli import main
from rexnet.registry import checkpoint_network, model_from_checkpoint
from rexnet.small_input import small_input_variant
from rexnet.summary import count_flops
from rexnet.training.data import load_data, prepare_fashion_mnist

from ..fake_fashion_mnist import fake_set, write_gz_folder
from .conftest import randomize
from .train_helpers import TINY

BUDGET = 12_900_000  # ReXNet-0.5× in mode s16 at 32×32 on 1-channel images, the Fashion-MNIST study's budget


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_refusal(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "; " in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    for word in words:
        assert word in lines[0], lines[0]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".onnx", ".tmp"))


# --- (a) a built s16 variant is the network matched to the budget ---------------------------------------------


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    """Returns the JSON `rexnet build` writes for ReXNet at the budget, 32×32, s16, 1 channel, 10 classes."""
    out = tmp_path_factory.mktemp("variant") / "v.json"
    args = ["build", "--family", "rexnet", "--macs", "12.9M", "--img-size", 32, "--small-input", "s16"]
    result = _invoke(*args, "--in-chans", 1, "--num-classes", 10, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_a_built_s16_variant_loaded_by_path_has_the_budgeted_macs(variant):
    model = create_model(str(variant)).eval()
    assert (model.in_chans, model.num_classes, model.arch.small_input, model.arch.stem_stride) == (1, 10, "s16", 2)
    flops, _ = count_flops(model, torch.zeros(1, 1, 32, 32))  # the model built, counted directly
    assert abs(flops // 2 - BUDGET) <= 0.02 * BUDGET
    assert flops // 2 == load_arch(variant).provenance["budget"]["macs"]
    assert model.forward_features(torch.zeros(1, 1, 32, 32)).shape[-2:] == (2, 2)  # total stride 16
    # What the JSON used to hold (the table before the mode, stride-2 stem, 3 channels) costs a fraction of it.
    width = load_arch(variant).provenance["budget"]["width_mult"]
    before, _ = count_flops(ReXNet(rexnet_v1_arch(width), 10).eval(), torch.zeros(1, 3, 32, 32))
    assert before // 2 < 0.5 * BUDGET


def test_summary_of_a_variant_reports_the_network_built(variant):
    result = _invoke("summary", variant)  # no --img-size: the budget's 32
    assert result.exit_code == 0, result.output
    macs = int(load_arch(variant).provenance["budget"]["macs"])
    assert "input                1×32×32, 10 classes, small-input mode s16" in result.output
    assert f"MACs                 {macs / 1e6:.2f} M" in result.output
    # another mode would stack on the variant's own and is refused (applying s16 again: test_small_input.py)
    _one_line_refusal(_invoke("summary", variant, "--small-input", "s8"), "already in small-input mode s16")


def test_training_a_variant_trains_its_own_network(tmp_path):
    from rexnet.training.train import setup

    from .train_helpers import tiny_config, tiny_data

    table = save_arch(small_input_variant(TINY, "s16")[0], tmp_path / "tiny_s16.json")
    for mode in ("off", "s16"):  # "off" leaves the table's mode; s16 again is s16 once
        run = setup(tiny_config(tmp_path / f"run_{mode}", table, small_input=mode), data=tiny_data())
        assert run.model.arch.small_input == "s16" and [b.stride for b in run.model.arch.blocks] == [1, 1, 1]
    with pytest.raises(RexnetError, match="already in small-input mode s16"):
        setup(tiny_config(tmp_path / "run_s8", table, small_input="s8"), data=tiny_data())


# --- (b) a 1-channel s16 training run: create_model, export and eval give the same logits ----------------------


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """Yields the data root of a fake 20/24-image Fashion-MNIST (1 channel, 10 classes) standing in for the real."""
    folder = tmp_path_factory.mktemp("fashion")
    raw, spec = fake_set({"train": 20, "t10k": 24})
    src = write_gz_folder(folder / "src", raw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            rexnet.training.data,
            "prepare_fashion_mnist",
            lambda root: prepare_fashion_mnist(root, src, raw_files=spec, download=False),
        )
        yield folder / "data"


@pytest.fixture(scope="module")
def s16_run(fashion, tmp_path_factory):
    """Returns (run folder, table path, data root) of `rexnet train` of TINY in mode s16 on 1-channel 16×16 images."""
    folder = tmp_path_factory.mktemp("s16run")
    table = save_arch(TINY, folder / "tiny.json")
    args = ["train", "--arch", table, "--data", "fashion-mnist", "--data-root", fashion, "--small-input", "s16"]
    args += ["--img-size", 16, "--epochs", 1, "--batch-size", 5, "--lr", 0.2, "--seed", 1, "--device", "cpu"]
    result = _invoke(*args, "--out", folder / "run", "--no-progress")
    assert result.exit_code == 0, result.output
    return folder / "run", table, fashion


def _by_hand(checkpoint):
    """Returns TINY in mode s16 for 1 channel and 10 classes, built here, with the checkpoint's raw state_dict."""
    arch, stem_stride = small_input_variant(TINY, "s16")
    model = ReXNet(arch, 10, 1, stem_stride=stem_stride)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"], strict=True)
    return model.eval()


def test_create_model_export_and_eval_give_the_same_logits(s16_run):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run, table, root = s16_run
    ckpt = run / "model.pth"
    test = load_data("fashion-mnist", root, img_size=16).test
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    assert x.shape == (24, 1, 16, 16)
    with torch.no_grad():
        expected = _by_hand(ckpt)(x)
        by_path = create_model(str(ckpt)).eval()(x)
        by_name = create_model(str(table), small_input="s16", in_chans=1, num_classes=10, checkpoint=str(ckpt))
        by_name = by_name.eval()(x)
    torch.testing.assert_close(by_path, expected, rtol=0, atol=0)
    torch.testing.assert_close(by_name, expected, rtol=0, atol=0)

    onnx_path = run / "model.onnx"
    exported = _invoke("export", "--checkpoint", ckpt, "--onnx", onnx_path)  # no name, size or channels given
    assert exported.exit_code == 0, exported.output
    assert "small-input mode s16, input 1×16×16" in exported.output
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(onnx_logits, expected.numpy(), rtol=1e-4, atol=1e-4)

    evaluated = _invoke(
        "eval", "--checkpoint", ckpt, "--data", "fashion-mnist", "--data-root", root, "--out", run / "ev",
        "--device", "cpu", "--no-progress", "--save-logits",
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    eval_logits = np.load(run / "ev" / "logits.npy")
    np.testing.assert_allclose(eval_logits, expected.numpy(), rtol=1e-5, atol=1e-5)
    top1 = 100 * (expected.argmax(1) == y).double().mean().item()
    assert f"top-1 {top1:.2f}%" in evaluated.output
    assert (onnx_logits.argmax(1) == eval_logits.argmax(1)).all()
    trained_top1 = float((run / "metrics.csv").read_text().splitlines()[-1].split(",")[4])  # test_top1
    assert trained_top1 == pytest.approx(top1, abs=1e-3)  # what training measured on the model in memory


# --- (c) asking for another network is refused in one line -----------------------------------------------------


@pytest.fixture(scope="module")
def rexnet_s16(tmp_path_factory):
    """Returns (checkpoint, model): rexnet_050 in mode s16, 1 channel, 10 classes, as `rexnet train` saves it."""
    folder = tmp_path_factory.mktemp("rexnet_s16")
    arch, stem_stride = small_input_variant(rexnet_v1_arch(0.5), "s16")
    model = randomize(ReXNet(arch, 10, 1), seed=2)
    metadata = {
        "config": {"model": "rexnet_050", "small_input": "s16", "dropout": None},
        "stem_stride": stem_stride,
        "in_chans": 1,
        "classes": [str(i) for i in range(10)],
        "img_size": 32,
        "data": "fashion-mnist",
    }
    return save_checkpoint(folder / "model.pth", model, epoch=1, metadata=metadata), model


def test_create_model_by_name_refuses_a_checkpoint_of_another_mode(rexnet_s16):
    path, source = rexnet_s16
    with pytest.raises(RexnetError) as info:
        create_model("rexnet_050", checkpoint=str(path))
    message = str(info.value)
    assert "\n" not in message and "small-input mode s16" in message
    right = f"create_model('rexnet_050', small_input='s16', in_chans=1, num_classes=10, checkpoint='{path}')"
    assert right in message and f"create_model('{path}')" in message
    model = create_model("rexnet_050", small_input="s16", in_chans=1, num_classes=10, checkpoint=str(path)).eval()
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_an_older_checkpoint_is_read_from_its_metadata(rexnet_s16, tmp_path):
    # Saved before tables recorded stem stride, mode and input channels: `rexnet train` kept them in its metadata.
    path, source = rexnet_s16
    obj = torch.load(path, weights_only=True)
    for key in ("stem_stride", "small_input", "in_chans", "num_classes"):
        del obj["arch"][key]
    torch.save(obj, tmp_path / "old.pth")
    network = checkpoint_network(tmp_path / "old.pth")
    assert arch_to_dict(network) == arch_to_dict(source.arch)
    model, info = model_from_checkpoint(tmp_path / "old.pth")
    assert (info["in_chans"], info["small_input"], info["stem_stride"], info["num_classes"]) == (1, "s16", 2, 10)
    with pytest.raises(RexnetError, match="small-input mode s16.*small_input='s16'"):
        create_model("rexnet_050", in_chans=1, num_classes=10, checkpoint=str(tmp_path / "old.pth"))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"in_chans": 3}, "1-channel input, not in_chans=3"),
        ({"small_input": "s8"}, "holds rexnet_050_small in small-input mode s16, not s8"),
        ({"num_classes": 5}, "10-class classifier, not 5"),
        ({"drop_path_rate": 0.1}, "drop_path_rate do not apply"),
        ({"checkpoint": "x.pth"}, "checkpoint do not apply"),
    ],
)
def test_create_model_on_a_checkpoint_refuses_another_network(rexnet_s16, kwargs, words):
    with pytest.raises(RexnetError, match=words) as info:
        create_model(str(rexnet_s16[0]), **kwargs)
    assert "\n" not in str(info.value)


def test_create_model_on_a_checkpoint_without_its_network_says_what_to_do(tmp_path):
    torch.save(ReXNet(TINY, 10).state_dict(), tmp_path / "bare.pth")
    with pytest.raises(RexnetError, match=r"does not record its network.*create_model\(NAME, checkpoint="):
        create_model(str(tmp_path / "bare.pth"))


@pytest.mark.parametrize(
    "args, words",
    [
        (["rexnet_050", "--small-input", "off"], ["small-input mode s16, not off"]),
        (["rexnet_100"], ["holds rexnet_050_small, not rexnet_100_small", "another model or width"]),
        (["--in-chans", 3], ["1-channel input, not 3"]),
        (["--num-classes", 5], ["10-class classifier, not 5"]),
        (["--skip-head"], ["--skip-head does not apply"]),
    ],
)
def test_cli_export_refuses_another_network_without_writing(rexnet_s16, tmp_path, args, words):
    path, _ = rexnet_s16
    result = _invoke("export", *args, "--checkpoint", path, "--onnx", tmp_path / "m.onnx")
    _one_line_refusal(result, *words)
    assert _leftovers(tmp_path) == []


def test_cli_export_of_a_named_checkpoint_is_the_network_it_records(rexnet_s16, tmp_path, monkeypatch):
    import rexnet.cli

    exported = {}
    monkeypatch.setattr(rexnet.cli, "export_onnx", lambda model, p, **kw: exported.update(model=model, **kw) or p)
    path, source = rexnet_s16
    result = _invoke("export", "rexnet_050", "--checkpoint", path, "--onnx", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    model = exported["model"]
    assert exported["img_size"] == 32 and "input 1×32×32" in result.output  # the training image size
    assert (model.in_chans, model.arch.small_input) == (1, "s16")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))


def test_hub_entry_refuses_and_from_checkpoint_builds(rexnet_s16):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    path, source = rexnet_s16
    with pytest.raises(RexnetError, match="small_input='s16'"):
        torch.hub.load(str(repo), "rexnet_050", source="local", checkpoint=str(path))
    model = torch.hub.load(str(repo), "from_checkpoint", source="local", path=str(path))
    assert arch_to_dict(model.arch) == arch_to_dict(source.arch)
