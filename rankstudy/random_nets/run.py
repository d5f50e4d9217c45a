"""Runs a study: plans chunks, computes them (batched by shape, optionally in worker processes or shards),
stores each chunk atomically, resumes after interruption, and merges shards into one table.

The output folder is a `rankstudy.store.RunFolder` whose units are the chunks (chunks/chunk-00012.parquet).
"""

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import delayed
from tqdm.auto import tqdm

from rexnet.device import resolve_device
from rexnet.errors import RexnetError

from .. import store
from ..errors import StudyError
from ..parallel import check_scheduler, run_tasks
from ..rank import DEFAULT_RTOLS, metric_columns, rank_metrics
from .bounds import with_bound_columns
from .config import StudyConfig
from .networks import build_features_with_inputs, forward_macs, im2col, largest_intermediate
from .sampling import CONFIG_COLUMNS, SHAPE_COLUMNS, sample_networks

DEFAULT_CHUNK_ROWS = 250
DEFAULT_BATCH_SIZE = 64
# Largest float32 intermediate one batch may hold (elements): bounds memory whatever the shapes. On the
# CPU a batch whose maps fit the caches runs faster (the build is memory-bound there: a batch of large
# networks gains nothing from sharing calls), on CUDA larger batches amortise the kernel launches.
BATCH_ELEMENTS = {"cpu": 2**21, "cuda": 2**26}
CHUNKS = "chunks"
# A rerun with other chunking would store other chunks: say how to resume instead.
CHUNK_ROWS_HINT = {
    "chunk_rows": "it was started with --chunk-rows {old}: rerun with that value to resume, or choose another --out"
}


def chunk_name(index: int) -> str:
    """Returns the file name chunk `index` is stored under in the study folder's chunks/."""
    return f"chunk-{index:05d}.parquet"


