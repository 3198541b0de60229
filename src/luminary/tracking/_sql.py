"""Tracking's SQL part: projects, runs, params, tags, metrics, artifacts and environments on
SQLite (embedded default) and PostgreSQL, one implementation.

Metric points are written with one ``executemany`` (SQLite) or one ``COPY`` (PostgreSQL) per
batch, inside the same transaction that advances each series' latest value.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from luminary import _clock
from luminary._clock import now_ms
from luminary._ids import CANDIDATES, ambiguous_prefix, new_id
from luminary.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError, nearest
from luminary.storage import schema as t
from luminary.storage.blobs import BlobStore
from luminary.storage.engine import read_tx, write_tx
from luminary.storage.filter import compile_search
from luminary.tracking._base import MetricPoint, TrackingStore
from luminary.tracking._validate import (
    check_artifacts,
    check_int,
    check_key,
    check_points,
    check_project_name,
    check_tags,
    decode_param,
    encode_param,
)
from luminary.tracking.models import (
    ArtifactEntry,
    MetricHistory,
    ParamValue,
    Project,
    Run,
    RunStatus,
    from_ms,
)

__all__ = ["SqlTracking"]

_REAP_EVERY_S = 2.0

#: Batch ids kept per run (the latest ones), and the longest any is kept.
BATCHES_KEPT = 100
BATCH_TTL_MS = 24 * 3600 * 1000
_PRUNE_EVERY = 50  # a run's batch ids are pruned every this many of its writes
_BATCH_SWEEP_EVERY_S = 600.0


class SqlTracking(TrackingStore):
    """Runs on SQLAlchemy: ``engine`` is SQLite or PostgreSQL with Luminary's schema applied."""

    def __init__(self, engine: sa.Engine, blobs: BlobStore, *, stale_after_s: float = 30.0) -> None:
        self.engine = engine
        self.blobs = blobs
        self.stale_after_ms = int(stale_after_s * 1000)
        self._is_pg = self.engine.dialect.name == "postgresql"
        self._last_reap = 0.0
        self._reap_lock = threading.Lock()
        self._projects: dict[str, Project] = {}  # projects are never renamed or deleted
        self._prune_lock = threading.Lock()
        self._batches_since_prune: dict[str, int] = {}
        self._last_batch_sweep = time.monotonic()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"SqlTracking({url!r}, blobs={self.blobs.url!r})"

    def close(self) -> None:
        self.engine.dispose()

    # -- projects --------------------------------------------------------------------------
    def create_project(self, name: str, description: str = "") -> Project:
        check_project_name(name)
        row = {"id": new_id(), "name": name, "description": description, "created_ms": now_ms()}
        try:
            with write_tx(self.engine) as conn:
                conn.execute(t.projects.insert(), row)
        except sa.exc.IntegrityError as exc:
            msg = f"project {name!r} already exists; use it, or choose another name"
            raise AlreadyExistsError(msg) from exc
        return _project(row)

    def ensure_project(self, name: str) -> Project:
        project = self._projects.get(name)
        if project is None:
            project = self._projects[name] = super().ensure_project(name)
        return project

    def get_project(self, name: str) -> Project:
        with read_tx(self.engine) as conn:
            row = conn.execute(sa.select(t.projects).where(t.projects.c.name == name)).first()
            if row is None:
                names = conn.execute(sa.select(t.projects.c.name)).scalars().all()
        if row is None:
            msg = f"no project {name!r}; {nearest(name, names, 'project')}"
            raise NotFoundError(msg)
        return _project(row._mapping)

    def list_projects(self) -> list[Project]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(t.projects).order_by(t.projects.c.name)).all()
        return [_project(r._mapping) for r in rows]

    # -- runs ------------------------------------------------------------------------------
    def create_run(
        self,
        project: str,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        start_ms: int | None = None,
    ) -> Run:
        proj = self.ensure_project(project)
        with write_tx(self.engine) as conn:
            return self.insert_run(
                conn,
                proj,
                name=name,
                parent_id=parent_id,
                params=params,
                tags=tags,
                start_ms=start_ms,
            )

    def insert_run(
        self,
        conn: sa.Connection,
        proj: Project,
        *,
        name: str | None = None,
        parent_id: str | None = None,
        params: Mapping[str, ParamValue] | None = None,
        tags: Mapping[str, str] | None = None,
        start_ms: int | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        """Create a run inside the caller's write transaction (a job's run is written with its
        job, in one commit); ``status`` may be ``queued``."""
        start = now_ms() if start_ms is None else check_int("start_ms", start_ms, low=0)
        run_id = new_id(start)
        run_name = name if name is not None else _default_name(run_id)
        if not isinstance(run_name, str) or not 0 < len(run_name) <= 256:
            msg = f"run name {run_name!r} is not valid; use 1-256 characters"
            raise InvalidArgumentError(msg)
        encoded = {k: encode_param(k, v) for k, v in (params or {}).items()}
        tag_rows = check_tags(tags or {})
        if parent_id is not None:
            parent_id = self.resolve_run_id(conn, parent_id)
        conn.execute(
            t.runs.insert(),
            {
                "id": run_id,
                "project_id": proj.id,
                "name": run_name,
                "status": status.value,
                "parent_id": parent_id,
                "start_ms": start,
                "end_ms": None,
                "heartbeat_ms": start,
            },
        )
        if encoded:
            conn.execute(t.params.insert(), _param_rows(run_id, encoded))
        if tag_rows:
            conn.execute(
                t.tags.insert(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in tag_rows.items()],
            )
        return Run(
            id=run_id,
            project=proj.name,
            name=run_name,
            status=status,
            parent_id=parent_id,
            start_time=from_ms(start),  # type: ignore[arg-type]
            end_time=None,
            heartbeat_at=from_ms(start),
            params={k: decode_param(v[0], v[1]) for k, v in encoded.items()},
            tags=tag_rows,
        )

    def get_run(self, run_id: str) -> Run:
        self._maybe_reap()
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            return self._load_runs(conn, [run_id])[0]

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
        stmt = compile_search(self._scope(project, within), filter, order_by, limit, offset)
        self._maybe_reap()
        with read_tx(self.engine) as conn:
            ids = list(conn.execute(stmt).scalars())
            return self._load_runs(conn, ids)

    def count_runs(
        self, project: str | None, filter: str | None = None, *, within: Sequence[str] | None = None
    ) -> int:
        scope = self._scope(project, within)
        inner = compile_search(scope, filter, None, None).order_by(None).subquery()
        with read_tx(self.engine) as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(inner)).scalar_one())

    def set_run_status(self, run_id: str, status: RunStatus, end_ms: int | None = None) -> None:
        with write_tx(self.engine) as conn:
            self.write_run_status(conn, run_id, status, end_ms)

    def write_run_status(
        self, conn: sa.Connection, run_id: str, status: RunStatus, end_ms: int | None = None
    ) -> None:
        """:meth:`set_run_status` inside the caller's write transaction."""
        status = RunStatus(status)
        values: dict[str, Any] = {"status": status.value}
        if status.is_terminal:
            values["end_ms"] = now_ms() if end_ms is None else check_int("end_ms", end_ms, low=0)
        else:
            values["end_ms"] = None
            values["heartbeat_ms"] = now_ms()
        done = conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(**values))
        if done.rowcount == 0:  # a prefix, or an unknown id (which raises here)
            run_id = self.resolve_run_id(conn, run_id)
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(**values))

    def heartbeat(self, run_id: str, now_ms: int) -> None:
        check_int("now_ms", now_ms, low=0)
        with write_tx(self.engine) as conn:
            self.write_heartbeat(conn, run_id, now_ms)

    def write_heartbeat(self, conn: sa.Connection, run_id: str, now_ms: int) -> None:
        """:meth:`heartbeat` inside the caller's write transaction (a job's runner beats its
        run with its task)."""
        conn.execute(
            t.runs.update()
            .where(t.runs.c.id == run_id)
            .where(t.runs.c.status.in_([RunStatus.RUNNING.value, RunStatus.KILLED.value]))
            .where(t.runs.c.end_ms.is_(None) | (t.runs.c.status == RunStatus.KILLED.value))
            .values(heartbeat_ms=now_ms, status=RunStatus.RUNNING.value, end_ms=None)
        )

    def reap_stale_runs(self, now_ms: int | None = None) -> int:
        cutoff = (
            _clock.now_ms() if now_ms is None else check_int("now_ms", now_ms)
        ) - self.stale_after_ms
        stale = (t.runs.c.status == RunStatus.RUNNING.value) & (t.runs.c.heartbeat_ms < cutoff)
        with read_tx(self.engine) as conn:
            if conn.execute(sa.select(t.runs.c.id).where(stale).limit(1)).first() is None:
                return 0
        with write_tx(self.engine) as conn:
            result = conn.execute(
                t.runs.update()
                .where(stale)
                .values(status=RunStatus.KILLED.value, end_ms=t.runs.c.heartbeat_ms)
            )
            return int(result.rowcount)

    def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < _REAP_EVERY_S or not self._reap_lock.acquire(blocking=False):
            return
        try:
            self._last_reap = now
            self.reap_stale_runs()
        finally:
            self._reap_lock.release()

    def delete_run(self, run_id: str) -> None:
        with write_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            series = sa.select(t.metric_series.c.id).where(t.metric_series.c.run_id == run_id)
            conn.execute(t.metric_points.delete().where(t.metric_points.c.series_id.in_(series)))
            for table in (
                t.metric_series,
                t.metric_batches,
                t.params,
                t.tags,
                t.artifacts,
                t.run_environment,
            ):
                conn.execute(table.delete().where(table.c.run_id == run_id))
            conn.execute(t.runs.update().where(t.runs.c.parent_id == run_id).values(parent_id=None))
            conn.execute(t.runs.delete().where(t.runs.c.id == run_id))

    def log_params(self, run_id: str, params: Mapping[str, ParamValue]) -> None:
        encoded = {k: encode_param(k, v) for k, v in params.items()}
        if not encoded:
            return
        with write_tx(self.engine) as conn:
            self._require_run(conn, run_id)
            existing = {
                r.key: (r.value_type, r.value_text)
                for r in conn.execute(
                    sa.select(t.params.c.key, t.params.c.value_type, t.params.c.value_text)
                    .where(t.params.c.run_id == run_id)
                    .where(t.params.c.key.in_(list(encoded)))
                )
            }
            for key, (vtype, text, _num) in encoded.items():
                if key in existing and existing[key] != (vtype, text):
                    old = decode_param(*existing[key])
                    msg = (
                        f"param {key!r} of run {run_id} is already {old!r}; it cannot change to "
                        f"{decode_param(vtype, text)!r}. Params are set once: log the new value "
                        "in a new run, or as a tag"
                    )
                    raise InvalidArgumentError(msg)
            new = {k: v for k, v in encoded.items() if k not in existing}
            if new:
                conn.execute(t.params.insert(), _param_rows(run_id, new))

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if not check_tags(tags):
            return
        with write_tx(self.engine) as conn:
            self.write_tags(conn, run_id, tags)

    def write_tags(self, conn: sa.Connection, run_id: str, tags: Mapping[str, str]) -> None:
        """:meth:`set_tags` inside the caller's write transaction."""
        rows = check_tags(tags)
        if not rows:
            return
        self._require_run(conn, run_id)
        conn.execute(
            t.tags.delete().where(t.tags.c.run_id == run_id).where(t.tags.c.key.in_(list(rows)))
        )
        conn.execute(
            t.tags.insert(), [{"run_id": run_id, "key": k, "value": v} for k, v in rows.items()]
        )

    # -- metrics ---------------------------------------------------------------------------
    def write_metrics(
        self,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
        batch_id: str | None = None,
    ) -> dict[str, int]:
        check_points(points)
        if batch_id is None:
            with write_tx(self.engine) as conn:
                return self._write_metrics(conn, run_id, new_series, points)
        _check_batch_id(batch_id)
        done = self._batch_remap(run_id, batch_id)
        if done is not None:
            return done
        try:
            with write_tx(self.engine) as conn:
                self._require_run(conn, run_id)
                remap = self._write_metrics(conn, run_id, new_series, points)
                # Last, so that a concurrent write of the same batch (a client's retry while
                # the first attempt still runs) waits here for the first one's outcome.
                conn.execute(
                    t.metric_batches.insert(),
                    {
                        "run_id": run_id,
                        "batch_id": batch_id,
                        "remap": json.dumps(remap),
                        "at_ms": now_ms(),
                    },
                )
        except sa.exc.IntegrityError:
            done = self._batch_remap(run_id, batch_id)
            if done is None:
                raise
            return done
        self._maybe_prune_batches(run_id)
        return remap

    def _batch_remap(self, run_id: str, batch_id: str) -> dict[str, int] | None:
        """The remap a stored batch was answered with; ``None`` when it is not stored."""
        b = t.metric_batches
        with read_tx(self.engine) as conn:
            found = conn.execute(
                sa.select(b.c.remap).where(b.c.run_id == run_id).where(b.c.batch_id == batch_id)
            ).scalar()
        if found is None:
            return None
        return {str(k): int(v) for k, v in json.loads(found).items()}

    def _maybe_prune_batches(self, run_id: str) -> None:
        """Keep the latest :data:`BATCHES_KEPT` batch ids of a run (a client retries only its
        latest write), and none older than :data:`BATCH_TTL_MS`; cheap between sweeps."""
        with self._prune_lock:
            n = self._batches_since_prune.get(run_id, 0) + 1
            sweep = time.monotonic() - self._last_batch_sweep >= _BATCH_SWEEP_EVERY_S
            if sweep:
                self._last_batch_sweep = time.monotonic()
            if n < _PRUNE_EVERY and not sweep:
                self._batches_since_prune[run_id] = n
                return
            self._batches_since_prune.pop(run_id, None)
            if len(self._batches_since_prune) > 10_000:  # runs that stopped writing
                self._batches_since_prune.clear()
        b = t.metric_batches
        with write_tx(self.engine) as conn:
            if n >= _PRUNE_EVERY:
                cutoff = (
                    sa.select(b.c.at_ms)
                    .where(b.c.run_id == run_id)
                    .order_by(b.c.at_ms.desc())
                    .offset(BATCHES_KEPT)
                    .limit(1)
                    .scalar_subquery()
                )
                conn.execute(b.delete().where(b.c.run_id == run_id).where(b.c.at_ms < cutoff))
            if sweep:
                conn.execute(b.delete().where(b.c.at_ms < now_ms() - BATCH_TTL_MS))

    def _write_metrics(
        self,
        conn: sa.Connection,
        run_id: str,
        new_series: Sequence[tuple[int, str]],
        points: Sequence[MetricPoint],
    ) -> dict[str, int]:
        remap: dict[str, int] = {}
        if new_series:
            remap = self._declare_series(conn, run_id, new_series)
            if remap:
                moved = {sid: remap[key] for sid, key in new_series if key in remap}
                points = [(moved.get(p[0], p[0]), p[1], p[2], p[3]) for p in points]
        if not points:
            return remap
        self._insert_points(conn, points)
        latest: dict[int, MetricPoint] = {}
        counts: dict[int, int] = {}
        for p in points:
            sid = p[0]
            counts[sid] = counts.get(sid, 0) + 1
            cur = latest.get(sid)
            if cur is None or (p[1], p[2]) >= (cur[1], cur[2]):
                latest[sid] = p
        conn.execute(
            _ADVANCE_LATEST,
            [
                {
                    "id": sid,
                    "n": counts[sid],
                    "step": p[1],
                    "ts": p[2],
                    "value": _sql_float(p[3]),
                }
                for sid, p in latest.items()
            ],
        )
        return remap

    def _declare_series(
        self, conn: sa.Connection, run_id: str, new_series: Sequence[tuple[int, str]]
    ) -> dict[str, int]:
        for _sid, key in new_series:
            check_key("metric", key)
        self._require_run(conn, run_id)
        keys = [key for _sid, key in new_series]
        existing = _pairs(
            conn.execute(
                sa.select(t.metric_series.c.key, t.metric_series.c.id)
                .where(t.metric_series.c.run_id == run_id)
                .where(t.metric_series.c.key.in_(keys))
            )
        )
        fresh = [
            {"id": sid, "run_id": run_id, "key": key, "count": 0}
            for sid, key in new_series
            if key not in existing
        ]
        if fresh:
            conn.execute(t.metric_series.insert(), fresh)
        return {key: existing[key] for sid, key in new_series if existing.get(key, sid) != sid}

    def _insert_points(self, conn: sa.Connection, points: Sequence[MetricPoint]) -> None:
        if self._is_pg:
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(_PG_COPY) as copy:
                for p in points:
                    copy.write_row((p[0], p[1], p[2], _sql_float(p[3])))
        else:
            conn.exec_driver_sql(_SQLITE_INSERT, list(points))

    def metric_series(self, run_id: str) -> dict[str, int]:
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            return _pairs(
                conn.execute(
                    sa.select(t.metric_series.c.key, t.metric_series.c.id).where(
                        t.metric_series.c.run_id == run_id
                    )
                )
            )

    def last_steps(self, run_id: str) -> dict[str, int]:
        m = t.metric_series.c
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            return _pairs(
                conn.execute(
                    sa.select(m.key, m.last_step)
                    .where(m.run_id == run_id)
                    .where(m.last_step.is_not(None))
                )
            )

    def get_metric_history(self, run_id: str, key: str) -> MetricHistory:
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            keys = _pairs(
                conn.execute(
                    sa.select(t.metric_series.c.key, t.metric_series.c.id).where(
                        t.metric_series.c.run_id == run_id
                    )
                )
            )
            if key not in keys:
                msg = f"run {run_id} has no metric {key!r}; {nearest(key, keys, 'metric')}"
                raise NotFoundError(msg)
            p = t.metric_points.c
            rows = conn.execute(
                sa.select(p.step, p.ts_ms, p.value)
                .where(p.series_id == keys[key])
                .order_by(p.step, p.ts_ms)
            ).all()
        nan = math.nan
        return MetricHistory(
            run_id=run_id,
            key=key,
            steps=[r[0] for r in rows],
            timestamps_ms=[r[1] for r in rows],
            values=[nan if r[2] is None else r[2] for r in rows],
        )

    def metric_envelope(
        self, run_id: str, key: str, buckets: int
    ) -> tuple[int, list[tuple[int, int, float, float]]] | None:
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            series = conn.execute(
                sa.select(t.metric_series.c.id).where(
                    t.metric_series.c.run_id == run_id, t.metric_series.c.key == key
                )
            ).scalar()
            if series is None:
                return None
            p = t.metric_points.c
            lo, hi, count = conn.execute(
                sa.select(sa.func.min(p.step), sa.func.max(p.step), sa.func.count()).where(
                    p.series_id == series
                )
            ).one()
            if not count:
                return 0, []
            width = max(1, -(-(hi - lo + 1) // max(1, buckets)))  # steps per bucket, rounded up
            bucket = ((p.step - lo) // width).label("bucket")
            rows = conn.execute(
                sa.select(
                    sa.func.min(p.step),
                    sa.func.max(p.step),
                    sa.func.min(p.value),
                    sa.func.max(p.value),
                )
                .where(p.series_id == series, p.value.is_not(None))
                .group_by(bucket)
                .order_by(bucket)
            ).all()
        return int(count), [(int(a), int(b), float(c), float(d)) for a, b, c, d in rows]

    # -- artifacts and environment ---------------------------------------------------------
    def add_artifacts(self, run_id: str, entries: Sequence[ArtifactEntry]) -> None:
        rows = [
            {"run_id": run_id, "path": e.path, "digest": e.digest, "size": e.size}
            for e in check_artifacts(entries, self.blobs.size)
        ]
        if not rows:
            return
        with write_tx(self.engine) as conn:
            self._require_run(conn, run_id)
            conn.execute(
                t.artifacts.delete()
                .where(t.artifacts.c.run_id == run_id)
                .where(t.artifacts.c.path.in_([r["path"] for r in rows]))
            )
            conn.execute(t.artifacts.insert(), rows)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        a = t.artifacts.c
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            stmt = sa.select(a.path, a.digest, a.size).where(a.run_id == run_id).order_by(a.path)
            if prefix:
                stmt = stmt.where(
                    (a.path == prefix)
                    | a.path.startswith(prefix.rstrip("/") + "/", autoescape=True)
                )
            return [ArtifactEntry(r.path, r.digest, r.size) for r in conn.execute(stmt)]

    def set_environment(self, run_id: str, environment: Mapping[str, Any]) -> None:
        data = json.dumps(environment, sort_keys=True, default=str)
        with write_tx(self.engine) as conn:
            self._require_run(conn, run_id)
            conn.execute(t.run_environment.delete().where(t.run_environment.c.run_id == run_id))
            conn.execute(t.run_environment.insert(), {"run_id": run_id, "data": data})

    def get_environment(self, run_id: str) -> dict[str, Any]:
        with read_tx(self.engine) as conn:
            run_id = self.resolve_run_id(conn, run_id)
            data = conn.execute(
                sa.select(t.run_environment.c.data).where(t.run_environment.c.run_id == run_id)
            ).scalar()
        return {} if data is None else dict(json.loads(data))

    # -- helpers ---------------------------------------------------------------------------
    def _require_run(self, conn: sa.Connection, run_id: str) -> None:
        if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first() is None:
            self._run_not_found(conn, run_id)

    def _scope(self, project: str | None, within: Sequence[str] | None) -> str | list[str] | None:
        """The project id(s) a search is limited to (``None``: all)."""
        if project is not None:
            project_id = self.get_project(project).id
            return project_id if within is None or project in within else []
        if within is None:
            return None
        p = t.projects.c
        with read_tx(self.engine) as conn:
            return list(conn.execute(sa.select(p.id).where(p.name.in_(list(within)))).scalars())

    def resolve_run_id(self, conn: sa.Connection, run_id: str) -> str:
        """The full id of ``run_id`` (or of an unambiguous prefix) inside ``conn``'s transaction;
        the registry's and the datasets' parts resolve a version's source run with it."""
        if not isinstance(run_id, str) or not run_id:
            msg = f"run id {run_id!r} is not valid; give a run id string"
            raise InvalidArgumentError(msg)
        r = t.runs.c
        if conn.execute(sa.select(r.id).where(r.id == run_id)).first() is not None:
            return run_id
        if len(run_id) >= 6:
            found = conn.execute(
                sa.select(r.id, t.projects.c.name)
                .join(t.projects, t.projects.c.id == r.project_id)
                .where(r.id.startswith(run_id, autoescape=True))
                .order_by(r.id)
                .limit(CANDIDATES + 1)
            ).all()
            if len(found) == 1:
                return str(found[0].id)
            if len(found) > 1:
                matches = [(str(f.id), str(f.name)) for f in found]
                raise ambiguous_prefix(kind="run", prefix=run_id, candidates=matches)
        self._run_not_found(conn, run_id)
        raise AssertionError  # unreachable

    def _run_not_found(self, conn: sa.Connection, run_id: str) -> None:
        recent = (
            conn.execute(sa.select(t.runs.c.id).order_by(t.runs.c.start_ms.desc()).limit(2000))
            .scalars()
            .all()
        )
        msg = f"no run {run_id!r}; {nearest(run_id, recent, 'run')}"
        raise NotFoundError(msg)

    def _load_runs(self, conn: sa.Connection, ids: list[str]) -> list[Run]:
        if not ids:
            return []
        r, p = t.runs.c, t.projects.c
        rows = {
            row.id: row
            for row in conn.execute(
                sa.select(
                    r.id,
                    r.name,
                    r.status,
                    r.parent_id,
                    r.start_ms,
                    r.end_ms,
                    r.heartbeat_ms,
                    p.name.label("project"),
                )
                .join(t.projects, t.projects.c.id == r.project_id)
                .where(r.id.in_(ids))
            )
        }
        params: dict[str, dict[str, ParamValue]] = {i: {} for i in ids}
        for prow in conn.execute(
            sa.select(
                t.params.c.run_id, t.params.c.key, t.params.c.value_type, t.params.c.value_text
            ).where(t.params.c.run_id.in_(ids))
        ):
            params[prow.run_id][prow.key] = decode_param(prow.value_type, prow.value_text)
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for trow in conn.execute(
            sa.select(t.tags.c.run_id, t.tags.c.key, t.tags.c.value).where(t.tags.c.run_id.in_(ids))
        ):
            tags[trow.run_id][trow.key] = trow.value
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        m = t.metric_series.c
        for mrow in conn.execute(
            sa.select(m.run_id, m.key, m.last_value)
            .where(m.run_id.in_(ids))
            .where(m.last_step.is_not(None))
        ):
            metrics[mrow.run_id][mrow.key] = (
                math.nan if mrow.last_value is None else mrow.last_value
            )
        out = []
        for i in ids:
            row: Any = rows[i]
            out.append(
                Run(
                    id=row.id,
                    project=row.project,
                    name=row.name,
                    status=RunStatus(row.status),
                    parent_id=row.parent_id,
                    start_time=from_ms(row.start_ms),  # type: ignore[arg-type]
                    end_time=from_ms(row.end_ms),
                    heartbeat_at=from_ms(row.heartbeat_ms),
                    params=params[i],
                    tags=tags[i],
                    metrics=dict(sorted(metrics[i].items())),
                )
            )
        return out


_SQLITE_INSERT = "INSERT INTO metric_points (series_id, step, ts_ms, value) VALUES (?, ?, ?, ?)"
_PG_COPY = "COPY metric_points (series_id, step, ts_ms, value) FROM STDIN"
_NEWER = "(last_step IS NULL OR :step > last_step OR (:step = last_step AND :ts >= last_ms))"
_ADVANCE_LATEST = sa.text(
    "UPDATE metric_series SET count = count + :n, "
    f"last_value = CASE WHEN {_NEWER} THEN :value ELSE last_value END, "
    f"last_ms = CASE WHEN {_NEWER} THEN :ts ELSE last_ms END, "
    f"last_step = CASE WHEN {_NEWER} THEN :step ELSE last_step END "
    "WHERE id = :id"
).bindparams(sa.bindparam("value", type_=sa.Double))


def _pairs(result: sa.Result[Any, Any]) -> dict[Any, Any]:
    return {row[0]: row[1] for row in result}


def _check_batch_id(batch_id: str) -> None:
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= 64:
        msg = (
            f"metric batch id {batch_id!r} is not valid; use 1 to 64 characters "
            "(e.g. secrets.token_hex(16))"
        )
        raise InvalidArgumentError(msg)


def _sql_float(value: float | None) -> float | None:
    """NaN is stored as NULL on every database, as SQLite does by itself."""
    return None if value is None or value != value else value


def _project(row: Any) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=from_ms(row["created_ms"]),  # type: ignore[arg-type]
    )


def _param_rows(
    run_id: str, encoded: Mapping[str, tuple[str, str, float | None]]
) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "key": k, "value_type": v[0], "value_text": v[1], "value_num": v[2]}
        for k, v in encoded.items()
    ]


_ADJECTIVES = (
    "bright",
    "boosted",
    "charmed",
    "collinear",
    "coherent",
    "displaced",
    "elastic",
    "forward",
    "hadronic",
    "inclusive",
    "leading",
    "massive",
    "prompt",
    "polarised",
    "soft",
    "strange",
    "transverse",
    "virtual",
    "hard",
    "isolated",
)
_NOUNS = (
    "quark",
    "gluon",
    "muon",
    "tau",
    "photon",
    "boson",
    "jet",
    "vertex",
    "hadron",
    "lepton",
    "pion",
    "kaon",
    "neutrino",
    "meson",
    "baryon",
    "calorimeter",
    "tracker",
    "shower",
    "trigger",
    "collision",
)


def _default_name(run_id: str) -> str:
    rnd = random.Random(run_id)
    return f"{rnd.choice(_ADJECTIVES)}-{rnd.choice(_NOUNS)}-{rnd.randrange(100)}"
