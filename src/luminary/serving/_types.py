"""Tensor data types and the typed description of a served model (no I/O).

The protocol names data types as strings (``"FP32"``), the model configuration as an enum
(``TYPE_FP32``) and ONNX Runtime as ``"tensor(float)"``; this module maps between them and
NumPy. ``BYTES`` tensors are not served: the backends here take numeric tensors only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# protocol name → NumPy dtype (little-endian, as the binary extensions carry them)
DTYPES: dict[str, np.dtype[np.generic]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

ONNX_TYPES: dict[str, str] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
    "tensor(bfloat16)": "BF16",
}

# gRPC ``InferTensorContents`` field holding each data type
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def config_type(datatype: str) -> str:
    """``"FP32"`` → ``"TYPE_FP32"`` (the model configuration's spelling)."""
    return "TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}"


def protocol_type(config_name: str) -> str:
    """``"TYPE_FP32"`` → ``"FP32"``."""
    name = config_name.removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


@dataclass(frozen=True)
class TensorConfig:
    """One input or output as the protocol serves it (Triton's ``ModelInput`` /
    ``ModelOutput``): its name, protocol data type (``"FP32"``) and dims per event.

    ``dims`` excludes the batch dimension when the model batches; ``-1`` is a free dimension.
    The model file's own signature, as the registry stores it, is
    :class:`luminary.registry.TensorSpec`.
    """

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return DTYPES[self.datatype]

    def shape(self, batched: bool) -> list[int]:
        """The shape the protocol's metadata shows (``-1`` first for the batch)."""
        return [-1, *self.dims] if batched else list(self.dims)


@dataclass(frozen=True)
class QueuePolicy:
    """How long a request may wait, and how many may wait (0: the server's default)."""

    timeout_us: int = 0
    allow_timeout_override: bool = True
    max_queue_size: int = 0


@dataclass(frozen=True)
class BatchingConfig:
    """The dynamic batcher's settings for one model."""

    enabled: bool = True
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    preserve_ordering: bool = True
    priority_levels: int = 1
    default_priority: int = 1
    queue: QueuePolicy = field(default_factory=QueuePolicy)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the server knows about one model version before it runs it."""

    name: str
    version: str
    platform: str
    backend: str
    max_batch_size: int  # 0: the model does not batch, requests carry full shapes
    inputs: tuple[TensorConfig, ...]
    outputs: tuple[TensorConfig, ...]
    batching: BatchingConfig
    instances: int = 1
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    kind: str = "KIND_AUTO"

    @property
    def batched(self) -> bool:
        return self.max_batch_size > 0

    def input(self, name: str) -> TensorConfig | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None

    def output(self, name: str) -> TensorConfig | None:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        return None
