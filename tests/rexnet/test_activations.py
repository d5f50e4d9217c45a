"""One nonlinearity registry: every study nonlinearity works as a module in every ReXNet slot, and means the same."""

from dataclasses import replace

import pytest
import torch

import rankstudy
from rexnet import ReXNet, RexnetError, arch_from_dict, arch_to_dict, rexnet_v1_arch
from rexnet.activations import get_activation, list_activations, make_activation

STUDY_NONLINEARITIES = (
    "identity",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "softplus",
    "silu",
    "hardswish",
    "mish",
    "gelu",
    "tanh",
    "sigmoid",
)


def test_registry_holds_the_study_nonlinearities_and_the_study_uses_it():
    assert list_activations() == list(STUDY_NONLINEARITIES)
    assert rankstudy.list_nonlinearities()[:14] == list(STUDY_NONLINEARITIES)
    for name in STUDY_NONLINEARITIES:
        assert rankstudy.get_nonlinearity(name) is get_activation(name).fn


@pytest.mark.parametrize("name", STUDY_NONLINEARITIES)
def test_module_computes_the_function(name):
    x = torch.linspace(-8, 8, 161, dtype=torch.float64).reshape(1, 161, 1, 1)
    # Independent references: the formulas, not torch's functional forms.
    reference = {
        "identity": x,
        "relu": x.clamp(min=0),
        "relu6": x.clamp(0, 6),
        "leaky_relu": torch.where(x > 0, x, 0.01 * x),
        "elu": torch.where(x > 0, x, torch.expm1(x)),
        "celu": torch.where(x > 0, x, torch.expm1(x)),
        "selu": 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * torch.expm1(x)),
        "softplus": torch.log1p(torch.exp(x)),
        "silu": x / (1 + torch.exp(-x)),
        "hardswish": x * (x + 3).clamp(0, 6) / 6,
        "mish": x * torch.tanh(torch.log1p(torch.exp(x))),
        "gelu": 0.5 * x * (1 + torch.erf(x / 2**0.5)),
        "tanh": torch.tanh(x),
        "sigmoid": 1 / (1 + torch.exp(-x)),
    }[name]
    with torch.no_grad():
        module_out = make_activation(name)(x.clone())
    torch.testing.assert_close(module_out, reference)
    torch.testing.assert_close(get_activation(name).fn(x), reference)


def test_every_nonlinearity_builds_in_block_stem_and_head():
    base = rexnet_v1_arch(0.5, 0.3)
    for name in STUDY_NONLINEARITIES:
        blocks = tuple(replace(b, act=name, dw_act=name) for b in base.blocks)
        arch = arch_from_dict(
            arch_to_dict(
                replace(base, blocks=blocks, stem_act=name, penultimate_act=name, head_channels=64, head_act=name)
            )
        )
        model = ReXNet(arch, num_classes=3).eval()
        types = {type(m) for m in model.modules()}
        assert type(make_activation(name)) in types
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_unknown_name_is_a_clear_error():
    with pytest.raises(RexnetError, match="unknown nonlinearity 'swishy'; choose one of identity, relu"):
        make_activation("swishy")
    data = arch_to_dict(rexnet_v1_arch(0.5))
    data["blocks"][1]["act"] = "swishy"
    with pytest.raises(RexnetError, match="unknown act 'swishy'.*mish"):
        arch_from_dict(data)
