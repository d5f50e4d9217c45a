"""Per-layer feature rank of the findings-variants comparison's networks, at initialisation and after training.

The paper (ReXNet, §3–4) designs its channel schedule so that layers keep a high rank (rank / channels) and
argues MobileNetV2's stage-wise schedule loses rank. Here `rankstudy.probe` measures it on the two published
networks of experiments/findings_variants.py (ReXNet-0.5× and the MACs-matched MobileNetV2-0.74×, Fashion-MNIST,
1 input channel, small-input mode s16, 10 classes): each seed-0 trained run (RUNS/rexnet_<table hash>_s0 and
RUNS/mobilenetv2_<table hash>_s0, their model.pth) and the same network at initialisation (rebuilt from the
network the checkpoint records, with the run's seed, exactly as rexnet.training.train builds it before the
first step), on a seeded random subset of the Fashion-MNIST test set, in eval mode without gradients.

Batch norm (`rankstudy.probe(bn=...)`): an untrained network's running statistics are mean 0 / variance 1,
so in plain eval mode its BN layers pass each layer's raw scale and offset on, while the random-network study
normalises with batch statistics. So the init network is probed twice, with batch statistics (bn "batch", the
probe's default for an untrained network: each forward batch of --batch-size images normalised with its own
statistics) and with its running statistics (bn "running": the size of that artefact), and the trained
network with its running statistics (bn "running"): three (state, bn) rows per model.

Layers probed (the main path, where the paper measures): the output of every activation outside the SE
gates (stem, expansion, depthwise, penultimate), every block's output (after the residual) and the pooled
penultimate features. Results in RESULTS: layers.csv (one row per model × state × bn × layer), summary.csv and
summary.md (mean normalized rank by depth third and by layer role; the models compared, trained − init, and
init under running − batch statistics), depth.png (normalized rank through relative depth, every model, state
and bn mode), command.txt (command, settings, versions). Usage:

    python experiments/probe.py          # runs/findings_variants/{rexnet,mobilenetv2}_*_s0 (findings_variants.py)
    python experiments/probe.py --runs PATH --results /tmp/probe --n-images 256
    python experiments/probe.py --run PATH --run PATH     # any `rexnet train` runs instead
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import metadata
from pathlib import Path

import click
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from rankstudy.probing import load_images, load_model, probe
from rexnet.activations import ACTIVATIONS
from rexnet.blocks import LinearBottleneck, SqueezeExcite
from rexnet.checkpoint import read_checkpoint
from rexnet.io import atomic_path, atomic_write_text, command_line, versions
from rexnet.model import ReXNet
from rexnet.registry import checkpoint_network


class BadInput(click.ClickException):
    """Bad input: click prints one line, "Error: ...", and exits with code 2 (click's default is 1)."""

    exit_code = 2


DEFAULT_RUNS = "runs/findings_variants"
MODELS = ("rexnet", "mobilenetv2")  # the run-folder keys of experiments/findings_variants.py, seed 0
# (state, batch-norm mode) probed per model: init with batch statistics (the probe's default for an untrained
# network) and with its untrained running statistics (the eval-mode artefact), trained with running statistics.
STATES = (("init", "batch"), ("init", "running"), ("trained", "running"))
MEASURES = ("rank", "rank_rtol_1e-3", "rank_rtol_1e-2", "effective_rank", "stable_rank", "nuclear_norm")
SUMMARY_MEASURES = ("rank", "rank_rtol_1e-2", "effective_rank")
_ACTIVATION_TYPES = tuple({a.module for a in ACTIVATIONS.values()} - {nn.Identity})


def find_runs(runs: Path) -> list[Path]:
    """Returns the seed-0 run folder of each of MODELS in `runs` (RUNS/<model>_<8-hex table hash>_s0 holding
    model.pth); BadInput naming the command that trains a missing run, or the runs to choose between."""
    found = []
    for model in MODELS:
        pattern = re.compile(rf"{model}_[0-9a-f]{{8}}_s0")
        folders = sorted(p for p in runs.glob(f"{model}_*_s0") if pattern.fullmatch(p.name))
        done = [p for p in folders if (p / "model.pth").is_file()]
        if not done:
            state = f"{folders[0]} is not finished" if folders else f"no run {runs}/{model}_<hash>_s0"
            raise BadInput(f"{state}; train it with `python experiments/findings_variants.py` (or pass --runs/--run)")
        if len(done) > 1:
            raise BadInput(
                f"{len(done)} finished runs match {runs}/{model}_*_s0 ({', '.join(p.name for p in done)}); "
                "pass the ones to probe with --run"
            )
        found.append(done[0])
    return found


def init_model(checkpoint: Path) -> nn.Module:
    """Returns the network of a `rexnet train` run as it was before its first step: the network the checkpoint
    records (table, stem stride, input channels, classes), built after seeding with the run's seed as
    rexnet.training.train does; the checkpoint alone suffices (the run's table file is not read)."""
    ckpt = read_checkpoint(checkpoint)
    cfg = ckpt.metadata.get("config", {})
    recorded = checkpoint_network(ckpt)
    if recorded is None or "seed" not in cfg:
        raise BadInput(f"{checkpoint} was not written by `rexnet train`; give a run's model.pth")
    torch.manual_seed(cfg["seed"])  # rexnet.training.train seeds right before building the model
    model = ReXNet(
        recorded,
        recorded.num_classes,
        recorded.in_chans,
        stem_stride=recorded.stem_stride,
        drop_path_rate=cfg.get("drop_path", 0.0),
    )
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    if shapes != {k: v.shape for k, v in ckpt.state_dict.items()}:
        raise BadInput(f"{checkpoint}: rebuilding its network does not give the trained network")
    return model


def layer_roles(model: nn.Module) -> dict[str, str]:
    """Returns module name → role for the probed layers: stem, expand, depthwise, block, penultimate, pooled."""
    roles = {}
    blocks = [(n, m) for n, m in model.named_modules() if isinstance(m, LinearBottleneck)]
    in_se = {n for n, m in model.named_modules() if isinstance(m, SqueezeExcite)}
    for name, block in blocks:
        acts = [
            f"{name}.{n}"
            for n, m in block.named_modules()
            if isinstance(m, _ACTIVATION_TYPES) and not any(f"{name}.{n}".startswith(s + ".") for s in in_se)
        ]
        for act, role in zip(acts, ["expand", "depthwise"][-len(acts) :] if acts else []):
            roles[act] = role
        roles[name] = "block"
    features = model.features
    last_act = [f"features.{i}" for i, m in enumerate(features) if isinstance(m, _ACTIVATION_TYPES)]
    roles[last_act[0]] = "stem"
    roles[last_act[-1]] = "penultimate"
    roles["global_pool"] = "pooled"  # the pooled penultimate features (rexnet.model.ReXNet.forward_head)
    return roles


def probe_network(
    model: nn.Module, images: torch.Tensor, *, bn: str, max_columns: int, batch_size: int, seed: int
) -> pd.DataFrame:
    """Returns the probe table of the main-path layers of `model` under batch-norm mode `bn` ("batch" or
    "running"), with role and relative depth columns (and the probe's bn column)."""
    roles = layer_roles(model)
    table = probe(
        model,
        images,
        lambda name, module: name in roles,
        measures=list(MEASURES),
        max_columns=max_columns,
        batch_size=batch_size,
        seed=seed,
        bn=bn,
        progress=True,
    )
    table.insert(1, "role", table["name"].map(roles))
    table.insert(2, "depth", range(len(table)))
    table.insert(3, "relative_depth", table["depth"] / (len(table) - 1))
    return table


def summarize(layers: pd.DataFrame) -> pd.DataFrame:
    """Returns the mean normalized measures per (model, state, bn) by depth third and by role (uncapped layers)."""
    used = layers[~layers["capped"]].copy()
    used["third"] = pd.cut(used["relative_depth"], [-0.01, 1 / 3, 2 / 3, 1.0], labels=["early", "middle", "late"])
    rows = []
    for (model, state, bn), g in used.groupby(["model", "state", "bn"], sort=False):
        groups = (
            [("all", "all", g)]
            + [("third", t, gg) for t, gg in g.groupby("third", observed=True)]
            + [("role", r, gg) for r, gg in g.groupby("role", sort=False)]
        )
        for kind, group, gg in groups:
            row = {"model": model, "state": state, "bn": bn, "by": kind, "group": group, "layers": len(gg)}
            row.update({m: gg["normalized_" + m].mean() for m in SUMMARY_MEASURES})
            rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame, models: list[str], n_images: int) -> str:
    """Returns summary.md: one table per measure (model × state × bn rows, depth thirds and roles as columns)."""
    groups = ["all", "early", "middle", "late", "stem", "expand", "depthwise", "block", "penultimate", "pooled"]
    lines = [
        f"# Feature rank through depth: {' vs '.join(models)} (Fashion-MNIST test, {n_images} images)",
        "",
        "Mean over layers of rank / channels (`rankstudy.probe`), uncapped layers only; thirds of relative "
        "depth and layer roles. bn: batch-norm statistics, `batch` (each forward batch's) or `running` (the "
        "layers' own: mean 0 / variance 1 at initialisation). Written by experiments/probe.py.",
        "",
    ]
    for measure in SUMMARY_MEASURES:
        present = [g for g in groups if g in set(summary["group"])]
        lines += [
            f"## {measure} / channels",
            "",
            "| model | state | bn | " + " | ".join(present) + " |",
            "|---|---|---|" + "---|" * len(present),
        ]
        for (model, state, bn), g in summary.groupby(["model", "state", "bn"], sort=False):
            values = g.set_index("group")[measure]
            lines.append(
                f"| {model} | {state} | {bn} | "
                + " | ".join(f"{values[c]:.3f}" if c in values else "–" for c in present)
                + " |"
            )
        lines.append("")
    return "\n".join(lines + answers(summary, models, groups)) + "\n"


