"""The streamed manifest: format, order, validation, corruption, diff, bounded memory."""

from __future__ import annotations

import io
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luminary.datasets._manifest import (
    MANIFEST_HEADER,
    Change,
    DiffSummary,
    DiffTally,
    FileEntry,
    ManifestWriter,
    diff,
    diff_manifests,
    read_manifest,
    sort_key,
    summarize,
)
from luminary.errors import IntegrityError, InvalidArgumentError, InvalidStateError


def D(n: int) -> str:
    """A valid, distinct digest."""
    return f"{n:064x}"


def E(path: str, size: int = 1, n: int = 0) -> FileEntry:
    return FileEntry(path, size, D(n))


def write(entries: list[FileEntry]) -> tuple[bytes, ManifestWriter]:
    buf = io.BytesIO()
    with ManifestWriter(buf) as writer:
        for entry in entries:
            writer.write(entry)
    return buf.getvalue(), writer


def read(data: bytes) -> list[FileEntry]:
    return list(read_manifest(io.BytesIO(data)))


# -- format and round trip -----------------------------------------------------------------


def test_round_trip_exact_bytes_digest_and_counts() -> None:
    entries = [
        E("a/b", 0, 1),
        E("a-b", 10, 2),
        E("a.txt", 3, 3),
        E("données/événement 1.root", 12345678901, 4),
        E(".hidden", 5, 5),
    ]
    entries.sort(key=lambda e: sort_key(e.path))
    data, writer = write(entries)
    assert data.startswith(MANIFEST_HEADER)
    assert data.splitlines(keepends=True)[1:] == [
        f"{e.digest}\t{e.size}\t{e.path}\n".encode() for e in entries
    ]
    assert read(data) == entries
    assert writer.count == 5
    assert writer.total_bytes == sum(e.size for e in entries)
    assert writer.size == len(data)
    assert writer.digest == blake3.blake3(data).hexdigest()


def test_empty_manifest_is_just_the_header() -> None:
    data, writer = write([])
    assert data == MANIFEST_HEADER
    assert read(data) == []
    assert (writer.count, writer.total_bytes) == (0, 0)


def test_large_manifest_flushes_in_pieces_and_reads_back() -> None:
    entries = [E(f"dir{i // 100:03d}/file{i % 100:03d}", i, i) for i in range(30_000)]
    data, writer = write(entries)
    assert len(data) > 2 << 20  # more than one internal flush
    assert read(data) == entries
    assert writer.digest == blake3.blake3(data).hexdigest()


def test_sort_key_is_component_wise() -> None:
    paths = ["a.txt", "a/b/c", "a-b", "a/b", "B", "a", "a/b.c", "é"]
    assert sorted(paths, key=sort_key) == ["B", "a", "a/b", "a/b/c", "a/b.c", "a-b", "a.txt", "é"]
    assert sort_key("x/y/z") == ("x", "y", "z")


# -- order and validation in the writer ------------------------------------------------------


def test_writer_accepts_component_order_not_string_order() -> None:
    write([E("a/b"), E("a-b")])  # "a" < "a-b" component-wise, although "a-b" < "a/b" as text
    with pytest.raises(InvalidArgumentError, match="after 'a-b'"):
        write([E("a-b"), E("a/b")])


