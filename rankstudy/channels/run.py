"""Runs the channel-configuration study (paper §4, CVPR Table 3): which width schedule wins at a fixed budget.

The paper trains each sampled schedule (30 epochs on CIFAR) at fixed params/FLOPs and finds the linearly increasing
ones in its top 10%. Here the schedules come from `rankstudy.channels.schedules` (three families at one MACs
budget) and each (config, seed) trains with the project's trainer (`rexnet.training.train.train`) on a fixed subset
of the training set and is evaluated on the full test set. Before any training the same network, initialised from
the run's seed, sees a fixed batch of real test images (no labels) in training mode (batch-statistics BN, the
forward pass its first step computes): each block output becomes a C × (N·H·W) matrix whose normalised rank at
rtol 1e-2 and normalised effective rank (`rankstudy.rank`) are averaged over blocks, a zero-training proxy.

Resume and parallelism: the output folder is a `rankstudy.store.RunFolder` whose units are the finished runs, one
JSON row each (`rows/`, written atomically by this process), so a rerun skips them and kill -9 loses only the
runs in flight; runs go through `rankstudy.parallel` (loky here, or a dask.distributed cluster with `scheduler`),
one thread per run, so a run's numbers do not depend on where it ran.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import delayed
from tqdm.auto import tqdm

from rexnet.arch import save_arch
from rexnet.errors import RexnetError
from rexnet.training.data import load_data

from .. import store
from ..errors import StudyError
from ..parallel import check_scheduler, run_tasks
from ..rank import rank_metrics
from .config import (
    PROXY_RTOL,
    RESULT_COLUMNS,
    ROWS,
    SCHEDULE_COLUMNS,
    SCHEDULES,
    SCHEMA,
    ChannelStudyConfig,
    parse_widths,
)
from .schedules import architecture, sample_schedules, schedule_arch

# --- one run -------------------------------------------------------------------------------------------------


@torch.no_grad()
def proxy_ranks(model: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Returns the mean over blocks of the normalised rank (rtol 1e-2) and normalised effective rank of each
    block's output on `images`, as a C × (N·H·W) matrix, with the model in training mode (batch-statistics BN)."""
    from rexnet.blocks import LinearBottleneck  # noqa: PLC0415 - loads torchvision (~4 s); the report side must not

    outputs: list[torch.Tensor] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
        for m in model.modules()
        if isinstance(m, LinearBottleneck)
    ]
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
    from rexnet.model import ReXNet  # noqa: PLC0415 - loads torchvision (~4 s); the report side must not
    from rexnet.training.train import TrainConfig, train  # noqa: PLC0415 - loads torchvision (~3 s); as above

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
            train_cfg = TrainConfig(
                model=str(arch_path),
                data=study.data,
                out=str(Path(tmp) / "run"),
                data_root=data_root,
                epochs=study.epochs,
                batch_size=study.batch_size,
                lr=study.lr,
                warmup_epochs=study.epochs / 10,
                img_size=study.img_size,
                train_limit=study.train_limit,
                seed=seed,
                device="cpu",
                progress=False,
            )
            started = time.perf_counter()
            last = train(train_cfg, data=data)  # reports through logging ("rexnet.training"), silent by default
            train_s = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous)
    return {
        **schedule,
        "seed": seed,
        "top1": last["test_top1"],
        "top5": last["test_top5"],
        "test_loss": last["test_loss"],
        "train_loss": last["train_loss"],
        "train_top1": last["train_top1"],
        **proxy,
        "proxy_s": proxy_s,
        "train_s": train_s,
    }


# --- the study -------------------------------------------------------------------------------------------------


def row_name(config_id: int, seed: int) -> str:
    """Returns the file name the finished row of (config, seed) is stored under in the study folder's rows/."""
    return f"cfg-{config_id:05d}-s{seed}.json"


