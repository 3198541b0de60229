"""Walking, hashing, caching and verifying dataset files."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import blake3
import fsspec
import pytest

from luminary.datasets import _scan, _walk
from luminary.datasets._hashcache import HashCache
from luminary.datasets._manifest import FileEntry, ManifestWriter, read_manifest, sort_key
from luminary.datasets._scan import Problem, ScannedFile, scan, verify
from luminary.errors import (
    IntegrityError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
)

OLD_NS = time.time_ns() - 3600 * 1_000_000_000  # an hour ago: outside the racy window


def b3(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


def make(root: Path, files: dict[str, bytes], *, mtime_ns: int | None = OLD_NS) -> Path:
    """Write ``files`` under ``root`` with an old mtime (so the hash cache keeps them)."""
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if mtime_ns is not None:
            os.utime(path, ns=(mtime_ns, mtime_ns))
    return root


def expected(files: dict[str, bytes], prefix: str = "") -> list[FileEntry]:
    entries = [FileEntry(prefix + p, len(d), b3(d)) for p, d in files.items()]
    return sorted(entries, key=lambda e: sort_key(e.path))


def entries(scanned: Iterator[ScannedFile] | list[ScannedFile]) -> list[FileEntry]:
    return [s.entry for s in scanned]


TREE = {
    "a.txt": b"alpha",
    "a/b/c.bin": b"\x00\x01\x02" * 1000,
    "a/empty": b"",
    "a-b": b"dash sorts before slash as text, after it as a component",
    ".hidden/x": b"hidden files are data too",
    "données/événement 1.root": b"unicode names",
    "日本/データ.h5": b"\xff" * 10,
    "Z": b"capitals first",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make(tmp_path / "data", TREE)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[HashCache]:
    with HashCache(tmp_path / "home" / "hashcache.db") as c:
        yield c


class HashSpy:
    """Wraps ``_scan._hash_local`` and records which files were opened and hashed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()
        real = _scan._hash_local

        def spy(path: str, size: int, progress: _scan._Progress) -> tuple[str, int]:
            with self._lock:
                self.calls.append(path)
            if fail:
                raise AssertionError(f"{path} was hashed although it is in the cache")
            return real(path, size, progress)

        monkeypatch.setattr(_scan, "_hash_local", spy)


# -- the walk ----------------------------------------------------------------------------------


def test_scan_a_tree_gives_exact_entries_in_manifest_order(tree: Path) -> None:
    scanned = list(scan([tree], cache=None))
    assert entries(scanned) == expected(TREE)
    assert [s.entry.path for s in scanned] == sorted(TREE, key=sort_key)
    assert all(not s.cached for s in scanned)
    assert {s.source for s in scanned} == {str(tree / p) for p in TREE}
    # ready for the writer: it accepts the order as is
    with open(os.devnull, "wb") as out, ManifestWriter(out) as writer:
        writer.write_all(entries(scanned))
    assert writer.count == len(TREE)


@pytest.mark.parametrize("workers", [1, 3])
def test_large_files_are_hashed_in_chunks(tmp_path: Path, workers: int) -> None:
    big = os.urandom(_scan._SMALL + 12345)
    huge = os.urandom(2 * _scan._CHUNK + 7)
    files = {"big": big, "huge": huge, "small": b"s"}
    root = make(tmp_path / "d", files)
    assert entries(scan([root], cache=None, workers=workers)) == expected(files)


def test_order_is_component_wise(tmp_path: Path) -> None:
    names = ["a-b", "a/b", "a.txt", "a b", "B", "a/b.c/d", "a/b-c", "ä", "a0", "_x"]
    files = {n: n.encode() for n in names}
    root = make(tmp_path / "d", files)
    paths = [s.entry.path for s in scan([root], cache=None, workers=2)]
    assert paths == sorted(names, key=sort_key)
    assert paths.index("a/b") < paths.index("a-b")  # not plain string order


def test_one_file_source_is_named_by_its_basename(tmp_path: Path) -> None:
    root = make(tmp_path / "d", {"sub/events.root": b"evts"})
    (only,) = scan([root / "sub" / "events.root"], cache=None)
    assert only.entry == FileEntry("events.root", 4, b3(b"evts"))
    assert only.source == str(root / "sub" / "events.root")


