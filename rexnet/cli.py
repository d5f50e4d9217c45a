"""The `rexnet` command line: thin wrappers that parse, call one library function and print.

Bad input (RexnetError) becomes `error: <problem>; <fix>` on one stderr line and exit code 2.
The training subcommands (data, train, eval) call `rexnet.training`'s functions through their modules
(`trainer.train`, …), looked up when the command runs.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import metadata
from pathlib import Path

import click

from .arch import budget_img_size, format_block_table
from .arch import save_arch as write_arch
from .checkpoint import convert_checkpoint, read_checkpoint
from .errors import RexnetError
from .export import export_onnx
from .model import ReXNet
from .registry import checkpoint_network, create_model, list_models, model_from_checkpoint
from .summary import format_summary, summarize
from .training import data as datasets
from .training import evaluate as evaluation
from .training import train as trainer
from .variants import family_at_macs, from_findings, parse_macs, read_rules


class _Group(click.Group):
    """A click group that turns RexnetError from any command into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RexnetError as exc:
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            ctx.exit(2)
        except OSError as exc:  # a path the system refuses (e.g. under /proc): one line, not a traceback
            where = f" {exc.filename}" if exc.filename else ""
            click.echo(
                f"error: cannot use{where} ({exc.strerror or type(exc).__name__}); choose a path you can write to",
                err=True,
            )
            ctx.exit(2)


def _version() -> str:
    try:
        return metadata.version("rankstudy-rexnet")
    except metadata.PackageNotFoundError:  # run from a clone without installing
        return "unknown (not installed)"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="rexnet", message="%(prog)s %(version)s")
def main() -> None:
    """ReXNet models: summaries, checkpoint conversion, ONNX export."""


@main.command("models")
def models_cmd() -> None:
    """List the model names (other widths work too: rexnet_070, mobilenetv2_035, …)."""
    click.echo("\n".join(list_models()))


_SMALL_INPUT = click.Choice(["off", "s16", "s8"])


@main.command()
@click.argument("name")
@click.option(
    "--img-size",
    type=click.IntRange(min=8),
    help="Default: the size a built variant was matched at (its JSON's budget), else 224.",
)
@click.option("--num-classes", type=click.IntRange(min=1), help="Default: the table's (1000 for names).")
@click.option("--in-chans", type=click.IntRange(min=1), help="Input channels. Default: the table's (3 for names).")
@click.option(
    "--small-input",
    type=_SMALL_INPUT,
    help="Put NAME in a small-input mode (as `rexnet train --small-input`). Default: the table's own (off for names).",
)
@click.option("--save-arch", type=click.Path(dir_okay=False), help="Also write the block table as JSON here.")
def summary(
    name: str,
    img_size: int | None,
    num_classes: int | None,
    in_chans: int | None,
    small_input: str | None,
    save_arch: str | None,
) -> None:
    """Print block table, parameters, MACs and activation memory of NAME (or a block-table .json).

    A table written by `rexnet build` is summarised as the network it was matched as: its small-input mode,
    input channels and classes, at its budget's image size.
    """
    result = summarize(name, img_size=img_size, num_classes=num_classes, in_chans=in_chans, small_input=small_input)
    click.echo(format_summary(result))
    if save_arch:
        click.echo(f"block table written to {write_arch(result.arch, save_arch)}")


def _export_model(
    name: str | None,
    checkpoint: str | None,
    num_classes: int | None,
    in_chans: int | None,
    small_input: str | None,
    skip_head: bool,
) -> tuple[ReXNet, int | None]:
    """Returns (the model to export, the image size it was trained or matched at, if known).

    A checkpoint that records its network (written by `rexnet train` or `save_checkpoint`) is rebuilt as that
    network (`model_from_checkpoint`): NAME, --num-classes, --in-chans and --small-input, when given, must
    agree with it. Other checkpoints load into NAME (their class count unless --num-classes says otherwise).
    """
    ckpt = read_checkpoint(checkpoint) if checkpoint is not None else None
    if ckpt is not None and checkpoint_network(ckpt) is not None:
        if skip_head:
            raise RexnetError(
                f"{checkpoint} records its whole network, classifier included, so --skip-head does not apply; drop it"
            )
        model, info = model_from_checkpoint(
            ckpt, name, num_classes=num_classes, small_input=small_input, source=f"checkpoint {checkpoint}"
        )
        if in_chans is not None and in_chans != info["in_chans"]:
            raise RexnetError(
                f"checkpoint {checkpoint} holds a network with {info['in_chans']}-channel input, not {in_chans}; "
                "drop --in-chans to use the checkpoint's"
            )
        return model, info["img_size"] or budget_img_size(model.arch)
    if name is None:
        what = f"checkpoint {checkpoint} does not record its network" if checkpoint else "no model was named"
        raise RexnetError(f"{what}; give the model NAME (see `rexnet models`) or a block-table .json")
    if ckpt is not None and num_classes is None:
        num_classes = ckpt.classifier_classes
    model = create_model(
        name,
        num_classes=num_classes,
        checkpoint=checkpoint,  # the path, read again: a published file's SHA-256 is checked
        skip_head=skip_head,
        in_chans=in_chans,
        small_input=small_input,
    )
    return model, budget_img_size(model.arch)


