"""A model the server cannot load (here: one with a BYTES tensor) is reported unavailable with
its reason while the other models serve; ``luminary serve`` starts, and the load API answers
400 / INVALID_ARGUMENT with the reason, never 500 / UNKNOWN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from luminary.testing.models import mlp
from tests.integration.serving._support import (
    ANNOUNCE,
    Reference,
    luminary_serve,
    mlp_input,
    open_http_client,
    save_graph,
    start_server,
)


def words_model(path: Path) -> Path:
    """``text`` [batch] STRING → ``same`` [batch] STRING (an Identity)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])],
        "words",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])],
    )
    return save_graph(graph, path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    mlp(root / "mlp" / "1" / "model.onnx")
    words_model(root / "words" / "1" / "model.onnx")
    return root


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Any]:
    server = start_server(folder, serve_options={"model_control": "explicit"})
    yield server
    server.stop(grace=10)


def test_a_bytes_model_is_unavailable_with_its_reason_and_the_others_serve(
    server: Any, folder: Path
) -> None:
    rows = {r["name"]: r for r in server.repository.index()}
    assert rows["mlp"]["state"] == "READY"
    assert rows["words"]["state"] == "UNAVAILABLE"
    assert "'text' is a BYTES tensor" in rows["words"]["reason"]
    array = mlp_input(3)
    tensor: Any = httpclient.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    with open_http_client(server.http_port) as client:
        got = client.infer("mlp", [tensor]).as_numpy("probabilities")
        assert client.is_model_ready("words") is False
    expected = Reference({"mlp": folder / "mlp" / "1" / "model.onnx"})("mlp", {"x": array})
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_loading_a_bytes_model_answers_the_reason_not_a_server_error(server: Any) -> None:
    with open_http_client(server.http_port) as client:
        with pytest.raises(httpclient.InferenceServerException) as info:
            client.load_model("words")
        assert str(info.value.status()) == "400"
        assert "BYTES" in info.value.message()
    gclient = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        with pytest.raises(grpcclient.InferenceServerException) as ginfo:
            gclient.load_model("words")
        assert ginfo.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "BYTES" in ginfo.value.message()
        assert gclient.is_model_ready("mlp") is True
    finally:
        gclient.close()


def test_luminary_serve_starts_beside_a_bytes_model(folder: Path) -> None:
    args = ["--repository", str(folder), "--http-port", "0", "--grpc-port", "0"]
    with luminary_serve(*args, "--metrics-port", "0") as serve:
        serve.wait_for(ANNOUNCE)
        serve.wait_for(re.compile(r"words\s.*UNAVAILABLE"))
        assert serve.terminate() == 0
