"""Team mode end to end: the SDK through ``LUMINARY_URI`` against a real server, the server's
error bodies, blob uploads it must refuse, and a large blob streamed in bounded memory."""

from __future__ import annotations

import contextlib
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import luminary as lm
from luminary.errors import FilterSyntaxError, NotFoundError
from luminary.storage.blobs import hash_bytes, hash_file
from luminary.store import BlobStore, SqlStore, set_store
from tests.integration.luminary_server import serve_in_thread

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")


@pytest.fixture
def server_store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'server' / 'luminary.db'}", str(tmp_path / "sblobs"))
    yield store
    store.close()


@pytest.fixture
def url(server_store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A server on a free port; the SDK pointed at it through LUMINARY_URI."""
    with serve_in_thread(server_store, tmp_path / "spool", auth=False) as base:
        monkeypatch.setenv("LUMINARY_URI", base)
        set_store(None)
        yield base
        lm.get_store().close()
        set_store(None)


def _server_blobs(store: SqlStore) -> BlobStore:
    assert isinstance(store.blobs, BlobStore)
    return store.blobs


# -- the SDK, unchanged, through LUMINARY_URI ----------------------------------------------
def test_tracking_sdk_round_trips_through_the_server(
    url: str, server_store: SqlStore, tmp_path: Path
) -> None:
    from luminary.store._rest import RestStore

    assert isinstance(lm.get_store(), RestStore)
    weights = tmp_path / "w.bin"
    weights.write_bytes(os.urandom(3000))
    with lm.start_run("cms-btag", params={"lr": 0.001, "layers": 3}) as run:
        for step in range(50):
            run.log({"loss": 1.0 / (step + 1), "odd": math.nan if step == 3 else step})
        run.flush()
        # durable on the server once flush() returns
        assert len(server_store.get_metric_history(run.id, "loss")) == 50
        run.log_artifact(weights, name="model/w.bin")
    found = lm.search_runs("cms-btag", "params.lr < 0.01", "metrics.loss asc")
    assert [r.id for r in found] == [run.id]
    assert found[0].status is lm.RunStatus.FINISHED
    assert found[0].params == {"lr": 0.001, "layers": 3}
    assert math.isnan(lm.get_metric_history(run.id, "odd").values[3])
    paths = lm.download_artifacts(run.id, "model", dest=tmp_path / "out")
    assert [p.read_bytes() for p in paths] == [weights.read_bytes()]
    assert _server_blobs(server_store).exists(hash_file(weights).digest)


def test_models_register_and_download_through_the_server(url: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from tests.unit.registry.test_registry_api import make_onnx

    model = make_onnx(tmp_path / "tagger.onnx")
    version = lm.register_model("jet-tagger", model, project="cms-btag", alias="production")
    assert version.aliases == ("production",)
    local = lm.get_model("jet-tagger@production")
    assert local.version.ref == "jet-tagger@1"
    assert local.path.read_bytes() == model.read_bytes()


def test_datasets_add_and_open_a_root_file_through_the_server(
    url: str, server_store: SqlStore, tmp_path: Path
) -> None:
    pytest.importorskip("uproot")
    from luminary import datasets as ds
    from luminary.demo._jets import make_jets
    from luminary.demo._rootio import write_jets_root

    folder = tmp_path / "jets"
    folder.mkdir()
    write_jets_root(make_jets(200), folder / "jets.root")
    stats = ds.add("jets", [folder], project="cms-btag")
    assert stats.version.ref == "jets@1"
    assert server_store.get_dataset_version("jets@1").file_count == 1
    rows = sum(len(b.arrays["c_log_pt"]) for b in ds.open("jets@1", columns=["c_log_pt"]))
    assert rows == 200
    assert list(ds.verify("jets@1")) == []


# -- errors --------------------------------------------------------------------------------
def test_errors_come_as_code_message_details(url: str) -> None:
    missing = httpx.get(f"{url}/api/v1/runs/01NOSUCHRUN")
    assert missing.status_code == 404
    body = missing.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == "not_found"
    assert "no run" in body["message"]

    lm.get_store().create_project("cms")
    bad = httpx.get(f"{url}/api/v1/runs", params={"project": "cms", "filter": "params.lr <"})
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "filter_syntax"
    assert body["details"]["position"] == 11
    with pytest.raises(FilterSyntaxError) as info:
        lm.search_runs("cms", "params.lr <")
    assert info.value.position == 11

    with pytest.raises(NotFoundError, match="did you mean 'cms'"):
        lm.get_store().get_project("cmss")


def test_malformed_requests_are_400_without_a_trace(url: str) -> None:
    run = lm.get_store().create_run("p")
    for resp in (
        httpx.post(f"{url}/api/v1/runs/{run.id}/metrics", content=b"{not json"),
        httpx.post(f"{url}/api/v1/runs/{run.id}/metrics", json={"points": [[1, "x", 2, 3]]}),
        httpx.post(f"{url}/api/v1/runs", json={"name": 3}),
    ):
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == "invalid_argument"
        assert "Traceback" not in resp.text
    unknown = httpx.get(f"{url}/api/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"


def test_artifact_path_traversal_is_refused(url: str) -> None:
    run = lm.get_store().create_run("p")
    for bad in ("../etc/passwd", "/abs", "a/../../b"):
        resp = httpx.post(
            f"{url}/api/v1/runs/{run.id}/artifacts", json={"entries": [[bad, "0" * 64, 1]]}
        )
        assert resp.status_code == 400
        assert "artifact path" in resp.json()["message"]
    assert lm.get_store().list_artifacts(run.id) == []


def test_upload_with_the_wrong_digest_is_refused_and_nothing_is_stored(
    url: str, server_store: SqlStore
) -> None:
    claimed = hash_bytes(b"what the client said")
    resp = httpx.put(f"{url}/api/v1/blobs/{claimed}", content=b"something else")
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_argument"
    assert "nothing was stored" in resp.json()["message"]
    assert httpx.head(f"{url}/api/v1/blobs/{claimed}").status_code == 404
    assert not _server_blobs(server_store).exists(claimed)
    assert not _server_blobs(server_store).exists(hash_bytes(b"something else"))
    bad_name = httpx.put(f"{url}/api/v1/blobs/..%2F..%2Fetc", content=b"x")
    assert bad_name.status_code in (400, 404)


def test_health_and_readiness(url: str) -> None:
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}


# -- a large blob, streamed ----------------------------------------------------------------
@pytest.mark.slow
def test_large_blob_streams_through_a_server_process_in_bounded_memory(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    from luminary.store._rest import RestStore

    env = dict(os.environ, LUMINARY_HOME=str(tmp_path / "server-home"), PYTHONUNBUFFERED="1")
    env.pop("LUMINARY_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminary.cli", "server", "--port", "0", "--no-auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        # keep reading the server's output (its access log), or it blocks on a full pipe
        threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        _wait_ready(base)
        big = tmp_path / "big.bin"
        with big.open("wb") as fh:
            chunk = os.urandom(1 << 20)
            for i in range(200):
                fh.write(chunk[i:] + chunk[:i])
        digest = hash_file(big).digest
        store = RestStore(base, cache_dir=str(tmp_path / "cache"))
        server = psutil.Process(proc.pid)
        store.blobs.exists(digest)  # warm the server's code paths before the baseline
        baseline = server.memory_info().rss
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], server.memory_info().rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            store.blobs.put_file(big)
            out = store.blobs.get_file(digest, tmp_path / "back.bin")
        finally:
            done.set()
            sampler.join()
        assert hash_file(out).digest == digest
        assert store.blobs.size(digest) == 200 << 20
        store.close()
        growth_mb = (peak[0] - baseline) / 1e6
        assert growth_mb < 100, f"server RSS grew by {growth_mb:.0f} MB for a 200 MiB blob"
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("luminary server did not become ready")


def _drain(stream: Any) -> None:
    """Read a server's output to its end (closing it afterwards may interrupt the read)."""
    with contextlib.suppress(ValueError, OSError):
        stream.read()
