"""Training a ReXNet (or any block table) on a dataset: one config dataclass, one visible loop, exact resume, DDP.

Recipe (REXNET.md §3, scaled down): SGD with (Nesterov) momentum, linear warm-up then cosine decay per step,
label smoothing, weight decay on conv/linear weights only (not on BN or biases), optional EMA of the weights,
AMP and channels_last on CUDA. Launched by `torchrun` (WORLD_SIZE > 1) it runs DistributedDataParallel with a
DistributedSampler (gloo on CPU, nccl on CUDA).

Run folder: `config.json` (the settings), `checkpoint.pth` (written atomically after every epoch: weights,
optimizer, EMA, the metrics so far), `metrics.csv` (one row per epoch, rewritten atomically from the
checkpoint's history, so the two always agree) and, when finished, `model.pth` (the weights evaluated:
EMA when enabled). Exact resume: every epoch reseeds all randomness from (seed, epoch), so resuming after
epoch k replays epochs k+1… exactly as an uninterrupted run does (on CPU; CUDA kernels may not be deterministic).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from .arch import ArchSpec, rexnet_v1_arch
from .baseline import SMALL_INPUT_MODES, build_classifier, mobilenetv2_arch, small_input_variant
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .data import DataSpec, load_data
from .errors import RexnetError
from .io import atomic_write_text
from .registry import list_models, model_arch

METRIC_COLUMNS = ("epoch", "train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "img_per_s",
                  "epoch_s")
TIMING_COLUMNS = ("img_per_s", "epoch_s")  # the only columns that differ between identical runs

# Settings that may change on --resume without changing the result.
_RUNTIME_FIELDS = {"out", "device", "workers", "data_root", "progress"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as config.json in the run folder."""

    model: str = "rexnet_050"  # a registered name, `mobilenetv2_XXX` (width ×100), or a block-table .json
    data: str = "fashion-mnist"
    out: str = "runs/run"
    data_root: str = "data"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1  # for batch_size (the total batch under DDP)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    min_lr: float = 0.0
    label_smoothing: float = 0.1
    dropout: float | None = None  # None: the table's own (0.2)
    ema_decay: float = 0.0  # 0 disables EMA; e.g. 0.999
    randaugment: bool = False
    random_erasing: float = 0.0
    small_input: str = "off"  # 28–32 px data: s16 = one fewer downsampling, s8 = also stem stride 1 (baseline.py)
    img_size: int | None = None  # None: 32 for the small datasets, 224 for ImageFolder
    train_limit: int | None = None  # use a fixed random subset of the training set (smoke runs, tests)
    test_limit: int | None = None
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # CUDA only
    workers: int = 0
    progress: bool = True

    def semantic(self) -> dict[str, Any]:
        """Returns the settings that determine the result (all but output path, device, workers)."""
        return {k: v for k, v in asdict(self).items() if k not in _RUNTIME_FIELDS}


def resolve_arch(name: str, small_input: str = "off", dropout: float | None = None) -> ArchSpec:
    """Returns the block table a `--model`/`--arch` value names (with the small-input change and dropout applied).

    Names: the registered ones, `rexnet_NNN` / `mobilenetv2_NNN` at any width ×100, or a block-table .json.
    """
    match = re.fullmatch(r"(rexnet|mobilenetv2)_(\d{3})", name)
    if match and not name.startswith("rexnet_lite") and name not in list_models():
        # Any width, not only the registered ones: rexnet_050 = ReXNet-V1 0.5×, mobilenetv2_070 = MobileNetV2 0.7×.
        width = int(match.group(2)) / 100
        if width <= 0:
            raise RexnetError(f"model {name!r} has width 0; use e.g. {match.group(1)}_050")
        arch = (rexnet_v1_arch if match.group(1) == "rexnet" else mobilenetv2_arch)(width)
    else:
        arch = model_arch(name)
    arch, _ = small_input_variant(arch, small_input)
    if dropout is not None:
        from dataclasses import replace

        arch = replace(arch, dropout=dropout)
    return arch


