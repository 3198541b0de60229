"""The scheduler's pass over the queue's rows, and the state changes of jobs and their tasks.

Every function takes a connection inside the caller's write transaction. A pass
(:func:`run`) takes the queue's lock (SQLite: the transaction's ``BEGIN IMMEDIATE``;
PostgreSQL: an advisory transaction lock), reaps attempts whose heartbeat stopped, rebuilds
the pure :class:`~luminary.compute._policy.Scheduler` from the rows — pools served by a live
agent, quotas, decayed usage, active and queued jobs — and writes its decision: placements,
preemption requests, the usage decayed to now and, once a minute, a usage sample per project.

A job's life in rows: ``queued`` → (pass) ``starting`` with a pool, a placement and the next
attempt number → (first runner) ``running`` → (last runner, or the reaper) ``succeeded``,
``failed``, ``cancelled``, or ``queued`` again (preempted; or failed with retries left).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from luminary.compute._policy import DEFAULT_HALF_LIFE_S, ProjectShare, Scheduler, never_fits
from luminary.compute._rows import job_from_row, placement_to_json, pool_from_row, quota_from_json
from luminary.compute.models import Agent, Job, JobSpec, JobState, Pool, Quota, Signals, TaskReport
from luminary.storage import schema as t
from luminary.storage.events import insert_event
from luminary.tracking import RunStatus

__all__ = [
    "beat_agent",
    "beat_task",
    "bump",
    "end_job",
    "explain",
    "finish_task",
    "insert_ignore",
    "lose",
    "never_runs",
    "read_quotas",
    "run",
    "select_jobs",
    "shares",
    "start_task",
    "version",
]

_PG_LOCK_KEY = 0x4C554D_4A4F42  # "LUM" "JOB"


class RunWriter(Protocol):
    """Tracking's writes that a job's state changes make to its run, in the same commit."""

    def write_run_status(
        self, conn: sa.Connection, run_id: str, status: RunStatus, end_ms: int | None = None
    ) -> None: ...

    def write_tags(self, conn: sa.Connection, run_id: str, tags: Mapping[str, str]) -> None: ...

    def write_heartbeat(self, conn: sa.Connection, run_id: str, now_ms: int) -> None: ...


_RUN_STATUS = {
    JobState.SUCCEEDED: RunStatus.FINISHED,
    JobState.FAILED: RunStatus.FAILED,
    JobState.CANCELLED: RunStatus.KILLED,
}
#: An agent silent this long no longer serves its pool (its row is dropped after a day).
AGENT_STALE_MS = 15_000
SAMPLE_EVERY_MS = 60_000
_ACTIVE = (JobState.STARTING.value, JobState.RUNNING.value)


def select_jobs() -> sa.Select[Any]:
    """Job rows with their project's name."""
    return sa.select(t.jobs, t.projects.c.name.label("project")).join(
        t.projects, t.projects.c.id == t.jobs.c.project_id
    )


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[Any, Any]]) -> None:
    """Insert ``rows``, skipping any whose primary key is already stored."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), list(rows))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))


# -- the change counter ------------------------------------------------------------------------
def _state(conn: sa.Connection) -> Mapping[Any, Any]:
    row = conn.execute(sa.select(t.compute_state).where(t.compute_state.c.id == 1)).first()
    if row is None:
        values = {
            "id": 1,
            "version": 0,
            "scheduled_version": -1,
            "scheduled_ms": 0,
            "sampled_ms": 0,
        }
        insert_ignore(conn, t.compute_state, [values])
        return values
    return row._mapping


def bump(conn: sa.Connection) -> None:
    """Mark the queue changed: agents wake and the next claim runs a pass."""
    _state(conn)
    conn.execute(
        t.compute_state.update()
        .where(t.compute_state.c.id == 1)
        .values(version=t.compute_state.c.version + 1)
    )


def version(conn: sa.Connection) -> int:
    return int(_state(conn)["version"])


# -- agents ------------------------------------------------------------------------------------
def beat_agent(conn: sa.Connection, agent: Agent, pool: str, now: int) -> None:
    a = t.compute_agents
    done = conn.execute(a.update().where(a.c.id == agent.id).values(heartbeat_ms=now, pool=pool))
    if done.rowcount == 0:
        conn.execute(
            a.insert(),
            {
                "id": agent.id,
                "pool": pool,
                "host": agent.host[:256],
                "pid": agent.pid,
                "started_ms": agent.started_ms,
                "heartbeat_ms": now,
            },
        )
        bump(conn)  # a pool just became served


def _served_pools(conn: sa.Connection, now: int) -> set[str]:
    a = t.compute_agents.c
    rows = conn.execute(sa.select(a.pool).where(a.heartbeat_ms >= now - AGENT_STALE_MS))
    return set(rows.scalars())


# -- reading the world -------------------------------------------------------------------------
def read_pools(conn: sa.Connection) -> list[Pool]:
    return [pool_from_row(r._mapping) for r in conn.execute(sa.select(t.pools)).all()]


def read_quotas(conn: sa.Connection) -> list[Quota]:
    q, p = t.quotas.c, t.projects.c
    rows = conn.execute(
        sa.select(q.spec, p.name).join(t.projects, p.id == q.project_id).order_by(p.name)
    ).all()
    return [quota_from_json(r.spec, r.name) for r in rows]


def _usage(conn: sa.Connection) -> tuple[dict[str, float], int]:
    """Decayed usage per project and when it was written (all rows are written together)."""
    u, p = t.compute_usage.c, t.projects.c
    rows = conn.execute(
        sa.select(p.name, u.gpu_hours, u.as_of_ms).join(t.projects, p.id == u.project_id)
    ).all()
    return {r.name: float(r.gpu_hours) for r in rows}, max((r.as_of_ms for r in rows), default=0)


def _scheduler(
    conn: sa.Connection, now: int, half_life_s: float | None, pools: Sequence[Pool]
) -> tuple[Scheduler, int]:
    """The pure scheduler for ``pools`` with the queue's rows; and when the usage was written."""
    sched = Scheduler(pools, read_quotas(conn), half_life_s=half_life_s or DEFAULT_HALF_LIFE_S)
    usage, as_of = _usage(conn)
    sched.set_usage(usage, as_of or now)
    rows = conn.execute(
        select_jobs().where(t.jobs.c.state.in_([*_ACTIVE, JobState.QUEUED.value]))
    ).all()
    jobs = [job_from_row(r._mapping) for r in rows]
    names = {p.name for p in pools}
    for job in jobs:
        if job.state.active and job.pool in names:
            sched.add_active(job)
    queued = sorted(
        (j for j in jobs if j.state is JobState.QUEUED), key=lambda j: (j.submitted_ms, j.id)
    )
    for job in queued:
        sched.enqueue(job)
    return sched, as_of or now