def test_several_sources_each_under_its_basename(tmp_path: Path) -> None:
    make(tmp_path / "x" / "train", {"a": b"1", "sub/b": b"22"})
    make(tmp_path / "y" / "test", {"a": b"333"})
    make(tmp_path / "z", {"README": b"read me"})
    sources = [tmp_path / "y" / "test", str(tmp_path / "z" / "README"), tmp_path / "x" / "train"]
    got = entries(scan(sources, cache=None))
    files = {"README": b"read me", "test/a": b"333", "train/a": b"1", "train/sub/b": b"22"}
    assert got == expected(files)


def test_name_clash_between_sources_is_an_error_at_the_call(tmp_path: Path) -> None:
    make(tmp_path / "run1" / "data", {"a": b"1"})
    make(tmp_path / "run2" / "data", {"a": b"2"})
    with pytest.raises(InvalidArgumentError, match="both be named 'data'"):
        scan([tmp_path / "run1" / "data", tmp_path / "run2" / "data"], cache=None)
    with pytest.raises(InvalidArgumentError, match="both be named 'a'"):
        scan([tmp_path / "run1" / "data" / "a", tmp_path / "run2" / "data" / "a"], cache=None)


def test_bad_sources(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        scan([tmp_path / "nope"], cache=None)
    with pytest.raises(InvalidArgumentError, match="one or more"):
        scan([], cache=None)
    with pytest.raises(InvalidArgumentError, match="list"):
        scan(str(tmp_path), cache=None)  # a bare string, not a list of one
    with pytest.raises(InvalidArgumentError, match="workers"):
        scan([tmp_path], cache=None, workers=0)


def test_empty_folder_gives_no_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert list(scan([tmp_path / "empty"], cache=None)) == []


def test_symlinks_fifos_and_dangling_links(tmp_path: Path) -> None:
    root = make(tmp_path / "d", {"real/file": b"content"})
    outside = make(tmp_path / "outside", {"f": b"elsewhere"})
    (root / "link-to-file").symlink_to(root / "real" / "file")
    (root / "link-to-dir").symlink_to(outside)
    os.mkfifo(root / "fifo")
    got = entries(scan([root], cache=None))
    # the file link is followed (content of its target), the folder link and the FIFO skipped
    assert got == expected({"link-to-file": b"content", "real/file": b"content"})
    # a source that is itself a link to a folder is followed
    assert entries(scan([root / "link-to-dir"], cache=None)) == expected({"f": b"elsewhere"})

    (root / "dangling").symlink_to(root / "nowhere")
    with pytest.raises(InvalidStateError, match=r"dangling.*does not exist"):
        list(scan([root], cache=None))


def test_invalid_file_names_are_errors(tmp_path: Path) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "tab\tname").write_bytes(b"x")
    with pytest.raises(InvalidArgumentError, match="tab or a newline"):
        list(scan([root], cache=None))
    (root / "tab\tname").unlink()
    open(os.path.join(os.fsencode(root), b"latin1-\xe9"), "wb").close()  # not UTF-8
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        list(scan([root], cache=None))


# -- the hash cache -------------------------------------------------------------------------


