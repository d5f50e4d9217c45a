"""rankstudy.probe (rankstudy.probing) on hand-built networks with a known bottleneck, on torchvision's ResNet-18;
the models a --model / --checkpoint pair names; the CLI."""

import copy
from collections import OrderedDict

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import rankstudy
import rankstudy.probing
from rankstudy.cli import main as cli
from rankstudy.errors import StudyError
from rankstudy.probing import load_model, measure_names
from rexnet.checkpoint import save_checkpoint
from rexnet.model import ReXNet

from ...rexnet.train_helpers import TINY

EPS32 = torch.finfo(torch.float32).eps


def squeeze_net() -> nn.Sequential:
    """Two wide layers with a 1×1 conv squeezing to 4 channels between them; `wide2` is linear in `squeeze`."""
    torch.manual_seed(0)
    return build(
        [
            ("wide1", nn.Conv2d(16, 64, 3, padding=1)),
            ("act1", nn.ReLU(inplace=True)),
            ("squeeze", nn.Conv2d(64, 4, 1, bias=False)),
            ("wide2", nn.Conv2d(4, 64, 1, bias=False)),
            ("act2", nn.ReLU(inplace=True)),  # overwrites wide2's output
            ("conv3", nn.Conv2d(64, 64, 3, padding=1)),
        ]
    )


def build(layers) -> nn.Sequential:
    """Returns an nn.Sequential with the given (name, module) pairs (a list or a dict)."""
    return nn.Sequential(OrderedDict(layers))


def reference_ranks(model: nn.Sequential, x: torch.Tensor) -> dict[str, int]:
    """Returns each layer's float32-tolerance rank of C × (N·H·W), from torch.linalg.matrix_rank in float64."""
    ranks = {}
    with torch.no_grad():
        for name, layer in model.named_children():
            x = layer(x)
            f = x.transpose(0, 1).reshape(x.shape[1], -1).double()
            s = torch.linalg.svdvals(f)
            ranks[name] = int(torch.linalg.matrix_rank(f, atol=float(s[0] * max(f.shape) * EPS32), rtol=0.0))
            x = x.clone()
    return ranks


@pytest.fixture
def net():
    return squeeze_net()


def test_squeeze_is_flagged_and_caps_the_layer_it_feeds(net):
    x = torch.randn(24, 16, 6, 6, generator=torch.Generator().manual_seed(1))
    table = rankstudy.probe(net, x, max_columns=10_000).set_index("name")
    assert list(table.index) == ["wide1", "act1", "squeeze", "wide2", "act2", "conv3"]
    assert table.loc["wide2", "rank"] <= 4 and table.loc["wide2", "normalized_rank"] == 4 / 64
    # the largest fall is at the wide layer fed by the squeeze, and the squeeze is named as its cap
    assert table["drop"].idxmax() == "wide2" and table.loc["wide2", "falls"]
    assert table.loc["wide2", "limited_by"] == "squeeze" and table.loc["squeeze", "caps"] == "wide2"
    assert table.loc["squeeze", "flagged"] and table.loc["wide2", "flagged"] and not table.loc["wide1", "flagged"]
    # every rank agrees with an independent float64 SVD of the full feature matrix (in-place ReLU included)
    assert table["rank"].to_dict() == reference_ranks(net, x)
    assert (table["columns"] == 24 * 36).all() and (table["positions"] == 36).all()
    assert table.loc["wide1", "output_shape"] == "24x64x6x6"
    for m in measure_names():
        norm = table["normalized_" + m]
        assert ((norm >= 0) & (norm <= 1 + 1e-12)).all(), m
    assert (table["normalized_rank_rtol_1e-2"] == table["rank_rtol_1e-2"] / table["channels"]).all()


def test_public_names():
    """`rankstudy.probe` is the probe function (no module of that name), and the wing exports what it lists."""
    assert callable(rankstudy.probe) and rankstudy.probe is rankstudy.probing.probe
    assert all(hasattr(rankstudy.probing, name) for name in rankstudy.probing.__all__)
    from rankstudy import probe  # noqa: PLC0415 - the import users write

    assert probe is rankstudy.probing.run.probe


