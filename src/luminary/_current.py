"""The current store: the one the SDK's module-level functions use (``lm.start_run``,
``lm.register_model``, ``lm.datasets.add`` …), opened from the environment on first use.

The slot sits below every domain so that each domain's SDK reaches it without importing another
domain, and without importing the composition above them. The composition supplies the opener:
``luminary/__init__`` installs one that calls :func:`luminary.store.open_store` (``LUMINARY_URI``
→ a server, else the SQL database and blob store). :mod:`luminary.store` re-exports
:func:`get_store` and :func:`set_store`.
"""

from __future__ import annotations

import _thread  # threading's own lock, without importing threading: `import luminary` stays cheap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from luminary.store import Store

__all__ = ["get_store", "install_opener", "set_store"]

_lock = _thread.allocate_lock()
_store: Store | None = None
_opener: Callable[[], Store] | None = None


def install_opener(opener: Callable[[], Store]) -> None:
    """How :func:`get_store` opens the environment's store when none is set."""
    global _opener
    with _lock:
        _opener = opener


def get_store() -> Store:
    """The store configured by the environment (``LUMINARY_HOME``, ``LUMINARY_DB``, …)."""
    global _store
    with _lock:
        if _store is None:
            if _opener is None:  # pragma: no cover - luminary/__init__ installs it on import
                msg = "no store opener is installed; import luminary first"
                raise RuntimeError(msg)
            _store = _opener()
        return _store


def set_store(store: Store | None) -> None:
    """Use ``store`` for the SDK's module-level functions (None: back to the environment's)."""
    global _store
    with _lock:
        _store = store
