"""Pickles in disguise: find, from the bytes alone, a pickle inside another container.

A file name proves nothing, and a pickle does not have to start with ``0x80``: it may be
compressed (gzip, zlib, bz2, xz/lzma, as joblib writes them), a member of an archive (zip,
``.npz``, the legacy ``torch.save`` tar), or a NumPy array of Python objects (``dtype=object``,
which ``np.load`` unpickles). :func:`find_code` looks through these layers and says what it
found; :func:`~luminary.registry.inspect_model` refuses such a file unless the caller opts in
with ``allow_pickle=True``.

The work is bounded whatever the file: at most :data:`MAX_LAYERS` nested containers, the first
:data:`INFLATE_LIMIT` bytes of each decompressed stream (so a compression bomb inflates no
further), the first :data:`MEMBER_HEAD` bytes of at most :data:`MAX_MEMBERS` archive members, and
:data:`TOTAL_LIMIT` bytes in all; a file that needs more is refused as too large to inspect.
A stream compressed with zstd or lz4 (no decoder in the standard library) cannot be looked
into and counts as a possible pickle, as does a nested archive too large to read within the
bounds. Nothing is ever unpickled or imported.
"""

from __future__ import annotations

import ast
import bz2
import io
import lzma
import pickletools
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["INFLATE_LIMIT", "MAX_LAYERS", "MAX_MEMBERS", "MEMBER_HEAD", "TOTAL_LIMIT", "find_code"]

MAX_LAYERS = 4
INFLATE_LIMIT = 4 << 20  # bytes of a decompressed stream looked at
RAW_LIMIT = 16 << 20  # compressed bytes fed to a decompressor
MAX_MEMBERS = 10_000
MEMBER_HEAD = 64 << 10
TOTAL_LIMIT = 256 << 20  # bytes read and inflated over the whole file, all layers together
_HEAD = 512  # a tar header
_PICKLE_NAMES = (".pkl", ".pickle", ".joblib", ".dill")

_Decompressor = Callable[[], Any]
_STREAMS: tuple[tuple[str, Callable[[bytes], bool], _Decompressor], ...] = (
    ("gzip", lambda h: h.startswith(b"\x1f\x8b"), lambda: zlib.decompressobj(16 + 15)),
    (
        "zlib",
        lambda h: len(h) >= 2 and h[0] == 0x78 and (h[0] << 8 | h[1]) % 31 == 0,
        lambda: zlib.decompressobj(15),
    ),
    ("bz2", lambda h: h[:3] == b"BZh" and h[3:4].isdigit(), bz2.BZ2Decompressor),
    ("xz", lambda h: h.startswith(b"\xfd7zXZ\x00"), lzma.LZMADecompressor),
    ("lzma", lambda h: h[:3] == b"\x5d\x00\x00", lzma.LZMADecompressor),
)
_OPAQUE_STREAMS = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}


class _TooLarge(Exception):
    pass


class _Budget:
    def __init__(self) -> None:
        self.left = TOTAL_LIMIT

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise _TooLarge


def find_code(path: Path) -> str | None:
    """What inside the file at ``path`` runs code when loaded (a phrase for a message), or
    ``None``. A plain pickle at the top level is left to the caller's own scan."""
    budget = _Budget()
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD)
            if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
                return _zip(path, 0, budget)
            if _tar(head) or _stream(head) is not None or head[:4] in _OPAQUE_STREAMS:
                data = head + f.read(RAW_LIMIT - _HEAD)
                return _look(data, complete=None, depth=0, budget=budget)
            if head.startswith(b"\x93NUMPY"):
                return _npy(head + f.read(MEMBER_HEAD))
    except _TooLarge:
        return f"a container that holds more than {TOTAL_LIMIT >> 20} MiB to inspect"
    return None