def never_runs(spec: JobSpec, pools: Sequence[Pool]) -> str | None:
    """Why no pool could ever run ``spec`` (with the numbers), or ``None``."""
    enabled = [p for p in pools if p.enabled]
    if spec.pool is not None:
        named = [p for p in pools if p.name == spec.pool]
        if not named:
            have = ", ".join(p.name for p in pools) or "none yet"
            return f"no pool {spec.pool!r} (pools: {have}); add it with luminary pools add"
        return never_fits(spec, named)
    if not enabled:
        return (
            "no enabled pools to run jobs on; add one, e.g. "
            "luminary pools add local --gpus 4 (logical GPUs are allowed)"
        )
    return never_fits(spec, enabled)


# -- the pass ----------------------------------------------------------------------------------
def _lock(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})


#: Decayed usage is written back at most this often; what a job that ends in between used
#: since the last write is not charged (at most this long of its run).
USAGE_EVERY_MS = 5_000


def run(
    conn: sa.Connection,
    runs: RunWriter,
    now: int,
    stale_ms: int,
    half_life_s: float | None,
    *,
    every_ms: int | None = None,
    reap: bool = True,
) -> int:
    """One scheduling pass; returns the number of jobs placed. With ``every_ms``, only if one
    is due: the queue changed since the last pass, or ``every_ms`` went by. ``reap=False``
    skips looking for silent attempts (a caller that looked less than a second ago)."""
    state = _state(conn)
    if every_ms is not None and not (
        state["version"] != state["scheduled_version"] or now - state["scheduled_ms"] >= every_ms
    ):
        return 0
    _lock(conn)
    reaped = _reap(conn, runs, now, stale_ms) if reap else False
    served = _served_pools(conn, now)
    pools = [p for p in read_pools(conn) if p.enabled and p.name in served]
    sched, usage_as_of = _scheduler(conn, now, half_life_s, pools)
    decision = sched.step(now)
    j = t.jobs.c
    for start in decision.starts:
        conn.execute(
            t.jobs.update()
            .where(j.id == start.job_id, j.state == JobState.QUEUED.value)
            .values(
                state=JobState.STARTING.value,
                attempt=j.attempt + 1,
                pool=start.pool,
                placement=placement_to_json(start.placement),
                agent=None,
                executor_ref=None,
                started_ms=now,
                ended_ms=None,
                heartbeat_ms=now,
                exit_code=None,
                reason=f"placed on pool {start.pool}",
                preempt_requested=False,
            )
        )
    for pre in decision.preemptions:
        conn.execute(
            t.jobs.update()
            .where(j.id == pre.job_id, j.state.in_(_ACTIVE))
            .values(preempt_requested=True, reason=pre.reason)
        )
    if now - usage_as_of >= USAGE_EVERY_MS:
        _save_usage(conn, sched.usage(now), now)
    if now - int(state["sampled_ms"]) >= SAMPLE_EVERY_MS:
        _sample(conn, sched, now)
        a = t.compute_agents.c
        conn.execute(t.compute_agents.delete().where(a.heartbeat_ms < now - 86_400_000))
    changed = reaped or decision.starts or decision.preemptions
    conn.execute(
        t.compute_state.update()
        .where(t.compute_state.c.id == 1)
        .values(
            scheduled_ms=now,
            scheduled_version=state["version"] + (1 if changed else 0),
            version=state["version"] + (1 if changed else 0),
        )
    )
    return len(decision.starts)


