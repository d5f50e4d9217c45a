"""An independent transcription of the official ReXNet files (clovaai/rexnet: rexnetv1.py, rexnetv1_lite.py).

Written from a reading of those files, without importing the `rexnet` package: the channel loop, the
state_dict key/shape list in registration order, and a slow functional forward pass over an
official-layout state_dict. Tests compare the package against this.
"""

from __future__ import annotations

from math import ceil

import torch
import torch.nn.functional as F

LAYERS = [1, 2, 2, 3, 3, 5]
STRIDES = [1, 2, 2, 2, 1, 2]


def v1_config(width_mult=1.0, depth_mult=1.0):
    """Returns dict(stem, blocks=[(in, out, t, stride, se)], pen) following rexnetv1.py's __init__."""
    layers = [ceil(n * depth_mult) for n in LAYERS]
    strides = sum([[s] + [1] * (n - 1) for s, n in zip(STRIDES, layers)], [])
    ses = sum([[se] * n for se, n in zip([False, False, True, True, True, True], layers)], [])
    ts = [1] * layers[0] + [6] * sum(layers[1:])
    n = sum(layers)
    stem_channel = 32 / width_mult if width_mult < 1.0 else 32
    inplanes = 16 / width_mult if width_mult < 1.0 else 16
    ins, outs = [], []
    for i in range(n):
        if i == 0:
            ins.append(int(round(stem_channel * width_mult)))
            outs.append(int(round(inplanes * width_mult)))
        else:
            ins.append(int(round(inplanes * width_mult)))
            inplanes += 180 / (n * 1.0)
            outs.append(int(round(inplanes * width_mult)))
    return dict(
        stem=int(round(stem_channel * width_mult)),
        blocks=list(zip(ins, outs, ts, strides, ses)),
        pen=int(1280 * width_mult),
    )


def _make_divisible(v, d=8):
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


def lite_config(multiplier=1.0):
    """Returns dict(stem, blocks=[(in, out, t, stride, se=False)], pen) following rexnetv1_lite.py's __init__."""
    strides = sum([[s] + [1] * (n - 1) for s, n in zip(STRIDES, LAYERS)], [])
    ts = [1] * LAYERS[0] + [6] * sum(LAYERS[1:])
    n = sum(LAYERS)
    inplanes = 16 / multiplier if multiplier < 1.0 else 16
    first = _make_divisible(int(round((32 / multiplier if multiplier < 1.0 else 32) * multiplier)))
    ins, outs = [], []
    for i in range(n):
        d = _make_divisible(int(round(inplanes * multiplier)))
        if i == 0:
            ins.append(first)
            outs.append(d)
        else:
            ins.append(d)
            inplanes += 164 / (n - 1 * 1.0)
            outs.append(_make_divisible(int(round(inplanes * multiplier))))
    return dict(
        stem=first,
        blocks=[(i, o, t, s, False) for i, o, t, s in zip(ins, outs, ts, strides)],
        pen=int(1280 * multiplier) if multiplier > 1 else 1280,
    )


