"""Datasets for training and evaluation: Fashion-MNIST preparation (verified, atomic) and train/test datasets.

`--data` names one of: `fashion-mnist`, `cifar10`, `cifar100`, `imagefolder:PATH` (PATH/train and PATH/val or
PATH/test, one folder per class) and `fake` (random images from torchvision's FakeData, for tests and smoke runs).

Fashion-MNIST is prepared in the layout torchvision's `FashionMNIST` reads: the four idx files, gunzipped, in
`<root>/FashionMNIST/raw/`. Sources, in order: files already there; Debian's `dataset-fashion-mnist` package
(`/usr/share/datasets/fashion-mnist/*.gz`); a directory or tarball given as `source`; torchvision's
download. Debian recompresses the `.gz` files, so their md5s differ from the ones torchvision publishes: the
check that matters is on the *gunzipped* bytes, whose md5s are listed below (they agree with the published
raw-file checksums and with the Debian files; torchvision's `.gz` md5s are still accepted for its downloads).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from ..errors import RexnetError
from ..io import atomic_path

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
logger = logging.getLogger("rexnet.training")

# Gunzipped file → (md5 of its bytes, number of items). The images files hold 28×28 uint8 images.
FASHION_MNIST_RAW: dict[str, tuple[str, int]] = {
    "train-images-idx3-ubyte": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", 60000),
    "train-labels-idx1-ubyte": ("9018921c3c673c538a1fc5bad174d6f9", 60000),
    "t10k-images-idx3-ubyte": ("8181f5470baa50b63fa0f6fddb340f0a", 10000),
    "t10k-labels-idx1-ubyte": ("15d484375f8d13e6eb1aabb0c3f46965", 10000),
}

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATA_NAMES = ("fashion-mnist", "cifar10", "cifar100", "imagefolder:PATH", "fake")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def idx_problem(path: Path, count: int) -> str | None:
    """Returns what is wrong with an idx file's header and size (None when it is well-formed with `count` items)."""
    if not path.is_file():
        return "missing"
    with open(path, "rb") as f:
        header = f.read(4)
        if len(header) < 4 or header[:2] != b"\0\0" or header[2] != 8 or header[3] not in (1, 3):
            return "not an idx file of uint8"
        dims = [int.from_bytes(f.read(4), "big") for _ in range(header[3])]
    if dims[0] != count:
        return f"holds {dims[0]} items, expected {count}"
    expected = 4 + 4 * len(dims) + int(torch.tensor(dims).prod())
    size = path.stat().st_size
    return None if size == expected else f"is {size} bytes, its header says {expected} (truncated or padded)"


def _raw_ok(path: Path, md5: str, count: int) -> bool:
    return idx_problem(path, count) is None and _md5(path) == md5


def _find_gz(source: Path, name: str) -> Callable[[], object] | None:
    """Returns an opener of `<name>.gz` (or of `name` itself) in a directory or tarball, if present."""
    if source.is_dir():
        for candidate in (source / f"{name}.gz", source / name):
            if candidate.is_file():
                return lambda c=candidate: open(c, "rb")
        return None
    if tarfile.is_tarfile(source):
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name in (f"{name}.gz", name)]
        if members:
            member = members[0]

            def opener():
                tar = tarfile.open(source)
                f = tar.extractfile(member)
                f._rexnet_tar = tar  # keep the archive open as long as the member is read
                return f

            return opener
    return None


def _copy_member(opener: Callable[[], object], gz: bool, target: Path) -> None:
    """Writes the (gunzipped) bytes of a source file to `target` (a temporary path the caller renames)."""
    with opener() as raw:
        src = gzip.GzipFile(fileobj=raw) if gz else raw
        with open(target, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)


