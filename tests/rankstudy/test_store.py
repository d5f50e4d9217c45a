"""The run-folder API every resumable study uses: manifest claim and comparison, units written atomically, stale
temporary files, the metadata header and the one JSON writer."""

import json
import math
import pickle
import time

import numpy as np
import pandas as pd
import pytest

from rankstudy import store
from rankstudy.errors import StudyError

MANIFEST = {"schema": "test/1", "config": {"n": 3, "seed": 0, "widths": (8, 16)}, "chunk_rows": 10}


@pytest.fixture
def folder(tmp_path):
    return store.RunFolder(tmp_path / "out", "units").prepare()


def test_prepare_creates_the_folder_and_its_units_folder(tmp_path):
    unprepared = store.RunFolder(tmp_path / "a" / "b", "rows")
    assert not unprepared.root.exists()  # constructing touches nothing
    assert unprepared.prepare() is unprepared and unprepared.units.is_dir()


def test_claim_writes_the_manifest_then_recognises_a_resume(folder):
    assert folder.claim(MANIFEST) is False
    stored = json.loads((folder.root / store.MANIFEST).read_text())
    assert stored["config"]["widths"] == [8, 16]  # as JSON holds it; the comparison normalises the same way
    assert folder.claim(MANIFEST) is True
    assert folder.check_manifest(MANIFEST) is True


def test_a_config_mismatch_names_the_differing_setting(folder):
    folder.claim(MANIFEST)
    other = {**MANIFEST, "config": {**MANIFEST["config"], "seed": 1}}
    with pytest.raises(StudyError, match=r"different config \(differs in: seed\); rerun with its settings") as info:
        folder.claim(other)
    assert "\n" not in str(info.value)
    assert json.loads((folder.root / store.MANIFEST).read_text())["config"]["seed"] == 0  # left as it was


def test_other_top_level_settings_are_named_and_hinted_when_the_configs_agree(folder):
    folder.claim(MANIFEST)
    hints = {"chunk_rows": "it was started with --chunk-rows {old}: rerun with that value to resume"}
    with pytest.raises(StudyError, match=r"differs in: chunk_rows\); it was started with --chunk-rows 10: rerun"):
        folder.claim({**MANIFEST, "chunk_rows": 7}, hints=hints)
    with pytest.raises(StudyError, match=r"differs in: schema\)"):
        folder.claim({**MANIFEST, "schema": "test/2"}, hints=hints)


def test_manifest_differences():
    assert store.manifest_differences(MANIFEST, MANIFEST) == []
    both = {**MANIFEST, "chunk_rows": 7, "config": {"n": 4, "seed": 0, "widths": (8, 16), "extra": 1}}
    assert store.manifest_differences(MANIFEST, both) == ["extra", "n"]  # the config first: it decides the rest
    assert store.manifest_differences(MANIFEST, {**MANIFEST, "chunk_rows": 7}) == ["chunk_rows"]


@pytest.mark.parametrize("leftover", ["unit", "table"])
def test_results_without_a_manifest_are_refused(folder, leftover):
    if leftover == "unit":
        folder.write_unit("u-0.json", {"x": 1})
    else:
        store.write_table(folder.root / store.TABLE, pd.DataFrame({"id": [0]}))
    with pytest.raises(StudyError, match="holds results without a manifest; use an empty directory"):
        folder.claim(MANIFEST)
    assert not (folder.root / store.MANIFEST).exists()


def test_units_round_trip_as_parquet_and_json(folder):
    table = pd.DataFrame({"id": [2, 0, 1], "v": [0.5, np.nan, 1e-300]})
    path = folder.write_unit("chunk-00000.parquet", table)
    assert path == folder.unit_path("chunk-00000.parquet") and folder.has_unit("chunk-00000.parquet")
    pd.testing.assert_frame_equal(folder.read_unit_table("chunk-00000.parquet", [0, 1, 2]), table, check_exact=True)
    with pytest.raises(StudyError, match="holds other rows than the study plans"):
        folder.read_unit_table("chunk-00000.parquet", [0, 1])
    row = {"config_id": np.int64(3), "top1": np.float64(81.25), "loss": math.nan, "ok": np.bool_(True)}
    folder.write_unit("cfg-3.json", row)
    assert folder.read_unit_row("cfg-3.json", ["config_id", "top1"]) == {
        "config_id": 3,
        "top1": 81.25,
        "loss": None,
        "ok": True,
    }
    with pytest.raises(StudyError, match=r"lacks \['seed'\]; delete it and rerun"):
        folder.read_unit_row("cfg-3.json", ["config_id", "seed"])
    folder.remove_unit("cfg-3.json")
    assert not folder.has_unit("cfg-3.json")


