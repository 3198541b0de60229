"""Format detection and schema inspection of real small ROOT, Parquet and HDF5 files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from luminary.datasets._formats import (
    Column,
    FileSchema,
    Table,
    detect_format,
    inspect_file,
    is_simple_jagged,
)
from luminary.errors import InvalidArgumentError, MissingDependencyError, NotFoundError

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
h5py = pytest.importorskip("h5py")


@pytest.fixture
def root_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.root"
    with uproot.recreate(path, compression=uproot.ZSTD(1)) as f:
        tree = f.mktree(
            "events",
            {"x": "float64", "n": "int32", "v": "var * float32", "fx": ("float32", (3,))},
        )
        for lo in (0, 60):  # two baskets
            hi = lo + 60
            tree.extend(
                {
                    "x": np.arange(lo, hi, dtype=np.float64),
                    "n": np.arange(lo, hi, dtype=np.int32),
                    "v": ak.Array([[float(i)] * (i % 4) for i in range(lo, hi)]),
                    "fx": np.zeros((hi - lo, 3), dtype=np.float32),
                }
            )
        f.mkdir("sub").mktree("small", {"k": "int64"}).extend({"k": np.arange(7)})
        f["ntuple"] = {"a": np.arange(5.0), "b": ak.Array([[1, 2], [3], [], [4], [5]])}
    return path


def test_root_schema_lists_ttrees_and_rntuples(root_file: Path) -> None:
    schema = inspect_file(root_file)
    assert schema is not None
    assert schema.format == "root"
    assert [t.name for t in schema.tables] == ["events", "sub/small", "ntuple"]
    events = schema.table("events")
    assert events is not None
    assert events.kind == "ttree"
    assert events.entries == 120
    assert events.columns == (
        Column("x", "float64"),
        Column("n", "int32"),
        Column("nv", "int32"),  # uproot's own counter branch for "v"
        Column("v", "var * float32", jagged=True),
        Column("fx", "3 * float32"),
    )
    small = schema.table("sub/small")
    assert small is not None
    assert (small.kind, small.entries) == ("ttree", 7)
    ntuple = schema.table("ntuple")
    assert ntuple is not None
    assert (ntuple.kind, ntuple.entries) == ("rntuple", 5)
    assert set(ntuple.columns) == {Column("a", "float64"), Column("b", "var * int64", True)}


def test_parquet_schema_from_the_footer(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    table = pa.table(
        {
            "i": pa.array(np.arange(10, dtype=np.int64)),
            "f": pa.array(np.ones(10, dtype=np.float32)),
            "l": pa.array([[1.0] * (k % 3) for k in range(10)], pa.list_(pa.float32())),
            "s": pa.array([str(k) for k in range(10)]),
            "fixed": pa.array([[k, k] for k in range(10)], pa.list_(pa.int16(), 2)),
            "st": pa.array([{"a": k, "b": 1.5} for k in range(10)]),
        }
    )
    pq.write_table(table, path, row_group_size=4)
    schema = inspect_file(path)
    assert schema == FileSchema(
        "parquet",
        (
            Table(
                "table",
                "parquet",
                10,
                (
                    Column("i", "int64"),
                    Column("f", "float32"),
                    Column("l", "var * float32", jagged=True),
                    Column("s", "string"),
                    Column("fixed", "2 * int16"),
                    Column("st", "{a: int64, b: float64}"),
                ),
            ),
        ),
    )


def test_hdf5_schema_groups_and_datasets(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f["pt"] = np.arange(20, dtype=np.float32)
        f["constituents"] = np.zeros((20, 30, 10), dtype=np.float32)
        f["meta"] = 3.0  # scalar: not a table
        group = f.create_group("truth")
        group["label"] = np.arange(8, dtype=np.int64)
        vlen = group.create_dataset("hits", (8,), dtype=h5py.vlen_dtype(np.float64))
        vlen[1] = np.array([1.0, 2.0])
        f["rows"] = np.zeros(4, dtype=[("a", "<f4"), ("b", "<i8")])
    schema = inspect_file(path)
    assert schema is not None
    assert schema.format == "hdf5"
    tables = {t.name: t for t in schema.tables}
    assert set(tables) == {
        "/",
        "/truth",
        "/pt",
        "/constituents",
        "/truth/label",
        "/truth/hits",
        "/rows",
    }
    root = tables["/"]
    assert (root.kind, root.entries) == ("hdf5-group", 20)  # "rows" (4) does not share it
    assert root.columns == (
        Column("constituents", "30 * 10 * float32"),
        Column("pt", "float32"),
    )
    truth = tables["/truth"]
    assert truth.entries == 8
    assert truth.columns == (Column("hits", "var * float64", True), Column("label", "int64"))
    assert tables["/constituents"] == Table(
        "/constituents", "hdf5-dataset", 20, (Column("constituents", "30 * 10 * float32"),)
    )
    assert tables["/rows"].columns == (Column("a", "float32"), Column("b", "int64"))


def test_urls_are_opened_through_fsspec(root_file: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    target = f"/luminary-test-{root_file.parent.name}/events.root"
    memory.pipe(target, root_file.read_bytes())
    try:
        schema = inspect_file(f"memory://{target}")
        assert schema == inspect_file(root_file)
        assert detect_format(f"memory://{target}") == "root"
    finally:
        memory.rm(target)


def test_schema_dict_round_trip(root_file: Path) -> None:
    schema = inspect_file(root_file)
    assert schema is not None
    data = schema.to_dict()
    assert data["tables"][0]["columns"][3] == {"name": "v", "type": "var * float32", "jagged": True}
    assert FileSchema.from_dict(data) == schema


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"format": "csv", "tables": []},
        {
            "format": "root",
            "tables": [{"name": "t", "kind": "ttree", "entries": "3", "columns": []}],
        },
        {"format": "root", "tables": [{"name": "t", "kind": "tree", "entries": 3, "columns": []}]},
        {"format": "root", "tables": [{"name": "t", "kind": "ttree", "entries": 3}]},
    ],
)
def test_from_dict_rejects_malformed(data: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        FileSchema.from_dict(data)


def test_detect_format_by_magic(tmp_path: Path, root_file: Path) -> None:
    assert detect_format(root_file) == "root"
    assert detect_format("anything", b"PAR1\x15\x04") == "parquet"
    assert detect_format("anything", b"\x89HDF\r\n\x1a\n\x00") == "hdf5"
    assert detect_format("anything", b"root\x00\x00\xf2\xfe\x00\x00\x00\x64") == "root"
    assert detect_format("anything", b"roo") is None
    text = tmp_path / "notes.txt"
    text.write_text("root of all evil? no: this is text\n")
    assert detect_format(text) is None  # ROOT's magic is "root", a version, then fBEGIN = 100
    assert inspect_file(text) is None
    empty = tmp_path / "empty"
    empty.touch()
    assert detect_format(empty) is None


def test_non_data_files_are_none(tmp_path: Path) -> None:
    text = tmp_path / "README.md"
    text.write_text("# hello\n")
    assert inspect_file(text) is None
    blob = tmp_path / "weights.bin"
    blob.write_bytes(bytes(range(256)))
    assert inspect_file(blob) is None


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.root"):
        inspect_file(tmp_path / "nope.root")


def test_truncated_root_file_names_the_path(tmp_path: Path, root_file: Path) -> None:
    data = root_file.read_bytes()
    half = tmp_path / "half.root"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidArgumentError, match=r"half\.root: not a readable ROOT file") as info:
        inspect_file(half)
    assert "truncated" in str(info.value)


def test_garbage_with_magic_bytes_is_invalid(tmp_path: Path) -> None:
    cases = {
        "junk.parquet": b"PAR1" + b"\x00garbage" * 20,
        "junk.root": b"root\x00\x00\xf2\xfe\x00\x00\x00\x64" + b"\xff" * 200,
        "junk.h5": b"\x89HDF\r\n\x1a\n" + b"\x01" * 200,
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InvalidArgumentError, match=rf"{name}: not a readable"):
            inspect_file(path)


def test_truncated_parquet_and_hdf5(tmp_path: Path) -> None:
    pq_path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": np.arange(1000)}), pq_path)
    h5_path = tmp_path / "t.h5"
    with h5py.File(h5_path, "w") as f:
        f["x"] = np.arange(100_000)
    for path in (pq_path, h5_path):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(InvalidArgumentError, match=rf"{path.name}: not a readable"):
            inspect_file(path)


def test_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    monkeypatch.setitem(sys.modules, "h5py", None)  # "import h5py" now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"luminary\[hdf5\]"):
        inspect_file(path)


def test_simple_jagged_types() -> None:
    assert is_simple_jagged("var * float32")
    assert is_simple_jagged("var * int64")
    assert not is_simple_jagged("var * var * float32")
    assert not is_simple_jagged("var * string")
    assert not is_simple_jagged("float32")
    assert not is_simple_jagged("3 * float32")


def test_importing_stays_cheap() -> None:
    code = (
        "import sys, luminary.datasets._formats, luminary.datasets._reader, "
        "luminary.demo._rootio\n"
        "heavy = [m for m in ('uproot', 'awkward', 'pyarrow', 'h5py') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
