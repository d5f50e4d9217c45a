"""On-disk layout of a resumable study (`RunFolder`), the metadata header every study writes, and the one JSON writer.

    OUT/manifest.json         the study's settings; a rerun must match it (and then resumes) or is refused
    OUT/UNITS/NAME            one file per finished unit of work, written atomically: a parquet table (the rank
                              study's chunks/chunk-00012.parquet) or a JSON row (the channel study's
                              rows/cfg-00003-s0.json)
    OUT/results.parquet, results.csv, metadata.json   the full table, written once every unit exists

Every file goes through a temporary file beside it and a rename (`rexnet.io.atomic_path`), so a process killed at
any moment (kill -9) leaves the old file, the new one, or a stale `.NAME.XXXXXX.tmp` that the next run removes
(`RunFolder.remove_stale`). A unit is never half written, so a rerun computes exactly the units still missing.
"""

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from rexnet.io import atomic_path, versions  # one home for atomic writes (rankstudy may import rexnet)

from .errors import StudyError

__all__ = [
    "CSV",
    "MANIFEST",
    "METADATA",
    "SCHEMA_VERSION",
    "TABLE",
    "RunFolder",
    "atomic_path",
    "default_command",
    "device_name",
    "json_ready",
    "load_results",
    "manifest_differences",
    "prepare_out_dir",
    "publish",
    "read_json",
    "read_results",
    "read_table",
    "run_metadata",
    "write_csv",
    "write_json",
    "write_table",
]

# Schema of the rank study's table (`load_results`). 2: kinds conv3x3 and block_conv, input_dist as a per-row
# factor, the measured n_over_d_actual, the structural bounds and the bound-relative measures.
SCHEMA_VERSION = 2
MANIFEST, METADATA, TABLE, CSV = "manifest.json", "metadata.json", "results.parquet", "results.csv"
DEFAULT_RESUME_HINT = "rerun with its settings (see manifest.json) or choose another --out"


# --- files ------------------------------------------------------------------------------------------------------


def json_ready(obj, digits: int | None = None):
    """Returns `obj` as strict JSON data: str keys, lists for tuples and arrays, numpy scalars as Python numbers,
    NaN and ±inf as None; with `digits`, every float rounded to that many significant digits (findings.json
    keeps 6, far below any CI's width; tables of runs keep full precision)."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [json_ready(v, digits) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}") if digits is not None else float(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(path: str | os.PathLike, obj, *, digits: int | None = None) -> None:
    """Writes `obj` as indented, key-sorted strict JSON (`json_ready`, floats rounded with `digits`), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_ready(obj, digits), indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike, what: str) -> dict:
    """Returns the JSON object in `path`, or raises StudyError saying the file is unreadable and `what` to do."""
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise StudyError(f"{path} not found; {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StudyError(f"{path} is not valid JSON ({e.__class__.__name__}); {what}") from None
    if not isinstance(obj, dict):
        raise StudyError(f"{path} does not hold a JSON object; {what}")
    return obj


def prepare_out_dir(path: str | os.PathLike, *subdirs: str) -> Path:
    """Returns `path` after creating it (and `subdirs` in it) and proving it writable; StudyError otherwise.

    The one "make the output folder or fail" of the toolkit: every command that writes files calls it first,
    so an unwritable --out is one line (`cannot write to --out …`) before any work is done.
    """
    out = Path(path)
    try:
        for sub in subdirs or ("",):
            (out / sub).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise StudyError(f"cannot write to --out {out} ({e.strerror}); choose a writable directory") from None
    return out


def write_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Writes `table` as parquet (without its index), atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(table, preserve_index=False), tmp)


