"""Tiny networks and data for the training/evaluation tests: a 3-block table and 16×16 fake images."""

from __future__ import annotations

from dataclasses import replace

from rexnet import ArchSpec, BlockSpec
from rexnet.training.data import load_data
from rexnet.training.train import TrainConfig

TINY = ArchSpec(
    name="tiny",
    stem_channels=8,
    blocks=(
        BlockSpec(8, 8, 1, 1, False),
        BlockSpec(8, 16, 2, 2, True),
        BlockSpec(16, 16, 2, 1, False),
    ),
    penultimate_channels=24,
    se_reduction=4,
)


def tiny_data(train: int = 64, test: int = 32):
    """Returns a DataSpec of FakeData 16×16 RGB images (10 random classes) with the real train transforms."""
    return load_data("fake", img_size=16, train_limit=train, test_limit=test)


def tiny_config(out, arch_path, **changes) -> TrainConfig:
    """Returns a TrainConfig for the tiny table on fake data: 2 epochs of 4 steps, EMA on, progress bar off."""
    cfg = TrainConfig(
        model=str(arch_path),
        data="fake",
        out=str(out),
        epochs=2,
        batch_size=16,
        lr=0.05,
        warmup_epochs=0.5,
        img_size=16,
        train_limit=64,
        test_limit=32,
        ema_decay=0.9,
        seed=3,
        device="cpu",
        progress=False,
    )
    return replace(cfg, **changes)
