"""Does the rank study's advice make a better network? MobileNetV2, ReXNet, the findings' variant and the 2×2
factorial of the rules, at equal MACs, with enough seeds to put a CI on each contrast (findings v3).

On Fashion-MNIST (32×32 = 28×28 padded, small-input mode s16, the recipe of experiments/fashion_mnist.py: 6
epochs, batch 128, SGD lr 0.1 Nesterov, label smoothing 0.1), every model within 2% of one MACs budget:
ReXNet-0.5× s16's 12.9M (the paper compares at equal FLOPs, Tables 3-4). Models, each a block table written
to RESULTS/archs/ (the variant's records which finding chose each rule and which it left undecided):
- MobileNetV2 as published, width by bisection to the budget (0.74×, −0.5%), seeds --seeds (0,1,2,3);
- ReXNet-V1 as published, 0.5×, --seeds;
- the variant `rexnet build --findings FINDINGS --tau TAU` gives (rules: `rexnet.variants`), --seeds. With the
  committed schema-3 findings it keeps ReXNet's every choice (nonlinearity and expansion undecided, the
  schedule ReXNet's linear one), so its table is ReXNet's and ReXNet's runs stand for it;
- the factorial the rules are about: the nonlinearity after the expanding 1×1 convs (ReLU6 or SiLU) × the block
  expansion (3 or 6), each cell re-matched to the budget (expansion 3: width 0.865×), --cell-seeds (0,1,2).
  The SiLU / 6 cell is ReXNet (Section 4.1 of the paper), whose first seeds stand for it.
A model whose table equals an earlier one's reuses its runs. Per run: test top-1/top-5, params, MACs, median
training img/s, and the penultimate feature rank of the test set (pooled features in chunks of 2·C images, as
`rexnet eval`) under rank at rtol 1e-2, effective rank (the design measure's family, normalised by C) and
the float32-tolerance rank. Reported (RESULTS/table.md):
- per model: mean ± std of test top-1 over seeds;
- contrasts (contrasts.csv): variant − ReXNet (when they differ), ReXNet − MobileNetV2, the factorial's main
  effects, interaction and simple effects, each with a 95% t interval over seeds from the variance pooled
  over the contrast's models (`rankstudy.stats.contrast`) and an equivalence verdict at ±0.5 points (TOST);
- Spearman's ρ of each rank measure with test top-1 over *architectures* (seeds averaged first), with the
  exact permutation p over architectures and a bootstrap of the seeds within architectures (spearman.csv).

Sizing: `--time-steps N` times N training steps per distinct model and prints img/s, its ratio to ReXNet's
in the same run and the epoch time it implies. On 2026-11-30 (idle, 2 threads) ReXNet-0.5× trained at 330
img/s; on 2026-12-02 the same code measured 101 img/s on 1 thread and 107 on 2 (old code too: the machine
was slower), i.e. ~10 min per 60k epoch, ~65 min per 6-epoch run on one core; real epochs with two jobs
ran at 95 img/s per job when nothing else ran. 17 distinct runs (4 + 4 + 3 × 3) as two 1-thread jobs side
by side (`--jobs 2`; two 1-thread runs train ~1.7× more images per second in total than one 2-thread run, by
those step timings) take ~3.5 h at the 11-30 speed and ~9 h at the 12-02 one, so the experiment spans
sittings: rerunning the command resumes it.

Resumable run by run: RUNS/<model>_<table hash>_s<seed> (checkpoints, not committed); an interrupted run
resumes from its last epoch; a changed table (e.g. rebuilt from new findings) gets a new folder. A finished run
writes its record, RESULTS/runs/<run>.json (its row, per-epoch metrics and recipe), which is committed with the
results, so a later sitting on a fresh checkout never redoes it; a record trained with other settings stops the
command (exit 2). Runs an earlier report listed in RESULTS/runs.csv before records existed, whose run folders
are gone, are recorded from that row when command.txt's settings are this recipe and RESULTS/runs/ does not
exist yet (no per-epoch metrics); delete a record to retrain its run. Runs are queued seed by seed (every
model's seed 0, then seed 1, …), so an interrupted experiment has every model at its first seeds. `--no-train` reports the finished runs only; while runs are missing,
table.md and command.txt begin with "PARTIAL: k of n runs finished" and list them. Results: RESULTS/table.csv
and table.md (per model), runs.csv (per run), contrasts.csv, spearman.csv, figure.png (accuracy per model;
rank vs accuracy per run), curves.png, archs/*.json, runs/*.json, command.txt. Usage:

    python experiments/findings_variants.py --jobs 2           # the full experiment (resumes)
    python experiments/findings_variants.py --no-train         # the tables from the finished runs
    python experiments/findings_variants.py --time-steps 20    # measure training speed only, write nothing
    python experiments/findings_variants.py --epochs 1 --seeds 0 --cell-seeds 0 --train-limit 256 \\
        --test-limit 256 --runs /tmp/fv_runs --results /tmp/fv_results      # a smoke run
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

import click
import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fashion_mnist import plot_curves, run_one, summarize_run  # noqa: E402

from rankstudy import stats as rs_stats  # noqa: E402
from rankstudy.rank import rank_metrics  # noqa: E402
from rexnet.arch import ArchSpec, arch_to_dict, rexnet_v1_arch, save_arch  # noqa: E402
from rexnet.io import atomic_path, atomic_write_text, command_line, versions  # noqa: E402
from rexnet.model import ReXNet  # noqa: E402
from rexnet.small_input import small_input_variant  # noqa: E402
from rexnet.training.data import load_data  # noqa: E402
from rexnet.training.evaluate import load_for_eval  # noqa: E402
from rexnet.training.train import TrainConfig  # noqa: E402
from rexnet.variants import Rules, arch_macs, family_at_macs, from_findings, read_rules  # noqa: E402


class BadInput(click.ClickException):
    """Bad input: click prints one line, "Error: ...", and exits with code 2 (click's default is 1)."""

    exit_code = 2


IMG_SIZE = 32
REXNET_WIDTH = 0.5  # the budget: ReXNet-0.5×'s MACs
RANK_MEASURES = {
    "rank_rtol_1e-2": "normalized_rank_rtol_1e-2",
    "effective_rank": "normalized_effective_rank",
    "rank_float32": "normalized_rank",
}


@dataclass(frozen=True)
class Model:
    """One network of the comparison: a key (file names), a label (tables), its table, seeds and role."""

    key: str
    label: str
    arch: ArchSpec
    seeds: tuple[int, ...]
    role: str  # baseline | published | variant | ablation
    same_as: str | None = None  # the key of an identical network whose runs stand for this one


def table_hash(arch: ArchSpec) -> str:
    """Returns 8 hex digits identifying the network (name and provenance excluded)."""
    data = arch_to_dict(replace(arch, name="-", provenance=None))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]


