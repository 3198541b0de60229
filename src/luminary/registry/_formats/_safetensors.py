"""safetensors: an 8-byte little-endian header length, then a JSON header, then the tensors.

The header is read and checked against the file (every tensor's dtype, shape and byte range);
the tensor data is never read.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from pathlib import Path

from luminary.registry._formats._types import ModelInfo, NotThisFormat

__all__ = ["looks_like_safetensors", "parse_safetensors"]

_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors format's own limit

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


def looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(size - 8, _SAFETENSORS_MAX_HEADER) and head[8:9] == b"{"


def parse_safetensors(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    if size < 8:
        msg = f"{size} bytes is shorter than the 8-byte header length"
        raise NotThisFormat(msg)
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= min(size - 8, _SAFETENSORS_MAX_HEADER):
        msg = f"header length {n} does not fit a {size}-byte file"
        raise NotThisFormat(msg)
    with p.open("rb") as f:
        f.seek(8)
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"the header is not UTF-8 JSON: {exc}"
        raise NotThisFormat(msg) from None
    if not isinstance(header, dict):
        msg = "the header is not a JSON object"
        raise NotThisFormat(msg)
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
            raise NotThisFormat(msg)
        if itemsize is not None and end - begin != count * itemsize:
            msg = (
                f"tensor {name!r}: {dtype} {shape} needs {count * itemsize} bytes, "
                f"data_offsets give {end - begin}"
            )
            raise NotThisFormat(msg)
        dtypes[dtype] += 1
        parameters += count
        data_end = max(data_end, int(end))
    if 8 + n + data_end > size:
        msg = f"tensor data ends at byte {8 + n + data_end}, the file at {size}"
        raise NotThisFormat(msg)
    metadata = {
        "tensors": len(header),
        "dtypes": dict(sorted(dtypes.items())),
        "parameters": parameters,
        "header_bytes": n,
        "user_metadata": {str(k): str(v) for k, v in dict(user_meta).items()},
    }
    return ModelInfo("safetensors", metadata=metadata)
