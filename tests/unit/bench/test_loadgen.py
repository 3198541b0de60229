"""The load generator's pieces that do no I/O: addresses, inputs, serialised requests, stats."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from luminary.bench._control import Endpoint, ModelInfo, StatsSnapshot, _snapshot, parse_url
from luminary.bench._loadgen import grpc_request, http_request, make_inputs
from luminary.errors import InvalidArgumentError
from luminary.serving import TensorConfig

TAGGER = ModelInfo("tagger", 64, (TensorConfig("constituents", "FP32", (-1, -1, 10)),))
COUNTER = ModelInfo("counter", 0, (TensorConfig("hits", "INT64", (-1, 3)),))


@pytest.mark.parametrize(
    ("url", "protocol", "expected"),
    [
        (None, "grpc", ("localhost", 8001)),
        (None, "http", ("localhost", 8000)),
        ("node7", "http", ("node7", 8000)),
        ("http://node7:9000/", "http", ("node7", 9000)),
        ("grpc://10.0.0.2:9001", "grpc", ("10.0.0.2", 9001)),
        ("[::1]:8101", "grpc", ("::1", 8101)),
    ],
)
def test_parse_url_defaults_to_tritons_port_per_protocol(
    url: str | None, protocol: str, expected: tuple[str, int]
) -> None:
    endpoint = parse_url(url, protocol)
    assert (endpoint.host, endpoint.port) == expected


def test_parse_url_brackets_ipv6_in_the_address() -> None:
    assert parse_url("[::1]:8101", "grpc").address == "[::1]:8101"
    assert str(parse_url("h:1", "http")) == "http://h:1"


@pytest.mark.parametrize(("url", "protocol"), [("h:http", "grpc"), ("h:70000", "grpc"), ("h", "x")])
def test_parse_url_refuses_bad_ports_and_protocols(url: str, protocol: str) -> None:
    with pytest.raises(InvalidArgumentError):
        parse_url(url, protocol)


def test_inputs_put_the_batch_first_and_free_dims_at_one() -> None:
    (x,) = make_inputs(TAGGER, batch_size=3).values()
    assert x.shape == (3, 1, 1, 10)
    assert x.dtype == np.float32


def test_shape_fills_free_dims_per_event() -> None:
    (x,) = make_inputs(TAGGER, 2, {"constituents": [20, 30, 10]}).values()
    assert x.shape == (2, 20, 30, 10)


def test_unbatched_model_takes_full_shapes_and_integers() -> None:
    (hits,) = make_inputs(COUNTER).values()
    assert hits.shape == (1, 3)
    assert hits.dtype == np.int64


@pytest.mark.parametrize(
    ("info", "batch", "shapes", "says"),
    [
        (TAGGER, 1, {"constituent": [1, 1, 10]}, "did you mean 'constituents'"),
        (TAGGER, 1, {"constituents": [20, 30]}, "dims ?,?,10 per event"),
        (TAGGER, 1, {"constituents": [20, 30, 9]}, "dims ?,?,10 per event"),
        (TAGGER, 65, {}, "--batch-size 64 or less"),
        (COUNTER, 2, {}, "use --batch-size 1"),
    ],
)
def test_inputs_that_cannot_fit_the_model_say_what_would(
    info: ModelInfo, batch: int, shapes: dict[str, list[int]], says: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(says)):
        make_inputs(info, batch, shapes)


def test_http_request_is_one_binary_tensor_request() -> None:
    x = np.arange(32, dtype=np.float32).reshape(2, 16)
    raw = http_request(Endpoint("h", 8000, "http"), "jet tagger", "3", {"x": x})
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v2/models/jet%20tagger/versions/3/infer HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    json_size = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:json_size])
    assert header["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [2, 16], "parameters": {"binary_data_size": 128}}
    ]
    assert header["parameters"] == {"binary_data_output": True}
    assert body[json_size:] == x.tobytes()


def test_grpc_request_carries_raw_input_contents() -> None:
    from luminary.serving import grpc_service_pb2 as pb

    x = np.ones((1, 16), dtype=np.float32)
    request = pb.ModelInferRequest.FromString(grpc_request("mlp", "", {"x": x}))
    assert request.model_name == "mlp"
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [("x", "FP32", [1, 16])]
    assert list(request.raw_input_contents) == [x.tobytes()]


def test_stats_difference_gives_the_mean_batch_and_new_executions() -> None:
    before = StatsSnapshot(inference_count=10, execution_count=10, batches={1: 10})
    after = StatsSnapshot(inference_count=40, execution_count=15, batches={1: 12, 8: 2, 6: 1})
    mean, sizes = after.since(before)
    assert mean == pytest.approx(30 / 5)
    assert sizes == {1: 2, 6: 1, 8: 2}
    assert before.since(before) == (None, {})


def test_snapshot_sums_versions_of_the_statistics_answer() -> None:
    version = {
        "inference_count": "12",  # protobuf's JSON writes 64-bit integers as strings
        "execution_count": 3,
        "batch_stats": [{"batch_size": 4, "compute_infer": {"count": 3, "ns": 9}}],
    }
    snap = _snapshot({"model_stats": [version, version]})
    assert (snap.inference_count, snap.execution_count, snap.batches) == (24, 6, {4: 6})
