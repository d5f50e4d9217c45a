"""The NAS-Bench-201 network: parameter counts equal the benchmark's, cell strings parse, init is seeded."""

import pytest
import torch

from rankstudy.errors import StudyError
from rankstudy.proxies.nb201 import NB201Network, build_network, cell_string, parse_cell


def n_params(ops, num_classes=10) -> int:
    return sum(p.numel() for p in NB201Network(cell_string(ops), num_classes).parameters())


# Layers outside the cells (C = 16):
#   stem: conv 3→16 3×3 (432) + BN(16) (32)                                   =    464
#   reduction 16→32: conv_a 3×3 16→32 (4,608) + BN (64), conv_b 3×3 32→32 (9,216) + BN (64),
#                    shortcut 1×1 16→32 (512)                                  = 14,464
#   reduction 32→64: 18,432 + 128 + 36,864 + 128 + 2,048                       = 57,600
#   lastact BN(64) (128), classifier 64→10 (640 + 10)                          =    778
#   total                                                                      = 73,306
SKELETON = 464 + 14_464 + 57_600 + 128 + 650


def test_all_nor_conv_3x3_has_the_benchmarks_count():
    assert n_params(["nor_conv_3x3"] * 6) == 1_531_546


@pytest.mark.parametrize("op", ["none", "skip_connect", "avg_pool_3x3"])
def test_parameter_free_cells_count_only_the_skeleton(op):
    assert SKELETON == 73_306
    assert n_params([op] * 6) == SKELETON


def test_nor_conv_1x1_and_mixed_cells_counted_by_hand():
    # one ReLU-conv1x1-BN edge at C channels: C² + 2C; 5 cells per stage at C = 16, 32, 64
    conv1 = sum(5 * (c * c + 2 * c) for c in (16, 32, 64))
    conv3 = sum(5 * (9 * c * c + 2 * c) for c in (16, 32, 64))
    assert n_params(["nor_conv_1x1"] * 6) == SKELETON + 6 * conv1 == 241_306
    mixed = ["nor_conv_3x3", "none", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_3x3"]
    assert n_params(mixed) == SKELETON + 2 * conv3 + conv1
    # 100 classes: the classifier grows by 64·90 + 90
    assert n_params(["none"] * 6, num_classes=100) == SKELETON + 90 * 65


def test_forward_shape_cells_and_stages():
    net = build_network(
        cell_string(["nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3", "nor_conv_3x3", "skip_connect"]),
        seed=0,
        num_classes=7,
    )
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert len(net.cells) == 15 and net.cell_stage == [0] * 5 + [1] * 5 + [2] * 5


def test_cell_string_roundtrip_and_node_wiring():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert (
        cell_string(["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect"])
        == arch
    )
    assert parse_cell(arch)[2] == (("skip_connect", 0), ("nor_conv_3x3", 1), ("skip_connect", 2))


def test_skip_only_cell_is_four_times_its_input():
    # node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    net = build_network(cell_string(["skip_connect"] * 6), seed=0)
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(net.cells[0](x), 4 * x)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
)
def test_bad_cell_strings_are_study_errors(bad):
    with pytest.raises(StudyError):
        parse_cell(bad)


def test_same_seed_same_weights_and_global_rng_untouched():
    arch = cell_string(["nor_conv_3x3"] * 6)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = build_network(arch, 5), build_network(arch, 5)
    assert torch.rand(1) == before
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    c = build_network(arch, 6)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
