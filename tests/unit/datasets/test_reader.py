"""Chunked iteration over lists of ROOT (TTree and RNTuple), Parquet and HDF5 files."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luminary.datasets._reader import Batch, iterate, shard_range
from luminary.errors import InvalidArgumentError, NotFoundError

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
h5py = pytest.importorskip("h5py")

SIZES = (37, 0, 50, 23)  # rows per file; an empty file in the middle
TOTAL = sum(SIZES)
FORMATS = ("ttree", "rntuple", "parquet", "hdf5")
COLUMNS = ["x", "i", "v"]


@dataclass(frozen=True)
class Data:
    """The logical table all test files hold, as plain NumPy."""

    x: np.ndarray
    i: np.ndarray
    v: list[np.ndarray]
    fx: np.ndarray

    def counts(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        return np.array([len(r) for r in self.v[lo:hi]], dtype=np.int64)

    def part(self, lo: int, hi: int) -> dict[str, Any]:
        return {"x": self.x[lo:hi], "i": self.i[lo:hi], "v": self.v[lo:hi], "fx": self.fx[lo:hi]}


def make_data(n: int = TOTAL) -> Data:
    x = np.arange(n, dtype=np.float64) / 4
    i = np.arange(n, dtype=np.int64) * 3 - 7
    v = [(k + 0.5 * np.arange((k * 7) % 9)).astype(np.float32) for k in range(n)]
    fx = (np.arange(n * 6, dtype=np.float32) / 3).reshape(n, 3, 2)
    return Data(x, i, v, fx)


DATA = make_data()


def _jagged(rows: list[np.ndarray]) -> Any:
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.float32)
    return ak.unflatten(flat, counts)


def write_ttree(path: Path, d: dict[str, Any]) -> None:
    with uproot.recreate(path) as f:
        tree = f.mktree(
            "events",
            {"x": "float64", "i": "int64", "v": "var * float32", "fx": ("float32", (3, 2))},
        )
        n = len(d["x"])
        for lo in range(0, n, 20):  # several baskets per file
            hi = min(n, lo + 20)
            tree.extend(
                {
                    "x": d["x"][lo:hi],
                    "i": d["i"][lo:hi],
                    "v": _jagged(d["v"][lo:hi]),
                    "fx": d["fx"][lo:hi],
                }
            )


def write_rntuple(path: Path, d: dict[str, Any]) -> None:
    with uproot.recreate(path) as f:
        f["events"] = {"x": d["x"], "i": d["i"], "v": _jagged(d["v"])}  # a dict writes an RNTuple


def write_parquet(path: Path, d: dict[str, Any]) -> None:
    fx_type = pa.list_(pa.list_(pa.float32(), 2), 3)
    table = pa.table(
        {
            "x": pa.array(d["x"]),
            "i": pa.array(d["i"]),
            "v": pa.array([r.tolist() for r in d["v"]], pa.list_(pa.float32())),
            "fx": pa.array(d["fx"].tolist(), fx_type),
        }
    )
    pq.write_table(table, path, row_group_size=8)


def write_hdf5(path: Path, d: dict[str, Any]) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = d["x"]
        f["i"] = d["i"]
        v = f.create_dataset("v", (len(d["v"]),), dtype=h5py.vlen_dtype(np.float32))
        for k, row in enumerate(d["v"]):
            v[k] = row
        f["fx"] = d["fx"]
        f.create_group("meta")["run"] = np.arange(3)  # another table, not the default


WRITERS: dict[str, tuple[str, Callable[[Path, dict[str, Any]], None]]] = {
    "ttree": (".root", write_ttree),
    "rntuple": (".root", write_rntuple),
    "parquet": (".parquet", write_parquet),
    "hdf5": (".h5", write_hdf5),
}


def write_files(
    tmp_path: Path, fmt: str, data: Data = DATA, sizes: tuple[int, ...] = SIZES
) -> list[str]:
    suffix, writer = WRITERS[fmt]
    paths, lo = [], 0
    for k, n in enumerate(sizes):
        path = tmp_path / f"part{k}{suffix}"
        writer(path, data.part(lo, lo + n))
        paths.append(str(path))
        lo += n
    return paths


@pytest.fixture(scope="module", params=FORMATS)
def files(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[str]]:
    """The same 110 rows split over four files (one empty) in each format; read-only."""
    return request.param, write_files(tmp_path_factory.mktemp(request.param), request.param)


def columns_for(fmt: str) -> list[str]:
    return COLUMNS if fmt == "rntuple" else [*COLUMNS, "fx"]


def check_grid(batches: list[Batch], start: int, stop: int, step: int) -> None:
    expected = [(lo, min(stop, lo + step)) for lo in range(start, stop, step)]
    assert [(b.start, b.stop) for b in batches] == expected
    for b in batches:
        assert all(len(a) == b.stop - b.start for a in b.arrays.values())


def check_equal(batches: list[Batch], start: int, stop: int, columns: list[str]) -> None:
    if not batches:
        assert start == stop
        return
    for name in columns:
        if name == "v":
            got = [row for b in batches for row in b.arrays["v"]]
            want = DATA.v[start:stop]
            assert len(got) == len(want)
            for g, w in zip(got, want, strict=True):
                assert isinstance(g, np.ndarray)
                np.testing.assert_array_equal(g, w)
        else:
            got_arr = np.concatenate([b.arrays[name] for b in batches])
            np.testing.assert_array_equal(got_arr, getattr(DATA, name)[start:stop])


@pytest.mark.parametrize(
    ("step", "start", "stop"),
    [
        (1000, 0, None),  # one batch over all files
        (16, 0, None),
        (7, 30, 95),  # starts inside file 0, crosses the empty file, ends inside file 3
        (25, 37, 87),  # exactly the boundaries of file 2
        (3, 35, 39),  # a batch stitched across files 0 and 2
        (5, TOTAL, None),  # nothing left
        (4, 100, 500),  # entry_stop past the end
    ],
)
def test_iteration_equals_concatenation(
    files: tuple[str, list[str]], step: int, start: int, stop: int | None
) -> None:
    fmt, paths = files
    columns = columns_for(fmt)
    batches = list(
        iterate(paths, columns=columns, step_size=step, entry_start=start, entry_stop=stop)
    )
    end = TOTAL if stop is None else min(stop, TOTAL)
    check_grid(batches, start, end, step)
    check_equal(batches, start, end, columns)
    for b in batches:
        assert list(b.arrays) == columns
        assert b.clipped == {}
        assert b.arrays["x"].dtype == np.float64
        assert b.arrays["i"].dtype == np.int64
        assert b.arrays["v"].dtype == object


def test_default_table_and_columns(files: tuple[str, list[str]]) -> None:
    fmt, paths = files
    (batch,) = iterate(paths, step_size=TOTAL)
    assert set(columns_for(fmt)) <= set(batch.arrays)
    if fmt == "ttree":
        assert "nv" in batch.arrays  # uproot's counter branch is a column like any other
        np.testing.assert_array_equal(batch.arrays["nv"], DATA.counts())


@pytest.mark.parametrize("world_size", range(1, 8))
def test_shards_cover_every_entry_once(files: tuple[str, list[str]], world_size: int) -> None:
    _, paths = files
    seen = []
    for rank in range(world_size):
        lo, hi = shard_range(TOTAL, rank, world_size)
        for b in iterate(paths, columns=["i"], step_size=9, entry_start=lo, entry_stop=hi):
            seen.append(b.arrays["i"])
    np.testing.assert_array_equal(np.concatenate(seen), DATA.i)


def test_shard_range_partitions() -> None:
    for n in (0, 1, 6, 7, 110, 1001):
        for world_size in range(1, 8):
            ranges = [shard_range(n, r, world_size) for r in range(world_size)]
            assert ranges[0][0] == 0
            assert ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            sizes = [hi - lo for lo, hi in ranges]
            assert max(sizes) - min(sizes) <= 1
    for bad in ((10, 3, 3), (10, -1, 3), (10, 0, 0), (-1, 0, 1)):
        with pytest.raises(InvalidArgumentError):
            shard_range(*bad)


@pytest.mark.parametrize(("start", "stop", "step"), [(0, None, 1000), (5, 101, 13)])
def test_pad_to_pads_clips_and_counts(
    files: tuple[str, list[str]], start: int, stop: int | None, step: int
) -> None:
    _, paths = files
    length = 4
    batches = list(
        iterate(
            paths,
            columns=["v", "x"],
            pad_to=length,
            pad_value=-1.0,
            step_size=step,
            entry_start=start,
            entry_stop=stop,
        )
    )
    end = TOTAL if stop is None else stop
    check_grid(batches, start, end, step)
    for b in batches:
        assert list(b.arrays) == ["v", "v_mask", "x"]
        padded, mask = b.arrays["v"], b.arrays["v_mask"]
        assert padded.shape == (b.stop - b.start, length)
        assert padded.dtype == np.float32
        assert mask.dtype == np.bool_
        counts = DATA.counts(b.start, b.stop)
        assert b.clipped == {"v": int(np.maximum(counts - length, 0).sum())}
        for row, k in enumerate(range(b.start, b.stop)):
            kept = DATA.v[k][:length]
            np.testing.assert_array_equal(padded[row, : len(kept)], kept)
            assert (padded[row, len(kept) :] == -1.0).all()
            np.testing.assert_array_equal(mask[row], np.arange(length) < len(kept))
    total_clipped = sum(b.clipped["v"] for b in batches)
    assert total_clipped == int(np.maximum(DATA.counts(start, end) - length, 0).sum()) > 0


def test_pad_to_mapping_and_no_clipping(files: tuple[str, list[str]]) -> None:
    _, paths = files
    (batch,) = iterate(paths, columns=["v"], pad_to={"v": 9}, step_size=TOTAL)
    assert batch.clipped == {"v": 0}
    np.testing.assert_array_equal(batch.arrays["v_mask"].sum(axis=1), DATA.counts())
    assert (batch.arrays["v"][~batch.arrays["v_mask"]] == 0).all()


def test_library_ak_gives_awkward_for_jagged(files: tuple[str, list[str]]) -> None:
    _, paths = files
    batches = list(iterate(paths, columns=["v", "x"], library="ak", step_size=40, entry_start=20))
    for b in batches:
        assert isinstance(b.arrays["v"], ak.Array)
        assert isinstance(b.arrays["x"], np.ndarray)  # flat columns stay NumPy
    rows = [row for b in batches for row in b.arrays["v"].to_list()]
    assert rows == [r.tolist() for r in DATA.v[20:]]


def test_unknown_column_suggests(files: tuple[str, list[str]]) -> None:
    _, paths = files
    with pytest.raises(NotFoundError, match=r"no column 'ii'; did you mean 'i'\?"):
        next(iterate(paths, columns=["x", "ii"]))


def test_unknown_table_suggests(files: tuple[str, list[str]]) -> None:
    _, paths = files
    with pytest.raises(NotFoundError, match=r"part0\.\w+: no table 'event'"):
        next(iterate(paths, table="event"))


def test_single_path_and_explicit_table(tmp_path: Path) -> None:
    (path,) = write_files(tmp_path, "ttree", sizes=(TOTAL,))
    (batch,) = iterate(path, table="events", columns=["i"], step_size=TOTAL)
    np.testing.assert_array_equal(batch.arrays["i"], DATA.i)


def test_ambiguous_root_file_lists_the_trees(tmp_path: Path) -> None:
    path = tmp_path / "two.root"
    with uproot.recreate(path) as f:
        f.mktree("a", {"x": "int32"}).extend({"x": np.arange(3, dtype=np.int32)})
        f.mktree("b", {"y": "int32"}).extend({"y": np.arange(4, dtype=np.int32)})
    with pytest.raises(InvalidArgumentError, match=r"2 tables.*'a' \(ttree, 3 entries\).*'b'"):
        next(iterate([str(path)]))
    (batch,) = iterate([str(path)], table="b")
    np.testing.assert_array_equal(batch.arrays["y"], np.arange(4))


def test_hdf5_tables_groups_and_compound(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    rows = np.zeros(6, dtype=[("a", "<f4"), ("b", "<i8")])
    rows["a"], rows["b"] = np.arange(6) / 2, np.arange(6) * 10
    with h5py.File(path, "w") as f:
        f["pt"] = np.arange(5.0)
        f["constituents"] = np.arange(5 * 30 * 10, dtype=np.float32).reshape(5, 30, 10)
        g = f.create_group("truth")
        g["label"] = np.arange(6)
        f["rows"] = rows
    batches = list(iterate([str(path)], step_size=2, entry_start=1))
    assert [(b.start, b.stop) for b in batches] == [(1, 3), (3, 5)]
    assert batches[0].arrays["constituents"].shape == (2, 30, 10)
    np.testing.assert_array_equal(
        np.concatenate([b.arrays["constituents"] for b in batches]),
        np.arange(5 * 30 * 10, dtype=np.float32).reshape(5, 30, 10)[1:],
    )
    (truth,) = iterate([str(path)], table="truth")
    np.testing.assert_array_equal(truth.arrays["label"], np.arange(6))
    (compound,) = iterate([str(path)], table="/rows", columns=["b", "a"])
    assert list(compound.arrays) == ["b", "a"]
    np.testing.assert_array_equal(compound.arrays["b"], rows["b"])
    np.testing.assert_array_equal(compound.arrays["a"], rows["a"])


def test_parquet_strings_and_nested(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    nested = [[[1, 2], []], [], [[3]]]
    table = pa.table({"s": pa.array(["a", "bb", "c"]), "nn": pa.array(nested)})
    pq.write_table(table, path)
    (batch,) = iterate([str(path)])
    assert batch.arrays["s"].tolist() == ["a", "bb", "c"]
    assert len(batch.arrays["nn"]) == 3
    (batch,) = iterate([str(path)], columns=["nn"], library="ak")
    assert batch.arrays["nn"].to_list() == nested
    with pytest.raises(InvalidArgumentError, match="cannot pad column 'nn'"):
        next(iterate([str(path)], pad_to=3))


def test_later_file_without_the_column(tmp_path: Path) -> None:
    first = tmp_path / "a.parquet"
    second = tmp_path / "b.parquet"
    pq.write_table(pa.table({"x": [1, 2], "y": [3, 4]}), first)
    pq.write_table(pa.table({"x": [5]}), second)
    batches = iterate([str(first), str(second)], columns=["y"])
    with pytest.raises(NotFoundError, match=r"b\.parquet: table 'table' has no column 'y'"):
        list(batches)


def test_mixed_formats_are_refused(tmp_path: Path) -> None:
    paths = [
        *write_files(tmp_path, "parquet", sizes=(3,)),
        *write_files(tmp_path, "hdf5", sizes=(3,)),
    ]
    with pytest.raises(InvalidArgumentError, match="do not mix formats"):
        list(iterate(paths, columns=["x"]))


def test_not_a_data_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(InvalidArgumentError, match=r"notes\.txt: not a ROOT, Parquet or HDF5"):
        next(iterate([str(path)]))


def test_truncated_root_file_is_reported(tmp_path: Path) -> None:
    (path,) = write_files(tmp_path, "ttree", sizes=(TOTAL,))
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InvalidArgumentError, match=r"part0\.root: not a readable ROOT file"):
        list(iterate([path]))


def test_pad_errors(files: tuple[str, list[str]]) -> None:
    _, paths = files
    with pytest.raises(InvalidArgumentError, match="cannot pad column 'x'"):
        next(iterate(paths, columns=["x", "v"], pad_to={"x": 3}))
    with pytest.raises(NotFoundError, match="not a selected column"):
        next(iterate(paths, columns=["x"], pad_to={"v": 3}))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"step_size": 0},
        {"entry_start": -1},
        {"entry_start": 5, "entry_stop": 4},
        {"library": "pd"},
        {"pad_to": 0},
        {"pad_to": {"v": -2}},
        {"columns": []},
        {"columns": ["x", "x"]},
    ],
)
def test_argument_errors_are_immediate(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        iterate(["never-opened.root"], **kwargs)


def test_no_files() -> None:
    with pytest.raises(InvalidArgumentError, match="files is empty"):
        iterate([])


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nope\.parquet"):
        next(iterate([str(tmp_path / "nope.parquet")]))


def test_rntuple_nested_lists_and_records(tmp_path: Path) -> None:
    path = tmp_path / "nt.root"
    nested = ak.Array([[[1.0], [2.0]], [[3.0], [4.0]], [[5.0, 6.0]], []])
    record = ak.zip({"p": np.arange(4), "q": np.arange(4) * 0.5})
    with uproot.recreate(path) as f:
        f["nt"] = {"vv": nested, "rec": record}
    batches = list(iterate([str(path)], step_size=2))
    first = batches[0].arrays["vv"]  # a chunk that happens to be regular: still one per row
    assert (first.dtype, first.shape) == (object, (2,))
    assert [row for b in batches for row in b.arrays["vv"]] == nested.to_list()
    records = np.concatenate([b.arrays["rec"] for b in batches])
    np.testing.assert_array_equal(records["p"], np.arange(4))
    np.testing.assert_array_equal(records["q"], np.arange(4) * 0.5)
    batches = list(iterate([str(path)], columns=["vv"], step_size=3, library="ak"))
    assert all(isinstance(b.arrays["vv"], ak.Array) for b in batches)
    assert [row for b in batches for row in b.arrays["vv"].to_list()] == nested.to_list()
    with pytest.raises(InvalidArgumentError, match="cannot pad column 'vv'"):
        next(iterate([str(path)], pad_to=2))


@pytest.mark.parametrize("fmt", FORMATS)
def test_urls_are_opened_through_fsspec(fmt: str, tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    base = f"/luminary-test-{tmp_path.name}"
    urls = []
    try:
        for path in write_files(tmp_path, fmt, sizes=(60, 50)):
            target = f"{base}/{Path(path).name}"
            memory.pipe(target, Path(path).read_bytes())
            urls.append(f"memory://{target}")
        batches = list(iterate(urls, columns=["i", "v"], step_size=16, entry_start=5, pad_to=4))
        check_grid(batches, 5, TOTAL, 16)
        np.testing.assert_array_equal(np.concatenate([b.arrays["i"] for b in batches]), DATA.i[5:])
        clipped = sum(b.clipped["v"] for b in batches)
        assert clipped == int(np.maximum(DATA.counts(5) - 4, 0).sum())
    finally:
        memory.rm(base, recursive=True)
