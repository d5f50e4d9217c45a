"""Zero-cost proxies, each a named, registered function, all computed in one harness (`score_network`) on the
same seeded batch and the same initialisation.

Passes. A `Probe` runs only the passes its proxies need, each once, in a fixed order, and restores the BN
buffers to their initial values before every pass (so no pass sees running statistics another one updated):

- `train_forward`: one forward pass of the whole batch with BN in batch-statistics (train) mode. Forward hooks
  record, from this one pass: the binary codes of every ReLU's input (NASWOT), every cell's output feature map
  (the rank measures) and the first image's output of every module with a 4-D output (MeCo).
- `input_grad`: ∂(Σ outputs)/∂x through that pass (jacob_cov).
- `half_grads`: a forward and backward pass of each half of the batch in train mode (BN statistics of that
  half), giving the weight gradients g₁, g₂ of the halves' mean cross-entropy: ZiCo's two batches, and for
  snip and grad_norm the gradient g₁ + g₂ that the reference implementation of Abdelfattah et al. accumulates
  with its `split_data = 2` (cheaper than a third backward pass through the whole batch: the whole set then
  costs about 2× one forward + backward, benchmarks/bench_proxies.py).
- `eval_forward`: a forward pass with BN in eval mode (initial running statistics 0 and 1), for NASWOT's eval
  variant.
- `synflow`: a float64 copy of the network with BN removed, |θ| weights and an all-ones 1-image input.
- `flops`: `torch.utils.flop_counter` on a forward of one image (eval mode); `static`: the parameter count.

Proxies (name, BN mode, definition):

- `params`: number of parameters. `flops`: FLOPs of one 32×32 image (FlopCounterMode: 2 per multiply-add of
  convolutions and matrix products; pooling, BN and additions are not counted).
- `naswot` (train) / `naswot_eval` (eval): Mellor et al., "Neural Architecture Search without Training", ICML
  2021, §3 (Eq. 2): c_i ∈ {0, 1}^{N_A} the binary code of image i over the N_A ReLU units (1 where the ReLU's
  input is > 0), K_H[i, j] = N_A − d_H(c_i, c_j) = Σ_ReLUs (c_i·c_j + (1−c_i)·(1−c_j)), score log|K_H|
  (slogdet in float64). Every ReLU module counts, as in the paper's implementation, also where several read
  the same tensor.
- `synflow`: Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic flow",
  NeurIPS 2020, Eq. 2, as a zero-cost proxy (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
  ICLR 2021, §3): R = 1ᵀ(∏ |θ_l|)1 evaluated as the sum of outputs of the network with |θ| on an all-ones
  input, BN removed, in float64; score Σ θ ⊙ ∂R/∂θ over the weights of convolutions and linear layers,
  reported as its natural log (the sum taken in log space, log Σ exp(log θ + log ∂R/∂θ)).
- `snip`: Lee et al., ICLR 2019, as in Abdelfattah et al. §3: Σ |θ ⊙ g| over conv and linear weights, g the
  gradient of the cross-entropy accumulated over the two halves (train).
- `grad_norm`: Abdelfattah et al. §3: Σ over conv and linear layers of ‖g_W‖_F, g as for snip (train).
- `jacob_cov`: Mellor et al. (arXiv 2006.04647 v1) as in Abdelfattah et al. §3: J_i = ∂(Σ outputs)/∂x_i
  flattened, Σ the correlation matrix of the J_i, λ its eigenvalues (eigvalsh), score
  −Σ (log(λ + k) + 1/(λ + k)), k = 1e-5 (train).
- `zico`: Li et al., "ZiCo: Zero-shot NAS via inverse coefficient of variation on gradients", ICLR 2023, Eq. 9:
  Σ over conv and linear layers of log Σ_θ mean|g|/std(g) over the two batches (population std, parameters
  with std 0 left out, layers whose sum is 0 left out); the two batches are the halves of the batch (train).
- `meco`: Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of
  Correlation", NeurIPS 2023, Eq. 6: Σ over modules with a 4-D output of λ_min of the channel × channel
  Pearson correlation of the first image's feature map (NaN entries set to 0), by eigvalsh (train).
- `rank.<measure>.<reduction>` (train): the study's rank measures (`rankstudy.rank`) of every cell's output as a
  C × (B·H·W) matrix (channels × images and positions), divided by C: `float32` (float32-tolerance rank),
  `rtol_1e-3`, `rtol_1e-2`, `effective` (RankMe: Garrido et al., ICML 2023, exp of the entropy of the
  normalised singular values, uncentred), `effective_cov` (the same over the eigenvalues of the centred
  channel covariance, the reptrix convention), `stable` (‖F‖²_F/σ²_max), `nuclear` (‖F‖_*/(C·√(B·H·W)), which
  grows with the scale of the features) and `nuclear_rank` ((‖F‖_*/‖F‖_F)²/C, scale-free, between 1/C and
  rank(F)/C). Reduced over the 15 cells as `mean`, `min`,
  `last` (the last cell) or `stage1`, `stage2`, `stage3` (mean over that stage's 5 cells).
"""

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..batched import single_thread
from ..errors import StudyError
from ..rank import rank_metrics, singular_values
from .nb201 import Cell

