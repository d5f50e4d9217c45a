"""Small-input modes: strides removed, output shapes, and feature_info strides of the network actually built."""

import pytest
import torch

from rexnet import ReXNet, ReXNetFeatures, create_model, rexnet_v1_arch
from rexnet.baseline import mobilenetv2_arch
from rexnet.small_input import small_input_variant


@pytest.mark.parametrize("mode, side", [("off", 1), ("s16", 2), ("s8", 4)])
def test_small_input_strides_and_shapes(mode, side):
    for arch in (rexnet_v1_arch(0.5), mobilenetv2_arch(0.7)):
        small, stem_stride = small_input_variant(arch, mode)
        removed = 0 if mode == "off" else 1
        assert sum(b.stride == 2 for b in small.blocks) == sum(b.stride == 2 for b in arch.blocks) - removed
        model = ReXNet(small, 10, in_chans=1, stem_stride=stem_stride).eval()
        assert model.forward_features(torch.zeros(1, 1, 32, 32)).shape[-2:] == (side, side)  # total stride 32/side
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("mode", ["off", "s16", "s8"])
def test_feature_info_reductions_are_the_measured_strides(mode):
    # The stride a map really has (input side / map side) is the reference; s8 used to report 2× too much.
    small, stem_stride = small_input_variant(rexnet_v1_arch(0.5), mode)
    model = ReXNet(small, 10, in_chans=1, stem_stride=stem_stride).eval()
    backbone = ReXNetFeatures(model, range(len(model.feature_info)))
    with torch.no_grad():
        maps = backbone(torch.zeros(1, 1, 64, 64))
    assert [64 // m.shape[-1] for m in maps] == backbone.reductions == [i["reduction"] for i in model.feature_info]
    assert [m.shape[1] for m in maps] == backbone.channels
    assert max(backbone.reductions) == {"off": 32, "s16": 16, "s8": 8}[mode]
    assert create_model("rexnet_050", stem_stride=stem_stride).feature_info[0]["reduction"] == stem_stride


def test_the_table_records_its_mode_and_stem_stride():
    from rexnet.arch import SMALL_INPUTS
    from rexnet.small_input import SMALL_INPUT_MODES

    assert tuple(SMALL_INPUT_MODES) == SMALL_INPUTS  # the names a table's `small_input` may hold
    base = rexnet_v1_arch(0.5)
    for mode, stem in (("s16", 2), ("s8", 1)):
        small, stem_stride = small_input_variant(base, mode)
        assert (small.small_input, small.stem_stride, stem_stride) == (mode, stem, stem)
        assert small.strides[-1] == {"s16": 16, "s8": 8}[mode]
        # a table in its mode builds the small-input network alone: no stem_stride argument needed
        alone = ReXNet(small, 10, in_chans=1).eval()
        assert alone.features[0].stride == (stem, stem)
        assert alone.forward_features(torch.zeros(1, 1, 32, 32)).shape[-2:] == (32 // small.strides[-1],) * 2


@pytest.mark.parametrize("mode", ["s16", "s8"])
def test_a_mode_applied_twice_is_applied_once_and_off_keeps_it(mode):
    small, stem = small_input_variant(rexnet_v1_arch(0.5), mode)
    assert small_input_variant(small, mode) == (small, stem)
    assert small_input_variant(small, "off") == (small, stem)  # off adds no mode; it does not undo one
    assert small_input_variant(rexnet_v1_arch(0.5), "off") == (rexnet_v1_arch(0.5), 2)


def test_modes_do_not_stack():
    from rexnet import RexnetError

    s16, _ = small_input_variant(rexnet_v1_arch(0.5), "s16")
    with pytest.raises(RexnetError, match="already in small-input mode s16, so s8 would stack") as info:
        small_input_variant(s16, "s8")
    assert "\n" not in str(info.value)
    with pytest.raises(RexnetError, match="unknown small-input mode 's4'"):
        small_input_variant(s16, "s4")
