"""Inference as a service: KServe v2 / Triton protocol over HTTP and gRPC, dynamic batching.

Layers, from the wire inwards:

* ``_http`` (bare ASGI on uvicorn) and ``_grpc`` (grpcio, service
  ``inference.GRPCInferenceService``) decode requests; ``_frontend`` holds the answers both share;
* ``_core`` checks tensors against the model and queues them;
* ``_batcher`` merges requests from many clients into batches and runs them on a backend
  (``backends/``: ONNX Runtime built in) off the event loop;
* ``_repository`` loads models from a folder or the registry and hot-swaps them when an alias
  moves; ``_config`` reads Triton's ``config.pbtxt``;
* ``_metrics`` exposes Prometheus metrics with Triton's names; ``_stats`` feeds them;
* ``_server`` runs it all;
* ``_proto`` holds the protocol's generated messages; clients of the protocol (the load
  generator in :mod:`luminary.bench`) use them as :data:`grpc_service_pb2`, and the data types
  as :data:`DTYPES`.
"""

from __future__ import annotations

from luminary.serving._config import DEFAULT_MAX_BATCH_SIZE
from luminary.serving._errors import (
    InvalidInputError,
    ModelExecutionError,
    ModelNotFoundError,
    ServingError,
    UnavailableError,
)
from luminary.serving._frontend import check_model_control
from luminary.serving._proto import grpc_service_pb2
from luminary.serving._repository import (
    FolderSource,
    LoadedModel,
    ModelRepository,
    RegistrySource,
    Source,
)
from luminary.serving._server import InferenceServer, ServeOptions
from luminary.serving._types import DTYPES, BatchingConfig, ModelSpec, TensorConfig
from luminary.serving._workers import run_workers, watch_parent

__all__ = [
    "check_model_control",
    "run_workers",
    "watch_parent",
    "DEFAULT_MAX_BATCH_SIZE",
    "DTYPES",
    "BatchingConfig",
    "FolderSource",
    "InferenceServer",
    "InvalidInputError",
    "LoadedModel",
    "ModelExecutionError",
    "ModelNotFoundError",
    "ModelRepository",
    "ModelSpec",
    "RegistrySource",
    "ServeOptions",
    "ServingError",
    "Source",
    "TensorConfig",
    "UnavailableError",
    "grpc_service_pb2",
]
