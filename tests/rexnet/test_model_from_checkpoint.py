"""`rexnet.registry.model_from_checkpoint`, the one checkpoint reader of `rexnet eval` and the probe: a training
checkpoint (and any `save_checkpoint` file) rebuilds the exact network it holds (block table, stem stride and
small-input mode, input channels, classes) and refuses another model name or mode; official/timm checkpoints and
bare state_dicts need a name and load strictly, with identical outputs."""

import pytest
import torch

from rexnet import ReXNet, RexnetError, ReXNetV1, official_to_timm, save_arch, save_checkpoint
from rexnet.registry import model_from_checkpoint
from rexnet.small_input import small_input_variant

from .conftest import randomize
from .train_helpers import TINY


@pytest.fixture
def trained(tmp_path):
    """Returns (checkpoint path, model, table path): what `rexnet train` writes for TINY, 1 channel, s8, 7 classes."""
    table = save_arch(TINY, tmp_path / "tiny.json")
    arch, stem_stride = small_input_variant(TINY, "s8")
    model = randomize(ReXNet(arch, 7, 1, stem_stride=stem_stride), seed=3)
    metadata = {
        "config": {"model": str(table), "small_input": "s8", "dropout": None},
        "stem_stride": stem_stride,
        "in_chans": 1,
        "classes": list("abcdefg"),
        "img_size": 16,
        "data": "fake",
    }
    path = save_checkpoint(tmp_path / "model.pth", model, epoch=2, metadata=metadata)
    return path, model, table


def test_a_training_checkpoint_rebuilds_the_network_it_holds(trained):
    path, source, table = trained
    for name in (None, table):  # the run's own table is accepted (with its small-input mode applied)
        model, info = model_from_checkpoint(path, name)
        assert not model.training and model.features[0].stride == (1, 1)
        assert (info["in_chans"], info["num_classes"], info["img_size"], info["stem_stride"]) == (1, 7, 16, 1)
        assert info["name"] == source.arch.name and info["small_input"] == "s8" and info["trained_here"]
        assert info["metadata"]["data"] == "fake" and info["pretrained_cfg"] is None and info["epoch"] == 2
        x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"model_name": "rexnet_100"}, "another model or width"),
        ({"num_classes": 5}, "7-class classifier"),
        ({"small_input": "s16"}, "small-input mode s8, not s16"),
    ],
)
def test_a_training_checkpoint_refuses_another_network(trained, kwargs, words):
    with pytest.raises(RexnetError, match=words) as info:
        model_from_checkpoint(trained[0], **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("layout", ["official", "timm"])
def test_official_and_timm_checkpoints_need_a_name_and_load_strictly(tmp_path, layout):
    source = randomize(ReXNetV1(1.3, num_classes=10), seed=1)
    state = source.state_dict() if layout == "official" else official_to_timm(source.state_dict())
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(RexnetError, match="give --model NAME"):
        model_from_checkpoint(tmp_path / "w.pth")
    with pytest.raises(RexnetError, match="saved from rexnet_130"):
        model_from_checkpoint(tmp_path / "w.pth", "rexnet_100")
    model, info = model_from_checkpoint(tmp_path / "w.pth", "rexnet_130")  # classes read from the classifier
    assert (info["num_classes"], info["in_chans"], info["img_size"], info["layout"]) == (10, 3, None, layout)
    assert info["pretrained_cfg"].input_size == (3, 224, 224) and not info["trained_here"]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
    grey, info = model_from_checkpoint(state, "rexnet_130", in_chans=1)  # a dict works too; the stem is adapted
    assert info["in_chans"] == 1 and grey.features[0].weight.shape[1] == 1


def test_a_saved_model_records_its_network_and_needs_no_name(tmp_path):
    from rexnet import rexnet_v1_arch

    source = randomize(ReXNet(small_input_variant(rexnet_v1_arch(0.5), "s8")[0], 4, 2), seed=5)
    path = save_checkpoint(tmp_path / "saved.pth", source)  # save_checkpoint alone, no training metadata
    model, info = model_from_checkpoint(path)
    assert (info["in_chans"], info["num_classes"], info["small_input"], info["stem_stride"]) == (2, 4, "s8", 1)
    assert not info["trained_here"] and info["img_size"] is None and info["pretrained_cfg"] is not None
    x = torch.randn(2, 2, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_a_bare_state_dict_is_built_in_the_mode_asked_for(tmp_path):
    from rexnet import rexnet_v1_arch

    source = randomize(ReXNet(small_input_variant(rexnet_v1_arch(0.5), "s16")[0], 10, 1), seed=6)
    torch.save(source.state_dict(), tmp_path / "bare.pth")  # no table: the weights fit off and s16 alike
    model, info = model_from_checkpoint(tmp_path / "bare.pth", "rexnet_050", in_chans=1, small_input="s16")
    assert (info["small_input"], info["in_chans"], model.arch.strides[-1]) == ("s16", 1, 16)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)
