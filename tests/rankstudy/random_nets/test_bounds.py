"""Structural bounds against float64 SVD ranks: no network exceeds its bound, identity networks reach the
linear bound exactly, nonlinear networks reach the structural bound, and the bound-relative columns."""

import numpy as np
import pandas as pd
import pytest
import torch

from rankstudy import StudyConfig, rebuild_features, run_study, sample_networks
from rankstudy.random_nets.bounds import linear_bound, structural_bound, with_bound_columns
from rankstudy.random_nets.networks import build_features_with_inputs, im2col


def svd_rank(row) -> int:
    """Returns the float64 SVD rank of the row's features, at a tolerance far above float32 noise."""
    s = torch.linalg.svdvals(rebuild_features(row).double())
    return int((s > s[0] * 1e-5).sum()) if s[0] > 0 else 0


@pytest.fixture(scope="module")
def rows():
    cfg = StudyConfig(
        n=180,
        seed=1,
        d_in=(2, 4, 6),
        ratio_min=0.5,
        ratio_max=12.0,
        n_ratios=8,
        spatial=4,
        block_expansion=3,
        stack_depths=(2, 3),
        nonlinearities=("identity", "tanh", "elu"),
        norms=("none", "bn"),
        inits=("kaiming",),
        n_over_d=(1.0,),
        input_dists=("gaussian",),
    )
    t = sample_networks(cfg)
    return [(r, svd_rank(r)) for _, r in t.iterrows()]


def test_no_network_exceeds_its_structural_bound(rows):
    assert all(rank <= structural_bound(r) for r, rank in rows)
    assert {r.kind for r, _ in rows} == {"linear", "conv3x3", "depthwise", "block", "block_conv", "stack"}


def test_identity_networks_reach_the_linear_bound_exactly(rows):
    checked = [(r, rank) for r, rank in rows if r.nonlinearity == "identity" and r.norm == "none"]
    assert len({r.kind for r, _ in checked}) == 6 and len(checked) >= 20
    for r, rank in checked:
        assert rank == linear_bound(r), r.to_dict()
    # and the bound is not trivial: for many rows it is below both d_out and N
    assert sum(linear_bound(r) < min(r.d_out, r.n_samples) for r, _ in checked) >= 5


def test_nonlinear_networks_reach_the_structural_bound(rows):
    checked = [(r, rank) for r, rank in rows if r.nonlinearity != "identity" and r.norm == "none" and r.d_in >= 4]
    assert len(checked) >= 30
    assert all(rank == structural_bound(r) for r, rank in checked)
    blocks = [r for r, _ in checked if r.kind in ("block", "block_conv") and structural_bound(r) < r.d_out]
    assert blocks, "some block must be capped below d_out by its (t + 1)·d_in bound"


def test_block_bound_is_expansion_plus_one_times_d_in():
    row = pd.Series(
        {
            "kind": "block",
            "d_in": 8,
            "d_out": 160,
            "n_samples": 640,
            "depth": 1,
            "spatial": 8,
            "block_expansion": 6,
            "norm": "bn",
        }
    )
    assert structural_bound(row) == 7 * 8
    assert structural_bound(pd.Series({**row, "d_out": 4})) == 4  # no shortcut, d_out caps
    assert structural_bound(pd.Series({**row, "d_out": 6, "d_in": 8})) == 6
    assert linear_bound(pd.Series({**row, "kind": "depthwise"})) == 9 * 8  # 9 shifted copies of X
    assert linear_bound(pd.Series({**row, "kind": "linear"})) == 8


def test_bound_relative_columns_divide_by_the_capped_bound():
    cfg = StudyConfig(
        n=40,
        seed=2,
        d_in=(4,),
        ratio_min=4.0,
        ratio_max=12.0,
        n_ratios=3,
        spatial=4,
        block_expansion=2,
        kinds=("linear", "block"),
        input_dists=("gaussian",),
    )
    t = run_study(cfg, device="cpu", workers=1, progress=False)
    cap = np.minimum(t.d_out, t.structural_bound)
    np.testing.assert_allclose(t.bound_relative_rank, t["rank"] / cap)
    np.testing.assert_allclose(t["bound_relative_rank_rtol_1e-2"], t["rank_rtol_1e-2"] / cap)
    assert (t.bound_relative_rank <= 1 + 1e-12).all()
    lin = t[t.kind == "linear"]
    np.testing.assert_allclose(lin.bound_relative_rank, lin.normalized_rank)  # one layer: the same
    blocks = t[t.kind == "block"]
    assert (blocks.bound_relative_rank > blocks.normalized_rank).all()  # capped at 3·d_in < d_out
    pd.testing.assert_frame_equal(with_bound_columns(t.drop(columns=["structural_bound"])), t, check_like=True)


def test_bounds_use_the_inputs_measured_rank():
    """An input of rank 5 < d_in = 8 caps what a network without nonlinearity can reach, and a block's shortcut."""
    row = pd.Series({"kind": "linear", "d_in": 8, "d_out": 32, "n_samples": 64, "depth": 1, "spatial": 1})
    assert linear_bound(row) == 8 and linear_bound(pd.Series({**row, "input_rank": 5})) == 5
    assert linear_bound(pd.Series({**row, "input_rank": float("nan")})) == 8  # not measured: min(d_in, N)
    assert structural_bound(pd.Series({**row, "input_rank": 5})) == 32  # f after the layer lifts it again
    conv = pd.Series({**row, "kind": "conv3x3", "d_out": 100, "n_samples": 256, "spatial": 4})
    assert linear_bound(conv) == 72 and linear_bound(pd.Series({**conv, "input_rank": 5})) == 45
    assert linear_bound(pd.Series({**conv, "input_rank": 5, "input_rank_3x3": 40})) == 40
    block = pd.Series({**conv, "kind": "block", "d_out": 160, "n_samples": 640, "block_expansion": 6, "norm": "bn"})
    assert structural_bound(block) == 7 * 8 and structural_bound(pd.Series({**block, "input_rank": 5})) == 6 * 8 + 5


def test_input_rank_columns_are_the_ranks_of_the_rebuilt_inputs():
    """Against a float64 SVD of each row's rebuilt X and of its 3×3 im2col, at the float32 rule's tolerance."""
    cfg = StudyConfig(
        n=36,
        seed=4,
        d_in=(2, 6),
        ratio_min=0.5,
        ratio_max=4.0,
        n_ratios=3,
        spatial=4,
        block_expansion=2,
        kinds=("linear", "conv3x3", "block"),
        nonlinearities=("identity", "relu"),
        input_dists=("gaussian", "fmnist"),
    )
    t = run_study(cfg, device="cpu", workers=1, progress=False)
    for _, row in t.iterrows():
        frame = pd.DataFrame([row.to_dict()])
        x = build_features_with_inputs(frame)[1]
        for matrix, column in (
            (x[0], "input_rank"),
            (im2col(x, int(row.spatial))[0] if row.spatial > 1 else x[0], "input_rank_3x3"),
        ):
            s = torch.linalg.svdvals(matrix.double())
            tol = s[0] * max(matrix.shape) * torch.finfo(torch.float32).eps
            assert row[column] == int((s > tol).sum()), (column, row.to_dict())
    assert (t.input_rank <= np.minimum(t.d_in, t.n_samples)).all()
