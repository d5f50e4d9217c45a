"""The generator: seeded, reproducible, balanced, validated."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from rankstudy import KINDS, StudyConfig, StudyError, list_nonlinearities, sample_networks
from rankstudy.random_nets.nonlinearities import get_nonlinearity, register_nonlinearity
from rankstudy.random_nets.sampling import row_seed


def test_same_config_same_table_and_other_seed_other_table():
    a, b = sample_networks(StudyConfig(n=500)), sample_networks(StudyConfig(n=500))
    pd.testing.assert_frame_equal(a, b)
    c = sample_networks(StudyConfig(n=500, seed=1))
    assert not a["seed"].equals(c["seed"]) and not a["kind"].equals(c["kind"])


def test_row_seed_depends_only_on_study_seed_and_id():
    small, big = sample_networks(StudyConfig(n=50)), sample_networks(StudyConfig(n=400))
    assert small["seed"].tolist() == big["seed"].iloc[:50].tolist()
    assert small["seed"].tolist() == [row_seed(0, i) for i in range(50)]
    assert len(set(big["seed"])) == 400


def test_default_study_is_balanced_and_in_range():
    t = sample_networks(StudyConfig())
    assert len(t) == 10_000 and t["id"].tolist() == list(range(10_000))
    assert set(t.kind) == set(KINDS) and t.kind.value_counts().max() - t.kind.value_counts().min() <= 1
    assert len(set(t.nonlinearity)) >= 14
    assert t.nonlinearity.value_counts().max() - t.nonlinearity.value_counts().min() <= 1
    assert (t.d_out >= 1).all() and (t.n_samples >= t.d_out).all()
    assert t.expansion_ratio.min() < 0.6 and t.expansion_ratio.max() > 19
    assert np.allclose(t.expansion_ratio * t.dimension_ratio, 1.0)
    assert set(t[t.kind == "stack"].depth) == {2, 3, 4} and set(t[t.kind != "stack"].depth) == {1}
    assert set(t.n_over_d) == {1.0, 2.0} and set(t.init) == {"kaiming", "unit"} and set(t.norm) == {"none", "bn"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"n": 0}, "positive"),
        ({"kinds": ("conv",)}, "unknown kind 'conv'"),
        ({"nonlinearities": ("swish2",)}, "unknown nonlinearity 'swish2'"),
        ({"ratio_min": 0.01}, "d_out < 1"),
        ({"ratio_min": 3.0, "ratio_max": 2.0}, "ratio_min <= ratio_max"),
        ({"n_over_d": (0.0,)}, "n_over_d"),
        ({"inits": ("orthogonal",)}, "unknown init"),
        ({"input_dists": ("cauchy",)}, "unknown input distribution"),
        ({"stack_depths": (1,)}, "stack depths"),
        ({"block_expansion": (3, 0)}, "block_expansion"),
        ({"block_expansion": ()}, "block_expansion"),
    ],
)
def test_impossible_configs_are_rejected(kwargs, match):
    with pytest.raises(StudyError, match=match):
        StudyConfig(**kwargs).validate()


def test_registry_is_extensible():
    assert len(list_nonlinearities()) >= 14
    register_nonlinearity("test_square", lambda x: x * x, overwrite=True)
    assert get_nonlinearity("test_square")(np.float64(3.0)) == 9.0
    with pytest.raises(StudyError, match="already registered"):
        register_nonlinearity("relu", lambda x: x)
    t = sample_networks(StudyConfig(n=10, nonlinearities=("test_square",)))
    assert set(t.nonlinearity) == {"test_square"}


def test_several_block_expansions_are_balanced_over_the_block_rows():
    cfg = StudyConfig(n=600, kinds=("linear", "block", "stack"), block_expansion=(2, 4, 6), input_dists=("gaussian",))
    t = sample_networks(cfg)
    blocks = t[t.kind != "linear"]
    counts = blocks.block_expansion.value_counts()
    assert set(counts.index) == {2, 4, 6} and counts.max() - counts.min() <= 1
    assert (t[t.kind == "linear"].block_expansion == 0).all()
    # one expansion, as a tuple or an int, keeps the table of earlier versions (nothing else is drawn)
    one = sample_networks(StudyConfig(n=600, kinds=("linear", "block", "stack"), input_dists=("gaussian",)))
    pd.testing.assert_frame_equal(one, sample_networks(replace(cfg, block_expansion=(6,))))
    assert (t.drop(columns="block_expansion") == one.drop(columns="block_expansion")).all().all()


def test_config_round_trips_through_dict():
    cfg = StudyConfig(n=7, d_in=(3, 5), kinds=("linear", "stack"), block_expansion=(3, 6))
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(StudyError, match="unknown study config keys"):
        StudyConfig.from_dict({**cfg.to_dict(), "colour": "red"})


def test_measured_n_over_d_is_recorded_and_binned():
    from rankstudy.findings.measures import check_table, n_over_d_bin

    t = sample_networks(StudyConfig(n=2000))
    assert np.allclose(t.n_over_d_actual, t.n_samples / t.d_out)
    assert (t.n_over_d_actual >= t.n_over_d - 1e-12).all()
    linear, conv = t[t.kind == "linear"], t[t.kind != "linear"]
    assert np.allclose(linear.n_over_d_actual, np.ceil(linear.n_over_d * linear.d_out) / linear.d_out)
    assert (conv.n_over_d_actual >= 2 * conv.n_over_d).any()  # whole 8×8 maps round N up
    assert list(n_over_d_bin([1.0, 1.5, 1.6, 3.0, 3.5])) == ["1-1.5", "1-1.5", "1.5-3", "1.5-3", ">3"]
    assert set(
        check_table(
            t.assign(
                **{
                    c: 0.5
                    for c in (
                        "normalized_rank",
                        "normalized_rank_rtol_1e-3",
                        "normalized_rank_rtol_1e-2",
                        "normalized_effective_rank",
                        "normalized_stable_rank",
                    )
                }
            )
        )["n_over_d_bin"]
    ) == {"1-1.5", "1.5-3", ">3"}


def test_input_distribution_is_a_balanced_factor():
    t = sample_networks(StudyConfig(n=400))
    counts = t.input_dist.value_counts()
    assert set(counts.index) == {"gaussian", "halfnormal", "correlated", "fmnist"} and counts.max() - counts.min() <= 1
