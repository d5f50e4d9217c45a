"""What timm users expect of the model: classifier hooks, drop_path, output_stride, in_chans ≠ 3, pretrained_cfg.

timm's `rexnet_100` is the oracle where it has the feature (drop-path rates, dilated feature maps, stem
adaptation, preprocessing); otherwise a property with a known answer (a grey image is an RGB image with three
equal channels).
"""

import pytest
import torch

from rexnet import RexnetError, ReXNetV1, ReXNetV1Lite, adapt_input_conv, create_model, pretrained_cfg, save_checkpoint
from rexnet.blocks import LinearBottleneck
from rexnet.keymap import timm_to_official

from .conftest import randomize

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("cls, name", [(ReXNetV1, "output.1"), (ReXNetV1Lite, "output.4")])
def test_hooks_on_the_classifier_fire(cls, name, images):
    model = randomize(cls(num_classes=7))
    seen = []
    model.get_submodule(name).register_forward_hook(lambda module, args, out: seen.append((args[0], out)))
    with torch.no_grad():
        logits = model(images)
    assert len(seen) == 1 and torch.equal(seen[0][1], logits)
    pooled, classifier = seen[0][0], model.get_submodule(name)
    # the classifier is still the official 1×1 conv: as a conv on the pooled map it gives the same logits
    conv = torch.nn.functional.conv2d(pooled[:, :, None, None], classifier.weight, classifier.bias).flatten(1)
    torch.testing.assert_close(logits, conv, rtol=1e-5, atol=1e-5)
    assert classifier.weight.shape == (7, classifier.in_channels, 1, 1)


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, LinearBottleneck)]


def test_drop_path_rates_follow_timm():
    ours = create_model("rexnet_100", drop_path_rate=0.2)
    theirs = timm.create_model("rexnet_100", drop_path_rate=0.2)
    expected = [
        b.drop_path.drop_prob if b.use_shortcut and b.drop_path is not None else 0.0
        for b in theirs.features
        if hasattr(b, "use_shortcut")
    ]
    assert [b.drop_path for b in _blocks(ours)] == pytest.approx(expected)
    assert expected[-1] == pytest.approx(0.2) and 0.0 in expected  # full rate at the last block; none w/o shortcut


def test_drop_path_is_identity_in_eval_and_stochastic_in_train(images):
    torch.manual_seed(0)
    plain = randomize(ReXNetV1(num_classes=5))
    dropping = ReXNetV1(num_classes=5, drop_path_rate=0.5)
    dropping.load_state_dict(plain.state_dict())
    dropping.eval()
    with torch.no_grad():
        assert torch.equal(dropping(images), plain(images))  # eval: no sample loses a branch
    block = next(b for b in _blocks(dropping) if b.drop_path > 0)
    x = torch.randn(64, block.in_channels, 8, 8)
    shortcut = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, block.out_channels - block.in_channels))
    with torch.no_grad():
        branch = block.eval()(x) - shortcut
        block.train()
        for m in block.modules():  # BN on running statistics: the branch is the same function in both modes
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        out = block(x)
    dropped = [torch.allclose(out[i], shortcut[i]) for i in range(64)]
    kept = [torch.allclose(out[i], shortcut[i] + branch[i] / (1 - block.drop_path), atol=1e-5) for i in range(64)]
    # each sample keeps its whole branch (scaled by 1/(1-p)) or loses it; here p = 0.5·2/15 for block 2
    assert all(d != k for d, k in zip(dropped, kept)) and 0 < sum(dropped) < 64
    with pytest.raises(RexnetError, match="drop_path_rate"):
        create_model("rexnet_100", drop_path_rate=1.5)


