"""The datasets SDK: ``lm.datasets.add``, ``open``, ``verify``, ``diff``, ``checkout``.

A version is a manifest of every file's relative path, size and BLAKE3 hash (a blob, streamed:
memory stays bounded for millions of files) plus the schemas of its ROOT, Parquet and HDF5
files (a second blob). In ``copy`` mode the files become blobs (stored once per content); in
``reference`` mode they stay where they are (a folder, ``s3://…``, ``root://…``) and are
verified on demand.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from luminary._actor import current_actor
from luminary.datasets._manifest import Change, FileEntry, ManifestWriter, read_manifest
from luminary.datasets.models import DatasetVersion, Mode
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.storage.blobs import BlobStore, file_chunks, full_or, write_verified

if TYPE_CHECKING:
    from luminary.store import Store

__all__ = [
    "AddStats",
    "DatasetReader",
    "add",
    "checkout",
    "diff",
    "files",
    "open",
    "schemas",
    "verify",
]

ProgressFn = Callable[[int, int], None]

DATA_SUFFIXES = {
    ".root": "ROOT",
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".h5": "HDF5",
    ".hdf5": "HDF5",
    ".hdf": "HDF5",
    ".he5": "HDF5",
}


@dataclass(frozen=True)
class AddStats:
    version: DatasetVersion
    files: int
    bytes: int
    hashed_files: int  # not found in the hash cache
    stored_blobs: int  # copied into the blob store (copy mode, new content only)
    schemas: int  # data files whose schema was read


def _store() -> Store:
    from luminary._current import get_store

    return get_store()


def _is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def add(
    name: str,
    paths: Sequence[str | os.PathLike[str]],
    *,
    mode: Mode = "copy",
    project: str | None = None,
    message: str = "",
    store_unreadable: bool = False,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
) -> AddStats:
    """Create the next version of dataset ``name`` from files and folders.

    Unchanged files cost one ``stat`` (a hash cache keyed by path, size, mtime and inode). A
    ROOT, Parquet or HDF5 file that cannot be read stops the add (naming the path and the
    reason) unless ``store_unreadable=True``, which keeps it as an opaque file. The version
    becomes visible only when everything is stored; an interrupted add leaves none.
    """
    from luminary.config import Settings
    from luminary.datasets._hashcache import HashCache
    from luminary.datasets._scan import scan

    if mode not in ("copy", "reference"):
        msg = f"mode {mode!r} is not valid; use 'copy' (store the files) or 'reference'"
        raise InvalidArgumentError(msg)
    if not paths:
        msg = "give at least one file or folder to add"
        raise InvalidArgumentError(msg)
    sources = [os.fspath(p) for p in paths]
    root = _reference_root(sources) if mode == "reference" else ", ".join(sources)
    store = _store()
    settings = Settings.from_env()
    previous = _previous_schemas(store, name)
    tmp_dir = settings.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    stats = {"hashed": 0, "stored": 0, "schemas": 0}
    schemas: dict[str, Any] = {}
    with _writing(store):  # a concurrent `luminary store gc` keeps what this add stores
        fd, manifest_tmp = tempfile.mkstemp(dir=tmp_dir, prefix="manifest-")
        try:
            with (
                HashCache(settings.home / "hashcache.db") as cache,
                os.fdopen(fd, "wb") as out,
                ManifestWriter(out) as writer,
                ThreadPoolExecutor(max_workers=max(4, workers or 4)) as pool,
            ):
                pending: collections.deque[Future[bool]] = collections.deque()
                for item in scan(sources, cache=cache, workers=workers, on_progress=on_progress):
                    writer.write(item.entry)
                    stats["hashed"] += not item.cached
                    if _looks_like_data(item.entry.path):
                        schemas[item.entry.path] = _schema_for(
                            item.entry, item.source, previous, store_unreadable
                        )
                        stats["schemas"] += 1
                    if mode == "copy":
                        pending.append(
                            pool.submit(
                                _ingest, store, item.source, item.entry, settings.fsync_blobs
                            )
                        )
                        while len(pending) > 256:  # a bounded window of copies in flight
                            stats["stored"] += pending.popleft().result()
                stats["stored"] += sum(f.result() for f in pending)
            manifest = store.blobs.put_file(manifest_tmp)
        except OSError as exc:
            if (full := full_or(exc, tmp_dir, f"the manifest of {name}")) is not exc:
                raise full from exc
            raise
        finally:
            Path(manifest_tmp).unlink(missing_ok=True)
        schema_digest = None
        if schemas:
            payload = json.dumps(schemas, sort_keys=True, separators=(",", ":")).encode()
            schema_digest = store.blobs.put_bytes(payload).digest
        version = store.create_dataset_version(
            name,
            project=project or os.environ.get("LUMINARY_PROJECT") or "default",
            mode=mode,
            root=root,
            manifest_digest=manifest.digest,
            schema_digest=schema_digest,
            file_count=writer.count,
            total_bytes=writer.total_bytes,
            message=message,
            actor=current_actor(),
        )
    return AddStats(
        version,
        writer.count,
        writer.total_bytes,
        stats["hashed"],
        stats["stored"],
        stats["schemas"],
    )


def _writing(store: Store) -> AbstractContextManager[None]:
    blobs = store.blobs
    return blobs.writing() if isinstance(blobs, BlobStore) else contextlib.nullcontext()


def _reference_root(sources: list[str]) -> str:
    """Where referenced files live: the folder added, or the common parent of the sources."""
    if len(sources) == 1:
        src = sources[0]
        if _is_url(src):
            return src.rstrip("/")
        path = Path(src).resolve()
        return str(path if path.is_dir() else path.parent)
    parents = {
        str(Path(s).resolve().parent) if not _is_url(s) else s.rsplit("/", 1)[0] for s in sources
    }
    if len(parents) != 1:
        msg = (
            "in reference mode several sources must sit in one folder (their names become "
            f"the top-level paths); got {sources}. Add one folder instead"
        )
        raise InvalidArgumentError(msg)
    return parents.pop()


def _looks_like_data(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in DATA_SUFFIXES


def _schema_for(
    entry: FileEntry, source: str, previous: dict[str, Any], store_unreadable: bool
) -> dict[str, Any]:
    old = previous.get(entry.path)
    if old is not None and old.get("digest") == entry.digest:
        return dict(old)
    try:
        schema = _inspect_data_file(entry.path, source)
    except InvalidArgumentError as exc:
        if not store_unreadable:
            msg = (
                f"{entry.path}: {exc}. No version was created; fix or remove the file, or "
                "pass --store-unreadable (store_unreadable=True) to keep it as an opaque file"
            )
            raise InvalidArgumentError(msg) from exc
        return {"digest": entry.digest, "error": str(exc)}
    return {"digest": entry.digest, **schema.to_dict()}


def _inspect_data_file(path: str, source: str) -> Any:
    """The schema of a file whose name says ROOT, Parquet or HDF5; an error if it is not one."""
    from luminary.datasets._formats import inspect_file

    schema = inspect_file(source)
    if schema is None:
        kind = DATA_SUFFIXES[os.path.splitext(path)[1].lower()]
        msg = f"not a readable {kind} file (it does not start with the {kind} signature)"
        raise InvalidArgumentError(msg)
    return schema


def _previous_schemas(store: Store, name: str) -> dict[str, Any]:
    try:
        latest = store.get_dataset_version(name)
    except NotFoundError:
        return {}
    if latest.schema_digest is None:
        return {}
    return dict(json.loads(store.blobs.read_bytes(latest.schema_digest)))


def _ingest(store: Store, source: str, entry: FileEntry, fsync: bool) -> bool:
    """Put one scanned file into the blob store, hashed as it is copied; False when a sound
    blob with its content was already there."""
    if _is_url(source):
        import fsspec

        if store.blobs.exists(entry.digest) and store.blobs.size(entry.digest) == entry.size:
            return False
        with tempfile.TemporaryDirectory() as tmp, fsspec.open(source, "rb") as src:
            local = Path(tmp) / "blob"
            write_verified(local, file_chunks(src), entry.digest, mismatch=_changed(source))
            return store.blobs.put_file_as(local, entry.digest, entry.size).written
    return store.blobs.put_file_as(source, entry.digest, entry.size, fsync=fsync).written


def _changed(source: str) -> Callable[[str, int], Exception]:
    def mismatch(got: str, size: int) -> Exception:
        msg = (
            f"{source} changed since it was hashed (it now reads as {size} bytes hashing to "
            f"{got}); no version was created. Add it again once nothing writes to it"
        )
        return InvalidArgumentError(msg)

    return mismatch


# -- reading a version ---------------------------------------------------------------------
def files(ref: str | DatasetVersion) -> Iterator[FileEntry]:
    """The manifest of a version, streamed in path order."""
    store = _store()
    version = ref if isinstance(ref, DatasetVersion) else store.get_dataset_version(ref)
    with store.blobs.open_verified(version.manifest_digest) as stream:
        yield from read_manifest(stream, name=f"manifest of {version.ref}")


def schemas(ref: str | DatasetVersion) -> dict[str, Any]:
    """``{path: schema}`` of the version's ROOT, Parquet and HDF5 files."""
    store = _store()
    version = ref if isinstance(ref, DatasetVersion) else store.get_dataset_version(ref)
    if version.schema_digest is None:
        return {}
    return dict(json.loads(store.blobs.read_bytes(version.schema_digest)))


