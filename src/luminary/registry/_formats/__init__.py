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
``pickle`` (inside)        a pickle in another container (:mod:`._sniff`):
                          compressed (gzip, zlib, bz2, xz, zstd, lz4), in a zip, ``.npz`` or
                          tar member, or a NumPy array of Python objects.
``opaque``                anything else: accepted, no signature.
========================  =======================================================================

One module per format: :mod:`._onnx`, :mod:`._safetensors`, :mod:`._xgboost` (JSON and UBJSON),
:mod:`._torch` (zip archives: TorchScript or ``torch.save``), :mod:`._pickle` (pickles and their
static scan) and :mod:`._sniff` (pickles inside other containers); :mod:`._types` holds the
values they share.  This module dispatches: code-executing files first, then the format the
caller names, then the content, then the extension.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from luminary.errors import InvalidArgumentError
from luminary.registry._formats._onnx import looks_like_onnx, parse_onnx
from luminary.registry._formats._pickle import pickle_info, sniff_pickle, sniff_protocol01
from luminary.registry._formats._safetensors import looks_like_safetensors, parse_safetensors
from luminary.registry._formats._sniff import find_code
from luminary.registry._formats._torch import inspect_zip
from luminary.registry._formats._types import (
    FORMATS,
    HEAD_BYTES,
    ModelInfo,
    NotThisFormat,
    Parser,
    PickleNotAllowedError,
    TensorSpec,
)
from luminary.registry._formats._xgboost import (
    looks_like_json_object,
    looks_like_ubj,
    parse_xgboost_json,
    parse_xgboost_ubj,
)

__all__ = [
    "FORMATS",
    "ModelInfo",
    "PickleNotAllowedError",
    "TensorSpec",
    "inspect_model",
]

_STRICT_SUFFIXES = {".onnx": "onnx", ".safetensors": "safetensors", ".ubj": "xgboost-ubj"}
_PARSERS: dict[str, Parser] = {
    "onnx": parse_onnx,
    "safetensors": parse_safetensors,
    "xgboost-json": parse_xgboost_json,
    "xgboost-ubj": parse_xgboost_ubj,
}
_SNIFFERS: tuple[tuple[str, Callable[[bytes, int], bool]], ...] = (
    ("safetensors", looks_like_safetensors),
    ("xgboost-ubj", looks_like_ubj),
    ("xgboost-json", looks_like_json_object),
    ("onnx", looks_like_onnx),
)


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
        head = f.read(HEAD_BYTES)
    info = _detect(p, st.st_size, head, format)
    if info.executes_code and not allow_pickle:
        raise PickleNotAllowedError(_refusal(p, info), info)
    return info


def _detect(p: Path, size: int, head: bytes, forced: str | None) -> ModelInfo:
    suffixes = [s.lower() for s in p.suffixes]

    # 1. Anything that executes code on load, whatever the caller or the extension claims.
    zip_info = inspect_zip(p) if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) else None
    if zip_info is not None and zip_info.executes_code:
        return zip_info
    if zip_info is None:
        sniffed = sniff_pickle(p, size, head, suffixes)
        if sniffed is not None:
            return sniffed
    if zip_info is None or zip_info.format == "opaque":
        inside = find_code(p)
        if inside is not None:
            return pickle_info(inside, size)
    if forced == "pickle":
        return pickle_info("declared a pickle by the caller (format='pickle')", size)

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
            except NotThisFormat:
                continue

    # 4. Unrecognised content: an extension that promises a format makes that an error.
    hint = _STRICT_SUFFIXES.get(suffixes[-1] if suffixes else "")
    if hint is not None:
        return _parse_strictly(hint, p, size, head)
    protocol01 = sniff_protocol01(p, size, head)
    return protocol01 if protocol01 is not None else ModelInfo("opaque")


def _parse_strictly(fmt: str, p: Path, size: int, head: bytes) -> ModelInfo:
    try:
        return _PARSERS[fmt](p, size, head, strict=True)
    except NotThisFormat as exc:
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
