"""Storage: the Store interface, its SQL implementation, the blob store and the domain values.

- :mod:`luminary.store.models` — frozen values (Project, Run, MetricHistory, ArtifactEntry).
- :class:`Store` — the interface every backend implements (``_base.py``).
- ``RestStore`` — the same interface through ``luminary server`` (``_rest.py``, blobs in
  ``_remote_blobs.py``, JSON shapes in ``_wire.py``), chosen by ``LUMINARY_URI``.
- :class:`SqlStore` — SQLite (embedded default) and PostgreSQL (``_sql.py``), schema in
  ``_schema.py``, Alembic migrations in ``migrations/`` applied on first use (``_engine.py``).
- :class:`BlobStore` — content-addressed (BLAKE3) blobs over fsspec (``blobs.py``).
- :func:`check` and :func:`gc` — what a blob store holds that no version needs, and its
  removal (``_gc.py``, ``luminary store check|gc``).
- ``_filter.py`` — the search filter language, compiled to SQL for both databases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luminary.store._base import MetricPoint, Store
from luminary.store.blobs import Blob, BlobStore
from luminary.store.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
)

if TYPE_CHECKING:
    from luminary.config import Settings
    from luminary.store._gc import Finding, StoreReport, check, gc
    from luminary.store._sql import SqlStore

__all__ = [
    "ArtifactEntry",
    "Blob",
    "BlobStore",
    "Finding",
    "MetricHistory",
    "MetricPoint",
    "ParamValue",
    "Project",
    "Run",
    "RunStatus",
    "SqlStore",
    "Store",
    "StoreReport",
    "check",
    "gc",
    "open_store",
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
    raise AttributeError(name)
