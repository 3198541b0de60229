"""What a blob store holds that it should not: ``luminary store check`` and ``store gc``.

:func:`check` lists every file under a :class:`~luminary.storage.blobs.BlobStore` and sorts it into

- **mismatched** blobs, whose bytes no longer hash to their name (with ``verify=True``);
- **temporaries**: ``.tmp-*`` files (local) or ``tmp/*`` (``root://``) of writers that were
  killed mid-write, and ``manifest-*`` files a killed ``datasets add`` left in
  ``$LUMINARY_HOME/tmp``;
- **unreferenced** blobs: named by no artifact, model version, dataset manifest, dataset
  schema or file of a copy-mode dataset version (what a failed add leaves);
- **unknown** files, which Luminary did not write (reported, never removed).

:func:`gc` removes what is safe to remove, or with ``dry_run`` only says what it would:

- temporaries and unreferenced blobs younger than ``min_age_s`` (default one hour) are kept: a
  live writer's temporary is written to continuously, and a blob is dated when it is written
  or reused, so a blob that an add is about to reference is young;
- while a ``datasets add`` runs on a local store (:meth:`BlobStore.writing`, a locked file
  under ``.writers/`` that dies with its process), no unreferenced blob is removed at all, so
  an add that runs longer than ``min_age_s`` loses nothing;
- mismatched blobs are removed whatever their age (no reader can use them; the next add or
  log of that content writes them again, verified); each is hashed again just before;
- a reference that cannot be listed (a manifest blob that is missing or corrupt) stops gc
  before it removes any blob: it cannot know what that version needs.

Limits: stores other than a local folder have no writer leases, so there ``min_age_s`` must
exceed the longest add (the default hour, or more); uploads through a Luminary server are
written by the server, so run gc on the server's store with a ``min_age_s`` above the longest
client add.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from luminary.errors import IntegrityError, InvalidArgumentError, NotFoundError
from luminary.storage import schema as t
from luminary.storage.blobs import (
    VERIFIED_SINCE,
    WRITERS,
    BlobStore,
    check_digest,
    listed_mtime,
)
from luminary.storage.engine import read_tx
from luminary.store import Store

__all__ = ["Finding", "StoreReport", "check", "gc"]

Kind = Literal["mismatched", "temporary", "unreferenced", "unknown"]
ProgressFn = Callable[[int, int], None]
_DEFAULT_MIN_AGE_S = 3600.0


@dataclass(frozen=True)
class Finding:
    kind: Kind
    path: str
    size: int
    age_s: float
    removed: bool = False
    #: Why gc kept it (empty when removed, or when nothing was asked to be removed).
    kept_because: str = ""


@dataclass
class StoreReport:
    url: str
    blobs: int = 0
    blob_bytes: int = 0
    referenced: int = 0
    findings: list[Finding] = field(default_factory=list)

    def of(self, kind: Kind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def sound(self) -> bool:
        """Nothing left that gc would remove (what it removed is reported, but gone)."""
        return not any(f.kind != "unknown" and not f.removed for f in self.findings)

    @property
    def reclaimable_bytes(self) -> int:
        return sum(f.size for f in self.findings if f.kind != "unknown" and not f.removed)


@dataclass(frozen=True)
class _File:
    path: str
    size: int
    mtime: float
    digest: str | None  # a blob's digest, None for anything else
    temporary: bool


def check(
    store: Store,
    *,
    temp_dirs: tuple[Path, ...] = (),
    verify: bool = True,
    on_progress: ProgressFn | None = None,
) -> StoreReport:
    """Inventory the blob store (and ``temp_dirs``) against the references in the database.
    ``on_progress(done_bytes, total_bytes)`` follows the hashing."""
    engine, blobs = _parts(store)
    report, files = _inventory(blobs, temp_dirs)
    referenced = referenced_digests(engine, blobs)
    report.referenced = len(referenced)
    now = time.time()
    done = 0
    for item in files:
        age = max(0.0, now - item.mtime)
        if item.digest is None:
            kind: Kind = "temporary" if item.temporary else "unknown"
            report.findings.append(Finding(kind, item.path, item.size, age))
            continue
        if verify and not _verifies(blobs, item.digest):
            report.findings.append(Finding("mismatched", item.path, item.size, age))
        elif item.digest not in referenced:
            report.findings.append(Finding("unreferenced", item.path, item.size, age))
        done += item.size
        if on_progress is not None:
            on_progress(done, report.blob_bytes)
    return report


def gc(
    store: Store,
    *,
    temp_dirs: tuple[Path, ...] = (),
    min_age_s: float = _DEFAULT_MIN_AGE_S,
    dry_run: bool = False,
    verify: bool = True,
    on_progress: ProgressFn | None = None,
) -> StoreReport:
    """Remove mismatched blobs, and temporaries and unreferenced blobs older than
    ``min_age_s`` (see the module docstring for what is kept and why)."""
    if min_age_s < 0:
        msg = f"min_age_s={min_age_s!r} is not valid; give 0 or more seconds"
        raise InvalidArgumentError(msg)
    engine, blobs = _parts(store)
    found = check(store, temp_dirs=temp_dirs, verify=verify, on_progress=on_progress)
    writers = blobs.live_writers()
    out = []
    for item in found.findings:
        keep = _keep_because(item, min_age_s, writers)
        if keep:
            out.append(_with(item, kept_because=keep))
            continue
        if item.kind == "unreferenced" and _referenced_now(engine, blobs, item.path, min_age_s):
            out.append(_with(item, kept_because="referenced since the check began"))
            continue
        if item.kind == "mismatched" and _verifies(blobs, Path(item.path).name):
            out.append(_with(item, kept_because="rewritten whole since the check began"))
            continue
        if not dry_run:
            _remove(blobs, item.path)
        out.append(_with(item, removed=not dry_run))
    found.findings = out
    return found


def _parts(store: Store) -> tuple[sa.Engine, BlobStore]:
    from luminary.store._sql import SqlStore

    if not isinstance(store, SqlStore) or not isinstance(store.blobs, BlobStore):
        msg = (
            f"store check and gc work on a database and blob store directly, not through "
            f"{store!r}; run them on the server's machine with its LUMINARY_DB and "
            "LUMINARY_BLOBS (and without LUMINARY_URI)"
        )
        raise InvalidArgumentError(msg)
    return store.engine, store.blobs


def referenced_digests(engine: sa.Engine, blobs: BlobStore) -> set[str]:
    """Every digest the database names: artifacts, model files, dataset manifests and schemas,
    and the files of copy-mode dataset versions (read from their verified manifests)."""
    from luminary.datasets import read_manifest

    out: set[str] = set()
    with read_tx(engine) as conn:
        out.update(conn.execute(sa.select(t.artifacts.c.digest)).scalars())
        out.update(conn.execute(sa.select(t.model_versions.c.digest)).scalars())
        rows = conn.execute(
            sa.select(
                t.dataset_versions.c.id,
                t.dataset_versions.c.mode,
                t.dataset_versions.c.manifest_digest,
                t.dataset_versions.c.schema_digest,
            )
        ).all()
    for version_id, mode, manifest, schema in rows:
        out.add(manifest)
        if schema is not None:
            out.add(schema)
        if mode != "copy":
            continue
        try:
            with blobs.open_verified(manifest) as stream:
                out.update(e.digest for e in read_manifest(stream, name=f"manifest {manifest}"))
        except (NotFoundError, IntegrityError) as exc:
            msg = (
                f"dataset version {version_id} names manifest {manifest}, which cannot be read "
                f"({exc}); nothing was removed, since what that version needs is unknown. "
                "Restore the manifest blob from a copy, then run gc again"
            )
            raise IntegrityError(msg) from exc
    return out


def _inventory(blobs: BlobStore, temp_dirs: tuple[Path, ...]) -> tuple[StoreReport, list[_File]]:
    report = StoreReport(blobs.url)
    files: list[_File] = []
    blobs.fs.invalidate_cache()
    try:
        listing = blobs.fs.find(blobs.root, detail=True)
    except FileNotFoundError:
        listing = {}
    for path, info in sorted(listing.items()):
        rel = path[len(blobs.root) :].lstrip("/")
        if info.get("type") != "file" or rel == VERIFIED_SINCE or rel.startswith(f"{WRITERS}/"):
            continue
        size = int(info.get("size") or 0)
        mtime = listed_mtime(info) or 0.0
        parts = rel.split("/")
        digest = parts[-1] if _is_blob(parts) else None
        temporary = parts[-1].startswith(".tmp-") or parts[0] == "tmp"
        if digest is not None:
            report.blobs += 1
            report.blob_bytes += size
        files.append(_File(path, size, mtime, digest, temporary and digest is None))
    for folder in temp_dirs:
        for entry in sorted(folder.glob("manifest-*")):
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat()
                files.append(_File(str(entry), st.st_size, st.st_mtime, None, True))
    return report, files


def _is_blob(parts: list[str]) -> bool:
    if len(parts) != 3:
        return False
    try:
        check_digest(parts[2])
    except InvalidArgumentError:
        return False
    return parts[0] == parts[2][:2] and parts[1] == parts[2][2:4]


def _verifies(blobs: BlobStore, digest: str) -> bool:
    try:
        return blobs.verify(digest)
    except NotFoundError:
        return True  # removed meanwhile: nothing wrong is stored


def _keep_because(item: Finding, min_age_s: float, writers: int) -> str:
    if item.kind == "unknown":
        return "not written by Luminary"
    if item.kind == "mismatched":
        return ""
    if item.age_s < min_age_s:
        return f"younger than --min-age ({item.age_s:.0f} s < {min_age_s:.0f} s)"
    if item.kind == "unreferenced" and writers:
        return f"{writers} dataset add(s) running now may reference it"
    return ""


def _referenced_now(engine: sa.Engine, blobs: BlobStore, path: str, min_age_s: float) -> bool:
    """A last look just before removing: a writer started since the check, the blob was
    reused (which dates it anew), or a version committed since names it."""
    if blobs.live_writers() > 0:
        return True
    try:
        mtime = listed_mtime(blobs.fs.info(path))
    except FileNotFoundError:
        return True  # gone already: nothing to remove
    if mtime is None or time.time() - mtime < min_age_s:
        return True
    digest = Path(path).name
    with read_tx(engine) as conn:
        for column in (
            t.artifacts.c.digest,
            t.model_versions.c.digest,
            t.dataset_versions.c.manifest_digest,
            t.dataset_versions.c.schema_digest,
        ):
            if conn.execute(sa.select(sa.literal(1)).where(column == digest).limit(1)).first():
                return True
    return False


def _remove(blobs: BlobStore, path: str) -> None:
    if path.startswith(blobs.root):
        with contextlib.suppress(FileNotFoundError):
            blobs.fs.rm_file(path)
    else:
        Path(path).unlink(missing_ok=True)


def _with(item: Finding, *, removed: bool = False, kept_because: str = "") -> Finding:
    return Finding(item.kind, item.path, item.size, item.age_s, removed, kept_because)
