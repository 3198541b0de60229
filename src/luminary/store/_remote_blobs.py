"""Blobs through a Luminary server: the :class:`~luminary.storage.blobs.Blobs` methods over
``/api/v1/blobs/{digest}``.

Uploads stream the file (never whole in memory) and the server checks the BLAKE3 before it
stores anything. Files of :attr:`RemoteBlobs.resumable_from` bytes or more go through an
upload session (``/api/v1/uploads``) in parts of :attr:`RemoteBlobs.part_size` bytes, each
with its BLAKE3: when the connection breaks or the server answers 503 (also when it restarts
meanwhile), the client asks the server for the offset it holds and resumes from there, up to
:attr:`RemoteBlobs.upload_retries` times with backoff.

Downloads stream to a temporary file beside the destination, hashing as they go, and are
renamed into place only when the hash matches: a corrupt blob raises
:class:`~luminary.errors.IntegrityError` and leaves nothing behind. Thread-safe.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from luminary.errors import (
    BackendUnavailableError,
    IntegrityError,
    InvalidStateError,
    NotFoundError,
    OverloadedError,
)
from luminary.storage.blobs import Blob, check_digest, hash_bytes, hash_file, write_verified

if TYPE_CHECKING:
    from luminary.store._rest import RestStore

__all__ = ["RemoteBlobs"]

_BLOB_TIMEOUT_S = 600.0
_OFFSET_HEADER = "upload-offset"  # luminary.server._blobs.OFFSET_HEADER
_CHUNK_HASH_HEADER = "x-luminary-chunk-blake3"  # luminary.server._blobs.CHUNK_HASH_HEADER


class RemoteBlobs:
    """The blob store of the server behind ``store``; ``cache_dir`` holds local copies of
    blobs that readers need as files (``cached_path``), default
    ``$LUMINARY_HOME/cache/blobs``."""

    #: Files at least this large are uploaded through a resumable session.
    resumable_from: int = 8 << 20
    #: Bytes per part of a resumable upload (held in memory one at a time).
    part_size: int = 16 << 20
    #: Times a resumable upload picks up again after a broken connection or a 503.
    upload_retries: int = 8
    #: First pause before picking up again (doubles, at most 10 s).
    retry_delay_s: float = 0.5

    def __init__(self, store: RestStore, *, cache_dir: str | os.PathLike[str] | None = None):
        self._store = store
        self.url = f"{store.url}/api/v1/blobs"
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        #: Bytes sent in parts of resumable uploads by this client (what resuming saved shows).
        self.sent_bytes = 0

    def __repr__(self) -> str:
        return f"RemoteBlobs({self.url!r})"

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            from luminary.config import Settings

            self._cache_dir = Settings.from_env().home / "cache" / "blobs"
        return self._cache_dir

    def _path(self, digest: str) -> str:
        return f"/blobs/{check_digest(digest)}"

    # -- asking ----------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        try:
            self._store.request("HEAD", self._path(digest))
        except NotFoundError:
            return False
        return True

    def size(self, digest: str) -> int:
        try:
            resp = self._store.request("HEAD", self._path(digest))
        except NotFoundError:
            msg = f"blob {digest} is not in the store at {self.url}"
            raise NotFoundError(msg) from None
        return int(resp.headers["content-length"])

    def verify(self, digest: str) -> bool:
        """Whether the server's stored bytes still match the digest (hashed on the server)."""
        resp = self._store.request("POST", f"{self._path(digest)}/verify")
        return bool(resp.json()["ok"])

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        blob = hash_file(path)
        return self.put_file_as(path, blob.digest, blob.size)

    def put_file_as(
        self, path: str | os.PathLike[str], digest: str, size: int, *, fsync: bool = True
    ) -> Blob:
        """Upload a file whose digest the caller computed; the server re-hashes what arrives
        and refuses a mismatch. ``fsync`` is the server's business and ignored here."""
        if self.exists(digest):
            return Blob(digest, size)
        if size >= self.resumable_from:
            self._put_resumable(path, digest, size)
            return Blob(digest, size, written=True)
        with open(path, "rb") as src:
            self._store.request(
                "PUT",
                self._path(digest),
                content=src,
                headers={"content-type": "application/octet-stream"},
                timeout=_BLOB_TIMEOUT_S,
            )
        return Blob(digest, size, written=True)

    def put_bytes(self, data: bytes) -> Blob:
        digest = hash_bytes(data)
        if not self.exists(digest):
            self._store.request(
                "PUT",
                self._path(digest),
                content=data,
                headers={"content-type": "application/octet-stream"},
            )
        return Blob(digest, len(data))

    def _put_resumable(self, path: str | os.PathLike[str], digest: str, size: int) -> None:
        """Upload through a session, resuming from the server's offset after a failure."""
        failures = 0
        delay = self.retry_delay_s
        while True:
            try:
                state = self._store.request(
                    "POST", "/uploads", json={"digest": digest, "size": size}
                ).json()
                if state.get("exists"):
                    return
                upload_id, offset = str(state["id"]), int(state["offset"])
                with open(path, "rb") as src:
                    while offset < size:
                        offset = self._send_part(upload_id, src, offset, size)
                self._store.request(
                    "POST", f"/uploads/{upload_id}/complete", timeout=_BLOB_TIMEOUT_S
                )
                return
            except (BackendUnavailableError, OverloadedError, NotFoundError) as exc:
                # the server went away or restarted (the session lives on in its folder), or
                # the session is gone (completed by another client, or swept): ask again
                failures += 1
                if failures > self.upload_retries:
                    raise
                if isinstance(exc, NotFoundError) and self.exists(digest):
                    return
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _send_part(self, upload_id: str, src: BinaryIO, offset: int, size: int) -> int:
        """Send the part at ``offset``; the session's offset afterwards (the server's, when it
        holds another one: a part that half arrived, or another client's)."""
        import httpx

        from luminary.store._rest import error_from_body

        src.seek(offset)
        data = src.read(min(self.part_size, size - offset))
        if not data:
            msg = f"the file being uploaded as blob {upload_id} shrank while it was being sent"
            raise InvalidStateError(msg)
        end = offset + len(data) - 1
        headers = {
            "content-type": "application/octet-stream",
            "content-range": f"bytes {offset}-{end}/{size}",
            _CHUNK_HASH_HEADER: hash_bytes(data),
        }
        try:
            resp = self._store._client.put(
                f"/uploads/{upload_id}", content=data, headers=headers, timeout=_BLOB_TIMEOUT_S
            )
        except httpx.TransportError as exc:
            raise self._store._unreachable(exc) from exc
        if resp.status_code == 409 and _OFFSET_HEADER in resp.headers:
            return int(resp.headers[_OFFSET_HEADER])
        if resp.status_code >= 400:
            body = resp.json() if resp.content else ""
            raise error_from_body(resp.status_code, body)
        self.sent_bytes += len(data)
        return int(resp.headers.get(_OFFSET_HEADER, end + 1))

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, digest: str) -> bytes:
        data = self._store.request("GET", self._path(digest), timeout=_BLOB_TIMEOUT_S).content
        if hash_bytes(data) != digest:
            raise self._corrupt(digest)
        return data

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Download to ``dest`` atomically, verified; streamed, never whole in memory."""
        with self._download(self._path(digest)) as chunks:
            write_verified(dest, chunks, digest, mismatch=lambda got, n: self._corrupt(digest))
        return Path(dest)

    @contextlib.contextmanager
    def _download(self, path: str) -> Iterator[Iterator[bytes]]:
        """The response body of ``GET path`` in chunks; transport failures (also while the
        chunks are read) raise :class:`~luminary.errors.BackendUnavailableError`."""
        import httpx

        from luminary.store._rest import error_from_body

        client = self._store._client
        try:
            with client.stream("GET", path, timeout=_BLOB_TIMEOUT_S) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    body = resp.json() if resp.content else ""
                    raise error_from_body(resp.status_code, body)
                yield resp.iter_bytes(1 << 20)
        except httpx.TransportError as exc:
            raise self._store._unreachable(exc) from exc

    @contextlib.contextmanager
    def open_verified(self, digest: str) -> Iterator[BinaryIO]:
        """The blob, downloaded and verified first, as a local file stream."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
            local = self.get_file(digest, Path(tmp) / digest)
            with open(local, "rb") as stream:
                yield stream

    def location(self, digest: str) -> str:
        """A verified local copy of the blob (the server's bytes are fetched once)."""
        return str(self.cached_path(digest))

    def cached_path(self, digest: str) -> Path:
        """A local, verified copy of the blob (downloaded once into the cache)."""
        check_digest(digest)
        target = self.cache_dir / digest[:2] / digest
        if not target.is_file():  # files land here only whole and verified
            self.get_file(digest, target)
        return target

    def _corrupt(self, digest: str) -> IntegrityError:
        return IntegrityError(
            f"blob {digest} from {self.url} does not match its hash (the server's stored bytes "
            "changed or the transfer was damaged); it was not returned. Restore it on the "
            "server or log it again"
        )
