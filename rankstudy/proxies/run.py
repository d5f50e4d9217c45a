"""`rankstudy proxies`: score architectures of a search space with every registered proxy, resumably.

One unit of work is one architecture: its network is built at initialisation from the study seed (the same seed
for every architecture), sees the study's one seeded batch (`inputs.make_batch`), and every proxy is computed by
`scores.score_network` in one harness. The output folder is a `rankstudy.store.RunFolder` whose units are
`scores/arch-00123.json` (one per finished architecture, written atomically by this process), so a rerun
computes only the missing ones and kill -9 loses only those in flight. Units run through `rankstudy.parallel`
(loky workers here, or a dask cluster with `scheduler`) with one thread each, so a score does not depend on
the worker count. Workers get the cell string, not the benchmark: `--bench` is read once, here.

When a sitting ends (all done, or `max_units` scored) results.parquet/.csv and metadata.json hold every finished
architecture with its accuracies (NaN where the table has none); metadata `partial` says whether some are still
missing. The architectures are a seeded random sample of `n` ids (all with n = 0), or the given `ids`.
"""

import functools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import delayed
from tqdm.auto import tqdm

from .. import store
from ..errors import StudyError
from ..parallel import run_tasks
from .inputs import DEFAULT_BATCH, DEFAULT_INPUTS, INPUTS, make_batch
from .scores import get_proxy, resolve_proxies, score_network
from .spaces import ACCURACY_COLUMNS, DATASETS, get_space

SCHEMA = "rankstudy.proxies/1"
UNITS = "scores"


@dataclass(frozen=True)
class ProxyStudyConfig:
    """What a proxy study computes; every field is in the manifest (a resume must match it)."""

    n: int = 3000
    seed: int = 0
    ids: tuple[int, ...] | None = None
    proxies: tuple[str, ...] | None = None
    inputs: str = DEFAULT_INPUTS
    batch: int = DEFAULT_BATCH
    num_classes: int = 10
    space: str = "nasbench201"
    bench: str | None = None
    data_root: str = field(default="data", compare=False)

    def validate(self) -> None:
        if self.inputs not in INPUTS:
            raise StudyError(f"unknown inputs {self.inputs!r}; use one of {', '.join(INPUTS)}")
        if self.n < 0:
            raise StudyError(f"--n must be >= 0 (0 = every architecture), got {self.n}")
        if self.batch < 4:
            raise StudyError(f"--batch must be >= 4 (two halves of >= 2 images), got {self.batch}")
        if self.num_classes < 2:
            raise StudyError(f"--num-classes must be >= 2, got {self.num_classes}")
        resolve_proxies(self.proxies)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("data_root")
        d["ids"] = list(self.ids) if self.ids is not None else None
        d["proxies"] = list(self.proxies) if self.proxies is not None else None
        return d


def unit_name(arch_id: int) -> str:
    return f"arch-{int(arch_id):05d}.json"


def sample_ids(all_ids: list[int], n: int, seed: int) -> list[int]:
    """Returns a seeded random sample of `n` ids (all of them for n = 0 or n ≥ len), sorted."""
    if n == 0 or n >= len(all_ids):
        return sorted(all_ids)
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(np.asarray(all_ids), size=n, replace=False))


@functools.lru_cache(maxsize=4)
def _batch(inputs: str, n: int, seed: int, num_classes: int, data_root: str, device: str):
    b = make_batch(inputs, n, seed, num_classes, data_root)
    return b.images.to(device), b.labels.to(device)


@functools.lru_cache(maxsize=1)
def _warm_up() -> None:
    """Runs the FLOP counter once: its first use in a process costs seconds that no architecture should be
    charged with."""
    import torch  # noqa: PLC0415 - torch is loaded already; kept local to this one-off helper
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415 - heavy first import, once per worker

    with torch.no_grad(), FlopCounterMode(display=False):
        torch.nn.Conv2d(3, 2, 3)(torch.ones(1, 3, 4, 4))


def score_unit(arch_id: int, arch: str, cfg: dict, data_root: str, device: str) -> dict:
    """Returns one architecture's row: arch_id, arch, every proxy's score and `seconds.<proxy>` (a worker task)."""
    from .nb201 import build_network  # noqa: PLC0415 - keeps this task's pickle small (the module is loaded anyway)

    if "flops" in cfg["proxies"]:
        _warm_up()
    images, labels = _batch(cfg["inputs"], cfg["batch"], cfg["seed"], cfg["num_classes"], data_root, device)
    start = time.perf_counter()
    net = build_network(arch, cfg["seed"], cfg["num_classes"]).to(device)
    build = time.perf_counter() - start
    scores, seconds = score_network(net, images, labels, cfg["proxies"])
    # JSON has no ±inf (a singular NASWOT kernel is −inf): those are stored by name as text, and read back
    row = {
        "arch_id": int(arch_id),
        "arch": arch,
        **scores,
        "nonfinite": {k: str(v) for k, v in scores.items() if not math.isfinite(v)},
    }
    row.update({f"seconds.{k}": v for k, v in seconds.items()})
    row["seconds.build"] = build
    return row


