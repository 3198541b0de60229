"""The queue pages: the pools, the fair share, each project's use of the GPUs against its share
over time, and the jobs; a job's page says why it waits, where it runs and what it printed last.

Access: pools, shares and the usage history are shown to anyone signed in (as ``luminary jobs
shares`` and ``/api/v1/compute/shares`` are); jobs only from the projects the caller has a role
in, and a job of another project answers like an unknown one (404). Agents' hosts are shown to
server admins only (the REST API lists agents to admins only); others see how many serve a
pool. Each page reads the store once per request, in FastAPI's thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from luminary._clock import from_ms, now_ms
from luminary.auth.models import Principal, Role
from luminary.compute import AGENT_STALE_MS, Job, JobState, LogChunk, Pool, UsageSample
from luminary.errors import InvalidArgumentError
from luminary.server._jobs import _job_for
from luminary.server.ui._web import Web, pages
from luminary.store import Store

__all__ = ["JOB_LIMIT", "LOG_TAIL_BYTES", "log_tail", "router", "usage_plot"]

#: Jobs listed on the queue page (newest first).
JOB_LIMIT = 200
#: The most output a job's page shows (its end).
LOG_TAIL_BYTES = 64 * 1024
#: Pages of log chunks read for the tail; a longer log says the tail shown is not its end.
_LOG_PAGES = 20
#: The usage plot has at most this many points per series (the largest value per bucket).
PLOT_POINTS = 720


def router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    store = web.store

    @r.get("/queue")
    @pages(web)
    def queue(
        request: Request,
        project: str = "",
        state: str = "",
        hours: Annotated[int, Query(ge=1, le=720)] = 24,
    ) -> Response:
        principal = web.principal(request)
        states = _states(state)
        jobs = _jobs(web, principal, project, states)
        visible = web.guard.visible(principal)
        pools = store.list_pools()
        shares = store.compute_shares()
        capacity = [p for p in pools if p.enabled]
        gpus = sum(p.total_gpus for p in capacity)
        cpus = sum(p.total_cpus for p in capacity)
        unit, total = ("GPUs", float(gpus)) if gpus else ("CPUs", cpus)
        since = now_ms() - hours * 3_600_000
        plot = usage_plot(store.compute_history(since), unit, total, PLOT_POINTS)
        projects = sorted(
            {s.project for s in shares if visible is None or s.project in visible}
            | ({j.project for j in jobs})
            | (set() if visible is None else visible)
        )
        return web.render(
            request,
            "queue.html",
            pools=pools,
            agents=_agents(store, pools),
            admin=principal.is_admin,
            shares=shares,
            quotas={q.project: q for q in store.list_quotas()},
            plot=plot,
            hours=hours,
            jobs=jobs,
            project=project,
            state=state,
            projects=projects,
            states=[s.value for s in JobState],
            limit=JOB_LIMIT,
            elapsed=_elapsed,
            when=_when,
        )

    @r.get("/queue/jobs/{job_id}")
    @pages(web)
    def job_page(request: Request, job_id: str) -> Response:
        principal = web.principal(request)
        job = _job_for(store, web.guard, principal, job_id, Role.READER)
        text, cut = log_tail(store, job.id, LOG_TAIL_BYTES)
        return web.render(
            request,
            "queue_job.html",
            job=job,
            why=store.explain_job(job.id),
            log=text,
            cut=cut,
            elapsed=_elapsed,
            when=_when,
        )

    @r.get("/queue/jobs/{job_id}/log")
    @pages(web)
    def job_log(request: Request, job_id: str) -> Response:
        """The log tail alone, for the job page's live refresh (htmx)."""
        principal = web.principal(request)
        job = _job_for(store, web.guard, principal, job_id, Role.READER)
        text, cut = log_tail(store, job.id, LOG_TAIL_BYTES)
        return web.render(request, "queue_log.html", job=job, log=text, cut=cut)

    return r


def _states(state: str) -> list[JobState] | None:
    if not state:
        return None
    try:
        return [JobState(state)]
    except ValueError:
        valid = ", ".join(s.value for s in JobState)
        msg = f"state {state!r} is not a job state; valid: {valid}"
        raise InvalidArgumentError(msg) from None


