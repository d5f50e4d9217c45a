"""A small fake Fashion-MNIST (random idx files with their own checksums) for the data and experiment tests."""

import gzip
import hashlib
from pathlib import Path

import torch


def idx_bytes(kind: str, n: int, seed: int) -> bytes:
    """Returns an idx file: n random 28×28 uint8 images, or n labels 0, 1, …, 9, 0, …"""
    gen = torch.Generator().manual_seed(seed)
    if kind == "images":
        return (
            bytes([0, 0, 8, 3])
            + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28))
            + bytes(torch.randint(0, 256, (n * 28 * 28,), generator=gen, dtype=torch.uint8).tolist())
        )
    return bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(torch.arange(n).remainder(10).tolist())


def fake_set(counts: dict[str, int]) -> tuple[dict[str, bytes], dict[str, tuple[str, int]]]:
    """Returns ({raw name: bytes}, raw_files spec with their md5s and counts) for {"train": n, "t10k": m}."""
    raw, spec = {}, {}
    for split, n in counts.items():
        for kind, dim in (("images", 3), ("labels", 1)):
            name = f"{split}-{kind}-idx{dim}-ubyte"
            raw[name] = idx_bytes(kind, n, seed=len(name))
            spec[name] = (hashlib.md5(raw[name]).hexdigest(), n)
    return raw, spec


def write_gz_folder(folder: Path, raw: dict[str, bytes]) -> Path:
    """Returns `folder`, created and holding each raw file gzipped as <name>.gz (the Debian package's layout)."""
    folder.mkdir(parents=True)
    for name, data in raw.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    return folder
