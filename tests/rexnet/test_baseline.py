"""The MobileNetV2 baseline as a block table, checked against torchvision's model; the small-input option."""

import pytest
import torch

from rexnet import rexnet_v1_arch
from rexnet.baseline import build_classifier, mobilenetv2_arch, model_costs, small_input_variant
from rexnet.summary import count_flops


def test_mobilenetv2_matches_torchvision():
    torchvision = pytest.importorskip("torchvision")
    for width in (1.0, 0.5):
        ours = build_classifier(mobilenetv2_arch(width), 1000)
        ref = torchvision.models.mobilenet_v2(width_mult=width)
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
        params, macs = model_costs(mobilenetv2_arch(width), 224, num_classes=1000)
        with torch.device("meta"):
            ref_flops, _ = count_flops(torchvision.models.mobilenet_v2(width_mult=width).eval(),
                                       torch.empty(1, 3, 224, 224))
        assert macs == ref_flops // 2
    arch = mobilenetv2_arch(1.0)
    assert not any(b.se for b in arch.blocks) and {b.act for b in arch.blocks} == {"relu6"}
    assert [b.out_channels for b in arch.blocks][::4] == [16, 32, 64, 96, 320]


@pytest.mark.parametrize("mode, side", [("off", 1), ("s16", 2), ("s8", 4)])
def test_small_input_strides_and_shapes(mode, side):
    for arch in (rexnet_v1_arch(0.5), mobilenetv2_arch(0.7)):
        small, stem_stride = small_input_variant(arch, mode)
        removed = 0 if mode == "off" else 1
        assert sum(b.stride == 2 for b in small.blocks) == sum(b.stride == 2 for b in arch.blocks) - removed
        model = build_classifier(small, 10, in_chans=1, stem_stride=stem_stride).eval()
        assert model.forward_features(torch.zeros(1, 1, 32, 32)).shape[-2:] == (side, side)  # total stride 32/side
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

