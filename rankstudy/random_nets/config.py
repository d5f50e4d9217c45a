"""StudyConfig: the frozen description of a rank study, its defaults and their validation."""

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..errors import StudyError
from .inputs import IMAGES_ENV, images_file, max_patch_d_in
from .nonlinearities import BUILTIN_NONLINEARITIES, list_nonlinearities

KINDS: tuple[str, ...] = ("linear", "conv3x3", "depthwise", "block", "block_conv", "stack")
INITS: tuple[str, ...] = ("kaiming", "unit")
INPUT_DISTS: tuple[str, ...] = ("gaussian", "uniform", "halfnormal", "correlated", "fmnist")
# The input distributions of the default study: iid Gaussian (the usual random-network setting), non-negative
# like post-ReLU features, correlated channels, and real image patches (see `rankstudy.inputs`).
DEFAULT_INPUT_DISTS: tuple[str, ...] = ("gaussian", "halfnormal", "correlated", "fmnist")
NORMS: tuple[str, ...] = ("none", "bn")
# Most networks one study samples: its table of configs is built in memory first (~1 kB a network), so more
# would exhaust the memory before the first chunk; a larger study is several seeds, merged by the reader.
MAX_N = 10_000_000


@dataclass(frozen=True)
class StudyConfig:
    """A rank study: which random networks to sample and under which factors.

    Every network maps an input X (d_in channels) to features F (d_out × N) and the study measures the
    rank of F. The kinds (see `rankstudy.networks`; panels of the paper's Figure 1 in brackets):
      linear     F = f(norm(W X)), one fully connected / 1×1-conv layer                         [(a)]
      conv3x3    F = f(norm(W ⊛ X)), one full 3×3 conv d_in → d_out                              [(b)]
      depthwise  F = f(norm(DW3×3(W X))), a 1×1 conv to d_out, then a 3×3 depthwise conv on the map
      block      an inverted bottleneck d_in → block_expansion·d_in → d_out (1×1, f, 3×3 dw, f, 1×1),
                 output taken after ReXNet's partial shortcut (added when d_out ≥ d_in)          [(d)]
      block_conv the same bottleneck with a full 3×3 conv in place of the depthwise one           [(c)]
      stack      `depth` blocks whose widths grow geometrically from d_in to d_out

    Defaults were chosen so `n = 10_000` runs in a few minutes on 2 CPU cores; the paper (§3) leaves
    init, input distribution, N and tolerance unstated, so they are factors recorded per row.
    """

    n: int = 10_000
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    nonlinearities: tuple[str, ...] = BUILTIN_NONLINEARITIES
    d_in: tuple[int, ...] = (8, 16, 32)
    ratio_min: float = 0.5  # expansion ratio d_out/d_in, log-spaced grid
    ratio_max: float = 20.0
    n_ratios: int = 16
    n_over_d: tuple[float, ...] = (1.0, 2.0)  # N / d_out: samples per output channel
    inits: tuple[str, ...] = INITS  # kaiming: N(0, 2/fan_in); unit: N(0, 1)
    input_dists: tuple[str, ...] = DEFAULT_INPUT_DISTS  # see rankstudy.inputs
    norms: tuple[str, ...] = NORMS  # none, or batch norm (no affine) before each f
    stack_depths: tuple[int, ...] = (2, 3, 4)
    spatial: int = 8  # H = W of the conv kinds' input maps
    # Inner width of a block = block_expansion · its input. A tuple samples one t per block row (balanced),
    # so a study can compare the expansions a variant may take (the rule study: 2–6; ReXNet uses 6, §4).
    block_expansion: int | tuple[int, ...] = 6

    def __post_init__(self):
        # The settings that need no disk are checked at once, so StudyConfig(n=-1) fails where it is written;
        # `validate` checks the rest (e.g. that the fmnist images exist) before a study runs.
        self._check_counts()

    def _check_counts(self) -> None:
        if not (isinstance(self.n, int) and not isinstance(self.n, bool) and 0 < self.n <= MAX_N):
            raise StudyError(
                f"n must be an integer in 1..{MAX_N:,}, got {self.n!r}; "
                "for more networks run several studies with other seeds"
                if isinstance(self.n, int) and self.n > MAX_N
                else f"n must be a positive integer (networks to sample), got {self.n!r}"
            )
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise StudyError(f"seed must be a non-negative integer, got {self.seed!r}")

    def block_expansions(self) -> tuple[int, ...]:
        """Returns the block expansions t the study samples (one value unless `block_expansion` is a tuple)."""
        return (
            tuple(self.block_expansion) if isinstance(self.block_expansion, (tuple, list)) else (self.block_expansion,)
        )

    def ratio_grid(self) -> np.ndarray:
        """Returns the log-spaced grid of target expansion ratios."""
        return np.geomspace(self.ratio_min, self.ratio_max, self.n_ratios)

    def to_dict(self) -> dict:
        """Returns a JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "StudyConfig":
        """Returns the config a `to_dict` dict describes; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise StudyError(f"unknown study config keys {sorted(unknown)}; known keys: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def validate(self) -> "StudyConfig":
        """Returns the config to run (self, or the default study without `fmnist` when its images cannot be
        found), or raises StudyError naming the first impossible setting and its fix.

        Only the untouched default `input_dists` may drop `fmnist` (with one warning): where the images are
        found the default study is unchanged, and `fmnist` asked for by name still fails without them.
        """
        if self.input_dists is DEFAULT_INPUT_DISTS:
            try:
                images_file()
            except StudyError:
                warnings.warn(
                    "Fashion-MNIST images not found: the default study leaves out the fmnist input distribution; "
                    f"to include it install Debian's dataset-fashion-mnist, set {IMAGES_ENV}=DIR holding "
                    "train-images-idx3-ubyte, or run `rexnet data fashion-mnist` in the working folder",
                    stacklevel=2,
                )
                without = tuple(d for d in DEFAULT_INPUT_DISTS if d != "fmnist")
                return dataclasses.replace(self, input_dists=without).validate()

        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise StudyError(msg)

        self._check_counts()
        for name, values, choices in (
            ("kind", self.kinds, KINDS),
            ("init", self.inits, INITS),
            ("norm", self.norms, NORMS),
            ("input distribution", self.input_dists, INPUT_DISTS),
        ):
            need(len(values) > 0, f"no {name}s selected; choose from {', '.join(choices)}")
            for v in values:
                need(v in choices, f"unknown {name} {v!r}; choose from {', '.join(choices)}")
        need(len(self.nonlinearities) > 0, "no nonlinearities selected")
        known = list_nonlinearities()
        for v in self.nonlinearities:
            need(v in known, f"unknown nonlinearity {v!r}; choose from {', '.join(known)}")
        need(
            len(self.d_in) > 0 and all(isinstance(d, int) and d >= 1 for d in self.d_in),
            f"d_in must be positive integers, got {self.d_in}",
        )
        need(
            all(math.isfinite(r) for r in (self.ratio_min, self.ratio_max)) and 0 < self.ratio_min <= self.ratio_max,
            f"need 0 < ratio_min <= ratio_max, got {self.ratio_min} and {self.ratio_max}",
        )
        need(self.n_ratios >= 1, f"n_ratios must be >= 1, got {self.n_ratios}")
        need(
            round(min(self.d_in) * self.ratio_min) >= 1,
            f"ratio_min {self.ratio_min} with d_in {min(self.d_in)} gives d_out < 1; "
            f"raise ratio_min to at least {1 / min(self.d_in):.3g} or use a larger d_in",
        )
        need(
            len(self.n_over_d) > 0 and all(math.isfinite(x) and x > 0 for x in self.n_over_d),
            f"n_over_d must be positive, got {self.n_over_d}",
        )
        need(self.spatial >= 1, f"spatial must be >= 1, got {self.spatial}")
        need(
            len(self.block_expansions()) > 0
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 1 for t in self.block_expansions()),
            f"block_expansion must be an integer >= 1 or a tuple of them, got {self.block_expansion}",
        )
        if "fmnist" in self.input_dists:
            widest = max(self.spatial if any(k != "linear" for k in self.kinds) else 1, 1)
            need(
                max(self.d_in) <= max_patch_d_in(widest),
                f"fmnist inputs with {widest}×{widest} maps allow d_in ≤ {max_patch_d_in(widest)}, got {max(self.d_in)}; "
                "use smaller d_in or other input distributions",
            )
            images_file()  # raises StudyError naming where to get the images
        need(
            "stack" not in self.kinds or (len(self.stack_depths) > 0 and all(d >= 2 for d in self.stack_depths)),
            f"stack depths must be >= 2 (a depth-1 stack is a block), got {self.stack_depths}",
        )
        return self