def _look(data: bytes, *, complete: bool | None, depth: int, budget: _Budget) -> str | None:
    """``data`` is a whole object (``complete``), a prefix of one (``False``) or the top-level
    file's prefix (``None``, where a plain pickle is not reported again)."""
    if depth > MAX_LAYERS:
        return f"nested more than {MAX_LAYERS} containers deep (too deep to inspect)"
    if complete is not None and _is_pickle(data, complete):
        return "a Python pickle"
    if data.startswith(b"\x93NUMPY"):
        return _npy(data)
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        if not complete:
            return "an archive inside a compressed stream, too large to inspect"
        return _zip(io.BytesIO(data), depth, budget)
    if _tar(data):
        return _tar_members(data, depth, budget)
    if (opaque := _OPAQUE_STREAMS.get(data[:4])) is not None:
        return (
            f"a {opaque}-compressed stream, which Luminary cannot look into (it may hold a "
            "pickle, as joblib writes them)"
        )
    found = _stream(data)
    if found is None:
        return None
    name, make = found
    decompressor = make()
    try:
        inner = decompressor.decompress(data, max_length=INFLATE_LIMIT)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None  # not really a stream of that kind
    budget.spend(len(inner))
    whole = bool(getattr(decompressor, "eof", False)) and len(inner) < INFLATE_LIMIT
    what = _look(inner, complete=whole, depth=depth + 1, budget=budget)
    return None if what is None else f"{what} compressed with {name}"


def _stream(head: bytes) -> tuple[str, _Decompressor] | None:
    return next(((name, make) for name, test, make in _STREAMS if test(head)), None)


def _tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


def _is_pickle(data: bytes, complete: bool) -> bool:
    """A statically valid opcode stream: whole (``STOP`` at the end), or for a prefix long
    enough to tell (64 opcodes). Protocol 2+ announces itself with ``0x80``."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    ops = 0
    try:
        for op, _arg, pos in pickletools.genops(io.BytesIO(data)):
            ops += 1
            if op.name == "STOP":
                return ops >= 2 and (pos or 0) + 1 == len(data)
    except ValueError:  # an unknown opcode, or data that runs out
        return not complete and ops >= 64
    return False


def _npy(data: bytes) -> str | None:
    """A ``.npy`` whose dtype holds Python objects: ``np.load`` unpickles those."""
    if len(data) < 10:
        return None
    major = data[6]
    if major == 1:
        (length,), start = struct.unpack("<H", data[8:10]), 10
    else:
        (length,), start = struct.unpack("<I", data[8:12]), 12
    try:
        header = ast.literal_eval(data[start : start + length].decode("latin-1"))
        descr = header["descr"]
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
        return "a NumPy array whose header cannot be read"
    if _has_object(descr):
        return f"a NumPy array of Python objects (dtype {str(descr)[:60]}), stored as a pickle"
    return None


def _has_object(descr: object) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list | tuple):
        return any(_has_object(part) for part in descr)
    return False


def _zip(source: Path | io.BytesIO, depth: int, budget: _Budget) -> str | None:
    try:
        with zipfile.ZipFile(source) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                return f"an archive of {len(members)} members (over {MAX_MEMBERS} to inspect)"
            for m in members:
                if m.is_dir():
                    continue
                if m.filename.lower().endswith(_PICKLE_NAMES):
                    return f"an archive whose member {m.filename!r} is a pickle"
                with zf.open(m) as f:
                    head = f.read(MEMBER_HEAD)
                budget.spend(len(head))
                whole = m.file_size <= MEMBER_HEAD
                what = _look(head, complete=whole, depth=depth + 1, budget=budget)
                if what is not None:
                    return f"an archive whose member {m.filename!r} is {what}"
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        return None  # not a readable zip: the format parsers decide what it is
    return None


def _tar_members(data: bytes, depth: int, budget: _Budget) -> str | None:
    """A tar (the legacy ``torch.save`` format keeps its pickles in members named ``pickle``,
    ``tensors`` and ``storages``), read from its prefix in stream mode."""
    count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
            for m in tf:
                count += 1
                if count > MAX_MEMBERS:
                    return f"an archive of more than {MAX_MEMBERS} members"
                if not m.isfile():
                    continue
                base = m.name.rpartition("/")[2]
                if base in ("pickle", "storages", "tensors") or base.endswith(_PICKLE_NAMES):
                    return f"a tar archive (legacy torch.save) whose member {m.name!r} is a pickle"
                f = tf.extractfile(m)
                head = f.read(MEMBER_HEAD) if f is not None else b""
                budget.spend(len(head))
                whole = m.size <= MEMBER_HEAD
                what = _look(head, complete=whole, depth=depth + 1, budget=budget)
                if what is not None:
                    return f"a tar archive whose member {m.name!r} is {what}"
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return None if count else "a tar archive that cannot be read"
    return None