def test_a_squeeze_as_wide_as_its_neighbours_is_not_flagged():
    torch.manual_seed(0)
    net = build(
        {
            "wide1": nn.Conv2d(16, 64, 3, padding=1),
            "act1": nn.ReLU(),
            "squeeze": nn.Conv2d(64, 64, 1, bias=False),
            "wide2": nn.Conv2d(64, 64, 1, bias=False),
        }
    )
    table = rankstudy.probe(net, torch.randn(16, 16, 6, 6))
    # square random layers lose a little rank at rtol 1e-2, far less than the flag threshold
    assert not table["flagged"].any() and 0 < table["drop"].max() < 0.25


def test_subsampled_columns_do_not_depend_on_batch_size(net):
    x = torch.randn(20, 16, 6, 6)
    tables = [rankstudy.probe(net, x, max_columns=300, batch_size=b) for b in (3, 20)]
    assert (tables[0]["columns"] == 300).all()
    pd.testing.assert_frame_equal(tables[0], tables[1])
    other_seed = rankstudy.probe(net, x, max_columns=300, seed=1)
    assert not other_seed["nuclear_norm"].equals(tables[0]["nuclear_norm"])  # other columns chosen


def test_mode_and_weights_untouched_and_hooks_removed():
    net = build([("conv", nn.Conv2d(16, 64, 3)), ("bn", nn.BatchNorm2d(64)), *list(squeeze_net().named_children())[1:]])
    net.train()
    net[1].eval()  # a mixed state to restore: root in train mode, one child in eval
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    table = rankstudy.probe(net, torch.randn(8, 16, 6, 6))
    assert len(table) == 7
    assert [m.training for m in net.modules()] == modes
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats included
    assert all(not m._forward_hooks for m in net.modules())


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_hooks_removed_and_mode_restored_after_a_failure(net):
    net.append(Boom())
    net.train()
    with pytest.raises(RuntimeError, match="boom"):
        rankstudy.probe(net, torch.randn(4, 16, 6, 6))
    assert all(not m._forward_hooks for m in net.modules())
    assert all(m.training for m in net.modules())


def test_layer_selection_tokens_and_bad_input():
    torch.manual_seed(0)
    net = build({"proj": nn.Linear(8, 32), "act": nn.GELU(), "out": nn.Linear(32, 2)})
    table = rankstudy.probe(net, torch.randn(10, 5, 8), layers=["proj", "out"], measures=["rank"])
    assert list(table["name"]) == ["proj", "out"] and list(table["channels"]) == [32, 2]
    assert list(table["positions"]) == [5, 5] and table.loc[0, "rank"] == 9  # affine image of 8 dims: ≤ 8 + 1
    assert "effective_rank" not in table and "rank_rtol_1e-2" in table  # the flag measure is always there
    with pytest.raises(StudyError, match="no module 'prj'.*did you mean proj"):
        rankstudy.probe(net, torch.randn(2, 5, 8), layers=["prj"])
    with pytest.raises(StudyError, match="unknown measure 'rnak'"):
        rankstudy.probe(net, torch.randn(2, 5, 8), measures=["rnak"])
    with pytest.raises(StudyError, match="non-empty tensor"):
        rankstudy.probe(net, torch.randn(0, 5, 8))


def test_capped_layers_are_marked_and_never_flagged():
    torch.manual_seed(0)
    net = build({"conv": nn.Conv2d(3, 32, 3, padding=1), "pool": nn.AdaptiveAvgPool2d(1), "fc": nn.Conv2d(32, 64, 1)})
    table = rankstudy.probe(net, torch.randn(8, 3, 8, 8)).set_index("name")
    assert table.loc["pool", "capped"] and table.loc["pool", "columns"] == 8 and table.loc["pool", "rank"] <= 8
    assert not table.loc[["pool", "fc"], "falls"].any() and pd.isna(table.loc["pool", "drop"])


def test_torchvision_resnet18_random_weights():
    import torchvision

    model = torchvision.models.get_model("resnet18", weights=None)
    table = rankstudy.probe(model, torch.randn(6, 3, 32, 32), max_columns=512)
    names = list(table["name"])
    assert names[0] == "conv1" and names[-1] == "fc"
    assert "layer1.0.relu#2" in names  # BasicBlock calls its ReLU twice: one row per call
    assert (table["rank"] <= table[["channels", "columns"]].min(axis=1)).all()
    assert table.set_index("name").loc["fc", "capped"]  # 1000 classes, 6 images
    assert all(not m._forward_hooks for m in model.modules())


