"""The timm interface against timm itself: same weights in both, the same numbers out of every entry point.

timm's generic model tests (test_timm_interface.py) check shapes; these check values, with timm's own models
as the reference: rexnetr_* (bit-identical, checkpoints converted both ways), forward_intermediates and its taps,
global_pool types, reset_classifier, pretrained=True from a local cache, name.tag, pretrained_cfg as timm's data
helpers read it, group_matcher as timm's optimizer factory reads it, prune_intermediate_layers.
"""

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.data import resolve_data_config
from timm.models import group_parameters

from rexnet import RexnetError, create_model
from rexnet.keymap import official_to_timm

from .conftest import randomize

X = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))


def pair(name: str, seed: int = 0, **kwargs):
    """Returns (ours, timm's) with timm's randomised weights loaded into ours."""
    torch.manual_seed(seed)
    theirs = randomize(timm.create_model(name, **kwargs), seed=seed)
    ours = create_model(name, checkpoint=theirs.state_dict(), **kwargs).eval()
    return ours, theirs


@pytest.mark.parametrize("name", ["rexnetr_100", "rexnetr_300"])
def test_rexnetr_matches_timm_bit_for_bit_and_converts_both_ways(name):
    ours, theirs = pair(name)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    with torch.no_grad():
        assert torch.equal(ours(X), theirs(X))
    back = timm.create_model(name)
    back.load_state_dict(official_to_timm(ours.state_dict()), strict=True)
    with torch.no_grad():
        assert torch.equal(back.eval()(X), theirs(X))


def test_forward_intermediates_and_taps_are_timms():
    ours, theirs = pair("rexnet_100", seed=1)
    assert [(i["num_chs"], i["reduction"]) for i in ours.feature_info] == [
        (i["num_chs"], i["reduction"]) for i in theirs.feature_info
    ]
    # our module names are the official layout's: timm's 'stem' is features.2, its 'features.k' is features.{k+3}
    renamed = [
        "features.2" if i["module"] == "stem" else f"features.{int(i['module'].split('.')[1]) + 3}"
        for i in theirs.feature_info
    ]
    assert [i["module"] for i in ours.feature_info] == renamed
    with torch.no_grad():
        all_maps = theirs.forward_intermediates(X, intermediates_only=True)
        for kwargs in ({}, {"indices": 2}, {"indices": [0, -1]}, {"indices": [1, 3], "stop_early": True}):
            final, maps = ours.forward_intermediates(X, **kwargs)
            their_final, their_maps = theirs.forward_intermediates(X, **kwargs)
            assert len(maps) == len(their_maps) and all(torch.equal(a, b) for a, b in zip(maps, their_maps))
            assert torch.equal(final, their_final)
        only = ours.forward_intermediates(X, indices=[4], intermediates_only=True)
        assert len(only) == 1 and torch.equal(only[0], all_maps[-1])


@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
def test_global_pool_and_pooled_features_are_timms(pool):
    ours, theirs = pair("rexnet_100", seed=2, global_pool=pool)
    with torch.no_grad():
        assert torch.equal(ours(X), theirs(X))
        feats = ours.forward_features(X)
        assert torch.equal(ours.forward_head(feats, pre_logits=True), theirs.forward_head(feats, pre_logits=True))
        ours.reset_classifier(0)
        theirs.reset_classifier(0)
        pooled = ours(X)
        assert pooled.shape == (2, ours.num_features) and torch.equal(pooled, theirs(X))
        ours.reset_classifier(0, "")
        assert torch.equal(ours(X), feats)  # no pool, no classifier: forward_features' map
    ours.reset_classifier(7, "avg")
    assert ours.get_classifier().out_channels == 7 and ours.eval()(X).shape == (2, 7)
    assert ours.state_dict()["output.1.weight"].shape == (7, ours.num_features, 1, 1)  # the official layout
    with pytest.raises(RexnetError, match="global_pool=''"):
        ours.reset_classifier(7, "")
    with pytest.raises(RexnetError, match="global_pool='fancy'"):
        create_model("rexnet_100", global_pool="fancy")


def test_lite_pooled_features_are_its_head_output():
    model = randomize(create_model("rexnet_lite_100"))
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(X), pre_logits=True)
        model.reset_classifier(0)
        assert pre.shape == (2, model.head_hidden_size) == (2, 1024) and torch.equal(model(X), pre)


