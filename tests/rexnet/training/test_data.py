"""Dataset preparation: Fashion-MNIST from fake idx .gz sets (folder and tarball), reruns, partial and corrupt files."""

import gzip
import io
import tarfile

import pytest
from click.testing import CliRunner

from rexnet.cli import main
from rexnet.errors import RexnetError
from rexnet.training.data import DEBIAN_DIR, FASHION_MNIST_RAW, idx_problem, load_data, prepare_fashion_mnist

from ...fake_fashion_mnist import fake_set, idx_bytes, write_gz_folder

COUNTS = {"train": 12, "t10k": 5}


@pytest.fixture
def fake_dir(tmp_path):
    raw, spec = fake_set(COUNTS)
    return write_gz_folder(tmp_path / "src", raw), raw, spec


def _raw_dir(root):
    return root / "FashionMNIST" / "raw"


def test_from_folder_gives_verified_files_torchvision_reads(tmp_path, fake_dir):
    src, raw, spec = fake_dir
    root = tmp_path / "data"
    out = prepare_fashion_mnist(root, src, raw_files=spec, download=False)
    assert out == _raw_dir(root)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == raw  # gunzipped, nothing else left behind
    from torchvision.datasets import FashionMNIST

    train = FashionMNIST(str(root), train=True)
    assert len(train) == COUNTS["train"] and train[3][1] == 3 and train[0][0].size == (28, 28)


def test_from_tarball(tmp_path):
    raw, spec = fake_set(COUNTS)
    tar_path = tmp_path / "fashion.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, data in raw.items():
            blob = gzip.compress(data)
            info = tarfile.TarInfo(f"package/data/{name}.gz")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    out = prepare_fashion_mnist(tmp_path / "data", tar_path, raw_files=spec, download=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == raw


def test_rerun_is_a_noop_and_partial_files_are_redone(tmp_path, fake_dir):
    src, raw, spec = fake_dir
    root = tmp_path / "data"
    out = prepare_fashion_mnist(root, src, raw_files=spec, download=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # a verified set is kept as it is, without looking at any source
    assert prepare_fashion_mnist(root, tmp_path / "gone-now", raw_files=spec, download=False) == out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    # a truncated file (an interrupted copy) and a flipped byte are both detected and rewritten
    victim = out / "train-images-idx3-ubyte"
    victim.write_bytes(raw[victim.name][:1000])
    flipped = out / "t10k-labels-idx1-ubyte"
    flipped.write_bytes(raw[flipped.name][:-1] + b"\x09")
    prepare_fashion_mnist(root, src, raw_files=spec, download=False)
    assert victim.read_bytes() == raw[victim.name] and flipped.read_bytes() == raw[flipped.name]


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda blob, data: blob[: len(blob) // 2], "not a readable gzip"),
        (lambda blob, data: gzip.compress(data[:-7]), "truncated or padded"),
        (lambda blob, data: gzip.compress(data[:-1] + bytes([data[-1] ^ 1])), "wrong md5"),
        (lambda blob, data: gzip.compress(b"<html>not found</html>"), "not an idx file"),
    ],
)
def test_bad_archives_are_refused_and_never_used(tmp_path, fake_dir, damage, words):
    src, raw, spec = fake_dir
    name = "train-images-idx3-ubyte"
    blob = (src / f"{name}.gz").read_bytes()
    (src / f"{name}.gz").write_bytes(damage(blob, raw[name]))
    root = tmp_path / "data"
    with pytest.raises(RexnetError, match=words):
        prepare_fashion_mnist(root, src, raw_files=spec, download=False)
    assert not (_raw_dir(root) / name).exists()
    assert not [p for p in _raw_dir(root).iterdir() if p.name.startswith(".")]  # no temporary files left


def test_missing_source_is_a_one_line_cli_error(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "data",
            "fashion-mnist",
            "--root",
            str(tmp_path / "d"),
            "--source",
            str(tmp_path / "nowhere"),
            "--no-download",
        ],
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "does not exist" in lines[0]


def test_idx_problem_reads_the_header(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes("labels", 4, 0))
    assert idx_problem(path, 4) is None
    assert "holds 4 items" in idx_problem(path, 5)
    assert idx_problem(tmp_path / "absent", 4) == "missing"


def test_unknown_and_missing_datasets():
    with pytest.raises(RexnetError, match="unknown dataset"):
        load_data("svhn")
    with pytest.raises(RexnetError, match="train/ and val/"):
        load_data("imagefolder:/nonexistent")


def test_imagefolder_and_transforms(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (40, 30), (10, 200, 30)).save(tmp_path / split / cls / "a.png")
    spec = load_data(f"imagefolder:{tmp_path}", img_size=24, randaugment=True, random_erasing=0.5)
    assert spec.classes == ("cat", "dog") and spec.in_chans == 3
    assert spec.train[0][0].shape == spec.test[1][0].shape == (3, 24, 24) and spec.test[1][1] == 1


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian(tmp_path):
    out = prepare_fashion_mnist(tmp_path, download=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(FASHION_MNIST_RAW)
    spec = load_data("fashion-mnist", tmp_path)
    assert (len(spec.train), len(spec.test), spec.in_chans) == (60000, 10000, 1)
    assert spec.train[0][0].shape == (1, 32, 32)


def test_missing_root_is_created_only_under_an_existing_parent_and_says_so(tmp_path, fake_dir, caplog):
    src, raw, spec = fake_dir
    with pytest.raises(RexnetError, match="does not exist.*create it or pass an existing --data-root"):
        prepare_fashion_mnist(tmp_path / "missing" / "x", src, raw_files=spec, download=False)
    assert not (tmp_path / "missing").exists()
    with caplog.at_level("WARNING", logger="rexnet.training"):
        out = prepare_fashion_mnist(tmp_path / "new", src, raw_files=spec, download=False)
    assert out == _raw_dir(tmp_path / "new") and {p.name for p in out.iterdir()} == set(raw)
    assert [r.getMessage() for r in caplog.records] == [f"writing Fashion-MNIST to {out}"]
    caplog.clear()
    prepare_fashion_mnist(tmp_path / "new", src, raw_files=spec, download=False)  # nothing to write: no message
    assert not caplog.records
