"""The dataset manifest: every file's relative path, size and BLAKE3, as a sorted text stream.

Format (UTF-8, one entry a line, ``\\n`` line ends, no trailing data)::

    #luminary-manifest 1
    <64 lower-case hex digest>\\t<size in decimal, no leading zeros>\\t<relative path>
    ...

Entries are in strictly increasing :func:`sort_key` order: paths compared component by
component (``path.split("/")``, each component by code point), so a folder's files are
contiguous and a manifest is exactly the order of a recursive walk that sorts each folder by
name. Two manifests of the same files are byte-identical, so the BLAKE3 of the manifest bytes
(:attr:`ManifestWriter.digest`) identifies the content of a dataset version.

Internally the same order is had faster by comparing ``path.replace("/", "\\0")`` as one
string: NUL, which no path may contain, sorts below every other character, so it ends a
component exactly as the end of a tuple element does.

Everything here streams: :class:`ManifestWriter` writes entries as they arrive,
:func:`read_manifest` yields them one at a time, and :func:`diff` merge-joins two sorted streams
in constant memory, so a manifest of millions of files never sits in a Python list.

Paths are validated where they cross a boundary (the writer, the reader), not in
:class:`FileEntry` itself, which stays a cheap value: relative, ``/``-separated, no empty,
``.`` or ``..`` component, no backslash, NUL, tab or newline, at most 1024 characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, Literal

from luminary.errors import IntegrityError, InvalidArgumentError, InvalidStateError
from luminary.names import check_relative_path

__all__ = [
    "MANIFEST_HEADER",
    "Change",
    "DiffSummary",
    "DiffTally",
    "FileEntry",
    "ManifestWriter",
    "check_entry",
    "check_entry_path",
    "diff",
    "diff_manifests",
    "read_manifest",
    "sort_key",
    "summarize",
]

MANIFEST_HEADER = b"#luminary-manifest 1\n"

_HEX = "0123456789abcdef"
_HEX_BYTES = _HEX.encode()
_SIZE = re.compile(rb"0|[1-9][0-9]*")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FLUSH_AT = 1 << 20  # bytes buffered by the writer before one write() to the stream


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a dataset: relative ``/``-separated path, size in bytes, BLAKE3 hex digest."""

    path: str
    size: int
    digest: str


def sort_key(path: str) -> tuple[str, ...]:
    """Manifest order: component-wise, so ``a/b`` sorts before ``a.txt`` (``"a" < "a.txt"``)."""
    return tuple(path.split("/"))


def _bad_path(path: str) -> bool:
    """Whether ``path`` breaks the manifest path rules (no allocation in the common case)."""
    if (
        not path
        or len(path) > 1024
        or path[0] == "/"
        or path[-1] == "/"
        or "//" in path
        or "\\" in path
        or "\x00" in path
        or "\t" in path
        or "\n" in path
        or not path.isprintable()  # control characters (and a few others the full check allows)
        or len(path) > 255  # a name may be too long for a file system: the full check decides
        or (len(path) > 63 and not path.isascii())
    ):
        return True
    if path[0] == "." or "/." in path:  # a component starts with "."
        parts = path.split("/")
        return "." in parts or ".." in parts
    return False


def check_entry_path(path: str) -> str:
    """A manifest path: :func:`check_relative_path`, no tab or newline (the separators), and
    text that encodes as UTF-8 (a file name that is not UTF-8 arrives with surrogates)."""
    if "\t" in path or "\n" in path:
        msg = (
            f"file path {path!r} contains a tab or a newline, which a dataset manifest cannot "
            "hold; rename the file"
        )
        raise InvalidArgumentError(msg)
    try:
        path.encode()
    except UnicodeEncodeError as exc:
        msg = f"file path {path!r} is not valid UTF-8 (an undecodable file name); rename the file"
        raise InvalidArgumentError(msg) from exc
    return check_relative_path(path)


def check_entry(entry: FileEntry) -> FileEntry:
    """Validate every field of ``entry``; returns it."""
    if _bad_path(entry.path):
        check_entry_path(entry.path)  # raises with the reason
    size = entry.size
    if type(size) is not int or size < 0:
        msg = f"file {entry.path!r} has size {size!r}; a size is a non-negative integer"
        raise InvalidArgumentError(msg)
    digest = entry.digest
    if type(digest) is not str or not _DIGEST.fullmatch(digest):
        msg = (
            f"file {entry.path!r} has digest {entry.digest!r}; a digest is 64 lower-case hex "
            "characters (BLAKE3)"
        )
        raise InvalidArgumentError(msg)
    return entry


