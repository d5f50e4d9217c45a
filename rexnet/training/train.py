"""Training a ReXNet (or any block table) on a dataset: one config dataclass, named steps, exact resume, DDP.

Recipe (the official release's ImageNet recipe, scaled down): SGD with (Nesterov) momentum, linear warm-up then
cosine decay per step, label smoothing, weight decay on conv/linear weights only (not on BN or biases), optional
EMA of the weights and stochastic depth, gradient clipping, mixed precision (float16/bfloat16 on CUDA, bfloat16 on CPUs
with native support), channels_last on CUDA. Launched by `torchrun` (WORLD_SIZE > 1) it runs
DistributedDataParallel with a DistributedSampler (gloo on CPU, nccl on CUDA); only rank 0 writes and reports.

Reporting: `train` prints nothing. After each epoch rank 0 logs one line (`format_epoch`) to the logger
"rexnet.training" at INFO and calls `on_epoch(row)` when given; `rexnet train` prints those lines. The progress
bar (`progress`, on stderr) is the only other output.

The loop, as `train` reads: `setup` (run folder, data, model, optimizer, EMA, resume) → per epoch
`train_one_epoch` → `sync_replicas` (BN statistics and the EMA's, averaged over processes) → `evaluate_loss_acc`
→ `save_epoch`. Metric sums stay on the training device and are read once per epoch (no per-step host sync).

Run folder: `config.json` (the settings), `checkpoint.pth` (written atomically after every epoch: weights,
optimizer, EMA, the metrics so far), `metrics.csv` (one row per epoch, rewritten atomically from the
checkpoint's history, so the two always agree) and, when finished, `model.pth` (the weights evaluated:
EMA when enabled). Exact resume: every epoch reseeds all randomness from (seed, epoch), so resuming after
epoch k replays epochs k+1… exactly as an uninterrupted run does (on CPU; CUDA kernels may not be deterministic).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import errno
import io
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from ..checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from ..device import resolve_device
from ..errors import RexnetError
from ..io import atomic_write_text
from ..model import ReXNet
from ..registry import model_arch
from ..small_input import small_input_variant
from .data import DataSpec, load_data

logger = logging.getLogger("rexnet.training")

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_top1",
    "test_loss",
    "test_top1",
    "test_top5",
    "lr",
    "img_per_s",
    "epoch_s",
)
TIMING_COLUMNS = ("img_per_s", "epoch_s")  # the only columns that differ between identical runs

# Settings that may change on --resume without changing the result.
_RUNTIME_FIELDS = {"out", "device", "workers", "data_root", "progress", "compile"}
_PROGRESS_EVERY = 50  # steps between progress-bar loss updates (each one reads the loss from the device)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run folder."""

    model: str = "rexnet_050"  # a model name (`rexnet models`; any width ×100) or a block-table .json
    data: str = "fashion-mnist"
    out: str = "runs/run"
    data_root: str = "data"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1  # for batch_size (the total batch under DDP)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    warmup_epochs: float | None = None  # None: `default_warmup_epochs(epochs)`, one epoch at most 10% of the run
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    dropout: float | None = None  # None: the table's own (0.2)
    drop_path: float = 0.0  # stochastic depth at the last block (ReXNet's rule: linear in the block index)
    ema_decay: float = 0.0  # 0 disables EMA; e.g. 0.999
    clip_grad: float | None = None  # max global gradient norm; None: no clipping
    randaugment: bool = False
    hflip: float = 0.5  # probability of a horizontal flip of a training image
    scale_min: float = 0.08  # ImageFolder training: area range of the random resized crop (timm's --scale)
    scale_max: float = 1.0
    random_erasing: float = 0.0
    # 28–32 px data: s16 = one fewer downsampling, s8 = also stem stride 1 (small_input.py); a table already in a
    # mode (a variant built with --small-input) keeps it: "off" or its own mode, another one is refused
    small_input: str = "off"
    img_size: int | None = None  # None: 32 for the small datasets, 224 for ImageFolder
    train_limit: int | None = None  # use a fixed random subset of the training set (smoke runs, tests)
    test_limit: int | None = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:i (rexnet.device.resolve_device; cuda:LOCAL_RANK under torchrun)
    amp: bool | None = None  # None: on for CUDA, off for CPU; True on CPU: bfloat16 autocast
    compile: bool = False  # torch.compile the training forward/backward
    workers: int = 0
    progress: bool = True

    def semantic(self) -> dict[str, Any]:
        """Returns the settings that determine the result (all but output path, device, workers, compile)."""
        return {k: v for k, v in asdict(self).items() if k not in _RUNTIME_FIELDS}


