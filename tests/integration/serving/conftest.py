"""Fixtures: a model folder in a temporary directory and an in-process inference server on
free ports, both built once per module; the official Triton clients, closed after each test.

Without the ``serve``, ``onnx`` and ``triton-client`` extras the whole folder skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests._components import import_component
from tests.integration.serving._support import (
    ModelFolder,
    Reference,
    build_model_folder,
    open_http_client,
    start_server,
)

for _module in ("onnx", "onnxruntime", "grpc", "uvicorn"):
    pytest.importorskip(_module, reason=f"{_module} is missing: pip install -e '.[dev]'")
for _module in ("tritonclient.http", "tritonclient.grpc"):
    import_component(_module, "triton")

if TYPE_CHECKING:
    import grpc
    import httpx
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    from luminary.serving import InferenceServer


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    """``mlp`` (with config.pbtxt), ``mlp_auto`` (without), ``tagger`` and ``counter``."""
    return build_model_folder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def reference(model_folder: ModelFolder) -> Reference:
    return Reference(model_folder.files)


@pytest.fixture(scope="module")
def server(model_folder: ModelFolder) -> Iterator[InferenceServer]:
    """Started once per module, on free loopback ports."""
    server = start_server(model_folder.root)
    yield server
    server.stop(grace=10)


@pytest.fixture
def http_client(server: InferenceServer) -> Iterator[httpclient.InferenceServerClient]:
    client = open_http_client(server.http_port, concurrency=4)
    yield client
    client.close()


@pytest.fixture
def grpc_client(server: InferenceServer) -> Iterator[grpcclient.InferenceServerClient]:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    yield client
    client.close()


@pytest.fixture
def http(server: InferenceServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the server's HTTP port, for raw bodies."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as client:
        yield client


@pytest.fixture
def channel(server: InferenceServer) -> Iterator[grpc.Channel]:
    """A plain gRPC channel to the server, for raw messages."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield channel