@main.command()
@click.argument("name", required=False)
@click.option("--onnx", "onnx_path", required=True, type=click.Path(dir_okay=False), help="Output .onnx file.")
@click.option(
    "--checkpoint",
    type=click.Path(),
    help="Weights: official, timm or rexnet layout (.pth/.safetensors). A `rexnet train` checkpoint is exported "
    "as the network it records (NAME optional).",
)
@click.option("--num-classes", type=click.IntRange(min=1), help="Default: the checkpoint's, else the table's (1000).")
@click.option("--in-chans", type=click.IntRange(min=1), help="Input channels. Default: the checkpoint's or table's.")
@click.option(
    "--small-input", type=_SMALL_INPUT, help="Small-input mode of NAME. Default: the checkpoint's or table's own."
)
@click.option("--skip-head", is_flag=True, help="Load all but the classifier (its size may differ).")
@click.option(
    "--img-size",
    type=click.IntRange(min=8),
    help="Example input size. Default: the training (or budget) image size, else 224.",
)
@click.option("--dynamo", is_flag=True, help="Use the torch.export-based exporter (slower).")
def export(
    name: str | None,
    onnx_path: str,
    checkpoint: str | None,
    num_classes: int | None,
    in_chans: int | None,
    small_input: str | None,
    skip_head: bool,
    img_size: int | None,
    dynamo: bool,
) -> None:
    """Export NAME (or a block-table .json, or the network a checkpoint records) to ONNX, dynamic batch."""
    model, known_size = _export_model(name, checkpoint, num_classes, in_chans, small_input, skip_head)
    img_size = img_size or known_size or 224
    path = export_onnx(model, onnx_path, img_size=img_size, dynamo=dynamo)
    click.echo(
        f"wrote {path} ({model.arch.name}, {model.num_classes} classes, small-input mode {model.arch.small_input}, "
        f"input {model.in_chans}×{img_size}×{img_size})"
    )
    if checkpoint is None:
        click.echo(
            "note: no --checkpoint was given, so these are random, untrained weights; pass --checkpoint FILE "
            "to export a trained model"
        )


@main.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--to", "layout", type=click.Choice(["official", "timm"]), default="timm", show_default=True)
def convert(src: str, dst: str, layout: str) -> None:
    """Rewrite checkpoint SRC (any supported layout) as DST in the official or timm layout."""
    click.echo(f"wrote {convert_checkpoint(src, dst, layout)} ({layout} layout)")


# --- data, train, eval -----------------------------------------------------------------------------------


@main.group("data")
def data_cmd() -> None:
    """Prepare datasets for training and evaluation."""


@data_cmd.command("fashion-mnist")
@click.option(
    "--root",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="torchvision root: files go to ROOT/FashionMNIST/raw/.",
)
@click.option(
    "--source",
    type=click.Path(),
    help="Folder or tarball with the idx .gz files "
    "(default: /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist).",
)
@click.option("--no-download", is_flag=True, help="Do not fall back to torchvision's download.")
def fashion_mnist_cmd(root: str, source: str | None, no_download: bool) -> None:
    """Put verified Fashion-MNIST (60k/10k) where torchvision's FashionMNIST reads it; a no-op when done."""
    click.echo(f"Fashion-MNIST ready in {datasets.prepare_fashion_mnist(root, source, download=not no_download)}")