def answers(summary: pd.DataFrame, models: list[str], groups: list[str], tie: float = 0.01) -> list[str]:
    """Returns the Markdown lines answering: which network keeps more rank, where, what training changes
    (trained − init, both under the statistics their probe defaults to), and how much of init's rank the
    untrained running statistics move (init under running − batch statistics)."""
    value = summary.set_index(["model", "state", "bn", "group"])
    lines = ["## Answers", "", f"Differences of mean rank / channels; |Δ| < {tie} counts as a tie.", ""]

    def diffs(a, sa, b, sb, measure):
        out = {}
        for g in groups:
            if (a, *sa, g) in value.index and (b, *sb, g) in value.index:
                out[g] = value.at[(a, *sa, g), measure] - value.at[(b, *sb, g), measure]
        return out

    def most(d):
        parts = sorted(((v, g) for g, v in d.items() if g != "all"), reverse=True)
        return f"most up: {parts[0][1]} {parts[0][0]:+.3f}; most down: {parts[-1][1]} {parts[-1][0]:+.3f}"

    if len(models) == 2:
        a, b = models
        lines.append(f"**Which keeps more rank** ({a} − {b}):")
        for measure in SUMMARY_MEASURES:
            for state in STATES:
                d = diffs(a, state, b, state, measure)
                if "all" not in d:
                    continue
                more = max((a, b), key=lambda m: d["all"] if m == a else -d["all"])
                higher_a = ", ".join(f"{g} {v:+.3f}" for g, v in d.items() if g != "all" and v >= tie) or "none"
                higher_b = ", ".join(f"{g} {v:+.3f}" for g, v in d.items() if g != "all" and v <= -tie) or "none"
                lines.append(
                    f"- {measure}, {state[0]} (bn {state[1]}): {more if abs(d['all']) >= tie else 'neither'} over "
                    f"all layers (Δ {d['all']:+.3f}); {a} higher in: {higher_a}; {b} higher in: {higher_b}"
                )
        lines.append("")
    lines.append("**Does training change it** (trained, bn running − init, bn batch):")
    for model in models:
        for measure in SUMMARY_MEASURES:
            d = diffs(model, ("trained", "running"), model, ("init", "batch"), measure)
            if "all" in d:
                lines.append(f"- {model}, {measure}: {d['all']:+.3f} over all layers; {most(d)}")
    lines += ["", "**The untrained running statistics** (init, bn running − init, bn batch):"]
    for model in models:
        for measure in SUMMARY_MEASURES:
            d = diffs(model, ("init", "running"), model, ("init", "batch"), measure)
            if "all" in d:
                lines.append(f"- {model}, {measure}: {d['all']:+.3f} over all layers; {most(d)}")
    return lines


