"""Versioned datasets: manifests of content hashes, readers for ROOT, Parquet and HDF5.

``lm.datasets.add("jets", ["/data/jets/"])`` creates a version; ``lm.datasets.open("jets@2")``
iterates its data in chunked batches; ``verify``, ``diff`` and ``checkout`` work on versions.

- SDK: ``_api.py``. Manifests (sorted, hashed file lists) and their diff: ``_manifest.py``.
- Hashing a source: the walker (``_walk.py``) lists files, the hash cache (``_hashcache.py``)
  keeps digests by path, size, mtime and inode, the scanner (``_scan.py``) hashes the rest.
- Reading data: ``_formats.py`` (ROOT, Parquet, HDF5 schemas) and ``_reader.py`` (batches).
- Storage: :class:`DatasetStore`, the datasets' part of the Store interface (``_base.py``),
  and :class:`SqlDatasets`, its SQL (``_sql.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr

if TYPE_CHECKING:
    from luminary.datasets._api import (
        AddStats,
        DatasetReader,
        add,
        checkout,
        diff,
        files,
        open,
        schemas,
        verify,
    )
    from luminary.datasets._base import DatasetStore
    from luminary.datasets._formats import require_format
    from luminary.datasets._manifest import Change, DiffTally, diff_manifests, read_manifest
    from luminary.datasets._reader import iterate
    from luminary.datasets._sql import SqlDatasets
    from luminary.datasets.models import Dataset, DatasetVersion, Mode

_LAZY = {
    "AddStats": "luminary.datasets._api",
    "DatasetReader": "luminary.datasets._api",
    "add": "luminary.datasets._api",
    "checkout": "luminary.datasets._api",
    "diff": "luminary.datasets._api",
    "files": "luminary.datasets._api",
    "open": "luminary.datasets._api",
    "schemas": "luminary.datasets._api",
    "verify": "luminary.datasets._api",
    "DatasetStore": "luminary.datasets._base",
    "require_format": "luminary.datasets._formats",
    "Change": "luminary.datasets._manifest",
    "DiffTally": "luminary.datasets._manifest",
    "diff_manifests": "luminary.datasets._manifest",
    "read_manifest": "luminary.datasets._manifest",
    "iterate": "luminary.datasets._reader",
    "SqlDatasets": "luminary.datasets._sql",
    "Dataset": "luminary.datasets.models",
    "DatasetVersion": "luminary.datasets.models",
    "Mode": "luminary.datasets.models",
}

__all__ = [
    "AddStats",
    "Change",
    "Dataset",
    "DatasetReader",
    "DatasetStore",
    "DatasetVersion",
    "DiffTally",
    "Mode",
    "SqlDatasets",
    "add",
    "checkout",
    "diff",
    "diff_manifests",
    "files",
    "iterate",
    "open",
    "read_manifest",
    "require_format",
    "schemas",
    "verify",
]

__getattr__ = lazy_getattr(_LAZY)
