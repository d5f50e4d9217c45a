"""ONNX export: onnxruntime's outputs equal PyTorch's, with a dynamic batch, written atomically."""

import numpy as np
import pytest
import torch

from rexnet import ReXNet, RexnetError, ReXNetV1, export_onnx, rexnet_v1_arch
from rexnet.small_input import small_input_variant

from .conftest import randomize

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def test_onnx_matches_pytorch(tmp_path):
    model = randomize(ReXNetV1(num_classes=10), seed=3)
    path = export_onnx(model, tmp_path / "m.onnx", img_size=64)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    x = torch.randn(3, 3, 64, 64)  # exported with batch 1: the batch dimension is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_run(path, x), expected, rtol=1e-4, atol=1e-4)
    assert not model.training


def test_bad_output_name_leaves_nothing(tmp_path):
    with pytest.raises(RexnetError, match=r"\.onnx"):
        export_onnx(ReXNetV1(), tmp_path / "m.txt")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_no_partial_file(tmp_path, monkeypatch):
    def broken_export(model, args, f, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(RuntimeError):
        export_onnx(ReXNetV1(num_classes=2), tmp_path / "m.onnx", img_size=32)
    assert list(tmp_path.iterdir()) == []


def test_a_one_channel_small_input_model_exports_with_its_own_input(tmp_path):
    arch, _ = small_input_variant(rexnet_v1_arch(0.5), "s8")
    model = randomize(ReXNet(arch, 10, 1), seed=5)
    path = export_onnx(model, tmp_path / "m.onnx", img_size=16)  # total stride 8: 16 px is enough
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(_run(path, x), expected, rtol=1e-4, atol=1e-4)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [1, 16, 16]


def test_an_image_smaller_than_the_total_stride_is_refused(tmp_path):
    arch, _ = small_input_variant(rexnet_v1_arch(0.5), "s16")
    with pytest.raises(RexnetError, match="below 16, the network's total stride"):
        export_onnx(ReXNet(arch, 10, 1), tmp_path / "m.onnx", img_size=8)
    assert list(tmp_path.iterdir()) == []
