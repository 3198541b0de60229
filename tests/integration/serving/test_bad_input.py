"""Malformed requests over HTTP and gRPC: each is refused with HTTP 400 / INVALID_ARGUMENT and a
message naming the tensor, unknown models with 404 / NOT_FOUND, and the server keeps serving.
A hypothesis fuzz test sends random bodies and messages and never sees a server error."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2

from tests.integration.serving._support import (
    TAGGER_SHAPE,
    Reference,
    mlp_input,
    open_http_client,
)

HEADER = "Inference-Header-Content-Length"
GIGANTIC = 10**9


def model_infer(channel: grpc.Channel) -> Callable[..., Any]:
    return channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=service_pb2.ModelInferRequest.SerializeToString,
        response_deserializer=service_pb2.ModelInferResponse.FromString,
    )


def binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {HEADER: str(len(head))}


def assert_serves(server: Any, reference: Reference) -> None:
    """A good request still succeeds over both protocols, with the right answer."""
    array = mlp_input(2, seed=42)
    expected = reference("mlp", {"x": array})
    with open_http_client(server.http_port) as client:
        tensor = httpclient.InferInput("x", [2, 16], "FP32")
        tensor.set_data_from_numpy(array)
        got = client.infer("mlp", [tensor]).as_numpy("probabilities")
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as gclient:
        gtensor = grpcclient.InferInput("x", [2, 16], "FP32")
        gtensor.set_data_from_numpy(array)
        got = gclient.infer("mlp", [gtensor]).as_numpy("probabilities")
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# -- the official clients ---------------------------------------------------------------------

CLIENT_CASES = {
    # case: (input name, datatype, array, what the message must contain)
    "wrong-name": ("y", "FP32", mlp_input(1), ["'y'", "'x'"]),
    "wrong-dtype": ("x", "FP64", mlp_input(1).astype(np.float64), ["'x'", "FP64", "FP32"]),
    "wrong-shape": ("x", "FP32", mlp_input(2)[:, :15], ["'x'", "[2, 15]"]),
    "too-many-events": ("x", "FP32", mlp_input(65), ["'x'", "65"]),
    "no-events": ("x", "FP32", mlp_input(0), ["'x'"]),
}


@pytest.mark.parametrize("case", CLIENT_CASES)
def test_http_refuses_bad_inputs_naming_the_tensor(
    case: str, server: Any, http_client: httpclient.InferenceServerClient, reference: Reference
) -> None:
    name, datatype, array, words = CLIENT_CASES[case]
    tensor = httpclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=case != "wrong-shape")
    with pytest.raises(httpclient.InferenceServerException) as info:
        http_client.infer("mlp", [tensor])
    assert info.value.status() == "400"
    for word in words:
        assert word in info.value.message()
    assert_serves(server, reference)


@pytest.mark.parametrize("case", CLIENT_CASES)
def test_grpc_refuses_bad_inputs_naming_the_tensor(
    case: str, server: Any, grpc_client: grpcclient.InferenceServerClient, reference: Reference
) -> None:
    name, datatype, array, words = CLIENT_CASES[case]
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    with pytest.raises(grpcclient.InferenceServerException) as info:
        grpc_client.infer("mlp", [tensor])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    for word in words:
        assert word in info.value.message()
    assert_serves(server, reference)


def test_unknown_model_is_not_found(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    tensor = httpclient.InferInput("x", [1, 16], "FP32")
    tensor.set_data_from_numpy(mlp_input(1))
    with pytest.raises(httpclient.InferenceServerException) as info:
        http_client.infer("mpl", [tensor])
    assert info.value.status() == "404"
    assert "'mpl'" in info.value.message()
    assert "'mlp'" in info.value.message()  # the nearest name
    with pytest.raises(httpclient.InferenceServerException) as info:
        http_client.get_model_metadata("mpl")
    assert info.value.status() == "404"
    gtensor = grpcclient.InferInput("x", [1, 16], "FP32")
    gtensor.set_data_from_numpy(mlp_input(1))
    with pytest.raises(grpcclient.InferenceServerException) as ginfo:
        grpc_client.infer("mpl", [gtensor])
    assert ginfo.value.status() == "StatusCode.NOT_FOUND"
    assert "'mpl'" in ginfo.value.message()
    for call in (grpc_client.get_model_metadata, grpc_client.get_model_config):
        with pytest.raises(grpcclient.InferenceServerException) as ginfo:
            call("mpl")
        assert ginfo.value.status() == "StatusCode.NOT_FOUND"


# -- raw HTTP bodies --------------------------------------------------------------------------

X1 = {"name": "x", "datatype": "FP32", "shape": [1, 16]}
BLOB = mlp_input(1).tobytes()  # 64 bytes


def raw_http_cases() -> dict[str, tuple[bytes, dict[str, str], list[str]]]:
    declared = {**X1, "parameters": {"binary_data_size": 64}}
    truncated_body, truncated_headers = binary_body({"inputs": [declared]}, BLOB[:40])
    short_body, short_headers = binary_body(
        {"inputs": [{**X1, "shape": [2, 16], "parameters": {"binary_data_size": 64}}]}, BLOB
    )
    huge_body, huge_headers = binary_body({"inputs": [{**declared, "shape": [GIGANTIC, 16]}]}, BLOB)
    header_body, _ = binary_body({"inputs": [declared]}, BLOB)
    return {
        # binary_data_size runs past the end of the body
        "truncated-binary": (truncated_body, truncated_headers, ["'x'", "64", "truncated"]),
        # the shape needs more bytes than binary_data_size declares
        "shape-beyond-data": (short_body, short_headers, ["'x'", "[2, 16]", "128"]),
        "gigantic-batch-binary": (huge_body, huge_headers, ["'x'", str(GIGANTIC)]),
        "gigantic-batch-json": (
            json.dumps({"inputs": [{**X1, "shape": [GIGANTIC, 16], "data": [0.0] * 16}]}).encode(),
            {},
            ["'x'", str(GIGANTIC)],
        ),
        "json-data-too-short": (
            json.dumps({"inputs": [{**X1, "data": [0.5] * 15}]}).encode(),
            {},
            ["'x'", "15", "16"],
        ),
        "json-data-not-numbers": (
            json.dumps({"inputs": [{**X1, "data": ["a"] * 16}]}).encode(),
            {},
            ["'x'", "FP32"],
        ),
        "output-parameters-not-an-object": (
            json.dumps(
                {
                    "inputs": [{**X1, "data": [0.5] * 16}],
                    "outputs": [{"name": "probabilities", "parameters": [True]}],
                }
            ).encode(),
            {},
            ["'probabilities'", "parameters"],
        ),
        "header-length-beyond-body": (
            header_body,
            {HEADER: str(len(header_body) + 1)},
            [HEADER, str(len(header_body) + 1)],
        ),
    }


@pytest.mark.parametrize("case", raw_http_cases())
def test_http_refuses_malformed_bodies(
    case: str, server: Any, http: httpx.Client, reference: Reference
) -> None:
    body, headers, words = raw_http_cases()[case]
    response = http.post("/v2/models/mlp/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message
    assert_serves(server, reference)


def test_http_refuses_a_gigantic_batch_of_a_model_that_does_not_limit_it(
    http: httpx.Client,
) -> None:
    """The tagger batches up to the default limit; 10**9 events are refused before any work."""
    shape = [GIGANTIC, *TAGGER_SHAPE]
    tensor = {"name": "constituents", "datatype": "FP32", "shape": shape, "data": [0.0]}
    body = json.dumps({"inputs": [tensor]}).encode()
    response = http.post("/v2/models/tagger/infer", content=body)
    assert response.status_code == 400
    assert "'constituents'" in response.json()["error"]


@pytest.mark.parametrize("value", [256, -1, 2**40])
def test_http_refuses_integers_out_of_the_tensor_range(
    value: int, server: Any, http: httpx.Client, reference: Reference
) -> None:
    tensor = {"name": "hits", "datatype": "UINT8", "shape": [1, 4], "data": [value, 0, 0, 0]}
    response = http.post("/v2/models/counter/infer", content=json.dumps({"inputs": [tensor]}))
    assert response.status_code == 400, response.text
    assert "'hits'" in response.json()["error"]
    assert_serves(server, reference)


@pytest.mark.parametrize("value", [256, 2**32 - 1])
def test_grpc_refuses_integers_out_of_the_tensor_range(
    value: int, server: Any, channel: grpc.Channel, reference: Reference
) -> None:
    request = service_pb2.ModelInferRequest(model_name="counter")
    tensor = request.inputs.add(name="hits", datatype="UINT8", shape=[1, 4])
    tensor.contents.uint_contents.extend([value, 0, 0, 0])
    with pytest.raises(grpc.RpcError) as info:
        model_infer(channel)(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "'hits'" in info.value.details()
    assert_serves(server, reference)


def test_http_unknown_model_version_and_endpoint(http: httpx.Client) -> None:
    body = json.dumps({"inputs": [{**X1, "data": [0.0] * 16}]}).encode()
    assert http.post("/v2/models/nope/infer", content=body).status_code == 404
    assert http.post("/v2/models/mlp/versions/one/infer", content=body).status_code == 400
    assert http.get("/v2/nothing/here").status_code == 404
    assert http.get("/v1/models").status_code == 404


# -- raw gRPC messages ------------------------------------------------------------------------


def grpc_cases() -> dict[str, tuple[Any, list[str]]]:
    def request(shape: list[int], *raw: bytes, datatype: str = "FP32") -> Any:
        r = service_pb2.ModelInferRequest(model_name="mlp")
        r.inputs.add(name="x", datatype=datatype, shape=shape)
        r.raw_input_contents.extend(raw)
        return r

    typed = service_pb2.ModelInferRequest(model_name="mlp")
    typed.inputs.add(name="x", datatype="FP32", shape=[1, 16]).contents.fp32_contents.extend(
        [0.5] * 15
    )
    typed_field = service_pb2.ModelInferRequest(model_name="mlp")
    typed_field.inputs.add(name="x", datatype="FP32", shape=[1, 16]).contents.int_contents.extend(
        [1] * 16
    )
    typed_fp16 = service_pb2.ModelInferRequest(model_name="mlp")
    typed_fp16.inputs.add(name="x", datatype="FP16", shape=[1, 16])
    output = request([1, 16], BLOB)
    output.outputs.add(name="logits")
    return {
        "raw-shorter-than-shape": (request([1, 16], BLOB[:40]), ["'x'", "40", "64"]),
        "shape-beyond-raw": (request([2, 16], BLOB), ["'x'", "[2, 16]", "128"]),
        "gigantic-batch": (request([GIGANTIC, 16], BLOB), ["'x'", str(GIGANTIC)]),
        "negative-dimension": (request([1, -16], BLOB), ["'x'"]),
        "raw-count-mismatch": (request([1, 16], BLOB, BLOB), ["raw_input_contents", "2"]),
        "typed-too-few-values": (typed, ["'x'", "15", "16"]),
        "typed-wrong-field": (typed_field, ["'x'"]),
        "typed-unsupported-type": (typed_fp16, ["'x'", "FP16"]),
        "unknown-output": (output, ["'logits'", "'probabilities'"]),
    }


@pytest.mark.parametrize("case", grpc_cases())
def test_grpc_refuses_malformed_messages(
    case: str, server: Any, channel: grpc.Channel, reference: Reference
) -> None:
    message, words = grpc_cases()[case]
    with pytest.raises(grpc.RpcError) as info:
        model_infer(channel)(message, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for word in words:
        assert word in info.value.details()
    assert_serves(server, reference)


def test_grpc_stream_reports_a_bad_request_and_keeps_streaming(
    grpc_client: grpcclient.InferenceServerClient, reference: Reference
) -> None:
    import queue

    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        good = grpcclient.InferInput("x", [1, 16], "FP32")
        good.set_data_from_numpy(mlp_input(1, seed=9))
        bad = grpcclient.InferInput("y", [1, 16], "FP32")
        bad.set_data_from_numpy(mlp_input(1))
        grpc_client.async_stream_infer("mlp", [bad], request_id="bad")
        grpc_client.async_stream_infer("mlp", [good], request_id="good")
        first, second = results.get(timeout=30), results.get(timeout=30)
    finally:
        grpc_client.stop_stream()
    assert first[0] is None
    assert "'y'" in first[1].message()
    assert second[1] is None
    np.testing.assert_allclose(
        second[0].as_numpy("probabilities"),
        reference("mlp", {"x": mlp_input(1, seed=9)}),
        rtol=1e-5,
        atol=1e-6,
    )


# -- fuzzing ----------------------------------------------------------------------------------

MODELS = {"mlp": ("x", (16,)), "tagger": ("constituents", TAGGER_SHAPE)}
DATATYPES = ["BOOL", "UINT8", "INT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"]
HEADER_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "-+.", min_size=1, max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
SHAPES = st.lists(st.integers(-(2**40), 2**40) | st.sampled_from([0, 1, 16, -1]), max_size=5)
# truthy values that are not a well-formed list of known outputs
BAD_OUTPUTS = st.one_of(
    st.lists(
        JSON.filter(lambda v: not isinstance(v, dict) or v.get("name") != "probabilities")
        | st.fixed_dictionaries({"name": st.just("probabilities"), "parameters": JSON}).filter(
            lambda v: not isinstance(v["parameters"], dict) and bool(v["parameters"])
        ),
        min_size=1,
        max_size=3,
    ),
    st.text(min_size=1, max_size=5),
    st.integers().filter(bool),
)
BAD_PARAMETERS = st.one_of(
    st.lists(JSON, min_size=1, max_size=2),
    st.text(min_size=1, max_size=5),
    st.fixed_dictionaries(
        {},
        optional={
            "priority": st.one_of(st.integers(max_value=-1), st.integers(min_value=2), JSON),
            "timeout": st.one_of(st.integers(max_value=-1), st.text(), st.floats(), st.booleans()),
        },
    ).filter(
        lambda p: any(
            not isinstance(v, int) or isinstance(v, bool) or v < 0 or (k == "priority" and v > 1)
            for k, v in p.items()
        )
    ),
)


def _valid_data(value: Any, count: int) -> bool:
    try:  # float64: a Python float always fits
        return np.asarray(value, dtype=np.float64).size == count
    except (TypeError, ValueError, OverflowError):
        return False


@st.composite
def malformed_http(draw: st.DrawFn) -> tuple[str, dict[str, str], bytes]:
    """(model, headers, body) of a request the server must refuse."""
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    model = draw(st.sampled_from(sorted(MODELS)))
    if kind == "bytes":
        headers = {}
        if draw(st.booleans()):
            headers[HEADER] = draw(HEADER_TEXT | st.integers(-5, 600).map(str))
        return model, headers, draw(st.binary(max_size=600))
    if kind == "json":
        return model, {}, json.dumps(draw(JSON)).encode()
    name, dims = MODELS[model]
    events = draw(st.integers(1, 3))
    array = np.zeros((events, *dims), dtype=np.float32)
    binary = draw(st.booleans())
    tensor: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": [events, *dims]}
    if binary:
        tensor["parameters"] = {"binary_data_size": array.nbytes}
    else:
        tensor["data"] = array.ravel().tolist()
    request: dict[str, Any] = {"inputs": [tensor]}
    mutation = draw(
        st.sampled_from(
            [
                "name",
                "datatype",
                "shape",
                "shape-values",
                "data",
                "extra-input",
                "outputs",
                "parameters",
                "inputs",
                "truncate",
                "binary-size",
                "header-length",
                "model",
            ]
        )
    )
    if mutation == "name":
        tensor["name"] = draw(JSON.filter(lambda v: v != name))
    elif mutation == "datatype":
        tensor["datatype"] = draw((st.sampled_from(DATATYPES) | JSON).filter(lambda v: v != "FP32"))
    elif mutation == "shape":
        tensor["shape"] = draw(SHAPES.filter(lambda v: v != [events, *dims]))
    elif mutation == "shape-values":
        tensor["shape"] = draw(
            st.lists(JSON, min_size=1, max_size=4).filter(
                lambda v: not all(isinstance(d, int) and not isinstance(d, bool) for d in v)
            )
            | JSON.filter(lambda v: not isinstance(v, list))
        )
    elif mutation == "data":
        tensor.pop("parameters", None)
        binary = False
        tensor["data"] = draw(JSON.filter(lambda v: not _valid_data(v, array.size)))
    elif mutation == "extra-input":
        # the same input twice, or one the model does not have (its binary data is missing)
        extra = dict(tensor) if draw(st.booleans()) else {**tensor, "name": "extra"}
        request["inputs"].append(extra)
    elif mutation == "outputs":
        request["outputs"] = draw(BAD_OUTPUTS)
    elif mutation == "parameters":
        request["parameters"] = draw(BAD_PARAMETERS)
    elif mutation == "inputs":
        request["inputs"] = draw(
            st.lists(JSON, max_size=3).filter(lambda v: not any(isinstance(x, dict) for x in v))
            | JSON.filter(lambda v: not isinstance(v, list))
        )
    elif mutation == "model":
        model = draw(st.text(alphabet=string.ascii_letters, min_size=1, max_size=8))
        model = model if model not in MODELS and model != "mlp_auto" else "no-such-model"
    head = json.dumps(request).encode()
    blob = array.tobytes() if binary else b""
    headers = {HEADER: str(len(head))} if binary else {}
    body = head + blob
    if mutation == "binary-size" and binary:
        tensor["parameters"]["binary_data_size"] = draw(
            JSON.filter(lambda v: v != array.nbytes or isinstance(v, bool))
        )
        head = json.dumps(request).encode()
        headers[HEADER] = str(len(head))
        body = head + blob
    elif mutation == "truncate" and binary:
        body = body[: draw(st.integers(0, len(body) - 1))]
    elif mutation == "header-length" and binary:
        headers[HEADER] = str(draw(st.integers(-3, len(body) + 3).filter(lambda v: v != len(head))))
    elif mutation in ("binary-size", "truncate", "header-length"):
        body = body[:-1]  # a JSON request cut short does not parse
    return model, headers, body


FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run, as the API fuzz test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_fuzz_http_never_answers_a_malformed_request_with_a_server_error(
    server: Any, reference: Reference
) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=30) as client:

        @FUZZ
        @given(request=malformed_http())
        def refused(request: tuple[str, dict[str, str], bytes]) -> None:
            model, headers, body = request
            response = client.post(f"/v2/models/{model}/infer", content=body, headers=headers)
            assert 400 <= response.status_code < 500, (response.status_code, response.text)
            assert response.json()["error"]

        refused()
    assert_serves(server, reference)


@st.composite
def malformed_grpc(draw: st.DrawFn) -> Any:
    """A ModelInferRequest the server must refuse: a valid one with one thing broken."""
    model = draw(st.sampled_from(sorted(MODELS)))
    name, dims = MODELS[model]
    events = draw(st.integers(1, 3))
    shape = [events, *dims]
    raw = np.zeros(shape, dtype=np.float32).tobytes()
    request = service_pb2.ModelInferRequest(model_name=model, id=draw(st.text(max_size=4)))
    tensor = request.inputs.add(name=name, datatype="FP32", shape=shape)
    request.raw_input_contents.append(raw)
    mutation = draw(
        st.sampled_from(
            [
                "name",
                "datatype",
                "shape",
                "raw-size",
                "raw-count",
                "typed",
                "extra-input",
                "outputs",
                "parameters",
                "model",
                "version",
            ]
        )
    )
    if mutation == "name":
        tensor.name = draw(st.text(max_size=8).filter(lambda v: v != name))
    elif mutation == "datatype":
        tensor.datatype = draw(
            st.sampled_from(DATATYPES).filter(lambda v: v != "FP32") | st.text(max_size=5)
        )
    elif mutation == "shape":
        del tensor.shape[:]
        dims_ = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 1, 16, -1])
        tensor.shape.extend(draw(st.lists(dims_).filter(lambda v: v != shape)))
    elif mutation == "raw-size":
        wrong_size = st.binary(max_size=2 * len(raw)).filter(lambda v: len(v) != len(raw))
        request.raw_input_contents[0] = draw(wrong_size)
    elif mutation == "raw-count":
        request.raw_input_contents.extend(draw(st.lists(st.binary(max_size=8), min_size=1)))
    elif mutation == "typed":
        del request.raw_input_contents[:]
        tensor.datatype = draw(st.sampled_from(DATATYPES))
        field = draw(
            st.sampled_from(
                [
                    "bool_contents",
                    "int_contents",
                    "int64_contents",
                    "uint_contents",
                    "uint64_contents",
                    "fp32_contents",
                    "fp64_contents",
                ]
            )
        )
        values = draw(st.lists(_typed_for(field), max_size=2 * int(np.prod(shape))))
        if tensor.datatype == "FP32" and field == "fp32_contents":
            values = values[: len(values) - 1] if len(values) == np.prod(shape) else values
        getattr(tensor.contents, field).extend(values)
    elif mutation == "extra-input":
        extra_name = draw(st.sampled_from([name, "extra"]))
        request.inputs.add(name=extra_name, datatype="FP32", shape=shape)
        request.raw_input_contents.append(raw)
    elif mutation == "outputs":
        for out in draw(st.lists(st.text(max_size=8), min_size=1, max_size=3)):
            request.outputs.add(name=out if out != "probabilities" else "logit")
    elif mutation == "parameters":
        key = draw(st.sampled_from(["priority", "timeout"]))
        param = request.parameters[key]
        choice = draw(st.sampled_from(["int", "string", "bool"]))
        if choice == "int":  # priority: levels 1 to 1 (0: default); timeout: µs ≥ 0
            bad = st.integers(2, 2**63 - 1) if key == "priority" else st.integers(-(2**63), -1)
            param.int64_param = draw(bad)
        elif choice == "string":
            param.string_param = draw(st.text(max_size=5))
        else:
            param.bool_param = draw(st.booleans())
    elif mutation == "model":
        request.model_name = draw(
            st.text(max_size=8).filter(lambda v: v not in (*MODELS, "mlp_auto", "counter"))
        )
    else:
        request.model_version = draw(st.text(min_size=1, max_size=4).filter(lambda v: v != "1"))
    return request


def _typed_for(field: str) -> Any:
    return {
        "bool_contents": st.booleans(),
        "int_contents": st.integers(-(2**31), 2**31 - 1),
        "int64_contents": st.integers(-(2**63), 2**63 - 1),
        "uint_contents": st.integers(0, 2**32 - 1),
        "uint64_contents": st.integers(0, 2**64 - 1),
        "fp32_contents": st.floats(width=32),
        "fp64_contents": st.floats(),
    }[field]


def test_fuzz_grpc_never_answers_a_malformed_request_with_an_internal_error(
    server: Any, reference: Reference
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        call = model_infer(channel)

        @FUZZ
        @given(request=malformed_grpc())
        def refused(request: Any) -> None:
            with pytest.raises(grpc.RpcError) as info:
                call(request, timeout=30)
            assert info.value.code() in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.UNAVAILABLE,  # a version that is not loaded
            ), (info.value.code(), info.value.details(), request)

        refused()
    assert_serves(server, reference)


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x3a\x80\x80\x80\x80\x10"],
    ids=["bad-tag", "truncated-string", "huge-length"],
)
def test_grpc_refuses_bytes_that_are_no_message(
    garbage: bytes, server: Any, channel: grpc.Channel, reference: Reference
) -> None:
    raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as info:
        raw(garbage, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inference.ModelInferRequest" in info.value.details()
    metadata = channel.unary_unary("/inference.GRPCInferenceService/ModelMetadata")
    with pytest.raises(grpc.RpcError) as info:
        metadata(garbage, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stream = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
    replies = list(stream(iter([garbage]), timeout=30))
    reply = service_pb2.ModelStreamInferResponse.FromString(replies[0])
    assert "inference.ModelInferRequest" in reply.error_message
    assert_serves(server, reference)
