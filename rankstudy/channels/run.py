"""The channel-configuration study (paper §4, CVPR Table 3): which width schedule wins at a fixed budget.

The paper samples schedules c_i = a·f(i) + b over the block index i with f piecewise linear, trains each
(30 epochs on CIFAR) at fixed params/FLOPs and finds the linearly increasing ones in its top 10%. Here a schedule is a
*profile* g_0 ≤ … ≤ g_{d-1} (mean 1) of one of three families, and its widths are c_i = round(s·g_i), with the
scale s chosen by `rexnet.variants.match_macs` so every network costs the budget within 2%:

- `linear`: g_i ∝ 1 + (G − 1)·i/(d − 1), one piece (the paper's ReXNet rule);
- `piecewise`: 2–3 linear pieces with random knots and random non-negative slopes (the paper's f);
- `stagewise`: 2–5 stages of equal width with random boundaries and steps (MobileNetV2's kind of schedule).

G = c_last/c_first is drawn log-uniform in [1, max_growth] for every family, so the families differ in shape,
not in how much they grow. Everything else is fixed (`schedule_arch`): a 16-channel stride-2 stem, inverted
bottlenecks with expansion 6 (the paper fixes it), SiLU after the expansion and ReLU6 after the depthwise conv
(ReXNet's block, no SE), stride 2 at blocks ⌊d/4⌋, ⌊d/2⌋, ⌊3d/4⌋ and a 320-channel penultimate conv.

Each (config, seed) trains with the project's trainer (`rexnet.train.train`) on a fixed subset of the training
set and is evaluated on the full test set. Before any training the same network, initialised from the run's
seed, sees a fixed batch of real test images (no labels) in training mode (batch-statistics BN, the forward
pass its first step computes): each block output becomes a C × (N·H·W) matrix whose normalised rank at rtol
1e-2 and normalised effective rank (`rankstudy.rank`) are averaged over blocks, a zero-training proxy.

Resume and parallelism: finished runs are stored one file each (`rows/`, written atomically by this process),
so a rerun skips them and kill -9 loses only the runs in flight; runs go through `rankstudy.parallel`
(loky here, or a dask.distributed cluster with `scheduler`), one thread per run, so a run's numbers do not
depend on where it ran.
"""
from __future__ import annotations

import contextlib
import io
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import delayed
from tqdm.auto import tqdm

from .. import store
from ..errors import StudyError
from ..parallel import run_tasks
from ..rank import rank_metrics

FAMILIES = ("linear", "piecewise", "stagewise")
STEM_CHANNELS = 16
PENULTIMATE_CHANNELS = 320
EXPANSION = 6
MIN_WIDTH = 8
MAX_DRAWS = 20
PROXY_RTOL = 1e-2
SCHEMA = "rankstudy.channels/1"
SCHEDULES, ROWS = "schedules.parquet", "rows"
SCHEDULE_COLUMNS = ("config_id", "family", "pieces", "draws", "widths", "scale", "params", "macs", "slope", "growth",
                    "linearity_r2")
RESULT_COLUMNS = ("seed", "top1", "top5", "test_loss", "train_loss", "train_top1", "proxy_rank_rtol_1e-2",
                  "proxy_effective_rank", "proxy_s", "train_s")
TIMING_COLUMNS = ("proxy_s", "train_s")  # the only columns that differ between identical runs


