"""ReXNet vs MobileNetV2 at matched MACs on Fashion-MNIST: the paper's channel-design claim on data we can get here.

Both models are built by the same builder with the same small-input option (default s16: one fewer
downsampling, total stride 16; 32×32 inputs = 28×28 padded by 2), trained with the same recipe, epochs and
seeds. The MobileNetV2 width is found by bisection (`rexnet.variants.match_macs`) so its MACs are within 2% of
ReXNet-0.5×'s (MobileNetV2-0.74×: 12.8 vs 12.9 MMACs). No result of this script is committed: the
comparison, with 4 seeds per model and the current trainer, is part of experiments/findings_variants.py
(results/findings_variants/); `--mobilenet-width` sets a width by hand. Sized for ≤ 150 minutes on 2 CPU cores: 2 models × 2 seeds × 6 epochs.
Measured here at 32×32, batch 128, 2 threads: ReXNet-0.5× ~190 img/s (~5.2 min per 60k epoch incl. evaluation),
MobileNetV2-0.7× ~250 img/s (~4 min), ~2 h in all. Mode s8 (stem stride 1 as well) costs ~4.5× more per image
(~45 img/s) and does not fit the budget; mode off (~420 img/s) does, at 1×1 final maps.

Resumable: each run lives in RUNS/<model>_s<seed>; a finished run (model.pth present) is skipped, an interrupted
one resumes from its last epoch's checkpoint, so the study can be completed over several sittings by rerunning
the same command. Results: RESULTS/table.md and table.csv (mean ± std test top-1 over seeds, params, MACs, img/s,
penultimate feature rank), runs.csv (one row per run), curves.png (test top-1 and train loss per epoch),
command.txt (the exact command). Usage:

    python experiments/fashion_mnist.py                       # the full study (default settings below)
    python experiments/fashion_mnist.py --train-limit 512 --epochs 1 --seeds 0 --results /tmp/r --runs /tmp/runs
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path

import click
import pandas as pd
import torch

from rexnet.baseline import mobilenetv2_arch
from rexnet.io import atomic_path, atomic_write_text, command_line, versions
from rexnet.registry import resolve_arch
from rexnet.small_input import small_input_variant
from rexnet.summary import model_costs
from rexnet.training.data import load_data
from rexnet.training.evaluate import evaluate, load_for_eval, write_eval
from rexnet.training.train import TrainConfig, format_epoch, train
from rexnet.variants import match_macs

REXNET = "rexnet_050"
IMG_SIZE = 32


def run_folder(runs: Path, model: str, seed: int) -> Path:
    """Returns the run folder of one (model, seed)."""
    return runs / f"{model}_s{seed}"


def run_one(cfg: TrainConfig) -> str:
    """Returns what was done for one run: 'skipped' (finished before), 'resumed' or 'trained'."""
    out = Path(cfg.out)
    if (out / "model.pth").is_file():
        return "skipped"
    resume = (out / "checkpoint.pth").is_file()
    train(cfg, resume=resume, on_epoch=lambda row: print(format_epoch(row, cfg.epochs), flush=True))
    return "resumed" if resume else "trained"


def summarize_run(cfg: TrainConfig, in_chans: int) -> dict:
    """Returns one run's row: final test top-1/top-5, params, MACs, the penultimate feature rank and the median
    training img/s over epochs (the median, so one epoch slowed by other work on the machine does not skew it)."""
    out = Path(cfg.out)
    metrics = pd.read_csv(out / "metrics.csv")
    eval_json = out / "eval_fashion-mnist" / "eval.json"
    if not eval_json.is_file():
        model, spec = load_for_eval(
            out / "model.pth", "fashion-mnist", cfg.data_root, test_limit=cfg.test_limit, device="cpu"
        )
        write_eval(evaluate(model, spec.test, spec.classes), eval_json.parent, title=f"{cfg.model} seed {cfg.seed}")
    report = json.loads(eval_json.read_text())
    arch, stem_stride = small_input_variant(resolve_arch(cfg.model), cfg.small_input)
    params, macs = model_costs(arch, IMG_SIZE, num_classes=10, in_chans=in_chans, stem_stride=stem_stride)
    return {
        "model": cfg.model,
        "seed": cfg.seed,
        "epochs": int(metrics["epoch"].iloc[-1]),
        "test_top1": report["top1"],
        "test_top5": report["top5"],
        "params": params,
        "macs": macs,
        "img_per_s": metrics["img_per_s"].median(),
        "feature_rank": report["feature_rank"],
        "nuclear_norm": report["feature_nuclear_norm"],
    }


def write_table(rows: pd.DataFrame, results: Path) -> pd.DataFrame:
    """Returns the per-model table (mean ± std over seeds), written as table.csv and table.md."""
    table = (
        rows.groupby("model", sort=False)
        .agg(
            seeds=("seed", "count"),
            top1_mean=("test_top1", "mean"),
            top1_std=("test_top1", "std"),
            top1_min=("test_top1", "min"),
            top1_max=("test_top1", "max"),
            top5_mean=("test_top5", "mean"),
            params=("params", "first"),
            macs=("macs", "first"),
            img_per_s=("img_per_s", "mean"),
            feature_rank=("feature_rank", "mean"),
        )
        .reset_index()
    )
    atomic_write_text(results / "table.csv", table.to_csv(index=False))
    lines = [
        "| model | seeds | test top-1 (mean ± std) | min–max | top-5 | params | MMACs (32×32) | train img/s | "
        "feature rank |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        std = 0.0 if pd.isna(r.top1_std) else r.top1_std
        lines.append(
            f"| {r.model} | {r.seeds} | {r.top1_mean:.2f} ± {std:.2f} | "
            f"{r.top1_min:.2f}–{r.top1_max:.2f} | {r.top5_mean:.2f} | {r.params:,} | {r.macs / 1e6:.1f} | "
            f"{r.img_per_s:.0f} | {r.feature_rank:.3f} |"
        )
    atomic_write_text(results / "table.md", "\n".join(lines) + "\n")
    return table


def plot_curves(curves: list[tuple[str, int, pd.DataFrame]], results: Path) -> Path:
    """Returns the path of curves.png: test top-1 and train loss per epoch, one line per run; `curves` holds each
    run's (model label, seed, metrics.csv rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {}
    for model, seed, m in curves:
        color = colors.setdefault(model, f"C{len(colors)}")
        label = f"{model} seed {seed}"
        acc_ax.plot(m["epoch"], m["test_top1"], marker="o", color=color, label=label, alpha=0.8)
        loss_ax.plot(m["epoch"], m["train_loss"], marker="o", color=color, label=label, alpha=0.8)
    acc_ax.set(xlabel="epoch", ylabel="test top-1 (%)", title="Fashion-MNIST test accuracy")
    loss_ax.set(xlabel="epoch", ylabel="train loss (label-smoothed)", title="training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no run with per-epoch metrics", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_path(results / "curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return results / "curves.png"


@click.command()
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option(
    "--small-input",
    type=click.Choice(["off", "s16", "s8"]),
    default="s16",
    show_default=True,
    help="Small-input mode for both models (rexnet/small_input.py).",
)
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated seeds.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--weight-decay", type=float, default=5e-5, show_default=True)
@click.option("--data-root", default="data", show_default=True)
@click.option("--runs", default="runs/fashion_mnist", show_default=True, help="Run folders (checkpoints).")
@click.option("--results", default="results/fashion_mnist", show_default=True)
@click.option("--train-limit", type=click.IntRange(min=1), help="Smoke runs: a random subset of the training set.")
@click.option("--test-limit", type=click.IntRange(min=1))
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--mobilenet-width", type=float, help="Default: matched to ReXNet-0.5×'s MACs.")
def main(
    epochs,
    small_input,
    seeds,
    batch_size,
    lr,
    weight_decay,
    data_root,
    runs,
    results,
    train_limit,
    test_limit,
    workers,
    mobilenet_width,
) -> None:
    """Train ReXNet-0.5× and a MAC-matched MobileNetV2 on Fashion-MNIST over seeds; write table and curves."""
    in_chans = load_data("fashion-mnist", data_root).in_chans

    def macs(arch) -> int:
        arch, stem_stride = small_input_variant(arch, small_input)
        return model_costs(arch, IMG_SIZE, in_chans=in_chans, stem_stride=stem_stride)[1]

    target = macs(resolve_arch(REXNET))
    # The model is named by its width ×100, so the matched width is kept to two decimals.
    width = mobilenet_width or round(
        match_macs(mobilenetv2_arch, target, img_size=IMG_SIZE, small_input=small_input, in_chans=in_chans)[0], 2
    )
    mobilenet = f"mobilenetv2_{round(width * 100):03d}"
    print(
        f"{REXNET}: {target / 1e6:.1f} MMACs at {IMG_SIZE}×{IMG_SIZE} (small input {small_input}); matched "
        f"baseline {mobilenet} ({macs(mobilenetv2_arch(width)) / 1e6:.1f} MMACs)",
        flush=True,
    )
    base = TrainConfig(
        data="fashion-mnist",
        data_root=data_root,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_epochs=min(1.0, epochs / 5),
        label_smoothing=0.1,
        small_input=small_input,
        img_size=IMG_SIZE,
        train_limit=train_limit,
        test_limit=test_limit,
        device="cpu",
        workers=workers,
    )
    runs, results = Path(runs), Path(results)
    cfgs = [
        replace(base, model=model, seed=seed, out=str(run_folder(runs, model, seed)))
        for seed in (int(s) for s in seeds.split(","))
        for model in (REXNET, mobilenet)
    ]
    for cfg in cfgs:
        print(f"== {cfg.model} seed {cfg.seed}: {run_one(cfg)}", flush=True)
    results.mkdir(parents=True, exist_ok=True)
    settings = {
        "models": [REXNET, mobilenet],
        "seeds": sorted({c.seed for c in cfgs}),
        **{k: v for k, v in asdict(base).items() if k not in ("model", "seed", "out")},
    }
    packages = {**versions(), "torchvision": metadata.version("torchvision"), "threads": torch.get_num_threads()}
    atomic_write_text(
        results / "command.txt",
        command_line(click.get_current_context(), __file__)
        + "\n"
        + f"settings: {json.dumps(settings)}\n"
        + f"versions: {json.dumps(packages)}\n",
    )
    rows = pd.DataFrame([summarize_run(cfg, in_chans) for cfg in cfgs])
    atomic_write_text(results / "runs.csv", rows.to_csv(index=False))
    table = write_table(rows, results)
    plot_curves([(c.model, c.seed, pd.read_csv(Path(c.out) / "metrics.csv")) for c in cfgs], results)
    print((results / "table.md").read_text())
    if len(table) == 2:
        rex, mob = table.set_index("model").loc[[REXNET, mobilenet], "top1_mean"]
        print(f"ReXNet − MobileNetV2: {rex - mob:+.2f} points of test top-1 (mean over seeds)")


if __name__ == "__main__":
    main()
