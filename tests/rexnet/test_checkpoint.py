"""Checkpoints: timm conversion both ways (timm is the oracle), own training files, bad files and mismatches."""

import pickle

import pytest
import torch

from rexnet import (
    RexnetError,
    ReXNetV1,
    ReXNetV1Lite,
    convert_checkpoint,
    create_model,
    load_checkpoint,
    official_to_timm,
    read_checkpoint,
    save_checkpoint,
    timm_to_official,
)

from .conftest import randomize

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def timm_model():
    return randomize(timm.create_model("rexnet_100"), seed=5)


def test_timm_weights_give_identical_outputs(timm_model, images, tmp_path):
    ours = ReXNetV1().eval()
    ckpt = load_checkpoint(ours, timm_model.state_dict())
    assert ckpt.layout == "timm"
    with torch.no_grad():
        expected = timm_model(images)
        torch.testing.assert_close(ours(images), expected, rtol=1e-5, atol=1e-5)
        # the same through files: timm's own format is a plain state_dict, hub weights are safetensors
        from safetensors.torch import save_file

        torch.save(timm_model.state_dict(), tmp_path / "timm.pth")
        save_file(timm_model.state_dict(), str(tmp_path / "timm.safetensors"))
        for name in ("timm.pth", "timm.safetensors"):
            model = create_model("rexnet_100", checkpoint=tmp_path / name).eval()
            torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-5)