@main.command("train")
@click.option(
    "--model", "model_name", help="Model name (`rexnet models`; any width ×100, e.g. rexnet_050, mobilenetv2_070)."
)
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help="A saved block table (.json) instead.")
@click.option(
    "--data",
    "data",
    default="fashion-mnist",
    show_default=True,
    help="fashion-mnist | cifar10 | cifar100 | imagefolder:PATH | fake",
)
@click.option(
    "--data-root",
    default="data",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the datasets are (see `rexnet data`).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Training epochs.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=128,
    show_default=True,
    help="Total batch per step (split over processes under torchrun).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Peak learning rate (after warm-up) for --batch-size.",
)
@click.option("--momentum", type=click.FloatRange(0, 1), default=0.9, show_default=True, help="SGD momentum.")
@click.option("--nesterov/--no-nesterov", default=True, show_default=True, help="Nesterov momentum.")
@click.option(
    "--weight-decay",
    type=click.FloatRange(min=0),
    default=5e-5,
    show_default=True,
    help="On conv/linear weights only (not BN, not biases).",
)
@click.option(
    "--warmup-epochs",
    type=click.FloatRange(min=0),
    default=None,
    help="Linear warm-up from 0 to --lr over this many epochs, then cosine decay. "
    "Default: 1 epoch, at most 10% of the run.",
)
@click.option(
    "--min-lr",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Learning rate at the end of the cosine.",
)
@click.option(
    "--label-smoothing",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="Label smoothing of the cross-entropy.",
)
@click.option(
    "--dropout", type=click.FloatRange(0, 1, max_open=True), help="Before the classifier. Default: the table's (0.2)."
)
@click.option(
    "--drop-path",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Stochastic depth at the last block, linear in the block index (e.g. 0.1–0.2 for wide models).",
)
@click.option(
    "--ema-decay",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="EMA of the weights (0 = off, e.g. 0.999); evaluated and saved when on.",
)
@click.option(
    "--clip-grad",
    type=click.FloatRange(min=0, min_open=True),
    help="Clip the global gradient norm to this value. Default: no clipping.",
)
@click.option("--randaugment", is_flag=True, help="RandAugment (2 ops, magnitude 9) on training images.")
@click.option(
    "--hflip",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Probability of a horizontal flip of a training image (0 for digits, text, …).",
)
@click.option(
    "--scale",
    type=(click.FloatRange(0, 1, min_open=True), click.FloatRange(0, 1, min_open=True)),
    default=(0.08, 1.0),
    show_default=True,
    help="ImageFolder training: area range MIN MAX of the random resized crop (as timm's --scale).",
)
@click.option(
    "--random-erasing",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability of random erasing on training images.",
)
@click.option(
    "--small-input",
    type=click.Choice(["off", "s16", "s8"]),
    default="off",
    show_default=True,
    help="28–32 px data: s16 = one fewer downsampling (total stride 16); s8 = also stem stride 1 (8). "
    "A table built in a mode keeps it.",
)
@click.option("--img-size", type=click.IntRange(min=8), help="Default: 32 (small datasets), 224 (ImageFolder).")
@click.option("--train-limit", type=click.IntRange(min=1), help="Train on a fixed random subset of this size.")
@click.option("--test-limit", type=click.IntRange(min=1), help="Test on a fixed random subset of this size.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds init, shuffling and augmentation.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto = CUDA when visible.",
)
@click.option(
    "--amp/--no-amp",
    default=None,
    help="Mixed precision: bfloat16/float16 on CUDA, bfloat16 on CPUs with "
    "native support. Default: on for CUDA, off for CPU.",
)
@click.option("--compile", is_flag=True, help="torch.compile the training step (minutes to compile on CPU).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="DataLoader processes.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option("--resume", is_flag=True, help="Continue the run in --out (same settings required).")
@click.option("--progress/--no-progress", default=True, help="Progress bar per epoch.")
def train_cmd(model_name: str | None, arch_path: str | None, resume: bool, **options) -> None:
    """Train a model (name or block table) with SGD, warm-up + cosine, label smoothing; torchrun for DDP."""
    if (model_name is None) == (arch_path is None):
        raise RexnetError("give exactly one of --model NAME or --arch block_table.json; see `rexnet models` for names")
    scale_min, scale_max = options.pop("scale")
    if scale_min > scale_max:
        raise click.BadParameter(f"give MIN <= MAX, got {scale_min} {scale_max}", param_hint="--scale")
    cfg = trainer.TrainConfig(model=model_name or arch_path, scale_min=scale_min, scale_max=scale_max, **options)
    # train() prints nothing; rank 0 reports each epoch through on_epoch, printed here as one line
    row = trainer.train(cfg, resume=resume, on_epoch=lambda r: click.echo(trainer.format_epoch(r, cfg.epochs)))
    if row and trainer.rank_info()[0] == 0:  # under torchrun every process returns; one prints
        click.echo(f"done: {cfg.out} epoch {row['epoch']} test top-1 {row['test_top1']:.2f}%")


@main.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(), help="A run's model.pth (or checkpoint.pth).")
@click.option(
    "--data",
    "data",
    default="fashion-mnist",
    show_default=True,
    help="fashion-mnist | cifar10 | cifar100 | imagefolder:PATH | fake",
)
@click.option("--data-root", default="data", show_default=True, type=click.Path(file_okay=False))
@click.option("--model", "model_name", help="Check the checkpoint is this model (name or block-table .json).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder. Default: beside the checkpoint.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--test-limit", type=click.IntRange(min=1), help="Evaluate a fixed random subset of this size.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--progress/--no-progress", default=True, help="Progress bar of the test batches.")
@click.option(
    "--save-logits",
    is_flag=True,
    help="Also write logits.npy: the logits the numbers come from (float32, one row per test image, in order).",
)
def eval_cmd(
    checkpoint: str,
    data: str,
    data_root: str,
    model_name: str | None,
    out: str | None,
    batch_size: int,
    test_limit: int | None,
    device: str,
    progress: bool,
    save_logits: bool,
) -> None:
    """Top-1/top-5, per-class accuracy, confusion matrix and penultimate feature rank of a trained model."""
    model, spec = evaluation.load_for_eval(
        checkpoint, data, data_root, model_name=model_name, test_limit=test_limit, device=device
    )
    result = evaluation.evaluate(
        model,
        spec.test,
        spec.classes,
        batch_size=batch_size,
        device=next(model.parameters()).device,
        progress=progress,
        keep_logits=save_logits,
    )
    out_dir = Path(out) if out else Path(checkpoint).parent / f"eval_{spec.name}"
    files = evaluation.write_eval(result, out_dir, title=f"{model.arch.name} on {spec.name}: top-1 {result.top1:.2f}%")
    click.echo(evaluation.format_eval(result))
    click.echo(f"wrote {', '.join(str(p) for p in files.values())}")


