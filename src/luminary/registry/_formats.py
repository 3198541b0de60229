"""What is this model file, and what is its signature?  Read from the file, never executed.

:func:`inspect_model` looks at the bytes (the extension is only a hint) and returns a
:class:`ModelInfo`: the format, for ONNX the signature (input and output names, element dtypes,
shapes with symbolic dimensions kept as strings and unknown ones as ``None``), and what the file
says about itself (opset, producer, tensor counts, XGBoost learner parameters ...).

Nothing in a model file is ever run.  Formats whose loading executes code (Python pickle, joblib,
``torch.save`` archives) are recognised and refused unless the caller passes ``allow_pickle=True``;
even then they are only scanned statically (:mod:`pickletools`), never unpickled.

How each format is recognised:

========================  =======================================================================
``onnx``                  a protobuf ``ModelProto``.  Only its structure is read: the weights
                          (initializer payloads, external data) are skipped by a wire-format walk,
                          so memory stays small for multi-GB models; ``onnx`` parses the rest.
``torchscript``           a zip with ``<name>/code/``, ``<name>/constants.pkl`` or ``data.pkl``
                          and a ``version`` record; its pickles are scanned and may only name the
                          classes TorchScript's restricted unpickler knows.
``safetensors``           8-byte little-endian header length, then a JSON header.
``xgboost-json``          JSON with top-level ``learner`` and ``version``.
``xgboost-ubj``           the same document in XGBoost's UBJSON encoding.
``pickle``                a raw pickle (``0x80`` protocol marker or a statically valid opcode
                          stream), a zip with ``data.pkl`` but no ``code/`` (``torch.save``), or
                          a ``.pkl``/``.pickle``/``.joblib``/``.dill`` file whatever its bytes.
``pickle`` (inside)        a pickle in another container (:mod:`luminary.registry._sniff`):
                          compressed (gzip, zlib, bz2, xz, zstd, lz4), in a zip, ``.npz`` or
                          tar member, or a NumPy array of Python objects.
``opaque``                anything else: accepted, no signature.
========================  =======================================================================
"""

from __future__ import annotations

import importlib
import io
import json
import math
import mmap
import os
import pickletools
import stat
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from luminary.errors import InvalidArgumentError, MissingDependencyError
from luminary.registry._sniff import find_code

if TYPE_CHECKING:
    from onnx import ModelProto, TypeProto

__all__ = [
    "FORMATS",
    "ModelInfo",
    "PickleNotAllowedError",
    "TensorSpec",
    "inspect_model",
]

FORMATS: tuple[str, ...] = (
    "onnx",
    "torchscript",
    "safetensors",
    "xgboost-json",
    "xgboost-ubj",
    "pickle",
    "opaque",
)
Shape = tuple[int | str | None, ...]

