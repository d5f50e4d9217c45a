import os

import pytest

from rankstudy import StudyConfig
from rankstudy.random_nets.inputs import IMAGE_FILE, IMAGES_ENV
from tests.fake_fashion_mnist import idx_bytes


@pytest.fixture(scope="session", autouse=True)
def fake_images(tmp_path_factory):
    """Points the `fmnist` input distribution at 40 random fake images, so the tests need no dataset."""
    folder = tmp_path_factory.mktemp("fmnist")
    (folder / IMAGE_FILE).write_bytes(idx_bytes("images", 40, seed=1))
    old = os.environ.get(IMAGES_ENV)
    os.environ[IMAGES_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(IMAGES_ENV, None)
    else:
        os.environ[IMAGES_ENV] = old


@pytest.fixture
def small_config() -> StudyConfig:
    """A study small enough for unit tests that still has every kind, several shapes, both norms and
    every input distribution."""
    return StudyConfig(
        n=150,
        seed=3,
        d_in=(4, 8),
        ratio_min=0.5,
        ratio_max=6.0,
        n_ratios=5,
        stack_depths=(2, 3),
        spatial=4,
        block_expansion=3,
        nonlinearities=("identity", "relu", "relu6", "silu", "elu", "softplus", "sigmoid", "mish"),
        input_dists=("gaussian", "uniform", "halfnormal", "correlated", "fmnist"),
    )
