"""timm's generic model tests (tests/test_models.py of huggingface/pytorch-image-models), run on this package's models.

The eleven tests below follow timm's own test functions step by step, with timm's input sizes (TARGET_* below)
and timm's public helpers (`timm.models.FeatureInfo`, `timm.layers.get_channel_dim`/`get_spatial_dim`, the
fx tracer settings of `timm.models.get_notrace_modules`/`get_notrace_functions`), with `rexnet.create_model`
in place of `timm.create_model`. Two checks do not apply to every model; each skip is listed in `NOT_APPLICABLE`
with its reason (docs/models.md repeats them). Everything else runs on every model of `MODELS`, among them a
variant built by `rexnet build` from the committed findings.
"""

import math
from pathlib import Path

import pytest
import torch
from timm.layers import get_channel_dim, get_spatial_dim
from timm.models import FeatureInfo, get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor, get_graph_node_names

from rexnet import create_model, save_arch
from rexnet.variants import from_findings

REPO = Path(__file__).resolve().parents[2]

# timm's sizes (tests/test_models.py)
TARGET_FWD_SIZE = MAX_FWD_SIZE = 384
TARGET_BWD_SIZE = 128
MAX_FWD_OUT_SIZE = 448
TARGET_JIT_SIZE = 128
TARGET_FFEAT_SIZE = 96
TARGET_FWD_FX_SIZE = 128
TARGET_BWD_FX_SIZE = 128

NAMES = ["rexnet_050", "rexnet_100", "rexnet_300", "rexnet_lite_100", "rexnetr_100", "mobilenetv2_100", "variant"]

# The lite head runs a 1×1 conv, BN and activation after the pool (like timm's MobileNetV3, which timm's test
# lists in EARLY_POOL_MODELS and exempts the same way): without pooling its output is the head's map, not
# forward_features' map, and its pooled width (head_hidden_size 1024) is not num_features (1280), which the
# non-standard test (timm runs it on its transformer families only) asserts for num_classes=0.
NOT_APPLICABLE = {
    ("default_cfgs", "rexnet_lite_100"): "early-pool head: the unpooled-output checks are skipped, as timm's "
    "test skips them for MobileNetV3",
    ("default_cfgs_non_std", "rexnet_lite_100"): "num_classes=0 returns the MLP head's 1024 features "
    "(head_hidden_size), not num_features 1280",
}


@pytest.fixture(scope="module")
def variant_path(tmp_path_factory):
    """A variant `rexnet build` writes from the committed findings: 250 M MACs at 224 px, 1000 classes."""
    arch = from_findings(REPO / "results" / "findings.json", macs_budget=250_000_000, num_classes=1000)
    return save_arch(arch, tmp_path_factory.mktemp("variant") / "variant.json")


@pytest.fixture(params=NAMES)
def model_name(request, variant_path):
    return str(variant_path) if request.param == "variant" else request.param


def _get_input_size(model, target=None):
    """timm's _get_input_size, read from the model's default_cfg."""
    cfg = model.default_cfg
    input_size = cfg["input_size"]
    if cfg.get("fixed_input_size"):
        return input_size
    if target and max(input_size) > target:
        input_size = tuple(min(x, target) for x in input_size)
    return input_size


def _applies(test: str, name: str) -> bool:
    return (test, Path(name).stem if name.endswith(".json") else name) not in NOT_APPLICABLE


def test_model_forward(model_name):
    model = create_model(model_name, pretrained=False).eval()
    input_size = _get_input_size(model, TARGET_FWD_SIZE)
    assert max(input_size) <= MAX_FWD_SIZE
    inputs = torch.randn((1, *input_size))
    outputs = model(inputs)
    assert outputs.shape[0] == 1
    assert not torch.isnan(outputs).any()
    model.set_grad_checkpointing()
    outputs2 = model(inputs)
    assert torch.allclose(outputs, outputs2, rtol=1e-4, atol=1e-5)


