"""Models: exact parameter counts and MACs, the official state_dict layout, outputs equal to the official ops."""

from dataclasses import replace

import pytest
import torch

from rexnet import RexnetError, ReXNetV1, ReXNetV1Lite, create_model, list_models, summarize
from rexnet.arch import rexnet_v1_arch

from .conftest import randomize
from .official_reference import lite_config, official_keys, reference_forward, v1_config

V1 = {  # width: (parameters, MACs at 224×224 in G) — the table, from the official release
    0.9: (4_091_257, 0.348),
    1.0: (4_796_873, 0.398),
    1.3: (7_557_091, 0.662),
    1.5: (9_728_593, 0.876),
    2.0: (16_366_620, 1.529),
    3.0: (34_708_792, 3.396),
}
LITE = {1.0: (4_740_056, 0.41), 1.3: (6_747_960, 0.65), 1.5: (8_332_296, 0.84), 2.0: (12_966_200, 1.5)}


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width", list(V1))
def test_v1_parameter_count(width):
    with torch.device("meta"):
        assert _params(ReXNetV1(width)) == V1[width][0]


@pytest.mark.parametrize("width", list(LITE))
def test_lite_parameter_count(width):
    with torch.device("meta"):
        assert _params(ReXNetV1Lite(width)) == LITE[width][0]


@pytest.mark.parametrize("width", list(V1))
def test_v1_macs_at_224(width):
    s = summarize(f"rexnet_{round(width * 100):03d}", img_size=224)
    assert s.params == V1[width][0]
    assert s.macs == pytest.approx(V1[width][1] * 1e9, rel=0.01)
    assert sum(s.block_flops) < s.flops  # per-block counts are real parts of the total


@pytest.mark.parametrize("width", list(LITE))
def test_lite_macs_match_published_figures(width):
    published = LITE[width][1]
    digits = len(str(published).split(".")[1])  # the paper rounds: 0.41 G, 1.5 G
    assert round(summarize(f"rexnet_lite_{round(width * 100):03d}").macs / 1e9, digits) == published


@pytest.mark.parametrize("width", [0.9, 1.0, 1.3, 3.0])
def test_v1_state_dict_layout_is_official(width):
    with torch.device("meta"):
        sd = ReXNetV1(width, num_classes=10).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == official_keys(v1_config(width), classes=10)


@pytest.mark.parametrize("mult", [1.0, 2.0])
def test_lite_state_dict_layout_is_official(mult):
    with torch.device("meta"):
        sd = ReXNetV1Lite(mult).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == official_keys(lite_config(mult), lite=True)


@pytest.mark.parametrize(
    "cls, config, lite", [(ReXNetV1, v1_config(1.0), False), (ReXNetV1Lite, lite_config(1.0), True)]
)
def test_outputs_equal_official_ops(cls, config, lite, images):
    model = randomize(cls(num_classes=7))
    with torch.no_grad():
        ours = model(images)
        ref = reference_forward(model.state_dict(), config, images, lite=lite)
    assert ours.shape == (2, 7)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_batch_of_one_keeps_batch_dimension():
    # The official forward ends in .squeeze(), which drops the batch dimension for one image.
    model = ReXNetV1(num_classes=5).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_forward_features_and_head():
    model = randomize(ReXNetV1(num_classes=4))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 1280, 2, 2)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, 1280)


def test_training_step_reaches_every_parameter():
    torch.manual_seed(0)
    model = ReXNetV1(0.9, num_classes=3).train()
    loss = model(torch.randn(4, 3, 32, 32)).logsumexp(1).sum()
    loss.backward()
    zero = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    # A conv bias feeding a training-mode BN has a zero gradient up to rounding (BN subtracts the batch
    # mean): true of the SE's first conv in the official design, and of nothing else.
    assert all(p.grad is not None for p in model.parameters())
    assert all(n.endswith(".fc.0.bias") for n in zero), zero


