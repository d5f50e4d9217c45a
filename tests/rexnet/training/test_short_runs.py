"""Training defaults that fit short runs: the warm-up scales with the run, and ImageFolder augmentation can be
told what the images allow (--hflip, --scale), so a 1-epoch run on easy images learns."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from rexnet.arch import save_arch
from rexnet.cli import main
from rexnet.training.data import build_transforms
from rexnet.training.train import TrainConfig, default_warmup_epochs, lr_at

from ..train_helpers import TINY


def test_default_warmup_is_at_most_a_tenth_of_the_run():
    assert TrainConfig().warmup_epochs is None
    assert default_warmup_epochs(1) == pytest.approx(0.1)
    assert default_warmup_epochs(5) == pytest.approx(0.5)
    assert default_warmup_epochs(90) == 1.0
    # a 1-epoch run of 100 steps reaches the peak learning rate after 10 steps, then decays
    assert lr_at(9, 100, 10, 0.1, 0.0) == pytest.approx(0.1)
    assert lr_at(50, 100, 10, 0.1, 0.0) < 0.1


def test_hflip_and_scale_reach_the_imagefolder_transform():
    ops = {type(t).__name__: t for t in build_transforms("imagefolder", 32, train=True, hflip=0.0).transforms}
    assert "RandomHorizontalFlip" not in ops
    ops = build_transforms("imagefolder", 32, train=True, hflip=0.3, scale=(0.5, 1.0)).transforms
    crop = next(t for t in ops if type(t).__name__ == "RandomResizedCrop")
    flip = next(t for t in ops if type(t).__name__ == "RandomHorizontalFlip")
    assert tuple(crop.scale) == (0.5, 1.0) and flip.p == 0.3


def _left_right_folder(root, n_train=48, n_val=12):
    """Four classes: a red or blue half, on the left or on the right: a flip turns one class into another."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, (color, side) in enumerate([(0, 0), (0, 1), (2, 0), (2, 1)]):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                img = rng.normal(40, 10, (32, 32, 3))
                img[:, side * 16 : side * 16 + 16, color] = 230
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / split / f"c{c}" / f"{i}.png")


def test_one_epoch_on_easy_images_learns(tmp_path):
    _left_right_folder(tmp_path / "imf")
    save_arch(TINY, tmp_path / "tiny.json")
    argv = ["train", "--arch", tmp_path / "tiny.json", "--data", f"imagefolder:{tmp_path / 'imf'}", "--img-size", 32]
    argv += ["--epochs", 1, "--batch-size", 8, "--device", "cpu", "--hflip", 0, "--scale", 0.8, 1.0]
    result = CliRunner().invoke(main, [str(a) for a in [*argv, "--out", tmp_path / "run", "--no-progress"]])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["warmup_epochs"] is None and saved["hflip"] == 0 and saved["scale_min"] == 0.8
    top1 = float(result.output.split("test top-1 ")[1].split("%")[0])
    assert top1 >= 60.0, result.output  # chance: 25%


def test_eval_shows_progress_when_asked(capsys):
    from rexnet import ReXNet  # noqa: PLC0415 - only this test builds a model directly
    from rexnet.training.evaluate import evaluate  # noqa: PLC0415 - only this test evaluates

    from ..train_helpers import tiny_data  # noqa: PLC0415 - only this test needs the fake data

    data = tiny_data(test=16)
    evaluate(ReXNet(TINY, 10), data.test, data.classes, batch_size=8, progress=True)
    assert "eval" in capsys.readouterr().err
    evaluate(ReXNet(TINY, 10), data.test, data.classes, batch_size=8)
    assert "eval" not in capsys.readouterr().err


def _top_bottom_folder(root, n_train=48, n_val=12):
    """Four classes: a red or blue half, at the top or at the bottom: a horizontal flip keeps every class."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, (color, side) in enumerate([(0, 0), (0, 1), (2, 0), (2, 1)]):
            (root / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                img = rng.normal(40, 10, (32, 32, 3))
                img[side * 16 : side * 16 + 16, :, color] = 230
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / split / f"c{c}" / f"{i}.png")


def test_one_epoch_with_the_default_recipe_learns(tmp_path):
    """Warm-up, flip and crop at their defaults: a 1-epoch run is not all warm-up, so it learns."""
    _top_bottom_folder(tmp_path / "imf")
    save_arch(TINY, tmp_path / "tiny.json")
    argv = ["train", "--arch", tmp_path / "tiny.json", "--data", f"imagefolder:{tmp_path / 'imf'}", "--img-size", 32]
    argv += ["--epochs", 1, "--batch-size", 8, "--device", "cpu"]
    result = CliRunner().invoke(main, [str(a) for a in [*argv, "--out", tmp_path / "run", "--no-progress"]])
    assert result.exit_code == 0, result.output
    top1 = float(result.output.split("test top-1 ")[1].split("%")[0])
    assert top1 >= 50.0, result.output  # chance: 25%