def write_csv(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Writes `table` as CSV (floats with full precision), atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.17g")


def read_table(path: str | os.PathLike, expected_ids=None) -> pd.DataFrame:
    """Returns a stored parquet table; StudyError if it is unreadable or (given `expected_ids`) holds other ids."""
    try:
        table = pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise StudyError(f"{path} is damaged ({e.__class__.__name__})") from None
    if expected_ids is not None and (
        "id" not in table or sorted(table["id"].tolist()) != sorted(int(i) for i in expected_ids)
    ):
        raise StudyError(f"{path} holds other rows than the study plans")
    return table


# --- metadata ---------------------------------------------------------------------------------------------------


def default_command() -> str:
    """Returns this process's command line as typed (program name without its folder, then its arguments)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def device_name(device: str | torch.device) -> str:
    """Returns the GPU's name for a CUDA device, else the CPU's (platform.processor(), or the machine type)."""
    dev = torch.device(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine()


def run_metadata(*, seed: int, device: str | torch.device, start: float, command: str | None = None) -> dict:
    """Returns the header every study's metadata.json starts with: command (this process's argv unless given),
    seed, device and device_name, versions (`rexnet.io.versions`), wall_time_s since `start` (a
    time.perf_counter() reading) and created (local time, ISO 8601). Studies add their own keys to it."""
    return {
        "command": command if command is not None else default_command(),
        "seed": seed,
        "device": str(device),
        "device_name": device_name(device),
        "versions": versions(),
        "wall_time_s": round(time.perf_counter() - start, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- the run folder ---------------------------------------------------------------------------------------------


def manifest_differences(old: dict, new: dict) -> list[str]:
    """Returns the settings two manifests differ in: the keys of their `config` that differ or, where the configs
    agree, the other top-level keys that do (e.g. chunk_rows, a schema version); [] when they are equal."""
    old_cfg = old.get("config") if isinstance(old.get("config"), dict) else {}
    new_cfg = new.get("config") if isinstance(new.get("config"), dict) else {}
    differ = sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
    return differ or sorted(k for k in (set(old) | set(new)) - {"config"} if old.get(k) != new.get(k))


class RunFolder:
    """A resumable study's output folder: its manifest, one atomically written file per finished unit of work
    (under `units/`), and the final table with its metadata (module docstring).

    Constructing one touches no file (shards are read this way); `prepare()` creates it for writing. A
    RunFolder pickles, so worker processes can store their units themselves.
    """

    def __init__(self, root: str | os.PathLike, units: str):
        self.root = Path(root)
        self.units_name = units
        self.units = self.root / units

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r}, {self.units_name!r})"

    def prepare(self) -> "RunFolder":
        """Returns self after creating the folder and its units folder; StudyError (one line) if not writable."""
        prepare_out_dir(self.root, self.units_name)
        return self

    # manifest

    def read_manifest(self) -> dict | None:
        """Returns the stored manifest, or None when the folder has none yet."""
        path = self.root / MANIFEST
        return read_json(path, f"delete {self.root} or choose another --out") if path.exists() else None

    def holds_results(self) -> bool:
        """Returns whether any unit (or a stale temporary unit) or the final table is stored."""
        return (self.units.is_dir() and any(self.units.iterdir())) or (self.root / TABLE).exists()

    def check_manifest(self, manifest: dict, hints: dict[str, str] | None = None) -> bool:
        """Returns True when the folder holds this study's manifest (a resume), False when it holds none yet.

        StudyError when it holds another study's manifest, naming the settings that differ
        (`manifest_differences`), or results without a manifest. `hints` maps a setting to what to do when it
        differs, a template where {old} is the folder's value of it (e.g. how to resume with the old chunking).
        """
        old = self.read_manifest()
        if old is None:
            if self.holds_results():
                raise StudyError(f"--out {self.root} holds results without a manifest; use an empty directory")
            return False
        new = json_ready(manifest)
        if old == new:
            return True
        differ = manifest_differences(old, new)
        old_cfg = old.get("config") if isinstance(old.get("config"), dict) else {}
        hint = next(
            (hints[k].format(old=old_cfg.get(k, old.get(k))) for k in differ if k in (hints or {})), DEFAULT_RESUME_HINT
        )
        raise StudyError(
            f"--out {self.root} holds a study with a different config (differs in: {', '.join(differ)}); {hint}"
        )

    def write_manifest(self, manifest: dict) -> None:
        """Writes the manifest (the folder's claim to be this study's), atomically."""
        write_json(self.root / MANIFEST, manifest)

    def claim(self, manifest: dict, hints: dict[str, str] | None = None) -> bool:
        """Returns whether the folder already was this study's (a resume), after writing the manifest into a
        fresh one; StudyError as `check_manifest` for a folder of another study."""
        resumed = self.check_manifest(manifest, hints)
        if not resumed:
            self.write_manifest(manifest)
        return resumed

    # units

    def unit_path(self, name: str) -> Path:
        """Returns where the unit `name` (a file name such as chunk-00012.parquet) is stored."""
        return self.units / name

    def has_unit(self, name: str) -> bool:
        """Returns whether the unit `name` is stored (a stored unit is complete: units are written atomically)."""
        return self.unit_path(name).exists()

    def write_unit(self, name: str, result: pd.DataFrame | dict) -> Path:
        """Returns the path of the unit after storing `result` atomically: a DataFrame as parquet, a dict as JSON."""
        path = self.unit_path(name)
        if isinstance(result, pd.DataFrame):
            write_table(path, result)
        else:
            write_json(path, result)
        return path

    def read_unit_table(self, name: str, expected_ids=None) -> pd.DataFrame:
        """Returns a stored parquet unit; StudyError if it is damaged or (given `expected_ids`) holds other ids."""
        return read_table(self.unit_path(name), expected_ids)

    def read_unit_row(self, name: str, keys=()) -> dict:
        """Returns a stored JSON unit; StudyError (saying: delete it and rerun) if unreadable or lacking `keys`."""
        path = self.unit_path(name)
        row = read_json(path, "delete it and rerun to recompute that run")
        missing = [k for k in keys if k not in row]
        if missing:
            raise StudyError(f"{path} lacks {missing[:3]}; delete it and rerun to recompute that run")
        return row

    def remove_unit(self, name: str) -> None:
        """Deletes a stored unit (e.g. a damaged one, to be computed again)."""
        self.unit_path(name).unlink(missing_ok=True)

    def remove_stale(self) -> int:
        """Returns how many stale temporary files (left by a process killed while writing) were deleted: any in
        the units folder, and those of the manifest, table, CSV and metadata in the folder itself."""
        stale = list(self.units.glob(".*.tmp")) if self.units.is_dir() else []
        for name in (MANIFEST, METADATA, TABLE, CSV):
            stale += self.root.glob(f".{name}.*.tmp")
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    # the end

    def finish(self, table: pd.DataFrame, metadata: dict) -> None:
        """Writes the full table (results.parquet and results.csv) and metadata.json, each atomically."""
        write_table(self.root / TABLE, table)
        write_csv(self.root / CSV, table)
        write_json(self.root / METADATA, metadata)


def publish(runs: str | os.PathLike, results: Path, names, *, command: str, settings: dict) -> dict:
    """Returns the metadata of the finished (or partial) study in `runs` after copying its files `names` into the
    committed `results` folder, each atomically, beside a command.txt holding the command, the settings and the
    versions that made them."""
    for name in names:
        with atomic_path(results / name) as tmp:
            shutil.copyfile(Path(runs) / name, tmp)
    with atomic_path(results / "command.txt") as tmp:
        tmp.write_text(f"{command}\nsettings: {json.dumps(settings)}\nversions: {json.dumps(versions())}\n")
    return read_json(results / METADATA, "it is copied from the study folder; rerun the experiment")


# --- the rank study's table -------------------------------------------------------------------------------------


def read_results(path: str | os.PathLike, *, schema: tuple[str, object], command: str) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a finished study, from its folder or its results.parquet; StudyError naming the
    problem and the fix when the table is missing or unreadable, or its metadata missing or of another study.

    `schema` is the metadata (key, value) that marks the study's tables; `command` the command that writes them.
    """
    path = Path(path)
    table_path = path / TABLE if path.is_dir() else path
    if not table_path.exists():
        raise StudyError(f"no results table at {table_path}; run `{command} --out {path}` first")
    key, value = schema
    if table_path.name != TABLE and not table_path.parent.joinpath(METADATA).exists():
        raise StudyError(f"{table_path} is not a results table of `{command}`; pass its --out folder")
    meta = read_json(table_path.parent / METADATA, f"it should sit beside {TABLE}; rerun `{command}`")
    if meta.get(key) != value:
        raise StudyError(
            f"{table_path.parent} is not a table of this version's `{command}` ({key.replace('_', ' ')} "
            f"{meta.get(key)!r}, this version reads {value!r}); pass the --out of `{command}` or regenerate it"
        )
    try:
        table = pq.read_table(table_path).to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise StudyError(
            f"{table_path} is not a readable parquet table ({e.__class__.__name__}); regenerate it with `{command}`"
        ) from None
    return table, meta


def load_results(path: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Returns (table, metadata) of a finished rank study (`rankstudy sample`, or `rankstudy merge` for shards)."""
    return read_results(path, schema=("schema_version", SCHEMA_VERSION), command="rankstudy sample")
