"""The `rexnet` package: plain imports, every public name resolves, and `import rexnet` stays light (neither
torchvision nor the trainer), which the rank study's worker processes rely on."""

import json
import subprocess
import sys

import rexnet


def test_every_public_name_resolves():
    missing = [name for name in rexnet.__all__ if not hasattr(rexnet, name)]
    assert missing == []
    assert len(rexnet.block_table(1.0)) == 16


def test_import_rexnet_loads_neither_torchvision_nor_the_trainer():
    code = (
        "import json, sys, rexnet; [getattr(rexnet, n) for n in rexnet.__all__]; "
        "print(json.dumps(sorted(m for m in sys.modules if m == 'torchvision' or m.startswith('torchvision.') "
        "or m == 'rexnet.training' or m.startswith('rexnet.training.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_import_rexnet_training_does_not_load_torchvision():
    code = "import sys, rexnet.training; print(any(m.split('.')[0] == 'torchvision' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_training_names_are_exported_by_rexnet_training():
    import rexnet.training as training
    from rexnet.training import evaluate, train

    assert training.train_model is train.train and training.evaluate_model is evaluate.evaluate
    assert all(hasattr(training, name) for name in training.__all__)
    # the package attributes named like the submodules are the submodules, not functions that would hide them
    assert training.train is sys.modules["rexnet.training.train"]
    assert training.evaluate is sys.modules["rexnet.training.evaluate"]


def test_the_checkpoint_reader_sits_below_the_registry():
    """rexnet.checkpoint names models through rexnet.names, never through rexnet.registry (which imports it)."""
    import ast
    from pathlib import Path

    import rexnet.checkpoint

    tree = ast.parse(Path(rexnet.checkpoint.__file__).read_text())
    sources = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "registry" not in sources and "names" in sources
