"""`rankstudy` command line: parse, call one library function, print."""

import functools
import sys
from pathlib import Path

import click

from rexnet.errors import RexnetError

# What `rankstudy` itself loads (the random-network study, the probe, the store) is imported here; the wings
# whose imports cost seconds (scipy, matplotlib, the trainer) are imported by their own commands.
from .errors import StudyError
from .probing import format_flagged, run_probe
from .random_nets.config import INPUT_DISTS, KINDS, StudyConfig
from .random_nets.nonlinearities import list_nonlinearities
from .random_nets.run import merge as merge_dirs
from .random_nets.run import run_study
from .store import load_results

DEFAULT_OUT = "results/study"


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def friendly_errors(fn):
    """Turns StudyError and RexnetError (bad input; and a few OS errors) into one line on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StudyError, RexnetError) as e:
            _fail(str(e))
        except PermissionError as e:
            _fail(f"permission denied: {e.filename}; choose a writable location")
        except KeyboardInterrupt:
            _fail("interrupted; finished chunks are kept, rerun the same command to resume")

    return wrapper


def _names(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise click.BadParameter("give at least one name, comma-separated")
    return names


def _numbers(value: str | None, kind=float) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(kind(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated {kind.__name__}s, got {value!r}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rankstudy-rexnet")
def main():
    """Rank study of random networks (ReXNet, arXiv 2007.00992): sample, merge, plot, principles."""


@main.command()
@click.option("--n", "n", type=int, default=StudyConfig.n, show_default=True, help="Number of random networks.")
@click.option("--seed", type=int, default=0, show_default=True, help="Study seed; same seed → identical table.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:i].")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=DEFAULT_OUT,
    show_default=True,
    help="Output directory (resumes if it holds this study's chunks).",
)
@click.option("--kinds", help=f"Comma-separated subset of {','.join(KINDS)}.")
@click.option("--nonlinearities", help="Comma-separated names (see `rankstudy nonlinearities`).")
@click.option("--d-in", "d_in", help="Comma-separated input widths, e.g. 8,16,32.")
@click.option("--ratio-min", type=float, help="Smallest expansion ratio d_out/d_in.")
@click.option("--ratio-max", type=float, help="Largest expansion ratio d_out/d_in.")
@click.option("--n-over-d", "n_over_d", help="Comma-separated N/d_out values (samples per output channel).")
@click.option("--inits", help="Comma-separated weight inits: kaiming,unit.")
@click.option("--norms", help="Comma-separated: none,bn.")
@click.option("--input-dists", "input_dists", help=f"Comma-separated input distributions: {','.join(INPUT_DISTS)}.")
@click.option("--workers", type=int, default=None, help="CPU worker processes (joblib); default: one per core.")
@click.option("--shard", help="Run only shard i of k, as i/k; combine with `rankstudy merge`.")
@click.option("--scheduler", help="Run the chunks on a dask.distributed cluster (tcp://HOST:PORT of `dask scheduler`).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Max networks per batched call.")
@click.option("--chunk-rows", type=int, default=250, show_default=True, help="Rows per stored (resumable) chunk.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def sample(
    n,
    seed,
    device,
    out,
    kinds,
    nonlinearities,
    d_in,
    ratio_min,
    ratio_max,
    n_over_d,
    inits,
    norms,
    input_dists,
    workers,
    shard,
    scheduler,
    batch_size,
    chunk_rows,
    quiet,
):
    """Sample random networks, measure the rank of their features, write the results table."""
    overrides = {
        "kinds": _names(kinds),
        "nonlinearities": _names(nonlinearities),
        "d_in": _numbers(d_in, int),
        "ratio_min": ratio_min,
        "ratio_max": ratio_max,
        "n_over_d": _numbers(n_over_d),
        "inits": _names(inits),
        "norms": _names(norms),
        "input_dists": _names(input_dists),
    }
    config = StudyConfig(n=n, seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    table = run_study(
        config,
        device=device,
        out=out,
        workers=workers,
        shard=shard,
        batch_size=batch_size,
        chunk_rows=chunk_rows,
        progress=not quiet,
        scheduler=scheduler,
    )
    if len(table) == 0:
        click.echo(
            f"shard {shard} has no chunks (the study of {n} networks has fewer chunks of --chunk-rows {chunk_rows} "
            f"than shards): its manifest is in {out}; `rankstudy merge` takes it with the other shards"
        )
        return
    final = Path(out) / "results.parquet"
    where = (
        final
        if final.exists() and shard is None
        else f"{out}/chunks (shard {shard}; `rankstudy merge` when all are done)"
    )
    click.echo(f"{len(table)} networks → {where}")


@main.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for the merged table.")
@friendly_errors
def merge(dirs, out):
    """Merge the chunks of shards (run with --shard) into one results table."""
    table = merge_dirs(list(dirs), out)
    click.echo(f"{len(table)} networks → {Path(out) / 'results.parquet'}")


@main.command("nonlinearities")
def list_nonlinearities_cmd():
    """List the registered nonlinearities."""
    click.echo("\n".join(list_nonlinearities()))


@main.command()
@click.option(
    "--in",
    "in_path",
    type=click.Path(),
    default=DEFAULT_OUT,
    show_default=True,
    help="Study directory (or its results.parquet).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/figures",
    show_default=True,
    help="Directory for the figures (PNG and PDF).",
)
@click.option(
    "--metric",
    default="normalized_rank",
    show_default=True,
    help="normalized_rank | rank_rtol_1e-3 | rank_rtol_1e-2 | effective_rank | stable_rank (all / d_out), "
    "or bound_relative_rank | bound_relative_rank_rtol_1e-2 | … (/ min(d_out, structural bound)).",
)
@click.option(
    "--facet",
    type=click.Choice(["n_over_d_bin", "init", "norm", "d_in", "input_dist"]),
    help="Draw the paper's figure with one row of panels per level of this factor.",
)
@click.option("--kinds", help="Comma-separated subset of kinds to draw.")
@click.option("--nonlinearities", help="Comma-separated subset of nonlinearities to draw.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def plot(in_path, out, metric, facet, kinds, nonlinearities, quiet):
    """Draw the rank study's figures from a results table."""
    # The figures are matplotlib Figure objects saved through its PNG/PDF canvases: no backend to choose.
    from .findings.plots import plot_all  # noqa: PLC0415 - matplotlib and scipy take seconds: only for `plot`

    table, meta = load_results(in_path)
    paths = plot_all(
        table,
        meta,
        out,
        metric=metric,
        facet=facet,
        kinds=_names(kinds),
        nonlinearities=_names(nonlinearities),
        progress=not quiet,
    )
    click.echo(f"{len(paths)} files → {out}")
    for p in paths:
        click.echo(f"  {p}")


