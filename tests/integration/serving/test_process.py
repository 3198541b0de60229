"""``luminary serve`` as a real process: SIGTERM while requests are in flight answers them,
then exits 0 and frees its ports; ``--workers 2`` shares the ports and merges the metrics."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from luminary.testing.models import mlp
from tests.integration.serving._support import (
    ANNOUNCE,
    ModelFolder,
    Reference,
    build_model_folder,
    free_port,
    luminary_serve,
    mlp_input,
    open_http_client,
    port_open,
    tagger_input,
)

EVENTS = 64  # per request: a batch of the tagger takes long enough to be caught in flight
# holds requests in its queue for 2 s: they are surely in flight when SIGTERM comes
SLOW_CONFIG = """\
max_batch_size: 64
dynamic_batching { max_queue_delay_microseconds: 2000000 }
"""


@dataclass
class Call:
    client: str
    started: float
    ended: float
    outcome: str  # "ok", "no answer: …" (refused, reset) or what was wrong with the answer


class Clients:
    """Threads sending tagger requests over HTTP and gRPC until the server goes away."""

    def __init__(self, http_port: int, grpc_port: int, reference: Reference, per: int) -> None:
        self.http_port = http_port
        self.grpc_port = grpc_port
        self.reference = reference
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        names = [f"{p}-{i}" for p in ("http", "grpc") for i in range(per)]
        self.threads = [
            threading.Thread(target=self._run, args=(n,), name=n, daemon=True) for n in names
        ]

    def answered(self, client: str) -> int:
        with self.lock:
            return sum(c.outcome == "ok" for c in self.calls if c.client == client)

    def _one(self, name: str, client: Any, array: np.ndarray) -> tuple[float, str]:
        """(when the request went out, its outcome)."""
        if name.startswith("http"):
            tensor: Any = httpclient.InferInput("constituents", list(array.shape), "FP32")
            tensor.set_data_from_numpy(array)
            started = time.monotonic()
            try:
                got = client.infer("tagger", [tensor]).as_numpy("probabilities")
            except httpclient.InferenceServerException as exc:
                if exc.status() is None:  # no HTTP status: the connection failed
                    return started, "no answer: " + exc.message()
                return started, f"HTTP {exc.status()}: {exc.message()}"
            except (OSError, EOFError) as exc:
                return started, f"no answer: {exc!r}"
        else:
            tensor = grpcclient.InferInput("constituents", list(array.shape), "FP32")
            tensor.set_data_from_numpy(array)
            started = time.monotonic()
            try:
                got = client.infer("tagger", [tensor], client_timeout=30).as_numpy("probabilities")
            except grpcclient.InferenceServerException as exc:
                # Refused as the server stops: UNAVAILABLE once it has stopped accepting, and
                # CANCELLED for a call that reached it but no handler yet (gRPC core drops
                # those when it shuts down).
                if exc.status() in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED"):
                    return started, "no answer: " + exc.message()
                return started, f"{exc.status()}: {exc.message()}"
        expected = self.reference("tagger", {"constituents": array})
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
            return started, "a wrong answer"
        return started, "ok"

    def _run(self, name: str) -> None:
        if name.startswith("http"):
            client: Any = open_http_client(self.http_port, network_timeout=30)
        else:
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.grpc_port}")
        try:
            for seed in range(10_000):
                array = tagger_input(EVENTS, seed=seed)
                started, outcome = self._one(name, client, array)
                with self.lock:
                    self.calls.append(Call(name, started, time.monotonic(), outcome))
                if outcome.startswith("no answer"):
                    return
        finally:
            client.close()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), f"{t.name} still waits for an answer"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    """The usual models, and ``slow``: the mlp, holding requests in its queue for 2 s."""
    folder = build_model_folder(tmp_path_factory.mktemp("models"))
    slow = mlp(folder.root / "slow" / "1" / "model.onnx")
    (folder.root / "slow" / "config.pbtxt").write_text(SLOW_CONFIG, encoding="utf-8")
    return ModelFolder(folder.root, {**folder.files, "slow": slow})


def pending(metrics_port: int, model: str) -> int:
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    pattern = rf'^nv_inference_pending_request_count\{{model="{model}",version="1"\}} (\d+)$'
    match = re.search(pattern, text, re.M)
    return int(match.group(1)) if match else -1


def slow_request(protocol: str, port: int, seed: int, answers: dict[str, Any]) -> None:
    """One request to ``slow``; its answer (or the error) goes in ``answers``."""
    name = f"{protocol}-{seed}"
    array = mlp_input(1 + seed % 3, seed=seed)
    try:
        if protocol == "http":
            with open_http_client(port, network_timeout=30) as client:
                tensor: Any = httpclient.InferInput("x", list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                answers[name] = (array, client.infer("slow", [tensor]).as_numpy("probabilities"))
        else:
            with grpcclient.InferenceServerClient(f"127.0.0.1:{port}") as gclient:
                tensor = grpcclient.InferInput("x", list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                result = gclient.infer("slow", [tensor], client_timeout=30)
                answers[name] = (array, result.as_numpy("probabilities"))
    except Exception as exc:  # reported by the test
        answers[name] = exc


def test_sigterm_answers_requests_in_flight_then_exits_cleanly(
    model_folder: ModelFolder, reference: Reference
) -> None:
    with luminary_serve(
        "--repository", str(model_folder.root),
        "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
    ) as serve:  # fmt: skip
        ports = serve.wait_for(ANNOUNCE)
        http_port, grpc_port, metrics_port = (int(p) for p in ports.groups())
        # traffic that keeps coming while the server stops
        clients = Clients(http_port, grpc_port, reference, per=2)
        clients.start()
        deadline = time.monotonic() + 30
        while not all(clients.answered(t.name) >= 2 for t in clients.threads):
            assert time.monotonic() < deadline, f"the clients got no answers: {clients.calls}"
            time.sleep(0.01)
        # and requests certainly in flight: held in the queue of ``slow`` when SIGTERM comes
        answers: dict[str, Any] = {}
        held = [
            threading.Thread(target=slow_request, args=(protocol, port, seed, answers))
            for protocol, port in (("http", http_port), ("grpc", grpc_port))
            for seed in range(3)
        ]
        for t in held:
            t.start()
        while pending(metrics_port, "slow") < len(held):
            assert not answers, f"answered before SIGTERM (too slow a machine?): {answers}"
            time.sleep(0.01)
        status = serve.terminate()
        for t in held:
            t.join(30)
        clients.join()
        serve.wait_for(re.compile("Luminary inference server stopped"), timeout=10)
    assert status == 0, "\n".join(serve.output)
    assert len(answers) == len(held)
    for name, answer in answers.items():
        assert isinstance(answer, tuple), f"{name} was in flight at SIGTERM: {answer}"
        array, got = answer
        np.testing.assert_allclose(got, reference("slow", {"x": array}), rtol=1e-5, atol=1e-6)
    answered = [c for c in clients.calls if not c.outcome.startswith("no answer")]
    assert [c for c in answered if c.outcome != "ok"] == []
    assert sum(c.outcome == "ok" for c in clients.calls) >= 2 * len(clients.threads)
    for port in (http_port, grpc_port, metrics_port):
        assert not port_open(port), f"port {port} is still open"


def success_by_worker(text: str, model: str) -> dict[str, int]:
    labels = rf'worker="(\d+)",model="{model}",version="1"'
    pattern = rf"^nv_inference_request_success\{{{labels}\}} (\d+)$"
    return {w: int(n) for w, n in re.findall(pattern, text, re.M)}


def test_two_workers_share_the_ports_and_the_metrics_port_merges_them(
    model_folder: ModelFolder, reference: Reference
) -> None:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    with luminary_serve(
        "--workers", "2", "--repository", str(model_folder.root),
        "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--metrics-port", str(metrics_port),
    ) as serve:  # fmt: skip
        serve.wait_for(re.compile(rf"2 workers; metrics on \S+:{metrics_port}"))
        sent = 0
        for i in range(12):  # a new connection each time: the kernel spreads them
            array = mlp_input(1 + i % 3, seed=i)
            expected = reference("mlp", {"x": array})
            with open_http_client(http_port) as client:
                tensor: Any = httpclient.InferInput("x", list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                got = client.infer("mlp", [tensor]).as_numpy("probabilities")
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as gclient:
                tensor = grpcclient.InferInput("x", list(array.shape), "FP32")
                tensor.set_data_from_numpy(array)
                got = gclient.infer("mlp", [tensor]).as_numpy("probabilities")
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            sent += 2
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        status = serve.terminate()
    assert status == 0, "\n".join(serve.output)
    counts = success_by_worker(text, "mlp")
    assert set(counts) == {"0", "1"}, text
    assert sum(counts.values()) == sent
    for model in ("tagger", "mlp_auto", "counter"):
        assert set(success_by_worker(text, model)) == {"0", "1"}
    assert text.count("# TYPE nv_inference_request_success counter") == 1
    for port in (http_port, grpc_port, metrics_port):
        assert not port_open(port), f"port {port} is still open"