def _resolve_device(device: str) -> str:
    from rexnet.device import resolve_device  # noqa: PLC0415 - rexnet's device helper; only when a run starts
    from rexnet.errors import RexnetError  # noqa: PLC0415 - as above

    try:
        return str(resolve_device(device))
    except RexnetError as e:
        raise StudyError(str(e)) from None


def plan_ids(cfg: ProxyStudyConfig, space) -> list[int]:
    """Returns the architecture ids the study scores (checked against the space)."""
    if cfg.ids is not None:
        checker = getattr(space, "check_ids", None)
        ids = checker(cfg.ids) if checker else [int(i) for i in cfg.ids]
        return sorted(dict.fromkeys(ids))
    return sample_ids(space.ids(), cfg.n, cfg.seed)


def run_proxies(
    cfg: ProxyStudyConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    workers: int = 1,
    scheduler: str | None = None,
    max_units: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> pd.DataFrame:
    """Returns the table of every scored architecture in `out` after scoring the missing ones (at most
    `max_units` in this sitting), and writes results.parquet, results.csv and metadata.json."""
    start = time.perf_counter()
    cfg.validate()
    if workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    dev = _resolve_device(device)
    space = get_space(cfg.space, cfg.bench)
    ids = plan_ids(cfg, space)
    proxies = resolve_proxies(cfg.proxies)
    make_batch(cfg.inputs, cfg.batch, cfg.seed, cfg.num_classes, cfg.data_root)  # bad inputs fail here, once
    folder = store.RunFolder(out, UNITS).prepare()
    manifest = {"schema": SCHEMA, "config": cfg.to_dict(), "arch_ids": ids, "proxies": proxies}
    folder.claim(manifest, hints={"proxies": "rerun with --proxies as before, or choose another --out"})
    folder.remove_stale()
    todo = [i for i in ids if not folder.has_unit(unit_name(i))]
    if max_units is not None:
        todo = todo[: max(0, max_units)]
    task_cfg = {**cfg.to_dict(), "proxies": proxies}
    jobs = (delayed(score_unit)(i, space.arch(i), task_cfg, cfg.data_root, dev) for i in todo)
    with tqdm(
        total=len(ids),
        initial=len(ids) - len([i for i in ids if not folder.has_unit(unit_name(i))]),
        unit="arch",
        desc="proxies",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for row in run_tasks(jobs, workers, scheduler):
            folder.write_unit(unit_name(row["arch_id"]), row)
            bar.update(1)
    table = _collect(folder, ids, proxies, space)
    meta = {
        **store.run_metadata(seed=cfg.seed, device=dev, start=start, command=command),
        "schema": SCHEMA,
        "config": cfg.to_dict(),
        "proxies": proxies,
        "bn_modes": {p: get_proxy(p).bn_mode for p in proxies},
        "inputs": {"name": cfg.inputs, "batch": cfg.batch, "seed": cfg.seed, "labels": "uniform random"},
        "space": cfg.space,
        "bench": cfg.bench or "package data (rankstudy/proxies/data)",
        "n_planned": len(ids),
        "n_scored": len(table),
        "partial": len(table) < len(ids),
        "workers": workers,
        "scheduler": scheduler,
        "accuracy_columns": list(ACCURACY_COLUMNS),
    }
    folder.finish(table, meta)
    return table


def _collect(folder: store.RunFolder, ids: list[int], proxies: list[str], space) -> pd.DataFrame:
    keys = ["arch_id", "arch", *proxies]
    rows = []
    for i in ids:
        name = unit_name(i)
        if not folder.has_unit(name):
            continue
        row = folder.read_unit_row(name, keys)
        if row["arch_id"] != i or row["arch"] != space.arch(i):
            raise StudyError(
                f"{folder.unit_path(name)} holds architecture {row['arch_id']} ({row['arch']}), not "
                f"{i}; delete it and rerun"
            )
        for k, v in (row.pop("nonfinite", None) or {}).items():
            row[k] = float(v)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=keys)
    for p in proxies:  # JSON stores ±inf / NaN as null
        table[p] = pd.to_numeric(table[p], errors="coerce").astype(float)
    acc = space.accuracy()
    for col in ACCURACY_COLUMNS:
        table[col] = table["arch_id"].map(acc[col]).astype(float) if len(table) else pd.Series(dtype=float)
    return table.reset_index(drop=True)


def load_proxy_results(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a proxy study folder (written by `run_proxies`)."""
    table, meta = store.read_results(path, schema=("schema", SCHEMA), command="rankstudy proxies")
    missing = [c for c in ["arch_id", *meta.get("proxies", []), *ACCURACY_COLUMNS] if c not in table]
    if missing:
        raise StudyError(f"{path} lacks columns {missing[:3]}; rerun `rankstudy proxies` on its folder")
    return table, meta


__all__ = ["DATASETS", "ProxyStudyConfig", "load_proxy_results", "run_proxies", "sample_ids", "score_unit"]
