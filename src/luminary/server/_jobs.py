"""Compute: ``/api/v1/pools``, ``/api/v1/quotas``, ``/api/v1/jobs`` and ``/api/v1/compute``.

The same calls as :class:`~luminary.compute.ComputeStore`, for people, agents and runners:

- pools and quotas: ``GET`` (any authenticated caller), ``PUT``/``DELETE`` (server admins);
- jobs: ``POST /jobs`` with ``{"spec": {...}}`` submits (writer in the spec's project, reader
  of each dataset input; the job's user is the caller, never a value from the body);
  ``GET /jobs`` (``project``, repeated ``state``, ``pool``, ``limit``) lists the jobs of the
  projects the caller has a role in; ``GET /jobs/{id}``, ``/why`` and ``/logs`` need reader,
  ``POST /jobs/{id}/cancel`` writer in the job's project;
- logs: ``GET /jobs/{id}/logs?after=<JSON>&limit=N`` where ``after`` is the JSON text of the
  cursor (``{"1/0/stdout": 7}``: the last ``seq`` read per stream); chunks travel as
  ``[attempt, rank, stream, seq, at_ms, base64 data]`` both ways (``POST /jobs/{id}/logs``
  with ``{"chunks": [...]}``);
- ``/compute/shares``, ``/compute/history?since_ms=``, ``/compute/version``: any caller;
  ``/compute/agents``, ``POST /compute/claim``, ``/compute/schedule``,
  ``/jobs/{id}/launched`` and ``/jobs/{id}/lost``: server admins (agents run with an admin
  token);
- runners: ``POST /jobs/{id}/tasks/{rank}/started|heartbeat|finished`` with the attempt in the
  body: writer in the job's project.

A caller with no role in a job's project is told the job does not exist (404, the same message
as for an unknown id), so job ids do not leak; a role too low answers 403.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from luminary._bounds import INT32_MAX, INT64_MAX, INT64_MIN
from luminary._ids import ambiguous_prefix
from luminary.auth.models import Principal, Role
from luminary.compute import Agent, Job, JobSpec, JobState, LogChunk, Pool, Quota, TaskReport
from luminary.errors import AmbiguousIdError, InvalidArgumentError, NotFoundError, nearest
from luminary.names import check_name
from luminary.server._app import ok
from luminary.server._auth import Caller, Guard
from luminary.store import Store
from luminary.store.wire import (
    dec_log_chunk,
    enc_agent,
    enc_job,
    enc_log_chunk,
    enc_pool,
    enc_quota,
    enc_share,
    enc_signals,
    enc_usage,
    loads,
)

__all__ = ["router"]

V = TypeVar("V")

#: Numbers as the database holds them: attempts, ranks, sequence numbers and exit codes in 32
#: bits, times in 64 (a bigger number is a 400 naming the field, not a driver's overflow).
Int32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Rank = Annotated[int, Path(ge=0, le=INT32_MAX)]
Limit = Annotated[int, Query(ge=1, le=100_000)]


class SubmitIn(BaseModel):
    spec: dict[str, Any]


class CancelIn(BaseModel):
    reason: str = "cancelled"


class ClaimIn(BaseModel):
    pool: str
    agent: dict[str, Any]
    limit: Annotated[int, Field(ge=1, le=10_000)] = 64


class LaunchedIn(BaseModel):
    attempt: Int32
    executor_ref: str


class LostIn(BaseModel):
    attempt: Int32
    reason: str


class ScheduleIn(BaseModel):
    now_ms: Annotated[int, Field(ge=0, le=INT64_MAX)] | None = None


class StartedIn(BaseModel):
    attempt: Int32
    node: str


class TaskBeatIn(BaseModel):
    attempt: Int32


class FinishedIn(BaseModel):
    attempt: Int32
    report: dict[str, Any] = Field(default_factory=dict)


class LogsIn(BaseModel):
    chunks: list[list[Any]]


def router(store: Store, guard: Guard) -> APIRouter:
    r = APIRouter()

    def job_for(caller: Principal, job_id: str, role: Role) -> Job:
        """The job ``job_id`` names, once ``caller`` may act on it with ``role``."""
        return _job_for(store, guard, caller, job_id, role)

    # -- pools and quotas ------------------------------------------------------------------
    @r.get("/pools")
    def list_pools() -> Response:
        return ok([enc_pool(p) for p in store.list_pools()])

    @r.get("/pools/{name}")
    def get_pool(name: str) -> Response:
        return ok(enc_pool(store.get_pool(name)))

    @r.put("/pools/{name}")
    def put_pool(name: str, body: dict[str, Any], caller: Caller) -> Response:
        guard.check_admin(caller, "configuring pools")
        if not isinstance(body.get("enabled", True), bool):
            msg = f"enabled={body['enabled']!r} is not valid; give true or false"
            raise InvalidArgumentError(msg)
        pool = _value(Pool, {**body, "name": name}, "pool")
        return ok(enc_pool(store.put_pool(pool)))

    @r.delete("/pools/{name}")
    def remove_pool(name: str, caller: Caller) -> Response:
        guard.check_admin(caller, "removing pools")
        store.remove_pool(name)
        return Response(status_code=204)

    @r.get("/quotas")
    def list_quotas() -> Response:
        return ok([enc_quota(q) for q in store.list_quotas()])

    @r.put("/quotas/{project}")
    def set_quota(project: str, body: dict[str, Any], caller: Caller) -> Response:
        guard.check_admin(caller, "setting quotas")
        quota = _value(Quota, {**body, "project": project}, "quota")
        return ok(enc_quota(store.set_quota(quota)))

    @r.delete("/quotas/{project}")
    def remove_quota(project: str, caller: Caller) -> Response:
        guard.check_admin(caller, "removing quotas")
        store.remove_quota(project)
        return Response(status_code=204)

    # -- jobs ------------------------------------------------------------------------------
    @r.post("/jobs")
    def submit(body: SubmitIn, caller: Caller) -> Response:
        spec = JobSpec.from_dict(body.spec)
        guard.check(caller, "project", spec.project, Role.WRITER)
        for ref in spec.inputs:
            guard.check(caller, "dataset", ref, Role.READER)
        if spec.parent_run is not None:
            guard.check(caller, "run", spec.parent_run, Role.READER)
        if spec.function is not None:  # a pickled call: only one the caller uploaded or may read
            guard.check_names_blobs(caller, "the job's Python call", (spec.function,))
        return ok(enc_job(store.submit_job(spec, user=caller.user)), 201)

    @r.get("/jobs")
    def list_jobs(
        caller: Caller,
        project: str | None = None,
        state: list[str] | None = Query(None),  # noqa: B008 - FastAPI's idiom
        pool: str | None = None,
        limit: Limit = 100,
    ) -> Response:
        states = None if state is None else [_state(s) for s in state]
        if project is not None:
            guard.check(caller, "project", project, Role.READER)
            jobs = store.list_jobs(project, states, pool=pool, limit=limit)
        elif (visible := guard.visible(caller)) is None:
            jobs = store.list_jobs(None, states, pool=pool, limit=limit)
        else:  # one query per project the caller sees, merged newest first
            found = [
                j
                for p in sorted(visible)
                for j in store.list_jobs(p, states, pool=pool, limit=limit)
            ]
            found.sort(key=lambda j: (j.submitted_ms, j.id), reverse=True)
            jobs = found[:limit]
        return ok([enc_job(j) for j in jobs])

    @r.get("/jobs/{job_id}")
    def get_job(job_id: str, caller: Caller) -> Response:
        return ok(enc_job(job_for(caller, job_id, Role.READER)))

    @r.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str, body: CancelIn, caller: Caller) -> Response:
        job = job_for(caller, job_id, Role.WRITER)
        return ok(enc_job(store.cancel_job(job.id, body.reason)))

    @r.get("/jobs/{job_id}/why")
    def why(job_id: str, caller: Caller) -> Response:
        job = job_for(caller, job_id, Role.READER)
        return ok(store.explain_job(job.id))

    @r.get("/jobs/{job_id}/logs")
    def read_logs(
        job_id: str, caller: Caller, after: str | None = None, limit: Limit = 1000
    ) -> Response:
        job = job_for(caller, job_id, Role.READER)
        chunks = store.read_job_logs(job.id, _cursor(after), limit=limit)
        return ok([enc_log_chunk(c) for c in chunks])

    @r.post("/jobs/{job_id}/logs")
    def append_logs(job_id: str, body: LogsIn, caller: Caller) -> Response:
        job_for(caller, job_id, Role.WRITER)
        store.append_job_logs(job_id, [_chunk(c) for c in body.chunks])
        return Response(status_code=204)

    # -- the queue as a whole ----------------------------------------------------------------
    @r.get("/compute/shares")
    def shares() -> Response:
        return ok([enc_share(s) for s in store.compute_shares()])

    @r.get("/compute/history")
    def history(since_ms: Annotated[int, Query(ge=INT64_MIN, le=INT64_MAX)]) -> Response:
        return ok([enc_usage(s) for s in store.compute_history(since_ms)])

    @r.get("/compute/version")
    def version() -> Response:
        return ok({"version": store.queue_version()})

    # -- agents ----------------------------------------------------------------------------
    @r.get("/compute/agents")
    def agents(caller: Caller) -> Response:
        guard.check_admin(caller, "listing agents")
        return ok([enc_agent(a) for a in store.list_agents()])

    @r.post("/compute/claim")
    def claim(body: ClaimIn, caller: Caller) -> Response:
        guard.check_admin(caller, "claiming jobs (agents run with a server admin's token)")
        check_name("pool", body.pool)
        agent = _agent(body.agent)
        return ok([enc_job(j) for j in store.claim_jobs(body.pool, agent, limit=body.limit)])

    @r.post("/compute/schedule")
    def schedule(body: ScheduleIn, caller: Caller) -> Response:
        guard.check_admin(caller, "running the scheduler")
        return ok({"placed": store.schedule(body.now_ms)})

    @r.post("/jobs/{job_id}/launched")
    def launched(job_id: str, body: LaunchedIn, caller: Caller) -> Response:
        guard.check_admin(caller, "reporting a launch (agents run with a server admin's token)")
        store.job_launched(job_id, body.attempt, body.executor_ref)
        return Response(status_code=204)

    @r.post("/jobs/{job_id}/lost")
    def lost(job_id: str, body: LostIn, caller: Caller) -> Response:
        guard.check_admin(caller, "reporting a lost job (agents run with a server admin's token)")
        return ok(enc_job(store.job_lost(job_id, body.attempt, body.reason)))

    # -- runners ---------------------------------------------------------------------------
    @r.post("/jobs/{job_id}/tasks/{rank}/started")
    def started(job_id: str, rank: Rank, body: StartedIn, caller: Caller) -> Response:
        job_for(caller, job_id, Role.WRITER)
        return ok(enc_job(store.task_started(job_id, body.attempt, rank, body.node)))

    @r.post("/jobs/{job_id}/tasks/{rank}/heartbeat")
    def heartbeat(job_id: str, rank: Rank, body: TaskBeatIn, caller: Caller) -> Response:
        job_for(caller, job_id, Role.WRITER)
        return ok(enc_signals(store.task_heartbeat(job_id, body.attempt, rank)))

    @r.post("/jobs/{job_id}/tasks/{rank}/finished")
    def finished(job_id: str, rank: Rank, body: FinishedIn, caller: Caller) -> Response:
        job_for(caller, job_id, Role.WRITER)
        report = _report(body.report)
        return ok(enc_job(store.task_finished(job_id, body.attempt, rank, report)))

    return r


def _job_for(store: Store, guard: Guard, caller: Principal, job_id: str, role: Role) -> Job:
    """The job by id, prefix or run id, if ``caller`` holds ``role`` in its project: a job
    in a project they have no role in answers like an unknown one (404), and an ambiguous
    prefix names only the matches they may see."""
    if caller.is_admin:
        return store.get_job(job_id)
    hidden = f"no job {job_id!r}, or you have no role in its project; see luminary jobs list"
    try:
        job = store.get_job(job_id)
    except AmbiguousIdError as exc:
        visible = guard.visible(caller) or set()
        seen = [(i, p) for i, p in exc.candidates if p in visible]
        if not seen:
            raise NotFoundError(hidden) from None
        error = ambiguous_prefix("job", job_id, seen)
        raise error from None
    except NotFoundError:
        raise NotFoundError(hidden) from None
    try:
        guard.check(caller, "project", job.project, role)
    except NotFoundError:
        raise NotFoundError(hidden) from None
    return job


def _value(cls: type[V], data: dict[str, Any], what: str) -> V:
    """A value from a request body: unknown keys are refused by name, the value checks the rest."""
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in data:
        if key not in known:
            msg = f"{key!r} is not a field of a {what}; {nearest(key, known, 'field')}"
            raise InvalidArgumentError(msg)
    try:
        return cls(**data)
    except TypeError as exc:
        msg = f"the {what} is not valid: {exc}"
        raise InvalidArgumentError(msg) from None


def _agent(data: dict[str, Any]) -> Agent:
    agent = _value(Agent, data, "agent")
    texts = (agent.id, agent.pool, agent.host)
    numbers = (agent.pid, agent.started_ms, agent.heartbeat_ms)
    good = (
        all(isinstance(x, str) for x in texts)
        and 0 < len(agent.id) <= 64
        and all(type(x) is int for x in numbers)
        and 0 <= agent.pid <= INT32_MAX
        and all(0 <= x <= INT64_MAX for x in numbers[1:])
    )
    if not good:
        msg = (
            f"agent {str(data)[:200]} is not valid; give id (1 to 64 characters), pool and "
            "host as text, pid, started_ms and heartbeat_ms as integers from 0"
        )
        raise InvalidArgumentError(msg)
    return agent


def _report(data: dict[str, Any]) -> TaskReport:
    report = _value(TaskReport, data, "task report")
    good = (
        (report.exit_code is None or _fits(report.exit_code, INT32_MAX))
        and isinstance(report.reason, str)
        and (report.cpu_s is None or type(report.cpu_s) in (int, float))
    )
    if not good:
        msg = (
            f"task report {str(data)[:200]} is not valid; give exit_code (an integer or null), "
            "reason (text) and cpu_s (seconds or null)"
        )
        raise InvalidArgumentError(msg)
    return report


def _chunk(item: list[Any]) -> LogChunk:
    ints = (0, 1, 3, 4)
    if (
        len(item) != 6
        or not isinstance(item[2], str)
        or any(type(item[i]) is not int for i in ints)
    ):
        msg = (
            f"log chunk {str(item)[:100]} is not valid; send "
            "[attempt, rank, stream, seq, at_ms, base64 data]"
        )
        raise InvalidArgumentError(msg)
    return dec_log_chunk(item)


def _fits(value: object, high: int) -> bool:
    return type(value) is int and -high - 1 <= value <= high


def _state(text: str) -> JobState:
    try:
        return JobState(text)
    except ValueError:
        valid = ", ".join(s.value for s in JobState)
        msg = f"state={text!r} is not valid; states are {valid}"
        raise InvalidArgumentError(msg) from None


def _cursor(after: str | None) -> dict[str, int] | None:
    """The ``after`` query parameter: JSON text of ``{stream key: last seq read}``."""
    if after is None or not after.strip():
        return None
    try:
        data = loads(after)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not all(type(v) is int for v in data.values()):
        msg = (
            f"after={after[:200]!r} is not valid; give JSON mapping each stream "
            '("attempt/rank/stream") to the last seq read, e.g. {"1/0/stdout": 7}'
        )
        raise InvalidArgumentError(msg)
    return {str(k): int(v) for k, v in data.items()}
