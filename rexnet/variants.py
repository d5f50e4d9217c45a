"""Networks at a MACs budget: width by bisection so MACs land within 2% of a target.

A fair comparison of architectures holds the cost fixed (the paper compares models at equal FLOPs,
Tables 3-4). Width multipliers move MACs in steps (channels are rounded), so a fixed grid of widths can
land far from the target (a 0.05 grid left MobileNetV2 9% below ReXNet-0.5x s16 at 32x32); bisection on
the multiplier finds the step that brackets the target and keeps the closer side.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .arch import ArchSpec
from .baseline import model_costs, small_input_variant
from .errors import RexnetError


def arch_macs(arch: ArchSpec, *, img_size: int, small_input: str = "off", num_classes: int = 10,
              in_chans: int = 3) -> int:
    """Returns the MACs of one image through `arch` after the small-input mode (torch.utils.flop_counter)."""
    small, stem_stride = small_input_variant(arch, small_input)
    return model_costs(small, img_size, num_classes=num_classes, in_chans=in_chans, stem_stride=stem_stride)[1]


def match_macs(make_arch: Callable[[float], ArchSpec], target_macs: int, *, img_size: int,
               small_input: str = "off", num_classes: int = 10, in_chans: int = 3,
               lo: float = 0.05, hi: float = 4.0, rel_tol: float = 0.02) -> tuple[float, ArchSpec, int]:
    """Returns (multiplier, arch, macs): bisection on the multiplier so MACs (torch.utils.flop_counter,
    at img_size, after the small-input mode) are within rel_tol of target_macs; clear RexnetError if impossible.

    `make_arch(m)` must build the (full-size) table at multiplier m, with MACs non-decreasing in m; the
    small-input mode is applied here, as at training time. The returned arch is `make_arch(multiplier)`
    itself (before the small-input mode), so it can be saved and trained with the same mode.
    """
    if not target_macs > 0:
        raise RexnetError(f"MACs budget {target_macs!r} is not positive; give e.g. 12.9M")
    if not 0 < lo < hi:
        raise RexnetError(f"multiplier range [{lo}, {hi}] is empty; use 0 < lo < hi")
    macs_of: dict[ArchSpec, int] = {}  # by table: nearby multipliers often round to the same channels

    def cost(m: float) -> tuple[ArchSpec, int]:
        arch = make_arch(m)
        if arch not in macs_of:
            macs_of[arch] = arch_macs(arch, img_size=img_size, small_input=small_input, num_classes=num_classes,
                                      in_chans=in_chans)
        return arch, macs_of[arch]

    def result(m: float) -> tuple[float, ArchSpec, int]:
        return (m, *cost(m))

    def where() -> str:
        return f"at {img_size}x{img_size}, small-input {small_input}, {in_chans} input channel(s)"

    low, high = cost(lo)[1], cost(hi)[1]
    if low > target_macs * (1 + rel_tol):
        raise RexnetError(f"{cost(lo)[0].name} costs {low / 1e6:.3g}M MACs even at multiplier {lo} {where()}, above "
                          f"the budget {target_macs / 1e6:.3g}M; raise the budget or the image size")
    if high < target_macs * (1 - rel_tol):
        raise RexnetError(f"{cost(hi)[0].name} costs only {high / 1e6:.3g}M MACs at multiplier {hi} {where()}, below "
                          f"the budget {target_macs / 1e6:.3g}M; lower the budget or the image size")
    if low >= target_macs:
        return result(lo)
    # Invariant: macs(a) < target <= macs(b). Steps alternate between splitting the bracket where sqrt(MACs)
    # (close to linear in the multiplier: MACs grow with width squared) meets the target, and halving it, so
    # the bracket at least halves every two model builds. Channels are integers, so MACs are a step function
    # of the multiplier; 1e-5 is below one channel's step even at 1280×4 channels. The search stops once an
    # end is within a quarter of the tolerance (0.5% by default): closer than that is not worth more builds.
    close = rel_tol / 4 * target_macs
    a, b, step = lo, hi, 0
    while b - a > 1e-5 and min(abs(cost(x)[1] - target_macs) for x in (a, b)) > close:
        ra, rb = math.sqrt(cost(a)[1]), math.sqrt(cost(b)[1])
        frac = (math.sqrt(target_macs) - ra) / (rb - ra) if step % 2 == 0 and rb > ra else 0.5
        mid = a + (b - a) * min(0.95, max(0.05, frac))
        if cost(mid)[1] < target_macs:
            a = mid
        else:
            b = mid
        step += 1
    m = min((a, b), key=lambda x: abs(cost(x)[1] - target_macs))
    macs = cost(m)[1]
    if abs(macs - target_macs) > rel_tol * target_macs:
        raise RexnetError(
            f"no multiplier gives MACs within {rel_tol:.0%} of {target_macs / 1e6:.4g}M {where()}: the nearest are "
            f"{cost(a)[1] / 1e6:.4g}M (x{a:.6f}) and {cost(b)[1] / 1e6:.4g}M (x{b:.6f}); "
            "use a finer channel divisor, a different budget or a larger tolerance")
    # Prefer a short multiplier (0.5 rather than 0.4999999) that is as good.
    good = max(close, abs(macs - target_macs))
    for short in dict.fromkeys(round(m, digits) for digits in (2, 3, 4)):
        if lo <= short <= hi and abs(cost(short)[1] - target_macs) <= good:
            return result(short)
    return result(m)
