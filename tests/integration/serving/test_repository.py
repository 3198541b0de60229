"""The model repository over the protocol: a model whose file is garbage is reported not ready
with the reason while the others serve; the repository extension loads and unloads models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from luminary.testing.models import mlp
from tests.integration.serving._support import (
    Reference,
    mlp_input,
    open_http_client,
    start_server,
)

EXPLICIT = {"model_control": "explicit"}  # the repository endpoints may load and unload
GARBAGE = b"\x08\x07garbage, not an ONNX model\xff\xfe" * 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mlp`` (Triton layout) and ``broken.onnx``, a file of garbage bytes."""
    root = tmp_path_factory.mktemp("repository")
    mlp(root / "mlp" / "1" / "model.onnx")
    (root / "broken.onnx").write_bytes(GARBAGE)
    return root


@pytest.fixture(scope="module")
def reference(folder: Path) -> Reference:
    return Reference({"mlp": folder / "mlp" / "1" / "model.onnx"})


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Any]:
    server = start_server(folder, serve_options=EXPLICIT)
    yield server
    server.stop(grace=10)


def infer_http(client: Any, model: str, array: np.ndarray) -> np.ndarray:
    tensor = httpclient.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor]).as_numpy("probabilities")


def infer_grpc(client: Any, model: str, array: np.ndarray) -> np.ndarray:
    tensor = grpcclient.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return client.infer(model, [tensor]).as_numpy("probabilities")


def test_a_garbage_model_is_not_ready_and_the_index_gives_the_reason(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    rows = {row["name"]: row for row in http_client.get_model_repository_index()}
    assert rows["mlp"]["state"] == "READY"
    assert rows["broken"]["state"] == "UNAVAILABLE"
    assert "broken.onnx" in rows["broken"]["reason"]
    assert "onnxruntime" in rows["broken"]["reason"]
    grows = {m.name: m for m in grpc_client.get_model_repository_index().models}
    assert grows["broken"].state == "UNAVAILABLE"
    assert grows["broken"].reason == rows["broken"]["reason"]
    assert http_client.is_model_ready("broken") is False
    assert grpc_client.is_model_ready("broken") is False
    assert http_client.is_model_ready("mlp") is True


def test_the_index_of_ready_models_leaves_the_broken_one_out(server: Any) -> None:
    url = f"http://127.0.0.1:{server.http_port}/v2/repository/index"
    everything = httpx.post(url, json={}, timeout=10).json()
    assert {r["name"] for r in everything} == {"mlp", "broken"}
    ready = httpx.post(url, json={"ready": True}, timeout=10).json()
    assert [r["name"] for r in ready] == ["mlp"]


def test_the_server_is_live_but_not_ready_while_a_model_is_broken(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    assert http_client.is_server_live() is True
    assert grpc_client.is_server_live() is True
    assert http_client.is_server_ready() is False  # every model must be ready (strict)
    assert grpc_client.is_server_ready() is False


def test_requests_to_a_broken_model_are_unavailable_with_the_reason(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    with pytest.raises(httpclient.InferenceServerException) as info:
        infer_http(http_client, "broken", mlp_input(1))
    assert info.value.status() == "503"
    assert "broken.onnx" in info.value.message()
    with pytest.raises(grpcclient.InferenceServerException) as ginfo:
        infer_grpc(grpc_client, "broken", mlp_input(1))
    assert ginfo.value.status() == "StatusCode.UNAVAILABLE"
    assert "broken.onnx" in ginfo.value.message()


def test_the_other_model_serves_beside_the_broken_one(
    http_client: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
    reference: Reference,
) -> None:
    array = mlp_input(3)
    expected = reference("mlp", {"x": array})
    np.testing.assert_allclose(infer_http(http_client, "mlp", array), expected, rtol=1e-5)
    np.testing.assert_allclose(infer_grpc(grpc_client, "mlp", array), expected, rtol=1e-5)


def test_loading_a_garbage_model_fails_with_the_reason(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    with pytest.raises(httpclient.InferenceServerException) as info:
        http_client.load_model("broken")
    assert info.value.status() == "400"
    assert "broken.onnx" in info.value.message()
    with pytest.raises(grpcclient.InferenceServerException) as ginfo:
        grpc_client.load_model("broken")
    assert ginfo.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "broken.onnx" in ginfo.value.message()
    assert http_client.is_model_ready("broken") is False


def test_loading_or_unloading_an_unknown_model_is_not_found(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    for call in (http_client.load_model, http_client.unload_model):
        with pytest.raises(httpclient.InferenceServerException) as info:
            call("nope")
        assert info.value.status() == "404"
    for gcall in (grpc_client.load_model, grpc_client.unload_model):
        with pytest.raises(grpcclient.InferenceServerException) as ginfo:
            gcall("nope")
        assert ginfo.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_unload_then_load_a_model(
    protocol: str,
    http_client: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
    reference: Reference,
) -> None:
    client: Any = http_client if protocol == "http" else grpc_client
    error: Any = (
        httpclient.InferenceServerException
        if protocol == "http"
        else grpcclient.InferenceServerException
    )
    array = mlp_input(2, seed=3)
    try:
        client.unload_model("mlp")
        assert http_client.is_model_ready("mlp") is False
        assert grpc_client.is_model_ready("mlp") is False
        row = next(r for r in http_client.get_model_repository_index() if r["name"] == "mlp")
        assert (row["state"], row["reason"]) == ("UNAVAILABLE", "unloaded")
        with pytest.raises(error):
            infer_http(http_client, "mlp", array)
        with pytest.raises(error if protocol == "grpc" else grpcclient.InferenceServerException):
            infer_grpc(grpc_client, "mlp", array)
    finally:
        client.load_model("mlp")
    assert http_client.is_model_ready("mlp") is True
    assert grpc_client.is_model_ready("mlp") is True
    expected = reference("mlp", {"x": array})
    np.testing.assert_allclose(infer_http(http_client, "mlp", array), expected, rtol=1e-5)
    np.testing.assert_allclose(infer_grpc(grpc_client, "mlp", array), expected, rtol=1e-5)


def test_a_repaired_model_file_serves_after_a_load_request(tmp_path: Path) -> None:
    (tmp_path / "broken.onnx").write_bytes(GARBAGE)
    server = start_server(tmp_path, serve_options=EXPLICIT)
    try:
        with open_http_client(server.http_port) as client:
            assert client.is_model_ready("broken") is False
            repaired = mlp(tmp_path / "broken.onnx", seed=5)
            client.load_model("broken")
            assert client.is_model_ready("broken") is True
            assert client.is_server_ready() is True
            array = mlp_input(4)
            np.testing.assert_allclose(
                infer_http(client, "broken", array),
                Reference({"broken": repaired})("broken", {"x": array}),
                rtol=1e-5,
            )
    finally:
        server.stop(grace=10)
