"""Per-layer feature rank of any `nn.Module` on real inputs: where does a trained network's representation collapse?

The paper (ReXNet, §3) calls a layer whose output rank is far below its channel count a representational
bottleneck, and measures it on random networks (§3.2, Figs. 1–2); `probe` measures the same quantities on any
model. Forward hooks collect each probed module's output; a conv output (N, C, H, W) gives the feature matrix
F = C × (N·H·W) (channels × every image's positions), a linear output (N, C) gives C × N, a token output
(N, L, C) gives C × (N·L). When F has more than `max_columns` columns, a fixed random subset of columns is used,
chosen from the seed and the total column count only, so the table does not depend on the batch size.

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
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..errors import StudyError
from ..rank import DEFAULT_RTOLS, metric_columns, rank_metrics

DEFAULT_MAX_COLUMNS = 4096
DEFAULT_FLAG_MEASURE = "rank_rtol_1e-2"
# Modules that repeat their input in eval mode (or only reshape it): rows that would duplicate the one before.
SKIPPED_TYPES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                                              nn.Identity, nn.Flatten, nn.Unflatten)
_CHANNELS_FIRST_3D = (nn.Conv1d, nn.ConvTranspose1d, nn.BatchNorm1d, nn.InstanceNorm1d, nn.MaxPool1d, nn.AvgPool1d,
                      nn.AdaptiveAvgPool1d, nn.AdaptiveMaxPool1d)

LayerSelection = Sequence[str] | Callable[[str, nn.Module], bool] | None


def measure_names(rtols: tuple[float, ...] = DEFAULT_RTOLS) -> list[str]:
    """Returns the measures `probe` can report: the rank measures of `rankstudy.rank` and the nuclear norm."""
    return [c for c in metric_columns(rtols) if not c.startswith("normalized_") and c != "sigma_max"]


def _select_modules(model: nn.Module, layers: LayerSelection) -> list[tuple[str, nn.Module]]:
    named = [(name, m) for name, m in model.named_modules() if name]
    if layers is None:
        return [(n, m) for n, m in named if not list(m.children()) and not isinstance(m, SKIPPED_TYPES)]
    if callable(layers):
        return [(n, m) for n, m in named if layers(n, m)]
    if isinstance(layers, str):
        layers = [layers]
    by_name = dict(named)
    unknown = [n for n in layers if n not in by_name]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], list(by_name), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise StudyError(f"the model has no module {unknown[0]!r}{hint}; list names with model.named_modules()")
    return [(n, by_name[n]) for n in layers]


def _channels_dim(module: nn.Module, out: torch.Tensor) -> int:
    if out.dim() == 3 and not isinstance(module, _CHANNELS_FIRST_3D):
        return 2  # (N, tokens, C): transformers, nn.Linear on sequences
    return 1


@dataclass
class _Collector:
    """Gathers one module call's subsampled feature columns across batches."""

    name: str
    type: str
    shape: tuple[int, ...] = ()
    channels: int = 0
    positions: int = 0
    parts: list[torch.Tensor] = field(default_factory=list)


