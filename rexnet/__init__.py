"""ReXNet (Han et al., "Rethinking Channel Dimensions for Efficient Model Design", CVPR 2021) as a model package.

The official V1 and lite models with the release's module names, their block tables as data, a registry,
checkpoint interop (official, timm, own training files), summaries (params, MACs) and ONNX export; networks at
a MACs budget and variants built from the rank study's findings.json. Training and evaluation (data, the
training loop, evaluation) are `rexnet.training`'s, imported separately: `import rexnet` loads neither
torchvision nor the trainer.
"""

from .arch import (
    ArchSpec,
    BlockSpec,
    arch_from_dict,
    arch_to_dict,
    format_block_table,
    load_arch,
    network_diff,
    rexnet_lite_arch,
    rexnet_v1_arch,
    save_arch,
)
from .baseline import mobilenetv2_arch
from .checkpoint import (
    Checkpoint,
    adapt_input_conv,
    convert_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from .device import resolve_device
from .errors import BudgetUnreachable, RexnetError
from .export import export_onnx
from .keymap import official_to_timm, timm_to_official
from .model import FeatureInfo, ReXNet, ReXNetFeatures, ReXNetV1, ReXNetV1Lite
from .pretrained import PretrainedCfg
from .rank_tolerance import float32_rtol
from .registry import (
    checkpoint_network,
    create_model,
    list_models,
    model_arch,
    model_from_checkpoint,
    pretrained_cfg,
    resolve_arch,
)
from .small_input import small_input_arch, small_input_variant
from .summary import ModelSummary, count_flops, count_params, summarize
from .variants import family_at_macs, from_findings, match_macs, parse_macs, read_rules, variant_arch

__all__ = [
    "ArchSpec",
    "BlockSpec",
    "BudgetUnreachable",
    "Checkpoint",
    "FeatureInfo",
    "ModelSummary",
    "PretrainedCfg",
    "ReXNet",
    "ReXNetFeatures",
    "ReXNetV1",
    "ReXNetV1Lite",
    "RexnetError",
    "adapt_input_conv",
    "arch_from_dict",
    "arch_to_dict",
    "block_table",
    "checkpoint_network",
    "convert_checkpoint",
    "count_flops",
    "count_params",
    "create_model",
    "export_onnx",
    "family_at_macs",
    "float32_rtol",
    "format_block_table",
    "from_findings",
    "list_models",
    "load_arch",
    "load_checkpoint",
    "match_macs",
    "mobilenetv2_arch",
    "model_arch",
    "model_from_checkpoint",
    "network_diff",
    "official_to_timm",
    "parse_macs",
    "pretrained_cfg",
    "read_checkpoint",
    "read_rules",
    "resolve_arch",
    "resolve_device",
    "rexnet_lite_arch",
    "rexnet_v1_arch",
    "save_arch",
    "save_checkpoint",
    "small_input_arch",
    "small_input_variant",
    "summarize",
    "timm_to_official",
    "variant_arch",
]


def block_table(width: float = 1.0, depth_mult: float = 1.0, *, lite: bool = False) -> tuple[BlockSpec, ...]:
    """Returns the per-block specs of ReXNet-V1 (or lite) at a width (and, for V1, a depth
    multiplier): `block_table(1.0)` or `block_table(1.0, lite=True)`."""
    return (rexnet_lite_arch(width) if lite else rexnet_v1_arch(width, depth_mult)).blocks
