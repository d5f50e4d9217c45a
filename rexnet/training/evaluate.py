"""Evaluating a trained classifier: top-1/top-5, per-class accuracy, confusion matrix, penultimate feature rank.

The feature rank follows the paper's measure (the rank ratio of its rank study, Figure 1): the pooled
penultimate features F (N × C) of the test set, cut into consecutive chunks of 2·C images, each chunk's rank
(the float32 tolerance of `torch.linalg.matrix_rank`, `rexnet.rank_tolerance`, computed in float64) divided by
C; the mean over chunks is reported, with the nuclear norm of the whole-test-set feature matrix (the rank proxy
of CVPR Table 2).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..device import resolve_device
from ..errors import RexnetError
from ..io import atomic_path, atomic_write_text
from ..model import ReXNet
from ..rank_tolerance import float32_rtol
from ..registry import model_from_checkpoint
from .data import DataSpec, load_data


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` measures on a test set."""

    top1: float
    top5: float
    num_images: int
    per_class_accuracy: tuple[float, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: true class, columns: predicted class
    feature_rank: float  # mean normalized rank of the penultimate features, in [0, 1]
    feature_rank_chunks: int
    feature_nuclear_norm: float
    classes: tuple[str, ...]
    # With `evaluate(keep_logits=True)`: the logits every number above was computed from (N × classes, float32,
    # in test-set order), written by `write_eval` as logits.npy; not part of eval.json.
    logits: torch.Tensor | None = field(default=None, repr=False, compare=False)


def normalized_feature_rank(features: torch.Tensor, chunk: int | None = None) -> tuple[float, int]:
    """Returns (mean rank/C over consecutive chunks of `chunk` rows (default 2·C), number of chunks) of an N × C
    matrix; the rank counts σ > σ_max · max(rows, C) · eps_float32 (`rexnet.rank_tolerance`, the rank study's rule).

    A last, shorter chunk is dropped unless it is the only one (then the rank is divided by min(N, C)).
    """
    n, c = features.shape
    chunk = chunk or 2 * c
    pieces = [features[i : i + chunk] for i in range(0, n, chunk)]
    if len(pieces) > 1 and len(pieces[-1]) < chunk:
        pieces = pieces[:-1]
    ranks = []
    for piece in pieces:
        f = piece.double()
        sigma = torch.linalg.svdvals(f)
        tol = sigma.max() * float32_rtol(*f.shape) if len(sigma) else 0.0
        ranks.append(int((sigma > tol).sum()) / min(c, len(piece)))
    return sum(ranks) / len(ranks), len(ranks)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    classes: tuple[str, ...],
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    workers: int = 0,
    progress: bool = False,
    keep_logits: bool = False,
) -> EvalResult:
    """Returns top-1/top-5, per-class accuracy, the confusion matrix and the feature rank of `model` on `dataset`
    (with `progress`, a progress bar of the batches on stderr; with `keep_logits`, the logits in `.logits`)."""
    device = resolve_device(device)
    model = model.to(device).eval()
    k = len(classes)
    confusion = torch.zeros(k, k, dtype=torch.int64)
    feats, all_logits, top5_hits, n = [], [], 0, 0
    batches = DataLoader(dataset, batch_size, shuffle=False, num_workers=workers)
    for images, target in tqdm(batches, desc="eval", unit="batch", leave=False, disable=not progress):
        images = images.to(device)
        pooled = model.forward_head(model.forward_features(images), pre_logits=True)
        logits = model.output[-1](pooled)  # forward_head's last step, on the pooled features kept for the rank
        logits, pooled = logits.float().cpu(), pooled.float().cpu()
        pred = logits.argmax(1)
        confusion += torch.bincount(target * k + pred, minlength=k * k).reshape(k, k)
        top5_hits += int((logits.topk(min(5, k), 1).indices == target[:, None]).any(1).sum())
        n += len(target)
        feats.append(pooled)
        if keep_logits:
            all_logits.append(logits)
    if n == 0:
        raise RexnetError("the test set is empty; check --data")
    features = torch.cat(feats)
    rank, chunks = normalized_feature_rank(features)
    per_class = confusion.diag().double() / confusion.sum(1).clamp(min=1).double()
    return EvalResult(
        top1=100 * confusion.diag().sum().item() / n,
        top5=100 * top5_hits / n,
        num_images=n,
        per_class_accuracy=tuple(100 * per_class.tolist()[i] for i in range(k)),
        confusion=tuple(tuple(row) for row in confusion.tolist()),
        feature_rank=rank,
        feature_rank_chunks=chunks,
        feature_nuclear_norm=float(torch.linalg.matrix_norm(features.double(), ord="nuc")),
        classes=tuple(classes),
        logits=torch.cat(all_logits) if keep_logits else None,
    )


