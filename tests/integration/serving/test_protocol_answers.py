"""Answers a Triton client must be able to rely on: an unknown version is NOT_FOUND (not
UNAVAILABLE, which SONIC reads as "fall back and retry"), a version that is no number, a
``parameters`` that is no object and ``null`` in tensor data are refused (never NaN), requests
with sequence controls are refused by a model without a sequence batcher, and the repository
endpoints refuse to load or unload unless the server runs with ``--model-control explicit``."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2

from tests.integration.serving._support import Reference, mlp_input, open_http_client
from tests.integration.serving.test_bad_input import assert_serves, model_infer

X1 = {"name": "x", "datatype": "FP32", "shape": [1, 16]}


def infer_body(**fields: Any) -> bytes:
    return json.dumps({"inputs": [{**X1, "data": [0.5] * 16}], **fields}).encode()


def test_an_unknown_version_is_not_found_over_both_protocols(
    http: httpx.Client, channel: grpc.Channel
) -> None:
    answer = http.post("/v2/models/mlp/versions/7/infer", content=infer_body())
    assert answer.status_code == 404, answer.text
    assert "no version 7" in answer.json()["error"]
    assert "1" in answer.json()["error"]  # the versions it has
    assert http.get("/v2/models/mlp/versions/7").status_code == 404
    assert http.get("/v2/models/mlp/versions/7/stats").status_code == 404
    request = service_pb2.ModelInferRequest(model_name="mlp", model_version="7")
    request.inputs.add(**X1).contents.fp32_contents.extend([0.5] * 16)
    with pytest.raises(grpc.RpcError) as info:
        model_infer(channel)(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value.details()


@pytest.mark.parametrize("version", ["one", "-1", "1.0", "%C2%B2", "9" * 30])
def test_a_version_that_is_no_number_is_refused(version: str, http: httpx.Client) -> None:
    answer = http.post(f"/v2/models/mlp/versions/{version}/infer", content=infer_body())
    assert answer.status_code == 400, answer.text
    assert "not a version number" in answer.json()["error"]


def test_a_grpc_version_that_is_no_number_is_invalid(channel: grpc.Channel) -> None:
    request = service_pb2.ModelInferRequest(model_name="mlp", model_version="²")
    request.inputs.add(**X1).contents.fp32_contents.extend([0.5] * 16)
    with pytest.raises(grpc.RpcError) as info:
        model_infer(channel)(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "'²'" in info.value.details()


@pytest.mark.parametrize("value", [0, False, [], "", "binary", 3])
@pytest.mark.parametrize("where", ["request", "input", "output"])
def test_parameters_that_are_no_object_are_refused(
    where: str, value: Any, http: httpx.Client, server: Any, reference: Reference
) -> None:
    request: dict[str, Any] = {"inputs": [{**X1, "data": [0.5] * 16}]}
    if where == "request":
        request["parameters"] = value
    elif where == "input":
        request["inputs"][0]["parameters"] = value
    else:
        request["outputs"] = [{"name": "probabilities", "parameters": value}]
    answer = http.post("/v2/models/mlp/infer", content=json.dumps(request).encode())
    assert answer.status_code == 400, answer.text
    assert "'parameters' must be an object" in answer.json()["error"]
    assert_serves(server, reference)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([None] + [0.5] * 15, "null"),
        ([[0.5] * 15 + [None]], "null"),
        (["0.5"] * 16, "strings"),
    ],
)
def test_null_or_strings_in_tensor_data_are_refused_never_nan(
    data: list[Any], words: str, http: httpx.Client
) -> None:
    body = json.dumps({"inputs": [{**X1, "data": data}]}).encode()
    answer = http.post("/v2/models/mlp/infer", content=body)
    assert answer.status_code == 400, answer.text
    assert "'x'" in answer.json()["error"]
    assert words in answer.json()["error"]


def test_a_null_integer_or_boolean_is_refused(http: httpx.Client) -> None:
    body = {
        "inputs": [{"name": "hits", "datatype": "UINT8", "shape": [1, 4], "data": [1, None, 2, 3]}]
    }
    answer = http.post("/v2/models/counter/infer", content=json.dumps(body).encode())
    assert answer.status_code == 400, answer.text
    fraction = {**body["inputs"][0], "data": [1.5, 0, 0, 0]}  # no silent truncation to 1
    answer = http.post("/v2/models/counter/infer", content=json.dumps({"inputs": [fraction]}))
    assert answer.status_code == 400, answer.text
    assert "whole numbers" in answer.json()["error"]


def test_sequence_controls_are_refused_over_both_protocols(server: Any) -> None:
    array = mlp_input(1)
    tensor: Any = httpclient.InferInput("x", list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    with open_http_client(server.http_port) as client:
        with pytest.raises(httpclient.InferenceServerException) as info:
            client.infer("mlp", [tensor], sequence_id=42, sequence_start=True)
        assert str(info.value.status()) == "400"
        assert "sequence_id=42" in info.value.message()
        assert "sequence batching" in info.value.message()
    g: Any = grpcclient.InferInput("x", list(array.shape), "FP32")
    g.set_data_from_numpy(array)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        with pytest.raises(grpcclient.InferenceServerException) as ginfo:
            client.infer("mlp", [g], sequence_id=42, sequence_end=True)
        assert ginfo.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert "sequence batching" in ginfo.value.message()
        answer = client.infer("mlp", [g]).as_numpy("probabilities")  # stateless still serves
        assert answer is not None
        np.testing.assert_allclose(answer.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        client.close()


def test_load_and_unload_are_refused_without_explicit_model_control(server: Any) -> None:
    with open_http_client(server.http_port) as client:
        for call in (client.load_model, client.unload_model):
            with pytest.raises(httpclient.InferenceServerException) as info:
                call("mlp")
            assert str(info.value.status()) == "503"
            assert "--model-control explicit" in info.value.message()
        assert client.is_model_ready("mlp") is True
    gclient = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    try:
        for gcall in (gclient.load_model, gclient.unload_model):
            with pytest.raises(grpcclient.InferenceServerException) as ginfo:
                gcall("mlp")
            assert ginfo.value.status() == "StatusCode.UNAVAILABLE"
            assert "--model-control explicit" in ginfo.value.message()
        assert gclient.is_model_ready("mlp") is True
    finally:
        gclient.close()