# -- writing -------------------------------------------------------------------------------


class ManifestWriter:
    """Writes a manifest to a binary file object, entry by entry, in sort order.

    ::

        with open(tmp, "wb") as fh, ManifestWriter(fh) as writer:
            for entry in entries:
                writer.write(entry)
        writer.digest, writer.count, writer.total_bytes

    :meth:`write` validates the entry and requires strictly increasing :func:`sort_key` order
    (a duplicate or out-of-order path raises :class:`InvalidArgumentError`). Output is buffered
    (about 1 MiB) and hashed on the way; :meth:`close` (or leaving the ``with`` block) flushes it
    and sets :attr:`digest`, the BLAKE3 of the manifest bytes. The writer does not close the
    stream. Leaving the ``with`` block on an exception drops the buffered tail: the output is
    incomplete either way, so the caller should discard it.
    """

    def __init__(self, stream: BinaryIO) -> None:
        import blake3

        self._stream = stream
        self._hasher: Any = blake3.blake3()
        self._buf: list[bytes] = [MANIFEST_HEADER]
        self._buffered = len(MANIFEST_HEADER)
        self._last: str | None = None
        self._last_path = ""
        self._closed = False
        self._digest: str | None = None
        self.count = 0
        self.total_bytes = 0
        self.size = 0
        """Bytes of manifest output so far (header included)."""

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True
            self._buf.clear()

    def write(self, entry: FileEntry) -> None:
        if self._closed:
            msg = "this manifest writer is closed; start a new ManifestWriter"
            raise InvalidStateError(msg)
        check_entry(entry)
        path = entry.path
        key = path.replace("/", "\0")
        if self._last is not None and not key > self._last:
            what = "twice" if key == self._last else f"after {self._last_path!r}"
            msg = (
                f"file {path!r} arrives {what}; manifest entries must be unique and in sort_key "
                "order (component-wise by code point)"
            )
            raise InvalidArgumentError(msg)
        try:
            line = f"{entry.digest}\t{entry.size}\t{path}\n".encode()
        except UnicodeEncodeError as exc:
            msg = (
                f"file path {path!r} is not valid UTF-8 (an undecodable file name); rename the file"
            )
            raise InvalidArgumentError(msg) from exc
        self._last = key
        self._last_path = path
        self.count += 1
        self.total_bytes += entry.size
        self._buf.append(line)
        self._buffered += len(line)
        if self._buffered >= _FLUSH_AT:
            self._flush()

    def write_all(self, entries: Iterable[FileEntry]) -> None:
        for entry in entries:
            self.write(entry)

    def close(self) -> None:
        """Flush and finish: sets :attr:`digest`. Idempotent; does not close the stream."""
        if self._closed:
            return
        self._flush()
        self._closed = True
        self._digest = str(self._hasher.hexdigest())

    @property
    def digest(self) -> str:
        """BLAKE3 hex digest of the manifest bytes (after :meth:`close`)."""
        if self._digest is None:
            msg = "the manifest digest is known once the writer is closed; call close() first"
            raise InvalidStateError(msg)
        return self._digest

    def _flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf.clear()
        self._buffered = 0
        self._hasher.update(data)
        self._stream.write(data)
        self.size += len(data)


# -- reading -------------------------------------------------------------------------------


def read_manifest(stream: BinaryIO, *, name: str = "manifest") -> Iterator[FileEntry]:
    """Yield the entries of a manifest, validating the header, every line and the order.

    A problem raises :class:`IntegrityError` naming ``name`` and the 1-based line number:
    a wrong header, a line without three tab-separated fields, a bad digest or size, an invalid
    or non-UTF-8 path, a missing final newline (a truncated file), or a path out of order.
    """
    _read_header(stream, name)
    last = ""
    lineno = 1
    for raw in stream:
        lineno += 1
        entry = _parse(raw, name, lineno)
        key = entry.path.replace("/", "\0")
        if not key > last:
            raise _disorder(name, lineno, entry.path, key == last)
        last = key
        yield entry


def _read_header(stream: BinaryIO, name: str) -> None:
    header = stream.readline()
    if header != MANIFEST_HEADER:
        shown = header[:60]
        raise _corrupt(name, 1, f"the header is {shown!r}, expected {MANIFEST_HEADER!r}")


