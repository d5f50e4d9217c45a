"""Blocks: the memory-saving ReLU6, partial residual, small-map depthwise conv and drop path match references."""

import pytest
import torch
from torch import nn

from rexnet.blocks import DepthwiseConv2d, MemoryEfficientReLU6, drop_path, partial_residual
from rexnet.summary import saved_activation_bytes


def test_relu6_values_and_gradients_match_plain_relu6():
    x = (torch.randn(2, 8, 5, 5) * 5).requires_grad_()
    x.data[0, 0, 0, :3] = torch.tensor([0.0, 6.0, -0.0])  # the kinks: gradient 0 there, as in nn.ReLU6
    grad = torch.randn_like(x)
    ours = MemoryEfficientReLU6()(x)
    (g_ours,) = torch.autograd.grad(ours, x, grad)
    plain = nn.ReLU6()(x)
    (g_plain,) = torch.autograd.grad(plain, x, grad)
    assert torch.equal(ours, plain) and torch.equal(g_ours, g_plain)


def test_relu6_keeps_no_extra_tensor_for_backward():
    def stack(act):
        return nn.Sequential(nn.Conv2d(4, 16, 1), nn.BatchNorm2d(16), act, nn.Conv2d(16, 4, 1))

    x = torch.randn(2, 4, 16, 16)
    one_tensor = 2 * 16 * 16 * 16 * 4  # bytes of the 16-channel activation
    saved_plain = saved_activation_bytes(stack(nn.ReLU6()), x)
    assert saved_activation_bytes(stack(MemoryEfficientReLU6()), x) == saved_plain - one_tensor


def test_partial_residual_matches_cat():
    out = torch.randn(2, 6, 3, 3, requires_grad=True)
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    grad = torch.randn(2, 6, 3, 3)
    expected = torch.cat([out[:, :4] + x, out[:, 4:]], 1)
    g_expected = torch.autograd.grad(expected, (out, x), grad)
    got = partial_residual(out * 1.0, x)  # *1.0: the function writes into its first argument
    g_got = torch.autograd.grad(got, (out, x), grad)
    assert torch.equal(got, expected) and all(torch.equal(a, b) for a, b in zip(g_got, g_expected))
    with torch.no_grad():
        assert torch.equal(partial_residual(out.detach().clone(), x.detach()), expected.detach())


@pytest.mark.parametrize(
    "size, stride", [((1, 1), 1), ((2, 2), 1), ((2, 2), 2), ((3, 3), 2), ((1, 4), 1), ((4, 4), 1), ((5, 5), 1)]
)
def test_depthwise_conv_fast_path_is_exact(size, stride):
    conv = DepthwiseConv2d(6, 3, stride).double()
    x = torch.randn(3, 6, *size, dtype=torch.float64, requires_grad=True)
    y = conv(x)
    ref = nn.functional.conv2d(x, conv.weight, None, stride, 1, 1, 6)
    grad = torch.randn_like(ref)
    got = torch.autograd.grad(y, (x, conv.weight), grad)
    expected = torch.autograd.grad(ref, (x, conv.weight), grad)
    torch.testing.assert_close(y, ref)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_drop_path_matches_torchvision_stochastic_depth(p):
    """Without importing torchvision in the model code, the same draws and scaling as its row mode."""
    ops = pytest.importorskip("torchvision.ops")
    x = torch.randn(32, 4, 3, 3)
    torch.manual_seed(7)
    expected = ops.stochastic_depth(x, p, "row", training=True)
    torch.manual_seed(7)
    assert torch.equal(drop_path(x, p), expected)
