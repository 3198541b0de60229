"""ONNX: walk the protobuf wire format, keep the structure, skip the weights, parse with onnx.

Only the model's structure is read: initializer payloads and external data are skipped by a
wire-format walk over a memory map, so memory stays small for multi-GB models; the ``onnx``
package (the ``onnx`` extra) parses the skeleton that remains into the signature and metadata.
"""

from __future__ import annotations

import math
import mmap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminary._optional import require
from luminary.registry._formats._types import ModelInfo, NotThisFormat, Shape, TensorSpec

if TYPE_CHECKING:
    from onnx import ModelProto, TypeProto

__all__ = ["looks_like_onnx", "parse_onnx"]


def looks_like_onnx(head: bytes, size: int) -> bool:
    # Protobuf writers emit fields in number order: ModelProto starts with ir_version (field 1).
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 64


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
_PURPOSE = "Reading ONNX signatures"


class _Wire:
    """Just enough of the protobuf wire format to walk a file without loading it."""

    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            if pos >= end:
                msg = f"truncated varint at byte {pos}"
                raise NotThisFormat(msg)
            b = self.buf[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value, pos
            shift += 7
            if shift >= 70:
                msg = f"malformed varint ending at byte {pos}"
                raise NotThisFormat(msg)

    def fields(self, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
        """``(field, wire_type, tag_start, value_start, value_end)`` for each field."""
        pos = start
        while pos < end:
            tag_start = pos
            key, pos = self.varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                msg = f"invalid field number 0 at byte {tag_start}"
                raise NotThisFormat(msg)
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
                raise NotThisFormat(msg)
            if pos > end:
                msg = (
                    f"field {number} at byte {tag_start} runs to byte {pos}, past the end of "
                    f"its message at byte {end} (truncated file?)"
                )
                raise NotThisFormat(msg)
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
            raise NotThisFormat(msg)
        if wt != expected:
            msg = f"ModelProto field {number} has wire type {wt} at byte {tag}"
            raise NotThisFormat(msg)
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
            raise NotThisFormat(msg)
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


def parse_onnx(p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo:
    if size == 0:
        msg = "the file is empty"
        raise NotThisFormat(msg)
    with p.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        skeleton = _onnx_skeleton(_Wire(buf), size, strict)
    require("onnx", "onnx", _PURPOSE)
    from onnx import ModelProto

    # google.protobuf ships no type stubs; DecodeError is what ParseFromString raises.
    protobuf = require("google.protobuf.message", "onnx", _PURPOSE, package="protobuf")
    decode_error: type[Exception] = protobuf.DecodeError

    model = ModelProto()
    try:
        model.ParseFromString(skeleton)
    except decode_error as exc:
        msg = f"protobuf parser: {exc}"
        raise NotThisFormat(msg) from None
    if model.ir_version <= 0 or not model.HasField("graph"):
        msg = "no ir_version or no graph: not an ONNX ModelProto"
        raise NotThisFormat(msg)
    if not strict and not model.opset_import:
        msg = "no opset_import"
        raise NotThisFormat(msg)
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
