"""Versioned datasets: manifests of content hashes, readers for ROOT, Parquet and HDF5.

``lm.datasets.add("jets", ["/data/jets/"])`` creates a version; ``lm.datasets.open("jets@2")``
iterates its data in chunked batches; ``verify``, ``diff`` and ``checkout`` work on versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["add", "checkout", "diff", "files", "open", "read_manifest", "schemas", "verify"]

if TYPE_CHECKING:
    from luminary.datasets._api import add, checkout, diff, files, open, schemas, verify
    from luminary.datasets._manifest import read_manifest


def __getattr__(name: str) -> Any:
    if name == "read_manifest":
        from luminary.datasets import _manifest

        return _manifest.read_manifest
    if name in __all__:
        from luminary.datasets import _api

        return getattr(_api, name)
    raise AttributeError(name)
