"""ReXNet (Han et al., "Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021) as a model package.

The official V1 and lite models with the release's module names, their block tables as data, a registry,
checkpoint interop (official, timm, own training files), summaries (params, MACs) and ONNX export.
"""

from .arch import (
    ArchSpec,
    BlockSpec,
    arch_from_dict,
    arch_to_dict,
    format_block_table,
    load_arch,
    rexnet_lite_arch,
    rexnet_v1_arch,
    save_arch,
)
from .checkpoint import Checkpoint, adapt_input_conv, convert_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from .keymap import official_to_timm, timm_to_official
from .errors import RexnetError
from .export import export_onnx
from .model import FeatureInfo, ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite
from .pretrained import PretrainedCfg
from .registry import create_model, list_models, model_arch, pretrained_cfg
from .summary import ModelSummary, count_flops, count_params, summarize

# The block table of the official models, by width: `block_table(1.0)` or `block_table(1.0, lite=True)`.
def block_table(width: float = 1.0, depth_mult: float = 1.0, *, lite: bool = False) -> tuple[BlockSpec, ...]:
    """Returns the per-block specs of ReXNet-V1 (or lite) at a width (and, for V1, a depth multiplier)."""
    return (rexnet_lite_arch(width) if lite else rexnet_v1_arch(width, depth_mult)).blocks


__all__ = [
    "ArchSpec", "BlockSpec", "Checkpoint", "FeatureInfo", "ModelSummary", "PretrainedCfg", "ReXNet", "ReXNetFeatures",
    "ReXNetV1", "ReXNetV1Lite", "RexnetError", "adapt_input_conv", "arch_from_dict", "arch_to_dict", "block_table", "convert_checkpoint",
    "count_flops", "count_params", "create_model", "export_onnx", "format_block_table", "list_models",
    "load_arch", "load_checkpoint", "model_arch", "official_to_timm", "pretrained_cfg", "read_checkpoint", "rexnet_lite_arch",
    "rexnet_v1_arch", "save_arch", "save_checkpoint", "summarize", "timm_to_official",
]

# Training and evaluation (data preparation, the MobileNetV2 baseline, the training loop, evaluation).
from .baseline import mobilenetv2_arch  # noqa: E402
from .small_input import small_input_arch, small_input_variant  # noqa: E402
from .data import load_data, prepare_fashion_mnist  # noqa: E402
from .evaluate import EvalResult  # noqa: E402
from .evaluate import evaluate as evaluate_model  # noqa: E402  (`rexnet.evaluate` stays the module)
from .train import TrainConfig  # noqa: E402
from .train import train as train_model  # noqa: E402  (`rexnet.train` stays the module)

__all__ += ["EvalResult", "TrainConfig", "evaluate_model", "load_data", "mobilenetv2_arch",
            "prepare_fashion_mnist", "small_input_arch", "small_input_variant", "train_model"]

# Networks at a MACs budget and ReXNet variants built from the rank study's findings.json.
from .variants import family_at_macs, from_findings, match_macs, read_rules, variant_arch  # noqa: E402

__all__ += ["family_at_macs", "from_findings", "match_macs", "read_rules", "variant_arch"]