def pick_device(name: str) -> torch.device:
    """Returns the torch device for auto|cpu|cuda (cuda:LOCAL_RANK under torchrun)."""
    if name not in ("auto", "cpu", "cuda"):
        raise RexnetError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise RexnetError("--device cuda but no CUDA GPU is visible; use --device cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


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


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    """Moves each floating-point EMA tensor toward the model's (parameters and BN statistics); copies the rest."""
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            ema[name].lerp_(value, 1.0 - decay)
        else:
            ema[name].copy_(value)


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks=(1, 5)) -> list[int]:
    """Returns how many targets are among the top-k logits, for each k (k capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hits = top == target[:, None]
    return [int(hits[:, :k].any(dim=1).sum()) for k in ks]


@torch.no_grad()
def evaluate_loss_acc(model: nn.Module, loader: DataLoader, device: torch.device, *, channels_last: bool = False,
                      distributed: bool = False) -> dict[str, float]:
    """Returns test loss (plain cross-entropy), top-1 and top-5 accuracy in % over the loader (summed over ranks)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, count
    for images, target in loader:
        images, target = images.to(device), target.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images).float()
        top1, top5 = topk_correct(logits, target)
        sums += torch.tensor([F.cross_entropy(logits, target, reduction="sum").item(), top1, top5, len(target)],
                             dtype=torch.float64)
    if distributed:
        dist.all_reduce(sums)
    loss, top1, top5, n = sums.tolist()
    return {"test_loss": loss / n, "test_top1": 100 * top1 / n, "test_top5": 100 * top5 / n}


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)  # also seeds CUDA; Python's and NumPy's RNGs are not used in training


def _check_disk_error(exc: OSError, where: Path) -> RexnetError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RexnetError(f"out of disk space writing {where}; the run folder keeps the last complete epoch: "
                           "free space, then rerun with --resume")
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
        raise RexnetError(f"{out} holds no run to resume (config.json and checkpoint.pth); drop --resume to start "
                          "a new run there")
    known = {f.name for f in fields(TrainConfig)}
    theirs = {k: v for k, v in saved.items() if k in known and k not in _RUNTIME_FIELDS}
    ours = cfg.semantic()
    diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if diff:
        shown = ", ".join(f"{k}={theirs.get(k)!r} (now {ours.get(k)!r})" for k in diff[:3])
        raise RexnetError(f"cannot resume {out}: it was run with other settings: {shown}; rerun with the saved "
                          f"settings (see {out / 'config.json'}) or pick another --out")
    ckpt = read_checkpoint(out / "checkpoint.pth")
    if ckpt.layout != "rexnet" or ckpt.optimizer is None or ckpt.epoch is None:
        raise RexnetError(f"{out / 'checkpoint.pth'} is not a rexnet training checkpoint; start a new run")
    return ckpt