def cpu_has_bfloat16() -> bool:
    """Returns whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere it is emulated, slower."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(check is not None and check() for check in checks)


def amp_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Returns the autocast dtype for a device and the --amp setting, or None for full float32."""
    if amp is None:
        amp = device.type == "cuda"
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if not cpu_has_bfloat16():
        raise RexnetError(
            "--amp on this CPU: it has no native bfloat16 (AVX512-BF16 or AMX), so autocast would be "
            "slower than float32; drop --amp"
        )
    return torch.bfloat16


def default_warmup_epochs(epochs: int) -> float:
    """Returns the default warm-up: one epoch, but at most 10% of the run (a 1-epoch run is not all warm-up)."""
    return min(1.0, 0.1 * epochs)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float) -> float:
    """Returns the learning rate at a step: linear warm-up from 0 to base_lr, then cosine down to min_lr."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Returns optimizer groups: weight decay on conv/linear weights, none on BN parameters and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class WeightEMA:
    """An exponential moving average of a model's parameters and BN statistics, kept in `module` (a model copy).

    `update()` applies torch's EMA step (`torch.optim.swa_utils.get_ema_multi_avg_fn`: one foreach lerp by
    1 − decay) to every floating-point tensor and copies the integer ones (BN's batch counters). It does
    not go through `AveragedModel.update_parameters`, which tests a counter on the device with `bool()`
    twice per call: a host sync every step on a GPU. The tensor lists are built once: the optimizer and BN
    update the model's tensors in place.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        pairs = list(zip([*self.module.parameters(), *self.module.buffers()], [*model.parameters(), *model.buffers()]))
        self._floats = ([e for e, _ in pairs if e.is_floating_point()], [m for e, m in pairs if e.is_floating_point()])
        self._others = (
            [e for e, _ in pairs if not e.is_floating_point()],
            [m for e, m in pairs if not e.is_floating_point()],
        )
        self._lerp = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(self) -> None:
        """Moves the average one step toward the model's current weights."""
        self._lerp(*self._floats, None)
        if self._others[0]:
            torch._foreach_copy_(*self._others)


def make_ema(model: nn.Module, decay: float) -> WeightEMA:
    """Returns an EMA of `model` (parameters and BN statistics) that starts at its current weights."""
    return WeightEMA(model, decay)


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> torch.Tensor:
    """Returns how many targets are among the top-k logits, for each k (capped at the number of classes), on device."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    return torch.stack([hits[:, :k].any(dim=1).sum() for k in ks])


@torch.no_grad()
def evaluate_loss_acc(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    channels_last: bool = False,
    distributed: bool = False,
) -> dict[str, float]:
    """Returns test loss (plain cross-entropy), top-1 and top-5 accuracy in % over the loader (summed over ranks).

    The sums live on `device`: NCCL reduces CUDA tensors only, and reading them once avoids a sync per batch.
    """
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, top-1 hits, top-5 hits
    count = 0  # known on the host: no device read per batch
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images).float()
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        sums += torch.cat([loss[None], topk_correct(logits, target)]).double()
        count += len(target)
    sums = torch.cat([sums, sums.new_tensor([count])])
    if distributed:
        dist.all_reduce(sums)
    loss, top1, top5, n = sums.tolist()
    return {"test_loss": loss / n, "test_top1": 100 * top1 / n, "test_top5": 100 * top5 / n}


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds CUDA; Python's and NumPy's RNGs are not used in training


def _check_disk_error(exc: OSError, where: Path) -> RexnetError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RexnetError(
            f"out of disk space writing {where}; the run folder keeps the last complete epoch: "
            "free space, then rerun with --resume"
        )
    return RexnetError(f"cannot write {where} ({exc.strerror or exc}); check the folder's permissions and space")


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Writes the per-epoch metrics rows as CSV, atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def _load_resume(cfg: TrainConfig, out: Path) -> Checkpoint:
    """Returns the last checkpoint of a run to resume (read weights_only), after checking its settings match."""
    saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
    if saved is None or not (out / "checkpoint.pth").is_file():
        raise RexnetError(
            f"{out} holds no run to resume (config.json and checkpoint.pth); drop --resume to start a new run there"
        )
    known = {f.name for f in fields(TrainConfig)}
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name not in _RUNTIME_FIELDS}
    # Settings added after a run was started are compared at their defaults (which reproduce the old behaviour).
    theirs = {**defaults, **{k: v for k, v in saved.items() if k in known and k not in _RUNTIME_FIELDS}}
    ours = cfg.semantic()
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        shown = ", ".join(f"{k}={theirs.get(k)!r} (now {ours.get(k)!r})" for k in diff[:3])
        raise RexnetError(
            f"cannot resume {out}: it was run with other settings: {shown}; rerun with the saved "
            f"settings (see {out / 'config.json'}) or pick another --out"
        )
    ckpt = read_checkpoint(out / "checkpoint.pth")
    if ckpt.layout != "rexnet" or ckpt.optimizer is None or ckpt.epoch is None:
        raise RexnetError(f"{out / 'checkpoint.pth'} is not a rexnet training checkpoint; start a new run")
    return ckpt


def rank_info() -> tuple[int, int]:
    """Returns (rank, world size) from torchrun's environment variables ((0, 1) when not under torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@dataclass
class Run:
    """Everything `setup` builds for a training run, and the state the steps update."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    rank: int
    world: int
    data: DataSpec
    train_loader: DataLoader
    test_loader: DataLoader
    sampler: DistributedSampler | None
    loader_gen: torch.Generator
    model: ReXNet  # the network itself (what is saved)
    step_model: nn.Module  # what the training step calls: the model, wrapped by DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: WeightEMA | None
    autocast_dtype: torch.dtype | None
    channels_last: bool
    metadata: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def eval_model(self) -> ReXNet:
        """Returns the network evaluated and saved as model.pth: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model


def setup(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    data: DataSpec | None = None,
    rank: int = 0,
    world: int = 1,
    device: torch.device | None = None,
) -> Run:
    """Returns the Run for `cfg`: checked run folder, data loaders, model, optimizer, EMA, restored state on resume."""
    device = device or resolve_device(cfg.device)
    out = Path(cfg.out)
    if cfg.batch_size % world:
        raise RexnetError(f"batch size {cfg.batch_size} does not split over {world} processes; use a multiple")
    state = _load_resume(cfg, out) if resume else None
    if not resume and (out / "checkpoint.pth").exists():
        raise RexnetError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    autocast_dtype = amp_dtype(device, cfg.amp)

    data = data or load_data(
        cfg.data,
        cfg.data_root,
        img_size=cfg.img_size,
        randaugment=cfg.randaugment,
        random_erasing=cfg.random_erasing,
        hflip=cfg.hflip,
        scale=(cfg.scale_min, cfg.scale_max),
        train_limit=cfg.train_limit,
        test_limit=cfg.test_limit,
    )
    local_batch = cfg.batch_size // world
    if len(data.train) < cfg.batch_size:
        raise RexnetError(
            f"the training set has {len(data.train)} images, fewer than one batch of "
            f"{cfg.batch_size}; lower --batch-size"
        )
    sampler = (
        DistributedSampler(data.train, world, rank, shuffle=True, seed=cfg.seed, drop_last=True) if world > 1 else None
    )
    loader_gen = torch.Generator()
    train_loader = DataLoader(
        data.train,
        local_batch,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.workers,
        generator=loader_gen,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    # Each rank evaluates every world-th test image; the sums are all-reduced, so no image counts twice.
    test_part = Subset(data.test, range(rank, len(data.test), world)) if world > 1 else data.test
    test_loader = DataLoader(test_part, max(local_batch, 64), shuffle=False, num_workers=cfg.workers)

    _seed_everything(cfg.seed)
    arch, stem_stride = small_input_variant(model_arch(cfg.model, dropout=cfg.dropout), cfg.small_input)
    # The data decides input channels and classes; model.arch records them with the table's stem stride and
    # small-input mode, so the checkpoints' "arch" is the whole network trained (registry.checkpoint_network).
    model = ReXNet(arch, len(data.classes), data.in_chans, stem_stride=stem_stride, drop_path_rate=cfg.drop_path).to(
        device
    )
    # channels_last on CUDA only: for the CPU training step of rexnet_050 (s16, 32×32, batch 128) it measured
    # 0.91× NCHW's speed (fastest of 6 alternating rounds on 2 shared cores), so the CPU keeps NCHW.
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and autocast_dtype == torch.float16)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state.state_dict)
        optimizer.load_state_dict(state.optimizer)
        if "scaler" in state.extra:
            scaler.load_state_dict(state.extra["scaler"])
        history = list(state.extra.get("history", []))
        start_epoch = int(state.epoch)
    ema = make_ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if ema is not None and state is not None:
        ema.module.load_state_dict(state.extra["ema"])
    step_model: nn.Module = model
    if world > 1:
        step_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        step_model = torch.compile(step_model)
    metadata = {
        "config": asdict(cfg),
        "stem_stride": stem_stride,
        "in_chans": data.in_chans,
        "classes": list(data.classes),
        "img_size": data.img_size,
        "data": data.name,
    }
    return Run(
        cfg,
        out,
        device,
        rank,
        world,
        data,
        train_loader,
        test_loader,
        sampler,
        loader_gen,
        model,
        step_model,
        optimizer,
        scaler,
        ema,
        autocast_dtype,
        channels_last,
        metadata,
        history,
        start_epoch,
    )


