"""Input distributions: deterministic by seed, the documented statistics, real patches laid out as stated."""

import json
import math

import pytest
import torch

from rankstudy import StudyConfig, StudyError, rebuild_features, sample_networks
from rankstudy.random_nets.inputs import IMAGES_ENV, draw_correlated, draw_patches, fashion_mnist_images
from rankstudy.random_nets.networks import _draw, _draw_row
from rankstudy.random_nets.run import run_study


@pytest.mark.parametrize("dist", ["gaussian", "uniform", "halfnormal", "correlated", "fmnist"])
def test_inputs_are_deterministic_by_seed(dist):
    def draw(seed):
        return _draw(torch.Generator().manual_seed(seed), (9, 2 * 16), dist, spatial=4)

    a, b, c = draw(5), draw(5), draw(6)
    assert a.shape == (9, 32) and torch.equal(a, b) and not torch.equal(a, c)


def test_rows_with_structured_inputs_rebuild_exactly(small_config):
    t = sample_networks(small_config)
    for dist in ("correlated", "fmnist"):
        row = t[(t.input_dist == dist) & (t.kind == "conv3x3")].iloc[0]
        assert torch.equal(rebuild_features(row), rebuild_features(row))
        assert torch.equal(_draw_row(row)[0], _draw_row(row)[0])


def test_correlated_inputs_are_low_rank_plus_noise():
    x = draw_correlated(torch.Generator().manual_seed(0), 64, 20_000)
    assert torch.allclose(x.var(dim=1), torch.ones(64), atol=0.05)
    s = torch.linalg.svdvals(x.double()) ** 2
    k = math.ceil(64 / 8)
    assert s[:k].sum() / s.sum() > 0.85  # 90 % of the variance in k = d_in/8 directions
    assert s[k:].max() / s[0] < 0.05 and s[-1] > 0  # then a noise floor: low rank plus noise, full rank


def test_patches_are_shifted_views_of_one_image():
    _, mean, std = fashion_mnist_images()
    d_in, s = 7, 4  # k = 3: channel j is the image shifted by divmod(j, 3)
    x = draw_patches(torch.Generator().manual_seed(1), d_in, 2 * s * s, s)
    maps = (x * std + mean).view(d_in, 2, s, s)
    # channel j at (y, x) equals channel 0 at (y + dy, x + dx) wherever both are inside the map
    for j in range(d_in):
        dy, dx = divmod(j, 3)
        torch.testing.assert_close(maps[j, :, : s - dy, : s - dx], maps[0, :, dy:, dx:])
    pixels = (maps * 255).round()
    assert torch.allclose(maps * 255, pixels, atol=1e-3)  # real 8-bit pixels, standardised back


def test_fmnist_needs_images_and_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv(IMAGES_ENV, str(tmp_path))
    with pytest.raises(StudyError, match="dataset-fashion-mnist"):
        StudyConfig(n=4, input_dists=("fmnist",)).validate()
    with pytest.raises(StudyError, match="d_in ≤ 441"):
        StudyConfig(n=4, d_in=(512,), input_dists=("fmnist",)).validate()


def test_default_study_without_images_leaves_out_fmnist_and_says_so(monkeypatch, tmp_path):
    with_images = sample_networks(StudyConfig(n=50))  # the conftest's fake images: the default keeps fmnist
    assert "fmnist" in set(with_images["input_dist"])
    monkeypatch.setenv(IMAGES_ENV, str(tmp_path))  # an empty folder: no images on this machine
    with pytest.warns(UserWarning, match="leaves out the fmnist.*dataset-fashion-mnist") as record:
        table = sample_networks(StudyConfig(n=50))
    assert len(record) == 1
    assert len(table) == 50 and set(table["input_dist"]) == {"gaussian", "halfnormal", "correlated"}
    with pytest.warns(UserWarning, match="leaves out the fmnist"):
        assert StudyConfig().validate().input_dists == ("gaussian", "halfnormal", "correlated")
    explicit = ("gaussian", "halfnormal", "correlated", "fmnist")
    with pytest.raises(StudyError, match="input distribution fmnist needs"):
        sample_networks(StudyConfig(n=50, input_dists=explicit))


def test_default_study_without_images_records_the_inputs_it_used(monkeypatch, tmp_path):
    monkeypatch.setenv(IMAGES_ENV, str(tmp_path / "empty"))
    with pytest.warns(UserWarning, match="leaves out the fmnist"):
        run_study(
            StudyConfig(n=12, kinds=("linear",), d_in=(4,), n_ratios=2),
            "cpu",
            tmp_path / "out",
            workers=1,
            progress=False,
        )
    for name in ("manifest.json", "metadata.json"):
        recorded = json.loads((tmp_path / "out" / name).read_text())["config"]["input_dists"]
        assert recorded == ["gaussian", "halfnormal", "correlated"], name
