"""What a model's published weights expect: input size, crop, interpolation, normalisation, classes, and the files.

One `PretrainedCfg` per registered name (timm's `pretrained_cfg` fields, same values as timm's `rexnet_*`).
Models without published ImageNet weights (e.g. rexnet_050) get the same preprocessing and no files. The
ImageNet preprocessing is the one the official models were trained and evaluated with (the paper reports ImageNet at 224×224).

Files: the official release (Google Drive links in its README; the README names the 1.0× file
`rexnetv1_1.0x.pth`) and timm's Hugging Face copies (`timm/rexnet_100.nav_in1k`). No SHA-256 of these files
is published where this project could read it, so every `sha256` is None: `verify_file` then only checks
files whose hash is known (a cfg built with one, e.g. for weights you host yourself).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RexnetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsFile:
    """One published checkpoint: its file name, where it comes from, its layout and (when known) its SHA-256."""

    name: str
    source: str
    layout: str  # "official" or "timm"
    sha256: str | None = None


@dataclass(frozen=True)
class PretrainedCfg:
    """Preprocessing and weights of one model, with timm's field names."""

    num_classes: int = 1000
    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875  # evaluation: resize the short side to size / crop_pct, centre-crop size
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    first_conv: str = "features.0"
    classifier: str = "output.1"
    files: tuple[WeightsFile, ...] = field(default_factory=tuple)
    tag: str = ""  # timm's weight tag: 'nav_in1k' in rexnet_100.nav_in1k
    license: str = "mit"
    test_input_size: tuple[int, int, int] | None = None
    test_crop_pct: float | None = None


def cfg_dict(cfg: PretrainedCfg, arch: Any = None) -> dict[str, Any]:
    """Returns the cfg as timm's `pretrained_cfg` dict for a model built from `arch` (an ArchSpec, or None).

    `input_size` carries the model's input channels and `pool_size` the map forward_features returns at that
    size (input / total stride), as timm's `resolve_data_config` and its model tests read them.
    """
    in_chans = cfg.input_size[0] if arch is None else arch.in_chans
    stride = 32 if arch is None else arch.strides[-1]
    height, width = cfg.input_size[1:]
    hub = next((f.source.removeprefix("hf-hub:") for f in cfg.files if f.layout == "timm"), None)
    out = {
        "architecture": None if arch is None else arch.name,
        "tag": cfg.tag,
        "url": next((f.source for f in cfg.files if f.layout == "official"), ""),
        "hf_hub_id": hub,
        "num_classes": cfg.num_classes,
        "input_size": (in_chans, height, width),
        "pool_size": (math.ceil(height / stride), math.ceil(width / stride)),
        "crop_pct": cfg.crop_pct,
        "interpolation": cfg.interpolation,
        "mean": cfg.mean,
        "std": cfg.std,
        "first_conv": cfg.first_conv,
        "classifier": cfg.classifier,
        "license": cfg.license,
    }
    if cfg.test_input_size is not None:
        out["test_input_size"] = cfg.test_input_size
    if cfg.test_crop_pct is not None:
        out["test_crop_pct"] = cfg.test_crop_pct
    return out


# Official release links (its README, "ImageNet classification results").
_OFFICIAL_DRIVE = {
    1.0: "https://drive.google.com/file/d/1xeIJ3wb83uOowU008ykYj6wDX2dsncA9",
    1.3: "https://drive.google.com/file/d/1x2ziK9Oyv66Y9NsxJxXsdjzpQF2uSJj0",
    1.5: "https://drive.google.com/file/d/1TOBGsbDhTHWBgqcRnyKIR0tHsJTOPUIG",
    2.0: "https://drive.google.com/file/d/1R1aOTKIe1Mvck86NanqcjWnlR8DY-Z4C",
    3.0: "https://drive.google.com/file/d/1chOnQPKtE1LaLz6WzSdzH55x6VlZ29sQ",
}
_OFFICIAL_NAMES = {1.0: "rexnetv1_1.0x.pth"}  # the only file name the README states
_TIMM_WIDTHS = (1.0, 1.3, 1.5, 2.0, 3.0)  # timm's rexnet_*.nav_in1k (the official weights, re-hosted)


def v1_cfg(width: float, tag: str | None = None) -> PretrainedCfg:
    """Returns the cfg of ReXNet-V1 at a width: ImageNet preprocessing, plus the files published for it.

    The published widths have one tag, timm's 'nav_in1k' (the official weights); other widths have none.
    """
    _check_tag(f"rexnet_{round(width * 100):03d}", tag, ("nav_in1k",) if width in _TIMM_WIDTHS else ())
    files = []
    if width in _OFFICIAL_DRIVE:
        files.append(
            WeightsFile(_OFFICIAL_NAMES.get(width, f"official ReXNet_{width}"), _OFFICIAL_DRIVE[width], "official")
        )
    if width in _TIMM_WIDTHS:
        name = f"rexnet_{round(width * 100):03d}.nav_in1k"
        files.append(WeightsFile(name, f"hf-hub:timm/{name}", "timm"))
    return PretrainedCfg(files=tuple(files), tag="nav_in1k" if width in _TIMM_WIDTHS else "")