def plot_confusion(result: EvalResult, path: str | os.PathLike, title: str = "") -> Path:
    """Returns the path of the confusion-matrix figure (row-normalised, %) written atomically as PNG.

    The figure is a bare `matplotlib.figure.Figure`, which renders to PNG with Agg whatever pyplot's backend is:
    no backend is chosen and no pyplot state is touched.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - matplotlib (~0.8 s) loads only when a figure is drawn

    conf = torch.tensor(result.confusion, dtype=torch.float64)
    norm = 100 * conf / conf.sum(1, keepdim=True).clamp(min=1)
    k = len(result.classes)
    fig = Figure(figsize=(1.0 + 0.55 * k, 0.8 + 0.5 * k))
    ax = fig.subplots()
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(k), result.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), result.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 50 else "black",
                )
    ax.set_title(title or f"top-1 {result.top1:.2f}%")
    fig.colorbar(im, ax=ax, label="% of true class")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def write_eval(result: EvalResult, out_dir: str | os.PathLike, title: str = "") -> dict[str, Path]:
    """Returns the files written to out_dir: eval.json (all numbers), per_class.csv, confusion.png, and
    logits.npy (float32, one row per test image in order) when the result kept its logits."""
    out = Path(out_dir)
    numbers = asdict(replace(result, logits=None))
    del numbers["logits"]
    files = {"json": atomic_write_text(out / "eval.json", json.dumps(numbers, indent=2) + "\n")}
    lines = ["class,accuracy,count"] + [
        f'"{c}",{acc:.4f},{sum(result.confusion[i])}'
        for i, (c, acc) in enumerate(zip(result.classes, result.per_class_accuracy))
    ]
    files["per_class"] = atomic_write_text(out / "per_class.csv", "\n".join(lines) + "\n")
    files["confusion"] = plot_confusion(result, out / "confusion.png", title)
    if result.logits is not None:
        with atomic_path(out / "logits.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, result.logits.float().numpy())  # a file object: np.save would append .npy to a name
        files["logits"] = out / "logits.npy"
    return files


def format_eval(result: EvalResult) -> str:
    """Returns a short printable report of an EvalResult."""
    lines = [
        f"top-1 {result.top1:.2f}%  top-5 {result.top5:.2f}%  on {result.num_images} images",
        f"penultimate feature rank {result.feature_rank:.4f} (mean over {result.feature_rank_chunks} chunks), "
        f"nuclear norm {result.feature_nuclear_norm:.1f}",
        "per-class accuracy:",
    ]
    lines += [f"  {c:<14} {a:6.2f}%" for c, a in zip(result.classes, result.per_class_accuracy)]
    return "\n".join(lines)


def load_for_eval(
    checkpoint: str | os.PathLike,
    data: str,
    data_root: str | os.PathLike = "data",
    *,
    model_name: str | None = None,
    test_limit: int | None = None,
    device: str | torch.device = "auto",
) -> tuple[ReXNet, DataSpec]:
    """Returns (model in eval mode on `device`, DataSpec) for a checkpoint and a `--data` string, after checking
    they fit.

    The model comes from `rexnet.registry.model_from_checkpoint`: a checkpoint written by `rexnet train` rebuilds
    the network it trained (`model_name`, when given, must name that same network); other checkpoints
    (official/timm) need `model_name`, and their test images are prepared as the model's `pretrained_cfg` says
    (size, crop, interpolation, mean/std: those the weights were trained with). Weights are read with
    weights_only=True.
    """
    model, info = model_from_checkpoint(checkpoint, model_name)
    spec = load_data(
        data, data_root, img_size=info["img_size"], test_limit=test_limit, pretrained_cfg=info["pretrained_cfg"]
    )
    if (len(spec.classes), spec.in_chans) != (info["num_classes"], info["in_chans"]):
        trained_on = info["metadata"].get("data", "other data")
        raise RexnetError(
            f"{checkpoint} was trained on {trained_on} ({info['num_classes']} classes, "
            f"{info['in_chans']} channels), {data} has {len(spec.classes)} classes, {spec.in_chans} "
            f"channels; evaluate on {trained_on}"
        )
    return model.to(resolve_device(device)).eval(), spec