def test_pretrained_loads_a_local_copy_and_refuses_without_one(tmp_path, monkeypatch):
    monkeypatch.setenv("REXNET_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(RexnetError, match="downloads nothing"):
        create_model("rexnet_100", pretrained=True)
    with pytest.raises(RexnetError, match="rexnet_050 has no published weights"):
        create_model("rexnet_050", pretrained=True)
    theirs = randomize(timm.create_model("rexnet_100"), seed=3)
    snapshot = tmp_path / "hf" / "models--timm--rexnet_100.nav_in1k" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(snapshot / "model.safetensors"))
    for name in ("rexnet_100", "rexnet_100.nav_in1k"):
        model = create_model(name, pretrained=True).eval()
        with torch.no_grad():
            assert torch.equal(model(X), theirs(X))
    # timm's test_model_load_pretrained: another stem width and class count still load (stem adapted, head new)
    grey = create_model("rexnet_100", pretrained=True, in_chans=1, num_classes=5)
    assert grey.features[0].weight.shape[1] == 1 and grey.num_classes == 5
    assert create_model("rexnet_100", pretrained=True, num_classes=0).num_classes == 0
    assert create_model("rexnet_100", pretrained=True, features_only=True).feature_info.channels()[-1] == 185
    # the official file by its published name in $REXNET_WEIGHTS is found too
    (tmp_path / "weights").mkdir()
    torch.save(create_model("rexnet_100").state_dict(), tmp_path / "weights" / "rexnetv1_1.0x.pth")
    assert create_model("rexnet_100", pretrained=True).num_classes == 1000
    with pytest.raises(RexnetError, match="pretrained="):
        create_model("rexnet_100", pretrained="yes")


def test_tags_and_pretrained_cfg_read_as_timm_reads_them():
    with torch.device("meta"):
        assert create_model("rexnetr_200.sw_in12k").num_classes == 11821  # the tag's classes, as in timm
        assert create_model("rexnetr_200").pretrained_cfg["tag"] == "sw_in12k_ft_in1k"
    with pytest.raises(RexnetError, match="unknown tag rexnet_100.bogus: its tags are rexnet_100.nav_in1k"):
        create_model("rexnet_100.bogus")
    ours, theirs = create_model("rexnet_100"), timm.create_model("rexnet_100")
    assert resolve_data_config(model=ours) == resolve_data_config(model=theirs)
    for key in ("input_size", "pool_size", "crop_pct", "interpolation", "mean", "std", "num_classes", "hf_hub_id"):
        assert ours.pretrained_cfg[key] == theirs.pretrained_cfg[key], key
    assert ours.default_cfg is ours.pretrained_cfg
    grey = create_model("rexnet_050", in_chans=1, stem_stride=1)
    assert resolve_data_config(model=grey)["input_size"] == (1, 224, 224)
    assert grey.pretrained_cfg["pool_size"] == (14, 14)  # total stride 16 with a stride-1 stem


def test_group_matcher_groups_as_timm_expects():
    model = create_model("rexnet_100")
    groups = group_parameters(model, model.group_matcher())
    names = [set(v) for v in groups.values()]
    assert {"features.0.weight", "features.1.weight", "features.1.bias"} == names[0]  # the stem first
    assert all(len(g) > 0 for g in names) and len(names) == len(model.features) - 2  # one group per later layer
    assert "output.1.weight" in names[-1]
    assert sum(map(len, names)) == len(list(model.parameters()))


def test_prune_intermediate_layers_leaves_the_truncated_backbone():
    model = randomize(create_model("rexnet_100"))
    with torch.no_grad():
        maps = model.forward_intermediates(X, intermediates_only=True)
        kept = model.prune_intermediate_layers(indices=3)
        assert kept == [2, 3, 4]  # the last three taps, as timm counts an int
        out = model(X)
    assert model.num_classes == 0 and model.num_features == 185 and torch.equal(out, maps[-1])
    model = randomize(create_model("rexnet_100"))
    with torch.no_grad():
        maps = model.forward_intermediates(X, intermediates_only=True)
        model.prune_intermediate_layers(indices=[0, 1, 2])
        assert torch.equal(model(X), maps[2])
    assert len(model.features) == model.stage_ends[2] + 1


def test_drop_rate_is_timms_name_for_dropout():
    with torch.device("meta"):
        assert create_model("rexnet_100", drop_rate=0.3).output[0].p == 0.3
        assert create_model("rexnet_100", dropout=0.1).output[0].p == 0.1
        assert create_model("rexnet_lite_100", drop_rate=0.3).output[3].p == 0.3
    with pytest.raises(RexnetError, match="drop_rate"):
        create_model("rexnet_100", drop_rate=1.5)


def test_fx_traces_a_training_graph_with_stochastic_depth():
    from torchvision.models.feature_extraction import create_feature_extractor

    model = create_model("rexnet_100", drop_path_rate=0.2, num_classes=3).train()
    graph = create_feature_extractor(model, return_nodes={"output.1": "logits"})
    torch.manual_seed(4)
    expected = model(X)
    torch.manual_seed(4)
    assert torch.equal(graph(X)["logits"], expected)  # the same random draws: drop_path is one recorded call
