"""Bad input, as a new user types it: one line naming the problem and the fix, exit code 2, no traceback, and
nothing half-made (no new file or folder; an existing results folder byte-identical)."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from rankstudy import StudyConfig, StudyError
from rankstudy.cli import main as rankstudy_main
from rankstudy.random_nets.networks import rebuild_features
from rankstudy.random_nets.run import run_study
from rankstudy.rank import rank_metrics
from rexnet.cli import main as rexnet_main

EXISTING = "existing"  # a finished rank study every case finds in its working folder
GAUSSIAN = ("--input-dists", "gaussian", "--quiet")  # no dataset needed


def _image_folder(root: Path) -> None:
    """An ImageFolder (train/ and val/, two classes) with one broken .png in each split."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")
        (root / split / "b" / "broken.png").write_bytes(b"this is not a png")


def _damaged_channel_study(root: Path) -> None:
    (root / "chan").mkdir()
    (root / "chan" / "metadata.json").write_text('{"schema": "rankstudy.channels/1"}\n')
    (root / "chan" / "results.parquet").write_bytes(b"PAR1 damaged")


def _garbage_table(root: Path) -> None:
    (root / "garbage.parquet").write_text("not a table\n")


CLI_CASES = [
    # (id, cli, argv, words in the message, setup of the working folder)
    (
        "sample-n-huge",
        "rankstudy",
        ["sample", "--n", "1000000000000", "--out", EXISTING],
        ["n must", "10,000,000"],
        None,
    ),
    (
        "sample-scheduler-refused",
        "rankstudy",
        ["sample", "--n", "20", "--scheduler", "tcp://127.0.0.1:1", "--out", "new", *GAUSSIAN],
        ["cannot reach the dask scheduler", "drop --scheduler"],
        None,
    ),
    (
        "sample-scheduler-not-url",
        "rankstudy",
        ["sample", "--n", "20", "--scheduler", "notaurl", "--out", EXISTING, *GAUSSIAN],
        ["not an address", "tcp://HOST"],
        None,
    ),
    (
        "probe-img-size-huge",
        "rankstudy",
        ["probe", "--model", "rexnet_100", "--img-size", "100000", "--out", "p", "--quiet"],
        ["--img-size 100000", "smaller"],
        None,
    ),
    (
        "probe-broken-png",
        "rankstudy",
        ["probe", "--model", "rexnet_100", "--data", "imagefolder:imf", "--n-images", "4", "--img-size", "32"]
        + ["--out", "p", "--quiet"],
        ["broken.png", "delete or replace"],
        lambda root: _image_folder(root / "imf"),
    ),
    (
        "train-broken-png",
        "rexnet",
        ["train", "--model", "rexnet_100", "--data", "imagefolder:imf", "--img-size", "32", "--epochs", "1"]
        + ["--out", "run"],
        ["broken.png", "delete or replace"],
        lambda root: _image_folder(root / "imf"),
    ),
    (
        "export-unwritable",
        "rexnet",
        ["export", "rexnet_100", "--onnx", "/proc/x.onnx"],
        ["/proc/x.onnx", "writable"],
        None,
    ),
    (
        "train-data-root-without-parent",
        "rexnet",
        ["train", "--model", "rexnet_100", "--data-root", "missing/x", "--epochs", "1", "--out", "run"],
        ["missing/x", "create it or pass an existing --data-root"],
        None,
    ),
    (
        "channels-data-root-without-parent",
        "rankstudy",
        ["channels", "--n", "3", "--data-root", "missing/x", "--out", "ch", "--quiet"],
        ["missing/x", "create it or pass an existing --data-root"],
        None,
    ),
    ("data-root-unwritable", "rexnet", ["data", "fashion-mnist", "--root", "/proc/x"], ["/proc/x", "write"], None),
    (
        "channels-report-damaged",
        "rankstudy",
        ["channels-report", "--in", "chan"],
        ["results.parquet", "not a readable parquet", "regenerate"],
        _damaged_channel_study,
    ),
    (
        "channels-macs-tiny",
        "rankstudy",
        ["channels", "--macs", "1k", "--data", "fake", "--n", "3", "--out", "ch", "--quiet"],
        ["above the budget", "raise the budget"],
        None,
    ),
    (
        "channels-macs-huge",
        "rankstudy",
        ["channels", "--macs", "1000G", "--data", "fake", "--n", "3", "--out", "ch", "--quiet"],
        ["below the budget", "lower the budget"],
        None,
    ),
    (
        "plot-garbage",
        "rankstudy",
        ["plot", "--in", "garbage.parquet", "--out", "figs"],
        ["garbage.parquet", "is not a results table"],
        _garbage_table,
    ),
    ("rexnet-typo-far", "rexnet", ["summary", "rexnet_foo"], ["unknown model 'rexnet_foo'"], None),
]

