"""Every ```python block of README.md runs as written: each in a fresh interpreter, in its own empty temporary
folder (so nothing is written into the repository), with this checkout's packages first on the path.

The blocks run side by side (one per core): most of each block's time is importing torch, which parallelises."""

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# A fence opening with ```python (at the start of a line) up to the next closing ``` line.
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
TIMEOUT_S = 300


def python_blocks() -> list[tuple[int, str]]:
    """Returns (line number of the opening fence, code) of every ```python block in README.md."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


BLOCKS = python_blocks()


def run_block(code: str, cwd: Path) -> tuple[int | None, str]:
    """Returns (exit code, or None on timeout; stderr) of `code` run by a fresh interpreter in `cwd`."""
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        return None, stderr
    return done.returncode, done.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[int, tuple[int | None, str]]:
    """Runs every block once, side by side; returns line → (exit code, stderr)."""
    folders = {line: tmp_path_factory.mktemp(f"readme_{line}") for line, _ in BLOCKS}
    with ThreadPoolExecutor(max_workers=max(1, min(len(BLOCKS), os.cpu_count() or 1))) as pool:
        futures = {line: pool.submit(run_block, code, folders[line]) for line, code in BLOCKS}
        return {line: future.result() for line, future in futures.items()}


def test_readme_has_python_blocks():
    assert BLOCKS, f"no ```python block found in {README}"


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, outcomes):
    returncode, stderr = outcomes[line]
    if returncode is None:
        pytest.fail(f"README.md block at line {line} ran past {TIMEOUT_S} s:\n{code}\n--- stderr ---\n{stderr}")
    if returncode != 0:
        pytest.fail(f"README.md block at line {line} exited {returncode}:\n{code}\n--- stderr ---\n{stderr}")
