"""The block table: official channel arithmetic, the 1.0× table, lite rounding, JSON round trip and validation."""

import json

import pytest

from rexnet import ArchSpec, RexnetError, arch_to_dict, block_table, format_block_table, load_arch, save_arch
from rexnet.arch import rexnet_lite_arch, rexnet_v1_arch

from .official_reference import lite_config, v1_config


def _rows(arch: ArchSpec):
    return [(b.in_channels, b.out_channels, b.expansion, b.stride, b.se) for b in arch.blocks]


def test_v1_100_block_table():
    arch = rexnet_v1_arch(1.0)
    assert arch.stem_channels == 32
    assert [b.out_channels for b in arch.blocks] == [
        16,
        27,
        38,
        50,
        61,
        72,
        84,
        95,
        106,
        117,
        128,
        140,
        151,
        162,
        174,
        185,
    ]
    assert [b.in_channels for b in arch.blocks] == [32] + [b.out_channels for b in arch.blocks[:-1]]
    assert arch.penultimate_channels == 1280
    assert [b.stride for b in arch.blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [b.expansion for b in arch.blocks] == [1] + [6] * 15
    assert [b.se for b in arch.blocks] == [False] * 3 + [True] * 13
    assert {b.act for b in arch.blocks} == {"silu"} and {b.dw_act for b in arch.blocks} == {"relu6"}
    assert arch.strides[-1] == 32


@pytest.mark.parametrize("width", [0.5, 0.9, 1.0, 1.3, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("depth", [1.0, 1.5])
def test_v1_table_matches_official_arithmetic(width, depth):
    ref, arch = v1_config(width, depth), rexnet_v1_arch(width, depth)
    assert (arch.stem_channels, arch.penultimate_channels) == (ref["stem"], ref["pen"])
    assert _rows(arch) == ref["blocks"]


@pytest.mark.parametrize("mult", [0.75, 1.0, 1.3, 1.5, 2.0])
def test_lite_table_matches_official_arithmetic(mult):
    ref, arch = lite_config(mult), rexnet_lite_arch(mult)
    assert (arch.stem_channels, arch.penultimate_channels, arch.head_channels) == (ref["stem"], ref["pen"], 1024)
    assert _rows(arch) == ref["blocks"]
    assert all(b.out_channels % 8 == 0 for b in arch.blocks)
    assert {b.act for b in arch.blocks} | {b.dw_act for b in arch.blocks} == {"relu6"}


def test_block_table_helper_and_text():
    blocks = block_table(1.0)
    assert len(blocks) == 16 and blocks[0].mid_channels == 32 and blocks[1].mid_channels == 96
    text = format_block_table(rexnet_v1_arch(1.0))
    for width in (16, 27, 185, 1280):
        assert f" {width} " in f"{text} "


def test_arch_json_round_trip(tmp_path):
    arch = rexnet_lite_arch(1.3)
    path = save_arch(arch, tmp_path / "arch.json")
    assert load_arch(path) == arch
    assert not [p for p in tmp_path.iterdir() if p.name != "arch.json"]  # no temp file left behind


def _write(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["blocks"][3].update(in_channels=41), "block 3 takes 41 channels"),
        (lambda d: d["blocks"][2].update(act="swishy"), "unknown act"),
        (lambda d: d["blocks"][2].update(stride=3), "stride=3"),
        (lambda d: d["blocks"][0].pop("se"), "missing ['se']"),
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(depth=3), "unknown field"),
        (lambda d: d.update(stem_stride=3), "stem_stride=3"),
        (lambda d: d.update(stem_stride=2.0), "stem_stride=2.0"),
        (lambda d: d.update(small_input="s4"), "small_input='s4'"),
        (lambda d: d.update(small_input="s8"), "small_input 's8' with stem_stride 2"),
        (lambda d: d.update(in_chans=0), "in_chans=0"),
        (lambda d: d.update(in_chans=True), "in_chans=True"),
        (lambda d: d.update(num_classes=-1), "num_classes=-1"),
        (lambda d: d.update(num_classes="10"), "num_classes='10'"),
        (lambda d: d["blocks"][4].update(expanded=0), "block 4: expanded=0"),
        (lambda d: d["blocks"][4].update(se_channels=1.5), "block 4: se_channels=1.5"),
    ],
)
def test_bad_block_tables_are_rejected(tmp_path, edit, message):
    data = arch_to_dict(rexnet_v1_arch(1.0))
    edit(data)
    with pytest.raises(RexnetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_arch(_write(tmp_path, data))


def test_not_json_is_rejected(tmp_path):
    with pytest.raises(RexnetError, match="not valid JSON"):
        load_arch(_write(tmp_path, "{nope"))
    with pytest.raises(RexnetError, match="does not exist"):
        load_arch(tmp_path / "missing.json")


def test_the_whole_network_round_trips_and_old_tables_read_with_the_defaults(tmp_path):
    from dataclasses import replace

    from rexnet.arch import rexnet_v1_arch as v1

    whole = replace(v1(0.5), stem_stride=1, small_input="s8", in_chans=1, num_classes=0)
    assert load_arch(save_arch(whole, tmp_path / "whole.json")) == whole
    old = arch_to_dict(v1(0.5))
    for key in ("stem_stride", "small_input", "in_chans", "num_classes"):
        del old[key]  # a table written before these fields existed: the 224-px layout's values
    arch = load_arch(_write(tmp_path, old))
    assert (arch.stem_stride, arch.small_input, arch.in_chans, arch.num_classes) == (2, "off", 3, 1000)
    assert arch == v1(0.5)
    rounded = v1(1.0, ch_div=8)  # timm's rexnetr: expanded/se_channels set, written and read back
    assert load_arch(save_arch(rounded, tmp_path / "r.json")) == rounded


def test_network_diff_compares_structure_not_labels():
    from dataclasses import replace

    from rexnet.arch import network_diff
    from rexnet.arch import rexnet_v1_arch as v1

    base = v1(0.5)
    relabelled = replace(base, name="other", dropout=0.5, small_input="s16", provenance={"builder": "hand"})
    assert network_diff(base, relabelled) == []
    strided = replace(base, blocks=(replace(base.blocks[0], stride=2), *base.blocks[1:]), stem_stride=1)
    assert network_diff(base, strided) == ["blocks[0].stride", "stem_stride"]
    io = replace(base, in_chans=1, num_classes=10)
    assert network_diff(base, io) == ["in_chans", "num_classes"] and network_diff(base, io, io=False) == []
    assert network_diff(base, v1(0.5, depth_mult=2.0)) == ["blocks"]


def test_block_table_text_shows_input_stem_stride_and_mode():
    from dataclasses import replace

    from rexnet.arch import rexnet_v1_arch as v1

    text = format_block_table(replace(v1(0.5), stem_stride=1, small_input="s8", in_chans=1, num_classes=10))
    stem = next(line for line in text.splitlines() if line.split()[0] == "stem")
    assert stem.split()[:4] == ["stem", "1", "32", "3"] and stem.split()[4] == "1"  # in 1, out 32, k 3, s 1
    assert "input 1 channel(s), 10 classes, small-input mode s8, output stride 16" in text
