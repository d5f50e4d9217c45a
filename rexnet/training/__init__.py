"""Training and evaluation of ReXNet models (or any block table): data, the training loop, evaluation.

The functions are exported as `train_model` and `evaluate_model`: `rexnet.training.train` and
`rexnet.training.evaluate` stay the submodules (a package attribute named like a submodule would hide it).
Importing this package does not load torchvision; building data (`load_data`) does.
"""

from .data import DataSpec, load_data, prepare_fashion_mnist
from .evaluate import EvalResult, format_eval, load_for_eval, normalized_feature_rank, write_eval
from .evaluate import evaluate as evaluate_model
from .train import TrainConfig, format_epoch
from .train import train as train_model

__all__ = [
    "DataSpec",
    "EvalResult",
    "TrainConfig",
    "evaluate_model",
    "format_epoch",
    "format_eval",
    "load_data",
    "load_for_eval",
    "normalized_feature_rank",
    "prepare_fashion_mnist",
    "train_model",
    "write_eval",
]