def test_our_weights_load_into_timm(images, tmp_path):
    ours = randomize(ReXNetV1(), seed=2)
    theirs = timm.create_model("rexnet_100").eval()
    theirs.load_state_dict(official_to_timm(ours.state_dict()), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(theirs(images), ours(images), rtol=1e-5, atol=1e-5)
    # file to file, from a training checkpoint of ours
    save_checkpoint(tmp_path / "ours.pth", ours, epoch=1)
    convert_checkpoint(tmp_path / "ours.pth", tmp_path / "timm.pth", "timm")
    theirs.load_state_dict(torch.load(tmp_path / "timm.pth", weights_only=True), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(theirs(images), ours(images), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, width", [("rexnet_130", 1.3), ("rexnet_300", 3.0)])
def test_timm_key_conversion_all_widths(name, width):
    with torch.device("meta"):
        theirs = timm.create_model(name).state_dict()
        ours = ReXNetV1(width).state_dict()
    converted = timm_to_official(theirs)
    assert list(converted) == list(ours)  # same keys, same (official) order
    assert all(converted[k].shape == ours[k].shape for k in ours)
    assert list(official_to_timm(converted)) == list(theirs)


def test_features_match_timm_intermediates(timm_model, images):
    backbone = create_model("rexnet_100", checkpoint=timm_model.state_dict(), features_only=True).eval()
    assert backbone.channels == [info["num_chs"] for info in timm_model.feature_info] == [16, 38, 61, 128, 185]
    assert backbone.reductions == [2, 4, 8, 16, 32]
    with torch.no_grad():
        ours = backbone(images)
        theirs = timm_model.forward_intermediates(images, intermediates_only=True)
    for a, b, stride, channels in zip(ours, theirs, backbone.reductions, backbone.channels):
        assert a.shape == (2, channels, 64 // stride, 64 // stride)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_training_checkpoint_round_trip(tmp_path, images):
    model = ReXNetV1Lite(num_classes=10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "run" / "last.pth",
        model,
        optimizer=optimizer,
        epoch=3,
        metadata={"top1": 0.5, "note": "smoke"},
        extra={"scheduler": {"last_epoch": 3}},
    )
    assert [p.name for p in path.parent.iterdir()] == ["last.pth"]  # atomic: no temp file left
    raw = torch.load(path, weights_only=True)  # the file itself is weights_only-safe
    assert raw["format"] == "rexnet.checkpoint/1" and raw["arch"]["name"] == "rexnet_lite_100"

    ckpt = read_checkpoint(path)
    assert (ckpt.layout, ckpt.epoch, ckpt.num_classes, ckpt.metadata["top1"]) == ("rexnet", 3, 10, 0.5)
    assert ckpt.extra == {"scheduler": {"last_epoch": 3}}
    restored = create_model("rexnet_lite_100", num_classes=10, checkpoint=path).eval()
    opt2 = torch.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt.optimizer)
    buf = next(iter(opt2.state.values()))["momentum_buffer"]
    assert buf.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(restored(images), model.eval()(images), rtol=0, atol=0)


def test_safetensors_training_checkpoint(tmp_path, images):
    model = randomize(ReXNetV1(0.9, num_classes=3))
    save_checkpoint(tmp_path / "m.safetensors", model, epoch=7, metadata={"lr": 0.5})
    ckpt = read_checkpoint(tmp_path / "m.safetensors")
    assert (ckpt.layout, ckpt.epoch, ckpt.metadata) == ("rexnet", 7, {"lr": 0.5})
    restored = create_model("rexnet_090", num_classes=3, checkpoint=tmp_path / "m.safetensors").eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(images), model(images), rtol=0, atol=0)
    with pytest.raises(RexnetError, match="weights only"):
        save_checkpoint(tmp_path / "o.safetensors", model, optimizer=torch.optim.SGD(model.parameters(), lr=1))


def test_wrapped_and_data_parallel_state_dicts_load(images):
    model = randomize(ReXNetV1(num_classes=4))
    wrapped = {"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 1}
    other = ReXNetV1(num_classes=4).eval()
    assert load_checkpoint(other, wrapped).layout == "official"
    with torch.no_grad():
        torch.testing.assert_close(other(images), model(images))


def test_class_count_mismatch_is_explained_or_skipped(images):
    source = randomize(ReXNetV1(num_classes=1000))
    target = ReXNetV1(num_classes=10)
    with pytest.raises(
        RexnetError, match=r"1000 classes, the model 10; create the model with num_classes=1000.*skip_head"
    ):
        load_checkpoint(target, source.state_dict())
    head_before = target.output[1].weight.clone()
    load_checkpoint(target, source.state_dict(), skip_head=True)
    assert torch.equal(target.output[1].weight, head_before)
    target.eval()
    with torch.no_grad():
        torch.testing.assert_close(target.forward_features(images), source.forward_features(images))


@pytest.mark.parametrize(
    "saved, model, expected",
    [
        ("rexnet_130", "rexnet_100", "saved from rexnet_130, the model is rexnet_100"),
        ("rexnet_100", "rexnet_lite_100", "saved from rexnet_100, the model is rexnet_lite_100"),
        ("rexnet_lite_150", "rexnet_lite_100", "saved from rexnet_lite_150"),
    ],
)
def test_wrong_model_names_the_saved_width(saved, model, expected):
    with torch.device("meta"):
        state = create_model(saved).state_dict()
        target = create_model(model)
    with pytest.raises(RexnetError, match=expected):
        load_checkpoint(target, state)


def test_wrong_width_of_custom_checkpoint_uses_its_block_table(tmp_path):
    save_checkpoint(tmp_path / "c.pth", ReXNetV1(2.0, num_classes=5))
    with pytest.raises(RexnetError, match="saved from rexnet_200"):
        create_model("rexnet_150", num_classes=5, checkpoint=tmp_path / "c.pth")


class Opaque:
    """An arbitrary Python object: weights_only loading must refuse a file that pickles one."""


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good.pth"
    torch.save({k: v for k, v in ReXNetV1Lite(num_classes=2).state_dict().items() if k.startswith("features.1")}, good)
    data = good.read_bytes()
    files = {
        "truncated.pth": data[: len(data) // 2],
        "random.pth": bytes(range(256)) * 8,
        "empty.pth": b"",
        "text.pth": b"hello\n",
        "list.pth": pickle.dumps([1, 2, 3]),
        "truncated.safetensors": b'\x10\x00\x00\x00\x00\x00\x00\x00{"a":',
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    torch.save({"obj": Opaque()}, folder / "object.pth")
    torch.save([torch.zeros(2)], folder / "tensor_list.pth")
    torch.save({"weight": torch.zeros(2), "bias": torch.zeros(2)}, folder / "other_model.pth")
    return folder


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.pth", "does not exist"),
        ("truncated.pth", "truncated"),
        ("random.pth", "not a PyTorch checkpoint"),
        ("empty.pth", "empty"),
        ("text.pth", "not a PyTorch checkpoint"),
        ("list.pth", "not a PyTorch checkpoint"),
        ("truncated.safetensors", "not a readable .safetensors"),
        ("object.pth", "weights_only"),
        ("tensor_list.pth", "holds a list, not a state_dict"),
        ("other_model.pth", "no ReXNet weights"),
        (".", "not a file"),
    ],
)
def test_bad_files_raise_one_line_errors(bad_files, name, message):
    path = bad_files / name
    with pytest.raises(RexnetError, match=message) as info:
        load_checkpoint(ReXNetV1Lite(num_classes=2), path)
    assert "\n" not in str(info.value) and "; " in str(info.value)


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    model = ReXNetV1Lite(num_classes=2)
    with pytest.raises(RexnetError, match="JSON"):
        save_checkpoint(tmp_path / "a.pth", model, metadata={"bad": object()})

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "b.pth", model)
    assert list(tmp_path.iterdir()) == []


def test_training_gradients_match_timm(timm_model):
    # Training mode exercises the custom backward passes (ReLU6, partial residual) against timm's plain
    # ones. float64: with a tiny batch, training-mode BN (the SE's sees one value per image) amplifies
    # gradients enough that float32 rounding alone differs between two runs of the same model.
    theirs = timm.create_model("rexnet_100", drop_rate=0.0).double()
    theirs.load_state_dict(timm_model.state_dict())
    ours = ReXNetV1(dropout=0.0).double()
    load_checkpoint(ours, timm_model.state_dict())
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    theirs.train()(x).square().mean().backward()
    ours.train()(x).square().mean().backward()
    ours_grads = official_to_timm({k: p.grad for k, p in ours.named_parameters()})
    scale = max(p.grad.abs().max() for p in theirs.parameters())
    for name, p in theirs.named_parameters():
        torch.testing.assert_close(ours_grads[name], p.grad, rtol=1e-6, atol=1e-9 * scale, msg=name)