def train_one_epoch(run: Run, epoch: int) -> dict[str, float]:
    """Returns the epoch's mean training loss, top-1 (%), last learning rate, img/s and seconds, after training it.

    All randomness of the epoch (shuffle, augmentation, dropout, drop path) derives from (seed, epoch), so a
    resumed run replays it exactly.
    """
    cfg = run.cfg
    _seed_everything(cfg.seed * 100_003 + epoch)
    run.loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
    steps_per_epoch = len(run.train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs if cfg.warmup_epochs is not None else default_warmup_epochs(cfg.epochs)
    warmup_steps = round(warmup * steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    run.step_model.train()
    sums = torch.zeros(2, dtype=torch.float64, device=run.device)  # loss sum, top-1 hits
    count = 0  # known on the host: no device read per step
    started = time.perf_counter()
    batches = run.train_loader
    show = cfg.progress and run.is_main
    if show:
        batches = tqdm(run.train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
    autocast = (
        torch.autocast(run.device.type, dtype=run.autocast_dtype)
        if run.autocast_dtype is not None
        else contextlib.nullcontext()
    )
    lr = cfg.lr
    for i, (images, target) in enumerate(batches):
        lr = lr_at(epoch * steps_per_epoch + i, total_steps, warmup_steps, cfg.lr, cfg.min_lr)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        images = images.to(run.device, non_blocking=True)
        target = target.to(run.device, non_blocking=True)
        if run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast:
            logits = run.step_model(images)
            loss = criterion(logits.float(), target)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if cfg.clip_grad is not None:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.clip_grad)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.ema is not None:
            run.ema.update()
        sums += torch.cat([(loss.detach() * len(target))[None], topk_correct(logits.detach(), target, (1,))]).double()
        count += len(target)
        if show and (i + 1) % _PROGRESS_EVERY == 0:
            batches.set_postfix(loss=f"{sums[0].item() / count:.3f}", lr=f"{lr:.4f}")
    sums = torch.cat([sums, sums.new_tensor([count])])
    if run.world > 1:
        dist.all_reduce(sums)
    loss_sum, hits, count = sums.tolist()
    seconds = time.perf_counter() - started
    return {
        "train_loss": loss_sum / count,
        "train_top1": 100 * hits / count,
        "lr": lr,
        "img_per_s": count / seconds,
        "epoch_s": seconds,
    }


@torch.no_grad()
def sync_replicas(run: Run) -> None:
    """Averages BN statistics over processes, the model's and the EMA's, so every process (and the checkpoint) agrees.

    DDP syncs gradients, so parameters (and the EMA's parameters) are already identical; BN running statistics
    are updated from each process's own batches.
    """
    if run.world == 1:
        return
    modules = [run.model] + ([run.ema.module] if run.ema is not None else [])
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= run.world


def save_epoch(run: Run, row: dict[str, Any]) -> None:
    """Writes checkpoint.pth and metrics.csv (and model.pth after the last epoch), atomically; rank 0 only."""
    epoch = row["epoch"]
    extra: dict[str, Any] = {"history": run.history, "scaler": run.scaler.state_dict()}
    if run.ema is not None:
        extra["ema"] = {k: v.detach().cpu() for k, v in run.ema.module.state_dict().items()}
    try:
        save_checkpoint(
            run.out / "checkpoint.pth",
            run.model,
            optimizer=run.optimizer,
            epoch=epoch,
            metadata=run.metadata,
            extra=extra,
        )
        write_metrics_csv(run.out / "metrics.csv", run.history)
    except OSError as exc:
        raise _check_disk_error(exc, run.out) from None
    if epoch == run.cfg.epochs:
        save_model(run, row)


def save_model(run: Run, row: dict[str, Any]) -> None:
    """Writes model.pth, the finished run's evaluated network (EMA when enabled), atomically; rank 0 only."""
    try:
        save_checkpoint(
            run.out / "model.pth",
            run.eval_model,
            epoch=row["epoch"],
            metadata={**run.metadata, "ema": run.ema is not None, "metrics": row},
        )
    except OSError as exc:
        raise _check_disk_error(exc, run.out) from None


def _prepare_folder(run: Run, resume: bool) -> None:
    if run.is_main:
        try:
            run.out.mkdir(parents=True, exist_ok=True)
            if not resume:
                atomic_write_text(run.out / "config.json", json.dumps(asdict(run.cfg), indent=2) + "\n")
        except OSError as exc:
            raise _check_disk_error(exc, run.out) from None
    if run.world > 1:
        dist.barrier()


def format_epoch(row: dict[str, Any], epochs: int) -> str:
    """Returns the one-line report of an epoch's metrics row (what `rexnet train` prints after each epoch)."""
    return (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  train {row['train_top1']:.2f}%  "
        f"test {row['test_top1']:.2f}% (top-5 {row['test_top5']:.2f}%)  lr {row['lr']:.4g}  "
        f"{row['img_per_s']:.0f} img/s"
    )


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    data: DataSpec | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Returns the last epoch's metrics after training `cfg` into its run folder (resuming it if asked).

    `data` overrides `cfg.data` (tests pass tiny in-memory datasets). After each epoch's files are written,
    rank 0 logs `format_epoch(row)` to the "rexnet.training" logger (INFO) and calls `on_epoch(row)` if given;
    nothing is printed. Under torchrun (WORLD_SIZE > 1) each process calls this and rank 0 writes and reports.
    """
    rank, world = rank_info()
    device = resolve_device(cfg.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        run = setup(cfg, resume=resume, data=data, rank=rank, world=world, device=device)
        _prepare_folder(run, resume)
        row: dict[str, Any] = run.history[-1] if run.history else {}
        for epoch in range(run.start_epoch, cfg.epochs):
            train_row = train_one_epoch(run, epoch)
            sync_replicas(run)
            test = evaluate_loss_acc(
                run.eval_model, run.test_loader, run.device, channels_last=run.channels_last, distributed=world > 1
            )
            row = {"epoch": epoch + 1, **train_row, **test}
            row = {k: row[k] for k in METRIC_COLUMNS}
            run.history.append(row)
            if run.is_main:
                save_epoch(run, row)
                logger.info(format_epoch(row, cfg.epochs))
                if on_epoch is not None:
                    on_epoch(row)
            if world > 1:
                dist.barrier()
        if run.is_main and run.start_epoch == cfg.epochs and not (run.out / "model.pth").is_file():
            # Stopped after the last epoch's checkpoint but before model.pth: resuming finishes the run.
            save_model(run, row)
        return row
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


__all__ = [
    "Run",
    "TrainConfig",
    "WeightEMA",
    "evaluate_loss_acc",
    "format_epoch",
    "lr_at",
    "make_ema",
    "save_epoch",
    "save_model",
    "setup",
    "sync_replicas",
    "train",
    "train_one_epoch",
]
