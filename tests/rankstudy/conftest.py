import pytest

from rankstudy import StudyConfig


@pytest.fixture
def small_config() -> StudyConfig:
    """A study small enough for unit tests that still has every kind, several shapes and both norms."""
    return StudyConfig(n=120, seed=3, d_in=(4, 8), ratio_min=0.5, ratio_max=6.0, n_ratios=5,
                       stack_depths=(2, 3), spatial=4, block_expansion=3,
                       nonlinearities=("identity", "relu", "relu6", "silu", "elu", "softplus", "sigmoid", "mish"))