@dataclass(frozen=True)
class ChannelStudyConfig:
    """What defines a channel study (saved in its manifest; a rerun must match it to resume)."""

    n: int = 120  # sampled schedules, assigned to FAMILIES in turn
    macs: int = 10_000_000  # budget per network (multiply-accumulates of one image)
    blocks: int = 9
    data: str = "fashion-mnist"
    img_size: int = 32
    epochs: int = 1
    train_limit: int | None = 10_000  # fixed random subset of the training set; the test set is always full
    seeds: int = 1  # training seeds 0..seeds-1 for every config
    noise_configs: int = 6  # the first this many configs also run with seeds 0..noise_seeds-1
    noise_seeds: int = 3
    max_growth: float = 8.0  # largest c_last / c_first drawn
    batch_size: int = 64
    lr: float = 0.1
    probe_images: int = 128
    seed: int = 0  # schedule sampling seed

    def validate(self) -> None:
        """Raises StudyError naming the first bad setting and its fix."""
        def need(cond: bool, problem: str) -> None:
            if not cond:
                raise StudyError(problem)
        need(self.n >= 1, f"--n must be >= 1, got {self.n}")
        need(self.macs > 0, f"--macs must be positive, got {self.macs}")
        need(self.blocks >= 4, f"--blocks must be >= 4 (three stride-2 blocks and one more), got {self.blocks}")
        need(self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}")
        need(self.train_limit is None or self.train_limit >= self.batch_size,
             f"--train-limit {self.train_limit} is below one batch ({self.batch_size}); raise it")
        need(self.seeds >= 1 and self.noise_seeds >= 1, "--seeds and --noise-seeds must be >= 1")
        need(0 <= self.noise_configs <= self.n, f"--noise-configs must be in 0..n ({self.n}), got {self.noise_configs}")
        need(self.max_growth >= 1, f"--max-growth must be >= 1, got {self.max_growth}")
        need(self.img_size >= 16, f"--img-size must be >= 16 (four downsamplings), got {self.img_size}")
        need(self.batch_size >= 1 and self.lr > 0 and self.probe_images >= 1,
             "--batch-size, --lr and --probe-images must be positive")

    def to_dict(self) -> dict:
        """Returns the settings as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ChannelStudyConfig:
        """Returns the config a manifest holds (unknown keys rejected)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StudyError(f"channel-study manifest has unknown settings {unknown}; it was written by another "
                             "version: choose another --out")
        return cls(**data)

    def seeds_of(self, config_id: int) -> range:
        """Returns the training seeds of one config (more for the seed-noise configs)."""
        return range(max(self.seeds, self.noise_seeds) if config_id < self.noise_configs else self.seeds)


# --- schedules ---------------------------------------------------------------------------------------------


def sample_profile(family: str, blocks: int, rng: np.random.Generator, max_growth: float) -> tuple[int, np.ndarray]:
    """Returns (pieces or stages, profile): a non-decreasing profile of `blocks` values with mean 1."""
    growth = math.exp(rng.uniform(0.0, math.log(max_growth)))
    i = np.arange(blocks, dtype=float)
    if family == "linear":
        pieces, g = 1, 1.0 + (growth - 1.0) * i / (blocks - 1)
    elif family == "piecewise":
        pieces = int(rng.integers(2, 4))
        knots = np.concatenate([[0], np.sort(rng.choice(np.arange(1, blocks - 1), pieces - 1, replace=False)),
                                [blocks - 1]])
        values = 1.0 + np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.ones(pieces)))]) * (growth - 1.0)
        g = np.interp(i, knots, values)
    elif family == "stagewise":
        pieces = int(rng.integers(2, min(5, blocks) + 1))
        starts = np.sort(rng.choice(np.arange(1, blocks), pieces - 1, replace=False))
        levels = 1.0 + np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.ones(pieces - 1)))]) * (growth - 1.0)
        g = levels[np.searchsorted(starts, i, side="right")]
    else:
        raise StudyError(f"unknown schedule family {family!r}; use one of {', '.join(FAMILIES)}")
    return pieces, g / g.mean()


