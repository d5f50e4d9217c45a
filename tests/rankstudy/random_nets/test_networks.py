"""Random networks: per-row determinism, and the forward pass checked against torch.nn references."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from rankstudy import StudyConfig, build_features, rank_metrics, rebuild_features, sample_networks
from rankstudy.random_nets.networks import _conv3x3, _draw_row
from rankstudy.random_nets.sampling import SHAPE_COLUMNS, stack_widths


@pytest.fixture
def table(small_config):
    return sample_networks(small_config)


def groups(table):
    return [g for _, g in table.groupby(list(SHAPE_COLUMNS)) if len(g) >= 2]


def test_a_row_does_not_depend_on_its_batch(table):
    checked = 0
    for group in groups(table):
        together = build_features(group)
        for i in range(len(group)):
            alone = rebuild_features(group.iloc[i])
            assert torch.equal(together[i], alone), group.iloc[i].to_dict()
            checked += 1
    assert checked >= 20


def test_features_do_not_depend_on_thread_count(table):
    group = groups(table)[0]
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = build_features(group)
    finally:
        torch.set_num_threads(n)
    assert torch.equal(one, build_features(group))


def test_feature_shapes(table):
    for row in table.itertuples(index=False):
        f = rebuild_features(row._asdict())
        assert f.shape == (row.d_out, row.n_samples) and f.dtype == torch.float32


def one_row(table, **where) -> pd.Series:
    sel = table
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel), where
    return sel.iloc[0]


def act(name):
    return {
        "identity": lambda x: x,
        "relu": F.relu,
        "silu": F.silu,
        "elu": F.elu,
        "relu6": F.relu6,
        "softplus": F.softplus,
        "sigmoid": torch.sigmoid,
        "mish": F.mish,
    }[name]


def bn(z):  # torch's own batch norm over (images, H, W) or over samples
    return F.batch_norm(z, None, None, training=True, eps=1e-5)


def test_linear_matches_reference(table):
    for norm in ("none", "bn"):
        row = one_row(table, kind="linear", norm=norm, nonlinearity="silu")
        x, (w,) = _draw_row(row)
        z = w @ x
        if norm == "bn":
            z = bn(z.T).T
        torch.testing.assert_close(rebuild_features(row), F.silu(z), rtol=1e-5, atol=1e-5)


def test_identity_linear_rank_is_the_linear_bound():
    rows = sample_networks(StudyConfig(n=24, kinds=("linear",), nonlinearities=("identity",), norms=("none",)))
    assert rows.expansion_ratio.min() < 1 < rows.expansion_ratio.max()
    for _, row in rows.iterrows():
        assert rank_metrics(rebuild_features(row))["rank"].item() == min(row.d_in, row.d_out)


def to_maps(m, s):  # (C, n_img·s·s) → (n_img, C, s, s)
    return m.view(m.shape[0], -1, s, s).transpose(0, 1)


def test_conv3x3_matches_conv2d(table):
    for norm in ("none", "bn"):
        row = one_row(table, kind="conv3x3", norm=norm)
        x, (w,) = _draw_row(row)
        assert w.shape == (row.d_out, row.d_in * 9)
        z = F.conv2d(to_maps(x, row.spatial), w.view(row.d_out, row.d_in, 3, 3), padding=1)
        if norm == "bn":
            z = bn(z)
        ref = act(row.nonlinearity)(z).transpose(0, 1).reshape(row.d_out, -1)
        torch.testing.assert_close(rebuild_features(row), ref, rtol=1e-4, atol=1e-4)


def test_depthwise_matches_conv2d(table):
    for norm in ("none", "bn"):
        row = one_row(table, kind="depthwise", norm=norm)
        x, (w1, wd) = _draw_row(row)
        s = row.spatial
        z = F.conv2d(to_maps(x, s), w1[:, :, None, None])
        z = F.conv2d(z, wd.view(-1, 1, 3, 3), padding=1, groups=row.d_out)
        if norm == "bn":
            z = bn(z)
        ref = act(row.nonlinearity)(z).transpose(0, 1).reshape(row.d_out, -1)
        torch.testing.assert_close(rebuild_features(row), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["block", "block_conv", "stack"])
def test_blocks_match_nn_reference(table, kind):
    for norm in ("none", "bn"):
        row = one_row(table, kind=kind, norm=norm)
        x, weights = _draw_row(row)
        s, f = row.spatial, act(row.nonlinearity)
        widths = stack_widths(row.d_in, row.d_out, row.depth) if kind == "stack" else [row.d_in, row.d_out]
        maybe_bn = bn if norm == "bn" else (lambda t: t)
        z = to_maps(x, s)
        for j, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            e, d, p = weights[3 * j : 3 * j + 3]
            h = f(maybe_bn(F.conv2d(z, e[:, :, None, None])))
            if kind == "block_conv":  # the paper's Figure 1 (c): a full 3×3 conv in the middle
                h = f(maybe_bn(F.conv2d(h, d.view(h.shape[1], h.shape[1], 3, 3), padding=1)))
            else:
                h = f(maybe_bn(F.conv2d(h, d.view(-1, 1, 3, 3), padding=1, groups=h.shape[1])))
            out = maybe_bn(F.conv2d(h, p[:, :, None, None]))
            if c_out >= c_in:
                out = torch.cat([out[:, :c_in] + z, out[:, c_in:]], dim=1)
            z = out
        ref = z.transpose(0, 1).reshape(row.d_out, -1)
        got = rebuild_features(row)
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-3 * ref.abs().max().item())


def test_conv3x3_matches_conv2d_and_does_not_depend_on_its_batch():
    # the primitive a full 3×3 conv layer (weight (d_out, d_in, 3, 3)) is built with
    gen = torch.Generator().manual_seed(1)
    for b, c_in, c_out, n_img, s in [(3, 6, 24, 3, 8), (4, 5, 7, 2, 4), (2, 3, 5, 1, 8)]:
        x = torch.randn(b, c_in, n_img * s * s, generator=gen)
        w = torch.randn(b, c_out, c_in, 3, 3, generator=gen)
        out = _conv3x3(w, x, s)
        for i in range(b):
            ref = F.conv2d(to_maps(x[i], s), w[i], padding=1).transpose(0, 1).reshape(c_out, -1)
            torch.testing.assert_close(out[i], ref, rtol=1e-5, atol=1e-5)
            assert torch.equal(out[i], _conv3x3(w[i : i + 1].clone(), x[i : i + 1].clone(), s)[0])


def test_default_shapes_do_not_depend_on_the_batch():
    # Default-study shapes (odd N for linear rows, 8×8 maps) in batches mixing nonlinearities and norms.
    table = sample_networks(StudyConfig(n=1500, d_in=(8, 16), ratio_max=5.0))
    checked = {kind: 0 for kind in table.kind.unique()}
    for _, group in table.groupby(list(SHAPE_COLUMNS)):
        kind = group.kind.iloc[0]
        if checked[kind] == 3 or len(group) < 3 or group.nonlinearity.nunique() < 2 or group.norm.nunique() < 2:
            continue
        batch = group.sort_values(["norm", "nonlinearity", "id"]).head(8)
        together = build_features(batch)
        for i in range(len(batch)):
            assert torch.equal(together[i], rebuild_features(batch.iloc[i])), batch.iloc[i].to_dict()
        checked[kind] += 1
    assert set(checked.values()) == {3}, checked
