"""Backends: what runs a model. ONNX Runtime is built in; others plug in by name.

A backend class is registered in :data:`BACKENDS` under the name a ``config.pbtxt`` gives in
``backend:`` (or the ``platform:`` it maps from). PyTorch, XGBoost or Python backends plug in
the same way: implement :class:`Backend` and add the class here.
"""

from __future__ import annotations

from luminary.serving.backends._base import Backend, BackendOptions, LoadError
from luminary.serving.backends._onnxruntime import OnnxRuntimeBackend

BACKENDS: dict[str, type[Backend]] = {"onnxruntime": OnnxRuntimeBackend}
PLATFORMS: dict[str, str] = {"onnxruntime_onnx": "onnxruntime"}
FILE_SUFFIXES: dict[str, str] = {".onnx": "onnxruntime"}

__all__ = [
    "BACKENDS",
    "FILE_SUFFIXES",
    "PLATFORMS",
    "Backend",
    "BackendOptions",
    "LoadError",
    "OnnxRuntimeBackend",
]