def test_a_rexnet_train_checkpoint_rebuilds_its_own_network(tmp_path):
    """`rexnet train` checkpoints carry table, stem stride, input channels and image size (rexnet.registry
    .model_from_checkpoint reads them): --model may be left out, and a --model naming another network is refused."""
    torch.manual_seed(0)
    trained = ReXNet(TINY, num_classes=10, in_chans=1, stem_stride=1)
    path = save_checkpoint(
        tmp_path / "model.pth",
        trained,
        epoch=1,
        metadata={
            "in_chans": 1,
            "img_size": 16,
            "stem_stride": 1,
            "config": {"model": "tiny.json", "small_input": "s8"},
        },
    )
    loaded = load_model(None, path)
    assert (loaded.in_chans, loaded.img_size, loaded.description) == (1, 16, f"tiny.json ({path})")
    assert loaded.model.features[0].stride == (1, 1) and loaded.model.num_classes == 10
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), trained.state_dict().values()))
    with pytest.raises(StudyError, match="holds tiny, not rexnet_100"):
        load_model("rexnet_100", path)
    built = load_model("rexnet_050", num_classes=7, in_chans=1)  # by name, random weights
    assert (built.in_chans, built.img_size, built.model.num_classes) == (1, None, 7)
    with pytest.raises(StudyError, match="give --model"):
        load_model(None)


def test_a_block_table_builds_the_network_it_records(tmp_path):
    """A variant JSON carries its input channels, classes and small-input mode: the probe builds that network,
    not one shaped by the data (1-channel images are repeated for a 3-channel table)."""
    from dataclasses import replace

    from rexnet.arch import save_arch
    from rexnet.small_input import small_input_variant

    small, _ = small_input_variant(TINY, "s8")
    table = replace(small, in_chans=1, num_classes=7, provenance={"budget": {"img_size": 24}})
    path = save_arch(table, tmp_path / "variant.json")
    loaded = load_model(str(path), in_chans=3)  # the data's 3 channels do not change the table's 1
    assert (loaded.in_chans, loaded.img_size, loaded.model.num_classes) == (1, 24, 7)
    assert loaded.model.features[0].stride == (1, 1) and loaded.model.features[0].in_channels == 1
    plain = save_arch(TINY, tmp_path / "plain.json")  # a table of the 224-px layout: 3 channels, 1000 classes
    loaded = load_model(str(plain), in_chans=1)
    assert (loaded.in_chans, loaded.img_size, loaded.model.num_classes) == (3, None, 1000)


# --- the command line ---------------------------------------------------------------------------------------


def run(args):
    return CliRunner().invoke(cli, ["probe", *args, "--quiet"])


def test_cli_writes_table_and_figure(tmp_path):
    out = tmp_path / "p"
    result = run(
        [
            "--model",
            "torchvision:resnet18",
            "--data",
            "random",
            "--img-size",
            "32",
            "--n-images",
            "8",
            "--max-columns",
            "256",
            "--out",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "probe.csv")
    assert len(table) > 40 and table["flagged"].any() and (out / "probe.png").stat().st_size > 0
    assert "largest drops of rank_rtol_1e-2/channels" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "rexnet_0500"], "unknown model 'rexnet_0500'"),
        (["--model", "timm:no_such_net"], "unknown timm model"),
        (["--model", "torchvision:no_such_net"], "unknown torchvision model"),
        (["--model", "torchvision:resnet18", "--checkpoint", "MISSING"], "not found"),
        (["--model", "torchvision:resnet18", "--checkpoint", "LINEAR"], "does not fit torchvision:resnet18"),
        (["--model", "torchvision:resnet18", "--checkpoint", "GARBAGE"], "not a loadable weights file"),
        (["--model", "torchvision:resnet18", "--data", "imagefolder:/no/such/folder"], "does not exist"),
        (["--model", "torchvision:resnet18", "--data", "cifar"], "unknown --data"),
        (["--model", "rexnet_100", "--measure-typo"], None),
    ],
)
def test_cli_errors_exit_2_and_write_nothing(tmp_path, args, message):
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "linear.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    files = {
        "MISSING": str(tmp_path / "missing.pth"),
        "LINEAR": str(tmp_path / "linear.pth"),
        "GARBAGE": str(tmp_path / "garbage.pth"),
    }
    out = tmp_path / "out"
    result = run([files.get(a, a) for a in args] + ["--n-images", "2", "--img-size", "32", "--out", str(out)])
    assert result.exit_code == 2, result.output
    if message is not None:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert not out.exists()