@main.command()
@click.option(
    "--in",
    "in_path",
    type=click.Path(),
    default=DEFAULT_OUT,
    show_default=True,
    help="Study directory (or its results.parquet).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="results/findings.json",
    show_default=True,
    help="findings.json to write; FINDINGS.md is written beside it unless --md is given.",
)
@click.option("--md", type=click.Path(dir_okay=False), help="Where to write the Markdown rendering.")
@click.option("--taus", default="0.9,0.95", show_default=True, help="Comma-separated rank thresholds τ.")
@click.option(
    "--design-measure",
    default="auto",
    show_default=True,
    help="Measure the design rules and verdicts are read from; auto: from the proxy benchmark's report.",
)
@click.option(
    "--rules-in",
    default="auto",
    show_default=True,
    help="Rule study folder (experiments/rule_study.py) the design rules read; auto: results/rules if it "
    "exists; none: the rules read --in.",
)
@click.option(
    "--proxy-report",
    default="auto",
    show_default=True,
    help="Proxy benchmark report.json the design measure is chosen from; auto: results/proxies/report.json if "
    "it exists; none: schema 2's design measure.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def principles(in_path, out, md, taus, design_measure, rules_in, proxy_report, quiet):
    """Turn a results table into findings.json and FINDINGS.md: rules with their uncertainty, verdicts."""
    from .findings.design import DEFAULT_REPORT, load_proxy_report  # noqa: PLC0415 - scipy takes seconds to import
    from .findings.principles import Settings, write_findings  # noqa: PLC0415 - as above
    from .findings.rules import load_rule_study  # noqa: PLC0415 - as above

    table, meta = load_results(in_path)
    settings = Settings(taus=_numbers(taus), design_measure=design_measure).validate()
    rules_path = ("results/rules" if Path("results/rules").is_dir() else None) if rules_in == "auto" else rules_in
    rule_tables = None if rules_path in (None, "none") else load_rule_study(rules_path)
    report_path = (
        (DEFAULT_REPORT if Path(DEFAULT_REPORT).is_file() else None) if proxy_report == "auto" else proxy_report
    )
    report = None if report_path in (None, "none") else load_proxy_report(report_path)
    command = " ".join(["rankstudy", *sys.argv[1:]])
    findings = write_findings(
        table,
        meta,
        out,
        md,
        settings=settings,
        command=command,
        progress=not quiet,
        rule_tables=rule_tables,
        proxy_report=report,
    )
    rec = findings["recommendations"]
    md_path = md or str(Path(out).parent / "FINDINGS.md")
    click.echo(f"findings → {out}, {md_path}")
    click.echo(f"  design measure: {findings['settings']['design_measure']}")
    for name, rule in rec["rules"].items():
        state = f"decided: {rule['choice']}" if rule["decided"] else f"undecided (ReXNet keeps {rule['baseline']})"
        click.echo(f"  rule {name}: {state}")
    click.echo(
        f"  recommended nonlinearity: {rec['recommended_nonlinearity']}; max expansion: {rec['max_expansion']}; "
        f"gradual beats single: {rec['gradual_expansion_beats_single']}"
    )
    for key, item in findings["paper_findings"].items():
        click.echo(f"  ({key}) {item['verdict']}: {item['claim']}")


# --- the channel-configuration study (rankstudy.channels) ------------------------------------------------------


def _macs(ctx, param, value: str) -> int:
    """Returns the MACs budget an option gives (10M, 2.5M, 500k or a plain integer: `rexnet.variants.parse_macs`)."""
    from rexnet.variants import parse_macs  # noqa: PLC0415 - rexnet.variants loads torchvision (~3 s): `channels` only

    try:
        return parse_macs(value)
    except RexnetError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@main.command()
@click.option("--n", "n", type=int, default=120, show_default=True, help="Channel schedules to sample.")
@click.option(
    "--macs", default="10M", show_default=True, callback=_macs, help="MACs budget of every network (e.g. 10M, 500k)."
)
@click.option("--blocks", type=int, default=9, show_default=True, help="Inverted bottlenecks per network.")
@click.option("--data", default="fashion-mnist", show_default=True, help="fashion-mnist | cifar10 | cifar100 | fake.")
@click.option("--data-root", default="data", show_default=True, help="Folder holding the dataset (on every worker).")
@click.option("--img-size", type=int, default=32, show_default=True)
@click.option("--epochs", type=int, default=1, show_default=True, help="Training epochs per run.")
@click.option(
    "--train-limit",
    type=int,
    default=10_000,
    show_default=True,
    help="Fixed random subset of the training set (0 = all); the test set is always full.",
)
@click.option("--seeds", type=int, default=1, show_default=True, help="Training seeds per config.")
@click.option(
    "--noise-configs",
    type=int,
    default=None,
    help="The first this many configs also run with --noise-seeds seeds (seed noise); default: 6, at most --n.",
)
@click.option("--noise-seeds", type=int, default=3, show_default=True)
@click.option("--max-growth", type=float, default=8.0, show_default=True, help="Largest c_last/c_first sampled.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option(
    "--probe-images",
    type=int,
    default=128,
    show_default=True,
    help="Test images the init-time rank proxy is measured on.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Schedule sampling seed.")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes (joblib, loky).")
@click.option("--threads", type=int, default=1, show_default=True, help="Torch threads per run.")
@click.option("--scheduler", help="Run on a dask.distributed cluster (tcp://HOST:PORT of `dask scheduler`).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/channels",
    show_default=True,
    help="Output directory (resumes if it holds this study's runs).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def channels(
    n,
    macs,
    blocks,
    data,
    data_root,
    img_size,
    epochs,
    train_limit,
    seeds,
    noise_configs,
    noise_seeds,
    max_growth,
    batch_size,
    lr,
    probe_images,
    seed,
    workers,
    threads,
    scheduler,
    out,
    quiet,
):
    """Channel-configuration study: sample width schedules at a MACs budget, train each briefly, one row per run."""
    from .channels import ChannelStudyConfig, run_channel_study  # noqa: PLC0415 - each command imports its own wing

    cfg = ChannelStudyConfig(
        n=n,
        macs=macs,
        blocks=blocks,
        data=data,
        img_size=img_size,
        epochs=epochs,
        train_limit=train_limit or None,
        seeds=seeds,
        noise_configs=min(6, n) if noise_configs is None else noise_configs,
        noise_seeds=noise_seeds,
        max_growth=max_growth,
        batch_size=batch_size,
        lr=lr,
        probe_images=probe_images,
        seed=seed,
    )
    table = run_channel_study(
        cfg,
        out,
        data_root=data_root,
        workers=workers,
        scheduler=scheduler,
        threads=threads,
        progress=not quiet,
        command=" ".join(["rankstudy", *sys.argv[1:]]),
    )
    click.echo(f"{len(table)} runs of {table['config_id'].nunique()} configs → {Path(out) / 'results.parquet'}")


@main.command("channels-report")
@click.option(
    "--in",
    "in_path",
    type=click.Path(file_okay=False),
    default="results/channels",
    show_default=True,
    help="Directory written by `rankstudy channels`.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Where to write report.json, REPORT.md and figures (default: the --in directory).",
)
@friendly_errors
def channels_report(in_path, out):
    """Analyse a channel study: accuracy by family and slope, seed noise, top/middle/bottom 10%, proxy, verdict."""
    # The figures are matplotlib Figure objects saved through its PNG canvas: no backend to choose.
    from .channels import load_channel_results, write_report  # noqa: PLC0415 - scipy, matplotlib: seconds to import

    table, meta = load_channel_results(in_path)
    report = write_report(table, meta, out or in_path)
    click.echo(f"report → {Path(out or in_path) / 'REPORT.md'}")
    click.echo(f"  {report['verdict']}")


@main.command()
@click.option(
    "--model",
    "model_spec",
    help="A rexnet name or block-table .json, timm:NAME or torchvision:NAME "
    "(random weights); may be left out for a checkpoint written by `rexnet train`.",
)
@click.option("--checkpoint", type=click.Path(dir_okay=False), help="Weights to load (read with weights_only=True).")
@click.option("--data", default="random", show_default=True, help="fashion-mnist | imagefolder:PATH | random.")
@click.option("--data-root", default="data", show_default=True, help="Where Fashion-MNIST is (or is prepared).")
@click.option(
    "--n-images",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Images probed (a seeded random subset of the test set).",
)
@click.option(
    "--img-size",
    type=click.IntRange(min=1),
    help="Default: the checkpoint's, else 32 for fashion-mnist and 224 otherwise.",
)
@click.option("--num-classes", type=click.IntRange(min=1), help="Classifier size of a model built by name.")
@click.option("--layers", help="Comma-separated module names (default: every leaf module).")
@click.option(
    "--max-columns",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Columns (image positions) kept per layer, a seeded random subset.",
)
@click.option(
    "--flag-measure",
    default="rank_rtol_1e-2",
    show_default=True,
    help="Measure whose drops are flagged: rank, rank_rtol_1e-3, rank_rtol_1e-2, effective_rank, "
    "stable_rank, nuclear_norm.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Images per forward batch (at most; the images are split into near-equal batches).",
)
@click.option(
    "--bn",
    metavar="[batch|running]",
    help="Batch-norm statistics: batch (each forward batch's, as the random-network study) or running (the "
    "layers' own). Default: batch without --checkpoint (untrained), running with one.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Chooses the images and the columns.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda[:i].")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for probe.csv and probe.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def probe(
    model_spec,
    checkpoint,
    data,
    data_root,
    n_images,
    img_size,
    num_classes,
    layers,
    max_columns,
    flag_measure,
    batch_size,
    bn,
    seed,
    device,
    out,
    quiet,
):
    """Measure the feature rank of every layer of a model on real images; flag where it falls most."""

    table, files = run_probe(
        model_spec,
        checkpoint,
        data,
        n_images,
        out,
        data_root=data_root,
        img_size=img_size,
        num_classes=num_classes,
        layers=_names(layers),
        max_columns=max_columns,
        batch_size=batch_size,
        seed=seed,
        flag_measure=flag_measure,
        device=device,
        bn=bn,
        progress=not quiet,
    )
    sizes = sorted(set(table.attrs["batch_sizes"]), reverse=True)
    click.echo(f"{len(table)} layers → {', '.join(map(str, files))}")
    click.echo(
        f"batch norm: {table.attrs['bn']} statistics"
        + (f" (each forward batch of {' or '.join(map(str, sizes))} images)" if table.attrs["bn"] == "batch" else "")
    )
    click.echo(f"largest drops of {flag_measure}/channels:\n{format_flagged(table)}")


@main.command()
@click.option(
    "--n",
    "n",
    type=int,
    default=3000,
    show_default=True,
    help="Seeded random sample of architectures (0 = all 15,625).",
)
@click.option("--ids", help="Comma-separated architecture ids (the benchmark's indices) instead of a sample.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Chooses the sample, the initialisation (the same for every architecture) and the batch.",
)
@click.option("--proxies", "proxy_names", help="Comma-separated proxies (default: all; see --list).")
@click.option("--inputs", default="fmnist", show_default=True, help="fmnist | gaussian | cifar10.")
@click.option("--batch", type=int, default=64, show_default=True, help="Images in the one seeded batch.")
@click.option("--num-classes", type=int, default=10, show_default=True, help="Classifier size of every network.")
@click.option(
    "--bench",
    type=click.Path(),
    help="Official NATS-Bench/NAS-Bench-201 file (needs nats_bench); default: the shipped table.",
)
@click.option("--data-root", default="data", show_default=True, help="Where CIFAR-10 is (for --inputs cifar10).")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda[:i].")
@click.option("--workers", type=int, default=1, show_default=True, help="Local worker processes (joblib, loky).")
@click.option("--scheduler", help="Run on a dask.distributed cluster (tcp://HOST:PORT of `dask scheduler`).")
@click.option("--max-units", type=int, help="Score at most this many architectures in this sitting (resumable).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="results/proxies",
    show_default=True,
    help="Output directory (resumes if it holds this study's scores).",
)
@click.option("--list", "list_only", is_flag=True, help="Print the registered proxies and their BN mode, then exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def proxies(
    n,
    ids,
    seed,
    proxy_names,
    inputs,
    batch,
    num_classes,
    bench,
    data_root,
    device,
    workers,
    scheduler,
    max_units,
    out,
    list_only,
    quiet,
):
    """Score NAS-Bench-201 architectures at initialisation with every zero-cost proxy (rank measures included)."""
    from .proxies import ProxyStudyConfig, get_proxy, list_proxies, run_proxies  # noqa: PLC0415 - its own wing

    if list_only:
        for name in list_proxies():
            click.echo(f"{name}\t{get_proxy(name).bn_mode}")
        return
    cfg = ProxyStudyConfig(
        n=n,
        seed=seed,
        ids=_numbers(ids, int),
        proxies=_names(proxy_names),
        inputs=inputs,
        batch=batch,
        num_classes=num_classes,
        bench=bench,
        data_root=data_root,
    )
    table = run_proxies(
        cfg,
        out,
        device=device,
        workers=workers,
        scheduler=scheduler,
        max_units=max_units,
        progress=not quiet,
        command=" ".join(["rankstudy", *sys.argv[1:]]),
    )
    click.echo(f"{len(table)} architectures scored → {Path(out) / 'results.parquet'}")


@main.command("proxies-report")
@click.option(
    "--in",
    "in_path",
    type=click.Path(file_okay=False),
    default="results/proxies",
    show_default=True,
    help="Directory written by `rankstudy proxies`.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Where to write report.json, REPORT.md and figures (default: the --in directory).",
)
@friendly_errors
def proxies_report(in_path, out):
    """Rank correlation of every proxy with trained accuracy (bootstrap CIs), per dataset and schedule."""
    from .proxies import load_proxy_results, write_proxies_report  # noqa: PLC0415 - scipy, matplotlib: seconds

    table, meta = load_proxy_results(in_path)
    report = write_proxies_report(table, meta, out or in_path)
    click.echo(f"report → {Path(out or in_path) / 'REPORT.md'}")
    for column, text in report["verdicts"].items():
        click.echo(f"  {column}: {text}")
