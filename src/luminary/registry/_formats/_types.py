"""The values every format module shares: :class:`TensorSpec`, :class:`ModelInfo`, the refusal
error, the parser interface, and the limits on what is read from a file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from luminary.errors import InvalidArgumentError

__all__ = [
    "FORMATS",
    "HEAD_BYTES",
    "LIST_LIMIT",
    "ModelInfo",
    "NotThisFormat",
    "Parser",
    "PickleNotAllowedError",
    "Shape",
    "TensorSpec",
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

HEAD_BYTES = 64  # bytes of the file's start that the sniffers look at
LIST_LIMIT = 50  # longest list of names kept in metadata


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


class Parser(Protocol):
    def __call__(self, p: Path, size: int, head: bytes, *, strict: bool) -> ModelInfo: ...


class NotThisFormat(Exception):
    """The bytes are not (valid) in the format being tried; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
