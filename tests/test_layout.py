"""The house plan, checked from the source: no import circle (also none hidden by a function-level import),
the core of rankstudy imports no wing, rexnet imports no rankstudy, and every late import says why."""

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rankstudy", "rexnet")
CORE = {f"rankstudy.{m}" for m in ("rank", "batched", "stats", "store", "parallel", "errors")}
WINGS = ("random_nets", "findings", "probing", "channels", "proxies")
LATE_IMPORT = re.compile(r"#\s*noqa:\s*PLC0415\s*[-–—:]\s*\S.{5,}")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = all_modules()


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str) -> list[tuple[str, int, bool]]:
    """Returns (imported project module, line, inside a function) for every import statement of a module."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, child.lineno, nested))
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, name, path.name == "__init__.py")
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.append((sub if sub in MODULES else target, child.lineno, nested))
            visit(child, inner)

    visit(tree, False)
    return [(m, line, nested) for m, line, nested in found if m.split(".")[0] in PACKAGES]


@functools.cache
def graph() -> dict[str, set[str]]:
    """Returns module → the project modules it imports (at module level or in a function)."""
    edges = {}
    for name in MODULES:
        targets = set()
        for target, _, _ in imports(name):
            # `import a.b.c` imports a.b.c; an unknown attribute path is cut back to its module.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """Returns one import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_packages_have_modules_and_the_graph_has_edges():
    assert "rankstudy.rank" in MODULES and "rexnet.model" in MODULES
    assert "rankstudy.batched" in graph()["rankstudy.rank"]


def test_no_import_circle_even_through_function_level_imports():
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle)


@pytest.mark.parametrize("core", sorted(CORE))
def test_the_core_imports_no_wing(core):
    wings = [t for t in graph()[core] if t.startswith("rankstudy.") and t not in CORE]
    assert wings == [], f"{core} imports {wings}"


def test_rexnet_never_imports_rankstudy():
    bad = sorted((m, t) for m, ts in graph().items() if m.startswith("rexnet") for t in ts if t.startswith("rankstudy"))
    assert bad == []


def test_no_wing_uses_another_wings_private_names():
    bad = []
    for name, path in MODULES.items():
        wing = name.split(".")[1] if name.startswith("rankstudy.") and name.count(".") >= 2 else None
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(node, name, path.name == "__init__.py")
                parts = target.split(".")
                if parts[0] == "rankstudy" and len(parts) > 1 and parts[1] in WINGS and parts[1] != wing:
                    bad += [f"{name}: {target}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert bad == []


def test_every_late_import_says_why():
    """A function-level import only where start-up cost forces one, marked `# noqa: PLC0415 - why`."""
    unmarked = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    text = " ".join(lines[inner.lineno - 1 : inner.end_lineno])
                    if not LATE_IMPORT.search(text):
                        unmarked.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert unmarked == [], "late imports without a reason: " + ", ".join(sorted(set(unmarked)))
