"""The KServe v2 / Triton protocol as the official clients (tritonclient.http and
tritonclient.grpc) speak it: every endpoint Luminary claims, and inference results equal to
in-process ONNX Runtime on the same inputs."""

from __future__ import annotations

import queue
import re
import threading
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2

from tests.integration.serving._support import (
    MLP_MAX_BATCH,
    TAGGER_SHAPE,
    Reference,
    mlp_input,
    tagger_input,
)

RTOL = 1e-5
ATOL = 1e-6


def event_input(model: str, events: int, seed: int = 0) -> tuple[str, np.ndarray]:
    if model == "tagger":
        return "constituents", tagger_input(events, seed)
    return "x", mlp_input(events, seed)


def http_input(name: str, array: np.ndarray, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def grpc_input(name: str, array: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


def check_result(
    reference: Reference, model: str, name: str, array: np.ndarray, result: Any, output: str
) -> None:
    got = result.as_numpy(output)
    assert got is not None, f"the response has no output {output!r}"
    expected = reference(model, {name: array}, output)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


# -- health and metadata ---------------------------------------------------------------------


def test_server_is_live_and_ready(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    assert http_client.is_server_live() is True
    assert http_client.is_server_ready() is True
    assert grpc_client.is_server_live() is True
    assert grpc_client.is_server_ready() is True


@pytest.mark.parametrize("model", ["mlp", "mlp_auto", "tagger", "counter"])
def test_served_models_are_ready(
    model: str,
    http_client: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    assert http_client.is_model_ready(model) is True
    assert http_client.is_model_ready(model, "1") is True
    assert grpc_client.is_model_ready(model) is True
    assert grpc_client.is_model_ready(model, "1") is True


def test_unknown_models_and_versions_are_not_ready(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    assert http_client.is_model_ready("no-such-model") is False
    assert http_client.is_model_ready("mlp", "9") is False
    assert grpc_client.is_model_ready("no-such-model") is False
    assert grpc_client.is_model_ready("mlp", "9") is False


def test_server_metadata_names_luminary_and_its_extensions(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    claimed = {"binary_tensor_data", "model_repository", "statistics"}
    meta = http_client.get_server_metadata()
    assert meta["name"] == "luminary"
    assert meta["version"]
    assert claimed <= set(meta["extensions"])
    gmeta = grpc_client.get_server_metadata()
    assert gmeta.name == "luminary"
    assert gmeta.version == meta["version"]
    assert claimed <= set(gmeta.extensions)


@pytest.mark.parametrize(
    ("model", "input_name", "input_shape", "output_shape"),
    [
        ("mlp", "x", [-1, 16], [-1, 5]),
        ("mlp_auto", "x", [-1, 16], [-1, 5]),
        ("tagger", "constituents", [-1, *TAGGER_SHAPE], [-1, 20, 5]),
    ],
)
def test_model_metadata_shows_the_batch_dimension_as_minus_one(
    model: str,
    input_name: str,
    input_shape: list[int],
    output_shape: list[int],
    http_client: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    meta = http_client.get_model_metadata(model)
    assert meta["name"] == model
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": input_name, "datatype": "FP32", "shape": input_shape}]
    assert meta["outputs"][0] == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": output_shape,
    }
    gmeta = grpc_client.get_model_metadata(model)
    assert gmeta.name == model
    assert [(t.name, t.datatype, list(t.shape)) for t in gmeta.inputs] == [
        (input_name, "FP32", input_shape)
    ]
    assert (gmeta.outputs[0].name, list(gmeta.outputs[0].shape)) == ("probabilities", output_shape)


def test_model_config_reports_the_batching_of_config_pbtxt(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    config = http_client.get_model_config("mlp")
    assert config["name"] == "mlp"
    assert config["max_batch_size"] == MLP_MAX_BATCH
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 500
    assert [(t["name"], t["data_type"], t["dims"]) for t in config["input"]] == [
        ("x", "TYPE_FP32", [16])
    ]
    gconfig = grpc_client.get_model_config("mlp").config
    assert gconfig.max_batch_size == MLP_MAX_BATCH
    assert list(gconfig.dynamic_batching.preferred_batch_size) == [4, 8]
    assert gconfig.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(t.name, list(t.dims)) for t in gconfig.input] == [("x", [16])]


def test_model_config_without_config_pbtxt_batches_by_default(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    from luminary.serving import DEFAULT_MAX_BATCH_SIZE

    config = http_client.get_model_config("mlp_auto")
    assert config["max_batch_size"] == DEFAULT_MAX_BATCH_SIZE
    assert "dynamic_batching" in config
    assert {t["name"] for t in config["output"]} == {"probabilities", "logits"}
    assert grpc_client.get_model_config("tagger").config.max_batch_size == DEFAULT_MAX_BATCH_SIZE


# -- inference -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["mlp", "tagger"])
@pytest.mark.parametrize("events", [1, 13])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_infer_matches_onnxruntime(
    model: str,
    events: int,
    binary: bool,
    http_client: httpclient.InferenceServerClient,
    reference: Reference,
) -> None:
    name, array = event_input(model, events, seed=events)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
    result = http_client.infer(
        model, [http_input(name, array, binary)], outputs=outputs, request_id="r-7"
    )
    response = result.get_response()
    assert response["model_name"] == model
    assert response["model_version"] == "1"
    assert response["id"] == "r-7"
    out = response["outputs"][0]
    assert ("binary_data_size" in out.get("parameters", {})) is binary
    assert ("data" in out) is not binary
    check_result(reference, model, name, array, result, "probabilities")


@pytest.mark.parametrize(
    "wanted", [["probabilities"], ["logits"], ["logits", "probabilities"]], ids="+".join
)
def test_http_infer_returns_exactly_the_requested_outputs(
    wanted: list[str], http_client: httpclient.InferenceServerClient, reference: Reference
) -> None:
    array = mlp_input(5, seed=3)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=n == "logits") for n in wanted]
    result = http_client.infer("mlp_auto", [http_input("x", array, True)], outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == wanted
    for name in wanted:
        check_result(reference, "mlp_auto", "x", array, result, name)


def test_http_infer_without_requested_outputs_returns_them_all(
    http_client: httpclient.InferenceServerClient, reference: Reference
) -> None:
    array = mlp_input(2, seed=4)
    result = http_client.infer("mlp_auto", [http_input("x", array, False)])
    assert {o["name"] for o in result.get_response()["outputs"]} == {"probabilities", "logits"}
    check_result(reference, "mlp_auto", "x", array, result, "logits")


@pytest.mark.parametrize("model", ["mlp", "tagger"])
@pytest.mark.parametrize("events", [1, 13])
def test_grpc_infer_matches_onnxruntime(
    model: str,
    events: int,
    grpc_client: grpcclient.InferenceServerClient,
    reference: Reference,
) -> None:
    name, array = event_input(model, events, seed=100 + events)
    result = grpc_client.infer(model, [grpc_input(name, array)], request_id="g-1")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (model, "1", "g-1")
    check_result(reference, model, name, array, result, "probabilities")


@pytest.mark.parametrize("wanted", [["probabilities"], ["logits"], ["logits", "probabilities"]])
def test_grpc_infer_returns_exactly_the_requested_outputs(
    wanted: list[str], grpc_client: grpcclient.InferenceServerClient, reference: Reference
) -> None:
    array = mlp_input(6, seed=5)
    outputs = [grpcclient.InferRequestedOutput(n) for n in wanted]
    result = grpc_client.infer("mlp_auto", [grpc_input("x", array)], outputs=outputs)
    assert [o.name for o in result.get_response().outputs] == wanted
    for name in wanted:
        check_result(reference, "mlp_auto", "x", array, result, name)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_infer_carries_integer_tensors(
    binary: bool, http_client: httpclient.InferenceServerClient
) -> None:
    hits = np.array([[0, 1, 2, 3], [255, 255, 255, 255]], dtype=np.uint8)
    tensor = httpclient.InferInput("hits", [2, 4], "UINT8")
    tensor.set_data_from_numpy(hits, binary_data=binary)
    output = httpclient.InferRequestedOutput("total", binary_data=binary)
    result = http_client.infer("counter", [tensor], outputs=[output])
    total = result.as_numpy("total")
    assert total.dtype == np.int64
    assert total.tolist() == [[6], [1020]]


def test_grpc_infer_carries_integer_tensors(grpc_client: grpcclient.InferenceServerClient) -> None:
    hits = np.array([[9, 0, 0, 1]], dtype=np.uint8)
    tensor = grpcclient.InferInput("hits", [1, 4], "UINT8")
    tensor.set_data_from_numpy(hits)
    assert grpc_client.infer("counter", [tensor]).as_numpy("total").tolist() == [[10]]


def raw_model_infer(port: int, request: Any) -> Any:
    """Call ModelInfer with a message built by hand (no tritonclient re-encoding)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=service_pb2.ModelInferRequest.SerializeToString,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )
        return call(request, timeout=30)


@pytest.mark.parametrize("events", [1, 4])
def test_grpc_infer_accepts_typed_contents(events: int, server: Any, reference: Reference) -> None:
    array = mlp_input(events, seed=6)
    request = service_pb2.ModelInferRequest(model_name="mlp", id="typed")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=list(array.shape))
    tensor.contents.fp32_contents.extend(array.ravel().tolist())
    assert not request.raw_input_contents
    response = raw_model_infer(server.grpc_port, request)
    assert response.id == "typed"
    assert [(o.name, list(o.shape)) for o in response.outputs] == [("probabilities", [events, 5])]
    got = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(events, 5)
    np.testing.assert_allclose(got, reference("mlp", {"x": array}), rtol=RTOL, atol=ATOL)


def test_http_async_infer_matches_onnxruntime(
    http_client: httpclient.InferenceServerClient, reference: Reference
) -> None:
    arrays = [mlp_input(n, seed=n) for n in (1, 3, 8, 2)]
    pending = [http_client.async_infer("mlp", [http_input("x", a, True)]) for a in arrays]
    for array, request in zip(arrays, pending, strict=True):
        check_result(reference, "mlp", "x", array, request.get_result(timeout=30), "probabilities")


def test_grpc_async_infer_matches_onnxruntime(
    grpc_client: grpcclient.InferenceServerClient, reference: Reference
) -> None:
    arrays = {str(n): tagger_input(n, seed=n) for n in (1, 2, 5)}
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    for rid, array in arrays.items():
        grpc_client.async_infer(
            "tagger",
            [grpc_input("constituents", array)],
            callback=lambda result, error: results.put((result, error)),
            request_id=rid,
        )
    for _ in arrays:
        result, error = results.get(timeout=30)
        assert error is None, error
        rid = result.get_response().id
        check_result(reference, "tagger", "constituents", arrays[rid], result, "probabilities")


def test_grpc_stream_answers_every_request_in_order(
    grpc_client: grpcclient.InferenceServerClient, reference: Reference
) -> None:
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    grpc_client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        arrays = [mlp_input(1 + i % 5, seed=i) for i in range(20)]
        for i, array in enumerate(arrays):
            grpc_client.async_stream_infer("mlp", [grpc_input("x", array)], request_id=str(i))
        answers = [results.get(timeout=30) for _ in arrays]
    finally:
        grpc_client.stop_stream()
    errors = [error for _, error in answers if error is not None]
    assert not errors
    assert [r.get_response().id for r, _ in answers] == [str(i) for i in range(len(arrays))]
    for array, (result, _) in zip(arrays, answers, strict=True):
        check_result(reference, "mlp", "x", array, result, "probabilities")


def test_concurrent_clients_get_their_own_answers(server: Any, reference: Reference) -> None:
    """Requests from many clients are batched together; each still gets its own events."""
    failures: list[str] = []

    def client(seed: int) -> None:
        with grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}") as c:
            for i in range(10):
                array = mlp_input(1 + (seed + i) % 4, seed=seed * 100 + i)
                got = c.infer("mlp", [grpc_input("x", array)]).as_numpy("probabilities")
                if not np.allclose(got, reference("mlp", {"x": array}), rtol=RTOL, atol=ATOL):
                    failures.append(f"client {seed} request {i}")

    threads = [threading.Thread(target=client, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures


# -- statistics, repository index, metrics ---------------------------------------------------


def test_statistics_count_each_request_and_event(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    def http_counts() -> tuple[int, int]:
        (stats,) = http_client.get_inference_statistics("tagger")["model_stats"]
        return stats["inference_stats"]["success"]["count"], stats["inference_count"]

    def grpc_counts() -> tuple[int, int]:
        (stats,) = grpc_client.get_inference_statistics("tagger").model_stats
        return stats.inference_stats.success.count, stats.inference_count

    before = http_counts()
    assert grpc_counts() == before
    http_client.infer("tagger", [http_input("constituents", tagger_input(3), True)])
    grpc_client.infer("tagger", [grpc_input("constituents", tagger_input(2))])
    after = http_counts()
    assert after == (before[0] + 2, before[1] + 5)
    assert grpc_counts() == after


def test_statistics_of_all_models_name_each_of_them(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    names = {"counter", "mlp", "mlp_auto", "tagger"}
    assert {s["name"] for s in http_client.get_inference_statistics()["model_stats"]} == names
    assert {s.name for s in grpc_client.get_inference_statistics().model_stats} == names


def test_repository_index_lists_every_model_as_ready(
    http_client: httpclient.InferenceServerClient, grpc_client: grpcclient.InferenceServerClient
) -> None:
    expected = [
        {"name": "counter", "version": "1", "state": "READY"},
        {"name": "mlp", "version": "1", "state": "READY"},
        {"name": "mlp_auto", "version": "1", "state": "READY"},
        {"name": "tagger", "version": "1", "state": "READY"},
    ]
    assert http_client.get_model_repository_index() == expected
    index = grpc_client.get_model_repository_index().models
    assert [{"name": m.name, "version": m.version, "state": m.state} for m in index] == expected


def success_count(metrics_port: int, model: str) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    pattern = rf'^nv_inference_request_success\{{model="{model}",version="1"\}} (\d+)$'
    match = re.search(pattern, text, re.M)
    assert match is not None, f"no success counter for {model!r} in:\n{text}"
    return int(match.group(1))


def test_metrics_count_successful_requests(
    server: Any,
    http_client: httpclient.InferenceServerClient,
    grpc_client: grpcclient.InferenceServerClient,
) -> None:
    before = success_count(server.metrics_port, "mlp")
    for n in range(4):
        http_client.infer("mlp", [http_input("x", mlp_input(n + 1), True)])
    for n in range(3):
        grpc_client.infer("mlp", [grpc_input("x", mlp_input(n + 1))])
    with pytest.raises(httpclient.InferenceServerException):  # a failure is not a success
        http_client.infer("mlp", [http_input("x", mlp_input(1)[:, :8], True)])
    assert success_count(server.metrics_port, "mlp") == before + 7


def test_metrics_port_answers_only_metrics(server: Any) -> None:
    response = httpx.get(f"http://127.0.0.1:{server.metrics_port}/other", timeout=10)
    assert response.status_code == 404
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    assert "# TYPE nv_inference_request_success counter" in text
    assert 'luminary_model_ready{model="tagger"} 1' in text
