"""Resumable uploads (``/api/v1/uploads``) and request-body limits: the SDK through a server,
a server killed mid-upload and restarted on the same home, refused chunks and sessions, 413
and 415."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import luminary as lm
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
    monkeypatch.setenv("LUMINARY_MAX_JSON_BYTES", str(64 << 10))
    with serve_in_thread(server_store, tmp_path / "spool", auth=False) as base:
        monkeypatch.setenv("LUMINARY_URI", base)
        set_store(None)
        yield base
        lm.get_store().close()
        set_store(None)


def _server_blobs(store: SqlStore) -> BlobStore:
    assert isinstance(store.blobs, BlobStore)
    return store.blobs


def _random_file(path: Path, mib: int) -> Path:
    with path.open("wb") as fh:
        chunk = os.urandom(1 << 20)
        for i in range(mib):
            fh.write(chunk[i:] + chunk[:i])
    return path


# -- (a) the SDK -----------------------------------------------------------------------------
def test_a_large_artifact_goes_through_a_session_and_round_trips(
    url: str, server_store: SqlStore, tmp_path: Path
) -> None:
    from luminary.store._rest import RestStore

    store = lm.get_store()
    assert isinstance(store, RestStore)
    store.blobs.part_size = 3 << 20
    big = _random_file(tmp_path / "big.bin", 20)
    with lm.start_run("cms-btag") as run:
        run.log_artifact(big, name="model/big.bin")
    assert store.blobs.sent_bytes == 20 << 20  # in parts, through a session
    digest = hash_file(big).digest
    assert _server_blobs(server_store).verify(digest)
    assert list((tmp_path / "spool").glob("*.part")) == []  # the session is gone
    (back,) = lm.download_artifacts(run.id, "model", dest=tmp_path / "out")
    assert hash_file(back).digest == digest
    # uploading it again is a no-op: the server says it has it
    assert httpx.post(f"{url}/api/v1/uploads", json={"digest": digest, "size": 20 << 20}).json()[
        "exists"
    ]


# -- (c), (d), (f): refused chunks and sessions -----------------------------------------------
def _open(url: str, data: bytes) -> str:
    resp = httpx.post(f"{url}/api/v1/uploads", json={"digest": hash_bytes(data), "size": len(data)})
    assert resp.status_code == 201, resp.text
    assert resp.json()["offset"] == 0
    return str(resp.json()["id"])


def _put(url: str, upload_id: str, data: bytes, start: int, total: int) -> httpx.Response:
    return httpx.put(
        f"{url}/api/v1/uploads/{upload_id}",
        content=data,
        headers={
            "content-type": "application/octet-stream",
            "content-range": f"bytes {start}-{start + len(data) - 1}/{total}",
        },
    )


def test_completing_with_the_wrong_bytes_is_400_and_stores_nothing(
    url: str, server_store: SqlStore, tmp_path: Path
) -> None:
    claimed = b"a" * 1000
    upload_id = _open(url, claimed)
    assert _put(url, upload_id, b"b" * 1000, 0, 1000).status_code == 200
    resp = httpx.post(f"{url}/api/v1/uploads/{upload_id}/complete")
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_argument"
    assert "nothing was stored" in resp.json()["message"]
    assert not _server_blobs(server_store).exists(hash_bytes(claimed))
    assert not _server_blobs(server_store).exists(hash_bytes(b"b" * 1000))
    assert httpx.get(f"{url}/api/v1/uploads/{upload_id}").status_code == 404  # dropped
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_chunk_at_the_wrong_offset_is_409_with_the_current_offset(
    url: str, server_store: SqlStore
) -> None:
    data = os.urandom(3000)
    upload_id = _open(url, data)
    assert _put(url, upload_id, data[:1000], 0, 3000).headers["upload-offset"] == "1000"
    for start in (0, 2000):
        resp = _put(url, upload_id, data[start : start + 1000], start, 3000)
        assert resp.status_code == 409, resp.text
        assert resp.json()["code"] == "invalid_state"
        assert resp.json()["details"] == {"offset": 1000}
        assert "starts at 1000" in resp.json()["message"] or "1000" in resp.json()["message"]
    # the same session, asked for again, says where it is
    again = httpx.post(f"{url}/api/v1/uploads", json={"digest": hash_bytes(data), "size": 3000})
    assert again.json() == {
        "id": upload_id,
        "digest": hash_bytes(data),
        "size": 3000,
        "offset": 1000,
        "exists": False,
    }
    assert httpx.head(f"{url}/api/v1/uploads/{upload_id}").headers["upload-offset"] == "1000"
    # completing early is refused; nothing is visible until the end
    early = httpx.post(f"{url}/api/v1/uploads/{upload_id}/complete")
    assert early.status_code == 409
    assert early.json()["details"] == {"offset": 1000}
    assert httpx.head(f"{url}/api/v1/blobs/{hash_bytes(data)}").status_code == 404
    # a chunk whose hash header does not match is dropped again
    bad = httpx.put(
        f"{url}/api/v1/uploads/{upload_id}?offset=1000",
        content=data[1000:2000],
        headers={"x-luminary-chunk-blake3": hash_bytes(b"other")},
    )
    assert bad.status_code == 400
    assert httpx.get(f"{url}/api/v1/uploads/{upload_id}").json()["offset"] == 1000
    # a chunk past the declared size is refused
    assert _put(url, upload_id, data[1000:] + b"x", 1000, 3000).status_code == 400
    assert _put(url, upload_id, data[1000:], 1000, 3000).status_code == 200
    done = httpx.post(f"{url}/api/v1/uploads/{upload_id}/complete")
    assert done.status_code == 201, done.text
    assert _server_blobs(server_store).read_bytes(hash_bytes(data)) == data


@pytest.mark.parametrize(
    "bad_id",
    ["..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E", "a" * 63 + "/", "A" * 64, "..%5C..%5Cx", "x.json"],
)
def test_session_ids_with_path_characters_never_touch_files_outside(
    url: str, tmp_path: Path, bad_id: str
) -> None:
    outside = tmp_path / "passwd"
    outside.write_bytes(b"keep")
    for method, path in (
        ("GET", f"/api/v1/uploads/{bad_id}"),
        ("HEAD", f"/api/v1/uploads/{bad_id}"),
        ("PUT", f"/api/v1/uploads/{bad_id}?offset=0"),
        ("POST", f"/api/v1/uploads/{bad_id}/complete"),
    ):
        resp = httpx.request(method, f"{url}{path}", content=b"x" if method == "PUT" else None)
        assert resp.status_code in (400, 404), (method, path, resp.status_code)
    bad_digest = httpx.post(f"{url}/api/v1/uploads", json={"digest": "../../x", "size": 1})
    assert bad_digest.status_code == 400
    assert outside.read_bytes() == b"keep"
    assert not list((tmp_path / "spool").glob("*")) or all(
        re.fullmatch(r"[0-9a-f]{64}\.(part|json)", p.name) for p in (tmp_path / "spool").iterdir()
    )


def test_a_session_idle_past_its_time_to_live_is_swept_on_a_driven_clock(
    url: str, tmp_path: Path
) -> None:
    from luminary.server._blobs import SESSION_TTL_S, sweep_uploads

    data = os.urandom(2000)
    upload_id = _open(url, data)
    assert _put(url, upload_id, data[:1000], 0, 2000).status_code == 200
    spool = tmp_path / "spool"
    written = max(p.stat().st_mtime for p in spool.iterdir())
    assert sweep_uploads(spool, now=written + SESSION_TTL_S - 1) == 0  # still within its day
    assert httpx.get(f"{url}/api/v1/uploads/{upload_id}").json()["offset"] == 1000
    assert sweep_uploads(spool, now=written + SESSION_TTL_S + 1) == 2  # part and sidecar
    assert httpx.get(f"{url}/api/v1/uploads/{upload_id}").status_code == 404
    assert list(spool.iterdir()) == []


# -- (e) body limits and content types ---------------------------------------------------------
def test_an_oversized_json_body_is_413_without_being_read(url: str) -> None:
    body = b'{"name": "' + b"x" * (128 << 10) + b'"}'
    for resp in (
        httpx.post(
            f"{url}/api/v1/runs", content=body, headers={"content-type": "application/json"}
        ),
        # no content-length: counted as it streams
        httpx.post(
            f"{url}/api/v1/runs",
            content=iter([body[i : i + 8192] for i in range(0, len(body), 8192)]),
            headers={"content-type": "application/json"},
        ),
    ):
        assert resp.status_code == 413, resp.text
        assert resp.json()["code"] == "payload_too_large"
        assert set(resp.json()) == {"code", "message", "details"}
        assert resp.json()["details"]["limit"] == 64 << 10
    # under the limit, JSON as before
    assert httpx.post(f"{url}/api/v1/projects", json={"name": "p"}).status_code < 300


def test_a_wrong_content_type_is_415_naming_what_is_accepted(url: str) -> None:
    resp = httpx.post(
        f"{url}/api/v1/projects", content=b"name=p", headers={"content-type": "text/plain"}
    )
    assert resp.status_code == 415
    assert resp.json()["code"] == "unsupported_media_type"
    assert "application/json" in resp.json()["message"]
    assert set(resp.json()) == {"code", "message", "details"}
    blob = httpx.put(
        f"{url}/api/v1/blobs/{hash_bytes(b'x')}",
        content=b"x",
        headers={"content-type": "application/json"},
    )
    assert blob.status_code == 415
    assert "application/octet-stream" in blob.json()["message"]
    ok = httpx.put(
        f"{url}/api/v1/blobs/{hash_bytes(b'x')}",
        content=b"x",
        headers={"content-type": "application/octet-stream"},
    )
    assert ok.status_code == 201


# -- (b) a server killed mid-upload ------------------------------------------------------------
def _start_server(home: Path, port: int) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, LUMINARY_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("LUMINARY_URI", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminary.cli", "server", "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    # keep reading the server's output (its access log), or it blocks on a full pipe
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    bound = int(match.group(1))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{bound}/readyz", timeout=1).status_code == 200:
                return proc, bound
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("luminary server did not become ready")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(20)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.slow
def test_killing_the_server_mid_upload_shows_nothing_and_the_retry_resumes(
    tmp_path: Path,
) -> None:
    from luminary.errors import BackendUnavailableError
    from luminary.store._rest import RestStore

    home = tmp_path / "server-home"
    size = 300 << 20
    big = _random_file(tmp_path / "big.bin", 300)
    digest = hash_file(big).digest
    proc, port = _start_server(home, 0)
    base = f"http://127.0.0.1:{port}"
    store = RestStore(base, cache_dir=str(tmp_path / "cache"), retries=0)
    blobs = store.blobs
    blobs.part_size = 4 << 20
    blobs.upload_retries = 0  # fail at once when the server dies; the test retries
    send_part = blobs._send_part

    def slow_part(*args: object) -> int:  # slow the client down: the kill lands mid-upload
        time.sleep(0.02)
        return send_part(*args)  # type: ignore[arg-type]

    blobs._send_part = slow_part  # type: ignore[method-assign]
    failure: list[BaseException] = []

    def upload() -> None:
        try:
            blobs.put_file_as(big, digest, size)
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    client = threading.Thread(target=upload)
    try:
        client.start()
        offset = 0
        deadline = time.monotonic() + 60
        while not (0 < offset < size) or offset < 20 << 20:
            assert time.monotonic() < deadline, "the upload did not start"
            resp = httpx.get(f"{base}/api/v1/uploads/{digest}", timeout=5)
            offset = int(resp.json()["offset"]) if resp.status_code == 200 else 0
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(20)
        client.join(60)
        assert not client.is_alive()
        assert failure, "the upload finished before the server was killed"
        assert isinstance(failure[0], BackendUnavailableError), failure[0]
        sent_first = blobs.sent_bytes
        assert 0 < sent_first < size

        _stop(proc)
        proc, again = _start_server(home, port)  # the same home and port
        assert again == port
        assert httpx.head(f"{base}/api/v1/blobs/{digest}").status_code == 404  # nothing visible
        saved = int(httpx.get(f"{base}/api/v1/uploads/{digest}").json()["offset"])
        assert 0 < saved < size

        blobs.upload_retries = 3
        blobs._send_part = send_part  # type: ignore[method-assign]
        blobs.put_file_as(big, digest, size)
        resent = blobs.sent_bytes - sent_first
        assert resent == size - saved, (resent, size, saved)  # resumed, not from zero
        assert httpx.head(f"{base}/api/v1/blobs/{digest}").headers["content-length"] == str(size)
        assert blobs.verify(digest)
        assert list((home / "tmp" / "uploads").glob("*.part")) == []
        store.close()
    finally:
        client.join(60)
        _stop(proc)


def _drain(stream: Any) -> None:
    """Read a server's output to its end (closing it afterwards may interrupt the read)."""
    with contextlib.suppress(ValueError, OSError):
        stream.read()