def test_second_scan_opens_no_file(
    tree: Path, cache: HashCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = list(scan([tree], cache=cache))
    assert not any(s.cached for s in first)

    HashSpy(monkeypatch, fail=True)  # any hashing now raises
    second = list(scan([tree], cache=cache, workers=2))
    assert all(s.cached for s in second)
    assert second == [ScannedFile(s.entry, s.source, True) for s in first]


def test_cache_survives_reopening(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "hc.db"
    with HashCache(db) as c:
        list(scan([tree], cache=c))
    HashSpy(monkeypatch, fail=True)
    with HashCache(db) as c:
        assert all(s.cached for s in scan([tree], cache=c))


def test_only_changed_files_are_rehashed(
    tree: Path, cache: HashCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    list(scan([tree], cache=cache))
    # same size, other bytes, a new (still old enough) mtime
    make(tree, {"a/b/c.bin": b"\x09\x01\x02" * 1000}, mtime_ns=OLD_NS + 10**9)
    # touched only: same bytes, new mtime
    os.utime(tree / "Z", ns=(OLD_NS + 2 * 10**9, OLD_NS + 2 * 10**9))
    # replaced by a new file (new inode), same size, same mtime
    os.replace(make(tree / "tmp", {"a.txt": b"ALPHA"}) / "a.txt", tree / "a.txt")

    spy = HashSpy(monkeypatch)
    scanned = list(scan([tree], cache=cache))
    assert sorted(spy.calls) == sorted(str(tree / p) for p in ("a/b/c.bin", "Z", "a.txt"))
    now = dict(TREE, **{"a/b/c.bin": b"\x09\x01\x02" * 1000, "a.txt": b"ALPHA"})
    assert entries(scanned) == expected(now)
    assert {s.entry.path for s in scanned if not s.cached} == {"a/b/c.bin", "Z", "a.txt"}

    spy.calls.clear()
    assert all(s.cached for s in scan([tree], cache=cache))
    assert spy.calls == []


def test_recently_modified_files_are_hashed_but_not_cached(
    tmp_path: Path, cache: HashCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path / "d", {"old": b"o"})
    make(root, {"fresh": b"f"}, mtime_ns=None)  # mtime: now, inside the racy window
    monkeypatch.setattr(_scan, "_RACY_NS", 3600 * 10**9)  # make "recent" cover a slow machine
    monkeypatch.setattr(_scan, "_RACY_COARSE_NS", 3600 * 10**9)
    os.utime(root / "old", ns=(OLD_NS - 3600 * 10**9,) * 2)
    list(scan([root], cache=cache))
    second = {s.entry.path: s.cached for s in scan([root], cache=cache)}
    assert second == {"fresh": False, "old": True}


def test_file_changing_while_hashed_is_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make(tmp_path / "d", {"f": b"before"})
    real = _scan._hash_local
    calls: list[str] = []

    def hash_then_modify(path: str, size: int, progress: _scan._Progress) -> tuple[str, int]:
        result = real(path, size, progress)
        if not calls:  # a writer strikes between our read and our second stat
            make(root, {"f": b"after!!"}, mtime_ns=OLD_NS + 5)
        calls.append(path)
        return result

    monkeypatch.setattr(_scan, "_hash_local", hash_then_modify)
    (only,) = scan([root], cache=None)
    assert only.entry == FileEntry("f", 7, b3(b"after!!"))
    assert len(calls) == 2


def test_hash_cache_round_trip_and_misses(tmp_path: Path) -> None:
    with HashCache(tmp_path / "c.db") as c:
        big_inode = 2**64 - 5  # some file systems use inode numbers above 2**63
        c.store_many([(("/d/a", 1, 2, 3), "aa" * 32), (("/d/b", 4, 5, big_inode), "bb" * 32)])
        keys = [("/d/a", 1, 2, 3), ("/d/b", 4, 5, big_inode), ("/d/a", 1, 2, 4), ("/d/c", 0, 0, 0)]
        assert c.lookup_many(keys) == {keys[0]: "aa" * 32, keys[1]: "bb" * 32}
        # one row per path: a new key replaces the old one
        c.store_many([(("/d/a", 9, 9, 9), "cc" * 32)])
        assert c.lookup_many([("/d/a", 1, 2, 3), ("/d/a", 9, 9, 9)]) == {
            ("/d/a", 9, 9, 9): "cc" * 32
        }
        # more keys than one statement takes; names that are not UTF-8
        many = [(f"/many/{i}\udcff", i, i, i) for i in range(1234)]
        c.store_many([(k, f"{k[1]:064x}") for k in many])
        found = c.lookup_many([*many, ("/many/x", 1, 1, 1)])
        assert found == {k: f"{k[1]:064x}" for k in many}
        assert c.lookup_many([]) == {}
    with pytest.raises(InvalidStateError, match="closed"):
        c.lookup_many(keys)


def test_hash_cache_is_shared_by_threads_and_connections(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    caches = [HashCache(path), HashCache(path)]  # two connections, as two processes would have
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            cache = caches[n % 2]
            for i in range(30):
                key = (f"/t{n}/{i}", i, i, i)
                cache.store_many([(key, f"{i:064x}")])
                assert cache.lookup_many([key]) == {key: f"{i:064x}"}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in caches:
        c.close()
    assert errors == []
    with HashCache(path) as c:
        assert (
            len(c.lookup_many([(f"/t{n}/{i}", i, i, i) for n in range(6) for i in range(30)]))
            == 180
        )


def test_damaged_hash_cache_says_to_delete_it(tmp_path: Path) -> None:
    path = tmp_path / "hc.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(IntegrityError, match="delete the file"):
        HashCache(path)


def test_cache_is_flushed_when_a_scan_stops_early(
    tree: Path, cache: HashCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    it = scan([tree], cache=cache, workers=1)
    first = next(it)
    it.close()  # e.g. the caller hit an error and stopped
    HashSpy(monkeypatch)
    again = scan([tree], cache=cache)
    assert next(again) == ScannedFile(first.entry, first.source, True)
    again.close()


# -- progress -----------------------------------------------------------------------------------


def test_progress_ends_with_the_totals(tree: Path, cache: HashCache) -> None:
    for _ in range(2):  # hashed, then cached
        calls: list[tuple[int, int]] = []
        list(scan([tree], cache=cache, on_progress=lambda b, f, c=calls: c.append((b, f))))
        assert calls[-1] == (sum(len(d) for d in TREE.values()), len(TREE))
        assert calls == sorted(calls)


# -- verify -----------------------------------------------------------------------------------


def test_verify_finds_flipped_byte_missing_file_and_size_change(tree: Path) -> None:
    manifest = entries(scan([tree], cache=None))
    assert list(verify(manifest, tree)) == []

    data = bytearray(TREE["a/b/c.bin"])
    data[1500] ^= 0x01
    (tree / "a/b/c.bin").write_bytes(bytes(data))
    (tree / "données/événement 1.root").unlink()
    (tree / "a.txt").write_bytes(b"alpha and more")
    (tree / "Z").unlink()
    (tree / "Z").mkdir()  # a folder where a file was

    by_path = {e.path: e for e in manifest}
    calls: list[tuple[int, int]] = []
    problems = list(
        verify(manifest, str(tree), workers=2, on_progress=lambda b, f: calls.append((b, f)))
    )
    assert problems == [
        Problem("missing", "Z", by_path["Z"], None),
        Problem("hash", "a/b/c.bin", by_path["a/b/c.bin"], 3000),
        Problem("size", "a.txt", by_path["a.txt"], 14),
        Problem("missing", "données/événement 1.root", by_path["données/événement 1.root"], None),
    ]
    assert calls[-1] == (sum(e.size for e in manifest), len(manifest))


def test_verify_rejects_paths_that_escape_the_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not valid"):
        list(verify([FileEntry("../secret", 1, "a" * 64)], tmp_path))


# -- fsspec sources ----------------------------------------------------------------------------


@pytest.fixture
def memfs() -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
    fs = fsspec.filesystem("memory")
    root = f"/lm-test-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_filesystem_source(
    memfs: tuple[fsspec.AbstractFileSystem, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, root = memfs
    files = dict(TREE, **{"big.bin": os.urandom(_scan._CHUNK + 99)})
    for rel, data in files.items():
        fs.pipe(f"{root}/data/{rel}", data)
    url = f"memory://{root}/data"
    monkeypatch.setattr(_scan, "_hash_local", None)  # remote files never take the local path

    scanned = list(scan([url], cache=None, workers=3))
    assert entries(scanned) == expected(files)
    assert scanned[0].source == f"memory://{root}/data/{scanned[0].entry.path}"

    # one remote file, and a remote file next to a remote folder
    (one,) = scan([f"{url}/a.txt"], cache=None)
    assert one.entry == FileEntry("a.txt", 5, b3(b"alpha"))
    both = entries(scan([f"{url}/a", f"{url}/a.txt"], cache=None))
    assert [e.path for e in both] == ["a/b/c.bin", "a/empty", "a.txt"]

    with pytest.raises(NotFoundError):
        scan([f"memory://{root}/nope"], cache=None)


def test_memory_filesystem_without_stamps_is_never_cached(
    memfs: tuple[fsspec.AbstractFileSystem, str], cache: HashCache
) -> None:
    fs, root = memfs
    fs.pipe(f"{root}/d/f", b"one")
    list(scan([f"memory://{root}/d"], cache=cache))
    fs.pipe(f"{root}/d/f", b"two")  # same size; the memory file system reports no mtime or ETag
    (again,) = scan([f"memory://{root}/d"], cache=cache)
    assert not again.cached
    assert again.entry.digest == b3(b"two")


def test_remote_cache_keys_from_mtime_and_etag(
    memfs: tuple[fsspec.AbstractFileSystem, str],
    cache: HashCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fs, root = memfs
    fs.pipe(f"{root}/d/f", b"object")
    stamps = {"LastModified": datetime(2024, 5, 1, tzinfo=UTC), "ETag": '"abc"'}
    real_find = type(fs).find

    def find(self: fsspec.AbstractFileSystem, path: str, **kw: object) -> object:
        found = real_find(self, path, **kw)
        if not kw.get("detail"):
            return found
        return {name: dict(info, **stamps) for name, info in found.items()}

    monkeypatch.setattr(type(fs), "find", find)
    url = f"memory://{root}/d"
    (first,) = scan([url], cache=cache)
    (second,) = scan([url], cache=cache)
    assert (first.cached, second.cached) == (False, True)
    stamps["ETag"] = '"def"'  # new content behind the same name and time
    (third,) = scan([url], cache=cache)
    assert not third.cached


def test_remote_stamp_fields() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ns = int(when.timestamp()) * 10**9
    assert _walk._remote_stamp({}) == (0, 0)
    assert _walk._remote_stamp({"mtime": when.timestamp()}) == (ns, 0)
    assert _walk._remote_stamp({"LastModified": when})[0] == ns
    assert _walk._remote_stamp({"last_modified": "2024-05-01T12:00:00Z"})[0] == ns
    mtime, tag = _walk._remote_stamp({"ETag": '"d41d8cd98f00b204e9800998ecf8427e"'})
    assert mtime == 0
    assert 0 < tag < 2**63
    assert _walk._remote_stamp({"ETag": '"other"'})[1] != tag


def test_verify_a_remote_root(memfs: tuple[fsspec.AbstractFileSystem, str]) -> None:
    fs, root = memfs
    fs.pipe(f"{root}/d/x", b"12345")
    fs.pipe(f"{root}/d/y", b"abc")
    manifest = entries(scan([f"memory://{root}/d"], cache=None))
    fs.pipe(f"{root}/d/y", b"abd")
    fs.rm(f"{root}/d/x")
    problems = list(verify(manifest, f"memory://{root}/d"))
    assert [(p.kind, p.path) for p in problems] == [("missing", "x"), ("hash", "y")]


def test_manifest_from_a_scan_round_trips(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    with out.open("wb") as fh, ManifestWriter(fh) as writer:
        for s in scan([tree], cache=None):
            writer.write(s.entry)
    with out.open("rb") as fh:
        assert list(read_manifest(fh)) == expected(TREE)


@pytest.mark.parametrize(
    ("source", "remote"),
    [
        ("s3://bucket/prefix", True),
        ("root://eos.cern.ch//eos/cms/data", True),
        ("simplecache::s3://bucket/key", True),
        ("memory://x", True),
        ("file:///data/x", False),
        ("/data/x", False),
        ("relative/x", False),
        ("./odd://name", False),
    ],
)
def test_which_sources_are_remote(source: str, remote: bool) -> None:
    assert _walk.is_remote(source) is remote


def test_file_url_is_a_local_source(tree: Path) -> None:
    assert entries(scan([f"file://{tree}"], cache=None)) == expected(TREE)