def test_model_backward(model_name):
    probe = create_model(model_name, pretrained=False)
    input_size = _get_input_size(probe, TARGET_BWD_SIZE)
    model = create_model(model_name, pretrained=False, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    outputs = model(torch.randn((2, *input_size)))
    outputs.mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {n}"
    assert outputs.shape[-1] == 42
    assert num_params == sum(p.grad.numel() for p in model.parameters())
    assert not torch.isnan(outputs).any()


def test_model_default_cfgs(model_name):
    model = create_model(model_name, pretrained=False).eval()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    state_dict = model.state_dict()
    cfg = model.default_cfg
    pool_size = cfg["pool_size"]
    input_size = cfg["input_size"]
    spatial_axis = get_spatial_dim("NCHW")
    feat_axis = get_channel_dim("NCHW")
    early_pool = not _applies("default_cfgs", model_name)
    assert all(x <= MAX_FWD_OUT_SIZE for x in input_size)
    input_tensor = torch.randn((1, *input_size))

    outputs = model.forward_features(input_tensor)
    outputs_pre = model.forward_head(outputs, pre_logits=True)
    assert outputs.shape[spatial_axis[0]] == pool_size[0] and outputs.shape[spatial_axis[1]] == pool_size[1]
    assert outputs.shape[feat_axis] == model.num_features
    assert outputs_pre.shape[1] == model.head_hidden_size

    model.reset_classifier(0)
    assert model.num_classes == 0
    outputs = model.forward(input_tensor)
    assert len(outputs.shape) == 2
    assert outputs.shape[1] == model.head_hidden_size
    assert outputs.shape == outputs_pre.shape

    if not early_pool:
        model.reset_classifier(0, "")
        outputs = model.forward(input_tensor)
        assert len(outputs.shape) == 4
        assert outputs.shape[spatial_axis[0]] == pool_size[0] and outputs.shape[spatial_axis[1]] == pool_size[1]
        model = create_model(model_name, pretrained=False, num_classes=0, global_pool="").eval()
        outputs = model.forward(input_tensor)
        assert len(outputs.shape) == 4
        assert outputs.shape[spatial_axis[0]] == pool_size[0] and outputs.shape[spatial_axis[1]] == pool_size[1]

    if cfg.get("num_classes"):
        classifier = cfg["classifier"]
        for c in classifier if isinstance(classifier, (tuple, list)) else (classifier,):
            assert c + ".weight" in state_dict, f"{c} not in model params"
    first_conv = cfg["first_conv"]
    for fc in (first_conv,) if isinstance(first_conv, str) else first_conv:
        assert fc + ".weight" in state_dict, f"{fc} not in model params"


def test_model_default_cfgs_non_std(model_name):
    if not _applies("default_cfgs_non_std", model_name):
        pytest.skip(NOT_APPLICABLE[("default_cfgs_non_std", model_name)])
    model = create_model(model_name, pretrained=False).eval()
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    state_dict = model.state_dict()
    cfg = model.default_cfg
    input_size = _get_input_size(model)
    assert max(input_size) <= 320
    input_tensor = torch.randn((1, *input_size))
    outputs = model.forward_features(input_tensor)
    outputs_pre = model.forward_head(outputs, pre_logits=True)
    assert outputs.shape[1] == model.num_features
    assert outputs_pre.shape[1] == model.head_hidden_size
    model.reset_classifier(0)
    assert model.num_classes == 0
    outputs = model.forward(input_tensor)
    assert outputs.shape[1] == model.head_hidden_size and outputs.shape == outputs_pre.shape
    model = create_model(model_name, pretrained=False, num_classes=0).eval()
    outputs = model.forward(input_tensor)
    assert outputs.shape[1] == model.num_features
    assert cfg["classifier"] + ".weight" in state_dict and cfg["first_conv"] + ".weight" in state_dict


def test_model_forward_torchscript(model_name):
    model = create_model(model_name, pretrained=False).eval()
    input_size = _get_input_size(model, TARGET_JIT_SIZE)
    scripted = torch.jit.script(model)
    x = torch.randn((1, *input_size))
    outputs = scripted(x)
    assert outputs.shape[0] == 1
    assert not torch.isnan(outputs).any()
    with torch.no_grad():  # not part of timm's test: the scripted graph computes what the model computes
        assert torch.allclose(scripted(x), model(x), rtol=1e-4, atol=1e-5)


def _check_feature_maps(model, outputs, input_size):
    expected_channels = model.feature_info.channels()
    expected_reduction = model.feature_info.reduction()
    assert len(expected_channels) >= 3
    feat_axis, spatial_axis = get_channel_dim("NCHW"), get_spatial_dim("NCHW")
    assert len(expected_channels) == len(outputs)
    for e, r, o in zip(expected_channels, expected_reduction, outputs):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(input_size[-2] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(input_size[-1] / r) + 1
        assert o.shape[0] == 1
        assert not torch.isnan(o).any()


def test_model_forward_features(model_name):
    model = create_model(model_name, pretrained=False, features_only=True).eval()
    input_size = _get_input_size(model, TARGET_FFEAT_SIZE)
    _check_feature_maps(model, model(torch.randn((1, *input_size))), input_size)


def test_model_forward_intermediates_features(model_name):
    model = create_model(model_name, pretrained=False, features_only=True, feature_cls="getter").eval()
    input_size = _get_input_size(model, TARGET_FFEAT_SIZE)
    _check_feature_maps(model, model(torch.randn((1, *input_size))), input_size)


def test_model_forward_intermediates(model_name):
    model = create_model(model_name, pretrained=False).eval()
    feature_info = FeatureInfo(model.feature_info, len(model.feature_info))
    expected_channels = feature_info.channels()
    expected_reduction = feature_info.reduction()
    assert len(expected_channels) >= 3
    input_size = _get_input_size(model, TARGET_FFEAT_SIZE)
    feat_axis, spatial_axis = get_channel_dim("NCHW"), get_spatial_dim("NCHW")
    inpt = torch.randn((1, *input_size))
    output, intermediates = model.forward_intermediates(inpt, output_fmt="NCHW")
    assert len(expected_channels) == len(intermediates)
    for e, r, o in zip(expected_channels, expected_reduction, intermediates):
        assert e == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(input_size[-2] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(input_size[-1] / r) + 1
        assert o.shape[0] == 1
        assert not torch.isnan(o).any()
    assert torch.allclose(output, model.forward_features(inpt))
    model.set_grad_checkpointing()
    output3, _ = model.forward_intermediates(inpt, output_fmt="NCHW")
    assert torch.allclose(output, output3, rtol=1e-4, atol=1e-5)


def _create_fx_model(model, train=False):
    """timm's _create_fx_model: torchvision's feature extractor returning the graph's last node."""
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(), param_shapes_constant=True
    )
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    eval_return_nodes = [eval_nodes[-1]]
    train_return_nodes = [train_nodes[-1]]
    if train:
        tracer = NodePathTracer(**tracer_kwargs)
        graph = tracer.trace(model)
        graph_nodes = list(reversed(graph.nodes))
        output_node_names = [n.name for n in graph_nodes[0]._input_nodes.keys()]
        graph_node_names = [n.name for n in graph_nodes]
        output_node_indices = [-graph_node_names.index(node_name) for node_name in output_node_names]
        train_return_nodes = [train_nodes[ix] for ix in output_node_indices]
    return create_feature_extractor(
        model,
        train_return_nodes=train_return_nodes,
        eval_return_nodes=eval_return_nodes,
        tracer_kwargs=tracer_kwargs,
    )


def test_model_forward_fx(model_name):
    model = create_model(model_name, pretrained=False).eval()
    input_size = _get_input_size(model, TARGET_FWD_FX_SIZE)
    with torch.inference_mode():
        inputs = torch.randn((1, *input_size))
        outputs = model(inputs)
        fx_model = _create_fx_model(model)
        fx_outputs = torch.cat(tuple(fx_model(inputs).values()))
    assert torch.all(fx_outputs == outputs)
    assert outputs.shape[0] == 1
    assert not torch.isnan(outputs).any()


def test_model_backward_fx(model_name):
    probe = create_model(model_name, pretrained=False)
    input_size = _get_input_size(probe, TARGET_BWD_FX_SIZE)
    model = create_model(model_name, pretrained=False, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    fx_model = _create_fx_model(model, train=True)
    outputs = torch.cat(tuple(fx_model(torch.randn((2, *input_size))).values()))
    outputs.mean().backward()
    for n, p in fx_model.named_parameters():
        assert p.grad is not None, f"no gradient for {n}"
    assert outputs.shape[-1] == 42
    assert num_params == sum(p.grad.numel() for p in fx_model.parameters() if p.grad is not None)
    assert not torch.isnan(outputs).any()


def test_model_forward_fx_torchscript(model_name):
    model = create_model(model_name, pretrained=False).eval()
    input_size = _get_input_size(model, TARGET_JIT_SIZE)
    scripted = torch.jit.script(_create_fx_model(model))
    with torch.inference_mode():
        outputs = torch.cat(tuple(scripted(torch.randn((1, *input_size))).values()))
    assert outputs.shape[0] == 1
    assert not torch.isnan(outputs).any()


def test_every_layer_is_a_node_of_the_fx_graph():
    """`create_feature_extractor` sees every layer: each conv, BN and activation module is a node (leaf or call)."""
    model = create_model("rexnet_100").eval()
    _, eval_nodes = get_graph_node_names(model)
    nodes = set(eval_nodes)
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.Sigmoid, torch.nn.ReLU)):
            assert name in nodes, name
        elif isinstance(module, torch.nn.Conv2d) or type(module).__name__ in (
            "MemoryEfficientReLU6",
            "InferenceInplaceSiLU",
        ):
            assert any(n == name or n.startswith(name + ".") for n in nodes), name
    extractor = create_feature_extractor(model, return_nodes={"features.5.out.1": "bn", "features.18": "last"})
    out = extractor(torch.randn(1, 3, 64, 64))
    assert out["bn"].shape[1] == model.features[5].out[1].num_features and out["last"].shape[1] == 185
