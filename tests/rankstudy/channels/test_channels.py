"""The channel study: schedules (monotone, on budget), resume after SIGKILL, dask path equal to the local one."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from rankstudy import run_study
from rankstudy.channels import (
    FAMILIES,
    ROWS,
    SCHEDULES,
    TIMING_COLUMNS,
    ChannelStudyConfig,
    parse_widths,
    run_channel_study,
    sample_profile,
    schedule_arch,
    strides,
)
from rankstudy.cli import main

ROOT = Path(__file__).resolve().parents[2]
# 3 configs × 1 seed + config 0 with a second seed: 4 runs of 4 steps on 16×16 fake images.
TINY = ChannelStudyConfig(
    n=3,
    macs=400_000,
    blocks=4,
    data="fake",
    img_size=16,
    epochs=1,
    train_limit=64,
    seeds=1,
    noise_configs=1,
    noise_seeds=2,
    batch_size=16,
    probe_images=16,
)
TINY_ARGS = [
    "--n",
    "3",
    "--macs",
    "400k",
    "--blocks",
    "4",
    "--data",
    "fake",
    "--img-size",
    "16",
    "--train-limit",
    "64",
    "--seeds",
    "1",
    "--noise-configs",
    "1",
    "--noise-seeds",
    "2",
    "--batch-size",
    "16",
    "--probe-images",
    "16",
]


def macs_by_hand(widths: list[int], img_size: int, in_chans: int = 3, classes: int = 10) -> int:
    """Returns the multiply-accumulates of `schedule_arch(widths)`, counted layer by layer (convs and classifier)."""
    size = img_size // 2
    total = 9 * in_chans * 16 * size * size  # stem 3×3, stride 2, 16 channels
    prev = 16
    for width, stride in zip(widths, strides(len(widths))):
        mid = 6 * prev
        total += prev * mid * size * size  # 1×1 expansion at the input resolution
        size = (size + stride - 1) // stride
        total += 9 * mid * size * size + mid * width * size * size  # 3×3 depthwise, 1×1 projection
        prev = width
    return total + prev * 320 * size * size + 320 * classes


def test_profiles_are_monotone_with_mean_one_and_bounded_growth():
    for family in FAMILIES:
        for i in range(50):
            pieces, g = sample_profile(family, 9, np.random.default_rng(i), 8.0)
            assert np.all(np.diff(g) >= -1e-12) and g.mean() == pytest.approx(1.0)
            assert 1.0 <= g[-1] / g[0] <= 8.0 + 1e-9
            steps = np.diff(g)
            if family == "linear":
                assert pieces == 1 and np.allclose(steps, steps[0])
            if family == "stagewise":
                assert 2 <= pieces <= 5 and len(np.unique(g.round(12))) <= pieces


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("channels") / "ref"
    return out, run_channel_study(TINY, out, workers=1, progress=False)


def test_schedules_meet_the_budget_and_stay_monotone(reference):
    _, table = reference
    configs = table.drop_duplicates("config_id")
    assert configs.family.tolist() == list(FAMILIES)
    for _, row in configs.iterrows():
        widths = parse_widths(row.widths)
        assert widths == sorted(widths) and len(widths) == TINY.blocks
        assert row.macs == macs_by_hand(widths, TINY.img_size)
        assert abs(row.macs - TINY.macs) <= 0.02 * TINY.macs
        assert [b.out_channels for b in schedule_arch(widths).blocks] == widths


def test_table_has_one_row_per_run_with_results(reference):
    out, table = reference
    assert list(zip(table.config_id, table.seed)) == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert table[["top1", "proxy_rank_rtol_1e-2", "proxy_effective_rank"]].notna().all().all()
    assert ((table["proxy_effective_rank"] > 0) & (table["proxy_effective_rank"] <= 1)).all()
    # Seeds change the run; the same seed of the same config gives the same proxy.
    c0 = table[table.config_id == 0]
    assert c0.proxy_effective_rank.nunique() == 2
    assert (out / "results.csv").exists() and (out / "metadata.json").exists()


def _without_timing(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=list(TIMING_COLUMNS))


def _with_schedules_of(ref_out: Path, out: Path) -> Path:
    """Returns `out` holding the reference's manifest and sampled schedules (MACs matching costs seconds), so
    a run there resumes straight into training."""
    out.mkdir()
    for name in ("manifest.json", SCHEDULES):
        shutil.copy(ref_out / name, out / name)
    return out


@pytest.mark.slow
def test_resume_after_sigkill_keeps_finished_runs(reference, tmp_path):
    ref_out, ref_table = reference
    out = _with_schedules_of(ref_out, tmp_path / "killed")
    cmd = [sys.executable, "-m", "rankstudy", "channels", *TINY_ARGS, "--workers", "1", "--quiet", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any((out / ROWS).glob("cfg-*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = {p.name: p.read_bytes() for p in (out / ROWS).glob("cfg-*.json")}
    assert 1 <= len(done) < len(ref_table) and not (out / "results.parquet").exists()

    result = CliRunner().invoke(main, ["channels", *TINY_ARGS, "--workers", "1", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name, data in done.items():  # never retrained: the stored rows (wall times included) are untouched
        assert (out / ROWS / name).read_bytes() == data
    table = pd.read_parquet(out / "results.parquet")
    pd.testing.assert_frame_equal(_without_timing(table), _without_timing(ref_table), check_exact=True)


@pytest.fixture(scope="module")
def cluster():
    import distributed

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as local:
        yield local.scheduler_address


@pytest.mark.slow
def test_dask_cluster_gives_the_local_table(reference, cluster, tmp_path):
    ref_out, ref_table = reference
    out = _with_schedules_of(ref_out, tmp_path / "dask")
    table = run_channel_study(TINY, out, scheduler=cluster, progress=False)
    pd.testing.assert_frame_equal(_without_timing(table), _without_timing(ref_table), check_exact=True)
    assert (out / ROWS / "cfg-00002-s0.json").exists()


@pytest.mark.slow
def test_rank_study_on_the_cluster_is_bit_identical(cluster, tmp_path, small_config):
    local = run_study(small_config, device="cpu", workers=1, chunk_rows=30, progress=False)
    remote = run_study(small_config, device="cpu", out=tmp_path / "s", scheduler=cluster, chunk_rows=30, progress=False)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    stored = pd.read_parquet(tmp_path / "s" / "results.parquet")
    pd.testing.assert_frame_equal(local, stored, check_exact=True)
    assert len(list((tmp_path / "s" / "chunks").glob("chunk-*.parquet"))) == -(-small_config.n // 30)


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--macs", "ten"], "--macs"),
        (["--scheduler", "localhost"], "tcp://HOST"),
        (["--data", "mnist-x"], "unknown dataset"),
        (["--blocks", "2"], "--blocks"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    result = CliRunner().invoke(main, ["channels", *TINY_ARGS, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o" / "results.parquet").exists()


def test_other_settings_in_the_same_out_are_refused(reference):
    out, _ = reference
    result = CliRunner().invoke(main, ["channels", *TINY_ARGS, "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 2 and "differs in: epochs" in result.output


def test_report_of_a_folder_without_a_study_is_refused(tmp_path):
    bad = CliRunner().invoke(main, ["channels-report", "--in", str(tmp_path / "none")])
    assert bad.exit_code == 2 and "rankstudy channels" in bad.output and "Traceback" not in bad.output
