"""The seeded input batch: fmnist (from the fake images of tests/rankstudy/conftest.py), gaussian, cifar10."""

import pytest
import torch

from rankstudy.errors import StudyError
from rankstudy.proxies.inputs import make_batch


def test_fmnist_is_padded_replicated_and_seeded():
    a = make_batch("fmnist", 6, seed=3, num_classes=10)
    assert a.images.shape == (6, 3, 32, 32) and a.labels.shape == (6,)
    assert torch.equal(a.images[:, 0], a.images[:, 2])
    border = a.images[:, 0, :2, :]
    assert torch.allclose(border, border.flatten()[0].expand_as(border))  # the zero padding, standardised
    assert not torch.allclose(a.images[:, 0, 2:30, 2:30], border.flatten()[0])
    b = make_batch("fmnist", 6, seed=3, num_classes=10)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert int(a.labels.max()) < 10
    assert make_batch("fmnist", 50, seed=0).images.shape[0] == 50  # more than the 40 fake images: replacement


def test_gaussian_and_bad_names():
    g = make_batch("gaussian", 4, seed=0, num_classes=120)
    assert g.images.shape == (4, 3, 32, 32) and int(g.labels.max()) < 120
    assert not torch.equal(g.images, make_batch("gaussian", 4, seed=1).images)
    with pytest.raises(StudyError, match="unknown inputs"):
        make_batch("imagenet", 4)
    with pytest.raises(StudyError, match="at least 2"):
        make_batch("gaussian", 1)


def test_cifar10_without_the_dataset_is_one_line(tmp_path):
    with pytest.raises(StudyError, match="CIFAR-10"):
        make_batch("cifar10", 4, data_root=str(tmp_path))
