"""The study runner: determinism across batching/chunking/workers, resume after SIGKILL, shards, bad input."""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from rankstudy import StudyConfig, StudyError, load_results, merge, rebuild_features, run_study
from rankstudy.cli import main
from rankstudy.rank import metric_columns, rank_metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg = StudyConfig(
        n=120,
        seed=3,
        d_in=(4, 8),
        ratio_min=0.5,
        ratio_max=6.0,
        n_ratios=5,
        stack_depths=(2, 3),
        spatial=4,
        block_expansion=3,
        nonlinearities=("identity", "relu", "relu6", "silu", "elu", "softplus", "sigmoid", "mish"),
    )
    return cfg, run_study(cfg, device="cpu", progress=False)


def test_table_has_every_row_and_metric(reference):
    cfg, table = reference
    assert table["id"].tolist() == list(range(cfg.n))
    assert set(metric_columns()) <= set(table.columns)
    assert table[metric_columns()].notna().all().all()
    assert ((table.normalized_rank > 0) & (table.normalized_rank <= 1)).all()


@pytest.mark.parametrize("batch_size,chunk_rows", [(1, 7), (3, 1000), (1000, 50)])
def test_same_table_whatever_batch_size_and_chunking(reference, batch_size, chunk_rows):
    cfg, table = reference
    other = run_study(cfg, device="cpu", batch_size=batch_size, chunk_rows=chunk_rows, workers=1, progress=False)
    pd.testing.assert_frame_equal(table, other, check_exact=True)


def test_same_table_with_worker_processes(reference, tmp_path):
    cfg, table = reference
    other = run_study(cfg, device="cpu", out=tmp_path, workers=2, chunk_rows=30, progress=False)
    pd.testing.assert_frame_equal(table, other, check_exact=True)
    stored, meta = load_results(tmp_path)
    pd.testing.assert_frame_equal(table, stored, check_exact=True)
    assert meta["seed"] == 3 and meta["workers"] == 2 and meta["versions"]["torch"] == torch.__version__


def test_rows_are_exact_against_svd_of_rebuilt_features(reference):
    _, table = reference
    for _, row in table.iterrows():
        f = rebuild_features(row).double()
        tol = max(f.shape) * torch.finfo(torch.float32).eps
        assert row["rank"] == torch.linalg.matrix_rank(f, rtol=tol).item()
        assert row["effective_rank"] == pytest.approx(rank_metrics(rebuild_features(row))["effective_rank"].item())


