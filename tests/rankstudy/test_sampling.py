"""The generator: seeded, reproducible, balanced, validated."""
import numpy as np
import pandas as pd
import pytest

from rankstudy import KINDS, StudyConfig, StudyError, list_nonlinearities, sample_networks
from rankstudy.nonlinearities import get_nonlinearity, register_nonlinearity
from rankstudy.sampling import row_seed


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


@pytest.mark.parametrize("kwargs,match", [
    ({"n": 0}, "positive"), ({"kinds": ("conv",)}, "unknown kind 'conv'"),
    ({"nonlinearities": ("swish2",)}, "unknown nonlinearity 'swish2'"),
    ({"ratio_min": 0.01}, "d_out < 1"), ({"ratio_min": 3.0, "ratio_max": 2.0}, "ratio_min <= ratio_max"),
    ({"n_over_d": (0.0,)}, "n_over_d"), ({"inits": ("orthogonal",)}, "unknown init"),
    ({"input_dist": "cauchy"}, "unknown input distribution"), ({"stack_depths": (1,)}, "stack depths"),
])
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


def test_config_round_trips_through_dict():
    cfg = StudyConfig(n=7, d_in=(3, 5), kinds=("linear", "stack"))
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(StudyError, match="unknown study config keys"):
        StudyConfig.from_dict({**cfg.to_dict(), "colour": "red"})
