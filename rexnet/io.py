"""Provenance of written results: atomic file output (write to a temporary file beside the target, then rename,
so a failure leaves no partial file), the package versions and the command line that made them."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shlex
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it replaces `path`, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so os.replace is a rename on one filesystem (atomic on POSIX).
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Returns `path` after writing `text` to it atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def versions(
    packages: tuple[str, ...] = (
        "rankstudy-rexnet",
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "pandas",
        "pyarrow",
        "matplotlib",
    ),
) -> dict[str, str]:
    """Returns the versions of Python, the platform and `packages` ("not installed" where missing)."""

    def v(pkg: str) -> str:
        if pkg == "torch":  # with its local build tag (e.g. +cu130), which the metadata lacks
            return torch.__version__
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"python": platform.python_version(), **{p: v(p) for p in packages}, "platform": platform.platform()}


def command_line(ctx: click.Context, script: str | os.PathLike) -> str:
    """Returns the command that reproduces a click invocation of `script` (an experiment script): every option
    not left at its default, under its first spelling; a boolean flag as typed (`--no-train`, not `--train
    False`); a multiple option once per value."""
    args = ["python", f"experiments/{Path(script).name}"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or ctx.get_parameter_source(param.name) is click.core.ParameterSource.DEFAULT:
            continue
        if isinstance(param, click.Option) and param.is_flag and isinstance(value, bool):
            if value or param.secondary_opts:  # --train / --no-train; a one-sided flag is only ever typed on
                args.append(param.opts[0] if value else param.secondary_opts[0])
            continue
        for v in value if isinstance(value, tuple) else (value,):
            args += [param.opts[0], str(v)]
    return shlex.join(args)
