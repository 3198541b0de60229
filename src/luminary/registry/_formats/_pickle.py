"""Python pickles: recognised by their bytes or name, scanned statically, never loaded.

:func:`sniff_pickle` and :func:`sniff_protocol01` recognise a pickle file; :func:`scan_pickles`
lists, with :func:`pickletools.genops`, the globals a pickle would import; :func:`pickle_info`
turns what was found into the ``"pickle"`` :class:`ModelInfo` that :func:`inspect_model` refuses
unless the caller opts in.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminary.registry._formats._types import LIST_LIMIT, ModelInfo

__all__ = [
    "PICKLE_SCAN_BYTES",
    "PickleScan",
    "pickle_info",
    "scan_pickles",
    "sniff_pickle",
    "sniff_protocol01",
]

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".dill"})
_COMPRESSION_SUFFIXES = frozenset({".gz", ".z", ".bz2", ".xz", ".lzma", ".lz4", ".zst"})
PICKLE_SCAN_BYTES = 4 << 20  # the static opcode scan reads at most this much of a pickle
_PROTOCOL01_SNIFF_BYTES = 1 << 20


def sniff_pickle(p: Path, size: int, head: bytes, suffixes: list[str]) -> ModelInfo | None:
    """A pickle by its protocol marker (2 to 5) or by a pickle extension, or ``None``."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        data = _read_prefix(p, PICKLE_SCAN_BYTES)
        scan = scan_pickles(data)
        if scan.ops >= 2:
            detail = f"a Python pickle (protocol {head[1]})"
            return pickle_info(detail, size, scan, len(data) < size)
    pickle_suffix = next((s for s in suffixes if s in _PICKLE_SUFFIXES), None)
    if pickle_suffix is not None:
        compressed = suffixes[-1] in _COMPRESSION_SUFFIXES or _is_compressed(head)
        kind = "compressed " if compressed else ""
        detail = f"a {kind}Python pickle by its extension {pickle_suffix!r} (joblib/pickle/dill)"
        opcodes = None if compressed else scan_pickles(_read_prefix(p, PICKLE_SCAN_BYTES))
        return pickle_info(detail, size, opcodes, size > PICKLE_SCAN_BYTES)
    return None


def _is_compressed(head: bytes) -> bool:
    magics = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd")
    zlib_header = len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0
    return head.startswith(magics) or zlib_header


def _looks_like_protocol01(p: Path, size: int) -> bool:
    """A statically valid protocol 0/1 opcode stream (these have no ``0x80`` marker)."""
    data = _read_prefix(p, _PROTOCOL01_SNIFF_BYTES)
    scan = scan_pickles(data, max_pickles=1)
    if scan.error is None:  # one complete pickle; the whole file for a real pickle file
        return scan.ops >= 2 and scan.end == len(data) == size
    truncated_prefix = size > len(data) and scan.end >= len(data) - 1024
    return truncated_prefix and scan.ops >= 64


def sniff_protocol01(p: Path, size: int, head: bytes) -> ModelInfo | None:
    """A pickle in text protocol 0/1, which has no ``0x80`` marker, or ``None``."""
    if head[:1] == b"\x80" or not _looks_like_protocol01(p, size):
        return None
    scan = scan_pickles(_read_prefix(p, PICKLE_SCAN_BYTES))
    detail = "a Python pickle (text protocol 0/1)"
    return pickle_info(detail, size, scan, size > PICKLE_SCAN_BYTES)


def pickle_info(
    detail: str,
    size: int,
    scan: PickleScan | None = None,
    truncated: bool = False,
) -> ModelInfo:
    meta: dict[str, Any] = {"detected": detail, "size_bytes": size}
    if scan is not None:
        meta["pickle_protocol"] = scan.protocol
        meta["pickle_globals"] = scan.globals_[:LIST_LIMIT]
        meta["pickle_scan_complete"] = scan.error is None and not truncated
    return ModelInfo("pickle", metadata=meta, executes_code=True)


@dataclass
class PickleScan:
    globals_: list[str]
    protocol: int | None
    ops: int
    end: int  # byte offset just past the last opcode decoded
    error: str | None  # why the scan stopped early, None if it read whole pickles to the end


_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "SHORT_BINSTRING",
        "BINSTRING",
        "STRING",
    }
)
_NEUTRAL_OPS = frozenset({"PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})


def scan_pickles(data: bytes, max_pickles: int = 16) -> PickleScan:
    """Statically list what the pickle(s) in ``data`` import, with :func:`pickletools.genops`.

    ``genops`` only decodes opcodes: nothing is imported, called or built.  Several pickles may
    follow each other (legacy ``torch.save`` writes four); scanning stops at the first byte that
    does not start a pickle.  A ``STACK_GLOBAL`` whose operands are not the two strings pushed
    just before it (a crafted stream) is reported as ``"?"``.
    """
    found: dict[str, None] = {}
    protocol: int | None = None
    ops = 0
    start = last = 0
    error: str | None = None
    for _ in range(max_pickles):
        if start >= len(data):
            break
        recent: list[str | None] = []
        memo: dict[int, str | None] = {}
        ended = False
        stream = io.BytesIO(data)
        stream.seek(start)
        try:
            for op, arg, pos in pickletools.genops(stream):
                ops += 1
                last = stream.tell()
                name = op.name
                if name == "PROTO" and protocol is None:
                    protocol = int(arg or 0)
                if name in ("GLOBAL", "INST"):
                    module, _, qualname = str(arg).partition(" ")
                    found[f"{module}.{qualname}"] = None
                    recent.append(None)
                elif name == "STACK_GLOBAL":
                    pair = recent[-2:]
                    ok = len(pair) == 2 and all(isinstance(s, str) for s in pair)
                    found[f"{pair[0]}.{pair[1]}" if ok else "?"] = None
                    recent.append(None)
                elif name in _STRING_OPS:
                    text = arg if isinstance(arg, str) else None
                    if isinstance(arg, bytes):
                        text = arg.decode("latin-1")
                    recent.append(text)
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[int(arg or 0)] = recent[-1] if recent else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(int(arg or 0)))
                elif name not in _NEUTRAL_OPS:
                    recent.append(None)
                if len(recent) > 64:
                    del recent[:-8]
                if name == "STOP":
                    start = (pos or 0) + 1
                    ended = True
        except ValueError as exc:  # an unknown opcode or data that runs out
            error = str(exc)
        if not ended:
            if error is None:
                error = "the pickle has no STOP opcode"
            break
        if start < len(data) and data[start] != 0x80:  # the bytes after it are no pickle
            break
    return PickleScan(list(found), protocol, ops, min(max(start, last), len(data)), error)


def _read_prefix(p: Path, n: int) -> bytes:
    with p.open("rb") as f:
        return f.read(n)