# --- build: a table at a MACs budget, from the rank study's findings or a published family -------------------


@main.command("build")
@click.option(
    "--findings",
    "findings_path",
    type=click.Path(dir_okay=False),
    help="findings.json from `rankstudy principles`: build the ReXNet variant it prescribes.",
)
@click.option(
    "--family",
    type=click.Choice(["rexnet", "mobilenetv2"]),
    help="Instead: the published network at the budget (width by bisection).",
)
@click.option("--macs", "macs_text", required=True, help="MACs budget, e.g. 12.9M, 400M, 1.2G (one image).")
@click.option("--img-size", type=click.IntRange(min=8), default=224, show_default=True)
@click.option(
    "--small-input",
    type=click.Choice(["off", "s16", "s8"]),
    default="off",
    show_default=True,
    help="Match the MACs of the network in this mode, and write the table in it (block and stem strides).",
)
@click.option(
    "--in-chans", type=click.IntRange(min=1), default=3, show_default=True, help="Input channels, recorded too."
)
@click.option(
    "--num-classes", type=click.IntRange(min=1), default=1000, show_default=True, help="Classes, recorded too."
)
@click.option(
    "--tau",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.9,
    show_default=True,
    help="Rank threshold whose max_expansion_per_layer caps the expansion.",
)
@click.option(
    "--depth",
    type=click.FloatRange(min=0, min_open=True),
    help="Depth multiplier (blocks per stage = ceil(n·depth)); default ReXNet's 1.0.",
)
@click.option("--name", help="Table name (default rexnet_findings_WIDTH / the family's name).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Block table .json to write.")
def build_cmd(
    findings_path: str | None,
    family: str | None,
    macs_text: str,
    img_size: int,
    small_input: str,
    in_chans: int,
    num_classes: int,
    tau: float,
    depth: float | None,
    name: str | None,
    out: str,
) -> None:
    """Write a block table whose MACs are within 2% of --macs: the variant a findings file prescribes, or a family.

    The JSON is the whole network matched (block table in the small-input mode, stem stride, input channels,
    classes) and records which finding chose each rule; `rexnet summary`, `rexnet train --arch`, `rexnet
    export` and `create_model` build that network from it.
    """
    if (findings_path is None) == (family is None):
        raise RexnetError(
            "give exactly one of --findings FILE or --family rexnet|mobilenetv2; see `rexnet build --help`"
        )
    budget = dict(
        macs_budget=parse_macs(macs_text),
        num_classes=num_classes,
        img_size=img_size,
        in_chans=in_chans,
        small_input=small_input,
        depth=depth,
    )
    if findings_path is not None:
        rules = read_rules(findings_path, tau=tau)
        for line in rules.undecided:  # one line per rule the findings could not decide: ReXNet's choice kept
            click.echo(f"warning: {line}", err=True)
        arch = from_findings(rules, tau=tau, name=name, **budget)
    else:
        arch = family_at_macs(family, **budget)
        arch = replace(arch, name=name) if name else arch
    try:
        path = write_arch(arch, out)
    except OSError as exc:
        raise RexnetError(f"cannot write {out} ({exc.strerror or exc}); choose a writable --out path") from None
    click.echo(format_block_table(arch))
    b = arch.provenance["budget"]
    click.echo(
        f"wrote {path}: {b['macs'] / 1e6:.4g}M MACs at {img_size}x{img_size} (small-input {small_input}), "
        f"budget {b['macs_budget'] / 1e6:.4g}M ({b['macs'] / b['macs_budget'] - 1:+.2%}), "
        f"width {b['width_mult']}, depth {b['depth_mult']}"
    )