def test_reset_classifier():
    model = ReXNetV1Lite(num_classes=1000)
    model.reset_classifier(12)
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 12) and model.num_classes == 12


def test_registry():
    names = list_models()
    assert names[:7] == [
        "rexnet_050",
        "rexnet_090",
        "rexnet_100",
        "rexnet_130",
        "rexnet_150",
        "rexnet_200",
        "rexnet_300",
    ]
    assert "rexnet_lite_130" in names and "mobilenetv2_100" in names
    with torch.device("meta"):
        for name in names:  # every listed name is creatable, as the class a user of the official code expects
            model = create_model(name)
            assert model.arch.name == name
        assert isinstance(create_model("rexnet_050"), ReXNetV1)
        assert create_model("rexnet_050").arch == ReXNetV1(0.5).arch
        assert create_model("mobilenetv2_070").arch.name == "mobilenetv2_070"  # unlisted widths resolve too
    with torch.device("meta"):
        model = create_model("rexnet_130", num_classes=10, dropout=0.1)
    assert isinstance(model, ReXNetV1) and model.num_classes == 10 and model.output[0].p == 0.1
    with pytest.raises(RexnetError, match="unknown model 'rexnet-100'; did you mean rexnet_100"):
        create_model("rexnet-100")
    with pytest.raises(RexnetError, match="num_classes"):
        create_model("rexnet_100", num_classes=-1)


def test_model_from_block_table_file(tmp_path):
    from rexnet import save_arch

    arch = rexnet_v1_arch(1.0, act="relu6", name="relu6_variant")
    model = create_model(save_arch(arch, tmp_path / "v.json"), num_classes=10)
    assert model.arch == replace(arch, num_classes=10)  # the table of the network built: its classes included
    assert isinstance(model.features[0 + 3].out[2], torch.nn.ReLU6)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_hubconf_loads_locally(tmp_path, monkeypatch):
    from pathlib import Path

    for var in ("REXNET_WEIGHTS", "TORCH_HOME", "HF_HUB_CACHE"):  # no local weights, whatever this machine holds
        monkeypatch.setenv(var, str(tmp_path / var))

    repo = Path(__file__).resolve().parents[2]
    model = torch.hub.load(str(repo), "rexnet_lite_100", source="local", num_classes=10)
    assert isinstance(model, ReXNetV1Lite) and model.num_classes == 10
    with torch.device("meta"):  # the names `rexnet models` lists, e.g. rexnet_050, are hub entries too
        assert torch.hub.load(str(repo), "rexnet_050", source="local").arch.name == "rexnet_050"
    with pytest.raises(RexnetError, match="no local copy of rexnet_100's weights"):
        torch.hub.load(str(repo), "rexnet_100", source="local", pretrained=True)
    with pytest.raises(RexnetError, match="rexnet_050 has no published weights"):
        torch.hub.load(str(repo), "rexnet_050", source="local", pretrained=True)


def test_fresh_model_activations_do_not_vanish():
    # PyTorch's default init leaves eval-mode features ~1e-8 (denormal range: slow on CPU, bad for training).
    torch.manual_seed(0)
    for model in (ReXNetV1(), ReXNetV1Lite()):
        with torch.no_grad():
            feats = model.eval().forward_features(torch.randn(2, 3, 64, 64))
        assert 1e-3 < feats.abs().mean() < 1e3


def test_lite_backbone_feature_maps():
    backbone = create_model("rexnet_lite_100", features_only=True, out_indices=(1, 2, 3, 4)).eval()
    assert backbone.channels == [40, 64, 128, 184] and backbone.reductions == [4, 8, 16, 32]
    assert "output.0.weight" not in backbone.state_dict()  # no classifier head in a backbone
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [
        (1, c, 64 // r, 64 // r) for c, r in zip(backbone.channels, backbone.reductions)
    ]
    with pytest.raises(RexnetError, match="out_indices"):
        create_model("rexnet_lite_100", features_only=True, out_indices=(5,))
