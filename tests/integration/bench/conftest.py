"""The load generator against an in-process inference server: without the ``serve`` and
``onnx`` extras the whole folder skips."""

from __future__ import annotations

import pytest

for _module in ("onnx", "onnxruntime", "grpc", "uvicorn"):
    pytest.importorskip(_module, reason=f"{_module} is missing: pip install -e '.[dev]'")