LINE_STYLES = {("init", "batch"): "--", ("init", "running"): ":", ("trained", "running"): "-"}


def plot_depth(layers: pd.DataFrame, path: Path, n_images: int) -> Path:
    """Returns `path` after drawing normalized rank through relative depth: one row per measure, one column per
    layer role (the roles alternate along the network, so one line through all of them would zigzag)."""
    roles = [r for r in ("expand", "depthwise", "block") if r in set(layers["role"])]
    fig = Figure(figsize=(4.6 * len(roles), 3.2 * len(SUMMARY_MEASURES)))
    axes = fig.subplots(len(SUMMARY_MEASURES), len(roles), squeeze=False, sharex=True, sharey=True)
    used = layers[~layers["capped"]]
    extra = used[~used["role"].isin(roles)]  # stem, penultimate, pooled: one point each, drawn in every panel
    colors = {m: f"C{k}" for k, m in enumerate(dict.fromkeys(layers["model"]))}
    for (i, measure), (j, role) in ((a, b) for a in enumerate(SUMMARY_MEASURES) for b in enumerate(roles)):
        ax = axes[i][j]
        for (model, state, bn), g in used.groupby(["model", "state", "bn"], sort=False):
            style = dict(color=colors[model], ls=LINE_STYLES.get((state, bn), "-."), marker=".", lw=1.2)
            r = g[g["role"] == role]
            ax.plot(r["relative_depth"], r["normalized_" + measure], label=f"{model} {state}, bn {bn}", **style)
            e = extra[(extra["model"] == model) & (extra["state"] == state) & (extra["bn"] == bn)]
            ax.scatter(e["relative_depth"], e["normalized_" + measure], color=style["color"], marker="x", s=30)
        ax.set(ylim=(0, 1.05), title=f"{role} outputs" if i == 0 else None)
        ax.grid(alpha=0.3)
        if j == 0:
            ax.set_ylabel(f"{measure} / channels")
        if i == len(SUMMARY_MEASURES) - 1:
            ax.set_xlabel("relative depth")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(
        f"Fashion-MNIST test, {n_images} images; dashed: at initialisation (BN batch statistics), dotted: at "
        "initialisation (BN running statistics), solid: trained; ×: stem, penultimate and pooled features"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@click.command()
@click.option(
    "--runs",
    "runs_dir",
    default=DEFAULT_RUNS,
    show_default=True,
    help="experiments/findings_variants.py's run folders: the seed-0 runs rexnet_*_s0 and mobilenetv2_*_s0 are probed.",
)
@click.option(
    "--run",
    "runs",
    multiple=True,
    help="A `rexnet train` run folder holding model.pth, probed instead of --runs' (repeat for each network).",
)
@click.option("--data-root", default="data", show_default=True)
@click.option(
    "--n-images",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Test images probed: more than the widest layer's channels, so pooled layers are not capped.",
)
@click.option("--max-columns", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option(
    "--batch-size",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Images per forward batch (at most; near-equal batches): under bn batch, each batch's statistics.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the images and the columns.")
@click.option("--results", default="results/probe", show_default=True)
def main(runs_dir, runs, data_root, n_images, max_columns, batch_size, seed, results) -> None:
    """Probe each run's network at initialisation (BN batch and running statistics) and trained (running);
    write layers, summary, figure and command."""
    results = Path(results)
    if runs:
        missing = [r for r in runs if not (Path(r) / "model.pth").is_file()]
        if missing:
            raise BadInput(f"{missing[0]}/model.pth not found; finish the run or pass another --run")
        runs = [Path(r) for r in runs]
    else:
        runs = find_runs(Path(runs_dir))
    frames, models, run_info = [], [], []
    for run in runs:
        trained = load_model(None, run / "model.pth")
        ckpt = read_checkpoint(run / "model.pth")
        cfg = ckpt.metadata["config"]
        images = load_images(
            "fashion-mnist",
            n_images,
            in_chans=trained.in_chans,
            img_size=trained.img_size,
            data_root=data_root,
            seed=seed,
        )
        label = Path(cfg["model"]).stem  # a registered name, or a block table's file name
        models.append(label)
        recorded = checkpoint_network(ckpt)
        run_info.append(
            {
                "run": str(run),
                "model": cfg["model"],
                "width_mult": ((recorded.provenance or {}).get("budget") or {}).get("width_mult"),
                "seed": cfg["seed"],
                "small_input": cfg["small_input"],
                "epochs": cfg["epochs"],
                "model_pth_md5": _md5(run / "model.pth"),
            }
        )
        networks = {"init": init_model(run / "model.pth"), "trained": trained.model}
        for state, bn in STATES:
            print(f"== {label} {state}, bn {bn}", flush=True)
            table = probe_network(
                networks[state], images, bn=bn, max_columns=max_columns, batch_size=batch_size, seed=seed
            )
            frames.append(table.assign(model=label, state=state))
    layers = pd.concat(frames, ignore_index=True)
    first = ["model", "state", "bn"]
    layers = layers[first + [c for c in layers.columns if c not in first]]
    summary = summarize(layers)
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(results / "layers.csv", layers.to_csv(index=False))
    atomic_write_text(results / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(results / "summary.md", summary_markdown(summary, models, n_images))
    plot_depth(layers, results / "depth.png", n_images)
    settings = {
        "runs": run_info,
        "n_images": n_images,
        "max_columns": max_columns,
        "batch_size": batch_size,
        "seed": seed,
        "measures": list(MEASURES),
        "mode": "eval (dropout, drop-path off), no gradients; batch norm per state as in states",
        "states": [{"state": state, "bn": bn} for state, bn in STATES],
        "bn_batch_sizes": table.attrs["batch_sizes"],  # the forward batches: bn batch normalises each with its own
    }
    packages = {**versions(), "torchvision": metadata.version("torchvision"), "threads": torch.get_num_threads()}
    atomic_write_text(
        results / "command.txt",
        command_line(click.get_current_context(), __file__)
        + "\n"
        + f"settings: {json.dumps(settings)}\n"
        + f"versions: {json.dumps(packages)}\n",
    )
    print((results / "summary.md").read_text())


if __name__ == "__main__":
    main()