def _project_ids(conn: sa.Connection, names: Sequence[str]) -> dict[str, str]:
    p = t.projects.c
    rows = conn.execute(sa.select(p.name, p.id).where(p.name.in_(list(names))))
    return {str(name): str(pid) for name, pid in rows.all()}


def _save_usage(conn: sa.Connection, usage: Mapping[str, float], now: int) -> None:
    ids = _project_ids(conn, list(usage))
    u = t.compute_usage
    for name, value in usage.items():
        pid = ids.get(name)
        if pid is None:
            continue
        done = conn.execute(
            u.update().where(u.c.project_id == pid).values(gpu_hours=value, as_of_ms=now)
        )
        if done.rowcount == 0:
            conn.execute(u.insert(), {"project_id": pid, "gpu_hours": value, "as_of_ms": now})


def _sample(conn: sa.Connection, sched: Scheduler, now: int) -> None:
    rows = sched.shares(now)
    ids = _project_ids(conn, [s.project for s in rows])
    counts = conn.execute(
        sa.select(t.jobs.c.project_id, sa.func.count())
        .where(t.jobs.c.state == JobState.QUEUED.value)
        .group_by(t.jobs.c.project_id)
    )
    queued: dict[str, int] = {pid: int(n) for pid, n in counts}
    samples = [
        {
            "at_ms": now,
            "project_id": ids[s.project],
            "gpus": s.gpus_in_use,
            "cpus": s.cpus_in_use,
            "share": s.entitled,
            "usage": s.usage_gpu_h,
            "queued": int(queued.get(ids[s.project], 0)),
        }
        for s in rows
        if s.project in ids
    ]
    if samples:
        insert_ignore(conn, t.compute_samples, samples)
    conn.execute(t.compute_state.update().where(t.compute_state.c.id == 1).values(sampled_ms=now))
    # keep 30 days of samples
    conn.execute(
        t.compute_samples.delete().where(t.compute_samples.c.at_ms < now - 30 * 86_400_000)
    )