def strides(blocks: int) -> list[int]:
    """Returns each block's stride: 2 at blocks ⌊d/4⌋, ⌊d/2⌋, ⌊3d/4⌋ (with the stem, total stride 16)."""
    down = {blocks * k // 4 for k in (1, 2, 3)}
    return [2 if i in down else 1 for i in range(blocks)]


def schedule_widths(profile, scale: float) -> list[int]:
    """Returns the block widths round(scale·g_i), at least MIN_WIDTH (rounding keeps them non-decreasing)."""
    return [max(MIN_WIDTH, int(round(scale * g))) for g in profile]


def schedule_arch(widths: list[int], name: str = "channels"):
    """Returns the ArchSpec of a width schedule: fixed stem, strides, expansion 6 blocks and head (module doc)."""
    from rexnet.arch import ArchSpec, BlockSpec

    ins = [STEM_CHANNELS, *widths[:-1]]
    blocks = tuple(BlockSpec(i, o, EXPANSION, s, False, act="silu", dw_act="relu6")
                   for i, o, s in zip(ins, widths, strides(len(widths))))
    return ArchSpec(name=name, stem_channels=STEM_CHANNELS, blocks=blocks, penultimate_channels=PENULTIMATE_CHANNELS,
                    stem_act="silu", penultimate_act="silu")


def _shape_stats(widths: list[int]) -> tuple[float, float, float]:
    """Returns (slope in channels per block, c_last/c_first, R² of a straight line through the widths)."""
    i = np.arange(len(widths), dtype=float)
    w = np.asarray(widths, dtype=float)
    slope, intercept = np.polyfit(i, w, 1)
    total = float(((w - w.mean()) ** 2).sum())
    r2 = 1.0 if total == 0 else 1.0 - float(((w - (slope * i + intercept)) ** 2).sum()) / total
    return float(slope), float(w[-1] / w[0]), r2


def schedule_row(cfg: dict, config_id: int, in_chans: int, num_classes: int) -> dict:
    """Returns one config's schedule row (SCHEDULE_COLUMNS): its family, widths scaled to the MACs budget, costs.

    Config i draws from its own generator (seed, i), so a study of n configs is the first n of a larger one.
    """
    from rexnet.summary import model_costs
    from rexnet.errors import BudgetUnreachable, RexnetError
    from rexnet.variants import match_macs

    study = ChannelStudyConfig.from_dict(cfg)
    family = FAMILIES[config_id % len(FAMILIES)]
    rng = np.random.default_rng((study.seed, config_id))
    name = f"ch{config_id:04d}"
    # A step schedule moves whole stages by a channel at once, so at small budgets its MACs can jump over the
    # ±2% window; such a draw is replaced by the next one from the config's own generator (`draws` counts them).
    for draws in range(1, MAX_DRAWS + 1):
        pieces, profile = sample_profile(family, study.blocks, rng, study.max_growth)
        try:
            scale, arch, macs = match_macs(lambda s: schedule_arch(schedule_widths(profile, s), name), study.macs,
                                           img_size=study.img_size, num_classes=num_classes, in_chans=in_chans,
                                           lo=1.0, hi=4096.0)
            break
        except BudgetUnreachable as exc:
            if draws == MAX_DRAWS:
                raise StudyError(f"config {config_id}: {exc}") from None
        except RexnetError as exc:
            raise StudyError(f"config {config_id}: {exc}") from None
    widths = [b.out_channels for b in arch.blocks]
    params, _ = model_costs(arch, study.img_size, num_classes=num_classes, in_chans=in_chans)
    slope, growth, r2 = _shape_stats(widths)
    return {"config_id": config_id, "family": family, "pieces": pieces, "draws": draws,
            "widths": "-".join(map(str, widths)),
            "scale": scale, "params": params, "macs": macs, "slope": slope, "growth": growth, "linearity_r2": r2}


def sample_schedules(cfg: ChannelStudyConfig, *, in_chans: int, num_classes: int, workers: int = 1,
                     scheduler: str | None = None, progress: bool = False) -> pd.DataFrame:
    """Returns one row per config (SCHEDULE_COLUMNS), by config id; the MACs matching runs as parallel tasks
    (`rankstudy.parallel`), as it counts each candidate's MACs with torch.utils.flop_counter (~0.15 s each)."""
    jobs = (delayed(schedule_row)(cfg.to_dict(), cid, in_chans, num_classes) for cid in range(cfg.n))
    rows = list(tqdm(run_tasks(jobs, workers, scheduler), total=cfg.n, desc="schedules", disable=not progress,
                     dynamic_ncols=True))
    return pd.DataFrame(rows, columns=list(SCHEDULE_COLUMNS)).sort_values("config_id").reset_index(drop=True)


def parse_widths(widths: str) -> list[int]:
    """Returns the widths of a schedule written as '24-33-42'."""
    return [int(w) for w in widths.split("-")]


# --- one run -------------------------------------------------------------------------------------------------


@torch.no_grad()
def proxy_ranks(model: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Returns the mean over blocks of the normalised rank (rtol 1e-2) and normalised effective rank of each
    block's output on `images`, as a C × (N·H·W) matrix, with the model in training mode (batch-statistics BN)."""
    from rexnet.blocks import LinearBottleneck

    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
             for m in model.modules() if isinstance(m, LinearBottleneck)]
    try:
        model.train()
        model(images)
    finally:
        for h in hooks:
            h.remove()
    ranks, effective = [], []
    for out in outputs:
        features = out.transpose(0, 1).reshape(out.shape[1], -1)
        metrics = rank_metrics(features, rtols=(PROXY_RTOL,))
        ranks.append(float(metrics["normalized_rank_rtol_1e-2"][0]))
        effective.append(float(metrics["normalized_effective_rank"][0]))
    return {"proxy_rank_rtol_1e-2": float(np.mean(ranks)), "proxy_effective_rank": float(np.mean(effective))}


def run_config(schedule: dict, seed: int, cfg: dict, data_root: str, threads: int = 1) -> dict:
    """Returns the result row of one (config, seed): the proxy ranks at init, then brief training and test accuracy.

    Runs anywhere (a loky process or a dask worker): it needs the data under `data_root`, writes only into a
    private temporary folder and returns the row; `threads` torch threads (1 keeps the numbers independent of
    the machine's core count).
    """
    from rexnet.arch import save_arch
    from rexnet.model import ReXNet
    from rexnet.training.data import load_data
    from rexnet.training.train import TrainConfig, train

    study = ChannelStudyConfig.from_dict(cfg)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = load_data(study.data, data_root, img_size=study.img_size, train_limit=study.train_limit)
        arch = schedule_arch(parse_widths(schedule["widths"]), f"ch{schedule['config_id']:04d}")
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = ReXNet(arch, num_classes=len(data.classes), in_chans=data.in_chans)
        count = min(study.probe_images, len(data.test))
        images = torch.stack([data.test[i][0] for i in range(count)])
        proxy = proxy_ranks(model, images)
        proxy_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="rankstudy-channels-") as tmp:
            arch_path = save_arch(arch, Path(tmp) / "arch.json")
            train_cfg = TrainConfig(model=str(arch_path), data=study.data, out=str(Path(tmp) / "run"),
                                    data_root=data_root, epochs=study.epochs, batch_size=study.batch_size,
                                    lr=study.lr, warmup_epochs=study.epochs / 10, img_size=study.img_size,
                                    train_limit=study.train_limit, seed=seed, device="cpu", progress=False)
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # the trainer prints one line per epoch
                last = train(train_cfg, data=data)
            train_s = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    return {**schedule, "seed": seed, "top1": last["test_top1"], "top5": last["test_top5"],
            "test_loss": last["test_loss"], "train_loss": last["train_loss"], "train_top1": last["train_top1"],
            **proxy, "proxy_s": proxy_s, "train_s": train_s}