def test_writer_rejects_duplicates_and_disorder() -> None:
    with pytest.raises(InvalidArgumentError, match="twice"):
        write([E("x"), E("x", 2, 2)])
    with pytest.raises(InvalidArgumentError, match="after 'b'"):
        write([E("a"), E("b"), E("a/c")])


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (E("tab\there"), "tab or a newline"),
        (E("new\nline"), "tab or a newline"),
        (E("../up"), "not valid"),
        (E("/abs"), "not valid"),
        (E("a//b"), "not valid"),
        (E("a/./b"), "not valid"),
        (E("back\\slash"), "not valid"),
        (E(""), "not valid"),
        (FileEntry("ok", -1, D(1)), "non-negative"),
        (FileEntry("ok", True, D(1)), "non-negative"),
        (FileEntry("ok", 1, "ABC"), "64 lower-case hex"),
        (FileEntry("ok", 1, "AB" * 32), "64 lower-case hex"),
        (FileEntry("bad\udcff", 1, D(1)), "UTF-8"),
        (E("esc\x1b[2Jape"), "control character"),
        (E("bell\x07"), "control character"),
        (E("d/" + "x" * 256), "256 bytes long"),
        (E("é" * 130), "260 bytes long"),
    ],
)
def test_writer_validates_entries(entry: FileEntry, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        write([entry])


def test_writer_state() -> None:
    buf = io.BytesIO()
    writer = ManifestWriter(buf)
    with pytest.raises(InvalidStateError, match="close"):
        _ = writer.digest
    writer.write(E("a"))
    writer.close()
    writer.close()  # idempotent
    assert writer.digest == blake3.blake3(buf.getvalue()).hexdigest()
    with pytest.raises(InvalidStateError, match="closed"):
        writer.write(E("b"))
    assert not buf.closed  # the stream belongs to the caller


def test_writer_drops_the_tail_on_an_exception() -> None:
    buf = io.BytesIO()
    writer = ManifestWriter(buf)

    def fail() -> None:
        with writer:
            writer.write(E("a"))
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert buf.getvalue() == b""
    with pytest.raises(InvalidStateError):
        _ = writer.digest


# -- corruption ------------------------------------------------------------------------------

GOOD = MANIFEST_HEADER + f"{D(1)}\t1\ta\n{D(2)}\t2\tb\n".encode()


@pytest.mark.parametrize(
    ("data", "line", "why"),
    [
        (b"", 1, "header"),
        (b"#luminary-manifest 2\n", 1, "header"),
        (b"not a manifest", 1, "header"),
        (GOOD + f"{D(3)[:-1]}\t3\tc\n".encode(), 4, "bad digest"),
        (GOOD + f"{'AB' * 32}\t3\tc\n".encode(), 4, "bad digest"),
        (GOOD + f"{D(3)}\t-3\tc\n".encode(), 4, "bad size"),
        (GOOD + f"{D(3)}\t03\tc\n".encode(), 4, "bad size"),
        (GOOD + f"{D(3)}\t\tc\n".encode(), 4, "bad size"),
        (GOOD + f"{D(3)} 3 c\n".encode(), 4, "expected digest"),
        (GOOD + f"{D(3)}\t3\n".encode(), 4, "expected digest"),
        (GOOD + f"{D(3)}\t3\tc/../d\n".encode(), 4, "invalid path"),
        (GOOD + f"{D(3)}\t3\tc\td\n".encode(), 4, "invalid path"),
        (GOOD + D(3).encode() + b"\t3\t\xff\xfe\n", 4, "not UTF-8"),
        (GOOD + f"{D(3)}\t3\tc".encode(), 4, "no newline"),
        (GOOD + f"{D(3)}\t3\tb\n".encode(), 4, "repeated"),
        (GOOD + f"{D(3)}\t3\ta/z\n".encode(), 4, "out of order"),
        (MANIFEST_HEADER + f"{D(3)}\t3\tc\n".encode() + b"\n", 3, "expected digest"),
    ],
)
def test_corrupt_manifest_names_the_line(data: bytes, line: int, why: str) -> None:
    entries = read_manifest(io.BytesIO(data), name="jets@3")
    with pytest.raises(IntegrityError, match=f"jets@3 is corrupt at line {line}: .*{why}"):
        list(entries)


def test_corrupt_line_after_good_ones_yields_the_good_ones_first() -> None:
    data = GOOD + b"garbage\n"
    it = read_manifest(io.BytesIO(data))
    assert next(it) == E("a", 1, 1)
    assert next(it) == E("b", 2, 2)
    with pytest.raises(IntegrityError, match="line 4"):
        next(it)


# -- diff ------------------------------------------------------------------------------------


def test_diff_hand_made() -> None:
    old = [E("a", 1, 1), E("b/x", 10, 2), E("b/y", 20, 3), E("c", 5, 4), E("z", 7, 9)]
    new = [E("a", 1, 1), E("b/x", 11, 5), E("b/z", 30, 6), E("c", 5, 4), E("d", 2, 7)]
    tally = DiffTally()
    changes = list(diff(old, new, tally=tally))
    assert changes == [
        Change("modified", "b/x", old[1], new[1]),
        Change("removed", "b/y", old[2], None),
        Change("added", "b/z", None, new[2]),
        Change("added", "d", None, new[4]),
        Change("removed", "z", old[4], None),
    ]
    expected = DiffSummary(
        added=2, removed=2, modified=1, unchanged=2, bytes_added=11 + 30 + 2, bytes_removed=37
    )
    assert tally.summary() == expected
    assert summarize(old, new) == expected
    assert expected.changed == 5
    assert expected.to_dict()["unchanged"] == 2


def test_diff_edge_cases() -> None:
    some = [E("a", 1, 1), E("b", 2, 2)]
    assert list(diff([], [])) == []
    assert list(diff(some, some)) == []
    assert [c.kind for c in diff([], some)] == ["added", "added"]
    assert [c.kind for c in diff(some, [])] == ["removed", "removed"]
    assert summarize(some, some) == DiffSummary(unchanged=2)
    # same digest, other size (cannot happen with real hashes, still a change)
    assert [c.kind for c in diff([E("a", 1, 1)], [E("a", 2, 1)])] == ["modified"]
    # a folder replaced by a file of the same name
    assert [(c.kind, c.path) for c in diff([E("a/b")], [E("a")])] == [
        ("added", "a"),
        ("removed", "a/b"),
    ]


def test_diff_manifests_checks_the_lines_it_parses() -> None:
    good = write([E("a", 1, 1), E("b", 2, 2), E("c", 3, 3)])[0]
    assert list(diff_manifests(io.BytesIO(good), io.BytesIO(good))) == []
    # a corrupt line that differs from the other side is parsed, and named by its line number
    bad = good.replace(b"\t2\tb\n", b"\t-2\tb\n")
    with pytest.raises(IntegrityError, match="new manifest is corrupt at line 3: bad size"):
        list(diff_manifests(io.BytesIO(good), io.BytesIO(bad)))
    # an identical but truncated last line is still caught
    with pytest.raises(IntegrityError, match="line 4: the last line has no newline"):
        list(diff_manifests(io.BytesIO(good[:-1]), io.BytesIO(good[:-1])))
    # a wrong header on either side
    with pytest.raises(IntegrityError, match="old manifest is corrupt at line 1"):
        list(diff_manifests(io.BytesIO(b"x\n"), io.BytesIO(good)))
    # disorder among the lines it parses
    disordered = MANIFEST_HEADER + f"{D(5)}\t1\tz\n{D(6)}\t1\ty\n".encode()
    with pytest.raises(IntegrityError, match="line 3: path 'y' is out of order"):
        list(diff_manifests(io.BytesIO(good), io.BytesIO(disordered)))


def test_diff_rejects_unsorted_input() -> None:
    with pytest.raises(InvalidArgumentError, match="new manifest lists 'a' after 'b'"):
        list(diff([E("a")], [E("b"), E("a")]))
    with pytest.raises(InvalidArgumentError, match="old manifest lists 'a' twice"):
        list(diff([E("a"), E("a")], []))


_components = st.sampled_from(["a", "b", "a.txt", "a-b", "B", "é", "z z", ".h"])
_paths = st.lists(_components, min_size=1, max_size=3).map("/".join)
_files = st.dictionaries(_paths, st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=25)


def _entries(files: dict[str, tuple[int, int]]) -> list[FileEntry]:
    return [E(p, size, n) for p, (size, n) in sorted(files.items(), key=lambda kv: sort_key(kv[0]))]


_any_component = st.text(
    st.characters(exclude_characters="/\t\n\\\x00", exclude_categories=("Cs",)), min_size=1
).filter(lambda c: c not in (".", ".."))


@given(st.lists(st.lists(_any_component, min_size=1, max_size=4).map("/".join), max_size=30))
def test_internal_order_key_agrees_with_sort_key(paths: list[str]) -> None:
    """The writer, reader and diff order by ``path.replace("/", "\\0")``: the same order."""
    assert sorted(paths, key=sort_key) == sorted(paths, key=lambda p: p.replace("/", "\0"))


@settings(max_examples=300, deadline=None)
@given(_files, _files)
def test_diff_equals_set_semantics(
    old: dict[str, tuple[int, int]], new: dict[str, tuple[int, int]]
) -> None:
    a, b = _entries(old), _entries(new)
    # through the file format too
    a_read, b_read = read(write(a)[0]), read(write(b)[0])
    tally = DiffTally()
    changes = list(diff(a_read, b_read, tally=tally))

    assert {c.path for c in changes if c.kind == "added"} == new.keys() - old.keys()
    assert {c.path for c in changes if c.kind == "removed"} == old.keys() - new.keys()
    modified = {p for p in old.keys() & new.keys() if old[p] != new[p]}
    assert {c.path for c in changes if c.kind == "modified"} == modified
    assert [sort_key(c.path) for c in changes] == sorted(sort_key(c.path) for c in changes)
    for c in changes:
        assert c.old == (E(c.path, *old[c.path]) if c.path in old else None)
        assert c.new == (E(c.path, *new[c.path]) if c.path in new else None)
    # the file diff, which skips identical lines, agrees with the entry diff
    file_tally = DiffTally()
    file_changes = list(
        diff_manifests(io.BytesIO(write(a)[0]), io.BytesIO(write(b)[0]), tally=file_tally)
    )
    assert file_changes == changes
    assert file_tally.summary() == tally.summary()
    s = tally.summary()
    assert s.unchanged == len(old.keys() & new.keys()) - len(modified)
    assert s.bytes_added == sum(new[p][0] for p in (new.keys() - old.keys()) | modified)
    assert s.bytes_removed == sum(old[p][0] for p in (old.keys() - new.keys()) | modified)


# -- a million files in bounded memory --------------------------------------------------------

N = 1_000_000


def _million(modified: bool) -> Iterator[FileEntry]:
    """1,000,000 entries in order; the modified copy changes every 1000th digest, drops every
    1000th file (offset 1) and adds a file at the end of every folder."""
    for i in range(N):
        folder, k = divmod(i, 1000)
        path = f"run{folder:04d}/event{k:03d}.root"
        if not modified:
            yield FileEntry(path, 1000 + k, D(i))
            continue
        if k == 1:
            continue
        yield FileEntry(path, 1000 + k, D(i + N) if k == 500 else D(i))
        if k == 999:
            yield FileEntry(f"run{folder:04d}/extra.root", 7, D(i + 2 * N))


def _million_manifests(folder: Path) -> tuple[Path, Path]:
    paths = []
    for modified in (False, True):
        path = folder / f"m{int(modified)}.manifest"
        with path.open("wb") as fh, ManifestWriter(fh) as writer:
            for entry in _million(modified):
                writer.write(entry)
        assert writer.count == N
        paths.append(path)
    return paths[0], paths[1]


@pytest.mark.slow
def test_million_entry_manifest_diffs_in_bounded_memory(tmp_path: Path) -> None:
    old, new = _million_manifests(tmp_path)
    expected = {"added": 1000, "removed": 1000, "modified": 1000}

    # the file diff, under tracemalloc: every allocation during the diff is counted
    with old.open("rb") as fa, new.open("rb") as fb:
        tracemalloc.start()
        try:
            tally = DiffTally()
            kinds = dict.fromkeys(expected, 0)
            for change in diff_manifests(fa, fb, tally=tally):
                kinds[change.kind] += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert kinds == expected
    summary = DiffSummary(
        added=1000,
        removed=1000,
        modified=1000,
        unchanged=N - 2000,
        bytes_added=1000 * 7 + 1000 * 1500,  # the extra files, the new version of event500
        bytes_removed=1000 * 1001 + 1000 * 1500,  # event001, the old version of event500
    )
    assert tally.summary() == summary
    assert peak < 20 * 1024 * 1024, f"diff of two 1M-entry manifests peaked at {peak} bytes"

    # the entry diff, which parses every line: the number of live Python objects stays flat
    # (sampled as it streams; tracemalloc would make this part take minutes)
    samples: list[int] = []

    def sampled(entries: Iterator[FileEntry]) -> Iterator[FileEntry]:
        for i, entry in enumerate(entries):
            if i % 50_000 == 0:
                samples.append(sys.getallocatedblocks())
            yield entry

    with old.open("rb") as fa, new.open("rb") as fb:
        tally = DiffTally()
        kinds = dict.fromkeys(expected, 0)
        for change in diff(sampled(read_manifest(fa)), read_manifest(fb), tally=tally):
            kinds[change.kind] += 1
    assert kinds == expected
    assert tally.summary() == summary
    growth = max(samples) - samples[1]
    assert growth < 50_000, f"live objects grew by {growth} blocks while diffing"