JACOB_K = 1e-5
RANK_MEASURES = {
    "float32": "normalized_rank",
    "rtol_1e-3": "normalized_rank_rtol_1e-3",
    "rtol_1e-2": "normalized_rank_rtol_1e-2",
    "effective": "normalized_effective_rank",
    "effective_cov": None,
    "stable": "normalized_stable_rank",
    "nuclear": None,
    "nuclear_rank": None,
}
REDUCTIONS = ("mean", "min", "last", "stage1", "stage2", "stage3")
PASSES = ("static", "flops", "synflow", "eval_forward", "train_forward", "input_grad", "half_grads")


@dataclass(frozen=True)
class Proxy:
    """A registered proxy: its name, the BN mode it is computed in, the passes it needs and its function."""

    name: str
    bn_mode: str
    needs: tuple[str, ...]
    compute: Callable[["Probe"], float]
    hooks: tuple[str, ...] = ()


_REGISTRY: dict[str, Proxy] = {}


def register_proxy(name: str, bn_mode: str, needs: Iterable[str], hooks: Iterable[str] = ()):
    """Registers `fn(probe) -> float` as proxy `name` (decorator); `needs` ⊆ PASSES, `hooks` ⊆ {relu, cells, meco}."""

    def wrap(fn):
        unknown = set(needs) - set(PASSES)
        if unknown:
            raise StudyError(f"proxy {name}: unknown passes {sorted(unknown)}; use {', '.join(PASSES)}")
        _REGISTRY[name] = Proxy(name, bn_mode, tuple(needs), fn, tuple(hooks))
        return fn

    return wrap


def list_proxies() -> list[str]:
    """Returns the names of every registered proxy, in registration order."""
    return list(_REGISTRY)


def get_proxy(name: str) -> Proxy:
    """Returns the registered proxy `name`, or StudyError naming the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise StudyError(
            f"unknown proxy {name!r}; `rankstudy proxies --list` shows the {len(_REGISTRY)} known "
            f"(e.g. {', '.join(list(_REGISTRY)[:8])}, rank.rtol_1e-2.mean)"
        ) from None


def resolve_proxies(names: Iterable[str] | None) -> list[str]:
    """Returns the proxy names to compute (all when `names` is None), each checked, in registration order."""
    if names is None:
        return list_proxies()
    wanted = {get_proxy(n).name for n in names}
    return [n for n in _REGISTRY if n in wanted]


# --- kernels with known answers (tested on hand-made cases) ---------------------------------------------


def hamming_kernel(codes: torch.Tensor) -> torch.Tensor:
    """Returns K[i, j] = Σ_k (c_ik c_jk + (1 − c_ik)(1 − c_jk)) = N_A − d_H(c_i, c_j) for binary codes (B, N_A).

    One product: (1 − c)(1 − c)ᵀ = N_A − s_i − s_j + c cᵀ with s = c·1. The products of 0/1 float32 values are
    exact integers below 2²⁴; the result is float64.
    """
    c = codes.reshape(codes.shape[0], -1).to(torch.float32)
    n_a = c.shape[1]
    if n_a >= 2**24:
        c = c.to(torch.float64)
    inner = (c @ c.T).to(torch.float64)
    s = c.sum(dim=1, dtype=torch.float64)
    return 2 * inner - s[:, None] - s[None, :] + n_a


def naswot_score(kernel: torch.Tensor) -> float:
    """Returns log|K| (slogdet, float64): −inf for a singular kernel."""
    sign, logdet = torch.linalg.slogdet(kernel.to(torch.float64))
    return float(logdet) if float(sign) > 0 else -math.inf


def jacob_cov_score(jacobians: torch.Tensor, k: float = JACOB_K) -> float:
    """Returns −Σ (log(λ + k) + 1/(λ + k)) over the eigenvalues λ of the correlation matrix of the rows."""
    corr = torch.corrcoef(jacobians.reshape(jacobians.shape[0], -1).to(torch.float64))
    if not bool(torch.isfinite(corr).all()):
        return math.nan
    lam = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(lam + k) + 1.0 / (lam + k)).sum())


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Returns the convolutions and linear layers of `net`, in module order (the layers the field's proxies sum)."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow_score(net: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Returns log Σ θ ⊙ ∂R/∂θ over conv/linear weights, R = Σ outputs of the |θ|, float64, BN-free copy of
    `net` on an all-ones input of `input_shape` (with its batch dimension)."""
    net = copy.deepcopy(net)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    net = net.double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    device = next(net.parameters()).device
    out = net(torch.ones(input_shape, dtype=torch.float64, device=device))
    weights = [m.weight for m in weight_layers(net)]
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    logs = []
    for w, g in zip(weights, grads):
        if g is None:
            continue
        keep = (w > 0) & (g > 0)
        logs.append((w[keep].log() + g[keep].log()).flatten())
    if not logs:
        return -math.inf
    return float(torch.logsumexp(torch.cat(logs).detach(), dim=0))