FACTORIAL = {  # the 2×2 the rules are about (issue: principles v3): nonlinearity after expansions × expansion
    "relu6_e3": ("relu6", 3),
    "relu6_e6": ("relu6", 6),
    "silu_e3": ("silu", 3),
    "silu_e6": ("silu", 6),  # ReXNet's own cell (Section 4.1 of the paper: SiLU after expansions, t = 6)
}
NONLINEARITY_LABELS = {"relu6": "ReLU6", "silu": "SiLU"}


def plan_models(
    findings: str, tau: float, small_input: str, in_chans: int, seeds: tuple[int, ...], cell_seeds: tuple[int, ...]
) -> tuple[int, list[Model]]:
    """Returns (MACs budget, models): the two published networks and the findings' variant (`seeds` each), then
    the four factorial cells (`cell_seeds` each), every one re-matched to the budget. A model whose table equals
    an earlier one's is that network (`same_as`): the SiLU/6 cell is ReXNet, and a variant that keeps ReXNet's
    every choice is ReXNet too."""
    target = arch_macs(rexnet_v1_arch(REXNET_WIDTH), img_size=IMG_SIZE, small_input=small_input, in_chans=in_chans)
    budget = dict(macs_budget=target, num_classes=10, img_size=IMG_SIZE, in_chans=in_chans, small_input=small_input)
    mobilenet = family_at_macs("mobilenetv2", **budget)
    rexnet = family_at_macs("rexnet", **budget)
    rules = read_rules(findings, tau=tau)
    models = [
        Model(
            "mobilenetv2",
            f"MobileNetV2-{mobilenet.provenance['budget']['width_mult']:g}×",
            mobilenet,
            seeds,
            "baseline",
        ),
        Model("rexnet", f"ReXNet-{rexnet.provenance['budget']['width_mult']:g}×", rexnet, seeds, "published"),
        Model(
            "variant", "variant (findings)", from_findings(rules, name="rexnet_findings", **budget), seeds, "variant"
        ),
    ]
    for key, (act, expansion) in FACTORIAL.items():
        cell = Rules(
            nonlinearity=act,
            max_expansion=expansion,
            schedule="linear",
            evidence={
                rule: {"because": f"factorial cell {NONLINEARITY_LABELS[act]} / expansion {expansion}"}
                for rule in ("nonlinearity", "expansion")
            },
        )
        arch = from_findings(cell, name=f"rexnet_{key}", **budget)
        label = f"{NONLINEARITY_LABELS[act]} / exp {expansion} ({arch.provenance['budget']['width_mult']:g}×)"
        models.append(Model(key, label, arch, cell_seeds, "factorial"))
    # A model identical to an earlier network is that network: its runs stand for it.
    seen: dict[str, Model] = {}
    for i, m in enumerate(models):
        h = table_hash(m.arch)
        if h in seen:
            first = seen[h]
            missing = set(m.seeds) - set(first.seeds)
            if missing:
                raise BadInput(
                    f"{m.key} is the same network as {first.key}, whose seeds lack {sorted(missing)}; give "
                    "--cell-seeds a subset of --seeds"
                )
            models[i] = replace(m, same_as=first.key)
        else:
            seen[h] = m
    return target, models


