"""Run tracking: projects, runs, params, metrics, tags, artifacts and environments.

- SDK: ``start_run`` and the :class:`ActiveRun` that buffers metrics (``_run.py``), search and
  the module-level helpers (``_api.py``), environment capture (``_env.py``).
- Values: :mod:`luminary.tracking.models` (``Project``, ``Run``, ``MetricHistory`` …).
- Storage: :class:`TrackingStore`, tracking's part of the Store interface (``_base.py``), its
  checks (``_validate.py``) and :class:`SqlTracking`, its SQL (``_sql.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from luminary.tracking._api import (
    active_run,
    create_project,
    download_artifacts,
    get_metric_history,
    get_run,
    list_artifacts,
    list_projects,
    log,
    log_artifact,
    log_params,
    search_runs,
    set_tags,
    start_run,
    write_metrics,
)
from luminary.tracking._base import MetricPoint, TrackingStore
from luminary.tracking._run import ActiveRun
from luminary.tracking._validate import decode_param, encode_param
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
)

if TYPE_CHECKING:
    from luminary.tracking._rows import RunRows
    from luminary.tracking._sql import SqlTracking

__all__ = [
    "ArtifactEntry",
    "RunRows",
    "MetricHistory",
    "MetricPoint",
    "ParamValue",
    "Project",
    "Run",
    "RunStatus",
    "SqlTracking",
    "TrackingStore",
    "decode_param",
    "encode_param",
    "ActiveRun",
    "active_run",
    "create_project",
    "download_artifacts",
    "get_metric_history",
    "get_run",
    "list_artifacts",
    "list_projects",
    "log",
    "log_artifact",
    "log_params",
    "search_runs",
    "set_tags",
    "start_run",
    "write_metrics",
]


def __getattr__(name: str) -> Any:
    if name == "SqlTracking":  # SQLAlchemy loads on first use
        from luminary.tracking._sql import SqlTracking

        return SqlTracking
    if name == "RunRows":
        from luminary.tracking._rows import RunRows

        return RunRows
    raise AttributeError(name)