@pytest.mark.parametrize("output_stride", [8, 16])
def test_output_stride_matches_timm_dilated_maps(output_stride):
    theirs = randomize(timm.create_model("rexnet_100", output_stride=output_stride), seed=3)
    ours = create_model(
        "rexnet_100", checkpoint=theirs.state_dict(), features_only=True, output_stride=output_stride
    ).eval()
    assert (
        ours.reductions
        == [i["reduction"] for i in theirs.feature_info]
        == [2, 4, 8, min(16, output_stride), output_stride]
    )
    assert ours.channels == [i["num_chs"] for i in theirs.feature_info]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for a, b, r in zip(ours(x), theirs.forward_intermediates(x, intermediates_only=True), ours.reductions):
            assert a.shape[-1] == 64 // r
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    classifier = create_model("rexnet_100", output_stride=output_stride, num_classes=3).eval()
    assert classifier.forward_features(x).shape[-1] == 64 // output_stride
    with pytest.raises(RexnetError, match="output_stride"):
        create_model("rexnet_100", output_stride=4)


def test_one_channel_model_loads_a_three_channel_checkpoint(tmp_path):
    rgb = randomize(ReXNetV1(0.9, num_classes=10), seed=6)
    save_checkpoint(tmp_path / "rgb.pth", rgb)
    grey = create_model("rexnet_090", num_classes=10, in_chans=1, checkpoint=tmp_path / "rgb.pth").eval()
    assert grey.features[0].weight.shape[1] == 1
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():  # a grey image is the RGB image with three equal channels
        torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("in_chans", [1, 2, 4, 7])
def test_stem_adaptation_matches_timm(in_chans):
    from timm.models import adapt_input_conv as timm_adapt

    weight = torch.randn(32, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(in_chans, weight), timm_adapt(in_chans, weight.clone()))
    timm_sd = randomize(timm.create_model("rexnet_100"), seed=1).state_dict()
    model = create_model("rexnet_100", in_chans=in_chans, checkpoint=timm_sd)
    torch.testing.assert_close(model.features[0].weight, timm_adapt(in_chans, timm_sd["stem.conv.weight"].clone()))
    assert torch.equal(model.features[1].running_var, timm_to_official(timm_sd)["features.1.running_var"])


def test_pretrained_cfg_matches_timm():
    for name in ("rexnet_100", "rexnet_130", "rexnet_150", "rexnet_200", "rexnet_300"):
        ours, theirs = pretrained_cfg(name), timm.get_pretrained_cfg(name)
        assert (ours.input_size, ours.crop_pct, ours.interpolation, ours.num_classes) == (
            theirs.input_size,
            theirs.crop_pct,
            theirs.interpolation,
            theirs.num_classes,
        )
        assert ours.mean == pytest.approx(theirs.mean) and ours.std == pytest.approx(theirs.std)
        assert any(f.source == f"hf-hub:{theirs.hf_hub_id}" for f in ours.files)
    assert pretrained_cfg("rexnet_lite_100").classifier == "output.4"
    assert pretrained_cfg("rexnet_050").files == ()  # no published weights


def test_checkpoint_file_is_verified_against_a_known_hash(tmp_path, monkeypatch):
    import hashlib

    import rexnet.registry as registry
    from rexnet.pretrained import PretrainedCfg, WeightsFile

    path = tmp_path / "weights.pth"
    save_checkpoint(path, ReXNetV1(0.9, num_classes=4))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for known, ok in ((digest, True), (digest[:8], True), ("0" * 64, False)):
        cfg = PretrainedCfg(files=(WeightsFile("weights.pth", "test", "official", known),))
        monkeypatch.setattr(registry, "pretrained_cfg", lambda name, cfg=cfg: cfg)
        if ok:
            assert create_model("rexnet_090", num_classes=4, checkpoint=path).num_classes == 4
        else:
            with pytest.raises(RexnetError, match="SHA-256"):
                create_model("rexnet_090", num_classes=4, checkpoint=path)


def test_transforms_follow_the_pretrained_cfg():
    from torchvision import transforms as T

    from rexnet.training.data import build_transforms

    cfg = pretrained_cfg("rexnet_100")
    ops = build_transforms("imagefolder", 224, train=False, pretrained_cfg=cfg).transforms
    resize, crop, norm = ops[0], ops[1], ops[-1]
    assert resize.size == 256 and resize.interpolation == T.InterpolationMode.BICUBIC  # 224 / 0.875
    assert crop.size == (224, 224) and tuple(norm.mean) == cfg.mean and tuple(norm.std) == cfg.std