def location(version: DatasetVersion, entry: FileEntry, store: Store | None = None) -> str:
    """Where a file's bytes are: its blob (copy mode) or its place under the root."""
    if version.mode == "reference":
        return f"{version.root.rstrip('/')}/{entry.path}"
    return (store or _store()).blobs.location(entry.digest)


def verify(
    ref: str, *, workers: int | None = None, on_progress: ProgressFn | None = None
) -> Iterator[Any]:
    """Re-hash every file of a version and yield the problems (missing, size, hash) by path."""
    from luminary.datasets._scan import Problem
    from luminary.datasets._scan import verify as verify_files

    store = _store()
    version = store.get_dataset_version(ref)
    if version.mode == "reference":
        yield from verify_files(
            files(version), version.root, workers=workers, on_progress=on_progress
        )
        return
    done_bytes = 0
    for done_files, entry in enumerate(files(version), start=1):
        problem: Problem | None = None
        try:
            size = store.blobs.size(entry.digest)
        except NotFoundError:
            problem = Problem("missing", entry.path, entry, None)
        else:
            if size != entry.size:
                problem = Problem("size", entry.path, entry, size)
            elif not store.blobs.verify(entry.digest):
                problem = Problem("hash", entry.path, entry, size)
        done_bytes += entry.size
        if on_progress is not None:
            on_progress(done_bytes, done_files)
        if problem is not None:
            yield problem


