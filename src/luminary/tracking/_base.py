"""Tracking's part of the Store interface: projects, runs, params, tags, metrics, artifacts and
environments. Every backend (embedded SQLite, PostgreSQL, REST) implements these primitives;
the contract suite in :mod:`luminary.testing` checks each one the same way.

Thread safety: implementations are safe to share between threads. Values returned are frozen
dataclasses. Errors: :class:`~luminary.errors.NotFoundError` for unknown names (with the nearest
ones), :class:`~luminary.errors.InvalidArgumentError` for bad input,
:class:`~luminary.errors.AlreadyExistsError` for taken names,
:class:`~luminary.errors.BackendUnavailableError` when the database does not answer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from luminary.errors import AlreadyExistsError
from luminary.storage.blobs import Blobs
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
)

__all__ = ["MetricPoint", "TrackingStore"]

#: (series_id, step, timestamp_ms, value); value None means NaN.
MetricPoint = tuple[int, int, int, float | None]


class TrackingStore(abc.ABC):
    """Projects, runs, params, tags, metrics, artifacts and environments, plus a blob store."""

    blobs: Blobs

    # -- projects --------------------------------------------------------------------------
    @abc.abstractmethod
    def create_project(self, name: str, description: str = "") -> Project: ...

    @abc.abstractmethod
    def get_project(self, name: str) -> Project: ...

    @abc.abstractmethod
    def list_projects(self) -> list[Project]: ...

    def ensure_project(self, name: str) -> Project:
        """The project called ``name``, created if missing (safe under concurrent callers)."""
        try:
            return self.get_project(name)
        except KeyError:
            try:
                return self.create_project(name)
            except AlreadyExistsError:
                return self.get_project(name)

    # -- runs ------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(
        self,
        project: str,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        start_ms: int | None = None,
    ) -> Run: ...

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run with this id (or an unambiguous prefix of at least 6 characters)."""

    @abc.abstractmethod
    def search_runs(
        self,
        project: str | None,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = 1000,
        offset: int = 0,
        *,
        within: Sequence[str] | None = None,
    ) -> list[Run]:
        """Runs of ``project`` (``None``: every project) matching ``filter``. ``within``
        limits the search to runs of these projects (the server's access control passes the
        projects a user has a role in); unknown names in it match nothing."""

    @abc.abstractmethod
    def count_runs(
        self, project: str | None, filter: str | None = None, *, within: Sequence[str] | None = None
    ) -> int: ...

    @abc.abstractmethod
    def set_run_status(self, run_id: str, status: RunStatus, end_ms: int | None = None) -> None:
        """Move a run to ``status``; a terminal status records ``end_ms`` (default now)."""

    @abc.abstractmethod
    def heartbeat(self, run_id: str, now_ms: int) -> None:
        """Record that the run's process is alive; a run shown as killed comes back to life."""

    @abc.abstractmethod
    def reap_stale_runs(self, now_ms: int | None = None) -> int:
        """Mark running runs whose heartbeat lapsed as killed; returns how many."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None: ...

    @abc.abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        """Set params once: the same value again is accepted, a different one is an error."""

    @abc.abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    # -- metrics ---------------------------------------------------------------------------
    @abc.abstractmethod
    def write_metrics(
        self,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
        batch_id: str | None = None,
    ) -> dict[str, int]:
        """Declare series ``(series_id, key)`` and append points, in one transaction.

        Returns ``{key: series_id}`` for declared keys that already existed under another id;
        the points were re-addressed to that id and the caller should use it from now on.

        ``batch_id`` (a random id chosen by the caller, at most 64 characters) makes the write
        safe to repeat: a batch id the run has already stored is a no-op that returns the
        remap of that first write, so a retried write never duplicates points. A caller that
        retries must send the same series and points with the same id.
        """

    @abc.abstractmethod
    def metric_series(self, run_id: str) -> dict[str, int]:
        """``{key: series_id}`` of a run's metrics."""

    def last_steps(self, run_id: str) -> dict[str, int]:
        """``{key: highest step}`` of a run's metrics that have points: a resumed run's
        auto-steps continue from there. Backends may override this with a cheaper query."""
        out = {}
        for key in self.metric_series(run_id):
            steps = self.get_metric_history(run_id, key).steps
            if steps:
                out[key] = max(steps)
        return out

    @abc.abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> MetricHistory: ...

    def metric_envelope(
        self, run_id: str, key: str, buckets: int
    ) -> tuple[int, list[tuple[int, int, float, float]]] | None:
        """A long series reduced where it is stored: ``(points, rows)`` with one row
        ``(first step, last step, min value, max value)`` per bucket of equal step width, in
        step order. None where the store cannot (the caller reduces the full history)."""
        return None

    # -- artifacts and environment ---------------------------------------------------------
    @abc.abstractmethod
    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        """Add (or replace, by path) entries of the run's artifact manifest."""

    @abc.abstractmethod
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]: ...

    @abc.abstractmethod
    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def get_environment(self, run_id: str) -> dict[str, Any]: ...

    def close(self) -> None:  # noqa: B027 - a hook: stores without connections keep it
        """Release connections."""