def prepare_fashion_mnist(
    root: str | os.PathLike = "data",
    source: str | os.PathLike | None = None,
    *,
    raw_files: dict[str, tuple[str, int]] = FASHION_MNIST_RAW,
    download: bool = True,
) -> Path:
    """Returns `<root>/FashionMNIST/raw` once it holds the four verified, gunzipped idx files.

    A file already there and verified is kept (so a rerun is a no-op); a missing, partial or corrupt one
    is rewritten from the first source that has it. Each file is written to a temporary name, checked
    (idx header, size, md5) and only then renamed into place, so a failed run leaves nothing half-written.
    `raw_files` exists for tests (a small fake set with its own checksums).
    """
    raw_dir = Path(root) / "FashionMNIST" / "raw"
    todo = {name: spec for name, spec in raw_files.items() if not _raw_ok(raw_dir / name, *spec)}
    if not todo:
        return raw_dir
    announced = []

    def before_writing() -> None:
        # Writes go only into a root the user named: a missing root is created when its parent exists, and
        # one line says what is written where (on stderr through logging's last-resort handler in the CLIs).
        if announced:
            return
        announced.append(True)
        _make_root(Path(root))
        size = " (54 MB)" if raw_files is FASHION_MNIST_RAW else ""
        logger.warning("writing Fashion-MNIST%s to %s", size, raw_dir)

    sources = [Path(source)] if source is not None else [DEBIAN_DIR]
    if source is not None and not Path(source).exists():
        raise RexnetError(
            f"Fashion-MNIST source {source} does not exist; pass the folder or tarball holding the four idx .gz files"
        )
    for src in sources:
        if not src.exists():
            continue
        for name, (md5, count) in list(todo.items()):
            opener = _find_gz(src, name)
            if opener is None:
                continue
            target = raw_dir / name
            before_writing()
            with atomic_path(target) as checked:
                try:
                    _copy_member(opener, _is_gzip(opener), checked)
                except (OSError, EOFError, gzip.BadGzipFile, tarfile.TarError) as exc:
                    if isinstance(exc, OSError) and exc.errno is not None:  # disk full, permissions
                        raise RexnetError(
                            f"cannot write {target} ({exc.strerror}); free disk space or check "
                            "the folder's permissions, then rerun"
                        ) from None
                    raise RexnetError(
                        f"{name} in {src} is not a readable gzip file ({exc}); "
                        "the archive is truncated or corrupt: replace it"
                    ) from None
                problem = idx_problem(checked, count)
                if problem is None and _md5(checked) != md5:
                    problem = "has the wrong md5 checksum"
                if problem:
                    raise RexnetError(
                        f"{name} from {src} {problem}; the source is corrupt or not Fashion-MNIST: "
                        "replace it (e.g. reinstall dataset-fashion-mnist)"
                    )
            del todo[name]
    if todo and download:
        before_writing()
        _download(root)
        todo = {name: spec for name, spec in raw_files.items() if not _raw_ok(raw_dir / name, *spec)}
    if todo:
        raise RexnetError(
            f"Fashion-MNIST files {sorted(todo)} are not in {raw_dir}, {sources[0]} or downloadable; "
            "install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass "
            "--source DIR_OR_TARBALL"
        )
    return raw_dir


def _make_root(root: Path) -> None:
    """Creates a missing data root whose parent exists; RexnetError naming the path and the fix otherwise."""
    if root.is_dir():
        return
    if root.exists():
        raise RexnetError(f"data root {root} is not a folder; pass an existing folder as --data-root")
    parent = root.absolute().parent
    if not parent.is_dir():
        raise RexnetError(
            f"data root {root} does not exist and neither does {parent}; create it or pass an existing --data-root"
        )
    try:
        root.mkdir()
    except OSError as exc:
        raise RexnetError(
            f"cannot write {root} ({exc.strerror}); create it or pass a writable, existing --data-root"
        ) from None


def _is_gzip(opener: Callable[[], object]) -> bool:
    with opener() as f:
        return f.read(2) == b"\x1f\x8b"


def _download(root: str | os.PathLike) -> None:
    """Tries torchvision's own download (which checks the published .gz md5s); silent when offline."""
    from torchvision.datasets import FashionMNIST  # noqa: PLC0415 - torchvision costs ~2 s: loaded only to build data

    try:
        FashionMNIST(str(root), train=True, download=True)
    except Exception:  # no internet here is the normal case; the caller reports what is still missing
        pass


