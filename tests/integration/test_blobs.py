"""BlobStore against real storage: a local folder, SeaweedFS's S3 gateway, an XRootD server.

The servers are started once per module on loopback ports (see ``remote_servers.py`` beside
this file); a backend whose server or client library is not installed is skipped with the
reason, and ``.ci/run`` installs them all. Each test works under its own fresh prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from luminary.config import Settings
from luminary.errors import (
    IntegrityError,
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
)
from luminary.storage import blobs as blobs_module
from luminary.storage.blobs import VERIFIED_SINCE, Blob, BlobStore, hash_bytes
from tests._components import require
from tests.integration.remote_servers import (
    S3Server,
    Unavailable,
    XRootDServer,
    seaweedfs_s3,
    unique_name,
    xrootd_server,
)

MiB = 1024 * 1024
BACKENDS = ["local", "s3", "xrootd"]
S3_WRITE_OPS = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
}


# -- servers, once per module ------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
            yield server
    except Unavailable as exc:
        require("s3", str(exc))


@pytest.fixture(scope="module")
def xrootd() -> Iterator[XRootDServer]:
    try:
        with xrootd_server() as server:
            yield server
    except Unavailable as exc:
        require("xrootd", str(exc))


# -- one backend, a fresh prefix per test -------------------------------------------------------
@dataclass
class Backend:
    name: str
    url: str
    options: dict[str, Any]
    # identity of the stored object for a key: changes whenever it is written again
    identity: Callable[[BlobStore, str], object]
    s3_ops: list[str] = field(default_factory=list)

    def store(self) -> BlobStore:
        return BlobStore(self.url, **self.options)


def _stat_identity(path: Path) -> tuple[int, int]:
    # A write publishes a new file (a new inode) by rename. Reuse re-dates a local blob (gc's
    # minimum age counts from the last reuse), so its times are not part of its identity.
    st = path.stat()
    return (st.st_ino, st.st_size)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    if name == "local":
        yield Backend(
            "local",
            str(tmp_path / "blobs"),
            {},
            lambda store, key: _stat_identity(Path(key)),
        )
    elif name == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        url = f"s3://{server.bucket}/{unique_name('blobs')}"
        b = Backend("s3", url, server.storage_options, lambda store, key: None)

        def identity(store: BlobStore, key: str) -> object:
            bucket, _, path = key.partition("/")
            head = store.fs.call_s3("head_object", Bucket=bucket, Key=path)
            writes = [op for op in b.s3_ops if op in S3_WRITE_OPS]
            return (head["ETag"], head["LastModified"], len(writes))

        b.identity = identity
        store = b.store()
        store.exists("0" * 64)  # connects s3fs's client, so that calls can be recorded

        def record(model: Any, **_: Any) -> None:
            b.s3_ops.append(model.name)

        events = store.fs.s3.meta.events
        events.register("before-call.s3", record)
        try:
            yield b
        finally:
            events.unregister("before-call.s3", record)
    else:
        server_x: XRootDServer = request.getfixturevalue("xrootd")
        yield Backend(
            "xrootd",
            server_x.url(unique_name("blobs")),
            {},
            lambda store, key: _stat_identity(server_x.backing(key)),
        )


def _stored_keys(store: BlobStore) -> list[str]:
    store.fs.invalidate_cache()
    marker = f"{store.root}/{VERIFIED_SINCE}"  # the store's own marker, not a blob
    return sorted(k for k in store.fs.find(store.root) if k != marker)


def _overwrite(store: BlobStore, digest: str, data: bytes) -> None:
    """Change a stored blob's bytes behind the store's back, through the backend itself."""
    with store.fs.open(store.key(digest), "wb") as fh:
        fh.write(data)
    store.fs.invalidate_cache()


# -- round trip, dedup --------------------------------------------------------------------------
def test_round_trip(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    src = tmp_path / "weights.bin"
    data = os.urandom(300_000)
    src.write_bytes(data)

    blob = store.put_file(src)
    assert blob == Blob(hash_bytes(data), len(data))
    assert store.exists(blob.digest)
    assert store.size(blob.digest) == len(data)
    assert store.read_bytes(blob.digest) == data
    dest = store.get_file(blob.digest, tmp_path / "out" / "copy.bin")
    assert dest == tmp_path / "out" / "copy.bin"
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]
    assert store.verify(blob.digest) is True

    small = store.put_bytes(b"config: {lr: 0.001}")
    assert small == Blob(hash_bytes(b"config: {lr: 0.001}"), 19)
    assert store.read_bytes(small.digest) == b"config: {lr: 0.001}"
    assert store.put_bytes(data) == blob  # same content by another way: same blob

    empty = store.put_bytes(b"")
    assert store.size(empty.digest) == 0
    assert store.read_bytes(empty.digest) == b""
    assert store.verify(empty.digest) is True

    # Only blobs under their content address: no temporaries, no tmp/ leftovers.
    assert [k.rsplit("/", 1)[1] for k in _stored_keys(store)] == sorted(
        {blob.digest, small.digest, empty.digest}
    )
    for key in _stored_keys(store):
        digest = key.rsplit("/", 1)[1]
        assert key == store.key(digest)


def test_second_put_of_same_content_writes_nothing(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    src = tmp_path / "a.bin"
    src.write_bytes(b"the same bytes" * 1000)
    blob = store.put_file(src)
    key = store.key(blob.digest)
    before = backend.identity(store, key)
    keys_before = _stored_keys(store)

    time.sleep(0.01)  # so that a rewrite would show in a nanosecond mtime
    again = tmp_path / "b.bin"  # another file, same content
    again.write_bytes(b"the same bytes" * 1000)
    assert store.put_file(again) == blob
    assert store.put_file(src) == blob
    assert store.put_bytes(b"the same bytes" * 1000) == blob

    assert backend.identity(store, key) == before
    assert _stored_keys(store) == keys_before
    # A second BlobStore over the same place sees the blob and writes nothing either.
    assert backend.store().put_file(src) == blob
    assert backend.identity(store, key) == before


# -- integrity ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], id="flipped-bit"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"", id="emptied"),
    ],
)
def test_corrupt_blob_raises_integrity_error(
    backend: Backend, tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    store = backend.store()
    data = os.urandom(50_000)
    blob = store.put_bytes(data)
    _overwrite(store, blob.digest, damage(data))
    assert store.exists(blob.digest)

    with pytest.raises(IntegrityError, match=blob.digest):
        store.read_bytes(blob.digest)
    out = tmp_path / "out"
    dest = out / "w.bin"
    with pytest.raises(IntegrityError, match=blob.digest):
        store.get_file(blob.digest, dest)
    assert not dest.exists()
    assert list(out.iterdir()) == []  # no temporary beside it either
    assert store.verify(blob.digest) is False

    # A file already at the destination is left as it was.
    dest.write_bytes(b"previous")
    with pytest.raises(IntegrityError):
        store.get_file(blob.digest, dest)
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in out.iterdir()) == ["w.bin"]


def test_unknown_digest_is_not_found(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    store.put_bytes(b"something else")
    digest = hash_bytes(b"never stored")
    assert store.exists(digest) is False
    for call in (
        lambda: store.size(digest),
        lambda: store.read_bytes(digest),
        lambda: store.verify(digest),
        lambda: store.get_file(digest, tmp_path / "out" / "x.bin"),
    ):
        with pytest.raises(NotFoundError, match=digest):
            call()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "ab" * 31,  # 62 characters
        "ab" * 33,  # 66 characters
        "A" * 64,  # upper case
        "0" * 63 + "g",
        "0" * 64 + "\n",  # a trailing newline must not slip through the pattern
        "../" * 21 + "x",  # 64 characters, but a path
        "",
    ],
)
def test_malformed_digest_is_invalid_argument(backend: Backend, tmp_path: Path, bad: str) -> None:
    store = backend.store()
    keys_before = _stored_keys(store) if backend.name == "local" else None
    for call in (
        lambda: store.key(bad),
        lambda: store.exists(bad),
        lambda: store.size(bad),
        lambda: store.read_bytes(bad),
        lambda: store.verify(bad),
        lambda: store.get_file(bad, tmp_path / "out" / "x.bin"),
    ):
        with pytest.raises(InvalidArgumentError, match="64 lower-case hex"):
            call()
    assert not (tmp_path / "out").exists()
    if keys_before is not None:
        assert _stored_keys(store) == keys_before


# -- big files ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    with open(path, "wb") as fh:
        for _ in range(64):
            fh.write(os.urandom(MiB))
    return path


def test_large_file_round_trip_is_streamed(
    backend: Backend, big_file: Path, tmp_path: Path
) -> None:
    store = backend.store()
    blob = store.put_file(big_file)
    assert blob.size == 64 * MiB
    assert store.size(blob.digest) == blob.size

    dest = tmp_path / "big-copy.bin"
    tracemalloc.start()
    try:
        store.get_file(blob.digest, dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Streamed in 8 MiB chunks: the peak is two or three chunks (16-24 MiB), not the 64 MiB blob.
    assert peak < 40 * MiB, f"get_file held {peak / MiB:.0f} MiB at once"
    assert dest.stat().st_size == blob.size
    assert blobs_module.hash_file(dest) == blob
    assert store.verify(blob.digest) is True


# -- killed writers, temporaries ----------------------------------------------------------------
_SLOW_CHILD = r"""
import json, sys, time
from luminary.storage import blobs