def test_a_unit_write_that_fails_leaves_the_old_file_and_no_temporary(folder):
    folder.write_unit("cfg-0.json", {"top1": 1.0})
    before = folder.unit_path("cfg-0.json").read_bytes()
    with pytest.raises(TypeError):
        folder.write_unit("cfg-0.json", {"top1": object()})  # not JSON: fails after the temporary file exists
    assert folder.unit_path("cfg-0.json").read_bytes() == before
    assert sorted(p.name for p in folder.units.iterdir()) == ["cfg-0.json"]


def test_a_damaged_parquet_unit_is_one_study_error(folder):
    folder.unit_path("chunk-00001.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(StudyError, match=r"chunk-00001.parquet is damaged \("):
        folder.read_unit_table("chunk-00001.parquet", [0])


def test_stale_temporary_files_of_a_killed_run_are_removed(folder):
    stale = [
        folder.units / ".chunk-00003.parquet.k2j4x9.tmp",
        folder.units / ".cfg-00001-s0.json.a8f.tmp",
        folder.root / f".{store.TABLE}.q1w2e3.tmp",
        folder.root / f".{store.METADATA}.zz.tmp",
    ]
    kept = [folder.units / "chunk-00002.parquet", folder.root / ".someone-elses.tmp"]
    for p in (*stale, *kept):
        p.write_bytes(b"partial")
    assert folder.remove_stale() == len(stale)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert folder.remove_stale() == 0


def test_an_unwritable_folder_is_one_study_error_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    for make in (lambda: store.RunFolder(blocker / "sub", "rows").prepare(), lambda: store.prepare_out_dir(blocker)):
        with pytest.raises(StudyError) as info:
            make()
        message = str(info.value)
        assert message.startswith("cannot write to --out ") and message.endswith("choose a writable directory")
        assert "\n" not in message


def test_prepare_out_dir_makes_only_what_is_asked(tmp_path):
    assert store.prepare_out_dir(tmp_path / "figs") == tmp_path / "figs"
    assert list((tmp_path / "figs").iterdir()) == []
    store.prepare_out_dir(tmp_path / "study", "chunks", "rows")
    assert sorted(p.name for p in (tmp_path / "study").iterdir()) == ["chunks", "rows"]


def test_finish_writes_table_csv_and_metadata(folder):
    table = pd.DataFrame({"id": [0, 1], "x": [0.1, 1 / 3]})
    folder.finish(table, {"seed": 0})
    pd.testing.assert_frame_equal(pd.read_parquet(folder.root / store.TABLE), table, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(folder.root / store.CSV), table, check_exact=True)
    assert store.read_json(folder.root / store.METADATA, "") == {"seed": 0}


def test_a_run_folder_pickles_for_worker_processes(folder):
    copy = pickle.loads(pickle.dumps(folder))
    assert (copy.root, copy.units, repr(copy)) == (folder.root, folder.units, repr(folder))


def test_run_metadata_header(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/usr/bin/rankstudy", "sample", "--n", "5"])
    start = time.perf_counter()
    meta = store.run_metadata(seed=7, device="cpu", start=start)
    assert {"command", "seed", "device", "device_name", "versions", "wall_time_s", "created"} <= set(meta)
    assert meta["command"] == "rankstudy sample --n 5" and meta["seed"] == 7 and meta["device"] == "cpu"
    assert meta["wall_time_s"] >= 0 and "torch" in meta["versions"] and meta["created"][:2] == "20"
    assert store.run_metadata(seed=0, device="cpu", start=start, command="given")["command"] == "given"


def test_the_json_writer_is_strict_and_rounds_only_when_asked(tmp_path):
    obj = {1: (np.float32(0.1), np.int64(2)), "nan": math.nan, "inf": -math.inf, "x": 1 / 3, "b": np.bool_(False)}
    assert store.json_ready(obj) == {"1": [float(np.float32(0.1)), 2], "nan": None, "inf": None, "x": 1 / 3, "b": False}
    assert store.json_ready(obj, digits=6)["x"] == 0.333333
    assert store.json_ready({"v": 123456789.0}, digits=6) == {"v": 123457000.0}
    store.write_json(tmp_path / "a.json", {"b": 1 / 3, "a": [math.nan]}, digits=6)
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    null\n  ],\n  "b": 0.333333\n}\n'
    rounded = store.json_ready(obj, digits=6)
    assert store.json_ready(rounded, digits=6) == rounded  # rounding twice changes nothing
