"""Who may read a blob, and who may name one: proof of possession.

**Reading.** A blob's bytes are served (``GET /blobs/{digest}``, ``POST /blobs/{digest}/verify``)
only to a caller with a role in a project where a run artifact, a model version, a dataset
version's manifest or schema, or a file listed in a copy-mode dataset version's manifest has
that digest. Knowing a digest is not enough: a blob that belongs only to projects the caller has
no role in answers ``404`` with the message of a blob that does not exist. Server admins read
every blob.

**Naming.** A caller *holds* a blob when they may read it as above, or when they uploaded bytes
that hash to it themselves (``PUT /blobs/{digest}`` or a completed upload session, recorded in
the database: :meth:`~luminary.auth._base.AuthStore.record_upload`). Only a blob the caller holds
may be named by what they write (a run's artifacts, a model version, a dataset version's
manifest, schema and, in copy mode, files), and ``HEAD /blobs/{digest}`` or ``POST /uploads``
tell only such a caller that a blob exists; anyone else uploads the bytes, which proves they
have them (storing is a no-op when the blob is there already). Otherwise a writer who learnt a
digest of another project could name it in their own and read it through that.

The files of a copy-mode dataset version are named only inside its manifest (a blob itself),
so the digests of the manifests checked are kept in memory, at most :data:`MAX_DIGESTS` of them
(least recently used versions go first); manifests never change, so nothing goes stale. The
list of copy-mode versions per set of projects and each caller's positive read answers are
reused for ``cache_s`` seconds by ``clock`` (monotonic seconds), like the guard's principals,
so a checkout of many files costs a few queries, not several per file. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from luminary.auth import AuthStore
from luminary.auth.models import Principal
from luminary.errors import IntegrityError, InvalidArgumentError, NotFoundError
from luminary.storage.blobs import check_digest
from luminary.store import Store

__all__ = ["MAX_DIGESTS", "BlobReads"]

log = logging.getLogger("luminary.server")

#: File digests of copy-mode manifests held in memory (about 100 bytes each).
MAX_DIGESTS = 2_000_000
_MAX_ALLOWED = 100_000


class BlobReads:
    """The read and possession checks for blobs of one app's store (``auth`` is that store's
    access part); ``clock`` times the caches."""

    def __init__(
        self,
        store: Store,
        auth: AuthStore,
        *,
        cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.auth = auth
        self.cache_s = cache_s
        self.clock = clock
        self._lock = threading.Lock()
        self._manifests: OrderedDict[str, frozenset[str]] = OrderedDict()  # version id ->
        self._held = 0
        self._versions: dict[frozenset[str], tuple[float, list[tuple[str, str]]]] = {}
        self._allowed: dict[tuple[str, str], float] = {}  # (user, digest) -> when

    # -- reading ---------------------------------------------------------------------------
    def check(self, principal: Principal, digest: str) -> None:
        """Return when ``principal`` may read the blob ``digest``; ``NotFoundError`` when no
        object they may read names it."""
        if not self.readable(principal, (digest,)):
            msg = (
                f"blob {digest} is not in the store, or no run, model or dataset in a project "
                "you have a role in refers to it; read blobs through the object that names them"
            )
            raise NotFoundError(msg)

    def readable(self, principal: Principal, digests: Collection[str]) -> set[str]:
        """Those of ``digests`` that some object ``principal`` may read names."""
        if principal.is_admin:
            return set(digests)
        now = self.clock()
        found = {d for d in digests if self._recent(principal.user, d, now)}
        rest = set(digests) - found
        if rest:
            projects = frozenset(principal.roles)
            named = self._in_manifests(projects, rest, now)
            named |= self.auth.referenced_blobs(rest - named, projects)
            with self._lock:
                if len(self._allowed) + len(named) > _MAX_ALLOWED:
                    self._allowed.clear()
                self._allowed.update(((principal.user, d), now) for d in named)
            found |= named
        return found

    def _recent(self, user: str, digest: str, now: float) -> bool:
        seen = self._allowed.get((user, digest))
        return seen is not None and now - seen < self.cache_s

    # -- naming ----------------------------------------------------------------------------
    def held(self, principal: Principal, digests: Collection[str]) -> set[str]:
        """Those of ``digests`` that ``principal`` may read, or whose bytes they uploaded."""
        found = self.readable(principal, digests)
        rest = set(digests) - found
        if rest:
            found |= self.auth.uploaded_blobs(rest, principal.user)
        return found

    def check_held(self, principal: Principal, what: str, digests: Collection[str]) -> None:
        """Raise :class:`~luminary.errors.InvalidArgumentError` unless ``principal`` holds
        every one of ``digests``, which ``what`` (``"artifact 'model.onnx'"``...) names. A
        blob that is not stored and one the caller does not hold get the same answer."""
        if principal.is_admin:
            return
        for digest in digests:
            check_digest(digest)
        missing = set(digests) - self.held(principal, digests)
        if missing:
            first = min(missing)
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            msg = (
                f"{what} names blob {first}{more}, which is not in the store or which you have "
                "neither uploaded nor can read through a run, model or dataset of a project you "
                f"have a role in; upload the file first (PUT /api/v1/blobs/{first}; "
                "log_artifact, register_model and datasets add do it)"
            )
            raise InvalidArgumentError(msg)

    def manifest_files(self, manifest: str) -> frozenset[str]:
        """The file digests listed in the manifest blob ``manifest`` (a copy-mode version's
        files); ``InvalidArgumentError`` when it is missing or not a valid manifest."""
        try:
            return self._read_manifest(manifest)
        except (NotFoundError, IntegrityError) as exc:
            msg = (
                f"a copy-mode dataset version's manifest {manifest} cannot be read ({exc}); "
                "upload a valid manifest first (datasets add does it)"
            )
            raise InvalidArgumentError(msg) from None

    # -- copy-mode manifests ---------------------------------------------------------------
    def _in_manifests(self, projects: frozenset[str], digests: set[str], now: float) -> set[str]:
        hit = self._versions.get(projects)
        if hit is None or now - hit[0] >= self.cache_s:
            hit = (now, self.auth.copy_manifests(projects))
            with self._lock:
                if len(self._versions) >= 1000:
                    self._versions.clear()
                self._versions[projects] = hit
        found: set[str] = set()
        for vid, manifest in hit[1]:
            found |= digests.intersection(self._digests(vid, manifest))
            if len(found) == len(digests):
                break
        return found

    def _digests(self, version_id: str, manifest: str) -> frozenset[str]:
        with self._lock:
            found = self._manifests.get(version_id)
            if found is not None:
                self._manifests.move_to_end(version_id)
                return found
        try:
            found = self._read_manifest(manifest)
        except (NotFoundError, IntegrityError) as exc:  # its files stay unreadable; say why
            log.warning("dataset version %s: manifest not readable: %s", version_id, exc)
            return frozenset()
        with self._lock:
            if version_id not in self._manifests:
                self._manifests[version_id] = found
                self._held += len(found)
            while self._held > MAX_DIGESTS and len(self._manifests) > 1:
                _, dropped = self._manifests.popitem(last=False)
                self._held -= len(dropped)
        return found

    def _read_manifest(self, manifest: str) -> frozenset[str]:
        from luminary.datasets import read_manifest

        with self.store.blobs.open_verified(manifest) as stream:
            return frozenset(e.digest for e in read_manifest(stream, name=manifest))
