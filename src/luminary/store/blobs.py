"""Content-addressed blob store over fsspec, keyed by BLAKE3.

A blob lives at ``<root>/<d[0:2]>/<d[2:4]>/<digest>``. Writes are atomic: a local store writes a
temporary file and renames it; an object store (``s3://``) receives one PUT, which is atomic by
itself; other remote file systems (``root://``) write a temporary name and move it. Reads hash
what they return: a blob whose bytes no longer match its digest raises
:class:`~luminary.errors.IntegrityError` and nothing is returned or left at the destination.

Thread safety: a BlobStore may be shared between threads.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from luminary.errors import IntegrityError, InvalidArgumentError, NotFoundError

__all__ = ["Blob", "BlobStore", "hash_bytes", "hash_file"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


def _hasher() -> Any:
    import blake3

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def hash_file(path: str | os.PathLike[str]) -> Blob:
    """BLAKE3 of a local file, memory-mapped and multi-threaded (disk speed)."""
    h = _hasher()
    size = os.path.getsize(path)
    if size:
        h.update_mmap(os.fspath(path))
    return Blob(h.hexdigest(), size)


def hash_bytes(data: bytes) -> str:
    h = _hasher()
    h.update(data)
    return str(h.hexdigest())


def check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        msg = f"blob digest {digest!r} is not valid; a digest is 64 lower-case hex characters"
        raise InvalidArgumentError(msg)
    return digest


class BlobStore:
    """Blobs under an fsspec URL: a local folder (default), ``s3://bucket/prefix``, ``root://…``."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec.core

        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        self._local = "file" in _protocols(self.fs)
        self._atomic_put = bool({"s3", "s3a", "gs", "gcs"} & _protocols(self.fs))
        if self._local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    def key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/{digest[:2]}/{digest[2:4]}/{digest}"

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self.key(digest)))

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self.key(digest)))
        except FileNotFoundError as exc:
            msg = f"blob {digest} is not in the store at {self.url}"
            raise NotFoundError(msg) from exc

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store a local file; returns its digest and size. A blob already present is not
        written again."""
        blob = hash_file(path)
        if self.exists(blob.digest):
            return blob
        final = self.key(blob.digest)
        if self._local:
            self._local_atomic(final, lambda tmp: shutil.copyfile(path, tmp))
        elif self._atomic_put:
            self.fs.put_file(os.fspath(path), final)
        else:
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
            self.fs.put_file(os.fspath(path), tmp)
            self.fs.mv(tmp, final)
        return blob

    def put_bytes(self, data: bytes) -> Blob:
        digest = hash_bytes(data)
        if self.exists(digest):
            return Blob(digest, len(data))
        final = self.key(digest)
        if self._local:
            self._local_atomic(final, lambda tmp: Path(tmp).write_bytes(data))
        elif self._atomic_put:
            self.fs.pipe_file(final, data)
        else:
            tmp = f"{self.root}/tmp/{uuid.uuid4().hex}"
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, final)
        return Blob(digest, len(data))

    def _local_atomic(self, final: str, write: Any) -> None:
        folder = Path(final).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        os.close(fd)
        try:
            write(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified against the digest."""
        data = self._open_raw(digest).read()
        if hash_bytes(data) != digest:
            raise self._corrupt(digest)
        return bytes(data)

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy the blob to ``dest`` (atomically), verifying it on the way."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        h = _hasher()
        try:
            with os.fdopen(fd, "wb") as out, self._open_raw(digest) as src:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if h.hexdigest() != digest:
            Path(tmp).unlink(missing_ok=True)
            raise self._corrupt(digest)
        os.replace(tmp, target)
        return target

    def verify(self, digest: str) -> bool:
        h = _hasher()
        with self._open_raw(digest) as src:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
        return bool(h.hexdigest() == digest)

    def _open_raw(self, digest: str) -> BinaryIO:
        key = self.key(digest)
        try:
            return self.fs.open(key, "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            msg = f"blob {digest} is not in the store at {self.url}"
            raise NotFoundError(msg) from exc

    def _corrupt(self, digest: str) -> IntegrityError:
        return IntegrityError(
            f"blob {digest} at {self.key(digest)} no longer matches its hash (the stored bytes "
            "changed or were truncated); it was not returned. Restore it from a copy or re-log "
            "the artifact"
        )


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return set(proto) if isinstance(proto, (tuple, list)) else {proto}
