"""On-disk layout of a study: atomic parquet chunks, a manifest, and the final table with its metadata.

    OUT/manifest.json            config + chunking; a rerun must match it (resume) or is refused
    OUT/chunks/chunk-00012.parquet   one per finished chunk, written atomically (temp file + rename)
    OUT/results.parquet, results.csv, metadata.json   the full table, written once every chunk exists
"""
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rexnet.io import atomic_path  # one home for atomic writes (rankstudy may import rexnet)

from .errors import StudyError

# 2: kinds conv3x3 and block_conv, input_dist as a per-row factor, the measured n_over_d_actual, the
# structural bounds and the bound-relative measures.
SCHEMA_VERSION = 2
MANIFEST, METADATA, TABLE, CSV, CHUNKS = "manifest.json", "metadata.json", "results.parquet", "results.csv", "chunks"


def write_json(path: Path, obj: dict) -> None:
    """Writes `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, what: str) -> dict:
    """Returns the JSON object in `path`, or raises StudyError saying the file is unreadable and what to do."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StudyError(f"{path} not found; {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StudyError(f"{path} is not valid JSON ({e.__class__.__name__}); {what}") from None
    if not isinstance(obj, dict):
        raise StudyError(f"{path} does not hold a JSON object; {what}")
    return obj


def prepare_out_dir(out: Path, subdir: str = CHUNKS) -> Path:
    """Returns `out` after creating it (and `subdir`, chunks/ by default) and proving it writable; StudyError otherwise."""
    out = Path(out)
    try:
        (out / subdir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise StudyError(f"cannot write to --out {out} ({e.strerror}); choose a writable directory") from None
    return out


def chunk_path(out: Path, index: int) -> Path:
    return Path(out) / CHUNKS / f"chunk-{index:05d}.parquet"


def write_table(path: Path, table: pd.DataFrame) -> None:
    """Writes `table` as parquet, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)


def write_csv(path: Path, table: pd.DataFrame) -> None:
    """Writes `table` as CSV (floats with full precision), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.17g")


def read_chunk(path: Path, expected_ids) -> pd.DataFrame:
    """Returns a chunk's rows, or raises StudyError if the file is unreadable or holds other rows."""
    try:
        table = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise StudyError(f"chunk {path} is damaged ({e.__class__.__name__})") from None
    if "id" not in table or sorted(table["id"].tolist()) != sorted(int(i) for i in expected_ids):
        raise StudyError(f"chunk {path} holds other rows than the study plans")
    return table


def load_results(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a finished study, from its directory or its results.parquet."""
    path = Path(path)
    table_path = path / TABLE if path.is_dir() else path
    meta_path = table_path.parent / METADATA
    if not table_path.exists():
        raise StudyError(f"no results table at {table_path}; run `rankstudy sample --out {path}` first "
                         "(or `rankstudy merge` for shards)")
    meta = read_json(meta_path, "it should sit beside results.parquet; rerun `rankstudy sample`")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise StudyError(f"{table_path} has schema version {meta.get('schema_version')!r}, this rankstudy reads "
                         f"{SCHEMA_VERSION}; regenerate it with this version's `rankstudy sample`")
    try:
        table = pq.read_table(table_path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise StudyError(f"{table_path} is not a readable parquet table ({e.__class__.__name__}); "
                         "regenerate it with `rankstudy sample`") from None
    return table, meta
