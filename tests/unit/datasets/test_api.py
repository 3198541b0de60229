"""The datasets SDK end to end on an embedded home, with real ROOT, Parquet and HDF5 files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import luminary as lm
from luminary.datasets import _api as ds
from luminary.demo._jets import make_jets
from luminary.demo._rootio import write_jets_root
from luminary.errors import IntegrityError, InvalidArgumentError, NotFoundError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    write_jets_root(make_jets(300, seed=1), root / "jets.root")
    pq.write_table(pa.table({"pt": np.arange(50, dtype=np.float32)}), root / "meta.parquet")
    with h5py.File(root / "truth.h5", "w") as fh:
        fh["label"] = np.arange(40)
    (root / "raw" / "notes.txt").write_text("calibration v2")
    _age(root)
    return root


def _age(root: Path) -> None:
    """Date the files a minute back: the hash cache does not trust a file modified in the
    same instant it was hashed (it could still be being written)."""
    past = time.time() - 60
    for path in root.rglob("*"):
        os.utime(path, (past, past))


def test_add_records_files_and_schemas(folder: Path) -> None:
    stats = ds.add("jets", [folder], project="cms")
    v = stats.version
    assert v.ref == "jets@1"
    assert [e.path for e in ds.files(v)] == [
        "jets.root",
        "meta.parquet",
        "raw/notes.txt",
        "truth.h5",
    ]
    assert v.file_count == 4
    assert v.total_bytes == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    schemas = ds.schemas(v)
    assert set(schemas) == {"jets.root", "meta.parquet", "truth.h5"}
    assert schemas["jets.root"]["tables"][0]["entries"] == 300
    assert schemas["meta.parquet"]["tables"][0]["entries"] == 50
    assert stats.stored_blobs == 4


def test_readd_of_unchanged_data_hashes_nothing(folder: Path) -> None:
    ds.add("jets", [folder])
    again = ds.add("jets", [folder])
    assert again.version.version == 2
    assert again.hashed_files == 0
    assert again.stored_blobs == 0
    assert (
        again.version.manifest_digest
        == lm.get_store().get_dataset_version("jets@1").manifest_digest
    )
    (folder / "raw" / "notes.txt").write_text("calibration v3")
    os.utime(folder / "raw" / "notes.txt", (time.time() - 30, time.time() - 30))
    third = ds.add("jets", [folder])
    assert third.hashed_files == 1
    changes = list(ds.diff("jets@2", "jets@3"))
    assert [(c.kind, c.path) for c in changes] == [("modified", "raw/notes.txt")]


def test_diff_reports_added_removed_modified(folder: Path) -> None:
    ds.add("jets", [folder])
    (folder / "truth.h5").unlink()
    (folder / "raw" / "new.txt").write_text("x")
    (folder / "meta.parquet").write_bytes(b"PAR1 not any more")
    ds.add("jets", [folder], store_unreadable=True)
    kinds = {c.path: c.kind for c in ds.diff("jets@1", "jets@2")}
    assert kinds == {"meta.parquet": "modified", "raw/new.txt": "added", "truth.h5": "removed"}


def test_unreadable_data_file_stops_the_add(folder: Path) -> None:
    (folder / "broken.root").write_bytes(b"root" + b"\x00" * 200)
    with pytest.raises(InvalidArgumentError, match=r"broken\.root"):
        ds.add("jets", [folder])
    with pytest.raises(NotFoundError):
        lm.get_store().get_dataset("jets")  # no version was created
    stats = ds.add("jets", [folder], store_unreadable=True)
    assert "error" in ds.schemas(stats.version)["broken.root"]


def test_verify_reports_flipped_byte_missing_file_and_size_by_path(folder: Path) -> None:
    ds.add("ref", [folder], mode="reference")
    assert list(ds.verify("ref@1")) == []
    data = bytearray((folder / "jets.root").read_bytes())
    data[1000] ^= 0xFF
    (folder / "jets.root").write_bytes(bytes(data))
    (folder / "truth.h5").unlink()
    (folder / "raw" / "notes.txt").write_text("longer than before")
    problems = {p.path: p.kind for p in ds.verify("ref@1")}
    assert problems == {"jets.root": "hash", "truth.h5": "missing", "raw/notes.txt": "size"}


def test_verify_copy_mode_checks_the_blobs(folder: Path) -> None:
    v = ds.add("jets", [folder]).version
    entry = next(e for e in ds.files(v) if e.path == "meta.parquet")
    blobs = lm.get_store().blobs
    with blobs.fs.open(blobs.key(entry.digest), "r+b") as fh:
        fh.seek(10)
        old = fh.read(1)
        fh.seek(10)
        fh.write(bytes([old[0] ^ 0xFF]))  # always a different byte
    assert [(p.path, p.kind) for p in ds.verify("jets@1")] == [("meta.parquet", "hash")]


def test_checkout_writes_verified_files(folder: Path, tmp_path: Path) -> None:
    ds.add("jets", [folder])
    dest = ds.checkout("jets@1", tmp_path / "out")
    for src in folder.rglob("*"):
        if src.is_file():
            assert (dest / src.relative_to(folder)).read_bytes() == src.read_bytes()


def test_a_corrupt_manifest_is_never_trusted(folder: Path) -> None:
    v = ds.add("jets", [folder]).version
    blobs = lm.get_store().blobs
    with blobs.fs.open(blobs.key(v.manifest_digest), "r+b") as fh:
        fh.seek(30)
        old = fh.read(1)
        fh.seek(30)
        fh.write(b"1" if old == b"0" else b"0")  # always a different hex digit
    with pytest.raises(IntegrityError):
        list(ds.files(v))


def test_open_iterates_padded_batches_and_records_the_input(folder: Path) -> None:
    ds.add("jets", [folder])
    with lm.start_run("cms") as run:
        reader = ds.open(
            "jets@1", pattern="*.root", columns=["jet_pt", "c_log_pt"], pad_to=10, step_size=128
        )
        batches = list(reader)
    assert reader.num_entries == 300
    assert [len(b) for b in batches] == [128, 128, 44]
    first = batches[0].arrays
    assert first["c_log_pt"].shape == (128, 10)
    assert first["c_log_pt_mask"].dtype == bool
    assert [v.ref for v in lm.get_store().run_inputs(run.id)] == ["jets@1"]
    shard = reader.shard(1, 3)
    assert sum(len(b) for b in shard) == 100


def test_reference_mode_reads_files_in_place(folder: Path) -> None:
    v = ds.add("ref", [folder], mode="reference").version
    assert v.root == str(folder.resolve())
    assert lm.get_store().blobs.exists(next(ds.files(v)).digest) is False
    reader = ds.open("ref@1", pattern="*.parquet")
    assert sum(len(b) for b in reader) == 50


def test_use_dataset_links_the_run(folder: Path) -> None:
    ds.add("jets", [folder])
    with lm.start_run("cms") as run:
        version = run.use_dataset("jets")
    assert version.ref == "jets@1"
    assert lm.get_store().runs_using("jets@1") == [run.id]


@pytest.mark.parametrize("bad", [[], ["/does/not/exist"]])
def test_bad_sources_are_clear_errors(bad: list[str]) -> None:
    with pytest.raises((InvalidArgumentError, NotFoundError)):
        ds.add("jets", bad)


def test_jagged_columns_come_as_awkward_arrays_by_default(folder: Path) -> None:
    import awkward as ak

    ds.add("jets", [folder])
    batch = next(iter(ds.open("jets@1", pattern="*.root", columns=["c_log_pt"])))
    assert isinstance(batch.arrays["c_log_pt"], ak.Array)
    assert len(batch.arrays["c_log_pt"]) == 300
