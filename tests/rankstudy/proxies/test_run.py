"""The resumable harness end to end: score a handful of cells, report them, resume, refuse bad input."""

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from rankstudy.cli import main
from rankstudy.errors import StudyError
from rankstudy.proxies import ProxyStudyConfig, load_proxy_results, run_proxies, write_proxies_report
from rankstudy.proxies.run import sample_ids, unit_name
from rankstudy.proxies.spaces import ACCURACY_COLUMNS, NB201Space, get_space

# cheap cells (no 3×3 conv, at most two 1×1): ids 5409, 7323, 14453, 6819, 8318 have accuracies, 3 has not
IDS = (3, 5409, 6819, 7323, 8318, 14453)
FAST = (
    "params",
    "naswot",
    "naswot_eval",
    "synflow",
    "snip",
    "jacob_cov",
    "zico",
    "meco",
    "rank.rtol_1e-2.mean",
    "rank.effective_cov.last",
)


def small(**kw) -> ProxyStudyConfig:
    return ProxyStudyConfig(**{"ids": IDS, "inputs": "gaussian", "batch": 6, "proxies": FAST, **kw})


def test_space_tables_and_sampling():
    space = NB201Space()
    assert len(space.ids()) == 15_625
    acc = space.accuracy()
    assert list(acc.columns) == list(ACCURACY_COLUMNS) and acc.notna().all(axis=1).sum() == 7_813
    assert acc.loc[2, "cifar10_200ep"] == pytest.approx(85.74)
    assert acc["cifar10_200ep"].max() == pytest.approx(94.37, abs=0.005)
    s = sample_ids(space.ids(), 30, seed=0)
    assert s == sample_ids(space.ids(), 30, seed=0) and len(set(s)) == 30 and s != sample_ids(space.ids(), 30, 1)
    with pytest.raises(StudyError, match="unknown NAS-Bench-201 architecture id 15625"):
        space.check_ids([1, 15625])


def test_score_report_and_resume(tmp_path):
    one = run_proxies(small(), tmp_path / "one", progress=False)
    assert one["arch_id"].tolist() == list(IDS)
    assert one.loc[one["arch_id"] == 3, "cifar10_200ep"].isna().all()
    assert one.loc[one["arch_id"] == 7323, "cifar10_200ep"].item() == pytest.approx(80.005)
    table, meta = load_proxy_results(tmp_path / "one")
    assert not meta["partial"] and meta["bn_modes"]["naswot_eval"] == "eval" and meta["inputs"]["name"] == "gaussian"
    report = write_proxies_report(table, meta, tmp_path / "one", n_resamples=20)
    assert set(report["verdicts"]) == set(ACCURACY_COLUMNS)
    row = next(r for r in report["correlations"] if r["proxy"] == "naswot" and r["column"] == "cifar10_200ep")
    assert row["n"] == 5 and -1 <= row["rho"] <= 1 and len(row["rho_ci"]) == 2
    assert (tmp_path / "one" / "REPORT.md").read_text().startswith("# Zero-cost proxies")
    assert (tmp_path / "one" / "proxies-cifar10.png").stat().st_size > 0

    # a second sitting resumes: only the missing unit is computed, and the table is the same
    out = tmp_path / "one"
    (out / "scores" / unit_name(IDS[1])).unlink()
    stamp = (out / "scores" / unit_name(IDS[0])).stat().st_mtime_ns
    assert run_proxies(small(), out, max_units=0, progress=False).shape[0] == len(IDS) - 1
    assert load_proxy_results(out)[1]["partial"]
    again = run_proxies(small(), out, progress=False)
    assert (out / "scores" / unit_name(IDS[0])).stat().st_mtime_ns == stamp
    assert not load_proxy_results(out)[1]["partial"]
    pd.testing.assert_frame_equal(again[["arch_id", *FAST]], one[["arch_id", *FAST]])


@pytest.mark.slow
def test_same_scores_whatever_the_worker_count(tmp_path):
    # loky workers start a fresh interpreter each (~10 s on a busy 2-core machine), hence `slow`
    one = run_proxies(small(ids=IDS[:4]), tmp_path / "one", progress=False)
    two = run_proxies(small(ids=IDS[:4]), tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(two[["arch_id", *FAST]], one[["arch_id", *FAST]])


def test_bad_input_is_one_line(tmp_path):
    with pytest.raises(StudyError, match="unknown proxy"):
        run_proxies(small(proxies=("params", "bogus")), tmp_path / "a", progress=False)
    with pytest.raises(StudyError, match="unknown NAS-Bench-201 architecture id"):
        run_proxies(small(ids=(1, 99_999)), tmp_path / "a", progress=False)
    with pytest.raises(StudyError, match="no such file"):
        get_space("nasbench201", bench=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a benchmark")
    with pytest.raises(StudyError, match="nats_bench|not a NATS-Bench"):
        get_space("nasbench201", bench=str(junk))
    # another study's folder
    out = tmp_path / "b"
    run_proxies(small(ids=(3,), proxies=("params",)), out, progress=False)
    with pytest.raises(StudyError, match="different config"):
        run_proxies(small(ids=(3,), proxies=("params", "naswot")), out, progress=False)
    # a damaged score file
    (out / "scores" / unit_name(3)).write_text("{not json")
    with pytest.raises(StudyError, match="not valid JSON"):
        run_proxies(small(ids=(3,), proxies=("params",)), out, progress=False)
    with pytest.raises(StudyError, match="not a table of this version|no results table"):
        load_proxy_results(tmp_path / "a")


def test_cli_commands(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(
        main,
        [
            "proxies",
            "--ids",
            "3,7",
            "--inputs",
            "gaussian",
            "--batch",
            "4",
            "--proxies",
            "params,naswot,rank.rtol_1e-2.mean",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "2 architectures scored" in res.output
    res = runner.invoke(main, ["proxies-report", "--in", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "report.json").read_text())["settings"]["n_with_accuracy"] == 1
    res = runner.invoke(main, ["proxies", "--ids", "3", "--proxies", "nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "unknown proxy 'nope'" in res.output
    res = runner.invoke(main, ["proxies", "--list"])
    assert res.exit_code == 0 and "naswot_eval\teval" in res.output


@pytest.mark.slow
def test_a_dask_cluster_gives_the_local_scores(tmp_path):
    # joblib's dask backend on a LocalCluster, as `rankstudy proxies --scheduler tcp://…` runs it
    import distributed

    local = run_proxies(small(ids=IDS[:3]), tmp_path / "local", progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as cluster:
        remote = run_proxies(small(ids=IDS[:3]), tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(remote[["arch_id", *FAST]], local[["arch_id", *FAST]], check_exact=True)
    assert sorted(p.name for p in (tmp_path / "dask" / "scores").iterdir()) == [unit_name(i) for i in sorted(IDS[:3])]
