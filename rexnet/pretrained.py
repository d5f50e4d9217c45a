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
import os
from dataclasses import dataclass, field
from pathlib import Path

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


def v1_cfg(width: float) -> PretrainedCfg:
    """Returns the cfg of ReXNet-V1 at a width: ImageNet preprocessing, plus the files published for it."""
    files = []
    if width in _OFFICIAL_DRIVE:
        files.append(
            WeightsFile(_OFFICIAL_NAMES.get(width, f"official ReXNet_{width}"), _OFFICIAL_DRIVE[width], "official")
        )
    if width in _TIMM_WIDTHS:
        name = f"rexnet_{round(width * 100):03d}.nav_in1k"
        files.append(WeightsFile(name, f"hf-hub:timm/{name}", "timm"))
    return PretrainedCfg(files=tuple(files))


def lite_cfg(width: float) -> PretrainedCfg:
    """Returns the cfg of ReXNet-lite: ImageNet preprocessing; its classifier is output.4 (after the MLP head)."""
    return PretrainedCfg(classifier="output.4")


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
