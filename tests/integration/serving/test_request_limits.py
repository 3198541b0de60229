"""Requests are bounded: a body over --max-body-bytes (64 MiB by default) is refused from its
Content-Length before it is read, an infer request beyond --max-inflight is refused before its
body is read, gRPC messages have the same bound, and a large compressed request is inflated
off the event loop, so other clients are answered while it is decoded."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from tests.integration.serving._support import mlp_input, start_server
from tests.integration.serving.test_bad_input import model_infer

DEFAULT_LIMIT = 64 << 20


def send_head(port: int, path: str, length: int, partial: bytes = b"") -> socket.socket:
    """An HTTP POST whose body is announced but (beyond ``partial``) never sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + partial)
    return sock


def status_of(sock: socket.socket) -> tuple[int, str]:
    """The status and body of the answer (the socket's 30 s timeout fails a server that waits
    for the body instead of answering)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, response.read().decode()


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(server: Any) -> None:
    sock = send_head(server.http_port, "/v2/models/mlp/infer", DEFAULT_LIMIT + 1)
    with sock:
        status, body = status_of(sock)
    assert status == 413
    assert "--max-body-bytes" in json.loads(body)["error"]
    assert str(DEFAULT_LIMIT) in json.loads(body)["error"]


@pytest.fixture
def one_slot(model_folder: Any) -> Iterator[Any]:
    server = start_server(model_folder.root, serve_options={"max_inflight": 1})
    yield server
    server.stop(grace=10)


def test_admission_is_checked_before_the_body_is_read(one_slot: Any) -> None:
    port = one_slot.http_port
    # the one slot: a request whose body stalls after 10 bytes
    with send_head(port, "/v2/models/mlp/infer", 1000, b'{"inputs":') as holder:
        # a round trip on another connection: the server has seen the holder's head by now
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        probe.request("GET", "/v2/health/live")
        assert probe.getresponse().status == 200
        probe.close()
        with send_head(port, "/v2/models/mlp/infer", 1000) as refused:
            status, body = status_of(refused)
        assert status == 503
        assert "--max-inflight" in json.loads(body)["error"]
        holder.sendall(b" " * 990)  # the holder's body, complete: not JSON the server accepts
        status, _ = status_of(holder)
        assert status == 400


def test_a_grpc_message_over_the_limit_is_refused(server: Any) -> None:
    request = service_pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 16])
    request.raw_input_contents.append(b"\0" * (DEFAULT_LIMIT + 1))
    options = [("grpc.max_send_message_length", -1)]
    address = f"127.0.0.1:{server.grpc_port}"
    with (
        grpc.insecure_channel(address, options=options) as channel,
        pytest.raises(grpc.RpcError) as info,
    ):
        model_infer(channel)(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, info.value.details()


def _compressed_bomb(megabytes: int) -> tuple[bytes, dict[str, str]]:
    """A gzip body that inflates to ``megabytes`` MiB: a small JSON header and binary data
    whose declared size does not match, so the server refuses it once it has inflated it."""
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 16],
                    "parameters": {"binary_data_size": 64},
                }
            ]
        }
    ).encode()
    body = head + b"\0" * ((megabytes << 20) - len(head))
    headers = {
        "Content-Encoding": "gzip",
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }
    return gzip.compress(body, compresslevel=9), headers


def test_other_clients_are_answered_while_a_large_compressed_request_is_inflated(
    server: Any,
) -> None:
    bomb, headers = _compressed_bomb(60)
    bombs_answered = threading.Event()
    answered_during: list[int] = []  # small requests answered while the big ones were pending

    def big() -> None:
        conns = [
            http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=120) for _ in range(3)
        ]
        for conn in conns:
            conn.request("POST", "/v2/models/mlp/infer", body=bomb, headers=headers)
        sent.set()
        for conn in conns:
            assert conn.getresponse().status == 400
            conn.close()
        bombs_answered.set()

    sent = threading.Event()
    thread = threading.Thread(target=big, name="bombs", daemon=True)
    small = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 16],
                    "data": mlp_input(1).ravel().tolist(),
                }
            ]
        }
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=120)
    thread.start()
    assert sent.wait(120)
    while not bombs_answered.is_set():
        conn.request("POST", "/v2/models/mlp/infer", body=small)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        if not bombs_answered.is_set():
            answered_during.append(1)
    conn.close()
    thread.join(120)
    assert answered_during, "no other client was answered while the compressed requests ran"
