"""Serving ``NAME@production`` from the embedded registry: when the alias moves, the server
swaps in the new version while clients keep sending, and no request fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

import luminary
from luminary.registry._api import set_alias
from luminary.serving import RegistrySource
from luminary.testing.models import deepsets_tagger
from tests.integration.serving._support import (
    Reference,
    open_http_client,
    start_server,
    tagger_input,
)

NAME = "jet-tagger"
INPUT = "constituents"


class Traffic:
    """Client threads sending requests until stopped; each answer is checked against the
    reference output of the version the response names."""

    def __init__(self, server: Any, reference: Reference, clients: int = 4) -> None:
        self.server = server
        self.reference = reference
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # per client, the versions that answered it, in order
        self.versions: dict[str, list[str]] = {
            f"{protocol}-{i}": [] for protocol in ("http", "grpc") for i in range(clients)
        }
        self.failures: list[str] = []
        # several clients per protocol, so requests are queued whenever the swap happens
        self.threads = [threading.Thread(target=self._run, args=(c,)) for c in self.versions]

    def _check(self, client: str, version: str, array: np.ndarray, got: np.ndarray) -> None:
        expected = self.reference(version, {INPUT: array})
        with self.lock:
            self.versions[client].append(version)
            if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
                self.failures.append(f"{client}: wrong answer for version {version}")

    def _run(self, name: str) -> None:
        protocol = name.split("-")[0]
        i = 0
        if protocol == "http":
            client: Any = open_http_client(self.server.http_port)
        else:
            client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.server.grpc_port}")
        try:
            while not self.stop.is_set():
                i += 1
                array = tagger_input(1 + i % 3, seed=i)
                try:
                    if protocol == "http":
                        tensor: Any = httpclient.InferInput(INPUT, list(array.shape), "FP32")
                        tensor.set_data_from_numpy(array)
                        result = client.infer(NAME, [tensor])
                        version = result.get_response()["model_version"]
                    else:
                        tensor = grpcclient.InferInput(INPUT, list(array.shape), "FP32")
                        tensor.set_data_from_numpy(array)
                        result = client.infer(NAME, [tensor])
                        version = result.get_response().model_version
                except Exception as exc:  # every failure is counted
                    with self.lock:
                        self.failures.append(f"{name}: {exc}")
                    continue
                self._check(name, version, array, result.as_numpy("probabilities"))
        finally:
            client.close()

    def __enter__(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def wait_for(self, version: str, count: int, timeout: float = 15) -> None:
        """Until every client has had ``count`` answers in a row from ``version``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(v[-count:] == [version] * count for v in self.versions.values()):
                    return
            time.sleep(0.02)
        raise AssertionError(f"no answers from version {version}: {self.versions}")


def test_moving_the_alias_swaps_the_version_without_a_failed_request(tmp_path: Path) -> None:
    first = deepsets_tagger(tmp_path / "v1" / "model.onnx", seed=11)
    second = deepsets_tagger(tmp_path / "v2" / "model.onnx", seed=12)
    assert luminary.register_model(NAME, first, alias="production").version == 1
    assert luminary.register_model(NAME, second).version == 2
    reference = Reference({"1": first, "2": second})
    server = start_server(None, RegistrySource(f"{NAME}@production"), poll_seconds=0.2)
    try:
        with Traffic(server, reference) as traffic:
            traffic.wait_for("1", 5)
            for version in (2, 1, 2):  # three swaps, each with requests queued
                set_alias(NAME, "production", version)
                traffic.wait_for(str(version), 5)
        with open_http_client(server.http_port) as client:
            index = client.get_model_repository_index()
    finally:
        server.stop(grace=10)
    assert traffic.failures == []
    for client, versions in traffic.versions.items():
        runs = [v for i, v in enumerate(versions) if i == 0 or versions[i - 1] != v]
        assert runs == ["1", "2", "1", "2"], f"{client} was answered by {runs}"
    assert index == [{"name": NAME, "version": "2", "state": "READY"}]