def _parse(raw: bytes, name: str, lineno: int) -> FileEntry:
    """One manifest line as an entry (the order is the caller's to check)."""
    try:
        line = raw.decode()
    except UnicodeDecodeError:
        raise _corrupt(name, lineno, f"line {raw[:200]!r} is not UTF-8") from None
    # digest<TAB>size<TAB>path<LF>, parsed by slicing: few allocations in this hot path
    tab = line.find("\t", 65)
    digest = line[:64]
    size = line[65:tab]
    if (
        tab < 0
        or line[-1] != "\n"
        or line[64] != "\t"
        or digest.strip(_HEX)
        or not size.isdigit()
        or not size.isascii()
        or (size[0] == "0" and len(size) > 1)
    ):
        raise _corrupt(name, lineno, _line_problem(raw))
    path = line[tab + 1 : -1]
    if _bad_path(path):
        raise _corrupt(name, lineno, f"invalid path {path[:200]!r}")
    return FileEntry(path, int(size), digest)


def _disorder(name: str, lineno: int, path: str, repeated: bool) -> IntegrityError:
    what = "is repeated" if repeated else "is out of order"
    return _corrupt(name, lineno, f"path {path[:200]!r} {what}")


def _line_problem(raw: bytes) -> str:
    """Why a manifest line does not match the format."""
    if raw[-1:] != b"\n":
        return "the last line has no newline (truncated file?)"
    fields = raw[:-1].split(b"\t", 2)
    if len(fields) != 3:
        return f"expected digest<TAB>size<TAB>path, got {raw[:120]!r}"
    digest_b, size_b, path_b = fields
    if len(digest_b) != 64 or digest_b.strip(_HEX_BYTES):
        return f"bad digest {digest_b[:80]!r}"
    if not _SIZE.fullmatch(size_b):
        return f"bad size {size_b[:40]!r}"
    return f"invalid path {path_b[:200]!r}"


def _corrupt(name: str, lineno: int, why: str) -> IntegrityError:
    return IntegrityError(
        f"{name} is corrupt at line {lineno}: {why}; a manifest is written by Luminary and "
        "must not be edited by hand: restore it from the store or re-create the version"
    )


# -- diff ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two manifests; ``old`` is None when added, ``new`` when removed."""

    kind: Literal["added", "removed", "modified"]
    path: str
    old: FileEntry | None
    new: FileEntry | None


@dataclass(frozen=True)
class DiffSummary:
    """Counts of a diff. ``bytes_added`` is the size of content only in the new manifest (added
    files and the new version of modified files); ``bytes_removed`` the same for the old one."""

    added: int = 0
    removed: int = 0
    modified: int = 0
    unchanged: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.removed + self.modified

    def to_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "removed": self.removed,
            "modified": self.modified,
            "unchanged": self.unchanged,
            "bytes_added": self.bytes_added,
            "bytes_removed": self.bytes_removed,
        }


class DiffTally:
    """Counts what a :func:`diff` sees, unchanged files included; pass it as ``tally=`` to print
    the changes and a summary in one pass. :meth:`summary` is valid once the diff is consumed."""

    __slots__ = ("added", "bytes_added", "bytes_removed", "modified", "removed", "unchanged")

    def __init__(self) -> None:
        self.added = self.removed = self.modified = self.unchanged = 0
        self.bytes_added = self.bytes_removed = 0

    def added_file(self, entry: FileEntry) -> Change:
        self.added += 1
        self.bytes_added += entry.size
        return Change("added", entry.path, None, entry)

    def removed_file(self, entry: FileEntry) -> Change:
        self.removed += 1
        self.bytes_removed += entry.size
        return Change("removed", entry.path, entry, None)

    def same_path(self, old: FileEntry, new: FileEntry) -> Change | None:
        """The change between two entries of one path, or None (counted unchanged)."""
        if old.digest == new.digest and old.size == new.size:
            self.unchanged += 1
            return None
        self.modified += 1
        self.bytes_removed += old.size
        self.bytes_added += new.size
        return Change("modified", new.path, old, new)

    def summary(self) -> DiffSummary:
        return DiffSummary(
            added=self.added,
            removed=self.removed,
            modified=self.modified,
            unchanged=self.unchanged,
            bytes_added=self.bytes_added,
            bytes_removed=self.bytes_removed,
        )


