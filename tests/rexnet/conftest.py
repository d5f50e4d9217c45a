import pytest
import torch
from torch import nn


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Returns `model` in eval mode with its BN statistics and affine terms randomised (weights keep their
    random init), so a conversion that drops or swaps a BN tensor changes the outputs: a fresh BN is the
    identity and would hide such bugs. The ranges keep activations moderate through all 16 blocks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
                module.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                module.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                module.bias.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
    return model.eval()


@pytest.fixture(autouse=True)
def single_thread():
    """Runs each test on one intra-op thread, restoring the setting after: the tensors here are tiny, and
    on a small shared machine a second spinning OpenMP thread made the suite 3× slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