def plan_chunks(table: pd.DataFrame, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[np.ndarray]:
    """Returns the row ids of each chunk: rows sorted by shape (so chunks batch well), then cut every chunk_rows."""
    if chunk_rows < 1:
        raise StudyError(f"chunk_rows must be >= 1, got {chunk_rows}")
    order = table.sort_values([*SHAPE_COLUMNS, "id"], kind="stable")["id"].to_numpy()
    return [order[i : i + chunk_rows] for i in range(0, len(order), chunk_rows)]


def chunk_cost(rows: pd.DataFrame) -> float:
    """Returns an estimate of a chunk's compute: its networks' forward MACs plus, per feature matrix (m × n,
    m <= n), the m²n multiply-adds of its Gram matrix and the ~m³ of its eigen-solve."""
    m = np.minimum(rows["d_out"].to_numpy(), rows["n_samples"].to_numpy()).astype(np.float64)
    n = np.maximum(rows["d_out"].to_numpy(), rows["n_samples"].to_numpy()).astype(np.float64)
    return float((m * m * n + m**3).sum() + sum(forward_macs(r) for r in rows.itertuples(index=False)))


def analyze(
    rows: pd.DataFrame,
    device: torch.device,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rtols: tuple[float, ...] = DEFAULT_RTOLS,
) -> pd.DataFrame:
    """Returns `rows` (network configs) with the metric columns, `input_rank` and `input_rank_3x3` added, in id order.

    Rows of equal shape are built and analysed as one batch of at most `batch_size` networks, in a few
    tensor calls on `device`; each row's result does not depend on the batching (see `rankstudy.batched`).
    Metrics stay on the device until every batch is done, then come back in one transfer.
    """
    # Plain object strings: grouping, sorting and slicing Arrow-backed string columns costs ~ms per batch.
    table = rows.reset_index(drop=True)
    rows = table.astype({c: object for c in table.columns if pd.api.types.is_string_dtype(table[c])})
    columns = [*metric_columns(rtols), "input_rank", "input_rank_3x3"]
    batches, results = [], []
    bound = BATCH_ELEMENTS.get(torch.device(device).type, BATCH_ELEMENTS["cpu"])
    for _, group in rows.groupby(list(SHAPE_COLUMNS), sort=True):
        # Sorted so that each nonlinearity and norm is a run of consecutive rows: a few calls per layer.
        group = group.sort_values(["norm", "nonlinearity", "id"], kind="stable")
        per_batch = max(1, min(batch_size, bound // largest_intermediate(group.iloc[0])))
        for start in range(0, len(group), per_batch):
            batch = group.iloc[start : start + per_batch]
            try:
                features, inputs = build_features_with_inputs(batch, device)
                metrics = rank_metrics(features, rtols)
                # The input's own numerical rank (same float32 tolerance as `rank`): the bounds use it in place
                # of min(d_in, N), which real image patches need not reach (`rankstudy.random_nets.bounds`).
                metrics["input_rank"] = rank_metrics(inputs)["rank"]
                # and of its 3×3 im2col, the input a 3×3 conv reads (smooth image patches leave its 9 shifts
                # of each channel nearly dependent); one layer without maps: X itself.
                spatial = int(batch["spatial"].iloc[0])
                metrics["input_rank_3x3"] = (
                    rank_metrics(im2col(inputs, spatial))["rank"] if spatial > 1 else metrics["input_rank"]
                )
            except StudyError as e:
                raise StudyError(f"rows {batch['id'].tolist()[:5]}: {e}") from None
            batches.append(batch.index.to_numpy())
            results.append(torch.stack([metrics[c].to(torch.float64) for c in columns], dim=1))
    order = np.concatenate(batches)
    values = torch.cat(results).cpu().numpy()
    result = table[list(CONFIG_COLUMNS)].copy()
    for j, name in enumerate(columns):
        column = np.empty(len(rows), dtype=np.int64 if name.startswith(("rank", "input_rank")) else np.float64)
        column[order] = values[:, j]
        result[name] = column
    return result.sort_values("id", kind="stable").reset_index(drop=True)


def _run_chunk(
    rows: pd.DataFrame, device: str, batch_size: int, folder: store.RunFolder | None, index: int
) -> tuple[int, pd.DataFrame | None]:
    # The structural bounds and bound-relative measures are derived from each row's shapes and metrics
    # (`rankstudy.bounds`), after the metrics, so the analyzer itself stays unaware of them.
    table = with_bound_columns(analyze(rows, torch.device(device), batch_size))
    if folder is None:
        return index, table
    folder.write_unit(chunk_name(index), table)
    return index, None


def _manifest(config: StudyConfig, chunk_rows: int, n_chunks: int) -> dict:
    return {
        "schema_version": store.SCHEMA_VERSION,
        "config": config.to_dict(),
        "chunk_rows": chunk_rows,
        "n_chunks": n_chunks,
    }


def _parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    if shard is None or isinstance(shard, tuple):
        parsed = shard
    else:
        try:
            i, k = (int(p) for p in str(shard).split("/"))
        except ValueError:
            raise StudyError(f"--shard must look like i/k (e.g. 0/4), got {shard!r}") from None
        parsed = (i, k)
    if parsed is not None and not (parsed[1] >= 1 and 0 <= parsed[0] < parsed[1]):
        raise StudyError(f"--shard i/k needs 0 <= i < k, got {parsed[0]}/{parsed[1]}")
    return parsed


def run_study(
    config: StudyConfig,
    device: str = "auto",
    out: str | os.PathLike | None = None,
    *,
    workers: int | None = None,
    shard: str | tuple[int, int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
    command: str | None = None,
    scheduler: str | None = None,
) -> pd.DataFrame:
    """Returns the study's results table (one row per network, by id; a shard's rows only with `shard`).

    `workers=None` picks one worker process per CPU core on the CPU (the numerics run on one thread per
    process, see `rankstudy.batched`), and 1 on CUDA or for small studies.
    With `out`, finished chunks are stored as they complete and a rerun resumes from them; once every
    chunk exists, results.parquet, results.csv and metadata.json are written there.
    `scheduler` (tcp://HOST:PORT) runs the chunks on that dask.distributed cluster instead (`rankstudy.parallel`);
    they come back here to be stored, so the table is the same as a local run's.
    """
    start = time.perf_counter()
    config = config.validate()  # the inputs actually used go to the manifest and metadata
    try:
        dev = resolve_device(device)
    except RexnetError as e:
        raise StudyError(str(e)) from None
    shard_ik = _parse_shard(shard)
    if workers is not None and workers < 1:
        raise StudyError(f"--workers must be >= 1, got {workers}")
    if workers is not None and workers > 1 and dev.type == "cuda":
        raise StudyError("--workers runs CPU processes; use --workers 1 with --device cuda")
    if batch_size < 1:
        raise StudyError(f"--batch-size must be >= 1, got {batch_size}")
    if scheduler is not None:
        check_scheduler(scheduler)  # before anything is written: a bad address leaves no folder behind
    table = sample_networks(config)
    chunks = plan_chunks(table, chunk_rows)
    mine = [i for i in range(len(chunks)) if shard_ik is None or i % shard_ik[1] == shard_ik[0]]
    if not mine:
        # A shard of a small study may get no chunk (chunks go round-robin to the shards): it stores its manifest,
        # so `merge` sees it as a shard of this study, and nothing else.
        if out is not None:
            folder = store.RunFolder(out, CHUNKS)
            store.prepare_out_dir(folder.root)
            folder.claim(_manifest(config, chunk_rows, len(chunks)), hints=CHUNK_ROWS_HINT)
        return empty_table()

    folder = store.RunFolder(out, CHUNKS).prepare() if out is not None else None
    if folder is not None:
        folder.claim(_manifest(config, chunk_rows, len(chunks)), hints=CHUNK_ROWS_HINT)
        folder.remove_stale()  # left by a killed run
    done = {i for i in mine if folder is not None and folder.has_unit(chunk_name(i))}
    done -= _damaged({i: (folder, chunks[i]) for i in done})
    todo = [i for i in mine if i not in done]
    if done and progress:
        tqdm.write(
            f"resuming: {len(done)} of {len(mine)} chunks found in {folder.units}, {len(todo)} to compute",
            file=sys.stderr,
        )

    by_id = table.set_index("id", drop=False)
    if workers is None:
        workers = 1 if dev.type == "cuda" or len(todo) < 8 else min(os.cpu_count() or 1, len(todo))
    in_memory: dict[int, pd.DataFrame] = {}
    worker_folder = None if scheduler is not None else folder  # cluster workers return their chunks
    if workers > 1 or scheduler is not None:
        # Largest first (LPT): the chunks differ ~100× in cost and the costliest come last in shape order, so
        # in that order one worker would finish alone. Results are stored by chunk index, so the table is the same.
        todo.sort(key=lambda i: chunk_cost(by_id.loc[chunks[i]]), reverse=True)
    jobs = (
        delayed(_run_chunk)(by_id.loc[chunks[i]].reset_index(drop=True), str(dev), batch_size, worker_folder, i)
        for i in todo
    )
    bar = tqdm(
        total=sum(len(chunks[i]) for i in mine),
        initial=sum(len(chunks[i]) for i in done),
        unit="net",
        desc="rank study",
        disable=not progress,
        dynamic_ncols=True,
    )
    with bar:
        for index, part in run_tasks(jobs, workers, scheduler):
            if part is not None:
                in_memory[index] = part
                if folder is not None:  # computed on a cluster worker: stored here
                    folder.write_unit(chunk_name(index), part)
            bar.update(len(chunks[index]))

    def chunk_table(i: int) -> pd.DataFrame:
        return in_memory[i] if i in in_memory else folder.read_unit_table(chunk_name(i), chunks[i])

    result = pd.concat([chunk_table(i) for i in mine]).sort_values("id", kind="stable").reset_index(drop=True)
    if folder is None:
        return result
    if all(folder.has_unit(chunk_name(i)) for i in range(len(chunks))):
        full = result if len(mine) == len(chunks) else merge([folder.root], folder.root, progress=False, write=False)
        folder.finish(full, _metadata(config, chunk_rows, dev, workers, batch_size, start, len(done), command))
    return result


def empty_table() -> pd.DataFrame:
    """Returns the results table of a shard that got no chunk: no rows (its columns come with the other shards)."""
    return pd.DataFrame({"id": pd.Series(dtype=np.int64)})


def _damaged(stored: dict[int, tuple[store.RunFolder, np.ndarray]]) -> set[int]:
    """Returns the stored chunks (index → (folder, row ids)) that cannot be read back, after deleting them
    with a warning: chunks are deterministic, so a damaged one is simply computed again."""
    bad = set()
    for i, (folder, ids) in stored.items():
        try:
            folder.read_unit_table(chunk_name(i), ids)
        except StudyError as e:
            warnings.warn(f"{e}; recomputing it", stacklevel=3)
            folder.remove_unit(chunk_name(i))
            bad.add(i)
    return bad


def _metadata(
    config: StudyConfig,
    chunk_rows: int,
    dev: torch.device,
    workers: int,
    batch_size: int,
    start: float,
    resumed_chunks: int,
    command: str | None,
    **extra,
) -> dict:
    """Returns metadata.json: the store's header (command, seed, device, versions, wall time, created) and the
    rank study's own keys."""
    return {
        **store.run_metadata(seed=config.seed, device=dev, start=start, command=command),
        "schema_version": store.SCHEMA_VERSION,
        "config": config.to_dict(),
        "n_rows": config.n,
        "chunk_rows": chunk_rows,
        "workers": workers,
        "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "resumed_chunks": resumed_chunks,
        "rank_tolerance": "sigma > sigma_max * max(m, n) * eps_float32",
        **extra,
    }


def merge(
    dirs: list[str | os.PathLike], out: str | os.PathLike, *, progress: bool = True, write: bool = True
) -> pd.DataFrame:
    """Returns the full table assembled from the chunks in `dirs` (shards of one study), written to `out`."""
    start = time.perf_counter()
    if not dirs:
        raise StudyError("merge needs at least one study directory")
    seen: dict[Path, str] = {}
    for d in dirs:
        key = Path(d).resolve()
        if key in seen:
            raise StudyError(f"{d} is given twice (as {seen[key]} and {d}); pass each shard directory once")
        seen[key] = str(d)
    manifests = [
        store.read_json(Path(d) / store.MANIFEST, "pass directories written by `rankstudy sample`") for d in dirs
    ]
    first = manifests[0]
    for d, m in zip(dirs, manifests):
        if m != first:
            differ = store.manifest_differences(first, m)
            raise StudyError(
                f"{d} holds a different study than {dirs[0]} (differs in: {', '.join(differ)}); "
                "merge only shards of one command (same config and seed)"
            )
    config = StudyConfig.from_dict(first["config"])
    table = sample_networks(config)
    chunks = plan_chunks(table, first["chunk_rows"])
    found: dict[int, store.RunFolder] = {}
    for d in dirs:
        shard = store.RunFolder(d, CHUNKS)
        for i in range(len(chunks)):
            if not shard.has_unit(chunk_name(i)):
                continue
            if i in found:
                raise StudyError(
                    f"chunk {i} is in both {found[i].root} and {d}: the same shard was given "
                    "twice; pass each shard's directory once"
                )
            found[i] = shard
    missing = [i for i in range(len(chunks)) if i not in found]
    if missing:
        raise StudyError(
            f"{len(missing)} of {len(chunks)} chunks are missing (first: {missing[:5]}); "
            "run the missing shards with the same command, then merge again"
        )
    by_id = table.set_index("id", drop=False)
    for i in sorted(_damaged({i: (found[i], chunks[i]) for i in found})):  # recomputed where it was stored
        _run_chunk(by_id.loc[chunks[i]].reset_index(drop=True), "cpu", DEFAULT_BATCH_SIZE, found[i], i)
    parts = [
        found[i].read_unit_table(chunk_name(i), chunks[i])
        for i in tqdm(range(len(chunks)), desc="merge", disable=not progress)
    ]
    table = pd.concat(parts).sort_values("id", kind="stable").reset_index(drop=True)
    if write:
        merged = store.RunFolder(out, CHUNKS).prepare()
        if merged.root.resolve() not in seen:  # merged beside the shards: their manifest is already there
            merged.claim(first)
        merged.finish(
            table,
            _metadata(
                config,
                first["chunk_rows"],
                torch.device("cpu"),
                1,
                0,
                start,
                len(chunks),
                None,
                merged_from=[str(d) for d in dirs],
            ),
        )
    return table
