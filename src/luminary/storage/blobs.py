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
import errno
import fcntl
import io
import os
import re
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from luminary._optional import missing_driver
from luminary.errors import (
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    StorageFullError,
)

__all__ = [
    "Blobs",
    "VERIFIED_SINCE",
    "WRITERS",
    "Blob",
    "BlobStore",
    "check_digest",
    "file_chunks",
    "full_or",
    "hash_bytes",
    "hash_file",
    "hasher",
    "listed_mtime",
    "write_verified",
]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_CHUNK = 8 * 1024 * 1024
_LOCAL_TMP_PREFIX = ".tmp-"
_REMOTE_TMP_DIR = "tmp"
#: Marker at a store's root: blobs newer than it were verified when written.
VERIFIED_SINCE = ".verified-since"
#: Folder at a local store's root with one locked file per running writer.
WRITERS = ".writers"
# fsspec protocol -> (module it needs, luminary extra that installs it)


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    #: Whether this call stored the bytes (False: a sound blob was there already).
    written: bool = field(default=False, compare=False, repr=False)


class Blobs(Protocol):
    """What the SDK needs of a store's blobs: :class:`BlobStore` (embedded, fsspec) and
    ``RemoteBlobs`` (through a Luminary server) both provide it. Every read is verified against
    the digest; a mismatch raises :class:`~luminary.errors.IntegrityError`."""

    url: str

    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def put_file(self, path: str | os.PathLike[str]) -> Blob: ...

    def put_file_as(
        self, path: str | os.PathLike[str], digest: str, size: int, *, fsync: bool = True
    ) -> Blob: ...

    def put_bytes(self, data: bytes) -> Blob: ...

    def read_bytes(self, digest: str) -> bytes: ...

    def open_verified(self, digest: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path: ...

    def verify(self, digest: str) -> bool: ...

    def location(self, digest: str) -> str:
        """Where a reader finds the blob's bytes: a path or URL (``s3://…``) in the store's own
        filesystem, or a verified local copy of a server's blob."""
        ...


def hasher() -> Any:
    import blake3

    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def hash_file(path: str | os.PathLike[str]) -> Blob:
    """BLAKE3 of a local file, memory-mapped and multi-threaded (disk speed)."""
    h = hasher()
    size = os.path.getsize(path)
    if size:
        h.update_mmap(os.fspath(path))
    return Blob(h.hexdigest(), size)


def hash_bytes(data: bytes) -> str:
    h = hasher()
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
            raise missing_driver(url, f"the blob store {url}", exc) from exc
        self.root = root.rstrip("/")
        protocols = _protocols(self.fs)
        self._local = "file" in protocols
        self._atomic_put = bool({"s3", "s3a", "gs", "gcs"} & protocols)
        self._s3 = bool({"s3", "s3a"} & protocols)
        self._since: float | None = None
        if self._local:
            Path(self.root).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    def key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/{digest[:2]}/{digest[2:4]}/{digest}"

    def location(self, digest: str) -> str:
        """The blob's path (local store) or URL (``s3://bucket/…``, ``root://…``)."""
        key = self.key(digest)
        protocol = self.fs.protocol
        proto = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
        return key if proto in ("file", "local") else f"{proto}://{key}"

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
        """Store a local file; returns its digest and size. A sound blob already present is
        not written again. The file is read in chunks, never whole, and the bytes stored are
        hashed as they are written (see :meth:`put_file_as`)."""
        blob = hash_file(path)
        return self.put_file_as(path, blob.digest, blob.size)

    def put_file_as(
        self, path: str | os.PathLike[str], digest: str, size: int, *, fsync: bool = True
    ) -> Blob:
        """Store a local file whose BLAKE3 the caller has computed (a dataset scan, an upload).

        The bytes are hashed as they are copied (one pass) and published under ``digest`` only
        when they hash to it: a file rewritten after it was hashed raises
        :class:`~luminary.errors.InvalidArgumentError` and nothing is stored. A blob already
        present is reused only when it is sound (see :meth:`reusable`). ``fsync=False`` leaves
        flushing to the operating system: the blob survives a crash of this process, not a
        power cut. ``Blob.written`` says whether bytes were stored.
        """
        check_digest(digest)
        if self.reusable(digest, size):
            return Blob(digest, size)
        with open(path, "rb") as src:
            self._write(src, digest, size, fsync=fsync, mismatch=_changed_file(path, digest))
        return Blob(digest, size, written=True)

    def put_bytes(self, data: bytes) -> Blob:
        digest = hash_bytes(data)
        if self.reusable(digest, len(data)):
            return Blob(digest, len(data))
        self._write(io.BytesIO(data), digest, len(data), fsync=True, mismatch=_changed_bytes)
        return Blob(digest, len(data), written=True)

    def reusable(self, digest: str, size: int | None = None) -> bool:
        """Whether a blob ``digest`` is stored whole and may be reused without writing it.

        A blob written through this class was hashed before it got its name, so its size
        (one ``stat``) is all that is checked. A blob older than the store's marker
        :data:`VERIFIED_SINCE` (``.verified-since`` at the root, made when a store is first
        opened by a Luminary that verifies every write) may have been written unverified:
        it is hashed once here, and in a local store its time is then moved past the marker
        so it is not hashed again. A blob that does not match is reported as not reusable,
        and the caller's verified write replaces it.
        """
        key = self.key(digest)
        try:
            info = self.fs.info(key)
        except (FileNotFoundError, OSError):
            return False
        if size is not None and int(info.get("size", -1)) != size:
            return False
        mtime = listed_mtime(info)
        since = self._verified_since()
        if mtime is not None and since is not None and mtime > since:
            if self._local:  # reused now: gc's minimum age counts from here
                with contextlib.suppress(OSError):
                    os.utime(key)
            return True
        try:
            sound = self.verify(digest)
        except NotFoundError:
            return False
        if sound and self._local:
            with contextlib.suppress(OSError):
                os.utime(key)
        return sound

    def _verified_since(self) -> float | None:
        """The time of the store's :data:`VERIFIED_SINCE` marker, made on first use."""
        if self._since is not None:
            return self._since
        marker = f"{self.root}/{VERIFIED_SINCE}"
        try:
            if self._local:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            elif not self.fs.exists(marker):
                with self.fs.open(marker, "wb") as out:
                    out.write(b"blobs written after this file are verified\n")
            self._since = listed_mtime(self.fs.info(marker))
        except OSError:
            return None  # no marker, no trust: every reused blob is hashed
        return self._since

    def _write(
        self,
        src: BinaryIO,
        digest: str,
        size: int,
        *,
        fsync: bool,
        mismatch: Callable[[str, int], Exception],
    ) -> None:
        """Copy ``src`` to the blob ``digest`` and publish it atomically only if the bytes
        written hash to ``digest`` and number ``size``; else raise ``mismatch(got, got_size)``
        and leave nothing (no blob, no temporary)."""
        self._verified_since()  # the marker predates every blob written from now on
        final = self.key(digest)
        if self._local:
            copy_verified(
                src,
                final,
                digest,
                size=size,
                fsync=fsync,
                tmp_prefix=_LOCAL_TMP_PREFIX,
                mismatch=mismatch,
            )
        elif self._atomic_put:
            self._put_object(final, src, digest, size, mismatch)
        else:

            def write(out: BinaryIO) -> None:
                _expect(*_copy_hashing(src, out), digest, size, mismatch)

            self._remote_atomic(final, write)

    def _put_object(
        self,
        final: str,
        src: BinaryIO,
        digest: str,
        size: int,
        mismatch: Callable[[str, int], Exception],
    ) -> None:
        """One PUT (or a multipart upload) to an object store, completed only when the bytes
        sent hash to ``digest``; otherwise the upload is discarded and nothing is visible."""
        out = self.fs.open(final, "wb")
        try:
            _expect(*_copy_hashing(src, out), digest, size, mismatch)
        except BaseException:
            out.discard()
            out.closed = True
            raise
        out.close()

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

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Announce a writer that stores blobs now and references them later (a dataset add):
        while it runs, :func:`luminary.store.gc` removes no unreferenced blob. A local store
        keeps a file under ``.writers/`` locked by this process (the lock dies with it, so a
        killed writer holds nothing); other stores rely on gc's minimum age alone."""
        if not self._local:
            yield
            return
        folder = Path(self.root) / WRITERS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{os.getpid()}-{uuid.uuid4().hex}"
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)

    def live_writers(self) -> int:
        """How many :meth:`writing` blocks are running now (any process); leases of killed
        writers are removed on the way."""
        if not self._local:
            return 0
        live = 0
        for entry in _scandir(str(Path(self.root) / WRITERS)):
            try:
                fd = os.open(entry.path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live += 1
            else:  # nobody holds it: its writer is gone
                Path(entry.path).unlink(missing_ok=True)
            finally:
                os.close(fd)
        return live

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
            mtime = listed_mtime(entry)
            if mtime is None:  # a listing without times: ask for this one
                mtime = listed_mtime({"mtime": self.fs.modified(entry["name"])})
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
        with self._open_raw(digest) as src:
            write_verified(
                dest, file_chunks(src), digest, mismatch=lambda got, n: self._corrupt(digest)
            )
        return Path(dest)

    def verify(self, digest: str) -> bool:
        """Whether the stored bytes still match the digest (NotFoundError if absent)."""
        with self._open_raw(digest) as src:
            return bool(_copy_hashing(src, None)[0] == digest)

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
        self._hasher = hasher()
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


def file_chunks(src: BinaryIO, chunk: int | None = None) -> Iterator[bytes]:
    """The bytes of an open stream in chunks of ``chunk`` bytes (default 8 MiB)."""
    while data := src.read(chunk or _CHUNK):
        yield data


def write_verified(
    dest: str | os.PathLike[str],
    chunks: Iterable[bytes],
    digest: str,
    *,
    size: int | None = None,
    fsync: bool = False,
    tmp_prefix: str | None = None,
    mismatch: Callable[[str, int], Exception],
) -> int:
    """Write ``chunks`` to the local file ``dest`` atomically, hashing them as they are
    written (one pass), and publish it only when they hash to ``digest`` (and number ``size``
    bytes, if given); else raise ``mismatch(got_digest, got_size)``. Returns the size.

    The bytes go to a temporary file beside ``dest`` (``tmp_prefix`` + random, default
    ``.<name>.``), fsynced if ``fsync``, then renamed onto ``dest``. Whatever fails (a
    mismatch, a full disk, an interrupt), nothing is left at ``dest`` nor beside it; a full
    disk raises :class:`~luminary.errors.StorageFullError` naming the folder and free space.
    This is the one verified write: blob stores, downloads and checkouts all go through it
    (:func:`copy_verified` for a local file).
    """

    def fill(out: BinaryIO, tmp: str) -> tuple[str, int]:
        h = hasher()
        n = 0
        for chunk in chunks:
            h.update(chunk)
            out.write(chunk)
            n += len(chunk)
        return str(h.hexdigest()), n

    return _publish(dest, fill, digest, size, fsync, tmp_prefix, mismatch)


def copy_verified(
    src: BinaryIO,
    dest: str | os.PathLike[str],
    digest: str,
    *,
    size: int | None = None,
    fsync: bool = False,
    tmp_prefix: str | None = None,
    mismatch: Callable[[str, int], Exception],
) -> int:
    """:func:`write_verified` for an open file (or stream): the kernel copies a file
    (``copy_file_range``) and the copy itself is then hashed from the page cache before it is
    published, so what is published is exactly what was verified. Same atomicity and errors
    as :func:`write_verified`."""

    def fill(out: BinaryIO, tmp: str) -> tuple[str, int]:
        n = _kernel_copy(src, out)
        out.flush()
        h = hasher()
        with open(tmp, "rb") as copy:  # read, not mapped: a server's memory stays bounded
            for chunk in file_chunks(copy):
                h.update(chunk)
        return str(h.hexdigest()), n

    return _publish(dest, fill, digest, size, fsync, tmp_prefix, mismatch)


def _kernel_copy(src: BinaryIO, out: BinaryIO) -> int:
    """Copy ``src`` from its position to ``out`` in the kernel; plain reads where it cannot
    (bytes in memory, a pipe, another kind of file system, an old kernel)."""
    n = 0
    try:
        while copied := os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
            n += copied
        return n
    except io.UnsupportedOperation:  # no file behind it (bytes in memory)
        pass
    except OSError as exc:
        if n or exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    for chunk in file_chunks(src):
        out.write(chunk)
        n += len(chunk)
    return n


def _publish(
    dest: str | os.PathLike[str],
    fill: Callable[[BinaryIO, str], tuple[str, int]],
    digest: str,
    size: int | None,
    fsync: bool,
    tmp_prefix: str | None,
    mismatch: Callable[[str, int], Exception],
) -> int:
    """Fill a temporary file beside ``dest`` (``fill`` returns its digest and size), check
    them, and rename it onto ``dest``; whatever fails, the temporary file is removed."""
    target = Path(dest)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=tmp_prefix or f".{target.name}.")
    except OSError as exc:
        if (full := full_or(exc, folder)) is not exc:
            raise full from exc
        raise
    try:
        with os.fdopen(fd, "wb") as out:
            got, n = fill(out, tmp)
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        _expect(got, n, digest, size, mismatch)
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and (full := full_or(exc, folder)) is not exc:
            raise full from exc
        raise
    return n