def run_configs(models: list[Model], base: TrainConfig, runs: Path, archs: Path) -> dict[str, list[TrainConfig]]:
    """Returns each model's run configs (an identical model's are those of the one it equals), after writing
    every model's table to `archs` (the variant's records which findings chose what) and removing the tables
    of models no longer in the plan."""
    cfgs: dict[str, list[TrainConfig]] = {}
    for stale in archs.glob("*.json") if archs.is_dir() else ():
        if stale.stem not in {m.key for m in models}:  # a model of an earlier plan (e.g. the schema-2 ablations)
            stale.unlink()
    for m in models:
        path = save_arch(m.arch, archs / f"{m.key}.json")  # also a same_as model's: its provenance is its own
        if m.same_as is not None:
            cfgs[m.key] = [c for c in cfgs[m.same_as] if c.seed in m.seeds]
            continue
        cfgs[m.key] = [
            replace(base, model=str(path), seed=s, out=str(runs / f"{m.key}_{table_hash(m.arch)}_s{s}"))
            for s in m.seeds
        ]
    return cfgs


@torch.no_grad()
def feature_ranks(cfg: TrainConfig) -> dict[str, float]:
    """Returns the run's penultimate feature ranks (mean over chunks of 2·C test images, each / C), cached in
    the run folder as feature_ranks.json."""
    cache = Path(cfg.out) / "feature_ranks.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    model, spec = load_for_eval(
        Path(cfg.out) / "model.pth", "fashion-mnist", cfg.data_root, test_limit=cfg.test_limit, device="cpu"
    )
    feats = [
        model.forward_head(model.forward_features(x), pre_logits=True).float()
        for x, _ in DataLoader(spec.test, batch_size=256)
    ]
    features = torch.cat(feats)
    c = features.shape[1]
    chunk = 2 * c if len(features) >= 2 * c else len(features)
    n_chunks = len(features) // chunk
    batch = features[: n_chunks * chunk].reshape(n_chunks, chunk, c).transpose(1, 2)  # (chunks, C, 2C): / C
    metrics = rank_metrics(batch)
    out = {name: float(metrics[col].double().mean()) for name, col in RANK_MEASURES.items()}
    out["rank_chunks"] = n_chunks
    atomic_write_text(cache, json.dumps(out, indent=2) + "\n")
    return out


RECIPE_EXCLUDED = ("model", "seed", "out", "progress", "data_root", "workers")
# The per-run columns of runs.csv that are the run's own (the rest name the model it stands for, or are timed
# at report time).
NOT_SUMMARY = ("model", "label", "role", "run", "timed_img_per_s")


def recipe(cfg: TrainConfig) -> dict:
    """Returns the settings that make a run's result, as JSON gives them back: all but its table (in the run's
    name, as its hash), its seed (also in the name), where its files and data lie, and the loader workers."""
    return json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in RECIPE_EXCLUDED}))


def write_record(cfg: TrainConfig, in_chans: int, ledger: Path) -> dict:
    """Returns the record of a finished run after writing it to LEDGER/<run>.json: its row (summarize_run and
    feature_ranks), its per-epoch metrics and its recipe. Records are committed with the results and run folders
    are not, so a later sitting on a fresh checkout still has every finished run."""
    summary = {k: v for k, v in summarize_run(cfg, in_chans).items() if k not in NOT_SUMMARY}
    epochs = pd.read_csv(Path(cfg.out) / "metrics.csv").to_dict("records")
    return save_record(ledger, cfg, {**summary, **feature_ranks(cfg)}, epochs, "run folder")


def save_record(ledger: Path, cfg: TrainConfig, summary: dict, epochs: list[dict] | None, source: str) -> dict:
    """Returns the record of `cfg`'s run after writing it atomically to LEDGER/<run>.json."""
    name = Path(cfg.out).name
    record = {"run": name, "recipe": recipe(cfg), "summary": summary, "epochs": epochs, "source": source}
    atomic_write_text(ledger / f"{name}.json", json.dumps(record, indent=1) + "\n")
    return record