def zico_score(g1: list[torch.Tensor], g2: list[torch.Tensor]) -> float:
    """Returns Σ_layers log Σ mean|g|/std(g) over two gradient samples per layer (population std, std-0 entries
    and layers with a zero sum left out)."""
    score = 0.0
    for a, b in zip(g1, g2):
        stack = torch.stack([a.flatten(), b.flatten()]).to(torch.float64)
        std = stack.std(dim=0, unbiased=False)
        nz = std > 0
        total = float((stack.abs().mean(dim=0)[nz] / std[nz]).sum())
        if total > 0:
            score += math.log(total)
    return score


def min_correlation_eigenvalues(features: torch.Tensor) -> torch.Tensor:
    """Returns λ_min of the Pearson correlation of the rows of each (C, …) matrix of a (k, C, …) batch.

    Rows of zero variance get correlation 0 with every row, themselves included: `torch.corrcoef` gives NaN
    there, which MeCo's reference implementation sets to 0.
    """
    x = features.reshape(features.shape[0], features.shape[1], -1).to(torch.float64)
    x = x - x.mean(dim=2, keepdim=True)
    norm = x.norm(dim=2)
    ok = norm > 0
    x = x / torch.where(ok, norm, torch.ones_like(norm))[:, :, None]
    corr = (x @ x.transpose(1, 2)).clamp(-1, 1) * (ok[:, :, None] & ok[:, None, :])
    return torch.linalg.eigvalsh(corr)[:, 0]


def meco_score(features: list[torch.Tensor]) -> float:
    """Returns Σ λ_min of the channel correlations of feature maps (C, H, W), those of one shape in one call."""
    by_shape: dict[tuple, list[torch.Tensor]] = {}
    for f in features:
        by_shape.setdefault(tuple(f.shape), []).append(f)
    return float(sum(min_correlation_eigenvalues(torch.stack(group)).sum() for group in by_shape.values()))


def effective_rank_of(values: torch.Tensor) -> torch.Tensor:
    """Returns exp(entropy of values/Σ values) per row of non-negative (B, k) values (0 for an all-zero row)."""
    v = values.to(torch.float64).clamp_min(0)
    total = v.sum(dim=1, keepdim=True)
    p = v / torch.where(total > 0, total, torch.ones_like(total))
    ent = -(p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))).sum(dim=1)
    return torch.where(total[:, 0] > 0, ent.exp(), torch.zeros_like(ent))


