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
