"""Evaluation: feature rank on constructed matrices, metrics against a direct computation, CLI outputs and errors."""

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import TensorDataset

from rexnet import ReXNet, save_arch
from rexnet.cli import main
from rexnet.rank_tolerance import float32_rtol
from rexnet.training.evaluate import evaluate, normalized_feature_rank
from rexnet.training.train import train

from ..conftest import randomize
from ..train_helpers import TINY, tiny_config


def test_feature_rank_of_constructed_matrices():
    gen = torch.Generator().manual_seed(0)
    low = torch.randn(80, 5, generator=gen) @ torch.randn(5, 20, generator=gen)  # rank 5 of 20 columns
    assert normalized_feature_rank(low) == (pytest.approx(0.25), 2)  # two chunks of 40 rows
    assert normalized_feature_rank(torch.randn(100, 20, generator=gen)) == (pytest.approx(1.0), 2)  # 20 rows dropped
    assert normalized_feature_rank(torch.zeros(10, 4))[0] == 0.0
    # fewer rows than columns: the rank is divided by the rows
    assert normalized_feature_rank(torch.randn(6, 20, generator=gen)) == (pytest.approx(1.0), 1)


def test_feature_rank_uses_the_float32_rule():
    """σ counts when σ > σ_max · max(m, n) · eps_float32 (rexnet.rank_tolerance), the rank study's rule."""
    gen = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(8, 4, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    tol = float32_rtol(8, 4)
    sigma = torch.tensor([1.0, 0.5, tol * 1.01, tol * 0.99], dtype=torch.float64)
    features = u @ torch.diag(sigma) @ v.T  # 8 × 4: one chunk of 2·C rows
    assert normalized_feature_rank(features) == (pytest.approx(3 / 4), 1)


def test_plotting_picks_no_matplotlib_backend(tmp_path):
    code = (
        "import sys, matplotlib; from rexnet.training.evaluate import EvalResult, plot_confusion; "
        "r = EvalResult(50.0, 100.0, 4, (50.0, 50.0), ((1, 1), (1, 1)), 1.0, 1, 1.0, ('a', 'b')); "
        f"plot_confusion(r, {str(tmp_path / 'c.png')!r}); print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False" and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_match_a_direct_computation():
    model = randomize(ReXNet(TINY, 10), seed=2)
    gen = torch.Generator().manual_seed(5)
    images, labels = torch.randn(70, 3, 16, 16, generator=gen), torch.randint(0, 10, (70,), generator=gen)
    result = evaluate(model, TensorDataset(images, labels), tuple("abcdefghij"), batch_size=32)
    with torch.no_grad():
        logits = model(images)
    assert result.top1 == pytest.approx(100 * (logits.argmax(1) == labels).double().mean().item())
    top5 = (logits.topk(5, 1).indices == labels[:, None]).any(1).double().mean().item()
    assert result.top5 == pytest.approx(100 * top5)
    conf = torch.tensor(result.confusion)
    assert conf.sum() == 70 and torch.equal(conf.sum(1), torch.bincount(labels, minlength=10))
    for c in range(10):
        mask = labels == c
        if mask.any():
            expected = 100 * (logits[mask].argmax(1) == c).double().mean().item()
            assert result.per_class_accuracy[c] == pytest.approx(expected)
    assert 0 < result.feature_rank <= 1 and result.feature_nuclear_norm > 0


def test_kept_logits_are_those_of_the_model_and_are_written_apart(tmp_path):
    import numpy as np

    from rexnet.training.evaluate import write_eval

    model = randomize(ReXNet(TINY, 10), seed=3)
    gen = torch.Generator().manual_seed(6)
    images, labels = torch.randn(30, 3, 16, 16, generator=gen), torch.randint(0, 10, (30,), generator=gen)
    result = evaluate(model, TensorDataset(images, labels), tuple("abcdefghij"), batch_size=8, keep_logits=True)
    with torch.no_grad():
        expected = model(images)  # one batch of 30, against evaluate's batches of 8
    torch.testing.assert_close(result.logits, expected, rtol=1e-5, atol=1e-5)
    assert result.top1 == pytest.approx(100 * (result.logits.argmax(1) == labels).double().mean().item())
    assert evaluate(model, TensorDataset(images, labels), tuple("abcdefghij")).logits is None  # off by default
    files = write_eval(result, tmp_path / "ev")
    np.testing.assert_array_equal(np.load(files["logits"]), result.logits.numpy())
    report = json.loads(files["json"].read_text())
    assert "logits" not in report and report["top1"] == result.top1


@pytest.fixture
def trained_run(tmp_path):
    arch = save_arch(TINY, tmp_path / "tiny.json")
    cfg = tiny_config(tmp_path / "run", arch, epochs=1, ema_decay=0.0)
    row = train(cfg)
    return tmp_path, arch, row


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_eval_writes_all_outputs(trained_run):
    tmp_path, arch, row = trained_run
    result = _invoke(
        "eval",
        "--checkpoint",
        tmp_path / "run" / "model.pth",
        "--data",
        "fake",
        "--test-limit",
        32,
        "--model",
        arch,
        "--out",
        tmp_path / "ev",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["top1"] == pytest.approx(row["test_top1"]) and report["top5"] == pytest.approx(row["test_top5"])
    assert len(report["per_class_accuracy"]) == 10 and 0 <= report["feature_rank"] <= 1
    assert (tmp_path / "ev" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "ev" / "per_class.csv").read_text().splitlines()) == 11
    assert "feature rank" in result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "rexnet_100"], "another model or width"),
        (["--data", "cifar-7"], "unknown dataset"),
        (["--checkpoint-missing"], "does not exist"),
    ],
)
def test_cli_eval_bad_input(trained_run, args, words):
    tmp_path, _, _ = trained_run
    ckpt = tmp_path / "run" / ("nothing.pth" if args == ["--checkpoint-missing"] else "model.pth")
    extra = [] if args == ["--checkpoint-missing"] else args
    result = _invoke("eval", "--checkpoint", ckpt, "--data", "fake", *extra, "--out", tmp_path / "ev")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert not (tmp_path / "ev").exists()


def test_checkpoints_with_code_are_refused(trained_run):
    import datetime

    tmp_path, arch, _ = trained_run
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"features.0.weight": torch.zeros(1)}, "when": datetime.date(2020, 1, 1)}, evil)
    result = _invoke("eval", "--checkpoint", evil, "--data", "fake")
    assert result.exit_code == 2 and "weights_only" in result.stderr
    # the same file planted as a run's last checkpoint: --resume refuses it too
    run = tmp_path / "run"
    (run / "checkpoint.pth").write_bytes(evil.read_bytes())
    result = _invoke(
        "train",
        "--arch",
        arch,
        "--data",
        "fake",
        "--img-size",
        16,
        "--train-limit",
        64,
        "--test-limit",
        32,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--lr",
        0.05,
        "--warmup-epochs",
        0.5,
        "--ema-decay",
        0,
        "--seed",
        3,
        "--device",
        "cpu",
        "--out",
        run,
        "--resume",
    )
    assert result.exit_code == 2 and "weights_only" in result.stderr, result.output


def test_cli_eval_refuses_a_checkpoint_of_another_width(trained_run):
    tmp_path, _, _ = trained_run
    from dataclasses import replace

    wider = save_arch(replace(TINY, penultimate_channels=32), tmp_path / "wider.json")
    result = _invoke("eval", "--checkpoint", tmp_path / "run" / "model.pth", "--data", "fake", "--model", wider)
    assert result.exit_code == 2 and "another model or width" in result.stderr