url, path, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real = blobs.hasher

class SlowHasher:
    # The real hasher, slowed: a remote put hashes each chunk just before it writes it.
    def __init__(self):
        self.h = real()
    def update(self, data):
        self.h.update(data)
        print("chunk", flush=True)
        time.sleep(0.05)
    def update_mmap(self, p):
        self.h.update_mmap(p)
    def hexdigest(self):
        return self.h.hexdigest()

def slow_copy(src, out):
    # A local store copies in the kernel and hashes the copy after: slow the copy instead.
    n = 0
    while data := src.read(1 << 20):
        out.write(data)
        out.flush()
        n += len(data)
        print("chunk", flush=True)
        time.sleep(0.05)
    return n

blobs.hasher = SlowHasher
blobs._kernel_copy = slow_copy
blobs._CHUNK = 1 << 20
blobs.BlobStore(url, **options).put_file(path)
print("done", flush=True)
"""


def _temporaries(backend: Backend, store: BlobStore) -> list[str]:
    if backend.name == "local":
        return [str(p) for p in Path(store.root).rglob(".tmp-*")]
    return [k for k in _stored_keys(store) if k.startswith(f"{store.root}/tmp/")]


@pytest.mark.parametrize("backend", ["local", "xrootd"], indirect=True)
def test_writer_killed_mid_write_leaves_no_blob(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(16 * MiB))
    digest = blobs_module.hash_file(src).digest

    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_CHILD, backend.url, str(src), json.dumps(backend.options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        for _ in range(3):  # three chunks hashed: two are written, the copy is under way
            line = child.stdout.readline()
            assert line == b"chunk\n", child.stderr.read() if child.stderr else line
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()

    assert store.exists(digest) is False
    with pytest.raises(NotFoundError):
        store.read_bytes(digest)
    # What the dead writer left: its temporary (a local .tmp-* beside where the blob would
    # go, or a file under tmp/ on XRootD), never the blob itself.
    left = _temporaries(backend, store)
    assert len(left) == 1, left
    assert store.sweep_temporaries(older_than_s=3600) == 0  # too fresh: could be a live writer
    assert _temporaries(backend, store) == left
    assert store.sweep_temporaries(older_than_s=0) == 1
    assert _temporaries(backend, store) == []

    # A retry stores it whole.
    assert store.put_file(src).digest == digest
    assert store.exists(digest)
    assert store.verify(digest) is True
    assert _temporaries(backend, store) == []


def test_sweep_temporaries_local_removes_only_stale_temporaries(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    blob = store.put_bytes(b"keep me")
    shard = Path(store.key(blob.digest)).parent
    stale = shard / ".tmp-stale"
    stale.write_bytes(b"half a blob")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    fresh = shard / ".tmp-fresh"
    fresh.write_bytes(b"a live writer's")
    other = shard / "notes.txt"  # not ours to remove
    other.write_bytes(b"x")
    os.utime(other, (old, old))
    elsewhere = tmp_path / "blobs" / ".tmp-top"  # only shard folders hold temporaries
    elsewhere.write_bytes(b"x")
    os.utime(elsewhere, (old, old))

    assert store.sweep_temporaries(older_than_s=3600) == 1
    assert not stale.exists()
    assert fresh.exists()
    assert other.exists()
    assert elsewhere.exists()
    assert store.verify(blob.digest) is True
    assert store.sweep_temporaries(older_than_s=0) == 1
    assert not fresh.exists()
    with pytest.raises(InvalidArgumentError, match="older_than_s"):
        store.sweep_temporaries(older_than_s=-1)


@pytest.mark.parametrize("backend", ["local", "s3", "xrootd"], indirect=True)
def test_file_changed_while_storing_is_refused(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.store()
    src = tmp_path / "moving.bin"
    src.write_bytes(b"version one" * 1000)
    real_hash_file = blobs_module.hash_file

    def hash_then_change(path: str | os.PathLike[str]) -> Blob:
        blob = real_hash_file(path)
        Path(path).write_bytes(b"version two" * 1000)  # another process rewrites it
        return blob

    monkeypatch.setattr(blobs_module, "hash_file", hash_then_change)
    with pytest.raises(InvalidArgumentError, match="changed while it was being stored"):
        store.put_file(src)
    assert not store.exists(hash_bytes(b"version one" * 1000))
    assert not store.exists(hash_bytes(b"version two" * 1000))
    assert _temporaries(backend, store) == []


# -- S3 specifics -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_put_is_a_single_put_object(backend: Backend, tmp_path: Path) -> None:
    store = backend.store()
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(2 * MiB))

    store.put_bytes(b"the first write also leaves the store's marker")
    backend.s3_ops.clear()
    store.put_bytes(b"one request")
    writes = [op for op in backend.s3_ops if op in S3_WRITE_OPS]
    assert writes == ["PutObject"], backend.s3_ops

    backend.s3_ops.clear()
    blob = store.put_file(src)
    writes = [op for op in backend.s3_ops if op in S3_WRITE_OPS]
    assert writes == ["PutObject"], backend.s3_ops
    assert "DeleteObject" not in backend.s3_ops  # nothing to clean up: no temporary key

    keys = _stored_keys(store)
    assert all("/tmp/" not in k for k in keys), keys
    assert store.key(blob.digest) in keys
    bucket, _, prefix = store.root.partition("/")
    uploads = store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix + "/")
    assert not uploads.get("Uploads")


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_interrupted_put_publishes_nothing(backend: Backend) -> None:
    """What a killed writer's single PUT leaves: the server gets half a body, then the
    connection drops. S3 (here SeaweedFS) publishes nothing under the key."""
    store = backend.store()
    data = os.urandom(MiB)
    digest = hash_bytes(data)
    bucket, _, path = store.key(digest).partition("/")
    endpoint = backend.options["client_kwargs"]["endpoint_url"]
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            f"PUT /{bucket}/{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[: len(data) // 2]
        )
        time.sleep(0.2)
    time.sleep(0.3)
    store.fs.invalidate_cache()
    assert store.exists(digest) is False
    assert _stored_keys(store) == []
    assert store.put_bytes(data).digest == digest
    assert store.verify(digest) is True


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
def test_s3_sweep_aborts_stale_multipart_uploads(backend: Backend) -> None:
    """A killed writer of a file of 100 MiB or more leaves an unfinished multipart upload:
    invisible, but its parts take space until aborted."""
    store = backend.store()
    bucket, _, prefix = store.root.partition("/")
    mine = f"{prefix}/ab/cd/{'ab' * 32}"
    theirs = f"{unique_name('other')}/ab/cd/{'ab' * 32}"
    uploads = {}
    for key in (mine, theirs):
        mpu = store.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
        store.fs.call_s3(
            "upload_part",
            Bucket=bucket,
            Key=key,
            UploadId=mpu["UploadId"],
            PartNumber=1,
            Body=b"x" * 1024,
        )
        uploads[key] = mpu["UploadId"]
    try:
        assert store.exists("ab" * 32) is False
        assert store.sweep_temporaries(older_than_s=3600) == 0
        assert store.sweep_temporaries(older_than_s=0) == 1

        def pending(p: str) -> list[str]:
            page = store.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=p)
            return [u["Key"] for u in page.get("Uploads", []) or []]

        assert pending(prefix + "/") == []
        assert pending(theirs.split("/")[0] + "/") == [theirs]  # another prefix: not ours
    finally:
        with contextlib.suppress(Exception):
            store.fs.call_s3(
                "abort_multipart_upload", Bucket=bucket, Key=theirs, UploadId=uploads[theirs]
            )


def test_s3_configured_from_the_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the blobs.py docstring tells users: LUMINARY_BLOBS plus the standard AWS
    variables, AWS_ENDPOINT_URL for a non-AWS store, and nothing else."""
    import s3fs

    url = f"s3://{s3_server.bucket}/{unique_name('env')}"
    monkeypatch.setenv("LUMINARY_BLOBS", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "luminary-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "luminary-env")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    s3fs.S3FileSystem.clear_instance_cache()  # a cached instance would not read the env again
    try:
        settings = Settings.from_env()
        assert settings.blobs_url == url
        store = BlobStore(settings.blobs_url)
        blob = store.put_bytes(b"configured by environment")
        assert store.read_bytes(blob.digest) == b"configured by environment"
        # It really is on the server: a store with explicit options reads it back.
        explicit = BlobStore(url, **s3_server.storage_options)
        assert explicit.read_bytes(blob.digest) == b"configured by environment"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()


def test_missing_backend_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec.core

    def no_s3fs(url: str, **_: Any) -> Any:
        raise ImportError("Install s3fs to access S3")

    monkeypatch.setattr(fsspec.core, "url_to_fs", no_s3fs)
    with pytest.raises(MissingDependencyError, match=r"luminary\[s3\]"):
        BlobStore("s3://bucket/prefix")
    with pytest.raises(MissingDependencyError, match=r"luminary\[xrootd\]"):
        BlobStore("root://eos.example.ch//eos/x")
    with pytest.raises(MissingDependencyError, match="'gcs'"):
        BlobStore("gcs://bucket/prefix")


def test_blob_keys_are_content_addresses(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"))
    digest = uuid.uuid4().hex * 2
    assert store.key(digest) == f"{store.root}/{digest[:2]}/{digest[2:4]}/{digest}"