def _rank_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def train(cfg: TrainConfig, *, resume: bool = False, data: DataSpec | None = None) -> dict[str, Any]:
    """Returns the last epoch's metrics after training `cfg` into its run folder (resuming it if asked).

    `data` overrides `cfg.data` (tests pass tiny in-memory datasets); under torchrun (WORLD_SIZE > 1) each
    process calls this and rank 0 writes the files.
    """
    rank, world = _rank_info()
    distributed = world > 1
    device = pick_device(cfg.device)
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = Path(cfg.out)
    is_main = rank == 0
    try:
        return _train(cfg, resume, data, rank, world, device, out, is_main)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg, resume, data, rank, world, device, out, is_main) -> dict[str, Any]:
    # --- the run folder: a new run or a resume with identical settings -----------------------------------
    if cfg.batch_size % world:
        raise RexnetError(f"batch size {cfg.batch_size} does not split over {world} processes; use a multiple")
    state = _load_resume(cfg, out) if resume else None
    if not resume and (out / "checkpoint.pth").exists():
        raise RexnetError(f"{out} already holds a run; pass --resume to continue it or choose another --out")

    # --- data ---------------------------------------------------------------------------------------------
    data = data or load_data(cfg.data, cfg.data_root, img_size=cfg.img_size, randaugment=cfg.randaugment,
                             random_erasing=cfg.random_erasing, train_limit=cfg.train_limit,
                             test_limit=cfg.test_limit)
    local_batch = cfg.batch_size // world
    if len(data.train) < cfg.batch_size:
        raise RexnetError(f"the training set has {len(data.train)} images, fewer than one batch of "
                          f"{cfg.batch_size}; lower --batch-size")
    sampler = DistributedSampler(data.train, world, rank, shuffle=True, seed=cfg.seed, drop_last=True) \
        if world > 1 else None
    loader_gen = torch.Generator()
    train_loader = DataLoader(data.train, local_batch, shuffle=sampler is None, sampler=sampler, drop_last=True,
                              num_workers=cfg.workers, generator=loader_gen, pin_memory=device.type == "cuda",
                              persistent_workers=False)
    # Each rank evaluates every world-th test image; the sums are all-reduced, so no image counts twice.
    test_part = Subset(data.test, range(rank, len(data.test), world)) if world > 1 else data.test
    test_loader = DataLoader(test_part, max(local_batch, 64), shuffle=False, num_workers=cfg.workers)

    # --- model, optimizer, EMA --------------------------------------------------------------------------
    _seed_everything(cfg.seed)
    arch = resolve_arch(cfg.model, cfg.small_input, cfg.dropout)
    stem_stride = SMALL_INPUT_MODES[cfg.small_input][1]  # resolve_arch has checked the mode
    model = build_classifier(arch, len(data.classes), data.in_chans, stem_stride=stem_stride).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov and cfg.momentum > 0)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()} if cfg.ema_decay > 0 else None
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state.state_dict)
        optimizer.load_state_dict(state.optimizer)
        extra = state.extra
        if ema is not None:
            ema = {k: v.to(device) for k, v in extra["ema"].items()}
        if "scaler" in extra:
            scaler.load_state_dict(extra["scaler"])
        history = list(extra.get("history", []))
        start_epoch = int(state.epoch)
    ddp_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                    else None) if world > 1 else model
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    steps_per_epoch = len(train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_epochs * steps_per_epoch)
    metadata = {"config": asdict(cfg), "stem_stride": stem_stride, "in_chans": data.in_chans,
                "classes": list(data.classes), "img_size": data.img_size, "data": data.name}

    if is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            if not resume:
                atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2) + "\n")
        except OSError as exc:
            raise _check_disk_error(exc, out) from None
    if world > 1:
        dist.barrier()

    # --- the loop -----------------------------------------------------------------------------------------
    row: dict[str, Any] = history[-1] if history else {}
    for epoch in range(start_epoch, cfg.epochs):
        # All randomness of an epoch (shuffle, augmentation, dropout) derives from (seed, epoch): resume is exact.
        _seed_everything(cfg.seed * 100_003 + epoch)
        loader_gen.manual_seed(cfg.seed * 100_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        ddp_model.train()
        sums = torch.zeros(3, dtype=torch.float64)  # loss sum, top-1 hits, count
        started = time.perf_counter()
        batches = train_loader
        if cfg.progress and is_main:
            from tqdm import tqdm

            batches = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        for i, (images, target) in enumerate(batches):
            step = epoch * steps_per_epoch + i
            lr = lr_at(step, total_steps, warmup_steps, cfg.lr, cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = ddp_model(images)
                loss = criterion(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema_update(ema, model, cfg.ema_decay)
            sums += torch.tensor([loss.item() * len(target), topk_correct(logits.detach(), target, (1,))[0],
                                  len(target)], dtype=torch.float64)
            if cfg.progress and is_main:
                batches.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.4f}")
        if world > 1:
            dist.all_reduce(sums)
            # DDP syncs gradients, not BN statistics: average them so every rank (and the checkpoint) agrees.
            for buffer in model.buffers():
                if buffer.is_floating_point():
                    dist.all_reduce(buffer)
                    buffer /= world
        seconds = time.perf_counter() - started

        eval_model = model
        if ema is not None:
            eval_model = build_classifier(arch, len(data.classes), data.in_chans, stem_stride=stem_stride).to(device)
            eval_model.load_state_dict(ema)
        test = evaluate_loss_acc(eval_model, test_loader, device, channels_last=channels_last,
                                 distributed=world > 1)
        row = {"epoch": epoch + 1, "train_loss": sums[0].item() / sums[2].item(),
               "train_top1": 100 * sums[1].item() / sums[2].item(), **test, "lr": lr,
               "img_per_s": sums[2].item() / seconds, "epoch_s": seconds}
        history.append(row)
        if is_main:
            extra = {"history": history, "scaler": scaler.state_dict()}
            if ema is not None:
                extra["ema"] = {k: v.detach().cpu() for k, v in ema.items()}
            try:
                save_checkpoint(out / "checkpoint.pth", model, optimizer=optimizer, epoch=epoch + 1,
                                metadata=metadata, extra=extra)
                write_metrics_csv(out / "metrics.csv", history)
                if epoch + 1 == cfg.epochs:
                    save_checkpoint(out / "model.pth", eval_model, epoch=epoch + 1,
                                    metadata={**metadata, "ema": ema is not None, "metrics": row})
            except OSError as exc:
                raise _check_disk_error(exc, out) from None
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f}  train {row['train_top1']:.2f}%  "
                  f"test {row['test_top1']:.2f}% (top-5 {row['test_top5']:.2f}%)  lr {lr:.4g}  "
                  f"{row['img_per_s']:.0f} img/s", flush=True)
        if world > 1:
            dist.barrier()
    return row


__all__ = ["TrainConfig", "evaluate_loss_acc", "lr_at", "resolve_arch", "train"]
