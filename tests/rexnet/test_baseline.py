"""The MobileNetV2 baseline as a block table, checked against torchvision's model; MAC matching."""

import pytest
import torch

from rexnet import ReXNet
from rexnet.baseline import mobilenetv2_arch
from rexnet.summary import count_flops, model_costs


def test_mobilenetv2_matches_torchvision():
    torchvision = pytest.importorskip("torchvision")
    for width in (1.0, 0.5):
        ours = ReXNet(mobilenetv2_arch(width), 1000)
        ref = torchvision.models.mobilenet_v2(width_mult=width)
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
        params, macs = model_costs(mobilenetv2_arch(width), 224, num_classes=1000)
        with torch.device("meta"):
            ref_flops, _ = count_flops(
                torchvision.models.mobilenet_v2(width_mult=width).eval(), torch.empty(1, 3, 224, 224)
            )
        assert macs == ref_flops // 2
    arch = mobilenetv2_arch(1.0)
    assert not any(b.se for b in arch.blocks) and {b.act for b in arch.blocks} == {"relu6"}
    assert [b.out_channels for b in arch.blocks][::4] == [16, 32, 64, 96, 320]
