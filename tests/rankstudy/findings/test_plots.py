"""Figures from a small real study: every file written, readable, not blank; styles distinguishable;
bad input through the CLI → one-line error, exit 2."""

import itertools
import json

import matplotlib.image
import numpy as np
import pytest
from click.testing import CliRunner

from rankstudy import StudyConfig, StudyError, load_results, run_study
from rankstudy.cli import main
from rankstudy.findings.measures import get_measure
from rankstudy.findings.plots import PAPER_FIGURE1, STYLES, binned_means, caption, plot_all, plot_paper_comparison
from rankstudy.random_nets.nonlinearities import BUILTIN_NONLINEARITIES

from ..synthetic import synthetic_table, write_study

NLS = ("identity", "relu", "silu", "sigmoid")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    config = StudyConfig(
        n=200,
        seed=5,
        d_in=(4, 8),
        ratio_min=0.5,
        ratio_max=8.0,
        n_ratios=6,
        stack_depths=(2, 3),
        spatial=4,
        block_expansion=3,
        nonlinearities=NLS,
    )
    run_study(config, device="cpu", out=out, progress=False)
    return out


@pytest.fixture(scope="module")
def figures(study, tmp_path_factory):
    table, meta = load_results(study)
    out = tmp_path_factory.mktemp("figures")
    return out, plot_all(table, meta, out, metric="normalized_rank")


def _png(path) -> np.ndarray:
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    return image


def test_every_figure_written_as_png_and_pdf(figures):
    out, paths = figures
    stems = {p.stem for p in paths}
    assert stems == {
        "rank_vs_expansion_normalized_rank",
        "paper_axis_normalized_rank",
        "depth_normalized_rank",
        "paper_comparison_normalized_rank",
        *(f"heatmap_{k}_normalized_rank" for k in ("linear", "conv3x3", "depthwise", "block", "block_conv", "stack")),
    }
    for stem in stems:
        png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
        assert png.stat().st_size > 20_000 and pdf.stat().st_size > 10_000
        assert pdf.read_bytes()[:5] == b"%PDF-"
        image = _png(png)
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_facet_adds_a_row_of_panels_per_level(study, figures, tmp_path):
    table, meta = load_results(study)
    paths = plot_all(table, meta, tmp_path, metric="effective_rank", facet="norm")
    assert [p.name for p in paths] == [
        "rank_vs_expansion_effective_rank_by_norm.png",
        "rank_vs_expansion_effective_rank_by_norm.pdf",
    ]
    single = _png(figures[0] / "rank_vs_expansion_normalized_rank.png")
    faceted = _png(paths[0])
    assert faceted.shape[0] > 1.6 * single.shape[0]  # two rows of panels (norm = bn, none)


def test_binned_means_are_the_group_means(study):
    table, meta = load_results(study)
    grid = np.geomspace(0.5, 8.0, 6)
    means = binned_means(table, "normalized_rank", grid, ["kind", "nonlinearity"])
    lin = table[(table.kind == "linear") & (table.nonlinearity == "identity") & (table.norm == "none")]
    # the linear bound: identity without BN has rank exactly min(d_in, d_out)
    assert np.allclose(lin["normalized_rank"], np.minimum(1, lin["d_in"] / lin["d_out"]))
    row = means[(means.kind == "linear") & (means.nonlinearity == "relu")].iloc[0]
    t = table[(table.kind == "linear") & (table.nonlinearity == "relu")]
    nearest = grid[np.abs(np.log(t.expansion_ratio.to_numpy())[:, None] - np.log(grid)).argmin(1)]
    assert row["mean"] == pytest.approx(t[nearest == row["grid_ratio"]]["normalized_rank"].mean())
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]


def test_caption_names_n_seed_and_config(study):
    table, meta = load_results(study)
    text = caption(table, meta)
    assert "n = 200 networks" in text and "seed 5" in text and "d_in ∈ {4, 8}" in text
    assert "init ∈ {kaiming, unit}" in text and meta["command"] in text


def test_every_builtin_nonlinearity_has_a_distinct_style():
    assert set(BUILTIN_NONLINEARITIES) <= set(STYLES)
    assert len({STYLES[n] for n in BUILTIN_NONLINEARITIES}) == len(BUILTIN_NONLINEARITIES)
    # two curves sharing a colour always differ in line style
    for a, b in itertools.combinations(BUILTIN_NONLINEARITIES, 2):
        if STYLES[a][0] == STYLES[b][0]:
            assert STYLES[a][1] != STYLES[b][1]