# --- the study -------------------------------------------------------------------------------------------------


def row_path(out: Path, config_id: int, seed: int) -> Path:
    """Returns where the finished row of (config, seed) is stored."""
    return out / ROWS / f"cfg-{config_id:05d}-s{seed}.json"


def _prepare(out: Path, cfg: ChannelStudyConfig, in_chans: int, num_classes: int, progress: bool,
             workers: int, scheduler: str | None) -> pd.DataFrame:
    """Returns the schedules of the study in `out`: sampled and stored on the first run, read back on a resume."""
    store.prepare_out_dir(out, ROWS)
    manifest = {"schema": SCHEMA, "config": cfg.to_dict()}
    path = out / store.MANIFEST
    if path.exists():
        old = store.read_json(path, f"delete {out} or choose another --out")
        if old != manifest:
            theirs = old.get("config") if isinstance(old.get("config"), dict) else {}
            differ = sorted(k for k in manifest["config"] if theirs.get(k) != manifest["config"][k])
            raise StudyError(f"--out {out} holds another channel study (differs in: {', '.join(differ) or 'schema'}); "
                             "rerun with its settings (see manifest.json) or choose another --out")
        if (out / SCHEDULES).exists():
            table = store.read_chunk(out / SCHEDULES, range(cfg.n)).rename(columns={"id": "config_id"})
            return table.sort_values("config_id").reset_index(drop=True)
    elif any((out / ROWS).iterdir()):
        raise StudyError(f"--out {out} holds results without a manifest; use an empty directory")
    schedules = sample_schedules(cfg, in_chans=in_chans, num_classes=num_classes, workers=workers,
                                 scheduler=scheduler, progress=progress)
    # The manifest last: a study whose sampling failed (e.g. an impossible budget) leaves no claim on `out`.
    store.write_table(out / SCHEDULES, schedules.rename(columns={"config_id": "id"}))
    store.write_json(path, manifest)
    return schedules


