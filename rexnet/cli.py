"""The `rexnet` command line: thin wrappers that parse, call one library function and print.

Bad input (RexnetError) becomes `error: <problem>; <fix>` on one stderr line and exit code 2.
Later commands (data, train, eval) attach to `main` the same way.
"""

from __future__ import annotations

import click

from .errors import RexnetError


class _Group(click.Group):
    """A click group that turns RexnetError from any command into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RexnetError as exc:
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(2)


@click.group(cls=_Group)
def main() -> None:
    """ReXNet models: summaries, checkpoint conversion, ONNX export."""


@main.command("models")
def models_cmd() -> None:
    """List the registered model names."""
    from .registry import list_models

    click.echo("\n".join(list_models()))


@main.command()
@click.argument("name")
@click.option("--img-size", type=click.IntRange(min=32), default=224, show_default=True)
@click.option("--num-classes", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--save-arch", type=click.Path(dir_okay=False), help="Also write the block table as JSON here.")
def summary(name: str, img_size: int, num_classes: int, save_arch: str | None) -> None:
    """Print block table, parameters, MACs and activation memory of NAME (or a block-table .json)."""
    from .arch import save_arch as write_arch
    from .summary import format_summary, summarize

    result = summarize(name, img_size=img_size, num_classes=num_classes)
    click.echo(format_summary(result))
    if save_arch:
        click.echo(f"block table written to {write_arch(result.arch, save_arch)}")


def _model_from_cli(name: str, checkpoint: str | None, num_classes: int | None, skip_head: bool):
    """Returns the model for a CLI command; without --num-classes the checkpoint's class count is used."""
    from .checkpoint import read_checkpoint
    from .registry import create_model

    state = None
    if checkpoint is not None:
        ckpt = read_checkpoint(checkpoint)
        state = ckpt.state_dict
        if num_classes is None:
            num_classes = ckpt.num_classes or _classes_in(state)
    return create_model(name, num_classes=num_classes or 1000, checkpoint=state, skip_head=skip_head)


def _classes_in(state_dict) -> int | None:
    # The classifier is the highest-numbered `output.N` conv (output.1 for V1, output.4 for lite).
    heads = sorted((k for k in state_dict if k.startswith("output.") and k.endswith(".weight")),
                   key=lambda k: int(k.split(".")[1]))
    return int(state_dict[heads[-1]].shape[0]) if heads else None


@main.command()
@click.argument("name")
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@click.option("--checkpoint", type=click.Path(), help="Weights: official, timm or rexnet layout (.pth/.safetensors).")
@click.option("--num-classes", type=click.IntRange(min=1), help="Default: the checkpoint's, else 1000.")
@click.option("--skip-head", is_flag=True, help="Load all but the classifier (its size may differ).")
@click.option("--img-size", type=click.IntRange(min=32), default=224, show_default=True)
@click.option("--dynamo", is_flag=True, help="Use the torch.export-based exporter (slower).")
def export(name: str, onnx_path: str, checkpoint: str | None, num_classes: int | None, skip_head: bool,
           img_size: int, dynamo: bool) -> None:
    """Export NAME (or a block-table .json) to ONNX with a dynamic batch dimension."""
    from .export import export_onnx

    model = _model_from_cli(name, checkpoint, num_classes, skip_head)
    path = export_onnx(model, onnx_path, img_size=img_size, dynamo=dynamo)
    click.echo(f"wrote {path} ({model.arch.name}, {model.num_classes} classes, input 3×{img_size}×{img_size})")


@main.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--to", "layout", type=click.Choice(["official", "timm"]), default="timm", show_default=True)
def convert(src: str, dst: str, layout: str) -> None:
    """Rewrite checkpoint SRC (any supported layout) as DST in the official or timm layout."""
    from .checkpoint import convert_checkpoint

    click.echo(f"wrote {convert_checkpoint(src, dst, layout)} ({layout} layout)")