def test_shards_merge_to_the_single_table(reference, tmp_path):
    cfg, table = reference
    dirs = [tmp_path / f"s{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        part = run_study(cfg, device="cpu", out=d, shard=f"{i}/3", chunk_rows=25, progress=False)
        assert 0 < len(part) < cfg.n
        assert not (d / "results.parquet").exists()
    with pytest.raises(StudyError, match="missing"):
        merge(dirs[:2], tmp_path / "merged", progress=False)
    merged = merge(dirs, tmp_path / "merged", progress=False)
    pd.testing.assert_frame_equal(table, merged, check_exact=True)
    pd.testing.assert_frame_equal(table, load_results(tmp_path / "merged")[0], check_exact=True)


CLI_ARGS = [
    "--n",
    "400",
    "--seed",
    "5",
    "--d-in",
    "4,8",
    "--ratio-max",
    "8",
    "--chunk-rows",
    "10",
    "--quiet",
    "--workers",
    "1",
]


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rankstudy", "sample", *CLI_ARGS, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "chunks").glob("chunk-*.parquet"))) < 5:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list((killed / "chunks").glob("chunk-*.parquet")))
    assert 5 <= n_done < 40 and not (killed / "results.parquet").exists()

    runner = CliRunner()
    assert runner.invoke(main, ["sample", *CLI_ARGS, "--out", str(killed)]).exit_code == 0
    assert runner.invoke(main, ["sample", *CLI_ARGS, "--out", str(clean)]).exit_code == 0
    resumed, meta = load_results(killed)
    pd.testing.assert_frame_equal(resumed, load_results(clean)[0], check_exact=True)
    assert meta["resumed_chunks"] == n_done and resumed["id"].tolist() == list(range(400))
    assert not list((killed / "chunks").glob(".*tmp"))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    assert CliRunner().invoke(main, ["sample", "--n", "30", "--d-in", "4", "--out", str(out), "--quiet"]).exit_code == 0
    return out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--kinds", "linear,conv5"], "unknown kind 'conv5'"),
        (["--nonlinearities", "relu,swish9"], "unknown nonlinearity 'swish9'"),
        (["--n", "0"], "n must be a positive integer"),
        (["--n", "-3"], "n must be a positive integer"),
        (["--ratio-min", "0.01"], "gives d_out < 1"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "cuda|unknown device"),
        (["--n", "31", "--d-in", "4"], r"different config \(differs in: n\)"),
        (["--shard", "3/2"], "0 <= i < k"),
        (["--workers", "0"], "workers must be >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_results_intact(finished, args, message):
    before = digest(finished)
    result = CliRunner().invoke(main, ["sample", *args, "--out", str(finished), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output
    assert pd.Series(lines[0]).str.contains(message).item(), lines[0]
    assert digest(finished) == before


def test_unwritable_out_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["sample", "--n", "5", "--out", str(blocker / "sub"), "--quiet"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write to --out")


def test_damaged_chunk_is_recomputed_with_a_warning(tmp_path):
    out = tmp_path / "study"
    args = ["sample", "--n", "30", "--d-in", "4", "--chunk-rows", "10", "--out", str(out), "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    good = digest(out / "chunks")
    reference = load_results(out)[0]
    (out / "results.parquet").unlink()
    (out / "chunks" / "chunk-00001.parquet").write_bytes(b"PAR1 garbage")
    with pytest.warns(UserWarning, match="chunk-00001.parquet is damaged.*recomputing it"):
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert digest(out / "chunks") == good  # chunks are deterministic: recomputed bit for bit
    pd.testing.assert_frame_equal(load_results(out)[0], reference, check_exact=True)


SHARD_ARGS = [
    "sample",
    "--n",
    "30",
    "--d-in",
    "4",
    "--kinds",
    "linear,block",
    "--chunk-rows",
    "5",
    "--quiet",
    "--workers",
    "1",
]


def test_merge_refuses_a_shard_given_twice_or_from_another_study(tmp_path):
    runner = CliRunner()
    for i in range(2):
        assert runner.invoke(main, [*SHARD_ARGS, "--shard", f"{i}/2", "--out", str(tmp_path / f"s{i}")]).exit_code == 0
    assert (
        runner.invoke(main, [*SHARD_ARGS, "--seed", "1", "--shard", "1/2", "--out", str(tmp_path / "other")]).exit_code
        == 0
    )
    shutil.copytree(tmp_path / "s0", tmp_path / "copy")
    merged = tmp_path / "merged"
    for dirs, message in (
        (["s0", "s0", "s1"], "is given twice"),
        (["s0", "copy", "s1"], "the same shard was given twice"),
        (["s0", "other"], r"different study .*\(differs in: seed\)"),
    ):
        result = runner.invoke(main, ["merge", *(str(tmp_path / d) for d in dirs), "--out", str(merged)])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert pd.Series(lines[0]).str.contains(message).item(), lines[0]
        assert not (merged / "results.parquet").exists()
    assert (
        runner.invoke(main, ["merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(merged)]).exit_code == 0
    )


def test_load_results_rejects_missing_and_foreign_tables(tmp_path, finished):
    with pytest.raises(StudyError, match="no results table"):
        load_results(tmp_path)
    (tmp_path / "results.parquet").write_bytes((finished / "results.parquet").read_bytes())
    (tmp_path / "metadata.json").write_text('{"schema_version": 0}')
    with pytest.raises(StudyError, match="schema version 0"):
        load_results(tmp_path)