API_CASES = [
    # (id, call, words in the message)
    ("rank-metrics-empty", lambda: rank_metrics(torch.zeros(0, 5)), ["empty", "at least one row"]),
    (
        "rebuild-features-incomplete",
        lambda: rebuild_features({"kind": "linear", "d_in": 4, "d_out": 4}),
        ["lacks", "full row"],
    ),
    ("study-config-negative-n", lambda: StudyConfig(n=-1), ["n must be a positive integer", "-1"]),
    ("study-config-huge-n", lambda: StudyConfig(n=10**12), ["n must", "10,000,000"]),
]


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory) -> Path:
    """A finished rank study (a few seconds), copied into every case's working folder."""
    out = tmp_path_factory.mktemp("study") / EXISTING
    config = StudyConfig(n=20, input_dists=("gaussian",), kinds=("linear",), d_in=(4,), n_ratios=3)
    run_study(config, "cpu", out, workers=1, progress=False)
    return out


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def workdir(tmp_path, monkeypatch, finished_study) -> Path:
    shutil.copytree(finished_study, tmp_path / EXISTING)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("cli", "argv", "words", "setup"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_bad_command_is_one_line_and_leaves_nothing(workdir, cli, argv, words, setup):
    if setup is not None:
        setup(workdir)
    before = _snapshot(workdir)
    result = CliRunner().invoke(rankstudy_main if cli == "rankstudy" else rexnet_main, argv)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert _snapshot(workdir) == before  # no new file or folder; the existing study byte-identical


@pytest.mark.parametrize(("call", "words"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_bad_python_input_is_a_study_error(call, words):
    with pytest.raises(StudyError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_close_typo_still_gets_a_suggestion():
    result = CliRunner().invoke(rexnet_main, ["summary", "rexent_100"])
    assert result.exit_code == 2 and "did you mean rexnet_100?" in result.output
    far = CliRunner().invoke(rexnet_main, ["summary", "rexnet_abc"])
    assert far.exit_code == 2 and "did you mean" not in far.output


@pytest.mark.parametrize("cli", [rankstudy_main, rexnet_main], ids=["rankstudy", "rexnet"])
def test_short_help_option(cli):
    result = CliRunner().invoke(cli, ["-h"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_small_study_shards_with_no_chunk_merge_to_the_single_run(workdir):
    argv = ["sample", "--n", "200", "--seed", "1", *GAUSSIAN]
    for i in range(4):
        result = CliRunner().invoke(rankstudy_main, [*argv, "--shard", f"{i}/4", "--out", f"s{i}"])
        assert result.exit_code == 0, result.output
        if i > 0:
            assert "has no chunks" in result.output
            assert sorted(p.name for p in (workdir / f"s{i}").iterdir()) == ["manifest.json"]
    merged = CliRunner().invoke(rankstudy_main, ["merge", "s0", "s1", "s2", "s3", "--out", "merged"])
    assert merged.exit_code == 0, merged.output
    single = CliRunner().invoke(rankstudy_main, [*argv, "--out", "single"])
    assert single.exit_code == 0, single.output
    pd.testing.assert_frame_equal(
        pd.read_parquet(workdir / "merged" / "results.parquet"), pd.read_parquet(workdir / "single" / "results.parquet")
    )


def test_resumed_sample_says_how_many_chunks_it_found(workdir):
    argv = ["sample", "--n", "60", "--chunk-rows", "20", "--input-dists", "gaussian", "--out", "r"]
    assert CliRunner().invoke(rankstudy_main, [*argv, "--quiet"]).exit_code == 0
    (workdir / "r" / "chunks" / "chunk-00001.parquet").unlink()
    (workdir / "r" / "results.parquet").unlink()
    result = CliRunner().invoke(rankstudy_main, argv)
    assert result.exit_code == 0, result.output
    assert "resuming: 2 of 3 chunks found" in result.output


def test_channels_default_noise_configs_fit_a_small_n(workdir, monkeypatch):
    import rankstudy.channels  # noqa: PLC0415 - the wing `rankstudy channels` imports when it runs

    seen = {}

    def fake_study(cfg, out, **kwargs):
        seen["cfg"] = cfg.validate() or cfg
        return pd.DataFrame({"config_id": range(cfg.n)})

    monkeypatch.setattr(rankstudy.channels, "run_channel_study", fake_study)
    result = CliRunner().invoke(rankstudy_main, ["channels", "--n", "3", "--data", "fake", "--out", "ch"])
    assert result.exit_code == 0, result.output
    assert seen["cfg"].noise_configs == 3


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sample"])
def test_no_worker_outlives_a_killed_study(tmp_path, command):
    import os  # noqa: PLC0415 - only this test sends signals
    import signal  # noqa: PLC0415 - only this test sends signals
    import subprocess  # noqa: PLC0415 - a real process to kill
    import sys  # noqa: PLC0415 - the interpreter running the tests
    import time  # noqa: PLC0415 - waiting for the workers

    import psutil  # noqa: PLC0415 - only this test lists processes

    argv = [sys.executable, "-m", "rankstudy", command, "--n", "4000", "--chunk-rows", "50", "--workers", "2"]
    proc = subprocess.Popen([*argv, "--input-dists", "gaussian", "--quiet", "--out", str(tmp_path / "k")])
    deadline = time.time() + 60
    workers = []
    chunks = tmp_path / "k" / "chunks"
    # Killed once the workers compute (a worker still importing torch would only notice when it is done).
    while time.time() < deadline and (len(workers) < 2 or len(list(chunks.glob("chunk-*.parquet"))) < 3):
        assert proc.poll() is None, "the study ended before it could be killed"
        workers = [c for c in psutil.Process(proc.pid).children() if "popen_loky" in " ".join(c.cmdline())]
        time.sleep(0.2)
    assert len(workers) >= 2, "no loky workers started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=5)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} workers outlived their killed parent"