# timm's rexnetr_* tags: 1.0-1.5× 'untrained' (no weights); 2.0× and 3.0× ImageNet-12k (11,821 classes) and
# its ImageNet-1k fine-tune, trained at crop 0.95 and tested at 288 px (apache-2.0, as timm lists them).
_REXNETR_TAGS = {1.0: ("untrained",), 1.3: ("untrained",), 1.5: ("untrained",)}
_REXNETR_TAGS |= {w: ("sw_in12k_ft_in1k", "sw_in12k") for w in (2.0, 3.0)}


def rexnetr_cfg(width: float, tag: str | None = None) -> PretrainedCfg:
    """Returns the cfg of timm's rexnetr_* at a width and tag (default: the first, as timm orders them)."""
    base = f"rexnetr_{round(width * 100):03d}"
    tags = _REXNETR_TAGS.get(width, ())
    tag = _check_tag(base, tag, tags)
    if tag in ("", "untrained"):
        return PretrainedCfg(tag=tag)
    name = f"{base}.{tag}"
    return PretrainedCfg(
        num_classes=11821 if tag == "sw_in12k" else 1000,
        crop_pct=0.95,
        files=(WeightsFile(name, f"hf-hub:timm/{name}", "timm"),),
        tag=tag,
        license="apache-2.0",
        test_input_size=(3, 288, 288),
        test_crop_pct=1.0,
    )


def lite_cfg(width: float, tag: str | None = None) -> PretrainedCfg:
    """Returns the cfg of ReXNet-lite: ImageNet preprocessing; its classifier is output.4 (after the MLP head)."""
    _check_tag(f"rexnet_lite_{round(width * 100):03d}", tag, ())
    return PretrainedCfg(classifier="output.4")


def plain_cfg(width: float, tag: str | None = None) -> PretrainedCfg:
    """Returns the default cfg (ImageNet preprocessing, no files) of a family without published weights."""
    _check_tag(f"mobilenetv2_{round(width * 100):03d}", tag, ())
    return PretrainedCfg()


def _check_tag(name: str, tag: str | None, tags: tuple[str, ...]) -> str:
    """Returns the tag to use (the given one, else the first known, else ''); RexnetError for an unknown one."""
    if tag is None or tag == "":
        return tags[0] if tags else ""
    if tag not in tags:
        known = f"its tags are {', '.join(f'{name}.{t}' for t in tags)}" if tags else "it has no tags"
        raise RexnetError(f"unknown tag {name}.{tag}: {known}; or use {name} alone")
    return tag


def weights_dirs() -> list[Path]:
    """Returns the folders pretrained=True searches, in order: $REXNET_WEIGHTS, then torch.hub's checkpoint folder."""
    # torch.hub.get_dir() only reads $TORCH_HOME / the default; nothing is downloaded
    from torch.hub import get_dir  # noqa: PLC0415 - torch.hub is loaded only when weights are looked for

    dirs = [Path(os.environ["REXNET_WEIGHTS"])] if os.environ.get("REXNET_WEIGHTS") else []
    return [*dirs, Path(get_dir()) / "checkpoints"]


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


def find_weights(name: str, cfg: PretrainedCfg) -> Path:
    """Returns a local copy of one of the cfg's published files, for pretrained=True; RexnetError if there is none.

    Looked for: each file's name in `weights_dirs()`, and timm's files in the Hugging Face cache
    (models--timm--NAME.TAG/snapshots/*/model.safetensors or pytorch_model.bin). Nothing is downloaded.
    """
    if not cfg.files:
        raise RexnetError(
            f"{name} has no published weights; pass checkpoint=PATH (e.g. a file from `rexnet train`) "
            "or pretrained=False"
        )
    looked: list[str] = []
    for entry in cfg.files:
        for folder in weights_dirs():
            looked.append(str(folder))
            candidate = folder / entry.name
            for path in (candidate, candidate.with_name(entry.name + ".safetensors")):
                if path.is_file():
                    return path
        if entry.layout == "timm":
            repo = _hf_cache() / f"models--{entry.source.removeprefix('hf-hub:').replace('/', '--')}"
            looked.append(str(repo))
            for file in ("model.safetensors", "pytorch_model.bin"):
                hits = sorted(repo.glob(f"snapshots/*/{file}"))
                if hits:
                    return hits[-1]
    files = ", ".join(f"{f.name} ({f.source})" for f in cfg.files)
    raise RexnetError(
        f"pretrained=True: no local copy of {name}'s weights [{files}] in {', '.join(dict.fromkeys(looked))}; "
        "this package downloads nothing: put the file there (or set REXNET_WEIGHTS to its folder), "
        "or pass checkpoint=PATH"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, cfg: PretrainedCfg) -> WeightsFile | None:
    """Returns the cfg's file entry that `path` is (by file name) after checking its SHA-256, when one is known.

    A file the cfg does not list, or one listed without a hash, returns None (nothing to check against);
    a listed file whose SHA-256 (or hash prefix, as in timm's `name-1b4dddf4.pth` names) differs raises.
    """
    path = Path(path)
    entry = next((f for f in cfg.files if f.name == path.name), None)
    if entry is None or entry.sha256 is None or not path.is_file():
        return None
    actual = _sha256(path)
    if not actual.startswith(entry.sha256.lower()):
        raise RexnetError(
            f"checkpoint {path} has SHA-256 {actual[:16]}…, but {entry.name} from {entry.source} has "
            f"{entry.sha256[:16]}…; the file is corrupt or another file: download it again"
        )
    return entry