def read_record(path: Path, cfg: TrainConfig) -> dict | None:
    """Returns the record of `cfg`'s run at `path` (None when there is none); stops on a file that is not a record
    of this run, or a record trained with another recipe."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not {"run", "recipe", "summary", "epochs", "source"} <= set(record):
            raise ValueError("not a run record")
        if record["run"] != path.stem:
            raise ValueError(f"it records run {record['run']!r}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"{path} is not a record of this experiment's runs ({exc}); delete it to retrain the run"
        ) from None
    changed = [(k, record["recipe"].get(k), v) for k, v in recipe(cfg).items() if record["recipe"].get(k) != v]
    if changed:
        shown = ", ".join(f"{k} {old!r} there, {new!r} now" for k, old, new in changed)
        raise BadInput(
            f"{path} was trained with other settings ({shown}); pass another --results, or delete it to retrain"
        )
    return record


def adopt_reported_runs(results: Path, queue: list[TrainConfig], ledger: Path) -> list[str]:
    """Returns the runs it wrote records for: those an earlier report lists (RESULTS/runs.csv and command.txt of a
    results folder with no runs/, i.e. written before run records existed) whose run folders are gone, when
    command.txt's settings are this recipe. Each record holds the row as reported and no per-epoch metrics, and
    says where it came from. Once LEDGER exists, a run without a record is not finished (deleting a record is how
    a run is retrained), so nothing is adopted."""
    table, command = results / "runs.csv", results / "command.txt"
    if ledger.exists() or not table.is_file() or not command.is_file():  # once records exist, they alone count
        return []
    lines = command.read_text().splitlines()
    settings = next((json.loads(x.removeprefix("settings: ")) for x in lines if x.startswith("settings: ")), {})
    reported = pd.read_csv(table).drop_duplicates("run").set_index("run")
    adopted = []
    for cfg in queue:
        name = Path(cfg.out).name
        if name not in reported.index or (Path(cfg.out) / "model.pth").is_file():
            continue
        if any(settings.get(k) != v for k, v in recipe(cfg).items()):
            continue
        row = reported.loc[name]
        summary = {k: row[k].item() for k in reported.columns if k not in NOT_SUMMARY}
        source = f"RESULTS/runs.csv of the report `{lines[0]}`, written before run records existed; its run folder was not kept"
        save_record(ledger, cfg, summary, None, source)
        adopted.append(name)
    return adopted


MARGIN = 0.5  # top-1 points: a difference within ±0.5 is "tied" only when the equivalence test shows it


def distinct_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Returns each run once (a run standing for two models counts once), with its network's key `arch`
    (<model>_<table hash>, the run folder's name without the seed)."""
    distinct = rows.drop_duplicates("run")
    return distinct.assign(arch=distinct["run"].str.rsplit("_s", n=1).str[0])


def architectures(rows: pd.DataFrame) -> pd.DataFrame:
    """Returns one row per distinct network (a table run under two model names counts once): seeds averaged
    first, with the number of seeds."""
    return (
        distinct_runs(rows)
        .groupby("arch", sort=False)
        .agg(
            label=("label", "first"),
            seeds=("seed", "count"),
            test_top1=("test_top1", "mean"),
            **{m: (m, "mean") for m in RANK_MEASURES},
        )
        .reset_index()
    )


def spearman_table(rows: pd.DataFrame, seed: int = 0, n_resamples: int = 1999) -> pd.DataFrame:
    """Returns Spearman's ρ between each rank measure and test top-1 over architectures (seeds averaged first).

    p: the exact two-sided permutation test over architectures (scipy.stats.permutation_test pairing the
    accuracies with every order of the measure; 5 architectures have 120 orders). CI: 95% percentile bootstrap of the seeds within each architecture,
    i.e. how much the seed noise moves ρ for these architectures; it says nothing about other architectures,
    which n (the number of architectures) bounds. Resamples where ρ is undefined (a constant column) are dropped.
    """
    rng = np.random.default_rng(seed)
    distinct = distinct_runs(rows)
    per_arch = architectures(rows)
    groups = [distinct[distinct["arch"] == a] for a in per_arch["arch"]]
    out = []
    for measure in RANK_MEASURES:
        x, y = per_arch[measure].to_numpy(float), per_arch["test_top1"].to_numpy(float)
        rho = p = low = high = np.nan
        if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
            rho = float(stats.spearmanr(x, y).statistic)
            p = float(
                stats.permutation_test(
                    (x,),
                    lambda a, y=y: stats.spearmanr(a, y).statistic,
                    permutation_type="pairings",
                    n_resamples=np.inf,
                ).pvalue
            )
            gx = [g[measure].to_numpy(float) for g in groups]
            gy = [g["test_top1"].to_numpy(float) for g in groups]
            boot = []
            for _ in range(n_resamples):
                picks = [rng.integers(0, len(v), len(v)) for v in gx]
                bx = np.array([v[i].mean() for v, i in zip(gx, picks)])
                by = np.array([v[i].mean() for v, i in zip(gy, picks)])
                boot.append(stats.spearmanr(bx, by).statistic if np.ptp(bx) > 0 and np.ptp(by) > 0 else np.nan)
            low, high = np.nanpercentile(boot, [2.5, 97.5])
        out.append(
            {
                "measure": measure,
                "architectures": len(x),
                "runs": int(per_arch["seeds"].sum()),
                "spearman_rho": rho,
                "ci_low": low,
                "ci_high": high,
                "p_permutation": p,
            }
        )
    return pd.DataFrame(out)