_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".dill"})
_COMPRESSION_SUFFIXES = frozenset({".gz", ".z", ".bz2", ".xz", ".lzma", ".lz4", ".zst"})
_STRICT_SUFFIXES = {".onnx": "onnx", ".safetensors": "safetensors", ".ubj": "xgboost-ubj"}
_HEAD_BYTES = 64
_PICKLE_SCAN_BYTES = 4 << 20  # the static opcode scan reads at most this much of a pickle
_PROTOCOL01_SNIFF_BYTES = 1 << 20
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors format's own limit
_LIST_LIMIT = 50  # longest list of names kept in metadata


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    ``dtype`` is a NumPy-style name (``"float32"``, ``"int64"``, ``"bool"``, ``"string"`` ...);
    non-tensor ONNX values read like ``"sequence(map(int64,float32))"``.  ``shape`` has an ``int``
    for a fixed dimension, a ``str`` for a symbolic one (``"batch"``) and ``None`` for an unknown
    one; the whole shape is ``None`` when even the rank is unknown (or the value is no tensor).
    """

    name: str
    dtype: str
    shape: Shape | None

    def to_dict(self) -> dict[str, Any]:
        shape = None if self.shape is None else list(self.shape)
        return {"name": self.name, "dtype": self.dtype, "shape": shape}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        shape = data.get("shape")
        return cls(str(data["name"]), str(data["dtype"]), None if shape is None else tuple(shape))


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`inspect_model` read from a model file.  ``metadata`` is JSON-serialisable."""

    format: str
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    executes_code: bool = False

    def signature(self) -> dict[str, Any]:
        """The signature recorded with a model version: its inputs and outputs."""
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "metadata": self.metadata,
            "executes_code": self.executes_code,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        return cls(
            format=str(data["format"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in data.get("inputs", ())),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", ())),
            metadata=dict(data.get("metadata", {})),
            executes_code=bool(data.get("executes_code", False)),
        )


class PickleNotAllowedError(InvalidArgumentError):
    """The file executes code when loaded and the caller did not pass ``allow_pickle=True``.

    ``info`` is what was detected (format ``"pickle"``, the globals the pickle would import).
    """

    def __init__(self, message: str, info: ModelInfo) -> None:
        super().__init__(message)
        self.info = info


class _Parser(Protocol):
    def __call__(self, p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo: ...


class _NotThisFormat(Exception):
    """The bytes are not (valid) in the format being tried; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# entry point


def inspect_model(
    path: str | os.PathLike[str], *, allow_pickle: bool = False, format: str | None = None
) -> ModelInfo:
    """Detect the format of the model file at ``path`` and read its signature and metadata.

    ``format`` names the format the caller expects: the file must then be in it (a file that is
    not raises :class:`~luminary.errors.InvalidArgumentError` with the parser's reason), except
    ``"opaque"``, which accepts any file that does not execute code and reads nothing from it.
    Detection of code-executing files always runs first: a pickle is refused with
    :class:`PickleNotAllowedError` unless ``allow_pickle=True``, whatever ``format`` says, and
    ``format="pickle"`` treats the file as one.  Nothing is ever unpickled.
    """
    # ``format`` shadows the builtin on purpose: it is the public keyword argument.
    if format is not None and format not in FORMATS:
        msg = f"unknown model format {format!r}; valid formats: {', '.join(FORMATS)}"
        raise InvalidArgumentError(msg)
    p = Path(os.fspath(path))
    try:
        st = p.stat()
    except FileNotFoundError:
        msg = f"model file {str(p)!r} does not exist"
        raise InvalidArgumentError(msg) from None
    if stat.S_ISDIR(st.st_mode):
        msg = f"{str(p)!r} is a directory; inspect_model reads one model file (pass each file)"
        raise InvalidArgumentError(msg)
    if not stat.S_ISREG(st.st_mode):
        msg = f"{str(p)!r} is not a regular file"
        raise InvalidArgumentError(msg)
    with p.open("rb") as f:
        head = f.read(_HEAD_BYTES)
    info = _detect(p, st.st_size, head, format)
    if info.executes_code and not allow_pickle:
        raise PickleNotAllowedError(_refusal(p, info), info)
    return info


def _detect(p: Path, size: int, head: bytes, forced: str | None) -> ModelInfo:
    suffixes = [s.lower() for s in p.suffixes]

    # 1. Anything that executes code on load, whatever the caller or the extension claims.
    zip_info = _inspect_zip(p) if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) else None
    if zip_info is not None and zip_info.executes_code:
        return zip_info
    if zip_info is None:
        pickle_info = _sniff_pickle(p, size, head, suffixes)
        if pickle_info is not None:
            return pickle_info
    if zip_info is None or zip_info.format == "opaque":
        inside = find_code(p)
        if inside is not None:
            return _pickle_info(inside, size)
    if forced == "pickle":
        return _pickle_info("declared a pickle by the caller (format='pickle')", size)

    # 2. The format the caller expects: parse it strictly.
    if forced == "opaque":
        return ModelInfo("opaque")
    if forced == "torchscript":
        if zip_info is None or zip_info.format != "torchscript":
            msg = f"{str(p)!r} is not a TorchScript archive (a zip with code/ and data.pkl)"
            raise InvalidArgumentError(msg)
        return zip_info
    if forced is not None:
        return _parse_strictly(forced, p, size, head)

    # 3. The content.
    if zip_info is not None:
        return zip_info
    for name, looks_like in _SNIFFERS:
        if looks_like(head, size):
            try:
                return _PARSERS[name](p, size, head, strict=False)
            except _NotThisFormat:
                continue

    # 4. Unrecognised content: an extension that promises a format makes that an error.
    hint = _STRICT_SUFFIXES.get(suffixes[-1] if suffixes else "")
    if hint is not None:
        return _parse_strictly(hint, p, size, head)
    if head[:1] != b"\x80" and _looks_like_protocol01(p, size):
        scan = _scan_pickles(_read_prefix(p, _PICKLE_SCAN_BYTES))
        detail = "a Python pickle (text protocol 0/1)"
        return _pickle_info(detail, size, scan, size > _PICKLE_SCAN_BYTES)
    return ModelInfo("opaque")


def _parse_strictly(fmt: str, p: Path, size: int, head: bytes) -> ModelInfo:
    try:
        return _PARSERS[fmt](p, size, head, strict=True)
    except _NotThisFormat as exc:
        msg = f"{str(p)!r} is not a valid {fmt} model file: {exc.reason}"
        raise InvalidArgumentError(msg) from None


def _refusal(p: Path, info: ModelInfo) -> str:
    what = info.metadata.get("detected", "a Python pickle")
    globals_ = info.metadata.get("pickle_globals") or []
    imports = ""
    if globals_:
        shown = ", ".join(globals_[:8]) + (" ..." if len(globals_) > 8 else "")
        imports = f"; on load it would import {shown}"
    return (
        f"refusing model file {str(p)!r}: it is {what}, and loading it executes arbitrary Python "
        f"code from the file (pickle-based formats run code on load){imports}. Store the model "
        "in a format that does not execute code (ONNX, safetensors, TorchScript, XGBoost "
        "JSON/UBJ), or, only if you trust where the file comes from, opt in with "
        "allow_pickle=True (CLI: --allow-pickle)."
    )


# --------------------------------------------------------------------------------------------
# pickle: recognised, scanned statically, never loaded


def _sniff_pickle(p: Path, size: int, head: bytes, suffixes: list[str]) -> ModelInfo | None:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        data = _read_prefix(p, _PICKLE_SCAN_BYTES)
        scan = _scan_pickles(data)
        if scan.ops >= 2:
            detail = f"a Python pickle (protocol {head[1]})"
            return _pickle_info(detail, size, scan, len(data) < size)
    pickle_suffix = next((s for s in suffixes if s in _PICKLE_SUFFIXES), None)
    if pickle_suffix is not None:
        compressed = suffixes[-1] in _COMPRESSION_SUFFIXES or _is_compressed(head)
        kind = "compressed " if compressed else ""
        detail = f"a {kind}Python pickle by its extension {pickle_suffix!r} (joblib/pickle/dill)"
        opcodes = None if compressed else _scan_pickles(_read_prefix(p, _PICKLE_SCAN_BYTES))
        return _pickle_info(detail, size, opcodes, size > _PICKLE_SCAN_BYTES)
    return None


def _is_compressed(head: bytes) -> bool:
    magics = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd")
    zlib_header = len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0
    return head.startswith(magics) or zlib_header


def _looks_like_protocol01(p: Path, size: int) -> bool:
    """A statically valid protocol 0/1 opcode stream (these have no ``0x80`` marker)."""
    data = _read_prefix(p, _PROTOCOL01_SNIFF_BYTES)
    scan = _scan_pickles(data, max_pickles=1)
    if scan.error is None:  # one complete pickle; the whole file for a real pickle file
        return scan.ops >= 2 and scan.end == len(data) == size
    truncated_prefix = size > len(data) and scan.end >= len(data) - 1024
    return truncated_prefix and scan.ops >= 64


def _pickle_info(
    detail: str,
    size: int,
    scan: _PickleScan | None = None,
    truncated: bool = False,
) -> ModelInfo:
    meta: dict[str, Any] = {"detected": detail, "size_bytes": size}
    if scan is not None:
        meta["pickle_protocol"] = scan.protocol
        meta["pickle_globals"] = scan.globals_[:_LIST_LIMIT]
        meta["pickle_scan_complete"] = scan.error is None and not truncated
    return ModelInfo("pickle", metadata=meta, executes_code=True)


@dataclass
class _PickleScan:
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


def _scan_pickles(data: bytes, max_pickles: int = 16) -> _PickleScan:
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
    return _PickleScan(list(found), protocol, ops, min(max(start, last), len(data)), error)


def _read_prefix(p: Path, n: int) -> bytes:
    with p.open("rb") as f:
        return f.read(n)


# --------------------------------------------------------------------------------------------
# zip archives: TorchScript or torch.save


# The globals TorchScript's C++ unpickler resolves (torch/csrc/jit/serialization/unpickler.cpp,
# readGlobal); anything else in a TorchScript-looking archive means it is really a pickle that a
# plain ``torch.load`` would import (and may run).
_TORCHSCRIPT_GLOBALS = frozenset(
    {
        "__main__.TensorID",
        "__main__.IntList",
        "builtins.complex",
        "collections.OrderedDict",
        "torch.device",
        "torch._tensor._rebuild_from_type_v2",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_sparse_tensor",
        "torch.distributed.rpc.rref",
    }
)
_TORCH_QSCHEMES = frozenset(
    {
        "per_tensor_affine",
        "per_channel_affine",
        "per_tensor_symmetric",
        "per_channel_symmetric",
        "per_channel_affine_float_qparams",
    }
)


def _torchscript_global_ok(name: str) -> bool:
    module, _, attr = name.rpartition(".")
    return (
        name in _TORCHSCRIPT_GLOBALS
        or name.startswith("__torch__.")  # TorchScript classes and enums
        or module == "torch.jit._pickle"
        or (module == "torch" and (attr.endswith("Storage") or attr in _TORCH_QSCHEMES))
    )


def _inspect_zip(p: Path) -> ModelInfo | None:
    """TorchScript, a ``torch.save`` pickle archive, or another zip (``opaque``)."""
    try:
        with zipfile.ZipFile(p) as zf:
            members = zf.infolist()
            names = [m.filename for m in members]
            pickles = [n for n in names if n.rpartition("/")[2] in ("data.pkl", "constants.pkl")]
            code = sorted({n for n in names if "/code/" in f"/{n}" and not n.endswith("/")})
            scans = {n: _scan_pickles(_read_member(zf, n)) for n in pickles}
            versions = [n for n in names if n.rpartition("/")[2] == "version"]
            version = (
                _read_member(zf, versions[0], 64).decode("latin-1").strip() if versions else None
            )
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        return ModelInfo("opaque", metadata={"container": "zip", "note": f"unreadable: {exc}"})
    prefix = names[0].partition("/")[0] if names and all("/" in n for n in names) else ""
    summary: dict[str, Any] = {
        "archive_name": prefix,
        "files": len(names),
        "uncompressed_bytes": sum(m.file_size for m in members),
    }
    if version is not None:
        summary["version"] = version
    globals_ = list(dict.fromkeys(g for s in scans.values() for g in s.globals_))
    has_data = any(n.rpartition("/")[2] == "data.pkl" for n in pickles)
    if code and pickles and version is not None:
        bad = [g for g in globals_ if not _torchscript_global_ok(g)]
        if not bad:
            summary["code_files"] = [_strip(n, prefix) for n in code[:_LIST_LIMIT]]
            summary["extra_files"] = [
                _strip(n, prefix) for n in names if "/extra/" in f"/{n}" and not n.endswith("/")
            ][:_LIST_LIMIT]
            summary["tensor_records"] = sum(1 for n in names if "/data/" in f"/{n}")
            return ModelInfo("torchscript", metadata=summary)
        detail = (
            "a zip laid out like TorchScript whose pickles import globals TorchScript never "
            f"uses ({', '.join(bad[:5])}), i.e. a pickle archive"
        )
    elif has_data:
        detail = "a torch.save pickle archive (zip with data.pkl and no code/)"
    else:
        members_shown = [n for n in names if not n.endswith("/")][:_LIST_LIMIT]
        return ModelInfo("opaque", metadata={"container": "zip", "members": members_shown})
    scan = _PickleScan(
        globals_,
        next((s.protocol for s in scans.values() if s.protocol is not None), None),
        sum(s.ops for s in scans.values()),
        0,
        next((s.error for s in scans.values() if s.error is not None), None),
    )
    info = _pickle_info(detail, p.stat().st_size, scan)
    info.metadata.update(summary)
    return info


def _read_member(zf: zipfile.ZipFile, name: str, limit: int = _PICKLE_SCAN_BYTES) -> bytes:
    with zf.open(name) as f:
        return f.read(limit)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) + 1 :] if prefix and name.startswith(prefix + "/") else name


# --------------------------------------------------------------------------------------------
# ONNX: walk the protobuf wire format, keep the structure, skip the weights, parse with onnx

# ModelProto fields: number -> wire type.  Kept: all but graph (rebuilt), training_info,
# functions and configuration (skipped; they can hold tensors).
_MODEL_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_MODEL_KEEP = frozenset({1, 2, 3, 4, 5, 6, 8, 14})
# GraphProto: node 1, name 2, initializer 5, doc 10, input 11, output 12, value_info 13,
# quantization_annotation 14, sparse_initializer 15, metadata_props 16 (all length-delimited).
_GRAPH_FIELDS = frozenset({1, 2, 5, 10, 11, 12, 13, 14, 15, 16})
_GRAPH_KEEP = frozenset({2, 10, 11, 12, 16})
_TENSOR_KEEP = frozenset({1, 2, 8, 13, 14})  # dims, data_type, name, external_data, location
_NODE_KEEP = frozenset({4, 7})  # op_type, domain
_SMALL_NODE = 4096  # bytes; a node this small holds no weights worth skipping


class _Wire:
    """Just enough of the protobuf wire format to walk a file without loading it."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if pos >= end:
                msg = f"truncated varint at byte {pos}"
                raise _NotThisFormat(msg)
            b = self.buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value, pos
            shift += 7
            if shift >= 70:
                msg = f"malformed varint ending at byte {pos}"
                raise _NotThisFormat(msg)

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
        """``(field, wire_type, tag_start, value_start, value_end)`` for each field."""
        pos = start
        while pos < end:
            tag_start = pos
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                msg = f"invalid field number 0 at byte {tag_start}"
                raise _NotThisFormat(msg)
            if wire == 0:
                value_start = pos
                _, pos = self.varint(pos, end)
            elif wire == 2:
                length, value_start = self.varint(pos, end)
                pos = value_start + length
            elif wire in (1, 5):
                value_start = pos
                pos += 8 if wire == 1 else 4
            else:
                msg = f"unsupported wire type {wire} at byte {tag_start}"
                raise _NotThisFormat(msg)
            if pos > end:
                msg = (
                    f"field {number} at byte {tag_start} runs to byte {pos}, past the end of "
                    f"its message at byte {end} (truncated file?)"
                )
                raise _NotThisFormat(msg)
            yield number, wire, tag_start, value_start, pos

    def keep(self, start: int, end: int, numbers: frozenset[int]) -> bytes:
        parts = [
            self.buf[tag:stop]
            for number, _, tag, _, stop in self.fields(start, end)
            if number in numbers
        ]
        return b"".join(parts)


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)) + payload


def _onnx_skeleton(wire: _Wire, size: int, strict: bool) -> bytes:
    """The ModelProto without weights: initializers keep name, dtype, dims and location only."""
    parts: list[bytes] = []
    for number, wt, tag, start, stop in wire.fields(0, size):
        expected = _MODEL_FIELDS.get(number)
        if expected is None:
            if strict:
                continue  # a field from a newer ONNX: skip it
            msg = f"unknown ModelProto field {number} at byte {tag}"
            raise _NotThisFormat(msg)
        if wt != expected:
            msg = f"ModelProto field {number} has wire type {wt} at byte {tag}"
            raise _NotThisFormat(msg)
        if number == 7:
            parts.append(_length_delimited(7, _graph_skeleton(wire, start, stop)))
        elif number in _MODEL_KEEP:
            parts.append(bytes(wire.buf[tag:stop]))
    return b"".join(parts)


def _graph_skeleton(wire: _Wire, start: int, end: int) -> bytes:
    parts: list[bytes] = []
    for number, wt, tag, vstart, vstop in wire.fields(start, end):
        if number in _GRAPH_FIELDS and wt != 2:
            msg = f"GraphProto field {number} has wire type {wt} at byte {tag}"
            raise _NotThisFormat(msg)
        if number == 5:
            parts.append(_length_delimited(5, wire.keep(vstart, vstop, _TENSOR_KEEP)))
        elif number == 15:  # SparseTensorProto: values (a TensorProto) 1, indices 2, dims 3
            sparse: list[bytes] = []
            for n, _, t, s, e in wire.fields(vstart, vstop):
                if n == 1:
                    sparse.append(_length_delimited(1, wire.keep(s, e, _TENSOR_KEEP)))
                elif n == 3:
                    sparse.append(bytes(wire.buf[t:e]))
            parts.append(_length_delimited(15, b"".join(sparse)))
        elif number == 1:  # small nodes whole (fast), big ones (Constant, subgraphs) stripped
            if vstop - vstart <= _SMALL_NODE:
                parts.append(bytes(wire.buf[tag:vstop]))
            else:
                parts.append(_length_delimited(1, wire.keep(vstart, vstop, _NODE_KEEP)))
        elif number in _GRAPH_KEEP:
            parts.append(bytes(wire.buf[tag:vstop]))
    return b"".join(parts)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        msg = "onnx"
        raise MissingDependencyError.for_module(msg, "onnx", "Reading ONNX signatures") from exc


def _parse_onnx(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    if size == 0:
        msg = "the file is empty"
        raise _NotThisFormat(msg)
    with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        skeleton = _onnx_skeleton(_Wire(buf), size, strict)
    _require_onnx()
    from onnx import ModelProto

    # google.protobuf ships no type stubs; DecodeError is what ParseFromString raises.
    decode_error: type[Exception] = importlib.import_module("google.protobuf.message").DecodeError

    model = ModelProto()
    try:
        model.ParseFromString(skeleton)
    except decode_error as exc:
        msg = f"protobuf parser: {exc}"
        raise _NotThisFormat(msg) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        msg = "no ir_version or no graph: not an ONNX ModelProto"
        raise _NotThisFormat(msg)
    if not strict and not model.opset_import:
        msg = "no opset_import"
        raise _NotThisFormat(msg)
    return _onnx_info(model)


def _onnx_info(model: ModelProto) -> ModelInfo:
    from onnx import TensorProto

    graph = model.graph
    weights = {t.name for t in graph.initializer} | {
        s.values.name for s in graph.sparse_initializer
    }
    inputs = tuple(_value_spec(v.name, v.type) for v in graph.input if v.name not in weights)
    outputs = tuple(_value_spec(v.name, v.type) for v in graph.output)
    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    dtypes: Counter[str] = Counter()
    parameters = 0
    external: dict[str, None] = {}
    for t in [*graph.initializer, *(s.values for s in graph.sparse_initializer)]:
        dtypes[_dtype_name(t.data_type)] += 1
        parameters += math.prod(t.dims)
        if t.data_location == TensorProto.EXTERNAL:
            external.update({e.value: None for e in t.external_data if e.key == "location"})
    ops = Counter(f"{n.domain}.{n.op_type}" if n.domain else n.op_type for n in graph.node)
    metadata: dict[str, Any] = {
        "opset": opsets.get("ai.onnx"),
        "opset_imports": opsets,
        "producer_name": model.producer_name,
        "producer_version": model.producer_version,
        "ir_version": int(model.ir_version),
        "model_version": int(model.model_version),
        "domain": model.domain,
        "graph_name": graph.name,
        "doc_string": model.doc_string,
        "graph_doc_string": graph.doc_string,
        "metadata_props": {e.key: e.value for e in model.metadata_props},
        "initializers": len(graph.initializer) + len(graph.sparse_initializer),
        "initializer_dtypes": dict(sorted(dtypes.items())),
        "parameters": int(parameters),
        "external_data_files": list(external),
        "nodes": len(graph.node),
        "op_types": dict(sorted(ops.items())),
    }
    return ModelInfo("onnx", inputs, outputs, metadata)


_ONNX_DTYPES = {
    "FLOAT": "float32",
    "DOUBLE": "float64",
    "FLOAT16": "float16",
    "BFLOAT16": "bfloat16",
    "BOOL": "bool",
    "STRING": "string",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "UNDEFINED": "undefined",
}


def _dtype_name(elem_type: int) -> str:
    """``TensorProto.FLOAT`` -> ``"float32"``, ``INT64`` -> ``"int64"``, float8s: ONNX's name."""
    from onnx import TensorProto

    try:
        name = str(TensorProto.DataType.Name(elem_type))
    except ValueError:
        return f"unknown({elem_type})"
    return _ONNX_DTYPES.get(name, name.lower())


def _value_spec(name: str, tp: TypeProto) -> TensorSpec:
    dtype, shape = _type_of(tp)
    return TensorSpec(name, dtype, shape)


def _type_of(tp: TypeProto) -> tuple[str, Shape | None]:
    kind = tp.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        t = tp.tensor_type if kind == "tensor_type" else tp.sparse_tensor_type
        dtype = _dtype_name(t.elem_type)
        if kind == "sparse_tensor_type":
            dtype = f"sparse({dtype})"
        if not t.HasField("shape"):
            return dtype, None
        dims: list[int | str | None] = []
        for d in t.shape.dim:
            which = d.WhichOneof("value")
            if which == "dim_value":
                dims.append(int(d.dim_value))
            elif which == "dim_param" and d.dim_param:
                dims.append(str(d.dim_param))
            else:
                dims.append(None)
        return dtype, tuple(dims)
    if kind == "sequence_type":
        return f"sequence({_type_of(tp.sequence_type.elem_type)[0]})", None
    if kind == "optional_type":
        return f"optional({_type_of(tp.optional_type.elem_type)[0]})", None
    if kind == "map_type":
        key = _dtype_name(tp.map_type.key_type)
        return f"map({key},{_type_of(tp.map_type.value_type)[0]})", None
    if kind == "opaque_type":
        o = tp.opaque_type
        return f"opaque({o.domain + '.' if o.domain else ''}{o.name})", None
    return "undefined", None


# --------------------------------------------------------------------------------------------
# safetensors

_SAFETENSORS_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(size - 8, _SAFETENSORS_MAX_HEADER) and head[8:9] == b"{"


def _parse_safetensors(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    if size < 8:
        msg = f"{size} bytes is shorter than the 8-byte header length"
        raise _NotThisFormat(msg)
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= min(size - 8, _SAFETENSORS_MAX_HEADER):
        msg = f"header length {n} does not fit a {size}-byte file"
        raise _NotThisFormat(msg)
    with p.open("rb") as f:
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"the header is not UTF-8 JSON: {exc}"
        raise _NotThisFormat(msg) from None
    if not isinstance(header, dict):
        msg = "the header is not a JSON object"
        raise _NotThisFormat(msg)
    user_meta = header.pop("__metadata__", None) or {}
    dtypes: Counter[str] = Counter()
    parameters = 0
    data_end = 0
    for name, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            count = math.prod(int(d) for d in shape)
            itemsize = _SAFETENSORS_DTYPES.get(dtype)
            ok = isinstance(dtype, str) and 0 <= begin <= end and all(int(d) >= 0 for d in shape)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            msg = f"tensor {name!r} has no valid dtype/shape/data_offsets"
            raise _NotThisFormat(msg)
        if itemsize is not None and end - begin != count * itemsize:
            msg = (
                f"tensor {name!r}: {dtype} {shape} needs {count * itemsize} bytes, "
                f"data_offsets give {end - begin}"
            )
            raise _NotThisFormat(msg)
        dtypes[dtype] += 1
        parameters += count
        data_end = max(data_end, int(end))
    if 8 + n + data_end > size:
        msg = f"tensor data ends at byte {8 + n + data_end}, the file at {size}"
        raise _NotThisFormat(msg)
    metadata = {
        "tensors": len(header),
        "dtypes": dict(sorted(dtypes.items())),
        "parameters": parameters,
        "header_bytes": n,
        "user_metadata": {str(k): str(v) for k, v in dict(user_meta).items()},
    }
    return ModelInfo("safetensors", metadata=metadata)


# --------------------------------------------------------------------------------------------
# XGBoost: JSON and UBJSON


def _looks_like_json_object(head: bytes, size: int) -> bool:
    return head.lstrip()[:1] == b"{"


def _looks_like_ubj(head: bytes, size: int) -> bool:
    return head[:1] == b"{" and head[1:2] in (b"i", b"U", b"I", b"l", b"L")


def _parse_xgboost_json(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    try:
        with p.open("rb") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"not JSON: {exc}"
        raise _NotThisFormat(msg) from None
    return ModelInfo("xgboost-json", metadata=_xgboost_metadata(doc))


def _parse_xgboost_ubj(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    with p.open("rb") as f:
        data = f.read()
    try:
        doc, end = _Ubj(data).value(0)
    except (IndexError, struct.error, UnicodeDecodeError, RecursionError) as exc:
        msg = f"not UBJSON: {type(exc).__name__} {exc}"
        raise _NotThisFormat(msg) from None
    if end != len(data):
        msg = f"UBJSON document ends at byte {end} of {len(data)}"
        raise _NotThisFormat(msg)
    return ModelInfo("xgboost-ubj", metadata=_xgboost_metadata(doc))


def _xgboost_metadata(doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict) or "learner" not in doc or "version" not in doc:
        msg = "no top-level 'learner' and 'version': not an XGBoost model"
        raise _NotThisFormat(msg)
    learner, version = doc["learner"], doc["version"]
    if not isinstance(learner, dict):
        msg = "'learner' is not an object"
        raise _NotThisFormat(msg)
    params = learner.get("learner_model_param") or {}
    booster = learner.get("gradient_booster") or {}
    model = booster.get("model") or (booster.get("gbtree") or {}).get("model") or {}
    trees = model.get("trees")
    n_trees: int | float | str | list[float] | None = (
        len(trees) if isinstance(trees, list) else None
    )
    if n_trees is None:
        n_trees = _as_number((model.get("gbtree_model_param") or {}).get("num_trees"))
    objective = learner.get("objective") or {}
    names = learner.get("feature_names") or []
    types = learner.get("feature_types") or []
    return {
        "xgboost_version": ".".join(str(v) for v in version)
        if isinstance(version, list)
        else str(version),
        "booster": booster.get("name"),
        "objective": objective.get("name") if isinstance(objective, dict) else objective,
        "num_feature": _as_number(params.get("num_feature")),
        "num_class": _as_number(params.get("num_class")),
        "num_target": _as_number(params.get("num_target")),
        "base_score": _as_number(params.get("base_score")),
        "num_trees": n_trees,
        "feature_names": [str(n) for n in names][:_LIST_LIMIT],
        "feature_types": [str(t) for t in types][:_LIST_LIMIT],
        "attributes": {str(k): str(v) for k, v in (learner.get("attributes") or {}).items()},
    }


def _as_number(value: Any) -> int | float | str | list[float] | None:
    """XGBoost writes learner parameters as strings ("10", "5E-1", "[1E-1,2E-1]" for a vector)."""
    if value is None or isinstance(value, int | float):
        return value
    text = str(value).strip()
    if text.startswith("[") or "," in text:
        try:
            return [float(v) for v in text.strip("[]").split(",") if v.strip()]
        except ValueError:
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


class _Ubj:
    """A UBJSON reader for XGBoost's encoding (big-endian; ``$`` typed and ``#`` counted arrays).

    Typed numeric arrays (tree node arrays, millions of entries) are skipped, not decoded: the
    metadata only needs their length, so they come back as ``range`` objects of that length.
    """

    _INTS: ClassVar[dict[str, str]] = {"i": ">b", "U": ">B", "I": ">h", "l": ">i", "L": ">q"}
    _FIXED: ClassVar[dict[str, str]] = {**_INTS, "d": ">f", "D": ">d", "C": ">c"}

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _marker(self, pos: int) -> tuple[str, int]:
        while self.data[pos : pos + 1] == b"N":  # no-op marker
            pos += 1
        return chr(self.data[pos]), pos + 1

    def _fixed(self, marker: str, pos: int) -> tuple[Any, int]:
        fmt = self._FIXED[marker]
        (v,) = struct.unpack_from(fmt, self.data, pos)
        return v, pos + struct.calcsize(fmt)

    def _length(self, pos: int) -> tuple[int, int]:
        marker, pos = self._marker(pos)
        if marker not in self._INTS:
            msg = f"expected an integer length marker, got {marker!r}"
            raise struct.error(msg)
        n, pos = self._fixed(marker, pos)
        if n < 0:
            msg = f"negative length {n} at byte {pos}"
            raise struct.error(msg)
        return int(n), pos

    def _string(self, pos: int) -> tuple[str, int]:
        n, pos = self._length(pos)
        if pos + n > len(self.data):
            msg = f"string of {n} bytes at byte {pos} runs past the end"
            raise IndexError(msg)
        return self.data[pos : pos + n].decode("utf-8"), pos + n

    def value(self, pos: int) -> tuple[Any, int]:
        marker, pos = self._marker(pos)
        return self._typed(marker, pos)

    def _typed(self, marker: str, pos: int) -> tuple[Any, int]:
        if marker == "{":
            return self._object(pos)
        if marker == "[":
            return self._array(pos)
        if marker == "S":
            return self._string(pos)
        if marker == "H":  # high-precision number, a decimal string
            text, pos = self._string(pos)
            return text, pos
        if marker in ("Z", "T", "F"):
            return {"Z": None, "T": True, "F": False}[marker], pos
        if marker in self._FIXED:
            v, pos = self._fixed(marker, pos)
            return (v.decode("latin-1") if marker == "C" else v), pos
        msg = f"unknown UBJSON marker {marker!r} at byte {pos - 1}"
        raise struct.error(msg)

    def _container_header(self, pos: int) -> tuple[str | None, int | None, int]:
        typ: str | None = None
        count: int | None = None
        if self.data[pos : pos + 1] == b"$":
            typ, pos = chr(self.data[pos + 1]), pos + 2
        if self.data[pos : pos + 1] == b"#":
            count, pos = self._length(pos + 1)
        elif typ is not None:
            msg = f"typed container without a count at byte {pos}"
            raise struct.error(msg)
        return typ, count, pos

    def _array(self, pos: int) -> tuple[Any, int]:
        typ, count, pos = self._container_header(pos)
        if typ is not None and typ in self._FIXED and count is not None:
            end = pos + count * struct.calcsize(self._FIXED[typ])
            if end > len(self.data):
                msg = f"typed array of {count} runs past the end"
                raise IndexError(msg)
            return range(count), end
        items: list[Any] = []
        if count is not None:
            for _ in range(count):
                v, pos = self._typed(typ, pos) if typ else self.value(pos)
                items.append(v)
            return items, pos
        while True:
            marker, nxt = self._marker(pos)
            if marker == "]":
                return items, nxt
            v, pos = self._typed(marker, nxt)
            items.append(v)

    def _object(self, pos: int) -> tuple[Any, int]:
        typ, count, pos = self._container_header(pos)
        out: dict[str, Any] = {}
        while count is None or len(out) < count:
            if count is None and self.data[pos : pos + 1] == b"}":
                return out, pos + 1
            key, pos = self._string(pos)
            out[key], pos = self._typed(typ, pos) if typ else self.value(pos)
        return out, pos


# --------------------------------------------------------------------------------------------
# registries


def _looks_like_onnx(head: bytes, size: int) -> bool:
    # Protobuf writers emit fields in number order: ModelProto starts with ir_version (field 1).
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 64


_PARSERS: dict[str, _Parser] = {
    "onnx": _parse_onnx,
    "safetensors": _parse_safetensors,
    "xgboost-json": _parse_xgboost_json,
    "xgboost-ubj": _parse_xgboost_ubj,
}
_SNIFFERS: tuple[tuple[str, Callable[[bytes, int], bool]], ...] = (
    ("safetensors", _looks_like_safetensors),
    ("xgboost-ubj", _looks_like_ubj),
    ("xgboost-json", _looks_like_json_object),
    ("onnx", _looks_like_onnx),
)