def test_probe_without_img_size_uses_the_datas_size(tmp_path):
    # no --img-size and a name (no recorded size): random images come at their default 224 px
    from rankstudy.probing.run import run_probe

    table, written = run_probe("rexnet_050", None, "random", 4, tmp_path / "p", progress=False, max_columns=64)
    assert len(table) > 0 and all(p.exists() for p in written)


# --- batch norm: batch or running statistics ------------------------------------------------------------------


def offset_bn_net() -> nn.Sequential:
    """conv with a large bias → BN → ReLU → conv: with the untrained running statistics (0 / 1)
    BN passes the offset on and the ReLU never cuts (its output is affine in 8 input channels: rank ≤ 9); with
    the batch's statistics BN centres it and the ReLU output reaches full rank."""
    torch.manual_seed(0)
    net = build(
        [
            ("conv", nn.Conv2d(8, 32, 1)),
            ("bn", nn.BatchNorm2d(32)),
            ("act", nn.ReLU(inplace=True)),
            ("out", nn.Conv2d(32, 32, 1)),
        ]
    )
    with torch.no_grad():
        net.conv.bias.add_(5.0)
    return net


def reference_features(model: nn.Module, x: torch.Tensor, batches: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """Returns each child's full feature matrix C × (N·H·W), the model run as it is, batch by batch."""
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start, stop in batches:
            h = x[start:stop]
            for name, layer in model.named_children():
                h = layer(h)
                parts.setdefault(name, []).append(h.transpose(0, 1).reshape(h.shape[1], -1).clone())
    return {name: torch.cat(p, dim=1) for name, p in parts.items()}


def test_bn_batch_normalises_with_each_batchs_statistics():
    net = offset_bn_net()
    x = torch.randn(40, 8, 4, 4, generator=torch.Generator().manual_seed(2))
    batch = rankstudy.probe(net, x, bn="batch", max_columns=10_000, batch_size=20).set_index("name")
    running = rankstudy.probe(net, x, bn="running", max_columns=10_000, batch_size=20).set_index("name")
    assert (batch["bn"] == "batch").all() and (running["bn"] == "running").all()
    assert running.loc["act", "rank"] <= 9 and batch.loc["act", "rank"] == 32  # the BN-following ReLU
    assert batch.loc["conv", "rank"] == running.loc["conv", "rank"]  # before any BN: the same
    # the independent reference: a copy in train mode whose BN keeps its buffers (momentum 0), fed the same two
    # batches of 20 the probe feeds (chunks), against the float64 SVD of each whole feature matrix
    ref = rankstudy.probing.hooks.chunks(40, 20)
    assert ref == [(0, 20), (20, 40)] and batch.attrs["batch_sizes"] == [20, 20]
    reference = copy.deepcopy(net).train()
    reference.bn.momentum = 0.0
    for name, f in reference_features(reference, x, ref).items():
        s = torch.linalg.svdvals(f.double())
        assert batch.loc[name, "nuclear_norm"] == pytest.approx(s.sum().item(), rel=1e-4), name
        assert batch.loc[name, "rank"] == int((s > s[0] * max(f.shape) * EPS32).sum()), name
    # one batch of 40 has other statistics than two of 20
    whole = rankstudy.probe(net, x, bn="batch", max_columns=10_000, batch_size=40).set_index("name")
    assert whole.loc["bn", "nuclear_norm"] != pytest.approx(batch.loc["bn", "nuclear_norm"], rel=1e-6)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_bn_batch_leaves_buffers_and_modes_as_they_were(mode):
    torch.manual_seed(0)
    net = build(
        [
            ("conv", nn.Conv2d(4, 16, 3, padding=1)),
            ("gn", nn.GroupNorm(4, 16)),  # not a batch norm: the same in both modes
            ("bn", nn.BatchNorm2d(16)),
            ("act", nn.ReLU()),
            ("drop", nn.Dropout(0.5)),  # off while probing, whatever the model's mode
            ("sync", nn.SyncBatchNorm(16, momentum=None)),  # cumulative average: would count every batch
            ("pool", nn.AdaptiveAvgPool2d(1)),
            ("flat", nn.Flatten()),
            ("bn1d", nn.BatchNorm1d(16)),
            ("fc", nn.Linear(16, 5)),
        ]
    )
    net(torch.randn(8, 4, 6, 6))  # in train mode: running statistics no longer 0 / 1
    getattr(net, mode)()
    net.act.eval()  # a mixed state to restore
    before = copy.deepcopy(net.state_dict())
    modes = [m.training for m in net.modules()]
    x = torch.randn(12, 4, 6, 6)
    table = rankstudy.probe(net, x, bn="batch", batch_size=6).set_index("name")
    after = net.state_dict()
    assert list(before) == list(after) and all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in net.modules()] == modes
    assert all(not m._forward_hooks for m in net.modules())
    pd.testing.assert_frame_equal(table, rankstudy.probe(net, x, bn="batch", batch_size=6).set_index("name"))
    running = rankstudy.probe(net, x, bn="running", batch_size=6).set_index("name")
    assert table.loc["gn", "nuclear_norm"] == running.loc["gn", "nuclear_norm"]
    for name in ("bn", "sync", "bn1d"):
        assert table.loc[name, "nuclear_norm"] != pytest.approx(running.loc[name, "nuclear_norm"], rel=1e-4), name
    # the features of the batch-norm layers are those of train mode with frozen buffers and dropout off
    reference = copy.deepcopy(net).train()
    reference.drop.eval()
    for m in reference.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    for name, f in reference_features(reference, x, [(0, 6), (6, 12)]).items():
        if name in table.index:
            assert table.loc[name, "nuclear_norm"] == pytest.approx(
                torch.linalg.svdvals(f.double()).sum().item(), rel=1e-4
            ), name