def _reap(conn: sa.Connection, runs: RunWriter, now: int, stale_ms: int) -> bool:
    """Lose the attempts whose agent or runners stopped beating."""
    cutoff = now - stale_ms
    j, k = t.jobs.c, t.job_tasks.c
    stale_starting = conn.execute(
        select_jobs().where(j.state == JobState.STARTING.value, j.heartbeat_ms < cutoff)
    ).all()
    for row in stale_starting:
        who = f"agent {row.agent}" if row.agent else f"no agent of pool {row.pool}"
        lose(
            conn,
            runs,
            row._mapping,
            f"{who} did not start it (silent for {(now - row.heartbeat_ms) / 1000:.1f} s)",
            now,
        )
    stale_tasks = conn.execute(
        sa.select(k.job_id, k.rank, k.node, k.heartbeat_ms)
        .join(t.jobs, (j.id == k.job_id) & (j.attempt == k.attempt))
        .where(j.state == JobState.RUNNING.value, k.state == "running", k.heartbeat_ms < cutoff)
    ).all()
    for job_id, rank, node, beat in stale_tasks:
        found = conn.execute(select_jobs().where(j.id == job_id)).first()
        if found is not None and found.state == JobState.RUNNING.value:
            lose(
                conn,
                runs,
                found._mapping,
                f"rank {rank} on {node} stopped answering "
                f"(last heartbeat {(now - beat) / 1000:.1f} s ago)",
                now,
            )
    return bool(stale_starting or stale_tasks)


# -- state changes -----------------------------------------------------------------------------
def end_job(
    conn: sa.Connection,
    runs: RunWriter,
    row: Mapping[Any, Any],
    state: JobState,
    reason: str,
    now: int,
    exit_code: int | None = None,
) -> None:
    conn.execute(
        t.jobs.update()
        .where(t.jobs.c.id == row["id"])
        .values(
            state=state.value,
            reason=reason,
            ended_ms=now,
            exit_code=exit_code,
            heartbeat_ms=None,
            preempt_requested=False,
        )
    )
    conn.execute(
        t.job_tasks.update()
        .where(t.job_tasks.c.job_id == row["id"], t.job_tasks.c.state == "running")
        .values(state="lost", ended_ms=now)
    )
    runs.write_run_status(conn, row["run_id"], _RUN_STATUS[state], now)
    tags = {
        "job.state": state.value,
        "job.attempts": str(row["attempt"]),
        "job.reason": reason[:5000],
    }
    if exit_code is not None:
        tags["job.exit_code"] = str(exit_code)
    runs.write_tags(conn, row["run_id"], tags)
    insert_event(
        conn,
        "job.ended",
        row["id"],
        {"state": state.value, "reason": reason, "run": row["run_id"], "exit_code": exit_code},
        "luminary",
    )


def _requeue(
    conn: sa.Connection, runs: RunWriter, row: Mapping[Any, Any], reason: str, failure: bool
) -> None:
    conn.execute(
        t.jobs.update()
        .where(t.jobs.c.id == row["id"])
        .values(
            state=JobState.QUEUED.value,
            pool=None,
            placement="[]",
            agent=None,
            executor_ref=None,
            heartbeat_ms=None,
            preempt_requested=False,
            reason=reason,
            failures=t.jobs.c.failures + (1 if failure else 0),
        )
    )
    conn.execute(
        t.job_tasks.update()
        .where(t.job_tasks.c.job_id == row["id"], t.job_tasks.c.state == "running")
        .values(state="lost")
    )
    runs.write_run_status(conn, row["run_id"], RunStatus.QUEUED)


