"""The probe's input images (`rankstudy probe --data`): a seeded random subset of a test set, or noise."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rexnet.errors import RexnetError
from rexnet.training.data import build_transforms, image_folder, load_data

from ..errors import StudyError

DATA_CHOICES = ("fashion-mnist", "imagefolder:PATH", "random")


def load_images(
    data: str,
    n_images: int,
    *,
    in_chans: int,
    img_size: int | None = None,
    data_root: str | os.PathLike = "data",
    seed: int = 0,
) -> torch.Tensor:
    """Returns `n_images` input images (N, in_chans, S, S): a seeded random subset of the test set, or noise.

    `data`: fashion-mnist (test set, padded to 32 px unless `img_size` says otherwise), imagefolder:PATH
    (PATH/val or PATH/test or PATH itself, one folder per class) or random (standard normal). Grayscale
    data is repeated to 3 channels for 3-channel models. Raises StudyError when the data is not there.
    """
    if n_images < 1:
        raise StudyError(f"--n-images {n_images}: give at least 1")
    g = torch.Generator().manual_seed(seed)
    name, _, arg = data.partition(":")
    if name == "random" and not arg:
        size = img_size or 224
        return torch.randn(n_images, in_chans, size, size, generator=g)
    try:
        if name == "fashion-mnist" and not arg:
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
    try:
        images = torch.stack([dataset[int(i)][0] for i in order])
    except RexnetError as e:  # an image that cannot be read
        raise StudyError(str(e)) from None
    if images.shape[1] == 1 and in_chans == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    if images.shape[1] != in_chans:
        raise StudyError(
            f"--data {data} has {images.shape[1]}-channel images, the model takes {in_chans}; "
            "choose matching data or model"
        )
    return images


def _image_folder(path: Path, img_size: int):
    """Returns the test images of an image folder (PATH/val, PATH/test or PATH; one folder per class) as a
    torchvision ImageFolder, resized as `rexnet train` tests; StudyError when there is none."""
    root = next((path / d for d in ("val", "test") if (path / d).is_dir()), path)
    if not root.is_dir():
        raise StudyError(f"image folder {path} does not exist; give imagefolder:PATH with one folder per class")
    try:
        return image_folder(root, build_transforms("imagefolder", img_size, train=False))
    except (FileNotFoundError, OSError):
        raise StudyError(
            f"image folder {root} holds no class folders of images (.jpg, .png, …); put the images "
            "in one folder per class"
        ) from None
