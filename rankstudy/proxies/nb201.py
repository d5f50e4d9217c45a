"""The NAS-Bench-201 network, re-implemented from its definition (Dong & Yang, ICLR 2020, §2.1 and Figure 1).

The macro skeleton: a stem (3×3 conv, C = 16 channels, then BN), three stages of N = 5 cells at C, 2C and 4C
channels, a residual reduction block between stages (stride 2, doubling the channels), then BN, ReLU, global
average pooling and a linear classifier. A cell is a DAG of 4 nodes; node j (j = 1, 2, 3) is the sum of one
operation applied to every earlier node i < j, so a cell has 6 edges, each one of

    none          the zero map (x · 0)
    skip_connect  identity
    nor_conv_1x1  ReLU → 1×1 conv (no bias) → BN
    nor_conv_3x3  ReLU → 3×3 conv (no bias, padding 1) → BN
    avg_pool_3x3  3×3 average pooling, stride 1, padding 1, padding not counted

and the cell's output is node 3. The reduction block is a ResNet basic block (He et al., CVPR 2016): ReLU-conv-BN
3×3 stride 2, ReLU-conv-BN 3×3, plus a shortcut of 2×2 average pooling (stride 2) and a 1×1 conv (no BN).
BN layers are affine and track running statistics (PyTorch defaults); weights take PyTorch's default init, in
module construction order (stem, cells and blocks in order, last BN, classifier), so one seed gives one network.

A cell string is the benchmark's: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, the edges into node 1, 2, 3 with the
index of their source node. With 10 classes the all-`nor_conv_3x3` cell has 1,531,546 parameters, the
benchmark's figure (tests/rankstudy/proxies/test_nb201.py counts this and other cells by hand).
"""

import torch
from torch import nn

from ..errors import StudyError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
N_EDGES = 6
C_STEM = 16
N_CELLS = 5
N_STAGES = 3


def parse_cell(arch: str) -> tuple[tuple[tuple[str, int], ...], ...]:
    """Returns the cell string's edges as ((op, source),) per node 1..3; StudyError if it is not a NB201 cell."""
    text = str(arch).strip()
    nodes = text.split("+")
    parsed = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise StudyError(f"{arch!r} is not a NAS-Bench-201 cell string (e.g. |nor_conv_3x3~0|+|...|+|...|)")
        edges = []
        for token in node[1:-1].split("|"):
            op, _, src = token.partition("~")
            if op not in OPS or not src.isdigit():
                raise StudyError(f"{arch!r}: edge {token!r} is not op~source with op one of {', '.join(OPS)}")
            edges.append((op, int(src)))
        if sorted(s for _, s in edges) != list(range(j)):
            raise StudyError(f"{arch!r}: node {j} must take exactly one edge from each of nodes 0..{j - 1}")
        parsed.append(tuple(edges))
    if len(parsed) != 3:
        raise StudyError(f"{arch!r}: a NAS-Bench-201 cell has 3 nodes after the input, got {len(parsed)}")
    return tuple(parsed)


def cell_string(ops: tuple[str, ...]) -> str:
    """Returns the cell string of 6 edge ops in the benchmark's order (1←0, 2←0, 2←1, 3←0, 3←1, 3←2)."""
    if len(ops) != N_EDGES:
        raise StudyError(f"a cell has {N_EDGES} edges, got {len(ops)} ops")
    o = list(ops)
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


class ReLUConvBN(nn.Sequential):
    """ReLU → conv (no bias) → BN: the benchmark's `nor_conv` operations and the reduction block's convs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The `none` operation: x · 0 (keeps shape, dtype and the autograd graph, as the benchmark's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(name: str, channels: int) -> nn.Module:
    """Returns one cell edge's operation at `channels` channels, stride 1 (inside a cell C_in = C_out)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise StudyError(f"unknown NAS-Bench-201 operation {name!r}; use one of {', '.join(OPS)}")


class Cell(nn.Module):
    """A NAS-Bench-201 cell: node j = Σ_{i<j} op_ij(node i), output node 3."""

    def __init__(self, arch: str, channels: int):
        super().__init__()
        self.nodes = parse_cell(arch)
        self.edges = nn.ModuleList(make_op(op, channels) for node in self.nodes for op, _ in node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, k = [x], 0
        for node in self.nodes:
            total = None
            for _, src in node:
                y = self.edges[k](states[src])
                total = y if total is None else total + y
                k += 1
            states.append(total)
        return states[-1]


class ResidualReduction(nn.Module):
    """The reduction block between stages: ResNet basic block, stride 2, c_in → c_out channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The benchmark's macro network around one cell; `cells[k]` is the k-th cell, in stage `cell_stage[k]`."""

    def __init__(self, arch: str, num_classes: int = 10, channels: int = C_STEM, n_cells: int = N_CELLS):
        super().__init__()
        parse_cell(arch)
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        layers, self.cell_stage, c = [], [], channels
        for stage in range(N_STAGES):
            if stage:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            for _ in range(n_cells):
                layers.append(Cell(arch, c))
                self.cell_stage.append(stage)
        self.layers = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    @property
    def cells(self) -> list[Cell]:
        return [m for m in self.layers if isinstance(m, Cell)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.layers(self.stem(x)))
        return self.classifier(self.global_pooling(x).flatten(1))


def build_network(arch: str, seed: int, num_classes: int = 10) -> NB201Network:
    """Returns the network of cell string `arch` at initialisation from `seed` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NB201Network(arch, num_classes)
