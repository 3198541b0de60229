"""Luminary: machine-learning infrastructure for particle physics.

Packages, in layers (an import only points down; ``make test`` checks it with import-linter):

- front ends: :mod:`luminary.cli` (``luminary <noun> <verb>``), :mod:`luminary.server` (REST
  API and web UI), :mod:`luminary.demo`, :mod:`luminary.bench` (load generators),
  :mod:`luminary.testing` (the Store contract suite);
- composition: :mod:`luminary.store` — the ``Store`` facade over the domains' parts (SQL and
  REST), ``open_store``, ``get_store``/``set_store``;
- domains: :mod:`luminary.costs`, :mod:`luminary.lineage`, :mod:`luminary.serving`,
  :mod:`luminary.registry`, :mod:`luminary.datasets`, :mod:`luminary.auth`,
  :mod:`luminary.tracking`, :mod:`luminary.compute`;
- :mod:`luminary.energy` — meters and the sampler, a leaf;
- :mod:`luminary.storage` — database engine, schema, migrations, blobs, filter language.

``import luminary`` is cheap: everything below loads on first use.

    import luminary as lm
    with lm.start_run(project="cms-btag", params={"lr": 1e-3}) as run:
        run.log({"loss": 0.3}, step=0)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from luminary import _current
from luminary.errors import (
    AlreadyExistsError,
    BackendUnavailableError,
    FilterSyntaxError,
    IntegrityError,
    InvalidArgumentError,
    InvalidStateError,
    LuminaryError,
    MissingDependencyError,
    NotFoundError,
    OverloadedError,
    QuotaExceededError,
)

__version__ = "0.1.0"

_LAZY = {
    "ActiveRun": "luminary.tracking",
    "active_run": "luminary.tracking",
    "create_project": "luminary.tracking",
    "download_artifacts": "luminary.tracking",
    "get_metric_history": "luminary.tracking",
    "get_run": "luminary.tracking",
    "get_store": "luminary.store",
    "list_artifacts": "luminary.tracking",
    "list_projects": "luminary.tracking",
    "log": "luminary.tracking",
    "log_artifact": "luminary.tracking",
    "log_params": "luminary.tracking",
    "search_runs": "luminary.tracking",
    "set_store": "luminary.store",
    "set_tags": "luminary.tracking",
    "start_run": "luminary.tracking",
    "Run": "luminary.store",
    "RunStatus": "luminary.store",
    "Project": "luminary.store",
    "MetricHistory": "luminary.store",
    "ArtifactEntry": "luminary.store",
    "Store": "luminary.store",
    "open_store": "luminary.store",
    "Settings": "luminary.config",
    "register_model": "luminary.registry",
    "get_model": "luminary.registry",
    "LocalModel": "luminary.registry",
    "lineage": "luminary.lineage",
}

__all__ = [
    "AlreadyExistsError",
    "BackendUnavailableError",
    "FilterSyntaxError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidStateError",
    "LuminaryError",
    "MissingDependencyError",
    "NotFoundError",
    "OverloadedError",
    "QuotaExceededError",
    "__version__",
    "datasets",
    "energy",
    "jobs",
    "tune",
    *sorted(_LAZY),
]

if TYPE_CHECKING:
    from luminary import datasets as datasets
    from luminary import energy as energy
    from luminary import tune as tune
    from luminary.compute import jobs as jobs
    from luminary.config import Settings as Settings
    from luminary.lineage import lineage as lineage
    from luminary.registry import LocalModel as LocalModel
    from luminary.registry import get_model as get_model
    from luminary.registry import register_model as register_model
    from luminary.store import (
        ArtifactEntry as ArtifactEntry,
    )
    from luminary.store import (
        MetricHistory as MetricHistory,
    )
    from luminary.store import (
        Project as Project,
    )
    from luminary.store import (
        Run as Run,
    )
    from luminary.store import (
        RunStatus as RunStatus,
    )
    from luminary.store import (
        Store as Store,
    )
    from luminary.store import (
        get_store as get_store,
    )
    from luminary.store import (
        open_store as open_store,
    )
    from luminary.store import (
        set_store as set_store,
    )
    from luminary.tracking import (
        ActiveRun as ActiveRun,
    )
    from luminary.tracking import (
        active_run as active_run,
    )
    from luminary.tracking import (
        create_project as create_project,
    )
    from luminary.tracking import (
        download_artifacts as download_artifacts,
    )
    from luminary.tracking import (
        get_metric_history as get_metric_history,
    )
    from luminary.tracking import (
        get_run as get_run,
    )
    from luminary.tracking import (
        list_artifacts as list_artifacts,
    )
    from luminary.tracking import (
        list_projects as list_projects,
    )
    from luminary.tracking import (
        log as log,
    )
    from luminary.tracking import (
        log_artifact as log_artifact,
    )
    from luminary.tracking import (
        log_params as log_params,
    )
    from luminary.tracking import (
        search_runs as search_runs,
    )
    from luminary.tracking import (
        set_tags as set_tags,
    )
    from luminary.tracking import (
        start_run as start_run,
    )


def _open_store() -> Store:
    from luminary.store import open_store

    return open_store()


_current.install_opener(_open_store)


def __getattr__(name: str) -> Any:
    if name in ("datasets", "energy", "tune"):
        value = importlib.import_module(f"luminary.{name}")
        globals()[name] = value
        return value
    if name == "jobs":  # lm.jobs.submit(…): compute's SDK
        value = importlib.import_module("luminary.compute.jobs")
        globals()[name] = value
        return value
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'luminary' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"jobs", "tune"})