# --- datasets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """What a `--data` string resolves to: its datasets, class names, input channels and image size."""

    name: str
    train: Dataset
    test: Dataset
    classes: tuple[str, ...]
    in_chans: int
    img_size: int


_STATS = {  # per-channel mean/std of the training sets
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def build_transforms(
    name: str,
    img_size: int,
    *,
    train: bool,
    randaugment: bool = False,
    random_erasing: float = 0.0,
    hflip: bool | float = True,
    scale: tuple[float, float] = (0.08, 1.0),
    pretrained_cfg=None,
):
    """Returns the torchvision transform: train = random crop with padding (or resized crop), flip, [RandAugment],
    tensor, normalise, [random erasing]; test = resize/pad to img_size, tensor, normalise.

    A `pretrained_cfg` (rexnet.pretrained.PretrainedCfg) sets mean/std, interpolation and the test crop
    (resize to img_size / crop_pct, centre-crop) to those its weights expect.
    """
    from torchvision import transforms as T  # noqa: PLC0415 - torchvision costs ~2 s: loaded only to build data

    mean, std = _STATS.get(name, _STATS["imagenet"])
    resize_to, interpolation = int(img_size * 256 / 224), T.InterpolationMode.BILINEAR
    if pretrained_cfg is not None:
        mean, std = pretrained_cfg.mean, pretrained_cfg.std
        resize_to = math.floor(img_size / pretrained_cfg.crop_pct)
        interpolation = T.InterpolationMode(pretrained_cfg.interpolation)
    small = name in ("fashion-mnist", "cifar10", "cifar100", "fake")
    pre = []
    if name == "fashion-mnist" and img_size != 28:
        pre = [T.Pad((img_size - 28) // 2)] if img_size > 28 and (img_size - 28) % 2 == 0 else [T.Resize(img_size)]
    if train:
        ops = pre + (
            [T.RandomCrop(img_size, padding=img_size // 8)]
            if small
            else [T.RandomResizedCrop(img_size, scale=scale, interpolation=interpolation)]
        )
        p_flip = 0.5 if hflip is True else float(hflip)  # True: the usual 0.5; a float: that probability
        if p_flip > 0:
            ops.append(T.RandomHorizontalFlip(p_flip))
        if randaugment:
            ops.append(T.RandAugment(num_ops=2, magnitude=9))
    else:
        ops = pre if small else [T.Resize(resize_to, interpolation=interpolation), T.CenterCrop(img_size)]
    ops += [T.ToTensor(), T.Normalize(mean, std)]
    if train and random_erasing > 0:
        ops.append(T.RandomErasing(p=random_erasing))
    return T.Compose(ops)


def _subset(dataset: Dataset, limit: int | None, seed: int = 0) -> Dataset:
    """Returns a fixed random subset of `limit` items (the whole dataset when limit is None or large)."""
    if limit is None or limit >= len(dataset):
        return dataset
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, sorted(order[:limit].tolist()))


# An ImageFolder of at most this many images has every file's header read before training (milliseconds a file),
# so a broken image is one line before anything is written; larger ones fail on the broken file when it is read.
CHECK_IMAGES_UP_TO = 50_000


def _read_image(path: str):
    """Returns the RGB image at `path` (torchvision's loader); RexnetError naming the file if it cannot be read."""
    from PIL import Image  # noqa: PLC0415 - Pillow comes with torchvision, loaded only with it

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RexnetError(f"cannot read image {path} ({type(exc).__name__}); delete or replace that file") from None


def image_folder(root: str | os.PathLike, transform):
    """Returns a torchvision ImageFolder of `root` whose images are checked: every file's header up front (for at
    most CHECK_IMAGES_UP_TO images), every image when it is loaded; RexnetError naming a file that cannot be read."""
    from PIL import Image  # noqa: PLC0415 - Pillow comes with torchvision, loaded only with it
    from torchvision import datasets  # noqa: PLC0415 - torchvision costs ~2 s: loaded only to build data

    folder = datasets.ImageFolder(str(root), transform=transform, loader=_read_image)
    if len(folder.samples) <= CHECK_IMAGES_UP_TO:
        for path, _ in folder.samples:
            try:
                with Image.open(path) as img:
                    img.verify()
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                raise RexnetError(
                    f"cannot read image {path} ({type(exc).__name__}); delete or replace that file"
                ) from None
    return folder


def load_data(
    spec: str,
    root: str | os.PathLike = "data",
    *,
    img_size: int | None = None,
    randaugment: bool = False,
    random_erasing: float = 0.0,
    hflip: float = 0.5,
    scale: tuple[float, float] = (0.08, 1.0),
    train_limit: int | None = None,
    test_limit: int | None = None,
    pretrained_cfg=None,
) -> DataSpec:
    """Returns the train/test datasets (with transforms) a `--data` string names; RexnetError when unavailable.

    With a `pretrained_cfg`, ImageNet-like data (imagefolder) is prepared as its weights expect, at its input size
    unless `img_size` is given.
    """
    from torchvision import datasets  # noqa: PLC0415 - torchvision costs ~2 s: loaded only to build data

    name, _, arg = spec.partition(":")
    kinds = ("fashion-mnist", "cifar10", "cifar100", "imagefolder", "fake")
    if name not in kinds or (name == "imagefolder") != bool(arg):
        raise RexnetError(f"unknown dataset {spec!r}; use one of {', '.join(DATA_NAMES)}")
    default = pretrained_cfg.input_size[-1] if pretrained_cfg is not None else 224
    size = img_size or {"fashion-mnist": 32, "cifar10": 32, "cifar100": 32, "fake": 32}.get(name, default)
    cfg = pretrained_cfg if name == "imagefolder" else None  # the small datasets keep their own statistics

    def tf(train: bool):
        return build_transforms(
            name,
            size,
            train=train,
            randaugment=randaugment,
            random_erasing=random_erasing,
            hflip=hflip,
            scale=scale,
            pretrained_cfg=cfg,
        )

    root = Path(root)
    if name == "fashion-mnist":
        prepare_fashion_mnist(root)
        train = datasets.FashionMNIST(str(root), train=True, transform=tf(True))
        test = datasets.FashionMNIST(str(root), train=False, transform=tf(False))
        classes, chans = FASHION_MNIST_CLASSES, 1
    elif name in ("cifar10", "cifar100"):
        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        try:
            train = cls(str(root), train=True, transform=tf(True), download=True)
            test = cls(str(root), train=False, transform=tf(False), download=True)
        except Exception as exc:
            raise RexnetError(
                f"{name} is not in {root} and could not be downloaded ({type(exc).__name__}); "
                f"copy torchvision's {name} files into {root} or connect to the internet"
            ) from None
        classes, chans = tuple(train.classes), 3
    elif name == "imagefolder":
        path = Path(arg)
        test_dir = next((path / d for d in ("val", "test") if (path / d).is_dir()), None)
        if not (path / "train").is_dir() or test_dir is None:
            raise RexnetError(
                f"ImageFolder {path} needs train/ and val/ (or test/) subfolders, one folder per class; check the path"
            )
        try:
            train = image_folder(path / "train", tf(True))
            test = image_folder(test_dir, tf(False))
        except (FileNotFoundError, OSError) as exc:
            raise RexnetError(f"ImageFolder {path}: {exc}; put images in one folder per class") from None
        if train.classes != test.classes:
            raise RexnetError(
                f"ImageFolder {path}: train and {test_dir.name} have different classes; make the class folders match"
            )
        classes, chans = tuple(train.classes), 3
    else:  # fake: deterministic random images, random labels (each index seeds its own image)
        train = datasets.FakeData(256, (3, size, size), 10, transform=tf(True), random_offset=0)
        test = datasets.FakeData(64, (3, size, size), 10, transform=tf(False), random_offset=10_000)
        classes, chans = tuple(str(i) for i in range(10)), 3
    return DataSpec(name, _subset(train, train_limit), _subset(test, test_limit, seed=1), classes, chans, size)