def contrasts(rows: pd.DataFrame, models: list[Model]) -> pd.DataFrame:
    """Returns each contrast of test top-1 with its 95% t interval over seeds and its equivalence verdict
    (±MARGIN points): variant − ReXNet, ReXNet − MobileNetV2, and the 2×2 factorial's main effects (ReLU6 − SiLU
    after the expansions, expansion 3 − 6) and interaction, each from the four cell means with the variance
    pooled over the cells (rankstudy.stats.contrast). A contrast of a network with itself is left out."""
    by_key = {m.key: m for m in models}
    runs_of = {m.key: rows.loc[rows["model"] == m.key, "test_top1"].to_numpy(float) for m in models}

    def same(a: str, b: str) -> bool:
        return (by_key[a].same_as or a) == (by_key[b].same_as or b)

    wanted = []
    if not same("variant", "rexnet"):
        wanted.append(("variant − ReXNet", ["variant", "rexnet"], [1, -1]))
    wanted.append(("ReXNet − MobileNetV2", ["rexnet", "mobilenetv2"], [1, -1]))
    cells = list(FACTORIAL)  # relu6_e3, relu6_e6, silu_e3, silu_e6
    wanted += [
        ("ReLU6 − SiLU after expansions (main effect)", cells, [0.5, 0.5, -0.5, -0.5]),
        ("expansion 3 − 6 (main effect)", cells, [0.5, -0.5, 0.5, -0.5]),
        ("interaction (ReLU6−SiLU at exp 3) − (at exp 6)", cells, [1, -1, -1, 1]),
        ("ReLU6 − SiLU at expansion 6", ["relu6_e6", "silu_e6"], [1, -1]),
        ("ReLU6 − SiLU at expansion 3", ["relu6_e3", "silu_e3"], [1, -1]),
        ("expansion 3 − 6 with SiLU", ["silu_e3", "silu_e6"], [1, -1]),
        ("expansion 3 − 6 with ReLU6", ["relu6_e3", "relu6_e6"], [1, -1]),
    ]
    out = []
    for name, keys, weights in wanted:
        groups = [runs_of[k] for k in keys]
        if any(len(g) == 0 for g in groups):
            continue  # partial results: a model with no finished run yet
        c = rs_stats.contrast(groups, weights, margin=MARGIN)
        out.append(
            {
                "contrast": name,
                "models": "; ".join(f"{w:+g}·{k}" for k, w in zip(keys, weights)),
                "seeds_per_model": ",".join(str(k) for k in c.n),
                "estimate": c.estimate.mean,
                "ci_low": c.estimate.low,
                "ci_high": c.estimate.high,
                "df": c.df,
                "p": c.p,
                "margin": MARGIN,
                "p_tost": c.p_tost,
                "verdict": c.verdict,
            }
        )
    return pd.DataFrame(out)


def _f(value: float, fmt: str) -> str:
    return "–" if pd.isna(value) else format(value, fmt)


VERDICT_WORDS = {
    "different": "shown different (95% CI excludes 0)",
    "equivalent": f"tied within ±{MARGIN} points (TOST, 90% CI inside the margin)",
    "inconclusive": "not shown different, not shown tied",
}