class _Probe:
    """Forward hooks that keep, for every call of every probed module, the chosen columns of its output."""

    def __init__(self, n_images: int, max_columns: int, seed: int):
        self.n_images, self.max_columns, self.seed = n_images, max_columns, seed
        self.collectors: dict[tuple[str, int], _Collector] = {}  # insertion order = execution order
        self.calls: dict[str, int] = {}
        self.start, self.batch = 0, 0  # index of the batch's first image, batch length
        self._chosen: dict[int, torch.Tensor] = {}

    def chosen(self, total: int) -> torch.Tensor:
        """Returns the sorted global column indices used out of `total` (all, or a seeded random subset)."""
        if total not in self._chosen:
            if total <= self.max_columns:
                self._chosen[total] = torch.arange(total)
            else:
                g = torch.Generator().manual_seed(self.seed)
                self._chosen[total] = torch.randperm(total, generator=g)[: self.max_columns].sort().values
        return self._chosen[total]

    def hook(self, name: str, module: nn.Module):
        def fn(mod, args, out):
            call = self.calls.get(name, 0)
            self.calls[name] = call + 1
            if not isinstance(out, torch.Tensor) or out.dim() < 2 or not out.is_floating_point() \
                    or len(out) != self.batch:  # not per-image features (e.g. a sequence-first layout)
                return
            key = (name, call)
            label = name if call == 0 else f"{name}#{call + 1}"
            c = self.collectors.setdefault(key, _Collector(label, type(module).__name__))
            cdim = _channels_dim(module, out)
            x = out.detach().movedim(cdim, 1)
            b, ch = x.shape[:2]
            x = x.reshape(b, ch, -1)
            positions = x.shape[2]
            # Global column j = image · positions + position: the same columns whatever the batching.
            idx = self.chosen(self.n_images * positions)
            lo, hi = self.start * positions, (self.start + b) * positions
            local = idx[(idx >= lo) & (idx < hi)].to(x.device) - lo
            # Copy now: in-place activations and residual adds later overwrite this output.
            c.parts.append(x[local // positions, :, local % positions].T.to("cpu", torch.float32))
            c.shape, c.channels, c.positions = (self.n_images, *out.shape[1:]), ch, positions
        return fn


def probe(model: nn.Module, inputs: torch.Tensor, layers: LayerSelection = None, *,
          measures: Sequence[str] | None = None, rtols: tuple[float, ...] = DEFAULT_RTOLS,
          max_columns: int = DEFAULT_MAX_COLUMNS, batch_size: int = 256, seed: int = 0,
          flag_measure: str = DEFAULT_FLAG_MEASURE, n_flagged: int = 3, min_drop: float = 0.25,
          progress: bool = False) -> pd.DataFrame:
    """Returns one row per probed module call (execution order): its feature rank measures, normalized by channels.

    `inputs` is one tensor (N, …) fed in batches of `batch_size`; `layers` is None (every leaf module but
    dropout/identity/flatten), a list of module names, or a predicate (name, module) → bool. Columns: name,
    type, output_shape, channels, positions (per image), columns (used), capped, each measure of `measures`
    (default all of `measure_names(rtols)`) and its `normalized_` version, drop, falls, limited_by, caps,
    flagged (see the module docstring); the flag measure is in `table.attrs["flag_measure"]`.
    The model runs in eval mode without gradients; its modes are restored and its weights are untouched,
    and the hooks are removed, also when the forward pass fails.
    """
    available = measure_names(rtols)
    measures = list(measures) if measures is not None else available
    bad = [m for m in measures + [flag_measure] if m not in available]
    if bad:
        raise StudyError(f"unknown measure {bad[0]!r}; choose from {', '.join(available)}")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or len(inputs) == 0:
        raise StudyError("inputs must be a non-empty tensor (N, ...) of model inputs")
    if max_columns < 1 or batch_size < 1:
        raise StudyError(f"max_columns ({max_columns}) and batch_size ({batch_size}) must be positive")
    modules = _select_modules(model, layers)
    if not modules:
        raise StudyError("no module to probe; pass layers=None (every leaf) or names from model.named_modules()")

    param = next(model.parameters(), None)
    device = param.device if param is not None else inputs.device
    modes = {m: m.training for m in model.modules()}
    state = _Probe(len(inputs), max_columns, seed)
    handles = [m.register_forward_hook(state.hook(n, m)) for n, m in modules]
    try:
        model.eval()
        starts = range(0, len(inputs), batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="probe", unit="batch")
        with torch.no_grad():
            for start in starts:
                batch = inputs[start:start + batch_size]
                state.start, state.batch = start, len(batch)
                state.calls.clear()
                model(batch.to(device))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    if not state.collectors:
        raise StudyError("none of the probed modules returned a feature tensor; choose other layers")
    return _table(list(state.collectors.values()), measures, rtols, flag_measure, n_flagged, min_drop)


def _table(collectors: list[_Collector], measures: list[str], rtols: tuple[float, ...], flag_measure: str,
           n_flagged: int, min_drop: float) -> pd.DataFrame:
    rows = []
    for c in collectors:
        features = torch.cat(c.parts, dim=1)
        metrics = {k: v.item() for k, v in rank_metrics(features, rtols).items()}
        metrics["normalized_nuclear_norm"] = (metrics["nuclear_norm"] / (metrics["sigma_max"] * c.channels)
                                              if metrics["sigma_max"] > 0 else 0.0)
        row = {"name": c.name, "type": c.type, "output_shape": "x".join(map(str, c.shape)),
               "channels": c.channels, "positions": c.positions, "columns": features.shape[1],
               "capped": features.shape[1] < c.channels}
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


# --- the command line's model, data and outputs ------------------------------------------------------------

DATA_CHOICES = ("fashion-mnist", "imagefolder:PATH", "random")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to probe, with the input it expects."""

    model: nn.Module
    in_chans: int
    img_size: int | None  # None: not known from the model (the data decides)
    description: str


def _first_conv_channels(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else 3


def _load_state_dict(model: nn.Module, checkpoint: str | os.PathLike, what: str) -> None:
    """Loads a plain (or wrapped) state_dict file into `model` strictly, read with weights_only=True."""
    try:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StudyError(f"checkpoint {checkpoint} not found; check --checkpoint") from None
    except Exception as e:  # unpickling refused, not a torch file, truncated
        raise StudyError(f"{checkpoint} is not a loadable weights file ({type(e).__name__}); "
                         "pass a state_dict saved with torch.save") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise StudyError(f"{checkpoint} holds no state_dict; pass a state_dict saved with torch.save")
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise StudyError(f"{checkpoint} does not fit {what} ({detail[:160]}); check --model") from None


def load_model(spec: str | None, checkpoint: str | os.PathLike | None = None, *, in_chans: int = 3,
               num_classes: int | None = None) -> LoadedModel:
    """Returns the model a `--model` value names (rexnet name or block table, timm:NAME, torchvision:NAME).

    A checkpoint written by `rexnet train` rebuilds its own network (block table, small-input stem stride,
    input channels, image size, as `rexnet.evaluate.load_for_eval` does); `spec` may then be omitted. timm and
    torchvision models are built with random weights (pretrained=False / weights=None), then loaded from
    `checkpoint` if given. Raises StudyError for unknown names and checkpoints that do not fit.
    """
    from rexnet.errors import RexnetError

    try:
        if spec is not None and spec.startswith("timm:"):
            import timm

            name = spec.removeprefix("timm:")
            if not timm.is_model(name):
                raise StudyError(f"unknown timm model {name!r}; list names with timm.list_models()")
            kwargs = {"num_classes": num_classes} if num_classes else {}
            model = timm.create_model(name, pretrained=False, in_chans=in_chans, **kwargs)
            if checkpoint is not None:
                _load_state_dict(model, checkpoint, spec)
            return LoadedModel(model, in_chans, None, spec)
        if spec is not None and spec.startswith("torchvision:"):
            import torchvision

            name = spec.removeprefix("torchvision:")
            if name not in torchvision.models.list_models():
                raise StudyError(f"unknown torchvision model {name!r}; list names with "
                                 "torchvision.models.list_models()")
            kwargs = {"num_classes": num_classes} if num_classes else {}
            model = torchvision.models.get_model(name, weights=None, **kwargs)
            if checkpoint is not None:
                _load_state_dict(model, checkpoint, spec)
            return LoadedModel(model, _first_conv_channels(model), None, spec)
        return _load_rexnet(spec, checkpoint, in_chans, num_classes)
    except RexnetError as e:
        raise StudyError(str(e)) from None


def _load_rexnet(spec: str | None, checkpoint, in_chans: int, num_classes: int | None) -> LoadedModel:
    from rexnet.arch import arch_from_dict, arch_to_dict
    from rexnet.model import ReXNet
    from rexnet.checkpoint import load_checkpoint, read_checkpoint
    from rexnet.registry import create_model
    from rexnet.training.train import resolve_arch

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise StudyError(f"checkpoint {checkpoint} not found; check --checkpoint")
    ckpt = read_checkpoint(checkpoint) if checkpoint is not None else None
    meta = ckpt.metadata if ckpt is not None else {}
    if ckpt is not None and ckpt.layout == "rexnet" and ckpt.arch is not None and "in_chans" in meta:
        # A `rexnet train` run: rebuild exactly what it trained (as rexnet.evaluate.load_for_eval does).
        arch = arch_from_dict(ckpt.arch, source=f"checkpoint {checkpoint}")
        config = meta.get("config", {})
        if spec is not None:
            wanted = resolve_arch(spec, config.get("small_input", "off"), config.get("dropout"))
            if arch_to_dict(wanted) != arch_to_dict(arch):
                raise StudyError(f"{checkpoint} holds {arch.name}, not {wanted.name}; use --model "
                                 f"{config.get('model', arch.name)} or leave --model out")
        model = ReXNet(arch, num_classes=ckpt.num_classes or len(meta.get("classes", [])) or 1000,
                       in_chans=meta["in_chans"], stem_stride=meta.get("stem_stride", 2))
        load_checkpoint(model, checkpoint)
        return LoadedModel(model, meta["in_chans"], meta.get("img_size"), f"{config.get('model', arch.name)} "
                           f"({checkpoint})")
    if spec is None:
        raise StudyError("give --model (a rexnet name, block-table .json, timm:NAME or torchvision:NAME)"
                         + (f"; {checkpoint} was not written by `rexnet train`" if checkpoint else ""))
    arch = resolve_arch(spec)
    if num_classes is None:
        num_classes = ckpt.num_classes if ckpt is not None and ckpt.num_classes else 1000
    model = create_model(arch, num_classes=num_classes, in_chans=in_chans)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return LoadedModel(model, in_chans, None, spec)


def load_images(data: str, n_images: int, *, in_chans: int, img_size: int | None = None,
                data_root: str | os.PathLike = "data", seed: int = 0) -> torch.Tensor:
    """Returns `n_images` input images (N, in_chans, S, S): a seeded random subset of the test set, or noise.

    `data`: fashion-mnist (test set, padded to 32 px unless `img_size` says otherwise), imagefolder:PATH
    (PATH/val or PATH/test or PATH itself, one folder per class) or random (standard normal). Grayscale
    data is repeated to 3 channels for 3-channel models. Raises StudyError when the data is not there.
    """
    from rexnet.errors import RexnetError

    if n_images < 1:
        raise StudyError(f"--n-images {n_images}: give at least 1")
    g = torch.Generator().manual_seed(seed)
    name, _, arg = data.partition(":")
    if name == "random" and not arg:
        size = img_size or 224
        return torch.randn(n_images, in_chans, size, size, generator=g)
    try:
        if name == "fashion-mnist" and not arg:
            from rexnet.training.data import load_data

            dataset = load_data("fashion-mnist", data_root, img_size=img_size or 32).test
        elif name == "imagefolder" and arg:
            dataset = _image_folder(Path(arg), img_size or 224)
        else:
            raise StudyError(f"unknown --data {data!r}; use one of {', '.join(DATA_CHOICES)}")
    except RexnetError as e:
        raise StudyError(str(e)) from None
    if len(dataset) < n_images:
        raise StudyError(f"--data {data} has {len(dataset)} images, fewer than --n-images {n_images}; lower it")
    order = torch.randperm(len(dataset), generator=g)[:n_images].sort().values
    images = torch.stack([dataset[int(i)][0] for i in order])
    if images.shape[1] == 1 and in_chans == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    if images.shape[1] != in_chans:
        raise StudyError(f"--data {data} has {images.shape[1]}-channel images, the model takes {in_chans}; "
                         "choose matching data or model")
    return images


def _image_folder(path: Path, img_size: int):
    from torchvision import datasets

    from rexnet.training.data import build_transforms

    root = next((path / d for d in ("val", "test") if (path / d).is_dir()), path)
    if not root.is_dir():
        raise StudyError(f"image folder {path} does not exist; give imagefolder:PATH with one folder per class")
    try:
        return datasets.ImageFolder(str(root), transform=build_transforms("imagefolder", img_size, train=False))
    except (FileNotFoundError, OSError):
        raise StudyError(f"image folder {root} holds no class folders of images (.jpg, .png, …); put the images "
                         "in one folder per class") from None


def plot_probe(tables: dict[str, pd.DataFrame], path: str | os.PathLike, *,
               measures: Sequence[str] = ("rank", DEFAULT_FLAG_MEASURE), relative: bool = False,
               title: str = "") -> Path:
    """Returns `path` after drawing normalized rank through depth, one panel per measure, one line per table.

    Capped layers (fewer columns than channels) are left out. Flagged layers (the largest drops and the layers
    that cap them) are marked and named; x is the layer index, or relative depth in [0, 1]
    when `relative` (to compare networks of different depth). Written atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..store import atomic_path

    fig, axes = plt.subplots(1, len(measures), figsize=(6.5 * len(measures), 4.2), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for i, (label, table) in enumerate(tables.items()):
            col = "normalized_" + measure
            if col not in table:
                raise StudyError(f"the table has no {measure}; probe it with that measure")
            depth = pd.Series(range(len(table)), dtype=float)
            x = depth / max(1, len(table) - 1) if relative else depth
            ax.plot(x, table[col].where(~table["capped"]), color=f"C{i}", lw=1, alpha=0.85, label=label)
            if not relative and measure == table.attrs.get("flag_measure"):
                flagged = table[table["flagged"]]
                ax.scatter(x[flagged.index], flagged[col], color="red", zorder=3, s=25,
                           label="largest drops, their caps")
                for j, r in flagged.iterrows():
                    ax.annotate(r["name"], (x[j], r[col]), fontsize=7, rotation=20, xytext=(3, -10),
                                textcoords="offset points")
        ax.set(xlabel="relative depth" if relative else "layer (execution order)", ylabel=f"{measure} / channels",
               ylim=(0, 1.05), title=measure)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def _check_writable(out: Path) -> None:
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise StudyError(f"cannot write to --out {out}; choose a writable directory")


def run_probe(model: str | None, checkpoint: str | None, data: str, n_images: int, out: str | os.PathLike, *,
              data_root: str | os.PathLike = "data", img_size: int | None = None, num_classes: int | None = None,
              layers: LayerSelection = None, max_columns: int = DEFAULT_MAX_COLUMNS, batch_size: int = 256,
              seed: int = 0, flag_measure: str = DEFAULT_FLAG_MEASURE, device: str = "cpu",
              progress: bool = True) -> tuple[pd.DataFrame, list[Path]]:
    """Returns (table, files written): probe.csv and probe.png in `out`, for the `rankstudy probe` command.

    Nothing is written unless the model, checkpoint and data all load and the probe succeeds.
    """
    out = Path(out)
    _check_writable(out)
    in_chans = 1 if data == "fashion-mnist" else 3
    loaded = load_model(model, checkpoint, in_chans=in_chans, num_classes=num_classes)
    images = load_images(data, n_images, in_chans=loaded.in_chans, img_size=img_size or loaded.img_size,
                         data_root=data_root, seed=seed)
    if device != "cpu" and not torch.cuda.is_available():
        raise StudyError(f"--device {device} but no CUDA GPU is visible; use --device cpu")
    table = probe(loaded.model.to(device), images, layers, max_columns=max_columns, batch_size=batch_size,
                  seed=seed, flag_measure=flag_measure, progress=progress)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot write to --out {out} ({e.strerror}); choose a writable directory") from None
    from ..store import atomic_path

    with atomic_path(out / "probe.csv") as tmp:
        table.to_csv(tmp, index=False)
    figure = plot_probe({loaded.description: table}, out / "probe.png", measures=("rank", flag_measure),
                        title=f"{loaded.description}: {data}, {n_images} images")
    return table, [out / "probe.csv", figure]


def format_flagged(table: pd.DataFrame) -> str:
    """Returns one line per layer whose rank falls most: name, normalized flag measure, drop, the layer capping it."""
    measure = table.attrs.get("flag_measure", DEFAULT_FLAG_MEASURE)
    lines = []
    for _, r in table[table["falls"]].iterrows():
        cap = f", limited by {r['limited_by']}" if r["limited_by"] else ""
        lines.append(f"  {r['name']} ({r['type']}, {r['channels']} ch): {measure}/C = "
                     f"{r['normalized_' + measure]:.3f}, drop {r['drop']:.3f}{cap}")
    return "\n".join(lines) if lines else "  no layer's rank falls by more than the threshold"