def _jobs(web: Web, principal: Principal, project: str, states: list[JobState] | None) -> list[Job]:
    """The newest jobs the caller may read: of ``project`` when given, else of every project
    they have a role in (one query per project, merged newest first)."""
    store = web.store
    if project:
        web.check(principal, "project", project)
        return store.list_jobs(project, states, limit=JOB_LIMIT)
    visible = web.guard.visible(principal)
    if visible is None:
        return store.list_jobs(None, states, limit=JOB_LIMIT)
    found = [j for p in sorted(visible) for j in store.list_jobs(p, states, limit=JOB_LIMIT)]
    found.sort(key=lambda j: (j.submitted_ms, j.id), reverse=True)
    return found[:JOB_LIMIT]


def _agents(store: Store, pools: Sequence[Pool]) -> dict[str, list[str]]:
    """Each pool's live agents as ``host:pid``."""
    cutoff = now_ms() - AGENT_STALE_MS
    out: dict[str, list[str]] = {p.name: [] for p in pools}
    for a in store.list_agents():
        if a.heartbeat_ms >= cutoff and a.pool in out:
            out[a.pool].append(f"{a.host}:{a.pid}")
    return out


def usage_plot(
    samples: Sequence[UsageSample], unit: str, capacity: float, points: int
) -> dict[str, Any]:
    """The usage-versus-share chart's data, without I/O: one x axis (seconds since the epoch),
    per project the ``unit`` (GPUs, or CPUs for CPU-only pools) it held and its entitled share
    of ``capacity``. More than ``points`` sample times are grouped into ``points`` buckets
    (the largest use in each, the last share), so short peaks stay visible."""
    times = sorted({s.at_ms for s in samples})
    projects = sorted({s.project for s in samples})
    if len(times) > points > 0:
        first, span = times[0], times[-1] - times[0] + 1
        bucket_of = {t: (t - first) * points // span for t in times}
        starts: dict[int, int] = {}
        for t in times:
            starts.setdefault(bucket_of[t], t)
        xs = sorted(starts.values())
        position = {start: i for i, start in enumerate(xs)}
        index = {t: position[starts[bucket_of[t]]] for t in times}
    else:
        xs = times
        index = {t: i for i, t in enumerate(times)}
    used: dict[str, list[float | None]] = {p: [None] * len(xs) for p in projects}
    share: dict[str, list[float | None]] = {p: [None] * len(xs) for p in projects}
    for s in samples:
        i = index[s.at_ms]
        held = s.gpus if unit == "GPUs" else s.cpus
        before = used[s.project][i]
        used[s.project][i] = held if before is None else max(before, held)
        share[s.project][i] = round(s.share * capacity, 4)
    return {
        "unit": unit,
        "capacity": capacity,
        "x": [t / 1000 for t in xs],
        "projects": [{"name": p, "used": used[p], "share": share[p]} for p in projects],
        "samples": len(samples),
    }


def log_tail(store: Store, job_id: str, max_bytes: int) -> tuple[str, bool]:
    """The last ``max_bytes`` of a job's output (all attempts, ranks and streams in the order
    written), and whether it is not the whole output (cut at the front, or more than
    :data:`_LOG_PAGES` pages, in which case the text shown stops short of the end)."""
    cursor: dict[str, int] = {}
    tail = bytearray()
    cut = False
    for _ in range(_LOG_PAGES):
        chunks: list[LogChunk] = store.read_job_logs(job_id, cursor, limit=1000)
        if not chunks:
            break
        for chunk in chunks:
            cursor[chunk.key] = chunk.seq
            tail += chunk.data
        if len(tail) > max_bytes:
            del tail[: len(tail) - max_bytes]
            cut = True
        if len(chunks) < 1000:
            break
    else:
        cut = True
    return tail.decode("utf-8", "replace"), cut


def _when(ms: int | None) -> str:
    when = from_ms(ms)
    return "" if when is None else when.strftime("%Y-%m-%d %H:%M:%S")


def _elapsed(job: Job) -> str:
    if job.started_ms is None:
        return ""
    seconds = ((job.ended_ms or now_ms()) - job.started_ms) / 1000
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
