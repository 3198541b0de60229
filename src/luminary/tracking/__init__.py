"""Run tracking: ``start_run`` and the :class:`ActiveRun` that buffers metrics, plus search."""

from __future__ import annotations

from luminary.tracking._api import (
    active_run,
    create_project,
    download_artifacts,
    get_metric_history,
    get_run,
    get_store,
    list_artifacts,
    list_projects,
    log,
    log_artifact,
    log_params,
    search_runs,
    set_store,
    set_tags,
    start_run,
)
from luminary.tracking._run import ActiveRun

__all__ = [
    "ActiveRun",
    "active_run",
    "create_project",
    "download_artifacts",
    "get_metric_history",
    "get_run",
    "get_store",
    "list_artifacts",
    "list_projects",
    "log",
    "log_artifact",
    "log_params",
    "search_runs",
    "set_store",
    "set_tags",
    "start_run",
]
