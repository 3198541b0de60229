"""The HTTP front end refuses infer requests beyond --max-inflight at once, with a 503."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import ClassVar

import httpx
import numpy as np
import pytest

from luminary.serving import ModelRepository
from luminary.serving._core import Core
from luminary.serving._http import InferenceApp
from luminary.serving.backends import BACKENDS, BackendOptions

from ._fakes import RecordingBackend


class HeldBackend(RecordingBackend):
    """Holds every batch until the test releases it; remembers the last instance made."""

    made: ClassVar[list[HeldBackend]] = []

    @classmethod
    def load(cls, path: Path, options: BackendOptions) -> HeldBackend:
        backend = cls()  # not held yet: the warm-up run must pass
        cls.made.append(backend)
        return backend


def _body(rows: int) -> tuple[bytes, int]:
    data = np.ones((rows, 4), dtype=np.float32).tobytes()
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [rows, 4],
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": False}}],
        }
    ).encode()
    return head + data, len(head)


def test_requests_beyond_the_inflight_limit_get_503_and_the_admitted_one_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(BACKENDS, "held", HeldBackend)
    folder = tmp_path / "models" / "fake"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.bin").write_bytes(b"weights")
    (folder / "config.pbtxt").write_text(
        'backend: "held"\ndefault_model_filename: "model.bin"\nmax_batch_size: 8\n'
    )
    repo = ModelRepository()
    repo.add_folder(tmp_path / "models")
    held = HeldBackend.made[-1]
    held.started.clear()  # the warm-up batch ran; hold and watch for the next one
    held.hold.clear()
    app = InferenceApp(Core(repo), max_inflight=1)
    body, size = _body(2)
    headers = {"Inference-Header-Content-Length": str(size)}

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(
                client.post("/v2/models/fake/infer", content=body, headers=headers)
            )
            while not held.started.is_set():
                await asyncio.sleep(0.005)
            second = await client.post("/v2/models/fake/infer", content=body, headers=headers)
            held.hold.set()
            answered = await first
            third = await client.post("/v2/models/fake/infer", content=body, headers=headers)
            return answered, second, third

    try:
        answered, refused, later = asyncio.run(scenario())
    finally:
        held.hold.set()
        repo.close()
    assert refused.status_code == 503
    assert "overloaded" in refused.json()["error"]
    assert "--max-inflight" in refused.json()["error"]
    assert answered.status_code == 200
    assert answered.json()["outputs"][0]["data"] == [3.0] * 8
    assert later.status_code == 200  # the slot is free again


def test_a_compressed_body_that_inflates_past_the_limit_is_refused() -> None:
    import gzip

    bomb = gzip.compress(b"\0" * (8 << 20))  # 8 MiB of zeros in a few KiB
    repo = ModelRepository()
    app = InferenceApp(Core(repo), max_body=1 << 20)  # 1 MiB, so the test stays small

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(
                "/v2/models/any/infer", content=bomb, headers={"Content-Encoding": "gzip"}
            )

    answer = asyncio.run(post())
    repo.close()
    assert answer.status_code == 413
    assert "inflated, is over the server's limit of 1048576 bytes" in answer.json()["error"]
    assert "--max-body-bytes" in answer.json()["error"]