def test_unknown_metric_and_facet_raise():
    table, meta = synthetic_table(lambda row: 1.0, kinds=("linear",), nonlinearities=("relu",), reps=2)
    with pytest.raises(StudyError, match="unknown metric"):
        plot_all(table, meta, "/nonexistent", metric="rank_at_random")
    with pytest.raises(StudyError, match="unknown facet"):
        plot_all(table, meta, "/tmp", facet="colour")


# --- CLI -------------------------------------------------------------------------------------------------


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_cli_plot_draws_the_filtered_rows(study, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "plot",
            "--in",
            str(study),
            "--out",
            str(tmp_path),
            "--metric",
            "rank_rtol_1e-2",
            "--kinds",
            "linear",
            "--nonlinearities",
            "relu,identity",
        ],
    )
    assert result.exit_code == 0, result.output
    # no stacks selected → no depth figure; one kind → one heatmap
    assert {p.name for p in tmp_path.iterdir()} == {
        f"{stem}.{ext}"
        for ext in ("png", "pdf")
        for stem in (
            "rank_vs_expansion_rank_rtol_1e-2",
            "paper_axis_rank_rtol_1e-2",
            "heatmap_linear_rank_rtol_1e-2",
            "paper_comparison_rank_rtol_1e-2",
        )
    }
    assert result.stdout.startswith("8 files")  # the progress bar goes to stderr


def test_cli_plot_bad_input(study, tmp_path):
    runner = CliRunner()
    assert "no results table" in _one_line_error(runner.invoke(main, ["plot", "--in", str(tmp_path / "none")]))
    table, meta = synthetic_table(
        lambda row: 1.0, kinds=("linear", "stack"), nonlinearities=("identity", "relu"), reps=2
    )
    old = write_study(tmp_path / "old", table, {**meta, "schema_version": 0})
    assert "schema version" in _one_line_error(runner.invoke(main, ["plot", "--in", str(old)]))
    # relu and linear both exist, but no linear relu rows: the selection is empty
    only = table[~((table.kind == "linear") & (table.nonlinearity == "relu"))]
    study_dir = write_study(tmp_path / "partial", only, meta)
    msg = _one_line_error(
        runner.invoke(
            main,
            [
                "plot",
                "--in",
                str(study_dir),
                "--out",
                str(tmp_path / "f"),
                "--kinds",
                "linear",
                "--nonlinearities",
                "relu",
            ],
        )
    )
    assert "selection is empty" in msg
    assert "unknown metric" in _one_line_error(runner.invoke(main, ["plot", "--in", str(study), "--metric", "x"]))
    assert "not in the table" in _one_line_error(runner.invoke(main, ["plot", "--in", str(study), "--kinds", "cnn"]))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.parquet").write_bytes(b"not parquet")
    (tmp_path / "broken" / "metadata.json").write_text(json.dumps(meta))
    assert "parquet" in _one_line_error(runner.invoke(main, ["plot", "--in", str(tmp_path / "broken")]))


def test_paper_comparison_has_a_panel_per_figure1_panel(study, tmp_path):
    table, meta = load_results(study)
    [png, _] = plot_paper_comparison(table, meta, tmp_path, get_measure("bound_relative_rank"))
    assert png.name == "paper_comparison_bound_relative_rank.png" and _png(png)[..., :3].std() > 0.05
    assert set(PAPER_FIGURE1) == {"a", "b", "c", "d"}
    for panel in PAPER_FIGURE1.values():  # read values: dimension ratios in (0, 1], ranges low ≤ high
        for points in panel.values():
            assert all(0 < x <= 1 and 0 <= lo <= hi <= 1 for x, lo, hi in points)


def test_cli_plot_progress_bar_on_stderr_unless_quiet(study, tmp_path):
    argv = ["plot", "--in", str(study), "--out", str(tmp_path), "--kinds", "linear", "--nonlinearities", "relu"]
    shown = CliRunner().invoke(main, argv)
    assert shown.exit_code == 0, shown.output
    assert "figures: 100%" in shown.stderr and "figures:" not in shown.stdout
    quiet = CliRunner().invoke(main, [*argv, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "files →" in quiet.stdout


def test_plot_all_shows_no_bar_by_default(study, tmp_path, capsys):
    table, meta = load_results(study)
    plot_all(table, meta, tmp_path, kinds=("linear",), nonlinearities=("relu",))
    assert "figures" not in capsys.readouterr().err
