"""Who may read a blob: someone who may read an object that names it.

A blob's bytes are served (``GET /blobs/{digest}``, ``POST /blobs/{digest}/verify``) only to
a caller with a role in a project where a run artifact, a model version, a dataset version's
manifest or schema, or a file listed in a copy-mode dataset version's manifest has that digest.
Knowing a digest is not enough: a blob that belongs only to projects the caller has no role in
answers ``404`` with the message of a blob that does not exist. Server admins read every blob.

The files of a copy-mode dataset version are named only inside its manifest (a blob itself),
so the digests of the manifests checked are kept in memory, at most :data:`MAX_DIGESTS` of them
(least recently used versions go first); manifests never change, so nothing goes stale. The
list of copy-mode versions per set of projects and each caller's positive answers are reused
for ``cache_s`` seconds, like the guard's principals, so a checkout of many files costs a few
queries, not several per file. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from luminary.auth._base import AuthStore
from luminary.auth.models import Principal
from luminary.errors import IntegrityError, NotFoundError
from luminary.store._base import Store

__all__ = ["MAX_DIGESTS", "BlobReads"]

log = logging.getLogger("luminary.server")

#: File digests of copy-mode manifests held in memory (about 100 bytes each).
MAX_DIGESTS = 2_000_000
_MAX_ALLOWED = 100_000


class BlobReads:
    """The read check for blobs of one app's store (``auth`` is that store's access part)."""

    def __init__(self, store: Store, auth: AuthStore, *, cache_s: float) -> None:
        self.store = store
        self.auth = auth
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._manifests: OrderedDict[str, frozenset[str]] = OrderedDict()  # version id ->
        self._held = 0
        self._versions: dict[frozenset[str], tuple[float, list[tuple[str, str]]]] = {}
        self._allowed: dict[tuple[str, str], float] = {}  # (user, digest) -> when

    def check(self, principal: Principal, digest: str) -> None:
        """Return when ``principal`` may read the blob ``digest``; ``NotFoundError`` when no
        object they may read names it."""
        if principal.is_admin:
            return
        now = time.monotonic()
        key = (principal.user, digest)
        seen = self._allowed.get(key)
        if seen is not None and now - seen < self.cache_s:
            return
        projects = frozenset(principal.roles)
        if self._in_manifest(projects, digest, now) or self.auth.blob_referenced(digest, projects):
            with self._lock:
                if len(self._allowed) >= _MAX_ALLOWED:
                    self._allowed.clear()
                self._allowed[key] = now
            return
        msg = (
            f"blob {digest} is not in the store, or no run, model or dataset in a project you "
            "have a role in refers to it; read blobs through the object that names them"
        )
        raise NotFoundError(msg)

    def _in_manifest(self, projects: frozenset[str], digest: str, now: float) -> bool:
        hit = self._versions.get(projects)
        if hit is None or now - hit[0] >= self.cache_s:
            hit = (now, self.auth.copy_manifests(projects))
            with self._lock:
                if len(self._versions) >= 1000:
                    self._versions.clear()
                self._versions[projects] = hit
        return any(digest in self._digests(vid, manifest) for vid, manifest in hit[1])

    def _digests(self, version_id: str, manifest: str) -> frozenset[str]:
        with self._lock:
            found = self._manifests.get(version_id)
            if found is not None:
                self._manifests.move_to_end(version_id)
                return found
        from luminary.datasets import read_manifest

        try:
            with self.store.blobs.open_verified(manifest) as stream:
                found = frozenset(e.digest for e in read_manifest(stream, name=manifest))
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
