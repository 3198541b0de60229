"""A run being logged: buffered metrics written in batches by a background thread.

``log`` appends to an in-memory buffer and returns; a daemon thread writes the buffer every
``flush_every_s`` seconds (or sooner once ``batch_size`` points wait) in one transaction, and
beats the run's heartbeat. ``flush()`` commits everything logged so far before it returns; the
end of the run flushes too. A commit survives a crash of the process; a power cut too only with
``LUMINARY_SYNC=full`` (embedded SQLite) or on a PostgreSQL server that fsyncs its commits. If
the database is briefly unavailable the points stay in the buffer and the writer retries the
same chunk under the same batch id (so a write that was stored but not acknowledged is not
stored twice); ``flush()`` raises what went wrong.

Thread safety: ``log`` may be called from several threads. Params, tags and artifacts are
written synchronously (a conflicting param must fail where it is set).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from luminary._bounds import INT64_MAX, INT64_MIN, check_int
from luminary.errors import InvalidArgumentError, InvalidStateError, LuminaryError
from luminary.names import check_relative_path
from luminary.tracking._base import MetricPoint
from luminary.tracking._validate import check_key, metric_value
from luminary.tracking.models import ArtifactEntry, ParamValue, Run, RunStatus

if TYPE_CHECKING:
    from luminary.datasets import DatasetVersion
    from luminary.energy import EnergyReport, Sampler
    from luminary.store import Store

__all__ = ["ActiveRun"]

log = logging.getLogger("luminary.tracking")

_time_ns = time.time_ns


def _start_energy() -> Sampler | None:
    """A sampler for this process and its children (``LUMINARY_ENERGY=0`` turns it off)."""
    if os.environ.get("LUMINARY_ENERGY", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    from luminary.energy import Sampler

    try:
        return Sampler().start()
    except LuminaryError as exc:
        log.warning("energy is not measured: %s", exc)
        return None


class ActiveRun:
    """A run that this process is logging to. Use as a context manager, or call :meth:`end`."""

    def __init__(
        self,
        store: Store,
        run: Run,
        *,
        heartbeat_s: float = 10.0,
        flush_every_s: float = 0.5,
        batch_size: int = 50_000,
        max_buffer: int = 5_000_000,
        capture_env: bool = True,
        energy: bool = True,
    ) -> None:
        self._store = store
        self.info = run
        self.id = run.id
        self._series: dict[str, int] = store.metric_series(run.id) if run.metrics else {}
        self._new_series: list[tuple[int, str]] = []
        # A resumed run's auto-steps go on from its stored last steps, not from 0 again.
        self._next_step: dict[str, int] = (
            {key: last + 1 for key, last in store.last_steps(run.id).items()} if run.metrics else {}
        )
        self._buf: list[MetricPoint] = []
        self._remap: dict[int, int] = {}
        # (batch id, points, series) of the chunk being written until the store acknowledges it
        self._pending: tuple[str, int, int] | None = None
        self._batch = batch_size
        self._max_buffer = max_buffer
        self._flush_every = flush_every_s
        self._heartbeat_s = heartbeat_s
        self._write_lock = threading.Lock()
        self._declare_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._ended = False
        self._capture_env = capture_env
        self.points_written = 0
        self.energy: EnergyReport | None = None  # set when the run ends
        self._sampler = _start_energy() if energy else None
        self._thread = threading.Thread(
            target=self._loop, name=f"luminary-run-{run.id}", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"ActiveRun(id={self.id!r}, project={self.info.project!r}, name={self.info.name!r})"

    @property
    def project(self) -> str:
        return self.info.project

    @property
    def name(self) -> str:
        return self.info.name

    # -- metrics (hot path) ----------------------------------------------------------------
    def log(
        self,
        metrics: Mapping[str, Any],
        step: int | None = None,
        *,
        timestamp_ms: int | None = None,
    ) -> None:
        """Log metric values at ``step`` (default: one past the key's last step). Never blocks
        on the database."""
        if self._ended:
            msg = f"run {self.id} has ended; start a new run to log more"
            raise InvalidStateError(msg)
        if step is not None and (type(step) is not int or not _STEP_MIN <= step < _STEP_MAX):
            step = _check_step(step)
        ts = _time_ns() // 1_000_000 if timestamp_ms is None else _check_ms(timestamp_ms)
        series = self._series
        next_step = self._next_step
        points = []  # checked in full before any is buffered: a bad value rejects the whole call
        for key, value in metrics.items():
            sid = series.get(key)
            if sid is None:
                sid = self._declare(key)
            if type(value) is not float:
                value = metric_value(key, value)
            s = next_step.get(key, 0) if step is None else step
            points.append((sid, s, ts, None if value != value else value))
        for key, point in zip(metrics, points, strict=True):
            next_step[key] = point[1] + 1
        buf = self._buf
        buf.extend(points)
        if len(buf) >= self._batch:
            self._wake.set()
            if len(buf) >= self._max_buffer:
                self.flush()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log({key: value}, step)

    def _declare(self, key: str) -> int:
        check_key("metric", key)
        with self._declare_lock:
            sid = self._series.get(key)
            if sid is None:
                sid = secrets.randbits(62)
                self._new_series.append((sid, key))
                self._series[key] = sid
        return sid

    # -- writing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every point logged so far; when it returns they are committed to the store.

        What a commit survives is the store's setting (``LUMINARY_SYNC``): with the default
        ``normal`` an embedded SQLite store keeps them through a crash of the process but may
        lose the last commits to a power cut; ``full`` keeps them through a power cut too. On
        PostgreSQL or a server the database server's settings decide.
        """
        self._drain()

    def _drain(self) -> None:
        """Write what was buffered when called, at most ``batch_size`` points per write (one
        transaction or request each, so a remote store never gets an unbounded body)."""
        with self._write_lock:
            owed = len(self._buf)
            while True:
                buf = self._buf
                if self._pending is not None:
                    # A chunk whose write failed goes again exactly as it was, with its batch
                    # id: if the first attempt was stored after all, the store ignores it.
                    batch_id, n, n_series = self._pending
                    owed = max(owed, n)
                else:
                    # points first, then series: every point's series is then included
                    n = min(len(buf), self._batch, owed)
                    n_series = len(self._new_series)
                    if n == 0 and n_series == 0:
                        return
                    batch_id = secrets.token_hex(16)
                    self._pending = (batch_id, n, n_series)
                batch = buf[:n]
                declared = self._new_series[:n_series]
                if self._remap:
                    batch = [(self._remap.get(p[0], p[0]), p[1], p[2], p[3]) for p in batch]
                remap = self._store.write_metrics(self.id, declared, batch, batch_id=batch_id)
                self._pending = None
                del buf[:n]
                del self._new_series[:n_series]
                self.points_written += n
                owed -= n
                for key, sid in remap.items():
                    old = self._series[key]
                    self._remap[old] = sid
                    self._series[key] = sid
                if owed <= 0:
                    return

    def _loop(self) -> None:
        if self._capture_env:
            self._write_environment()
        next_beat = time.monotonic() + self._heartbeat_s
        backoff = self._flush_every
        failing = False
        while not self._stop.is_set():
            if failing:
                # Back off for real: a full buffer sets _wake on every log() call.
                self._stop.wait(backoff)
            else:
                # A heartbeat shorter than the flush interval must still beat on time.
                self._wake.wait(min(backoff, max(next_beat - time.monotonic(), 0.0)))
            self._wake.clear()
            try:
                self._drain()
                if time.monotonic() >= next_beat:
                    self._store.heartbeat(self.id, _time_ns() // 1_000_000)
                    next_beat = time.monotonic() + self._heartbeat_s
                self._error = None
                failing = False
                backoff = self._flush_every
            except Exception as exc:  # noqa: BLE001 - kept for flush() and retried
                self._error = exc
                failing = True
                log.warning("run %s: writing metrics failed, will retry: %s", self.id, exc)
                backoff = min(backoff * 2, 5.0)

    def _write_environment(self) -> None:
        from luminary.tracking._env import capture_environment

        try:
            self._store.set_environment(self.id, capture_environment())
        except Exception as exc:  # noqa: BLE001 - the run goes on without it
            log.warning("run %s: could not record the environment: %s", self.id, exc)

    # -- params, tags, artifacts -----------------------------------------------------------
    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        self._check_open()
        self._store.log_params(self.id, params)

    def log_param(self, key: str, value: ParamValue) -> None:
        self.log_params({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        self._store.set_tags(self.id, tags)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def log_artifact(
        self, local_path: str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactEntry]:
        """Store a file or a folder (recursively) as artifacts of this run.

        ``name`` is the artifact path (default: the file or folder's own name); files of a
        folder are stored under it with their relative paths.
        """
        self._check_open()
        path = Path(local_path)
        # abspath, not resolve: "." and "out/.." have a name, and a symlink keeps its own
        base = name if name is not None else Path(os.path.abspath(path)).name
        check_relative_path(base)
        if path.is_file():
            files = [(path, base)]
        elif path.is_dir():
            files = [
                (f, f"{base}/{f.relative_to(path).as_posix()}")
                for f in sorted(path.rglob("*"))
                if f.is_file()
            ]
        else:
            msg = f"artifact {str(local_path)!r} does not exist or is not a file or folder"
            raise InvalidArgumentError(msg)
        entries = []
        for file, rel in files:
            blob = self._store.blobs.put_file(file)
            entries.append(ArtifactEntry(check_relative_path(rel), blob.digest, blob.size))
        self._store.add_artifacts(self.id, entries)
        return entries

    def use_dataset(self, ref: str) -> DatasetVersion:
        """Record a dataset version (``name@version``; ``name`` for the latest) as an input of
        this run, for lineage; returns the version."""
        self._check_open()
        version = self._store.get_dataset_version(ref)
        self._store.add_run_inputs(self.id, [version.id])
        return version

    # -- lifecycle -------------------------------------------------------------------------
    def end(self, status: RunStatus | str = RunStatus.FINISHED) -> None:
        """Flush, stop the writer, and record the final status. Idempotent. What is committed
        survives what ``LUMINARY_SYNC`` promises (see :meth:`flush`)."""
        if self._ended:
            return
        final = RunStatus(status)
        energy_tags = self._stop_energy()
        self._ended = True
        self._stop.set()
        self._wake.set()
        self._thread.join()
        from luminary.tracking import _api

        try:
            self._drain()
            # After the writer has stopped: a transaction of its own would wait on the writer's
            # (SQLite's busy handler sleeps milliseconds), which made energy the cost of a run.
            self._record_energy_tags(energy_tags)
        finally:
            # Forget first: a run whose status cannot be recorded must not stay active, or the
            # exit hook that ends open runs would pick it up again forever.
            _api._forget(self)
            self._store.set_run_status(self.id, final)

    def _stop_energy(self) -> dict[str, str]:
        """Stop the energy sampler and log what the run used, per device; the tags naming each
        figure's source are returned, to be written once the writer has stopped."""
        sampler, self._sampler = self._sampler, None
        if sampler is None:
            return {}
        try:
            report = sampler.stop()
            self.log(report.to_metrics())
            tags = report.to_tags()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the run still ends
            log.warning("run %s: energy not recorded: %s", self.id, exc)
            return {}
        self.energy = report
        return tags

    def _record_energy_tags(self, tags: dict[str, str]) -> None:
        if not tags:
            return
        try:
            self._store.set_tags(self.id, tags)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the run still ends
            log.warning("run %s: energy sources not recorded: %s", self.id, exc)

    def _check_open(self) -> None:
        if self._ended:
            msg = f"run {self.id} has ended; start a new run to change it"
            raise InvalidStateError(msg)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end(RunStatus.FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED)

    def _end_at_exit(self) -> None:
        error = getattr(sys, "last_value", None)
        if error is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(error, KeyboardInterrupt):  # as the context manager does
            self.end(RunStatus.KILLED)
        else:
            self.end(RunStatus.FAILED)


# A step is checked when logged (a bad one in the buffer would fail a later flush instead);
# the highest is one less than the database's, so that the next default step still fits.
_STEP_MIN, _STEP_MAX = INT64_MIN, INT64_MAX


def _check_step(step: object) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        msg = f"step {step!r} is not valid; a step is an integer (e.g. the epoch or batch number)"
        raise InvalidArgumentError(msg)
    return check_int("step", step, low=_STEP_MIN, high=_STEP_MAX - 1)


def _check_ms(timestamp_ms: object) -> int:
    if isinstance(timestamp_ms, float) and timestamp_ms.is_integer():
        timestamp_ms = int(timestamp_ms)
    return check_int("timestamp_ms", timestamp_ms, low=0)
