"""Structured input distributions of the rank study: correlated channels and real image patches.

The paper (§3, Figure 1) does not state its input distribution; real layers see inputs that are
correlated across channels and space, non-negative after a ReLU, and heavy-tailed. Besides iid draws
(`gaussian`, `uniform`, `halfnormal`, in `rankstudy.networks`), the study can draw:

- `correlated`: low rank plus noise. X = √0.9 · A Z + √0.1 · E with A (d_in × k, k = ⌈d_in/8⌉) random
  loadings whose rows have unit norm, Z (k × N) and E (d_in × N) iid N(0, 1): every channel has unit
  variance, 90 % of it in k shared factors. X is still full rank, but its spectrum falls by ~10× after
  the first k directions, like the features of a trained layer.
- `fmnist`: patches of real Fashion-MNIST training images, standardised by the set's pixel mean and std.
  Channel j of a sample is the image shifted by (j // k, j % k) inside a k × k window (k = ⌈√d_in⌉), so
  a sample is a d_in-channel "space-to-depth" view of one image: for the linear kind (1 × 1 maps) it is
  the first d_in pixels of one k × k patch; for the conv kinds each of the S × S positions is one more
  such patch. Images and crop positions come from the row's generator, so rows stay reproducible.

The images are read (once per process) from the folder in $RANKSTUDY_FASHION_MNIST, else from Debian's
dataset-fashion-mnist, else from data/FashionMNIST/raw: `train-images-idx3-ubyte` (gzipped or not).
"""

import functools
import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import StudyError

IMAGES_ENV = "RANKSTUDY_FASHION_MNIST"
IMAGE_FILE = "train-images-idx3-ubyte"
IMAGE_SIZE = 28
SIGNAL = 0.9  # share of each channel's variance in the shared factors (`correlated`)
FACTOR_EVERY = 8  # one shared factor per 8 channels


def _candidates() -> list[Path]:
    from rexnet.training.data import DEBIAN_DIR  # noqa: PLC0415 - rexnet.training loads torchvision (~1 s a worker)

    env = os.environ.get(IMAGES_ENV)
    return [Path(env)] if env else [DEBIAN_DIR, Path("data/FashionMNIST/raw")]


def images_file() -> Path:
    """Returns the Fashion-MNIST training-image idx file the `fmnist` inputs read, or raises StudyError."""
    for folder in _candidates():
        for name in (IMAGE_FILE, IMAGE_FILE + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise StudyError(
        f"input distribution fmnist needs {IMAGE_FILE}[.gz] in {', '.join(map(str, _candidates()))}; "
        f"install dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or set "
        f"{IMAGES_ENV}=DIR holding it"
    )


@functools.lru_cache(maxsize=2)
def _load(path: str) -> tuple[torch.Tensor, float, float]:
    raw = gzip.decompress(Path(path).read_bytes()) if path.endswith(".gz") else Path(path).read_bytes()
    if len(raw) < 16 or raw[:4] != bytes([0, 0, 8, 3]):
        raise StudyError(f"{path} is not an idx image file; point {IMAGES_ENV} at Fashion-MNIST's raw files")
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    if (h, w) != (IMAGE_SIZE, IMAGE_SIZE) or len(raw) != 16 + n * h * w or n < 1:
        raise StudyError(f"{path} does not hold 28×28 images (truncated or another set); replace it")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)
    # Mean and std (Bessel-corrected) of the float32 pixel values v/255, exactly, from the 256-bin histogram:
    # each worker process loads the set, and converting all 47M pixels to float took ~1 s of it.
    counts = np.bincount(pixels.ravel(), minlength=256).astype(np.float64)
    values = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64)
    total = counts.sum()
    mean = math.fsum(counts * values) / total
    std = math.sqrt(math.fsum(counts * (values - mean) ** 2) / max(total - 1, 1))
    return torch.from_numpy(pixels.copy()), mean, std


def fashion_mnist_images() -> tuple[torch.Tensor, float, float]:
    """Returns (images (n, 28, 28) as uint8 pixels, mean, std of the pixel values v/255) of the training set."""
    return _load(str(images_file()))


def max_patch_d_in(spatial: int) -> int:
    """Returns the largest d_in whose `fmnist` patches (k = ⌈√d_in⌉) fit a 28×28 image with S×S maps."""
    k = IMAGE_SIZE - spatial + 1
    return k * k


def draw_correlated(gen: torch.Generator, d_in: int, n: int) -> torch.Tensor:
    """Returns a (d_in, n) low-rank-plus-noise input with unit-variance channels (module docstring)."""
    k = max(1, math.ceil(d_in / FACTOR_EVERY))
    loadings = torch.randn((d_in, k), generator=gen)
    loadings = loadings / loadings.norm(dim=1, keepdim=True).clamp_min(1e-12)
    factors = torch.randn((k, n), generator=gen)
    noise = torch.randn((d_in, n), generator=gen)
    return math.sqrt(SIGNAL) * (loadings @ factors) + math.sqrt(1 - SIGNAL) * noise


def draw_patches(gen: torch.Generator, d_in: int, n: int, spatial: int) -> torch.Tensor:
    """Returns a (d_in, n) input of standardised Fashion-MNIST patches (module docstring), n = n_img·S·S."""
    images, mean, std = fashion_mnist_images()
    k = math.ceil(math.sqrt(d_in))
    crop = spatial + k - 1
    if crop > IMAGE_SIZE:
        raise StudyError(
            f"fmnist inputs with d_in {d_in} and {spatial}×{spatial} maps need {crop}-pixel crops; "
            f"use d_in ≤ {max_patch_d_in(spatial)} or smaller maps"
        )
    n_img = n // (spatial * spatial)
    idx = torch.randint(0, images.shape[0], (n_img,), generator=gen)
    oy, ox = (torch.randint(0, IMAGE_SIZE - crop + 1, (n_img,), generator=gen) for _ in range(2))
    window = torch.arange(crop)
    crops = images[idx[:, None, None], (oy[:, None] + window)[:, :, None], (ox[:, None] + window)[:, None, :]]
    crops = crops.to(torch.float32) / 255.0
    # (n_img, k, k, S, S): window offset (dy, dx), then position (y, x) inside the S × S map.
    views = crops.unfold(1, spatial, 1).unfold(2, spatial, 1).reshape(n_img, k * k, spatial, spatial)[:, :d_in]
    x = views.permute(1, 0, 2, 3).reshape(d_in, n)
    return (x - mean) / std
