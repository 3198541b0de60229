"""Content-addressed blob store over fsspec, keyed by BLAKE3.

A blob lives at ``<root>/<d[0:2]>/<d[2:4]>/<digest>``, where ``<digest>`` is 64 lower-case hex
characters; any other digest is refused with :class:`~luminary.errors.InvalidArgumentError`
before a path is built, so a digest can never name a path outside the store.

Writes are atomic, so a blob is either absent or whole, even when the writer is killed:

- a local folder: the bytes go to a temporary ``.tmp-<random>`` file beside the final name, are
  fsynced and renamed onto it. A writer killed mid-way leaves that temporary file, never a
  blob; :meth:`BlobStore.sweep_temporaries` removes stale ones.
- an object store (``s3://``): one PUT, which S3 makes visible whole or not at all. (s3fs sends
  files of 100 MiB or more as a multipart upload, likewise invisible until completed; the parts
  of one whose writer died are aborted by :meth:`BlobStore.sweep_temporaries` or by a bucket
  lifecycle rule.)
- other file systems (``root://`` for XRootD/EOS): the bytes go to ``<root>/tmp/<random>``,
  which is then moved (renamed) to the final name; :meth:`BlobStore.sweep_temporaries` removes
  temporaries left by killed writers.

Reads hash what they return: a blob whose bytes no longer match its digest raises
:class:`~luminary.errors.IntegrityError` and nothing is returned or left at the destination.
Local and ``root://`` writes also hash the bytes as they are sent and refuse to publish them
if the file changed after it was hashed.

Configuring an S3 store
-----------------------
Set ``LUMINARY_BLOBS=s3://bucket/prefix`` (the bucket must exist) and install the extra:
``pip install 'luminary[s3]'``. Credentials, region and endpoint come from botocore's usual
sources, which s3fs uses: the environment variables ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_DEFAULT_REGION``, or
``AWS_PROFILE`` with ``~/.aws/credentials`` and ``~/.aws/config``, or an instance role. For an
object store other than AWS (SeaweedFS, MinIO, Ceph RGW, CERN's S3) set
``AWS_ENDPOINT_URL=https://host:port`` (or ``AWS_ENDPOINT_URL_S3``): botocore honours it and s3fs
passes it through, so nothing Luminary-specific is needed (``tests/integration/test_blobs.py``
checks this against SeaweedFS). In code, s3fs options can also be given directly:
``BlobStore("s3://bucket/prefix", key=..., secret=..., client_kwargs={"endpoint_url": ...})``.

Configuring an XRootD (EOS) store
---------------------------------
Set ``LUMINARY_BLOBS=root://eos.example.ch:1094//eos/experiment/luminary/blobs`` and install
``pip install 'luminary[xrootd]'``. Authentication is the XRootD client's own (a Kerberos
ticket, an X.509 proxy in ``X509_USER_PROXY``, or a token in ``BEARER_TOKEN``).

Thread safety: a BlobStore may be shared between threads.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from luminary.errors import (
    IntegrityError,
    InvalidArgumentError,
    MissingDependencyError,
    NotFoundError,
)

__all__ = ["Blob", "BlobStore", "check_digest", "hash_bytes", "hash_file"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_CHUNK = 8 * 1024 * 1024
_LOCAL_TMP_PREFIX = ".tmp-"
_REMOTE_TMP_DIR = "tmp"
# fsspec protocol -> (module it needs, luminary extra that installs it)
_EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "root": ("fsspec_xrootd", "xrootd")}


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
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        msg = f"blob digest {digest!r} is not valid; a digest is 64 lower-case hex characters"
        raise InvalidArgumentError(msg)
    return digest


class BlobStore:
    """Blobs under an fsspec URL: a local folder (default), ``s3://bucket/prefix``, ``root://…``."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec.core

        self.url = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError as exc:
            raise _missing_dependency(url, exc) from exc
        self.root = root.rstrip("/")
        protocols = _protocols(self.fs)
        self._local = "file" in protocols
        self._atomic_put = bool({"s3", "s3a", "gs", "gcs"} & protocols)
        self._s3 = bool({"s3", "s3a"} & protocols)
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
        key = self.key(digest)
        try:
            return int(self.fs.size(key))
        except OSError as exc:
            raise self._not_found_or(exc, digest, key) from exc

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, path: str | os.PathLike[str]) -> Blob:
        """Store a local file; returns its digest and size. A blob already present is not
        written again. The file is read in chunks, never whole (except by s3fs for an S3 PUT
        under 100 MiB)."""
        blob = hash_file(path)
        if self.exists(blob.digest):
            return blob
        final = self.key(blob.digest)
        if self._atomic_put:
            self.fs.put_file(os.fspath(path), final)
            return blob

        def write(out: BinaryIO) -> None:
            with open(path, "rb") as src:
                sent = _copy_hashing(src, out)
            if sent != blob.digest:
                msg = (
                    f"{os.fspath(path)!r} changed while it was being stored (hashed as "
                    f"{blob.digest}, sent as {sent}); nothing was stored. Store it again once "
                    "nothing writes to it"
                )
                raise InvalidArgumentError(msg)

        if self._local:
            self._local_atomic(final, write)
        else:
            self._remote_atomic(final, write)
        return blob

    def put_file_as(
        self, path: str | os.PathLike[str], digest: str, size: int, *, fsync: bool = True
    ) -> Blob:
        """Store a local file whose BLAKE3 the caller has just computed (a dataset scan).

        Nothing is read when the blob exists. Otherwise a local store copies the file in the
        kernel (``copy_file_range``), without hashing it a second time, and refuses it if its
        size or modification time changed during the copy; a remote store hashes it again as it
        sends it. A file rewritten between the scan and the copy with the same size and time
        would be caught when the blob is read (every read is verified). ``fsync=False`` leaves
        flushing to the operating system: the blob survives a crash of this process, not a
        power cut.
        """
        check_digest(digest)
        if self.exists(digest):
            return Blob(digest, size)
        final = self.key(digest)
        if not self._local:
            self.put_file(path)
            return Blob(digest, size)
        before = os.stat(path)
        if before.st_size != size:
            raise _changed(path, f"its size is {before.st_size}, not {size}")
        folder = Path(final).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_LOCAL_TMP_PREFIX)
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as out:
                _kernel_copy(src.fileno(), out.fileno(), size)
                if fsync:
                    os.fsync(out.fileno())
            after = os.stat(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            Path(tmp).unlink(missing_ok=True)
            raise _changed(path, "it was modified during the copy")
        os.replace(tmp, final)
        return Blob(digest, size)

    def put_bytes(self, data: bytes) -> Blob:
        digest = hash_bytes(data)
        if self.exists(digest):
            return Blob(digest, len(data))
        final = self.key(digest)
        if self._atomic_put:
            self.fs.pipe_file(final, data)
        elif self._local:
            self._local_atomic(final, lambda out: out.write(data))
        else:
            self._remote_atomic(final, lambda out: out.write(data))
        return Blob(digest, len(data))

    def _local_atomic(
        self, final: str, write: Callable[[BinaryIO], object], *, fsync: bool = True
    ) -> None:
        folder = Path(final).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_LOCAL_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _remote_atomic(self, final: str, write: Callable[[BinaryIO], object]) -> None:
        tmp = f"{self.root}/{_REMOTE_TMP_DIR}/{uuid.uuid4().hex}"
        self.fs.makedirs(f"{self.root}/{_REMOTE_TMP_DIR}", exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as out:
                write(out)
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to report
                if self.fs.exists(tmp):
                    self.fs.rm_file(tmp)
            raise

    def sweep_temporaries(self, older_than_s: float = 24 * 3600.0) -> int:
        """Remove what writers killed mid-write left behind, if older than ``older_than_s``:
        ``.tmp-*`` files in a local store, ``tmp/*`` in a ``root://`` store, unfinished
        multipart uploads under the prefix of an ``s3://`` store. Returns how many were
        removed. Keep ``older_than_s`` well above the longest upload, since a live writer's
        temporary looks the same."""
        if older_than_s < 0:
            msg = f"older_than_s={older_than_s!r} is not valid; give 0 or more seconds"
            raise InvalidArgumentError(msg)
        cutoff = time.time() - older_than_s
        if self._local:
            return self._sweep_local(cutoff)
        if self._s3:
            return self._sweep_s3_uploads(cutoff)
        if self._atomic_put:
            return 0
        return self._sweep_remote_tmp(cutoff)

    def _sweep_local(self, cutoff: float) -> int:
        removed = 0
        for top in _scandir(self.root):
            if not (_SHARD.fullmatch(top.name) and top.is_dir(follow_symlinks=False)):
                continue
            for sub in _scandir(top.path):
                if not (_SHARD.fullmatch(sub.name) and sub.is_dir(follow_symlinks=False)):
                    continue
                for entry in _scandir(sub.path):
                    if not entry.name.startswith(_LOCAL_TMP_PREFIX):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(info.st_mode) and info.st_mtime <= cutoff:
                            os.unlink(entry.path)
                            removed += 1
                    except FileNotFoundError:  # finished or swept meanwhile
                        continue
        return removed

    def _sweep_remote_tmp(self, cutoff: float) -> int:
        folder = f"{self.root}/{_REMOTE_TMP_DIR}"
        self.fs.invalidate_cache(folder)
        try:
            entries = self.fs.ls(folder, detail=True)
        except OSError:
            if not self.fs.exists(folder):
                return 0
            raise
        removed = 0
        for entry in entries:
            if entry.get("type") != "file":
                continue
            mtime = _mtime(entry)
            if mtime is None:  # a listing without times: ask for this one
                mtime = _mtime({"mtime": self.fs.modified(entry["name"])})
            if mtime is not None and mtime <= cutoff:
                try:
                    self.fs.rm_file(entry["name"])
                except OSError:
                    if self.fs.exists(entry["name"]):
                        raise
                    continue  # its writer finished (moved it) meanwhile
                removed += 1
        return removed

    def _sweep_s3_uploads(self, cutoff: float) -> int:
        bucket, _, prefix = self.root.partition("/")
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if prefix:
            kwargs["Prefix"] = prefix + "/"
        removed = 0
        while True:
            page = self.fs.call_s3("list_multipart_uploads", **kwargs)
            for upload in page.get("Uploads", []) or []:
                initiated = upload.get("Initiated")
                if initiated is not None and initiated.timestamp() <= cutoff:
                    self.fs.call_s3(
                        "abort_multipart_upload",
                        Bucket=bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                    removed += 1
            if not page.get("IsTruncated"):
                return removed
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["UploadIdMarker"] = page.get("NextUploadIdMarker")

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified against the digest."""
        with self._open_raw(digest) as src:
            data = src.read()
        if hash_bytes(data) != digest:
            raise self._corrupt(digest)
        return bytes(data)

    @contextlib.contextmanager
    def open_verified(self, digest: str) -> Iterator[BinaryIO]:
        """A stream over the blob that hashes what is read; reading to the end raises
        :class:`~luminary.errors.IntegrityError` if the bytes do not match (for streamed
        consumers such as manifests, which must not trust a corrupt blob)."""
        with self._open_raw(digest) as raw:
            yield io.BufferedReader(_VerifyingReader(raw, digest, self._corrupt), 1 << 20)

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy the blob to ``dest`` (atomically), verifying it on the way. The blob is
        streamed in chunks, never held whole in memory; a corrupt blob leaves nothing at
        ``dest`` (nor a temporary beside it)."""
        target = Path(dest)
        with self._open_raw(digest) as src:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    got = _copy_hashing(src, out)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        if got != digest:
            Path(tmp).unlink(missing_ok=True)
            raise self._corrupt(digest)
        os.replace(tmp, target)
        return target

    def verify(self, digest: str) -> bool:
        """Whether the stored bytes still match the digest (NotFoundError if absent)."""
        with self._open_raw(digest) as src:
            return bool(_copy_hashing(src, None) == digest)

    def _open_raw(self, digest: str) -> BinaryIO:
        key = self.key(digest)
        options: dict[str, Any] = {}
        if not self._local:
            # Read exactly the chunks asked for: no read-ahead buffer of another block size.
            options = {"block_size": _CHUNK, "cache_type": "none"}
        try:
            return self.fs.open(key, "rb", **options)  # type: ignore[no-any-return]
        except OSError as exc:
            raise self._not_found_or(exc, digest, key) from exc

    def _not_found_or(self, exc: OSError, digest: str, key: str) -> Exception:
        """NotFoundError when the blob is absent (remote file systems raise plain OSError
        for that), else the original error."""
        if isinstance(exc, FileNotFoundError) or not self.fs.exists(key):
            return NotFoundError(f"blob {digest} is not in the store at {self.url}")
        return exc

    def _corrupt(self, digest: str) -> IntegrityError:
        return IntegrityError(
            f"blob {digest} at {self.key(digest)} no longer matches its hash (the stored bytes "
            "changed or were truncated); it was not returned. Restore it from a copy or re-log "
            "the artifact"
        )


class _VerifyingReader(io.RawIOBase):
    """Reads through ``raw``, hashing; at end of stream the digest must match."""

    def __init__(self, raw: BinaryIO, digest: str, corrupt: Callable[[str], Exception]) -> None:
        self._raw = raw
        self._digest = digest
        self._corrupt = corrupt
        self._hasher = _hasher()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        if n:
            buffer[:n] = data
            self._hasher.update(data)
        elif not self._checked:
            self._checked = True
            if self._hasher.hexdigest() != self._digest:
                raise self._corrupt(self._digest)
        return n


def _kernel_copy(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes between file descriptors inside the kernel where it can."""
    copied = 0
    copy_range = getattr(os, "copy_file_range", None)
    while copied < size:
        try:
            n = (
                copy_range(src, dst, size - copied)
                if copy_range
                else os.sendfile(dst, src, None, size - copied)
            )
        except OSError:
            n = 0
        if n == 0:
            break
        copied += n
    if copied < size:  # a file system without in-kernel copies: plain reads and writes
        os.lseek(src, copied, os.SEEK_SET)
        os.lseek(dst, copied, os.SEEK_SET)
        while chunk := os.read(src, _CHUNK):
            os.write(dst, chunk)


def _changed(path: str | os.PathLike[str], why: str) -> InvalidArgumentError:
    msg = (
        f"{os.fspath(path)!r} changed since it was hashed ({why}); nothing was stored. "
        "Add it again once nothing writes to it"
    )
    return InvalidArgumentError(msg)


def _copy_hashing(src: BinaryIO, out: BinaryIO | None) -> str:
    """Stream ``src`` into ``out`` (if any) in chunks; returns the BLAKE3 of what was read."""
    h = _hasher()
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        if out is not None:
            out.write(chunk)
    return str(h.hexdigest())


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(entry: dict[str, Any]) -> float | None:
    for field in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, int | float):
            return float(value)
    return None


def _missing_dependency(url: str, exc: ImportError) -> MissingDependencyError:
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in _EXTRAS:
        module, extra = _EXTRAS[protocol]
        return MissingDependencyError.for_module(module, extra, f"the blob store {url}")
    return MissingDependencyError(
        f"the blob store {url} needs fsspec's {protocol!r} file system, whose package is not "
        f"installed ({exc}); Luminary supports a local folder, s3:// and root://"
    )


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return set(proto) if isinstance(proto, tuple | list) else {proto}
