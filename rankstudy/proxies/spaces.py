"""Search spaces: an object that lists architecture ids, builds a network from an id at initialisation (seeded),
and knows the trained accuracies. NAS-Bench-201 (Dong & Yang, ICLR 2020) is the first.

Accuracy tables have one row per architecture id (the benchmark's index) and the columns of ACCURACY_COLUMNS:
test accuracy (%) after the 200-epoch schedule and after the 12-epoch one, for cifar10, cifar100 and
imagenet16 (ImageNet16-120). The package ships the benchmark's cell strings and a fixed half of its accuracy
table (data/PROVENANCE.md); `NB201Space(bench=PATH)` reads both from the official benchmark file instead,
through the optional `nats_bench` package.
"""

import functools
from importlib import resources
from pathlib import Path
from typing import Protocol

import pandas as pd
from torch import nn

from ..errors import StudyError
from .nb201 import build_network, parse_cell

DATASETS = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}
EPOCHS = (200, 12)
ACCURACY_COLUMNS = tuple(f"{d}_{e}ep" for e in EPOCHS for d in DATASETS)
_NATS_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}
N_ARCHS = 15_625


class SearchSpace(Protocol):
    """What the proxy harness needs from a search space."""

    name: str

    def ids(self) -> list[int]:
        """Returns every architecture id."""

    def arch(self, arch_id: int) -> str:
        """Returns the architecture's description (for NAS-Bench-201, its cell string)."""

    def build(self, arch_id: int, seed: int, num_classes: int = 10) -> nn.Module:
        """Returns the network at initialisation from `seed`."""

    def accuracy(self) -> pd.DataFrame:
        """Returns the accuracy table: index arch id, columns ACCURACY_COLUMNS (NaN where unknown)."""


@functools.lru_cache(maxsize=1)
def _package_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = resources.files("rankstudy.proxies") / "data"
    with resources.as_file(folder / "archs.csv") as p:
        archs = pd.read_csv(p)
    with resources.as_file(folder / "accuracy.csv") as p:
        acc = pd.read_csv(p)
    acc = acc.set_index("index")
    table = pd.DataFrame({f"{d}_{e}ep": acc[f"{d}_test_{e}ep"] for e in EPOCHS for d in DATASETS})
    return archs.set_index("index")["arch"], table


def _read_bench(path: str) -> tuple[pd.Series, pd.DataFrame]:
    if not Path(path).exists():
        raise StudyError(
            f"--bench {path}: no such file or folder; give the NATS-Bench/NAS-Bench-201 file "
            "(e.g. NATS-tss-v1_0-3ffb9-simple) or leave --bench out to use the shipped table"
        )
    try:
        from nats_bench import create  # noqa: PLC0415 - optional dependency, only for --bench
    except ImportError:
        raise StudyError(
            "--bench needs the nats_bench package (pip install nats_bench); leave --bench out to use "
            "the shipped accuracy table"
        ) from None
    try:
        api = create(str(path), "tss", fast_mode=True, verbose=False)
        n = len(api)
    except Exception as e:  # noqa: BLE001 - the loader raises anything (pickle, KeyError, AssertionError, ...)
        raise StudyError(
            f"--bench {path} is not a NATS-Bench topology (NAS-Bench-201) benchmark file ({e.__class__.__name__})"
        ) from None
    if n != N_ARCHS:
        raise StudyError(f"--bench {path} holds {n} architectures, NAS-Bench-201 has {N_ARCHS}")
    archs = pd.Series({i: api.arch(i) for i in range(n)}, name="arch")
    rows = {}
    for i in range(n):
        row = {}
        for d, nd in _NATS_DATASETS.items():
            for e in EPOCHS:
                info = api.get_more_info(i, nd, hp=str(e), is_random=False)
                row[f"{d}_{e}ep"] = float(info["test-accuracy"])
        rows[i] = row
    return archs, pd.DataFrame.from_dict(rows, orient="index")[list(ACCURACY_COLUMNS)]


class NB201Space:
    """NAS-Bench-201's 15,625 cells in its macro network (C = 16, N = 5): ids are the benchmark's indices."""

    name = "nasbench201"

    def __init__(self, bench: str | None = None):
        self.bench = str(bench) if bench is not None else None
        self._archs, self._accuracy = _read_bench(self.bench) if bench is not None else _package_tables()

    def ids(self) -> list[int]:
        return [int(i) for i in self._archs.index]

    def arch(self, arch_id: int) -> str:
        try:
            return str(self._archs.loc[int(arch_id)])
        except (KeyError, ValueError, TypeError):
            raise StudyError(
                f"unknown NAS-Bench-201 architecture id {arch_id!r}; ids are 0..{len(self._archs) - 1}"
            ) from None

    def build(self, arch_id: int, seed: int, num_classes: int = 10) -> nn.Module:
        return build_network(self.arch(arch_id), seed, num_classes)

    def accuracy(self) -> pd.DataFrame:
        return self._accuracy.reindex(self._archs.index).rename_axis("arch_id")

    def check_ids(self, ids) -> list[int]:
        """Returns `ids` as ints, or StudyError naming the first one the space does not have."""
        known = set(self._archs.index)
        out = []
        for i in ids:
            try:
                j = int(i)
            except (TypeError, ValueError):
                raise StudyError(f"architecture id {i!r} is not an integer index") from None
            if j not in known:
                raise StudyError(f"unknown NAS-Bench-201 architecture id {j}; ids are 0..{len(self._archs) - 1}")
            out.append(j)
        return out


SPACES = {"nasbench201": NB201Space}


def get_space(name: str = "nasbench201", bench: str | None = None) -> SearchSpace:
    """Returns the search space `name` (optionally read from an official benchmark file)."""
    if name not in SPACES:
        raise StudyError(f"unknown search space {name!r}; use one of {', '.join(SPACES)}")
    return SPACES[name](bench)


def check_arch(arch: str) -> str:
    """Returns `arch` if it is a NAS-Bench-201 cell string (StudyError otherwise)."""
    parse_cell(arch)
    return arch