def _settle(
    conn: sa.Connection,
    runs: RunWriter,
    row: Mapping[Any, Any],
    failed: bool,
    reason: str,
    now: int,
    exit_code: int | None,
) -> None:
    """End an attempt: succeeded, cancelled, requeued (preempted, or retries left) or failed."""
    spec = json.loads(row["spec"])
    retries = int(spec.get("retries", 0))
    if row["cancel_requested"]:
        end_job(conn, runs, row, JobState.CANCELLED, row["reason"] or "cancelled", now, exit_code)
    elif row["preempt_requested"]:
        _requeue(conn, runs, row, f"requeued after preemption ({row['reason']})", failure=False)
    elif not failed:
        end_job(conn, runs, row, JobState.SUCCEEDED, "exited 0", now, exit_code)
    elif row["failures"] < retries:
        _requeue(
            conn,
            runs,
            row,
            f"retry {row['failures'] + 1} of {retries} after: {reason}",
            failure=True,
        )
    else:
        end_job(conn, runs, row, JobState.FAILED, reason, now, exit_code)


def lose(
    conn: sa.Connection, runs: RunWriter, row: Mapping[Any, Any], reason: str, now: int
) -> None:
    """The attempt's runners are gone without reporting how they ended."""
    _settle(conn, runs, row, failed=True, reason=f"lost: {reason}", now=now, exit_code=None)


