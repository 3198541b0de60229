"""Compute's SQL part: pools, quotas, the job queue, tasks and logs on SQLite and PostgreSQL.

The scheduler itself is pure (:mod:`luminary.compute._policy`); :mod:`._pass` rebuilds it from
the rows in one write transaction, so whoever runs a pass — an agent claiming work, the team
server — sees and leaves one consistent queue, and a killed scheduler loses nothing: its
transaction rolls back. Every runner and agent call names its attempt; a stale attempt changes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from luminary._clock import now_ms
from luminary._ids import ambiguous_prefix, new_id
from luminary.compute import _pass
from luminary.compute._base import ComputeStore, UsageSample
from luminary.compute._rows import job_from_row, pool_from_row
from luminary.compute._settings import job_heartbeat_s
from luminary.compute.models import (
    Agent,
    Job,
    JobSpec,
    JobState,
    LogChunk,
    Pool,
    Quota,
    Signals,
    TaskReport,
)
from luminary.errors import (
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    nearest,
)
from luminary.storage import schema as t
from luminary.storage.engine import read_tx, write_tx
from luminary.storage.events import insert_event
from luminary.tracking import RunStatus

if TYPE_CHECKING:
    from luminary.compute._policy import ProjectShare
    from luminary.datasets import SqlDatasets
    from luminary.tracking import SqlTracking

__all__ = ["SqlCompute"]

#: Largest chunk of output stored in one row, and the most stored live per stream and attempt
#: (the whole stream is kept as an artifact of the run in any case).
MAX_CHUNK = 64 * 1024
MAX_LIVE_LOG = 16 * 1024 * 1024


#: An agent's claims look for silent attempts at most this often (the server's scheduler
#: thread and other agents look too).
_REAP_EVERY_MS = 500

# The claim's statements, built once: an agent claims many times a second when busy.
_J = t.jobs.c
_BEAT_CLAIMED = (
    t.jobs.update()
    .where(_J.agent == sa.bindparam("b_agent"), _J.state == JobState.STARTING.value)
    .values(heartbeat_ms=sa.bindparam("b_now"))
)
_CLAIMABLE = (
    _pass.select_jobs()
    .where(
        _J.pool == sa.bindparam("pool"),
        _J.state == JobState.STARTING.value,
        _J.agent.is_(None),
    )
    .order_by(_J.started_ms, _J.id)
    .limit(sa.bindparam("limit"))
)
_CLAIM = (
    t.jobs.update()
    .where(_J.id.in_(sa.bindparam("ids", expanding=True)))
    .values(agent=sa.bindparam("b_agent"), heartbeat_ms=sa.bindparam("b_now"))
)


class SqlCompute(ComputeStore):
    """The queue on SQLAlchemy. ``runs`` creates each job's run; ``datasets`` checks and
    records its inputs. ``heartbeat_s`` is how often runners and agents beat; an attempt whose
    heartbeat is older than ``heartbeat_s + 1.5`` s is lost."""

    def __init__(
        self,
        engine: sa.Engine,
        runs: SqlTracking,
        datasets: SqlDatasets,
        *,
        blobs_url: str = "",
        heartbeat_s: float | None = None,
        schedule_every_s: float = 1.0,
        half_life_s: float | None = None,
    ) -> None:
        self.engine = engine
        self._runs = runs
        self._datasets = datasets
        self.heartbeat_s = job_heartbeat_s() if heartbeat_s is None else heartbeat_s
        self.stale_ms = int((self.heartbeat_s + 1.5) * 1000)
        self.schedule_every_ms = int(schedule_every_s * 1000)
        self.half_life_s = half_life_s
        self.blobs_url = blobs_url
        self._reaped_ms = 0  # when this process's claims last looked for silent attempts

    def _tx(self) -> Any:
        return write_tx(self.engine)

    # -- pools and quotas ------------------------------------------------------------------
    def put_pool(self, pool: Pool) -> Pool:
        _check_type(pool, Pool, "pool")
        row = {
            "name": pool.name,
            "executor": pool.executor,
            "spec": json.dumps(pool.to_dict(), sort_keys=True),
            "enabled": pool.enabled,
        }
        with self._tx() as conn:
            done = conn.execute(t.pools.update().where(t.pools.c.name == pool.name).values(**row))
            if done.rowcount == 0:
                conn.execute(t.pools.insert().values(created_ms=now_ms(), **row))
            _pass.bump(conn)
        return pool

    def get_pool(self, name: str) -> Pool:
        with read_tx(self.engine) as conn:
            row = conn.execute(sa.select(t.pools).where(t.pools.c.name == name)).first()
            if row is None:
                names = conn.execute(sa.select(t.pools.c.name)).scalars().all()
        if row is None:
            msg = f"no pool {name!r}; {nearest(name, names, 'pool')}"
            raise NotFoundError(msg)
        return pool_from_row(row._mapping)

    def list_pools(self) -> list[Pool]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(t.pools).order_by(t.pools.c.name)).all()
        return [pool_from_row(r._mapping) for r in rows]

    def remove_pool(self, name: str) -> None:
        self.get_pool(name)
        active = [s.value for s in JobState if s.active]
        with self._tx() as conn:
            busy = conn.execute(
                sa.select(sa.func.count())
                .select_from(t.jobs)
                .where(t.jobs.c.pool == name, t.jobs.c.state.in_(active))
            ).scalar_one()
            if busy:
                msg = (
                    f"pool {name!r} has {busy} job(s) placed on it; disable it "
                    f"(luminary pools add {name} --disabled …) and remove it once they end"
                )
                raise InvalidStateError(msg)
            conn.execute(t.pools.delete().where(t.pools.c.name == name))
            _pass.bump(conn)

    def set_quota(self, quota: Quota) -> Quota:
        _check_type(quota, Quota, "quota")
        project = self._runs.ensure_project(quota.project)
        row = {"spec": json.dumps(quota.to_dict(), sort_keys=True), "updated_ms": now_ms()}
        with self._tx() as conn:
            q = t.quotas
            done = conn.execute(q.update().where(q.c.project_id == project.id).values(**row))
            if done.rowcount == 0:
                conn.execute(q.insert().values(project_id=project.id, **row))
            _pass.bump(conn)
        return quota

    def list_quotas(self) -> list[Quota]:
        with read_tx(self.engine) as conn:
            return _pass.read_quotas(conn)

    def remove_quota(self, project: str) -> None:
        proj = self._runs.get_project(project)
        with self._tx() as conn:
            done = conn.execute(t.quotas.delete().where(t.quotas.c.project_id == proj.id))
            if done.rowcount == 0:
                msg = f"project {project!r} has no quota; see luminary quotas list"
                raise NotFoundError(msg)
            _pass.bump(conn)

    # -- jobs ------------------------------------------------------------------------------
    def submit_job(self, spec: JobSpec, *, user: str | None = None) -> Job:
        _check_type(spec, JobSpec, "spec")
        pools = self.list_pools()
        why = _pass.never_runs(spec, pools)
        if why is not None:
            raise InvalidArgumentError(why)
        versions = [self._datasets.get_dataset_version(ref) for ref in spec.inputs]
        project = self._runs.ensure_project(spec.project)
        job_id = new_id()
        submitted = now_ms()
        with self._tx() as conn:
            run = self._runs.insert_run(
                conn,
                project,
                name=spec.name or spec.label()[:256],
                parent_id=spec.parent_run,
                params=spec.params,
                tags={**spec.tags, **_job_tags(spec), "luminary.job": job_id},
                start_ms=submitted,
                status=RunStatus.QUEUED,
            )
            row = {
                "id": job_id,
                "run_id": run.id,
                "project_id": project.id,
                "user_name": None if user is None else _text(user, 200),
                "spec": json.dumps(spec.to_dict(), sort_keys=True),
                "state": JobState.QUEUED.value,
                "attempt": 0,
                "pool": None,
                "placement": "[]",
                "agent": None,
                "executor_ref": None,
                "submitted_ms": submitted,
                "started_ms": None,
                "ended_ms": None,
                "heartbeat_ms": None,
                "exit_code": None,
                "reason": "waiting for the scheduler",
                "cancel_requested": False,
                "preempt_requested": False,
                "failures": 0,
            }
            conn.execute(t.jobs.insert(), row)
            insert_event(
                conn,
                "job.submitted",
                job_id,
                {"run": run.id, "project": spec.project},
                user or "luminary",
            )
            _pass.bump(conn)
        if versions:
            self._datasets.add_run_inputs(run.id, [v.id for v in versions])
        return job_from_row({**row, "project": spec.project})

    def get_job(self, job_id: str) -> Job:
        with read_tx(self.engine) as conn:
            row = _find_job(conn, job_id)
        return job_from_row(row)

    def list_jobs(
        self,
        project: str | None = None,
        states: Collection[JobState] | None = None,
        *,
        pool: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= 100_000:
            msg = f"limit={limit!r} is not valid; give 1 to 100000"
            raise InvalidArgumentError(msg)
        query = _pass.select_jobs()
        if project is not None:
            query = query.where(t.jobs.c.project_id == self._runs.get_project(project).id)
        if states is not None:
            query = query.where(t.jobs.c.state.in_([JobState(s).value for s in states]))
        if pool is not None:
            query = query.where(t.jobs.c.pool == pool)
        query = query.order_by(t.jobs.c.submitted_ms.desc(), t.jobs.c.id.desc()).limit(limit)
        with read_tx(self.engine) as conn:
            rows = conn.execute(query).all()
        return [job_from_row(r._mapping) for r in rows]

    def cancel_job(self, job_id: str, reason: str = "cancelled") -> Job:
        reason = _text(reason, 1000) or "cancelled"
        with self._tx() as conn:
            row = _find_job(conn, job_id)
            state = JobState(row["state"])
            if state is JobState.QUEUED:
                _pass.end_job(conn, self._runs, row, JobState.CANCELLED, reason, now_ms())
            elif state.active:
                conn.execute(
                    t.jobs.update()
                    .where(t.jobs.c.id == row["id"])
                    .values(cancel_requested=True, reason=reason)
                )
            _pass.bump(conn)
        return self.get_job(row["id"])

    def explain_job(self, job_id: str) -> list[str]:
        with read_tx(self.engine) as conn:
            row = _find_job(conn, job_id)
            return _pass.explain(conn, job_from_row(row), now_ms(), self.stale_ms, self.half_life_s)

    def compute_shares(self) -> list[ProjectShare]:
        with read_tx(self.engine) as conn:
            return _pass.shares(conn, now_ms(), self.stale_ms, self.half_life_s)

    def compute_history(self, since_ms: int) -> list[UsageSample]:
        s, p = t.compute_samples.c, t.projects.c
        query = (
            sa.select(s.at_ms, p.name, s.gpus, s.cpus, s.share, s.usage, s.queued)
            .join(t.projects, p.id == s.project_id)
            .where(s.at_ms >= int(since_ms))
            .order_by(s.at_ms, p.name)
        )
        with read_tx(self.engine) as conn:
            rows = conn.execute(query).all()
        return [UsageSample(*row) for row in rows]

    # -- agents ----------------------------------------------------------------------------
    def runner_environment(self) -> dict[str, str]:
        env = {"LUMINARY_DB": self.engine.url.render_as_string(hide_password=False)}
        if self.blobs_url:
            env["LUMINARY_BLOBS"] = self.blobs_url
        return env

    def queue_version(self) -> int:
        with read_tx(self.engine) as conn:
            return _pass.version(conn)

    def claim_jobs(self, pool: str, agent: Agent, *, limit: int = 64) -> list[Job]:
        now = now_ms()
        reap = now - self._reaped_ms >= _REAP_EVERY_MS
        with self._tx() as conn:
            _pass.beat_agent(conn, agent, pool, now)
            _pass.run(
                conn,
                self._runs,
                now,
                self.stale_ms,
                self.half_life_s,
                every_ms=self.schedule_every_ms,
                reap=reap,
            )
            conn.execute(_BEAT_CLAIMED, {"b_agent": agent.id, "b_now": now})
            rows = conn.execute(_CLAIMABLE, {"pool": pool, "limit": limit}).all()
            ids = [r.id for r in rows]
            if ids:
                conn.execute(_CLAIM, {"ids": ids, "b_agent": agent.id, "b_now": now})
        if reap:
            self._reaped_ms = now
        return [job_from_row({**r._mapping, "agent": agent.id}) for r in rows]

    def list_agents(self) -> list[Agent]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(sa.select(t.compute_agents).order_by(t.compute_agents.c.pool)).all()
        return [Agent(**r._mapping) for r in rows]

    def job_launched(self, job_id: str, attempt: int, executor_ref: str) -> None:
        with self._tx() as conn:
            conn.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id, t.jobs.c.attempt == attempt)
                .where(t.jobs.c.state.in_([JobState.STARTING.value, JobState.RUNNING.value]))
                .values(executor_ref=_text(executor_ref, 200), heartbeat_ms=now_ms())
            )

    def job_lost(self, job_id: str, attempt: int, reason: str) -> Job:
        with self._tx() as conn:
            row = _find_job(conn, job_id)
            if row["attempt"] == attempt and JobState(row["state"]).active:
                _pass.lose(conn, self._runs, row, _text(reason, 1000), now_ms())
                _pass.bump(conn)
        return self.get_job(job_id)

    def schedule(self, now_ms_: int | None = None) -> int:
        now = now_ms() if now_ms_ is None else int(now_ms_)
        with self._tx() as conn:
            return _pass.run(conn, self._runs, now, self.stale_ms, self.half_life_s)

    # -- runners ---------------------------------------------------------------------------
    def task_started(self, job_id: str, attempt: int, rank: int, node: str) -> Job:
        now = now_ms()
        with self._tx() as conn:
            row = _find_job(conn, job_id)
            current = row["attempt"] == attempt and JobState(row["state"]).active
            if not current or row["cancel_requested"]:
                why = (
                    "it was cancelled"
                    if row["cancel_requested"]
                    else (f"the job is {row['state']} at attempt {row['attempt']}")
                )
                msg = f"job {row['id']} attempt {attempt} must not start: {why}"
                raise InvalidStateError(msg)
            _pass.start_task(conn, row, rank, _text(node, 256), now)
            self._runs.write_run_status(conn, row["run_id"], RunStatus.RUNNING)
            return job_from_row(_find_job(conn, row["id"]))

    def task_heartbeat(self, job_id: str, attempt: int, rank: int) -> Signals:
        with self._tx() as conn:
            return _pass.beat_task(conn, self._runs, job_id, attempt, rank, now_ms())

    def append_job_logs(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        rows = []
        for c in chunks:
            if c.stream not in ("stdout", "stderr") or c.seq < 0 or len(c.data) > MAX_CHUNK:
                msg = (
                    f"log chunk {c.key}#{c.seq} is not valid; streams are stdout and stderr, "
                    f"seq from 0, at most {MAX_CHUNK} bytes"
                )
                raise InvalidArgumentError(msg)
            rows.append(
                {
                    "job_id": job_id,
                    "attempt": c.attempt,
                    "rank": c.rank,
                    "stream": c.stream,
                    "seq": c.seq,
                    "at_ms": c.at_ms,
                    "data": c.data,
                }
            )
        if not rows:
            return
        with self._tx() as conn:
            found = _find_job(conn, job_id)["id"]
            for row in rows:
                row["job_id"] = found
            _pass.insert_ignore(conn, t.job_logs, rows)

    def read_job_logs(
        self, job_id: str, after: Mapping[str, int] | None = None, *, limit: int = 1000
    ) -> list[LogChunk]:
        seen = dict(after or {})
        lg = t.job_logs.c
        with read_tx(self.engine) as conn:
            job = _find_job(conn, job_id)
            query = sa.select(lg.attempt, lg.rank, lg.stream, lg.seq, lg.at_ms, lg.data).where(
                lg.job_id == job["id"]
            )
            keys = (
                sa.select(lg.attempt, lg.rank, lg.stream).where(lg.job_id == job["id"]).distinct()
            )
            clauses = []
            for attempt, rank, stream in conn.execute(keys).all():
                last = seen.get(f"{attempt}/{rank}/{stream}", -1)
                clauses.append(
                    (lg.attempt == attempt)
                    & (lg.rank == rank)
                    & (lg.stream == stream)
                    & (lg.seq > last)
                )
            if not clauses:
                return []
            query = (
                query.where(sa.or_(*clauses))
                .order_by(lg.at_ms, lg.attempt, lg.rank, lg.stream, lg.seq)
                .limit(limit)
            )
            rows = conn.execute(query).all()
        return [LogChunk(r.attempt, r.rank, r.stream, r.seq, r.at_ms, bytes(r.data)) for r in rows]

    def task_finished(self, job_id: str, attempt: int, rank: int, report: TaskReport) -> Job:
        with self._tx() as conn:
            row = _find_job(conn, job_id)
            report = TaskReport(report.exit_code, _text(report.reason, 1000), report.cpu_s)
            _pass.finish_task(conn, self._runs, row, attempt, rank, report, now_ms())
            _pass.bump(conn)
        return self.get_job(job_id)


def _text(value: object, limit: int) -> str:
    """Free text for a column: at most ``limit`` characters, without NUL (which PostgreSQL
    refuses in text)."""
    return str(value).replace("\x00", "")[:limit]


def _check_type(value: object, cls: type, name: str) -> None:
    if not isinstance(value, cls):
        msg = f"{name}={value!r} is not valid; give a {cls.__name__}"
        raise InvalidArgumentError(msg)


def _job_tags(spec: JobSpec) -> dict[str, str]:
    r = spec.resources
    tags = {"job.gpus": f"{r.gpus:g}", "job.cpus": f"{r.cpus:g}", "job.nodes": str(spec.nodes)}
    if r.memory_mb:
        tags["job.memory_mb"] = str(r.memory_mb)
    if r.gpu_memory_mb:
        tags["job.gpu_memory_mb"] = str(r.gpu_memory_mb)
    if spec.command:
        tags["job.command"] = " ".join(spec.command)[:5000]
    if spec.pool:
        tags["job.pool"] = spec.pool
    return tags


def _find_job(conn: sa.Connection, job_id: str) -> Mapping[Any, Any]:
    """A job row by id, unique id prefix, or its run's id."""
    if not isinstance(job_id, str) or not job_id or len(job_id) > 64:
        msg = f"job={job_id!r} is not valid; give a job id (or a unique prefix of one)"
        raise InvalidArgumentError(msg)
    j = t.jobs.c
    row = conn.execute(_pass.select_jobs().where(j.id == job_id)).first()
    if row is None:
        row = conn.execute(_pass.select_jobs().where(j.run_id == job_id)).first()
    if row is None and len(job_id) >= 4:
        rows = conn.execute(
            _pass.select_jobs().where(j.id.startswith(job_id, autoescape=True)).limit(11)
        ).all()
        if len(rows) > 1:
            error = ambiguous_prefix("job", job_id, [(r.id, r.project) for r in rows])
            raise error
        row = rows[0] if rows else None
    if row is None:
        msg = f"no job {job_id!r}; see luminary jobs list"
        raise NotFoundError(msg)
    return row._mapping
