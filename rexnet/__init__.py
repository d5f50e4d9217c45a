"""ReXNet (Han et al., "Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021) as a model package.

The official V1 and lite models with the release's module names, their block tables as data, a registry,
checkpoint interop (official, timm, own training files), summaries (params, MACs) and ONNX export; training
and evaluation; networks at a MACs budget and variants built from the rank study's findings.json.

The names below are imported on first use (PEP 562), so `import rexnet.activations` (what the rank study's
worker processes need) does not load torchvision, the trainer or the ONNX exporter (~1 s per process).
"""
import importlib
from typing import TYPE_CHECKING

# public name → (submodule, attribute in it)
_EXPORTS: dict[str, tuple[str, str]] = {
    **{n: ("arch", n) for n in ("ArchSpec", "BlockSpec", "arch_from_dict", "arch_to_dict", "format_block_table",
                                "load_arch", "rexnet_lite_arch", "rexnet_v1_arch", "save_arch")},
    **{n: ("checkpoint", n) for n in ("Checkpoint", "adapt_input_conv", "convert_checkpoint", "load_checkpoint",
                                      "read_checkpoint", "save_checkpoint")},
    **{n: ("keymap", n) for n in ("official_to_timm", "timm_to_official")},
    "RexnetError": ("errors", "RexnetError"),
    "export_onnx": ("export", "export_onnx"),
    **{n: ("model", n) for n in ("FeatureInfo", "ReXNet", "ReXNetFeatures", "ReXNetV1", "ReXNetV1Lite")},
    "PretrainedCfg": ("pretrained", "PretrainedCfg"),
    **{n: ("registry", n) for n in ("create_model", "list_models", "model_arch", "pretrained_cfg")},
    **{n: ("summary", n) for n in ("ModelSummary", "count_flops", "count_params", "summarize")},
    # Training and evaluation (data preparation, the MobileNetV2 baseline, the training loop, evaluation).
    "mobilenetv2_arch": ("baseline", "mobilenetv2_arch"),
    **{n: ("small_input", n) for n in ("small_input_arch", "small_input_variant")},
    **{n: ("training.data", n) for n in ("load_data", "prepare_fashion_mnist")},
    "EvalResult": ("training.evaluate", "EvalResult"),
    "evaluate_model": ("training.evaluate", "evaluate"),   # `rexnet.evaluate` stays the module
    "TrainConfig": ("training.train", "TrainConfig"),
    "train_model": ("training.train", "train"),            # `rexnet.train` stays the module
    # Networks at a MACs budget and ReXNet variants built from the rank study's findings.json.
    **{n: ("variants", n) for n in ("family_at_macs", "from_findings", "match_macs", "read_rules", "variant_arch")},
}

__all__ = sorted([*_EXPORTS, "block_table"])


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value   # later lookups skip this function
        return value
    try:   # a submodule not imported yet: `rexnet.train`, `rexnet.data`, ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def block_table(width: float = 1.0, depth_mult: float = 1.0, *, lite: bool = False) -> "tuple[BlockSpec, ...]":
    """Returns the per-block specs of ReXNet-V1 (or lite) at a width (and, for V1, a depth
    multiplier): `block_table(1.0)` or `block_table(1.0, lite=True)`."""
    from .arch import rexnet_lite_arch, rexnet_v1_arch

    return (rexnet_lite_arch(width) if lite else rexnet_v1_arch(width, depth_mult)).blocks


if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports the names above stand for
    # (tests/rexnet/test_package.py keeps this list and _EXPORTS the same)
    from .arch import (ArchSpec, BlockSpec, arch_from_dict, arch_to_dict, format_block_table,  # noqa: F401
                       load_arch, rexnet_lite_arch, rexnet_v1_arch, save_arch)
    from .baseline import mobilenetv2_arch  # noqa: F401
    from .checkpoint import (Checkpoint, adapt_input_conv, convert_checkpoint, load_checkpoint,  # noqa: F401
                             read_checkpoint, save_checkpoint)
    from .training.data import load_data, prepare_fashion_mnist  # noqa: F401
    from .errors import RexnetError  # noqa: F401
    from .training.evaluate import EvalResult  # noqa: F401
    from .training.evaluate import evaluate as evaluate_model  # noqa: F401
    from .export import export_onnx  # noqa: F401
    from .keymap import official_to_timm, timm_to_official  # noqa: F401
    from .model import FeatureInfo, ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite  # noqa: F401
    from .pretrained import PretrainedCfg  # noqa: F401
    from .registry import create_model, list_models, model_arch, pretrained_cfg  # noqa: F401
    from .small_input import small_input_arch, small_input_variant  # noqa: F401
    from .summary import ModelSummary, count_flops, count_params, summarize  # noqa: F401
    from .training.train import TrainConfig  # noqa: F401
    from .training.train import train as train_model  # noqa: F401
    from .variants import family_at_macs, from_findings, match_macs, read_rules, variant_arch  # noqa: F401