def _conv(prefix, cin, cout, k, groups=1, bias=False):
    rows = [(f"{prefix}.weight", (cout, cin // groups, k, k))]
    return rows + ([(f"{prefix}.bias", (cout,))] if bias else [])


def _bn(prefix, c):
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


def _block_keys(prefix, cin, cout, t, se, lite):
    """Keys of one LinearBottleneck: the `out` Sequential's slots, activations counted as slots."""
    rows, slot = [], 0
    mid = cin * t if t != 1 else cin
    if t != 1:
        rows += _conv(f"{prefix}.out.0", cin, mid, 1) + _bn(f"{prefix}.out.1", mid)
        slot = 3  # conv, bn, act
    rows += _conv(f"{prefix}.out.{slot}", mid, mid, 3, groups=mid) + _bn(f"{prefix}.out.{slot + 1}", mid)
    slot += 3 if lite else 2  # lite's dw conv has its ReLU6 as a third slot
    if se:
        hidden = mid // 12
        rows += _conv(f"{prefix}.out.{slot}.fc.0", mid, hidden, 1, bias=True) + _bn(f"{prefix}.out.{slot}.fc.1", hidden)
        rows += _conv(f"{prefix}.out.{slot}.fc.3", hidden, mid, 1, bias=True)
        slot += 1
    if not lite:
        slot += 1  # V1's separate nn.ReLU6()
    rows += _conv(f"{prefix}.out.{slot}", mid, cout, 1) + _bn(f"{prefix}.out.{slot + 1}", cout)
    return rows


def official_keys(config, lite=False, classes=1000):
    """Returns [(state_dict key, shape)] of the official model in registration order."""
    rows = _conv("features.0", 3, config["stem"], 3) + _bn("features.1", config["stem"])
    for i, (cin, cout, t, _, se) in enumerate(config["blocks"]):
        rows += _block_keys(f"features.{i + 3}", cin, cout, t, se, lite)
    pen_index = len(config["blocks"]) + 3
    last = config["blocks"][-1][1]
    rows += _conv(f"features.{pen_index}", last, config["pen"], 1) + _bn(f"features.{pen_index + 1}", config["pen"])
    if lite:
        rows += _conv("output.0", config["pen"], 1024, 1, bias=True) + _bn("output.1", 1024)
        rows += _conv("output.4", 1024, classes, 1, bias=True)
    else:
        rows += _conv("output.1", config["pen"], classes, 1, bias=True)
    return rows


def reference_forward(sd, config, x, lite=False):
    """Returns logits of the official model (eval mode) computed op by op from an official-layout state_dict."""

    def bn(x, p):
        return F.batch_norm(
            x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"], False, 0.0, 1e-5
        )

    act = F.relu6 if lite else F.silu
    x = act(bn(F.conv2d(x, sd["features.0.weight"], stride=2, padding=1), "features.1"))
    for i, (cin, cout, t, stride, se) in enumerate(config["blocks"]):
        p, slot, inp = f"features.{i + 3}.out", 0, x
        if t != 1:
            x = act(bn(F.conv2d(x, sd[f"{p}.0.weight"]), f"{p}.1"))
            slot = 3
        x = bn(F.conv2d(x, sd[f"{p}.{slot}.weight"], stride=stride, padding=1, groups=x.shape[1]), f"{p}.{slot + 1}")
        slot += 2
        if lite:
            x, slot = F.relu6(x), slot + 1
        if se:
            y = x.mean((2, 3), keepdim=True)
            y = F.relu(bn(F.conv2d(y, sd[f"{p}.{slot}.fc.0.weight"], sd[f"{p}.{slot}.fc.0.bias"]), f"{p}.{slot}.fc.1"))
            x = x * torch.sigmoid(F.conv2d(y, sd[f"{p}.{slot}.fc.3.weight"], sd[f"{p}.{slot}.fc.3.bias"]))
            slot += 1
        if not lite:
            x, slot = F.relu6(x), slot + 1
        x = bn(F.conv2d(x, sd[f"{p}.{slot}.weight"]), f"{p}.{slot + 1}")
        if stride == 1 and cin <= cout:
            x = torch.cat([x[:, :cin] + inp, x[:, cin:]], dim=1)
    pen = len(config["blocks"]) + 3
    x = act(bn(F.conv2d(x, sd[f"features.{pen}.weight"]), f"features.{pen + 1}"))
    x = x.mean((2, 3), keepdim=True)
    if lite:
        x = F.relu6(bn(F.conv2d(x, sd["output.0.weight"], sd["output.0.bias"]), "output.1"))
        return F.conv2d(x, sd["output.4.weight"], sd["output.4.bias"]).flatten(1)
    return F.conv2d(x, sd["output.1.weight"], sd["output.1.bias"]).flatten(1)