def cell_rank_measures(features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns each RANK_MEASURES entry (normalised by channels) for every cell output (B, C, H, W), as (n_cells,)."""
    out = {name: [] for name in RANK_MEASURES}
    i = 0
    while i < len(features):  # cells of one shape (a stage) go through the batched metrics together
        j = i
        while j < len(features) and features[j].shape == features[i].shape:
            j += 1
        mats = torch.stack([f.transpose(0, 1).reshape(f.shape[1], -1) for f in features[i:j]]).to(torch.float64)
        m, n = mats.shape[1], mats.shape[2]
        metrics = rank_metrics(mats)
        for name, column in RANK_MEASURES.items():
            if column is not None:
                out[name].append(metrics[column].to(torch.float64))
        nuclear = metrics["nuclear_norm"].to(torch.float64)
        out["nuclear"].append(nuclear / (m * math.sqrt(n)))
        frob2 = mats.square().sum(dim=(1, 2))
        out["nuclear_rank"].append(torch.where(frob2 > 0, nuclear.square() / frob2.where(frob2 > 0, 1.0), 0.0) / m)
        centred = singular_values(mats - mats.mean(dim=2, keepdim=True))
        out["effective_cov"].append(effective_rank_of(centred * centred) / m)
        i = j
    return {name: torch.cat(vals).cpu() for name, vals in out.items()}


def reduce_cells(values: torch.Tensor, stages: list[int], reduction: str) -> float:
    """Returns one reduction (REDUCTIONS) of per-cell values over the network."""
    if reduction == "mean":
        return float(values.mean())
    if reduction == "min":
        return float(values.min())
    if reduction == "last":
        return float(values[-1])
    stage = int(reduction.removeprefix("stage")) - 1
    picked = values[torch.tensor([s == stage for s in stages])]
    return float(picked.mean()) if picked.numel() else math.nan


# --- the harness ------------------------------------------------------------------------------------------


class Probe:
    """Runs the passes a set of proxies needs on one network and one batch, and keeps what the proxies read."""

    def __init__(self, net: nn.Module, images: torch.Tensor, labels: torch.Tensor, proxies: list[str]):
        self.net, self.images, self.labels = net, images, labels
        self.proxies = [get_proxy(p) for p in proxies]
        needs = {n for p in self.proxies for n in p.needs}
        if "input_grad" in needs:
            needs.add("train_forward")
        self.needs = [p for p in PASSES if p in needs]
        self.hooks = {h for p in self.proxies for h in p.hooks}
        self.seconds: dict[str, float] = {}
        self.initial = {
            k: v.clone()
            for k, v in net.state_dict().items()
            if not v.is_floating_point()
            or any(k.endswith(s) for s in ("running_mean", "running_var", "num_batches_tracked"))
        }

    def _restore(self) -> None:
        self.net.load_state_dict(self.initial, strict=False)

    def _relu_hooks(self, store: dict) -> list:
        def hook(module, inputs, output):
            x = inputs[0]
            key = (x.data_ptr(), tuple(x.shape), x.stride())
            if key not in store:  # the tensor is kept, so its memory (and key) cannot be reused in the pass
                store[key] = [x, hamming_kernel(x.detach() > 0), 0]
            store[key][2] += 1

        return [m.register_forward_hook(hook) for m in self.net.modules() if isinstance(m, nn.ReLU)]

    def _kernel(self, store: dict) -> torch.Tensor:
        n = self.images.shape[0]
        total = torch.zeros((n, n), dtype=torch.float64, device=self.images.device)
        for _, k, count in store.values():
            total += count * k
        return total

    def run(self) -> None:
        try:
            for name in self.needs:
                start = time.perf_counter()
                getattr(self, "_" + name)()
                self.seconds[name] = time.perf_counter() - start
        finally:
            self._restore()  # the network leaves as it came: initial BN buffers, train mode
            self.net.train()

    def _static(self) -> None:
        self.n_params = sum(p.numel() for p in self.net.parameters())

    def _flops(self) -> None:
        from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415 - loads only when FLOPs are asked

        self._restore()
        self.net.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.net(self.images[:1])
        self.n_flops = counter.get_total_flops()
        self.net.train()

    def _synflow(self) -> None:
        self.synflow = synflow_score(self.net, (1, *self.images.shape[1:]))

    def _eval_forward(self) -> None:
        self._restore()
        self.net.eval()
        store: dict = {}
        handles = self._relu_hooks(store)
        try:
            with torch.no_grad():
                self.net(self.images)
        finally:
            for h in handles:
                h.remove()
            self.net.train()
        self.kernel_eval = self._kernel(store)

    def _train_forward(self) -> None:
        self._restore()
        self.net.train()
        relu: dict = {}
        self.cell_outputs: list[torch.Tensor] = []
        self.cell_stages: list[int] = list(getattr(self.net, "cell_stage", []))
        self.meco_features: list[torch.Tensor] = []
        handles = self._relu_hooks(relu) if "relu" in self.hooks else []
        if "cells" in self.hooks:
            cells = [m for m in self.net.modules() if isinstance(m, Cell)]
            handles += [c.register_forward_hook(lambda m, i, o: self.cell_outputs.append(o.detach())) for c in cells]
            if len(self.cell_stages) != len(cells):
                self.cell_stages = [0] * len(cells)
        if "meco" in self.hooks:

            def meco_hook(module, inputs, output):
                if isinstance(output, torch.Tensor) and output.dim() == 4:
                    self.meco_features.append(output[0].detach())

            handles += [m.register_forward_hook(meco_hook) for m in self.net.modules()]
        grads = "input_grad" in self.needs
        x = self.images.detach().clone().requires_grad_(grads)
        try:
            with torch.set_grad_enabled(grads):
                self.output = self.net(x)
        finally:
            for h in handles:
                h.remove()
        self.x = x
        self.kernel_train = self._kernel(relu) if relu else None
        relu.clear()

    def _input_grad(self) -> None:
        (g,) = torch.autograd.grad(self.output.sum(), self.x)
        self.jacobians = g.detach()
        del self.output, self.x  # frees the forward graph

    def _half_grads(self) -> None:
        self._restore()
        self.net.train()
        weights = [m.weight for m in weight_layers(self.net)]
        half = self.images.shape[0] // 2
        halves = []
        with torch.enable_grad():
            for part in (slice(0, half), slice(half, None)):
                loss = nn.functional.cross_entropy(self.net(self.images[part]), self.labels[part])
                halves.append([g.detach() for g in torch.autograd.grad(loss, weights)])
        self.g1, self.g2 = halves
        self.grads = [a + b for a, b in zip(self.g1, self.g2)]
        self.weights = [w.detach() for w in weights]

    def cell_measures(self) -> dict[str, torch.Tensor]:
        """Returns the per-cell rank measures (computed once, on first use)."""
        if not hasattr(self, "_cell_measures"):
            start = time.perf_counter()
            if not self.cell_outputs:
                raise StudyError("the rank proxies need a network with NAS-Bench-201 cells (rankstudy.proxies.nb201)")
            self._cell_measures = cell_rank_measures(self.cell_outputs)
            self.seconds["rank_measures"] = time.perf_counter() - start
        return self._cell_measures


def score_network(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, proxies: list[str] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Returns ({proxy: score}, {proxy: seconds}) of `net` at its current weights on one batch.

    Seconds of a proxy: the passes it needs (shared passes counted in full for each) plus its own computation,
    i.e. what it would cost alone. Runs with one torch/BLAS thread, so scores do not depend on the worker count.
    """
    names = resolve_proxies(proxies)
    with single_thread():
        probe = Probe(net, images, labels, names)
        probe.run()
        scores, seconds = {}, {}
        for proxy in probe.proxies:
            start = time.perf_counter()
            scores[proxy.name] = float(proxy.compute(probe))
            own = time.perf_counter() - start
            seconds[proxy.name] = own + sum(
                probe.seconds.get(p, 0.0)
                for p in probe.needs
                if p in proxy.needs or (p == "train_forward" and "input_grad" in proxy.needs)
            )
        if any(p.name.startswith("rank.") for p in probe.proxies):
            share = probe.seconds.get("rank_measures", 0.0)
            for proxy in probe.proxies:
                if proxy.name.startswith("rank."):
                    seconds[proxy.name] += share  # the once-computed measures, counted for each rank proxy
    probe.seconds["total"] = sum(probe.seconds.values())
    return scores, {**seconds, **{f"pass.{k}": v for k, v in probe.seconds.items()}}


# --- the registered proxies -------------------------------------------------------------------------------

register_proxy("params", "none", ["static"])(lambda p: p.n_params)
register_proxy("flops", "eval", ["flops"])(lambda p: p.n_flops)
register_proxy("naswot", "train", ["train_forward"], ["relu"])(lambda p: naswot_score(p.kernel_train))
register_proxy("naswot_eval", "eval", ["eval_forward"])(lambda p: naswot_score(p.kernel_eval))
register_proxy("synflow", "removed", ["synflow"])(lambda p: p.synflow)
register_proxy("snip", "train", ["half_grads"])(
    lambda p: sum(float((w * g).abs().sum()) for w, g in zip(p.weights, p.grads))
)
register_proxy("grad_norm", "train", ["half_grads"])(lambda p: sum(float(g.norm()) for g in p.grads))
register_proxy("jacob_cov", "train", ["input_grad"])(lambda p: jacob_cov_score(p.jacobians))
register_proxy("zico", "train", ["half_grads"])(lambda p: zico_score(p.g1, p.g2))
register_proxy("meco", "train", ["train_forward"], ["meco"])(lambda p: meco_score(p.meco_features))


def _rank_proxy(measure: str, reduction: str):
    return lambda p: reduce_cells(p.cell_measures()[measure], p.cell_stages, reduction)


for _measure in RANK_MEASURES:
    for _reduction in REDUCTIONS:
        register_proxy(f"rank.{_measure}.{_reduction}", "train", ["train_forward"], ["cells"])(
            _rank_proxy(_measure, _reduction)
        )
