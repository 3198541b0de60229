"""The scheduler's state in words and numbers: why a job waits, who holds what share, and why a
spec can never run.

No I/O; reads a :class:`~luminary.compute._policy.Scheduler` without changing what it decides
(it only moves usage clocks forward, as a pass would). Not thread-safe, like the scheduler.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from luminary.compute.models import JobSpec, Pool
from luminary.errors import nearest

if TYPE_CHECKING:
    from luminary.compute._packing import Need, PoolState
    from luminary.compute._policy import Entry, Scheduler

__all__ = ["ProjectShare", "explain", "never_fits", "shares"]


@dataclass(frozen=True)
class ProjectShare:
    """One project's place in the fair share (for ``luminary jobs shares`` and the web UI).

    ``entitled`` is its weight over the weights of all projects shown; ``usage_gpu_h`` its
    decayed usage; ``borrowed_*`` what it holds beyond its nominal quota (0 when within it).
    """

    project: str
    weight: float
    entitled: float
    usage_gpu_h: float
    gpus_in_use: float
    cpus_in_use: float
    nominal_gpus: float
    nominal_cpus: float
    borrowed_gpus: float
    borrowed_cpus: float
    queued: int
    cohort: str | None = None


def never_fits(spec: JobSpec, pools: Sequence[Pool]) -> str | None:
    """Why no pool could ever run ``spec`` (each pool's numbers), or None if one could.

    Disabled pools count: they may be enabled again, and a job for them waits."""
    if not pools:
        return "no pools are configured"
    candidates = list(pools)
    if spec.pool is not None:
        candidates = [p for p in pools if p.name == spec.pool]
        if not candidates:
            hint = nearest(spec.pool, [p.name for p in pools], "pool")
            return f"pool {spec.pool!r} does not exist; {hint}"
    reasons = []
    for pool in candidates:
        why = pool.fits(spec)
        if why is None:
            return None
        reasons.append(why)
    return "no pool can ever run it: " + "; ".join(reasons)


def _when(ms: float) -> str:
    minutes = ms / 60_000
    return f"~{minutes:.0f} min" if minutes < 90 else f"~{minutes / 60:.1f} h"


def shares(s: Scheduler, now_ms: int) -> list[ProjectShare]:
    usage = s.usage(now_ms)
    projects = sorted(set(usage) | set(s.quotas))
    total = sum(s.weight(p) for p in projects) or 1.0
    queued: dict[str, int] = {}
    for entry in s.queued.values():
        queued[entry.project] = queued.get(entry.project, 0) + 1
    out = []
    for p in projects:
        use = s.in_use.get(p, [0.0, 0.0])
        nominal = s.nominal(p)
        quota = s.quotas.get(p)
        out.append(
            ProjectShare(
                project=p,
                weight=s.weight(p),
                entitled=s.weight(p) / total,
                usage_gpu_h=usage.get(p, 0.0),
                gpus_in_use=use[0],
                cpus_in_use=use[1],
                nominal_gpus=nominal[0],
                nominal_cpus=nominal[1],
                borrowed_gpus=max(0.0, use[0] - nominal[0]),
                borrowed_cpus=max(0.0, use[1] - nominal[1]),
                queued=queued.get(p, 0),
                cohort=quota.cohort if quota else None,
            )
        )
    return out


def _ready_in(s: Scheduler, name: str, need: Need, now_ms: int) -> float | None:
    """Milliseconds until ``need`` could fit in pool ``name`` from known ends, None if unknown."""
    state = s.states[name]
    ready = []
    for i in range(state.pool.nodes):
        holds = [(s.active[j].end_ms, s.active[j].held) for j in s.on_node.get((name, i), ())]
        at = state.node_ready(i, need, holds)  # type: ignore[arg-type]
        ready.append(math.inf if at is None else max(0.0, at - now_ms))
    ready.sort()
    at_ms = ready[need.nodes - 1] if len(ready) >= need.nodes else math.inf
    return None if math.isinf(at_ms) else at_ms


def _no_room(state: PoolState, need: Need) -> str:
    name = state.pool.name
    if need.nodes > 1:
        count = sum(1 for i in range(state.pool.nodes) if state._node_fit(i, need) is not None)
        return (
            f"no pool has {need.gpus * need.nodes:g} GPUs free on {need.nodes} nodes at once "
            f"(gang): pool {name!r} has {count} node(s) with {need.describe().split(' on')[0]} "
            "free"
        )
    if need.whole:
        return (
            f"no node of pool {name!r} has {need.whole} GPUs free "
            f"(most free on one node: {max(state.whole_free, default=0)})"
        )
    if need.units:
        largest = max((max(row) for row in state.free if row), default=0) / 10_000
        return (
            f"no device in pool {name!r} has {need.gpus:g} GPU free "
            f"(largest free share of one device: {largest:g})"
        )
    return (
        f"no node of pool {name!r} has {need.mcpu / 1000:g} CPUs free "
        f"(most on one node: {max(state.mcpu, default=0) / 1000:g})"
    )


def _ahead(s: Scheduler, entry: Entry, now_ms: int) -> list[str]:
    out = []
    project = entry.project
    usage = s.usage(now_ms)
    waiting = set(s.by_project) | {p for p, use in s.in_use.items() if use[0] or use[1]}
    total_w = sum(s.weight(p) for p in waiting | {project})
    total_u = sum(usage.get(p, 0.0) for p in waiting | {project})
    fair = total_u * s.weight(project) / total_w
    mine = usage.get(project, 0.0)
    side = "over" if mine > fair else "under"
    half_life = f"half-life {s.usage_book.half_life_s / 3600:g} h"
    if total_u < 0.05:
        out.append(
            f"project {project} has weight {s.weight(project):g} of {total_w:g}; no project "
            f"waiting or running has used the GPUs lately (decayed usage, {half_life})"
        )
    else:
        out.append(
            f"project {project} has used {mine:.1f} GPU-h (decayed, {half_life}), "
            f"{abs(mine - fair):.1f} GPU-h {side} its share of {fair:.1f} GPU-h "
            f"(weight {s.weight(project):g} of {total_w:g})"
        )
    key = usage.get(project, 0.0) / s.weight(project)
    before = sorted(
        (usage.get(p, 0.0) / s.weight(p), p)
        for p in s.by_project
        if p != project and (usage.get(p, 0.0) / s.weight(p), p) < (key, project)
    )
    if before:
        names = ", ".join(f"{p} ({k:.1f} GPU-h per weight)" for k, p in before)
        out.append(
            f"{len(before)} project(s) go first in fair-share order: {names}; "
            f"{project} has {key:.1f} GPU-h per weight"
        )
    higher = earlier = 0
    for jobs in s.by_project.get(project, {}).values():
        for other in jobs:
            if other.order[0] < entry.order[0]:
                higher += 1
            elif other.order[0] == entry.order[0] and other.order < entry.order:
                earlier += 1
    if higher:
        out.append(f"{higher} jobs of higher priority are ahead of it in project {project}")
    if earlier:
        out.append(f"{earlier} earlier jobs of the same priority are ahead of it in {project}")
    return out


def explain(s: Scheduler, job_id: str, now_ms: int) -> list[str]:
    if job_id in s.active:
        entry = s.active[job_id]
        return [
            f"job {job_id} is not waiting: it holds resources in pool {entry.pool} since "
            f"{_when(now_ms - entry.started_ms)} ago"
        ]
    queued = s.queued.get(job_id)
    if queued is None:
        return [f"job {job_id} is not in the queue (unknown, finished or not submitted yet)"]
    entry = queued
    spec = entry.job.spec
    out = []
    if not entry.needs:
        out.append(never_fits(spec, list(s.pools.values())) or "no pool can run it")
    out.extend(_ahead(s, entry, now_ms))
    quota = s.quota_block(entry)
    if quota:
        out.append(quota)
    for name, need in entry.needs.items():
        state = s.states[name]
        if not state.pool.enabled:
            out.append(f"pool {name!r} is disabled and takes no new jobs")
            continue
        res = s.reservations.get(name)
        if res is not None and res.job_id == job_id:
            if res.preempting:
                left = len(res.preempting & set(s.active))
                out.append(f"it waits in pool {name!r} for {left} preempted job(s) to stop")
            else:
                nodes = ", ".join(state.names[i] for i in sorted(res.nodes))
                start = "when known" if math.isinf(res.start_ms) else _when(res.start_ms - now_ms)
                out.append(f"it holds a reservation on {nodes} (pool {name!r}) from {start}")
        blocked = s.blocked_nodes(name, entry, now_ms)
        if state.may_fit(need) and state.place(need, blocked) is not None:
            if quota:
                out.append(f"it would fit in pool {name!r} now, but for its project's quota")
            else:
                out.append(f"it fits in pool {name!r} now and starts at the next pass")
            continue
        if not (blocked and state.place(need) is not None):
            out.append(_no_room(state, need))
        if blocked and res is not None:
            nodes = ", ".join(state.names[i] for i in sorted(blocked))
            when = "an unknown time" if math.isinf(res.start_ms) else _when(res.start_ms - now_ms)
            out.append(
                f"nodes {nodes} are reserved for job {res.job_id} from {when}; this job may use "
                "them only if its time limit ends before then"
            )
        ready = _ready_in(s, name, need, now_ms)
        slot = need.describe()
        if ready == 0:
            continue
        if ready is None:
            out.append(
                f"the jobs holding pool {name!r} have no time limit, so when a {slot} slot "
                "frees is not known"
            )
        else:
            out.append(f"a {slot} slot frees in {_when(ready)} in pool {name!r} (time limits)")
    return out
