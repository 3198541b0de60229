"""ONNX Runtime backend: CPU by default, CUDA and TensorRT when present and allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from luminary._optional import require
from luminary.serving._types import ONNX_TYPES, TensorConfig
from luminary.serving.backends._base import Backend, BackendOptions, LoadError


def _import_ort() -> Any:
    return require("onnxruntime", "serve", "serve ONNX models")


def _providers(ort: Any, options: BackendOptions) -> list[Any]:
    """Execution providers in order of preference, honouring the instance kind.

    ``parameters {key: "execution_providers" value: "cuda,cpu"}`` in a ``config.pbtxt`` picks
    them explicitly; otherwise TensorRT and CUDA are used when installed, unless the instance
    kind is ``KIND_CPU``.
    """
    available = set(ort.get_available_providers())
    names = {
        "tensorrt": "TensorrtExecutionProvider",
        "cuda": "CUDAExecutionProvider",
        "cpu": "CPUExecutionProvider",
    }
    wanted = options.parameters.get("execution_providers")
    if wanted:
        chosen = []
        for item in wanted.split(","):
            key = item.strip().lower()
            if key not in names:
                msg = (
                    f"execution provider {item!r} is not known; use a comma-separated list of "
                    f"{', '.join(names)}"
                )
                raise LoadError(msg)
            chosen.append(names[key])
    elif options.kind == "KIND_CPU":
        chosen = ["CPUExecutionProvider"]
    else:
        chosen = [
            "TensorrtExecutionProvider",
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
    device_id = options.gpus[0] if options.gpus else 0
    providers: list[Any] = []
    for name in chosen:
        if name not in available:
            continue
        if name == "CPUExecutionProvider":
            providers.append(name)
        else:
            providers.append((name, {"device_id": device_id}))
    if options.kind == "KIND_GPU" and not any(isinstance(p, tuple) for p in providers):
        msg = (
            "instance kind KIND_GPU asks for a GPU, but this onnxruntime has no CUDA or "
            "TensorRT provider; install onnxruntime-gpu or use KIND_CPU"
        )
        raise LoadError(msg)
    return providers or ["CPUExecutionProvider"]


def _specs(args: Any) -> tuple[TensorConfig, ...]:
    specs = []
    for arg in args:
        datatype = ONNX_TYPES.get(arg.type, arg.type)
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
        specs.append(TensorConfig(arg.name, datatype, dims))
    return tuple(specs)


class OnnxRuntimeBackend(Backend):
    """An ``onnxruntime.InferenceSession`` with explicit intra- and inter-op threads."""

    name = "onnxruntime"
    platform = "onnxruntime_onnx"

    def __init__(self, session: Any, path: Path) -> None:
        self._session = session
        self._path = path
        self._inputs = _specs(session.get_inputs())
        self._outputs = _specs(session.get_outputs())
        provider = session.get_providers()[0]
        self._device = "cpu" if provider == "CPUExecutionProvider" else "cuda"

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> OnnxRuntimeBackend:
        ort = _import_ort()
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, options.intra_op_threads)
        so.inter_op_num_threads = max(1, options.inter_op_threads)
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A shared node: idle intra-op threads sleep instead of spinning on a core.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        providers = _providers(ort, options)
        try:
            session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = f"cannot load {path.name} with onnxruntime: {first}"
            raise LoadError(msg) from exc
        return cls(session, path)

    @property
    def inputs(self) -> tuple[TensorConfig, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorConfig, ...]:
        return self._outputs

    @property
    def device(self) -> str:
        return self._device

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> list[np.ndarray]:
        result: list[np.ndarray] = self._session.run(outputs, feeds)
        return result

    def close(self) -> None:
        self._session = None