def start_task(conn: sa.Connection, row: Mapping[Any, Any], rank: int, node: str, now: int) -> None:
    k = t.job_tasks.c
    values = {
        "node": node,
        "state": "running",
        "started_ms": now,
        "heartbeat_ms": now,
        "ended_ms": None,
        "exit_code": None,
        "reason": "",
        "cpu_s": None,
    }
    done = conn.execute(
        t.job_tasks.update()
        .where(k.job_id == row["id"], k.attempt == row["attempt"], k.rank == rank)
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(
            t.job_tasks.insert(),
            {"job_id": row["id"], "attempt": row["attempt"], "rank": rank, **values},
        )
    update: dict[str, Any] = {"heartbeat_ms": now}
    if row["state"] == JobState.STARTING.value:
        update.update(state=JobState.RUNNING.value, started_ms=now, reason=f"running on {node}")
    conn.execute(t.jobs.update().where(t.jobs.c.id == row["id"]).values(**update))


def beat_task(
    conn: sa.Connection, runs: RunWriter, job_id: str, attempt: int, rank: int, now: int
) -> Signals:
    j, k = t.jobs.c, t.job_tasks.c
    row = conn.execute(sa.select(t.jobs).where(j.id == job_id)).first()
    if row is None:
        return Signals(stop=True, reason=f"job {job_id} no longer exists")
    if row.attempt != attempt or row.state not in _ACTIVE:
        return Signals(stop=True, reason=f"attempt {attempt} is over (job {row.state})")
    task = conn.execute(
        sa.select(k.state).where(k.job_id == job_id, k.attempt == attempt, k.rank == rank)
    ).first()
    if task is None or task.state != "running":
        return Signals(stop=True, reason=f"rank {rank} of attempt {attempt} is not running")
    conn.execute(
        t.job_tasks.update()
        .where(k.job_id == job_id, k.attempt == attempt, k.rank == rank)
        .values(heartbeat_ms=now)
    )
    conn.execute(t.jobs.update().where(j.id == job_id).values(heartbeat_ms=now))
    # the job's run lives while its job does (tracking reaps runs whose heartbeat stops)
    runs.write_heartbeat(conn, row.run_id, now)
    if row.cancel_requested:
        return Signals(stop=True, reason=row.reason or "cancelled")
    if row.preempt_requested:
        return Signals(stop=True, preempt=True, reason=row.reason)
    failed = conn.execute(
        sa.select(k.rank, k.exit_code).where(
            k.job_id == job_id, k.attempt == attempt, k.state == "exited", k.exit_code != 0
        )
    ).first()
    if failed is not None:
        return Signals(stop=True, reason=f"rank {failed.rank} exited with {failed.exit_code}")
    return Signals()


def finish_task(
    conn: sa.Connection,
    runs: RunWriter,
    row: Mapping[Any, Any],
    attempt: int,
    rank: int,
    report: TaskReport,
    now: int,
) -> None:
    k = t.job_tasks.c
    if row["attempt"] != attempt or row["state"] not in _ACTIVE:
        return  # a stale attempt: the job has moved on
    conn.execute(
        t.job_tasks.update()
        .where(k.job_id == row["id"], k.attempt == attempt, k.rank == rank)
        .values(
            state="exited",
            ended_ms=now,
            exit_code=report.exit_code,
            reason=report.reason[:1000],
            cpu_s=report.cpu_s,
        )
    )
    tasks = conn.execute(
        sa.select(k.rank, k.state, k.exit_code, k.reason).where(
            k.job_id == row["id"], k.attempt == attempt
        )
    ).all()
    nodes = int(json.loads(row["spec"]).get("nodes", 1))
    bad = [x for x in tasks if x.state == "exited" and x.exit_code != 0]
    ended = [x for x in tasks if x.state == "exited"]
    if any(x.state == "running" for x in tasks):
        return  # ranks still running; a failed rank tells them to stop at their heartbeat
    if not bad and len(ended) < nodes:
        return  # ranks still to start
    if bad:
        first = bad[0]
        why = first.reason or f"exited with {first.exit_code}"
        prefix = f"rank {first.rank} " if nodes > 1 else ""
        _settle(conn, runs, row, True, prefix + why, now, first.exit_code)
    else:
        _settle(conn, runs, row, False, "", now, 0)


# -- explanations and shares -------------------------------------------------------------------
def explain(
    conn: sa.Connection, job: Job, now: int, stale_ms: int, half_life_s: float | None
) -> list[str]:
    if job.state.done:
        code = "" if job.exit_code is None else f", exit code {job.exit_code}"
        return [f"job {job.id} {job.state.value}: {job.reason}{code}"]
    if job.state.active:
        where = f"pool {job.pool}" + (
            f" ({', '.join(p.node for p in job.placement)})" if job.placement else ""
        )
        doing = [f"job {job.id} is {job.state.value} on {where} (attempt {job.attempt})"]
        if job.cancel_requested:
            doing.append(f"it was asked to stop: {job.reason}")
        elif job.preempt_requested:
            doing.append(f"it is being preempted: {job.reason}")
        return doing
    served = _served_pools(conn, now)
    pools = read_pools(conn)
    lines: list[str] = []
    candidates = [p for p in pools if p.enabled and (job.spec.pool in (None, p.name))]
    unserved = [p.name for p in candidates if p.name not in served]
    if candidates and len(unserved) == len(candidates):
        lines.append(
            "no agent serves "
            + ", ".join(f"pool {n!r}" for n in unserved)
            + "; start one with: luminary pools serve "
            + unserved[0]
        )
    sched, _as_of = _scheduler(
        conn, now, half_life_s, [p for p in candidates if p.name in served] or candidates
    )
    lines.extend(sched.explain(job.id, now))
    if job.reason and job.reason.startswith(("requeued", "retry")):
        lines.append(job.reason)
    return lines


def shares(
    conn: sa.Connection, now: int, stale_ms: int, half_life_s: float | None
) -> list[ProjectShare]:
    pools = [p for p in read_pools(conn) if p.enabled]
    sched, _as_of = _scheduler(conn, now, half_life_s, pools)
    return sched.shares(now)