def diff(a: str, b: str) -> Iterator[Change]:
    """What changed from version ``a`` to version ``b``, streamed in path order (memory stays
    bounded whatever the number of files; both manifests are verified as they are read)."""
    from luminary.datasets._manifest import diff_manifests

    store = _store()
    old, new = store.get_dataset_version(a), store.get_dataset_version(b)
    with (
        store.blobs.open_verified(old.manifest_digest) as fa,
        store.blobs.open_verified(new.manifest_digest) as fb,
    ):
        yield from diff_manifests(
            fa, fb, names=(f"manifest of {old.ref}", f"manifest of {new.ref}")
        )


def checkout(
    ref: str, dest: str | os.PathLike[str], *, on_progress: ProgressFn | None = None
) -> Path:
    """Materialise a version's files under ``dest``, verified; files already there with the
    right content are kept."""
    from luminary.storage.blobs import hash_file

    store = _store()
    version = store.get_dataset_version(ref)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    done_bytes = 0
    for done_files, entry in enumerate(files(version), start=1):
        target = root / entry.path
        if not target.resolve().is_relative_to(root.resolve()):
            msg = f"manifest path {entry.path!r} escapes {root}"
            raise InvalidArgumentError(msg)
        fresh = target.is_file() and target.stat().st_size == entry.size
        if not (fresh and hash_file(target).digest == entry.digest):
            if version.mode == "copy":
                store.blobs.get_file(entry.digest, target)
            else:
                _fetch_verified(location(version, entry), entry, target)
        done_bytes += entry.size
        if on_progress is not None:
            on_progress(done_bytes, done_files)
    return root