def _schedules(
    folder: store.RunFolder,
    cfg: ChannelStudyConfig,
    in_chans: int,
    num_classes: int,
    progress: bool,
    workers: int,
    scheduler: str | None,
) -> pd.DataFrame:
    """Returns the schedules of the study in `folder`: sampled and stored on the first run, read back on a resume."""
    manifest = {"schema": SCHEMA, "config": cfg.to_dict()}
    if folder.check_manifest(manifest) and (folder.root / SCHEDULES).exists():
        table = store.read_table(folder.root / SCHEDULES, range(cfg.n)).rename(columns={"id": "config_id"})
        return table.sort_values("config_id").reset_index(drop=True)
    schedules = sample_schedules(
        cfg, in_chans=in_chans, num_classes=num_classes, workers=workers, scheduler=scheduler, progress=progress
    )
    # The folder only now, the manifest last: a study whose sampling failed (e.g. an impossible budget) leaves
    # neither a folder nor a claim on `out`.
    folder.prepare()
    store.write_table(folder.root / SCHEDULES, schedules.rename(columns={"config_id": "id"}))
    folder.write_manifest(manifest)
    return schedules


def _metadata(
    cfg: ChannelStudyConfig,
    start: float,
    command: str | None,
    n_runs: int,
    resumed_runs: int,
    workers: int,
    scheduler: str | None,
    threads: int,
) -> dict:
    """Returns metadata.json: the store's header (command, seed, device, versions, wall time, created) and the
    channel study's own keys (its config, runs, parallelism and the fixed parts of every network)."""
    return {
        **store.run_metadata(seed=cfg.seed, device="cpu", start=start, command=command),
        "schema": SCHEMA,
        "config": cfg.to_dict(),
        "n_runs": n_runs,
        "resumed_runs": resumed_runs,
        "workers": workers,
        "scheduler": scheduler,
        "threads_per_run": threads,
        "architecture": architecture(cfg.blocks),
    }


def run_channel_study(
    cfg: ChannelStudyConfig,
    out: str | Path,
    *,
    data_root: str = "data",
    workers: int = 1,
    scheduler: str | None = None,
    threads: int = 1,
    progress: bool = True,
    command: str | None = None,
) -> pd.DataFrame:
    """Returns the study's table (one row per (config, seed), by config then seed) once every run is done.

    Runs still missing in `out` are trained (`workers` local processes, or on the dask cluster at `scheduler`),
    each finished one stored at once; when all exist, results.parquet, results.csv and metadata.json are written.
    """
    start = time.perf_counter()
    cfg.validate()
    if workers < 1 or threads < 1:
        raise StudyError(f"--workers and --threads must be >= 1, got {workers} and {threads}")
    try:
        data = load_data(cfg.data, data_root, img_size=cfg.img_size, train_limit=cfg.train_limit)
    except RexnetError as exc:
        raise StudyError(str(exc)) from None
    if scheduler is not None:
        check_scheduler(scheduler)
    folder = store.RunFolder(out, ROWS)
    schedules = _schedules(folder, cfg, data.in_chans, len(data.classes), progress, workers, scheduler)
    folder.remove_stale()  # left by a run killed while writing
    plan = [(cid, seed) for cid in range(cfg.n) for seed in cfg.seeds_of(cid)]
    todo = [(cid, seed) for cid, seed in plan if not folder.has_unit(row_name(cid, seed))]
    records = schedules.to_dict("records")
    jobs = (delayed(run_config)(records[cid], seed, cfg.to_dict(), str(data_root), threads) for cid, seed in todo)
    with tqdm(
        total=len(plan),
        initial=len(plan) - len(todo),
        unit="run",
        desc="channel study",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for row in run_tasks(jobs, workers, scheduler):
            folder.write_unit(row_name(row["config_id"], row["seed"]), row)
            bar.update(1)
    columns = [*SCHEDULE_COLUMNS, *RESULT_COLUMNS]
    table = pd.DataFrame([folder.read_unit_row(row_name(cid, seed), columns) for cid, seed in plan])[columns]
    folder.finish(table, _metadata(cfg, start, command, len(plan), len(plan) - len(todo), workers, scheduler, threads))
    return table


def load_channel_results(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a finished channel study directory."""
    return store.read_results(path, schema=("schema", SCHEMA), command="rankstudy channels")
