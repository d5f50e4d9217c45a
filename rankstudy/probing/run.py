"""Per-layer feature rank of any `nn.Module` on real inputs: where does a trained network's representation collapse?

The paper (ReXNet, §3) calls a layer whose output rank is far below its channel count a representational
bottleneck, and measures it on random networks (§3.2, Figs. 1–2); `probe` measures the same quantities on any
model. Forward hooks (`rankstudy.probing.hooks`) collect each probed module's output as a feature matrix
F = channels × columns (every image's positions, a fixed seeded subset of at most `max_columns`).

Every measure comes from `rankstudy.rank` (the study's): the rank at `torch.linalg.matrix_rank`'s float32
tolerance, effective rank, stable rank, ranks at relative tolerances, each divided by the channels C; plus the
nuclear norm divided by σ_max · C (a scale-free rank proxy in (0, 1], cf. the paper's Table 2 nuclear norm).
The float32 rank of real features is usually full (only exact zeros, e.g. after ReLU, remove rank), so the
tolerance decides the answer: read the measures side by side. A layer whose columns are fewer than its
channels cannot reach normalized rank 1 (`capped` marks it); give more images.

`drop` is the fall of the flag measure (normalized) from the layer before, in execution order (NaN for capped
layers, which are skipped as "the layer before" too); the layers with the largest drops (at most `n_flagged`,
each at least `min_drop`) `fall`. Each falling layer's `limited_by` names the nearest earlier layer whose
absolute rank is no larger (in execution order: usually the narrow layer that caps it, e.g. a 1×1 conv
squeezing to 4 channels caps the wide layer it feeds at rank ≤ 4), whose `caps` names the falling layers.
`flagged` marks both: the falls and their caps.

Batch norm (`bn`): "running" normalises with the layers' running statistics (plain eval mode), "batch" with
the statistics of each forward batch (`rankstudy.probing.hooks.chunks`: ⌈N / batch_size⌉ batches of
near-equal size), the rest of the model staying in eval mode. An untrained network's running statistics are
mean 0 / variance 1, so "running" then passes each layer's raw scale and offset on, while the random-network
study (§3.2) and the channel proxy normalise with batch statistics: the default (None or "auto") is "batch"
for a network whose batch-norm layers were never updated (every num_batches_tracked 0 and running statistics
at 0 / 1) and "running" otherwise; `run_probe` uses "batch" without a checkpoint and "running" with one. The
mode used is the table's `bn` column and `table.attrs["bn"]`.

`run_probe` is the `rankstudy probe` command: model (`rankstudy.probing.models`), images
(`rankstudy.probing.images`), the table as probe.csv and its figure (`rankstudy.probing.plot`) as probe.png.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from rexnet.io import atomic_path

from ..errors import StudyError
from ..rank import DEFAULT_RTOLS, metric_columns, rank_metrics
from ..store import prepare_out_dir
from .hooks import BN_MODES, LayerFeatures, LayerSelection, chunks, collect_features, select_modules
from .images import load_images
from .models import load_model
from .plot import plot_probe

DEFAULT_MAX_COLUMNS = 4096
DEFAULT_FLAG_MEASURE = "rank_rtol_1e-2"
# Bounds checked before any image is loaded, so an impossible size is one line, not an allocator traceback.
MAX_IMG_SIZE = 4096
MAX_IMAGE_BYTES = 8 * 2**30


def measure_names(rtols: tuple[float, ...] = DEFAULT_RTOLS) -> list[str]:
    """Returns the measures `probe` can report: the rank measures of `rankstudy.rank` and the nuclear norm."""
    return [c for c in metric_columns(rtols) if not c.startswith("normalized_") and c != "sigma_max"]


def untrained_batch_norm(model: torch.nn.Module) -> bool:
    """Returns True when `model` has batch-norm layers and none was ever updated: every tracked layer's
    num_batches_tracked is 0 and its running mean and variance are still 0 and 1 (their initial values)."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    tracked = [m for m in layers if m.running_mean is not None and m.running_var is not None]
    return bool(layers) and all(
        (m.num_batches_tracked is None or int(m.num_batches_tracked) == 0)
        and bool((m.running_mean == 0).all())
        and bool((m.running_var == 1).all())
        for m in tracked
    )


def resolve_bn(bn: str | None, model: torch.nn.Module) -> str:
    """Returns the batch-norm mode to use: `bn` itself, or for None/"auto" "batch" when `model`'s batch-norm
    layers were never updated (`untrained_batch_norm`) and "running" otherwise; StudyError for another value."""
    if bn is None or bn == "auto":
        return "batch" if untrained_batch_norm(model) else "running"
    if bn not in BN_MODES:
        raise StudyError(f"bn={bn!r} is not a batch-norm mode; use bn='batch', bn='running' or bn=None (the default)")
    return bn


