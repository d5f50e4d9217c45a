"""Each proxy on a case with a known answer, the rank measures against float64 SVD of the hooked features, and
the harness's bookkeeping (one forward for every hook, BN buffers restored between passes, same seed → same
scores)."""

import math

import pytest
import torch
from torch import nn

from rankstudy.errors import StudyError
from rankstudy.proxies import scores
from rankstudy.proxies.nb201 import Cell, build_network, cell_string

EPS32 = torch.finfo(torch.float32).eps


def test_hamming_kernel_and_naswot_on_hand_made_codes():
    codes = torch.tensor([[1, 0, 1], [1, 1, 0], [0, 0, 0]])
    # every pair differs in 2 of N_A = 3 units: K = 3 − d_H = [[3, 1, 1], [1, 3, 1], [1, 1, 3]], det 20
    expected = torch.tensor([[3.0, 1, 1], [1, 3, 1], [1, 1, 3]], dtype=torch.float64)
    assert torch.equal(scores.hamming_kernel(codes), expected)
    assert scores.naswot_score(expected) == pytest.approx(math.log(20))
    assert scores.naswot_score(torch.ones(2, 2)) == -math.inf


class TwoReLUs(nn.Module):
    """x → ReLU twice (two modules reading one tensor) → a linear layer."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.ReLU(), nn.ReLU()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(self.a(x) + self.b(x))


def test_naswot_through_a_network_counts_every_relu_module():
    x = torch.tensor([[1.0, -1.0, 2.0], [3.0, 0.5, -1.0], [-1.0, -2.0, -3.0]])  # codes as above
    got, _ = scores.score_network(TwoReLUs(), x, torch.zeros(3, dtype=torch.long), ["naswot"])
    # two ReLU modules read the same input: K = 2 · [[3, 1, 1], [1, 3, 1], [1, 1, 3]], det 8 · 20
    assert got["naswot"] == pytest.approx(math.log(160))


def test_synflow_of_a_tiny_linear_net_by_hand():
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 1.0], [-1.0, 3.0]]))
        net[2].weight.copy_(torch.tensor([[2.0, -1.0, 0.5]]))
    # R = 1ᵀ|W2||W1|1 = 2·3 + 1·1.5 + 0.5·4 = 9.5; Σ θ ∂R/∂θ = 2R (R is linear in each layer's |θ|)
    assert scores.synflow_score(net, (1, 2)) == pytest.approx(math.log(19.0), rel=1e-12)
    assert net[0].weight[0, 1] == -2.0  # scored on a copy: the network keeps its signs


def test_synflow_removes_batchnorm():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(1.0)
    # without BN: R = 1ᵀ·1·1·1 = 4 (2 × 2 × 1 paths of weight 1), score 2R = 8
    assert scores.synflow_score(net, (1, 2)) == pytest.approx(math.log(8.0))


def test_jacob_cov_of_uncorrelated_rows():
    j = torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])  # correlation matrix I₂
    k = scores.JACOB_K
    assert scores.jacob_cov_score(j) == pytest.approx(-2 * (math.log(1 + k) + 1 / (1 + k)))


def test_zico_by_hand():
    # layer 1: g = (1, 2) and (3, 2): std (1, 0), mean|g| (2, 2): only the first entry counts, 2/1 → log 2
    # layer 2: both gradients 0: std 0 everywhere, left out
    g1 = [torch.tensor([1.0, 2.0]), torch.zeros(2)]
    g2 = [torch.tensor([3.0, 2.0]), torch.zeros(2)]
    assert scores.zico_score(g1, g2) == pytest.approx(math.log(2.0))


def test_meco_min_eigenvalue_matches_corrcoef_and_zeroes_constant_channels():
    f = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # uncorrelated: λ_min 1
    g = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])  # a constant channel: λ_min 0
    assert scores.meco_score([f.reshape(2, 3, 1)]) == pytest.approx(1.0)
    assert scores.meco_score([g.reshape(3, 1, 3)]) == pytest.approx(0.0, abs=1e-12)
    x = torch.randn(5, 4, 4, generator=torch.Generator().manual_seed(0))
    corr = torch.corrcoef(x.reshape(5, -1).double())
    assert scores.meco_score([x]) == pytest.approx(float(torch.linalg.eigvalsh(corr)[0]), rel=1e-9)


def _hooked_cell_outputs(net, x):
    outs = []
    handles = [
        m.register_forward_hook(lambda m, i, o: outs.append(o.detach())) for m in net.modules() if isinstance(m, Cell)
    ]
    net.train()
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return outs


def _by_svd(out: torch.Tensor) -> dict[str, float]:
    c = out.shape[1]
    f = out.transpose(0, 1).reshape(c, -1).double()
    n = f.shape[1]
    s = torch.linalg.svdvals(f)
    p = s / s.sum()
    sc = torch.linalg.svdvals(f - f.mean(dim=1, keepdim=True))
    q = sc**2 / (sc**2).sum()
    entropy = lambda v: float(-(v[v > 0] * v[v > 0].log()).sum())
    return {
        "float32": int(torch.linalg.matrix_rank(f, rtol=max(c, n) * EPS32)) / c,
        "rtol_1e-3": int((s > 1e-3 * s[0]).sum()) / c,
        "rtol_1e-2": int((s > 1e-2 * s[0]).sum()) / c,
        "effective": math.exp(entropy(p)) / c,
        "effective_cov": math.exp(entropy(q)) / c,
        "stable": float((s**2).sum() / s[0] ** 2) / c,
        "nuclear": float(s.sum()) / (c * math.sqrt(n)),
        "nuclear_rank": float(s.sum() ** 2 / (s**2).sum()) / c,
    }


def test_rank_measures_equal_float64_svd_of_the_hooked_features():
    arch = cell_string(["nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "none"])
    net = build_network(arch, seed=1)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    per_cell = [_by_svd(o) for o in _hooked_cell_outputs(net, x)]
    names = [f"rank.{m}.{r}" for m in scores.RANK_MEASURES for r in scores.REDUCTIONS]
    got, _ = scores.score_network(net, x, torch.zeros(4, dtype=torch.long), names)
    for m in scores.RANK_MEASURES:
        vals = torch.tensor([c[m] for c in per_cell], dtype=torch.float64)
        want = {
            "mean": vals.mean(),
            "min": vals.min(),
            "last": vals[-1],
            "stage1": vals[:5].mean(),
            "stage2": vals[5:10].mean(),
            "stage3": vals[10:].mean(),
        }
        for r, v in want.items():
            assert got[f"rank.{m}.{r}"] == pytest.approx(float(v), rel=1e-7), f"rank.{m}.{r}"


def test_all_proxies_finite_and_each_alone_equals_the_set():
    net = build_network(
        cell_string(["nor_conv_1x1", "nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "none"]), seed=0
    )
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    every, seconds = scores.score_network(net, x, y)
    assert set(every) == set(scores.list_proxies())
    assert all(math.isfinite(v) for v in every.values()), {k: v for k, v in every.items() if not math.isfinite(v)}
    assert all(seconds[p] >= 0 for p in every) and seconds["pass.total"] > 0
    for name in ("naswot_eval", "zico", "jacob_cov"):
        alone, _ = scores.score_network(net, x, y, [name])  # BN buffers are restored before every pass
        assert alone[name] == every[name], name
    again, _ = scores.score_network(build_network(net.arch, seed=0), x, y)
    assert again == every


def test_unknown_proxy_is_a_study_error():
    with pytest.raises(StudyError, match="unknown proxy 'nope'"):
        scores.resolve_proxies(["nope"])