def diff(
    a: Iterable[FileEntry], b: Iterable[FileEntry], *, tally: DiffTally | None = None
) -> Iterator[Change]:
    """Changes from manifest ``a`` (old) to ``b`` (new), in sort order, in constant memory.

    Both inputs must be in strictly increasing :func:`sort_key` order (as :func:`read_manifest`
    and the scanner produce them); a stream out of order raises :class:`InvalidArgumentError`.
    A file is ``modified`` when its digest or size differs. Unchanged files are not yielded but
    are counted in ``tally``.
    """
    t = tally if tally is not None else DiffTally()
    old = _Side(a, "old")
    new = _Side(b, "new")
    while (ex := old.entry) is not None and (ey := new.entry) is not None:
        if old.key == new.key:
            if (change := t.same_path(ex, ey)) is not None:
                yield change
            old.advance()
            new.advance()
        elif old.key < new.key:
            yield t.removed_file(ex)
            old.advance()
        else:
            yield t.added_file(ey)
            new.advance()
    while (ex := old.entry) is not None:
        yield t.removed_file(ex)
        old.advance()
    while (ey := new.entry) is not None:
        yield t.added_file(ey)
        new.advance()


def summarize(a: Iterable[FileEntry], b: Iterable[FileEntry]) -> DiffSummary:
    """The counts of ``diff(a, b)``, unchanged files included, in constant memory."""
    tally = DiffTally()
    for _ in diff(a, b, tally=tally):
        pass
    return tally.summary()


def diff_manifests(
    old: BinaryIO,
    new: BinaryIO,
    *,
    tally: DiffTally | None = None,
    names: tuple[str, str] = ("old manifest", "new manifest"),
) -> Iterator[Change]:
    """:func:`diff` of two manifest files, faster: a line that is byte-identical on both sides
    (an unchanged file, the common case) is counted without being parsed.

    Lines that differ are parsed and checked as :func:`read_manifest` does (a corrupt one raises
    :class:`IntegrityError` with its line number); identical lines are trusted, which is right
    for manifests read back from the blob store, where their digest was verified.
    """
    t = tally if tally is not None else DiffTally()
    a = _RawSide(old, names[0])
    b = _RawSide(new, names[1])
    while a.raw and b.raw:
        if a.raw == b.raw:
            if a.raw[-1:] != b"\n":
                a.entry()  # raises: truncated
            t.unchanged += 1
            a.advance()
            b.advance()
            continue
        ex, ey = a.entry(), b.entry()
        if a.key == b.key:
            # the same entry in other bytes cannot happen for valid lines: counted unchanged
            if (change := t.same_path(ex, ey)) is not None:
                yield change
            a.advance()
            b.advance()
        elif a.key < b.key:
            yield t.removed_file(ex)
            a.advance()
        else:
            yield t.added_file(ey)
            b.advance()
    while a.raw:
        yield t.removed_file(a.entry())
        a.advance()
    while b.raw:
        yield t.added_file(b.entry())
        b.advance()


class _RawSide:
    """One manifest file of :func:`diff_manifests`: the current raw line, parsed on demand."""

    __slots__ = ("_entry", "_last", "_name", "_stream", "key", "lineno", "raw")

    def __init__(self, stream: BinaryIO, name: str) -> None:
        _read_header(stream, name)
        self._stream = stream
        self._name = name
        self._entry: FileEntry | None = None
        self._last = ""  # key of the last parsed line
        self.key = ""
        self.lineno = 1
        self.raw = b""
        self.advance()

    def advance(self) -> None:
        self.raw = self._stream.readline()
        self.lineno += 1
        self._entry = None

    def entry(self) -> FileEntry:
        if self._entry is None:
            entry = _parse(self.raw, self._name, self.lineno)
            key = entry.path.replace("/", "\0")
            if not key > self._last:
                raise _disorder(self._name, self.lineno, entry.path, key == self._last)
            self._entry, self.key, self._last = entry, key, key
        return self._entry


class _Side:
    """One input of a diff: the current entry and its order key; checks the order."""

    __slots__ = ("_entries", "_which", "entry", "key")

    def __init__(self, entries: Iterable[FileEntry], which: str) -> None:
        self._entries = iter(entries)
        self._which = which
        self.entry: FileEntry | None = None
        self.key = ""
        self.advance()

    def advance(self) -> None:
        entry = next(self._entries, None)
        if entry is None:
            self.entry = None
            return
        key = entry.path.replace("/", "\0")
        previous = self.entry
        if previous is not None and not key > self.key:
            what = "twice" if key == self.key else f"after {previous.path!r}"
            msg = (
                f"the {self._which} manifest lists {entry.path!r} {what}; diff needs each side "
                "unique and in sort_key order (as read_manifest and scan yield them)"
            )
            raise InvalidArgumentError(msg)
        self.entry = entry
        self.key = key