def _fetch_verified(source: str, entry: FileEntry, target: Path) -> None:
    import fsspec

    from luminary.errors import IntegrityError

    def mismatch(got: str, size: int) -> Exception:
        msg = f"{source} no longer matches the manifest of {entry.path}; it was not written"
        return IntegrityError(msg)

    with fsspec.open(source, "rb") as src:
        write_verified(target, file_chunks(src), entry.digest, mismatch=mismatch)


@dataclass
class DatasetReader:
    """Iterate a dataset version's data files in chunked batches (see :func:`open`)."""

    version: DatasetVersion
    paths: list[str]
    sources: list[str]
    table: str | None
    num_entries: int | None
    options: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:
        from luminary.datasets._reader import iterate

        return iterate(self.sources, table=self.table, **self.options)

    def shard(self, rank: int, world_size: int) -> DatasetReader:
        """The contiguous entry range of worker ``rank`` out of ``world_size``."""
        from luminary.datasets._reader import shard_range

        if self.num_entries is None:
            msg = "the entry count is unknown for this table; pass entry ranges yourself"
            raise InvalidArgumentError(msg)
        start, stop = shard_range(self.num_entries, rank, world_size)
        options = dict(self.options, entry_start=start, entry_stop=stop)
        return DatasetReader(
            self.version, self.paths, self.sources, self.table, self.num_entries, options
        )


def open(
    ref: str,
    *,
    table: str | None = None,
    columns: Sequence[str] | None = None,
    step_size: int = 100_000,
    entry_start: int = 0,
    entry_stop: int | None = None,
    pad_to: int | dict[str, int] | None = None,
    pad_value: float = 0.0,
    library: Literal["np", "ak"] = "ak",
    pattern: str | None = None,
    record: bool = True,
) -> DatasetReader:
    """Chunked batches over the ROOT, Parquet or HDF5 files of ``ref`` (``name@version``).

    Flat columns come as NumPy arrays, jagged ones as awkward arrays (``library="np"``: NumPy
    object arrays). ``columns`` selects branches/columns; ``entry_start``/``entry_stop``
    select a global entry range (or use :meth:`DatasetReader.shard`); ``pad_to`` pads jagged
    columns to a fixed length with a mask and counts what was clipped; ``pattern`` (fnmatch)
    selects files. With an active run, the version is recorded as the run's input
    (``record=False`` to skip).
    """
    import fnmatch

    store = _store()
    version = store.get_dataset_version(ref)
    known = schemas(version)
    entries = [e for e in files(version) if e.path in known and "error" not in known[e.path]]
    if pattern is not None:
        entries = [e for e in entries if fnmatch.fnmatch(e.path, pattern)]
    if not entries:
        msg = f"{version.ref} has no readable ROOT, Parquet or HDF5 files" + (
            f" matching {pattern!r}" if pattern else ""
        )
        raise NotFoundError(msg)
    num_entries = _count_entries([known[e.path] for e in entries], table)
    if record:
        from luminary.tracking import active_run

        run = active_run()
        if run is not None:
            store.add_run_inputs(run.id, [version.id])
    options = {
        "columns": columns,
        "step_size": step_size,
        "entry_start": entry_start,
        "entry_stop": entry_stop,
        "pad_to": pad_to,
        "pad_value": pad_value,
        "library": library,
    }
    return DatasetReader(
        version,
        [e.path for e in entries],
        [location(version, e, store) for e in entries],
        table,
        num_entries,
        options,
    )


def _count_entries(file_schemas: list[dict[str, Any]], table: str | None) -> int | None:
    total = 0
    for schema in file_schemas:
        tables = [t for t in schema.get("tables", []) if t.get("kind") != "hdf5-group"]
        chosen = [t for t in tables if table is None or t.get("name") == table]
        if len(chosen) != 1:
            return None
        total += int(chosen[0].get("entries", 0))
    return total