def write_tables(
    rows: pd.DataFrame, models: list[Model], results: Path, status: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns (per-model table, Spearman table over architectures, contrasts), written as table.csv, table.md,
    spearman.csv and contrasts.csv; `status` heads table.md (complete, or which runs are still missing)."""
    order = {m.key: i for i, m in enumerate(models)}
    table = (
        rows.groupby("model", sort=False)
        .agg(
            label=("label", "first"),
            role=("role", "first"),
            seeds=("seed", "count"),
            top1_mean=("test_top1", "mean"),
            top1_std=("test_top1", "std"),
            top5_mean=("test_top5", "mean"),
            params=("params", "first"),
            macs=("macs", "first"),
            img_per_s=("img_per_s", "mean"),
            timed_img_per_s=("timed_img_per_s", "first"),
            **{f"{m}_mean": (m, "mean") for m in RANK_MEASURES},
        )
        .reset_index()
    )
    table = table.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)
    budget = [m for m in models if m.key == "rexnet"][0].arch.provenance["budget"]["macs"]
    table["macs_vs_rexnet"] = table["macs"] / budget - 1
    atomic_write_text(results / "table.csv", table.to_csv(index=False))
    spearman = spearman_table(rows)
    atomic_write_text(results / "spearman.csv", spearman.to_csv(index=False))
    effects = contrasts(rows, models)
    atomic_write_text(results / "contrasts.csv", effects.to_csv(index=False))
    same = {m.key: m.same_as for m in models if m.same_as}
    lines = [
        status,
        "",
        "| model | seeds | test top-1 (mean ± std) | top-5 | params | MMACs (vs ReXNet) | train img/s (timed) | "
        "train img/s (runs) | feature rank rtol 1e-2 | effective rank | float32 rank |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        label = r["label"] + (f" (= {same[r['model']]}, same runs)" if r["model"] in same else "")
        lines.append(
            f"| {label} | {r['seeds']} | {r['top1_mean']:.2f} ± {_f(r['top1_std'], '.2f')} | {r['top5_mean']:.2f} | "
            f"{r['params']:,} | {r['macs'] / 1e6:.2f} ({r['macs_vs_rexnet']:+.1%}) | "
            f"{_f(r['timed_img_per_s'], '.0f')} | "
            f"{r['img_per_s']:.0f} | " + " | ".join(f"{r[f'{m}_mean']:.3f}" for m in RANK_MEASURES) + " |"
        )
    lines += [
        "",
        "train img/s (timed): the same training step timed for each model one after another in one process "
        "(`--speed-steps`, CPU, the runs' batch size); (runs): the mean over runs of "
        "each run's median epoch speed, which depends on what else ran on the machine then.",
        "",
        "Contrasts of test top-1 (points), 95% t interval over seeds (variance pooled over the models of the "
        f"contrast), verdict with an equivalence margin of ±{MARGIN} points:",
        "",
        "| contrast | seeds per model | estimate | 95% CI | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in effects.to_dict("records"):
        lines.append(
            f"| {r['contrast']} | {r['seeds_per_model']} | {r['estimate']:+.2f} | "
            f"[{_f(r['ci_low'], '+.2f')}, {_f(r['ci_high'], '+.2f')}] | {_f(r['p'], '.3f')} | "
            f"{VERDICT_WORDS[r['verdict']]} |"
        )
    lines += [
        "",
        "Spearman's ρ between the penultimate feature rank and test top-1 over architectures (seeds averaged "
        "first; p: exact permutation test over architectures; CI: 95% bootstrap of seeds within architectures, "
        "the seed noise only):",
        "",
        "| rank measure | architectures | runs | ρ | seed-bootstrap 95% CI | p (permutation) |",
        "|---|---|---|---|---|---|",
    ]
    for r in spearman.to_dict("records"):
        lines.append(
            f"| {r['measure']} | {r['architectures']} | {r['runs']} | {_f(r['spearman_rho'], '+.2f')} | "
            f"[{_f(r['ci_low'], '+.2f')}, {_f(r['ci_high'], '+.2f')}] | {_f(r['p_permutation'], '.3f')} |"
        )
    atomic_write_text(results / "table.md", "\n".join(lines) + "\n")
    return table, spearman, effects


def plot_figure(rows: pd.DataFrame, table: pd.DataFrame, budget: int, results: Path) -> Path:
    """Returns figure.png: test top-1 per model (mean ± std, runs as dots) and feature rank vs top-1 per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = {m: f"C{i}" for i, m in enumerate(table["model"])}
    ax = axes[0]
    for i, r in enumerate(table.to_dict("records")):
        std = 0.0 if pd.isna(r["top1_std"]) else r["top1_std"]
        ax.errorbar([i], [r["top1_mean"]], yerr=[std], fmt="o", color=colors[r["model"]], capsize=4)
        runs = rows[rows["model"] == r["model"]]
        ax.scatter([i] * len(runs), runs["test_top1"], color=colors[r["model"]], alpha=0.5, s=14)
    ax.set_xticks(range(len(table)), table["label"], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="test top-1 (%)", title=f"Fashion-MNIST at {budget / 1e6:.1f}M MACs (±2%)")
    distinct = rows.drop_duplicates("run")
    for ax, measure in zip(axes[1:], ("rank_rtol_1e-2", "effective_rank")):
        for r in distinct.to_dict("records"):
            ax.scatter(r[measure], r["test_top1"], color=colors[r["model"]])
            ax.annotate(
                f"{r['label']} s{r['seed']}",
                (r[measure], r["test_top1"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.set(
            xlabel=f"penultimate feature {measure} (/ C)",
            ylabel="test top-1 (%)",
            title=f"{measure} vs accuracy, per run",
        )
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(results / "figure.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return results / "figure.png"


def training_speeds(models: list[Model], base: TrainConfig, steps: int, in_chans: int) -> dict[str, float]:
    """Returns each distinct model's training speed (img/s, median over `steps` SGD steps after two warm-up
    steps on random 32×32 batches of `base.batch_size`), all measured in this process one after another, so
    that their ratios are not skewed by a load that changed between training runs."""
    from rexnet.training.train import param_groups

    speeds = {}
    for m in sorted(models, key=lambda m: m.key != "rexnet"):  # ReXNet first: the others are given relative to it
        if m.same_as:
            continue
        arch, stem_stride = small_input_variant(m.arch, base.small_input)
        torch.manual_seed(0)
        model = ReXNet(arch, num_classes=10, in_chans=in_chans, stem_stride=stem_stride).train()
        opt = torch.optim.SGD(param_groups(model, base.weight_decay), lr=0.01, momentum=0.9, nesterov=True)
        x, y = torch.randn(base.batch_size, in_chans, IMG_SIZE, IMG_SIZE), torch.randint(0, 10, (base.batch_size,))
        times = []
        for _ in range(steps + 2):  # two warm-up steps
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        speeds[m.key] = base.batch_size / float(np.median(times[2:]))
    return speeds


def time_training_steps(models: list[Model], base: TrainConfig, steps: int, in_chans: int) -> None:
    """Prints each distinct model's training speed over `steps` SGD steps and the 60k-image epoch time it
    extrapolates to (training only; evaluation adds ~10%)."""
    speeds = training_speeds(models, base, steps, in_chans)
    labels = {m.key: m.label for m in models}
    for key, speed in speeds.items():
        # Absolute speeds depend on what else runs on the machine; the ratio to ReXNet, measured in the same
        # run, transfers.
        print(
            f"{labels[key]:<40} {speed:7.0f} img/s ({speed / speeds.get('rexnet', speed):.2f}× "
            f"ReXNet's) -> {60000 / speed / 60:5.1f} min per 60k epoch, training only "
            f"({torch.get_num_threads()} threads)",
            flush=True,
        )


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())  # "" = none
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers, e.g. 0,1") from None


def _train_in_worker(cfg: TrainConfig, threads: int) -> tuple[TrainConfig, str]:
    """Trains (or resumes, or skips) one run in a joblib worker with `threads` torch threads."""
    torch.set_num_threads(threads)
    return cfg, run_one(cfg)


def train_runs(cfgs: list[TrainConfig], jobs: int) -> Iterator[TrainConfig]:
    """Trains the runs, `jobs` at a time in joblib's loky processes (one thread each when jobs > 1: two 1-thread
    runs side by side train ~1.3× more images per second than one 2-thread run here), in the order given; yields
    each as it finishes."""
    if jobs == 1:
        for cfg in cfgs:
            print(f"== {Path(cfg.out).name}: {run_one(cfg)}", flush=True)
            yield cfg
        return
    from joblib import Parallel, delayed

    threads = max(1, torch.get_num_threads() // jobs)
    for cfg, how in Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(_train_in_worker)(cfg, threads) for cfg in cfgs
    ):
        print(f"== {Path(cfg.out).name}: {how}", flush=True)
        yield cfg


@click.command()
@click.option("--findings", default="results/findings.json", show_default=True, type=click.Path(dir_okay=False))
@click.option("--tau", type=float, default=0.9, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--small-input", type=click.Choice(["off", "s16", "s8"]), default="s16", show_default=True)
@click.option("--seeds", default="0,1,2,3", show_default=True, help="Seeds of the published networks and the variant.")
@click.option("--cell-seeds", default="0,1,2", show_default=True, help="Seeds of each factorial cell.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--weight-decay", type=float, default=5e-5, show_default=True)
@click.option("--data-root", default="data", show_default=True)
@click.option("--runs", default="runs/findings_variants", show_default=True, help="Run folders (checkpoints).")
@click.option("--results", default="results/findings_variants", show_default=True)
@click.option("--train-limit", type=click.IntRange(min=1), help="Smoke runs: a random subset of the training set.")
@click.option("--test-limit", type=click.IntRange(min=1))
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Data-loader workers.")
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs trained side by side (joblib)."
)
@click.option("--train/--no-train", default=True, show_default=True, help="--no-train: report the finished runs only.")
@click.option("--time-steps", type=click.IntRange(min=1), help="Only time this many training steps per model.")
@click.option(
    "--speed-steps",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Training steps timed per model, one model after another in this process, for the table's "
    "img/s column (the runs' own speeds depend on what shared the machine); 0 skips it.",
)
def main(
    findings,
    tau,
    epochs,
    small_input,
    seeds,
    cell_seeds,
    batch_size,
    lr,
    weight_decay,
    data_root,
    runs,
    results,
    train_limit,
    test_limit,
    workers,
    jobs,
    train,
    time_steps,
    speed_steps,
) -> None:
    """Train MobileNetV2, ReXNet, the findings' variant and the 2×2 factorial at equal MACs; write the tables."""
    from rexnet.errors import RexnetError

    try:
        in_chans = 1 if time_steps else load_data("fashion-mnist", data_root).in_chans
        target, models = plan_models(findings, tau, small_input, in_chans, _seeds(seeds), _seeds(cell_seeds))
    except RexnetError as exc:
        raise BadInput(str(exc)) from None
    print(
        f"budget: ReXNet-{REXNET_WIDTH}× = {target / 1e6:.3f}M MACs at {IMG_SIZE}×{IMG_SIZE} (small input "
        f"{small_input}); models: "
        + ", ".join(
            f"{m.label} {m.arch.provenance['budget']['macs'] / 1e6:.3f}M" + (f" (= {m.same_as})" if m.same_as else "")
            for m in models
        ),
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
        progress=jobs == 1,
    )
    if time_steps:
        time_training_steps(models, base, time_steps, in_chans)
        return
    runs, results = Path(runs), Path(results)
    cfgs = run_configs(models, base, runs, results / "archs")
    distinct = {c.out: c for m in models if not m.same_as for c in cfgs[m.key]}
    # Seed by seed, so that an interrupted experiment has every model at its first seeds.
    queue = sorted(distinct.values(), key=lambda c: c.seed)
    # A run's record in RESULTS/runs/ (committed) makes it finished; a finished run folder without one gets one.
    ledger = results / "runs"
    adopted = adopt_reported_runs(results, queue, ledger)
    if adopted:
        print(
            f"recorded {len(adopted)} runs an earlier report lists (their run folders are gone): {', '.join(adopted)}"
        )
    records = {c.out: read_record(ledger / f"{Path(c.out).name}.json", c) for c in queue}
    pending = [c for c in queue if records[c.out] is None]
    done = train_runs(pending, jobs) if train else (c for c in pending if (Path(c.out) / "model.pth").is_file())
    for cfg in done:
        records[cfg.out] = write_record(cfg, in_chans, ledger)
    finished = {out for out, record in records.items() if record is not None}
    if not finished:
        raise BadInput(f"no finished run in {runs} or {ledger}; run without --no-train to train them")
    missing = sorted(Path(c.out).name for c in queue if c.out not in finished)
    status = (
        f"Complete: {len(queue)} of {len(queue)} runs."
        if not missing
        else f"**PARTIAL: {len(finished)} of {len(queue)} runs finished**; missing: {', '.join(missing)}. "
        "Rerun the command to train them (finished runs are kept)."
    )
    no_curve = sorted(Path(out).name for out in finished if records[out]["epochs"] is None)
    if no_curve:
        status += (
            f" curves.png leaves out {len(no_curve)} runs recorded from an earlier report, which kept no per-epoch "
            f"metrics: {', '.join(no_curve)}."
        )
    settings = {
        "findings": findings,
        "tau": tau,
        "macs_budget": target,
        "status": status,
        "models": {
            m.key: {
                "label": m.label,
                "seeds": list(m.seeds),
                "role": m.role,
                "same_as": m.same_as,
                "width": m.arch.provenance["budget"]["width_mult"],
                "macs": m.arch.provenance["budget"]["macs"],
            }
            for m in models
        },
        **{k: v for k, v in asdict(base).items() if k not in ("model", "seed", "out", "progress")},
    }
    packages = {**versions(), "scipy": metadata.version("scipy"), "threads": torch.get_num_threads(), "jobs": jobs}
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        results / "command.txt",
        command_line(click.get_current_context(), __file__)
        + "\n"
        + f"settings: {json.dumps(settings)}\n"
        + f"versions: {json.dumps(packages)}\n",
    )
    speeds = training_speeds(models, base, speed_steps, in_chans) if speed_steps else {}
    rows = []
    for m in models:
        for cfg in cfgs[m.key]:
            if cfg.out not in finished:
                continue
            rows.append(
                {
                    "model": m.key,
                    **records[cfg.out]["summary"],
                    "label": m.label,
                    "role": m.role,
                    "run": Path(cfg.out).name,
                    "timed_img_per_s": speeds.get(m.same_as or m.key, np.nan),
                }
            )
    rows = pd.DataFrame(rows)
    atomic_write_text(results / "runs.csv", rows.to_csv(index=False))
    shown = [m for m in models if m.key in set(rows["model"])]
    table, _, _ = write_tables(rows, models, results, status)
    plot_figure(rows, table, target, results)
    plot_curves(
        [
            (m.label, c.seed, pd.DataFrame(records[c.out]["epochs"]))
            for m in shown
            if not m.same_as
            for c in cfgs[m.key]
            if c.out in finished and records[c.out]["epochs"] is not None
        ],
        results,
    )
    print((results / "table.md").read_text())


if __name__ == "__main__":
    main()
