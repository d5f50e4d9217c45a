"""The one seeded input batch every proxy of a run sees: `fmnist` (default), `gaussian` or `cifar10`.

- `fmnist`: Fashion-MNIST training images (28×28, read as `rankstudy.random_nets.inputs` reads them: from
  $RANKSTUDY_FASHION_MNIST, else Debian's dataset-fashion-mnist, else data/FashionMNIST/raw), zero-padded by
  2 pixels to 32×32, standardised by the set's pixel mean and std and replicated to 3 channels. No CIFAR
  images are on the project's machines, and NAS-Bench-201's networks take 32×32×3 inputs.
- `gaussian`: iid N(0, 1) pixels.
- `cifar10`: CIFAR-10 training images through torchvision (`data_root`, not downloaded), standardised by the
  usual per-channel mean and std.

Images are drawn without replacement (with replacement only if the set is smaller than the batch) from a
generator seeded by `seed`. The labels, which snip, grad_norm and ZiCo need for their cross-entropy loss, are
drawn uniformly from the classes by the same generator: Fashion-MNIST's classes are not CIFAR's, and at
initialisation the proxies of the field depend on the labels only through the loss.
"""

from dataclasses import dataclass

import torch

from ..errors import StudyError

INPUTS = ("fmnist", "gaussian", "cifar10")
DEFAULT_INPUTS = "fmnist"
DEFAULT_BATCH = 64
SIZE = 32
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class Batch:
    """A seeded batch: images (n, 3, 32, 32) float32 and labels (n,) int64 in [0, num_classes)."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    seed: int


def _pick(gen: torch.Generator, available: int, n: int) -> torch.Tensor:
    if available >= n:
        return torch.randperm(available, generator=gen)[:n]
    return torch.randint(0, available, (n,), generator=gen)


def _fmnist(gen: torch.Generator, n: int) -> torch.Tensor:
    from ..random_nets.inputs import fashion_mnist_images  # noqa: PLC0415 - reads the dataset only when asked

    images, mean, std = fashion_mnist_images()
    x = images[_pick(gen, images.shape[0], n)].to(torch.float32) / 255.0
    pad = (SIZE - x.shape[-1]) // 2
    x = torch.nn.functional.pad(x, (pad, pad, pad, pad), value=0.0)
    return ((x - mean) / std)[:, None].expand(-1, 3, -1, -1).contiguous()


def _cifar10(gen: torch.Generator, n: int, data_root: str) -> torch.Tensor:
    try:
        from torchvision.datasets import CIFAR10  # noqa: PLC0415 - torchvision loads in ~1 s; only for cifar10

        data = CIFAR10(data_root, train=True, download=False)
    except (RuntimeError, OSError) as e:
        raise StudyError(
            f"inputs cifar10 need CIFAR-10 in {data_root!r} ({e.__class__.__name__}); download it with "
            "torchvision.datasets.CIFAR10(root, download=True) or use --inputs fmnist"
        ) from None
    pixels = torch.from_numpy(data.data)[_pick(gen, len(data.data), n)]
    x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    return (x - torch.tensor(CIFAR_MEAN)[:, None, None]) / torch.tensor(CIFAR_STD)[:, None, None]


def make_batch(
    name: str = DEFAULT_INPUTS, n: int = DEFAULT_BATCH, seed: int = 0, num_classes: int = 10, data_root: str = "data"
) -> Batch:
    """Returns the seeded batch of `n` images of input set `name` with uniform random labels."""
    if name not in INPUTS:
        raise StudyError(f"unknown inputs {name!r}; use one of {', '.join(INPUTS)}")
    if n < 2:
        raise StudyError(f"--batch {n}: the kernels and correlations need at least 2 images")
    gen = torch.Generator().manual_seed(seed)
    if name == "gaussian":
        images = torch.randn((n, 3, SIZE, SIZE), generator=gen)
    elif name == "fmnist":
        images = _fmnist(gen, n)
    else:
        images = _cifar10(gen, n, data_root)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return Batch(images.contiguous(), labels, name, seed)
