"""The tracking SDK's module-level functions: ``lm.start_run``, ``lm.search_runs``, …"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from luminary._current import get_store
from luminary.errors import InvalidArgumentError, InvalidStateError
from luminary.names import check_relative_path
from luminary.tracking._base import TrackingStore
from luminary.tracking._run import ActiveRun
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
)

__all__ = [
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
]

DEFAULT_PROJECT = "default"

_lock = threading.Lock()
_active: list[ActiveRun] = []


def start_run(
    project: str | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, ParamValue] | None = None,
    tags: Mapping[str, Any] | None = None,
    parent: str | Run | ActiveRun | None = None,
    nested: bool = False,
    resume: str | None = None,
    capture_env: bool = True,
    energy: bool = True,
) -> ActiveRun:
    """Start (or ``resume``) a run in ``project`` (created if missing; default from
    ``LUMINARY_PROJECT`` or ``"default"``). ``nested=True`` makes the active run its parent.

    ``energy`` (default on; ``LUMINARY_ENERGY=0`` turns it off everywhere) measures what this
    process and its children use while the run is open, and records it when the run ends:
    metrics ``energy/<device>_joules``, ``power/…``, ``resources/…`` and tags
    ``energy.<device>.source`` saying whether each figure was measured or estimated."""
    store = get_store()
    from luminary.tracking._settings import heartbeat_s

    if resume is None and parent is None and not nested and not _active:
        # inside a Luminary job: its first run is the job's own (as MLFLOW_RUN_ID does)
        resume = os.environ.get("LUMINARY_RUN_ID") or None
    if resume is not None:
        run = store.get_run(resume)
        if run.status is not RunStatus.RUNNING:
            store.set_run_status(run.id, RunStatus.RUNNING)
        if params:
            store.log_params(run.id, params)
        if tags:
            store.set_tags(run.id, tags)
        run = store.get_run(run.id)
    else:
        parent_id: str | None
        if parent is not None:
            parent_id = parent if isinstance(parent, str) else parent.id
        elif nested:
            current = active_run()
            if current is None:
                msg = "nested=True needs an active run to be the parent"
                raise InvalidStateError(msg)
            parent_id = current.id
        else:
            parent_id = None
        run = store.create_run(
            project or os.environ.get("LUMINARY_PROJECT") or DEFAULT_PROJECT,
            name=name,
            parent_id=parent_id,
            params=params,
            tags={k: str(v) for k, v in (tags or {}).items()},
        )
    active = ActiveRun(
        store, run, heartbeat_s=heartbeat_s(), capture_env=capture_env, energy=energy
    )
    with _lock:
        _active.append(active)
    return active


def write_metrics(
    store: TrackingStore, run_id: str, metrics: Mapping[str, float], step: int = 0
) -> None:
    """Append ``metrics`` to a run that no :class:`ActiveRun` of this process holds (a job's
    run, written by its supervisor), at ``step``, in one transaction."""
    import secrets

    from luminary._clock import now_ms
    from luminary.tracking._validate import check_key, metric_value

    now = now_ms()
    series, points = [], []
    for key, value in metrics.items():
        check_key("metric", key)
        sid = secrets.randbits(62)
        series.append((sid, key))
        points.append((sid, step, now, metric_value(key, value)))
    if points:
        store.write_metrics(run_id, series, points, batch_id=secrets.token_hex(16))


def active_run() -> ActiveRun | None:
    """The most recently started run of this process that has not ended."""
    with _lock:
        return _active[-1] if _active else None


def _forget(run: ActiveRun) -> None:
    with _lock:
        if run in _active:
            _active.remove(run)


def _require_active() -> ActiveRun:
    run = active_run()
    if run is None:
        msg = "no active run; start one with luminary.start_run(...)"
        raise InvalidStateError(msg)
    return run


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log metrics to the active run."""
    _require_active().log(metrics, step)


def log_params(params: Mapping[str, ParamValue]) -> None:
    _require_active().log_params(params)


def set_tags(tags: Mapping[str, Any]) -> None:
    _require_active().set_tags(tags)


def log_artifact(path: str | os.PathLike[str], name: str | None = None) -> list[ArtifactEntry]:
    return _require_active().log_artifact(path, name)


def search_runs(
    project: str | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    limit: int | None = 1000,
    offset: int = 0,
) -> list[Run]:
    """Runs of ``project`` (all projects if None) matching ``filter``, e.g.
    ``"params.lr < 0.01 and metrics.val_auc > 0.9"``, ordered by ``order_by``, e.g.
    ``"metrics.val_auc desc"``."""
    return get_store().search_runs(project, filter, order_by, limit, offset)


def get_run(run_id: str) -> Run:
    return get_store().get_run(run_id)


def get_metric_history(run_id: str, key: str) -> MetricHistory:
    return get_store().get_metric_history(run_id, key)


def list_projects() -> list[Project]:
    return get_store().list_projects()


def create_project(name: str, description: str = "") -> Project:
    return get_store().create_project(name, description)


def list_artifacts(run_id: str, prefix: str = "") -> list[ArtifactEntry]:
    return get_store().list_artifacts(run_id, prefix)


def download_artifacts(
    run_id: str, path: str = "", dest: str | os.PathLike[str] = "."
) -> list[Path]:
    """Copy the artifact ``path`` (a file, or a folder prefix; "" for all) of a run under
    ``dest``, verifying every byte against its hash."""
    store = get_store()
    if path:
        check_relative_path(path.rstrip("/"))
    entries = store.list_artifacts(run_id, path.rstrip("/"))
    if not entries:
        have = [e.path for e in store.list_artifacts(run_id)]
        from luminary.errors import NotFoundError, nearest

        msg = f"run {run_id} has no artifact {path!r}; {nearest(path, have, 'artifact')}"
        raise NotFoundError(msg)
    root = Path(dest)
    out = []
    for entry in entries:
        target = (root / entry.path).resolve()
        if not target.is_relative_to(root.resolve()):
            msg = f"artifact path {entry.path!r} escapes {root}"
            raise InvalidArgumentError(msg)
        out.append(store.blobs.get_file(entry.digest, target))
    return out


@atexit.register
def _end_open_runs() -> None:
    while True:
        run = active_run()
        if run is None:
            return
        run._end_at_exit()
