"""The Store: the domains composed behind one interface, and how the SDK finds the current one.

- :class:`Store` — the facade's interface: tracking's, the registry's and the datasets'
  interfaces side by side (``_base.py``).
- :class:`SqlStore` — SQLite (embedded default) and PostgreSQL: one part per domain
  (``tracking``, ``registry``, ``datasets``, ``auth``) over one engine and blob store
  (``_sql.py``).
- ``RestStore`` — the same interface through ``luminary server`` (``_rest.py``; blobs in
  ``_remote_blobs.py``; JSON shapes in ``wire.py``, declared once per value), chosen by
  ``LUMINARY_URI``.
- :func:`open_store` — the store the environment names; :func:`get_store` / :func:`set_store`
  — the current one, which the SDK's module-level functions use.
- :func:`check` and :func:`gc` — what a blob store holds that no run, version or dataset needs,
  and its removal (``_gc.py``, ``luminary store check|gc``).

The infrastructure under it (engine, schema, migrations, blobs, filter) is :mod:`luminary.storage`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luminary._current import get_store, set_store
from luminary.storage.blobs import Blob, Blobs, BlobStore
from luminary.store._base import Store
from luminary.tracking import (
    ArtifactEntry,
    MetricHistory,
    MetricPoint,
    ParamValue,
    Project,
    Run,
    RunStatus,
)

if TYPE_CHECKING:
    from luminary.config import Settings
    from luminary.store._gc import Finding, StoreReport, check, gc
    from luminary.store._rest import RestStore
    from luminary.store._sql import SqlStore

__all__ = [
    "ArtifactEntry",
    "Blob",
    "BlobStore",
    "Blobs",
    "Finding",
    "MetricHistory",
    "MetricPoint",
    "ParamValue",
    "Project",
    "RestStore",
    "Run",
    "RunStatus",
    "SqlStore",
    "Store",
    "StoreReport",
    "check",
    "gc",
    "get_store",
    "open_store",
    "set_store",
]


def open_store(settings: Settings | None = None) -> Store:
    """The store that ``settings`` (default: the environment) names: a Luminary server when
    ``LUMINARY_URI`` is set, else the SQL database and blob store."""
    from luminary.config import Settings

    s = settings or Settings.from_env()
    if s.uri:
        from luminary.store._rest import RestStore  # httpx is a core dependency

        return RestStore(s.uri, token=s.token, cache_dir=str(s.home / "cache" / "blobs"))
    from luminary.store._sql import SqlStore

    return SqlStore(s.db_url, s.blobs_url, stale_after_s=s.stale_after_s, sqlite_sync=s.sqlite_sync)


def __getattr__(name: str) -> Any:
    if name in ("Finding", "StoreReport", "check", "gc"):
        from luminary.store import _gc

        return getattr(_gc, name)
    if name == "SqlStore":
        from luminary.store._sql import SqlStore

        return SqlStore
    if name == "RestStore":
        from luminary.store._rest import RestStore

        return RestStore
    raise AttributeError(name)