def _expect(
    got: str, n: int, digest: str, size: int | None, mismatch: Callable[[str, int], Exception]
) -> None:
    """Raise ``mismatch(got, n)`` unless the bytes hash to ``digest`` (and number ``size``)."""
    if got != digest or (size is not None and n != size):
        raise mismatch(got, n)


def full_or(
    exc: OSError, folder: str | os.PathLike[str], what: str = "a blob or file"
) -> Exception:
    """:class:`~luminary.errors.StorageFullError` (naming ``folder`` and its free space) for a
    full disk or quota, else the error itself."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError.at(folder, what)
    return exc


def _changed_file(path: str | os.PathLike[str], digest: str) -> Callable[[str, int], Exception]:
    def mismatch(got: str, size: int) -> Exception:
        msg = (
            f"{os.fspath(path)!r} changed while it was being stored (hashed as {digest}, then "
            f"read as {size} bytes hashing to {got}); nothing was stored. Store it again once "
            "nothing writes to it"
        )
        return InvalidArgumentError(msg)

    return mismatch


def _changed_bytes(got: str, size: int) -> Exception:  # pragma: no cover - bytes are immutable
    return IntegrityError(f"bytes hashing to {got} ({size} bytes) changed while being stored")


def _copy_hashing(src: BinaryIO, out: BinaryIO | None) -> tuple[str, int]:
    """Stream ``src`` into ``out`` (if any) in chunks; the BLAKE3 and size of what was read."""
    h = hasher()
    n = 0
    for chunk in file_chunks(src):
        h.update(chunk)
        n += len(chunk)
        if out is not None:
            out.write(chunk)
    return str(h.hexdigest()), n


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


def listed_mtime(entry: dict[str, Any]) -> float | None:
    """The modification time in an fsspec listing entry, whichever name its filesystem uses."""
    for name in ("mtime", "LastModified", "last_modified", "created"):
        value = entry.get(name)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        if isinstance(value, int | float):
            return float(value)
    return None


def _protocols(fs: Any) -> set[str]:
    proto = fs.protocol
    return set(proto) if isinstance(proto, tuple | list) else {proto}
