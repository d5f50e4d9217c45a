"""The lazily imported `rexnet` package: every public name resolves, and the static import list matches it."""
import ast
import subprocess
import sys
from pathlib import Path

import rexnet


def test_every_public_name_resolves_to_its_submodule_object():
    for name in rexnet.__all__:
        value = getattr(rexnet, name)
        if name != "block_table":
            module, attr = rexnet._EXPORTS[name]
            assert value is getattr(__import__(f"rexnet.{module}", fromlist=[attr]), attr), name
    assert len(rexnet.block_table(1.0)) == 16


def test_type_checking_imports_list_the_same_names_as_the_lazy_table():
    tree = ast.parse(Path(rexnet.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING")
    static = {alias.asname or alias.name: (node.module, alias.name)
              for node in block.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert static == rexnet._EXPORTS


def test_importing_rexnet_activations_does_not_load_torchvision_or_the_trainer():
    code = "import sys, rexnet.activations; print(any(m in sys.modules for m in ('torchvision', 'rexnet.train')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
