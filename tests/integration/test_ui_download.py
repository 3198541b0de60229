"""The web UI's artifact download never answers a complete 200 with bytes that do not match the
blob's digest: a small blob is verified before the answer, a large one aborts the connection
short of its content-length. Damaged blobs on disk, a real server, raw HTTP."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.server.ui._download import VERIFY_FIRST_BYTES
from luminary.store import SqlStore
from luminary.tracking.models import ArtifactEntry
from tests.integration.luminary_server import serve_in_thread

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, SqlStore, str]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    run_id = store.create_run("p").id
    try:
        with serve_in_thread(store, tmp_path / "spool", auth=False) as url:
            yield url, store, run_id
    finally:
        store.close()


def _artifact(store: SqlStore, run_id: str, path: str, data: bytes) -> Path:
    blob = store.blobs.put_bytes(data)
    store.add_artifacts(run_id, [ArtifactEntry(path, blob.digest, blob.size)])
    return Path(store.blobs.key(blob.digest))


def _damage(file: Path, at: int) -> None:
    os.chmod(file, 0o644)
    with file.open("r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0xFF]))


def test_a_damaged_small_artifact_is_an_error_and_no_bytes(
    site: tuple[str, SqlStore, str],
) -> None:
    url, store, run_id = site
    data = b"calibration constants " * 1000
    file = _artifact(store, run_id, "calib.txt", data)
    good = httpx.get(f"{url}/runs/{run_id}/artifacts/calib.txt")
    assert good.status_code == 200
    assert good.content == data
    _damage(file, len(data) - 1)  # the last byte: found only at the end of a stream
    bad = httpx.get(f"{url}/runs/{run_id}/artifacts/calib.txt")
    assert bad.status_code == 500
    assert "does not match" in bad.text or "damaged" in bad.text.lower()
    assert data[:100] not in bad.content


@pytest.mark.parametrize(
    ("damage", "size"),
    [
        ("flip", VERIFY_FIRST_BYTES + (4 << 20)),  # whole chunks: the last one ends the body
        ("flip", VERIFY_FIRST_BYTES + (3 << 20) + 17),
        ("truncate", VERIFY_FIRST_BYTES + (3 << 20) + 17),
    ],
)
def test_a_damaged_large_artifact_aborts_the_download(
    site: tuple[str, SqlStore, str], damage: str, size: int
) -> None:
    url, store, run_id = site
    data = os.urandom(size)
    file = _artifact(store, run_id, "weights.bin", data)
    if damage == "flip":
        _damage(file, size - 5)
    else:
        os.chmod(file, 0o644)
        os.truncate(file, size - 1000)
    seen: dict[str, int] = {"bytes": 0}

    def fetch() -> None:
        with httpx.stream("GET", f"{url}/runs/{run_id}/artifacts/weights.bin") as resp:
            assert resp.status_code == 200  # headers went out before the end was hashed
            assert resp.headers["content-length"] == str(size)
            for chunk in resp.iter_raw():
                seen["bytes"] += len(chunk)

    with pytest.raises(httpx.HTTPError):  # the client sees a failure, not a finished file
        fetch()
    assert seen["bytes"] < size
    # the server keeps serving: an intact large artifact downloads whole
    intact = os.urandom(VERIFY_FIRST_BYTES + 1)
    _artifact(store, run_id, "ok.bin", intact)
    assert httpx.get(f"{url}/runs/{run_id}/artifacts/ok.bin").content == intact