def _read_row(path: Path) -> dict:
    row = store.read_json(path, "delete it and rerun to recompute that run")
    missing = [c for c in (*SCHEDULE_COLUMNS, *RESULT_COLUMNS) if c not in row]
    if missing:
        raise StudyError(f"{path} lacks {missing[:3]}; delete it and rerun to recompute that run")
    return row


def run_channel_study(cfg: ChannelStudyConfig, out: str | Path, *, data_root: str = "data", workers: int = 1,
                      scheduler: str | None = None, threads: int = 1, progress: bool = True,
                      command: str | None = None) -> pd.DataFrame:
    """Returns the study's table (one row per (config, seed), by config then seed) once every run is done.

    Runs still missing in `out` are trained (`workers` local processes, or on the dask cluster at `scheduler`),
    each finished one stored at once; when all exist, results.parquet, results.csv and metadata.json are written.
    """
    from rexnet.training.data import load_data
    from rexnet.errors import RexnetError

    start = time.perf_counter()
    cfg.validate()
    if workers < 1 or threads < 1:
        raise StudyError(f"--workers and --threads must be >= 1, got {workers} and {threads}")
    try:
        data = load_data(cfg.data, data_root, img_size=cfg.img_size, train_limit=cfg.train_limit)
    except RexnetError as exc:
        raise StudyError(str(exc)) from None
    out = Path(out)
    schedules = _prepare(out, cfg, data.in_chans, len(data.classes), progress, workers, scheduler)
    for stale in (out / ROWS).glob(".*.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    plan = [(cid, seed) for cid in range(cfg.n) for seed in cfg.seeds_of(cid)]
    todo = [(cid, seed) for cid, seed in plan if not row_path(out, cid, seed).exists()]
    records = schedules.to_dict("records")
    jobs = (delayed(run_config)(records[cid], seed, cfg.to_dict(), str(data_root), threads) for cid, seed in todo)
    with tqdm(total=len(plan), initial=len(plan) - len(todo), unit="run", desc="channel study",
              disable=not progress, dynamic_ncols=True) as bar:
        for row in run_tasks(jobs, workers, scheduler):
            store.write_json(row_path(out, row["config_id"], row["seed"]), row)
            bar.update(1)
    table = pd.DataFrame([_read_row(row_path(out, cid, seed)) for cid, seed in plan])
    table = table[list(SCHEDULE_COLUMNS) + list(RESULT_COLUMNS)]
    from rexnet.io import versions

    metadata = {"schema": SCHEMA, "config": cfg.to_dict(), "n_runs": len(plan), "resumed_runs": len(plan) - len(todo),
                "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
                "workers": workers, "scheduler": scheduler, "threads_per_run": threads,
                "wall_time_s": round(time.perf_counter() - start, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "architecture": {"stem": STEM_CHANNELS, "expansion": EXPANSION, "penultimate": PENULTIMATE_CHANNELS,
                                 "strides": strides(cfg.blocks), "min_width": MIN_WIDTH, "block": "silu/relu6, no SE"},
                "versions": versions()}
    store.write_table(out / store.TABLE, table)
    store.write_csv(out / store.CSV, table)
    store.write_json(out / store.METADATA, metadata)
    return table


def load_channel_results(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a finished channel study directory."""
    path = Path(path)
    if not (path / store.TABLE).exists():
        raise StudyError(f"no channel-study table at {path / store.TABLE}; run `rankstudy channels --out {path}` first")
    meta = store.read_json(path / store.METADATA, "it should sit beside results.parquet; rerun `rankstudy channels`")
    if meta.get("schema") != SCHEMA:
        raise StudyError(f"{path} is not a channel study (schema {meta.get('schema')!r}); "
                         "pass the --out of `rankstudy channels`")
    import pyarrow.parquet as pq

    return pq.read_table(path / store.TABLE).to_pandas(), meta