def probe(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    layers: LayerSelection = None,
    *,
    measures: Sequence[str] | None = None,
    rtols: tuple[float, ...] = DEFAULT_RTOLS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    batch_size: int = 256,
    seed: int = 0,
    flag_measure: str = DEFAULT_FLAG_MEASURE,
    n_flagged: int = 3,
    min_drop: float = 0.25,
    bn: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Returns one row per probed module call (execution order): its feature rank measures, normalized by channels.

    `inputs` is one tensor (N, …) fed in ⌈N / batch_size⌉ forward batches of near-equal size; `layers` is
    None (every leaf module but dropout/identity/flatten), a list of module names, or a predicate
    (name, module) → bool. `bn` is "batch" (batch-norm layers normalise with each forward batch's statistics),
    "running" (with their running statistics) or None/"auto": "batch" for a model whose batch-norm layers were
    never updated, else "running" (see the module docstring). Columns: name, type, output_shape, channels,
    positions (per image), columns (used), capped, each measure of `measures` (default all of
    `measure_names(rtols)`) and its `normalized_` version, drop, falls, limited_by, caps, flagged (see the
    module docstring), bn (the mode used); `table.attrs` holds flag_measure, bn and batch_sizes (the forward
    batches' sizes). The model runs in eval mode without gradients; its modes are restored, its weights and
    buffers (batch-norm running statistics included) are untouched, and the hooks are removed, also when the
    forward pass fails.
    """
    bn = resolve_bn(bn, model)
    available = measure_names(rtols)
    measures = list(measures) if measures is not None else available
    bad = [m for m in measures + [flag_measure] if m not in available]
    if bad:
        raise StudyError(f"unknown measure {bad[0]!r}; choose from {', '.join(available)}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or len(inputs) == 0:
        raise StudyError("inputs must be a non-empty tensor (N, ...) of model inputs")
    if max_columns < 1 or batch_size < 1:
        raise StudyError(f"max_columns ({max_columns}) and batch_size ({batch_size}) must be positive")
    modules = select_modules(model, layers)
    if not modules:
        raise StudyError("no module to probe; pass layers=None (every leaf) or names from model.named_modules()")
    layer_features = collect_features(
        model, inputs, modules, max_columns=max_columns, batch_size=batch_size, seed=seed, bn=bn, progress=progress
    )
    if not layer_features:
        raise StudyError("none of the probed modules returned a feature tensor; choose other layers")
    table = rank_table(layer_features, measures, rtols, flag_measure, n_flagged, min_drop)
    table["bn"] = bn
    table.attrs["bn"] = bn
    table.attrs["batch_sizes"] = [stop - start for start, stop in chunks(len(inputs), batch_size)]
    return table


def rank_table(
    layer_features: Sequence[LayerFeatures],
    measures: list[str],
    rtols: tuple[float, ...],
    flag_measure: str,
    n_flagged: int,
    min_drop: float,
) -> pd.DataFrame:
    """Returns `probe`'s table of the given feature matrices (see the module docstring for drop, falls, caps)."""
    rows = []
    for f in layer_features:
        metrics = {k: v.item() for k, v in rank_metrics(f.features, rtols).items()}
        metrics["normalized_nuclear_norm"] = (
            metrics["nuclear_norm"] / (metrics["sigma_max"] * f.channels) if metrics["sigma_max"] > 0 else 0.0
        )
        columns = f.features.shape[1]
        row = {
            "name": f.name,
            "type": f.type,
            "output_shape": "x".join(map(str, f.shape)),
            "channels": f.channels,
            "positions": f.positions,
            "columns": columns,
            "capped": columns < f.channels,
        }
        for m in dict.fromkeys(measures + [flag_measure]):
            row[m] = metrics[m]
            row["normalized_" + m] = metrics["normalized_" + m]
        rows.append(row)
    table = pd.DataFrame(rows)
    # Capped rows (fewer columns than channels) cannot reach rank 1: they neither fall nor serve as "the layer before".
    flag_norm = table["normalized_" + flag_measure].where(~table["capped"])
    table["drop"] = flag_norm.ffill().shift(1) - flag_norm
    table.loc[table.index[0], "drop"] = 0.0 if not table["capped"].iloc[0] else float("nan")
    top = table["drop"][table["drop"] >= min_drop].nlargest(n_flagged).index
    limited, caps = [""] * len(table), [[] for _ in range(len(table))]
    for i in sorted(top):
        # The narrow layer upstream: the nearest earlier one whose absolute rank is no larger than this one's.
        earlier = table.loc[: i - 1]
        narrow = earlier[earlier[flag_measure] <= table.at[i, flag_measure]]
        if len(narrow):
            limited[i] = narrow["name"].iloc[-1]
            caps[narrow.index[-1]].append(table.at[i, "name"])
    table["limited_by"] = limited
    table["caps"] = [",".join(c) for c in caps]
    table["falls"] = table.index.isin(top)
    table["flagged"] = table["falls"] | (table["caps"] != "")
    table.attrs["flag_measure"] = flag_measure
    return table


def _check_writable(out: Path) -> None:
    """Raises StudyError unless `out` can be created (it is not created: nothing is written before the probe)."""
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise StudyError(f"cannot write to --out {out}; choose a writable directory")


def run_probe(
    model: str | None,
    checkpoint: str | None,
    data: str,
    n_images: int,
    out: str | os.PathLike,
    *,
    data_root: str | os.PathLike = "data",
    img_size: int | None = None,
    num_classes: int | None = None,
    layers: LayerSelection = None,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    batch_size: int = 256,
    seed: int = 0,
    flag_measure: str = DEFAULT_FLAG_MEASURE,
    device: str = "cpu",
    bn: str | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[Path]]:
    """Returns (table, files written): probe.csv and probe.png in `out`, for the `rankstudy probe` command.

    `bn` None/"auto" is "batch" without a checkpoint (an untrained network) and "running" with one (a trained
    network); "batch" or "running" choose (see `probe`). Nothing is written unless the model, checkpoint and data
    all load and the probe succeeds.
    """
    if bn is None or bn == "auto":
        bn = "batch" if checkpoint is None else "running"
    elif bn not in BN_MODES:
        raise StudyError(f"--bn {bn}: unknown batch-norm mode; use --bn batch or --bn running")
    out = Path(out)
    _check_writable(out)
    in_chans = 1 if data == "fashion-mnist" else 3
    loaded = load_model(model, checkpoint, in_chans=in_chans, num_classes=num_classes)
    size = img_size or loaded.img_size  # None: the data's own size (load_images: 32 px Fashion-MNIST, else 224)
    if size is not None and size > MAX_IMG_SIZE:
        raise StudyError(f"--img-size {size} is larger than {MAX_IMG_SIZE}; give a smaller --img-size")
    needed = n_images * loaded.in_chans * (size or 224) ** 2 * 4  # bytes of the float32 image batch alone
    if needed > MAX_IMAGE_BYTES:
        raise StudyError(
            f"{n_images} images of {size}×{size} need {needed / 2**30:.0f} GiB before any layer runs "
            f"(at most {MAX_IMAGE_BYTES // 2**30} GiB); lower --n-images or --img-size"
        )
    images = load_images(data, n_images, in_chans=loaded.in_chans, img_size=size, data_root=data_root, seed=seed)
    if device != "cpu" and not torch.cuda.is_available():
        raise StudyError(f"--device {device} but no CUDA GPU is visible; use --device cpu")
    table = probe(
        loaded.model.to(device),
        images,
        layers,
        max_columns=max_columns,
        batch_size=batch_size,
        seed=seed,
        flag_measure=flag_measure,
        bn=bn,
        progress=progress,
    )
    prepare_out_dir(out)
    with atomic_path(out / "probe.csv") as tmp:
        table.to_csv(tmp, index=False)
    figure = plot_probe(
        {loaded.description: table},
        out / "probe.png",
        measures=("rank", flag_measure),
        title=f"{loaded.description}: {data}, {n_images} images, BN {bn} statistics",
    )
    return table, [out / "probe.csv", figure]


def format_flagged(table: pd.DataFrame) -> str:
    """Returns one line per layer whose rank falls most: name, normalized flag measure, drop, the layer capping it."""
    measure = table.attrs.get("flag_measure", DEFAULT_FLAG_MEASURE)
    lines = []
    for _, r in table[table["falls"]].iterrows():
        cap = f", limited by {r['limited_by']}" if r["limited_by"] else ""
        lines.append(
            f"  {r['name']} ({r['type']}, {r['channels']} ch): {measure}/C = "
            f"{r['normalized_' + measure]:.3f}, drop {r['drop']:.3f}{cap}"
        )
    return "\n".join(lines) if lines else "  no layer's rank falls by more than the threshold"