def test_bn_default_is_batch_untrained_and_running_trained(tmp_path):
    net = offset_bn_net()
    x = torch.randn(16, 8, 4, 4)
    assert set(rankstudy.probe(net, x)["bn"]) == {"batch"} and rankstudy.probe(net, x, bn="auto").attrs["bn"] == "batch"
    no_bn = build([("conv", nn.Conv2d(8, 4, 1))])
    assert set(rankstudy.probe(no_bn, x)["bn"]) == {"running"}
    net.train()
    net(x)  # one training step's statistics: a trained network now
    net.eval()
    assert set(rankstudy.probe(net, x)["bn"]) == {"running"}
    with pytest.raises(StudyError, match=r"bn='bogus' is not a batch-norm mode; use bn='batch', bn='running'"):
        rankstudy.probe(net, x, bn="bogus")

    # run_probe / the CLI: batch without a checkpoint, running with one (here untrained weights, so the
    # checkpoint alone decides), and --bn chooses
    torch.manual_seed(0)
    path = save_checkpoint(
        tmp_path / "model.pth",
        ReXNet(TINY, num_classes=10, in_chans=1, stem_stride=1),
        epoch=1,
        metadata={"in_chans": 1, "img_size": 16, "stem_stride": 1, "config": {"model": "tiny.json"}},
    )
    common = ["--data", "random", "--n-images", "6", "--max-columns", "64", "--img-size", "16"]
    for args, expected in [
        (["--model", "rexnet_050"], "batch"),
        (["--checkpoint", str(path)], "running"),
        (["--checkpoint", str(path), "--bn", "batch"], "batch"),
        (["--model", "rexnet_050", "--bn", "running"], "running"),
    ]:
        out = tmp_path / f"p{len(list(tmp_path.iterdir()))}"
        result = run([*args, *common, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert set(pd.read_csv(out / "probe.csv")["bn"]) == {expected}, args
        assert f"batch norm: {expected} statistics" in result.output


def test_cli_bad_bn_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "out"
    result = run(["--model", "rexnet_050", "--bn", "bogus", "--n-images", "2", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "error: --bn bogus: unknown batch-norm mode; use --bn batch or --bn running"
    assert "Traceback" not in result.output and not out.exists()
