"""Reservations and reclaim for the scheduler: which nodes wait for a job that does not fit,
and which borrowers to preempt when a project asks for its nominal quota back.

No I/O, not thread-safe: functions over a :class:`~luminary.compute._policy.Scheduler`, called
from its :meth:`~luminary.compute._policy.Scheduler.step` on the thread that owns it. The
policy they carry out is stated in ``_policy``'s docstring (Starvation, Quotas).

A reservation is made once and kept until its job starts or leaves the queue; every change to
the reservations tells the scheduler (``reservations_changed``), so what it remembered about
jobs that could not start is looked at again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from luminary.compute._packing import UNITS

if TYPE_CHECKING:
    from luminary.compute._policy import Entry, Preemption, Scheduler, Start

__all__ = [
    "BACKFILL_SCAN",
    "RESERVE_CANDIDATES",
    "Reservation",
    "backfill",
    "blind",
    "reclaim",
    "reserve",
]

_EPS = 1e-9
#: Jobs of one shape looked at for backfill behind a head that only a reservation blocks.
BACKFILL_SCAN = (
    32  #: Nodes beyond those it needs on which a reservation's start is worked out exactly.
)
RESERVE_CANDIDATES = 2


@dataclass(slots=True)
class Reservation:
    """Nodes of one pool kept for ``job_id`` from ``start_ms`` (``inf``: not known)."""

    job_id: str
    nodes: frozenset[int]
    start_ms: float
    preempting: frozenset[str] = field(default_factory=frozenset)


def _start_on(s: Scheduler, name: str, i: int, wanted: int, now_ms: int) -> float:
    """A cheap estimate of when node ``i`` has ``wanted`` units free (ignoring how they lie
    on devices), from the expected ends of the jobs on it."""
    free = sum(s.states[name].free[i])
    if free >= wanted:
        return float(now_ms)
    for end, units, _ in s.ends.get((name, i), ()):
        free += units
        if free >= wanted:
            return end
    return math.inf


def reserve(s: Scheduler, entry: Entry, now_ms: int) -> None:
    """Reserve, in one pool without a reservation, the nodes that free up soonest for
    ``entry`` (the first job in order that finds no room)."""
    if any(res.job_id == entry.id for res in s.reservations.values()):
        return
    best: tuple[float, str, frozenset[int]] | None = None
    for name, need in entry.needs.items():
        state = s.states[name]
        if name in s.reservations or not state.pool.enabled:
            continue
        # A cheap estimate first, then the exact search on the few most hopeful nodes only.
        wanted = need.whole * UNITS + need.units
        guesses = sorted(
            (_start_on(s, name, i, wanted, now_ms), -sum(state.free[i]), i)
            for i in range(state.pool.nodes)
        )
        ready = []
        for _, spare, i in guesses[: need.nodes + RESERVE_CANDIDATES]:
            holds = [(end, s.active[j].held) for end, _, j in s.ends.get((name, i), ())]
            exact = state.node_ready(i, need, holds)  # type: ignore[arg-type]
            ready.append((math.inf if exact is None else max(exact, now_ms), spare, i))
        ready.sort()
        chosen = ready[: need.nodes]
        start = chosen[-1][0] if chosen else math.inf
        if len(chosen) == need.nodes and (best is None or start < best[0]):
            best = (start, name, frozenset(i for _, _, i in chosen))
    if best is not None:
        s.reservations[best[1]] = Reservation(entry.id, best[2], best[0])


def reclaim(s: Scheduler, entry: Entry, now_ms: int) -> list[Preemption]:
    """Preempt preemptible borrowers of the cohort when ``entry`` is within its nominal
    quota but finds no room; the freed nodes are reserved for it."""
    from luminary.compute._policy import Preemption

    project = entry.project
    quota = s.quotas.get(project)
    if quota is None or quota.cohort is None:
        return []
    use, nominal = s.in_use.get(project, (0.0, 0.0)), s.nominal(project)
    k = 0 if entry.gpus else 1  # GPU jobs reclaim GPUs; CPU-only jobs reclaim CPUs
    if use[k] + (entry.gpus, entry.cpus)[k] > nominal[k] + _EPS:
        return []
    if any(r.job_id == entry.id and r.preempting for r in s.reservations.values()):
        return []
    victims = sorted(
        (
            e
            for e in s.active.values()
            if e.id not in s.preempting
            and e.job.spec.preemptible
            and e.project != project
            and e.project in s.quotas
            and s.quotas[e.project].cohort == quota.cohort
        ),
        key=lambda e: (e.job.spec.priority, -e.started_ms, e.id),
    )
    for name, need in entry.needs.items():
        state = s.states[name]
        borrowed = {
            p: s.in_use.get(p, (0.0, 0.0))[k] - s.nominal(p)[k]
            for p in {v.project for v in victims}
        }
        released: list[Entry] = []
        chosen = None
        for victim in victims:
            if victim.pool != name or borrowed[victim.project] <= _EPS:
                continue
            assert victim.held is not None
            state.release(victim.held)
            released.append(victim)
            borrowed[victim.project] -= (victim.gpus, victim.cpus)[k]
            chosen = state.place(need, s.blocked_nodes(name, entry, now_ms))
            if chosen is not None:
                break
        for victim in released:
            assert victim.held is not None
            state.hold(victim.held)
        if chosen is None:
            continue
        ids = frozenset(v.id for v in released)
        s.preempting |= ids
        s.reservations[name] = Reservation(entry.id, frozenset(i for i, _ in chosen), math.inf, ids)
        s.reservations_changed()
        return [
            Preemption(
                v.id,
                f"project {project} reclaims its nominal quota ({nominal[0]:g} GPUs, "
                f"{use[0]:g} in use, {entry.gpus:g} asked); project {v.project} borrows "
                f"{s.in_use[v.project][0] - s.nominal(v.project)[0]:g} GPUs "
                f"beyond its nominal {s.nominal(v.project)[0]:g}",
            )
            for v in released
        ]
    return []


def backfill(
    s: Scheduler, jobs: list[Entry], now_ms: int, limit: int | None, started: int
) -> tuple[list[Start], bool]:
    """Start jobs of one shape (``jobs``, its queue in order) whose time limits end before the
    reservation in the way; also whether every candidate was looked at (``limit`` may stop it
    first)."""
    out: list[Start] = []
    # Jobs of one shape may use the same pools: the longest time limit that ends in time.
    room_s = max(
        (res.start_ms - now_ms) / 1000 if (res := s.reservations.get(name)) else math.inf
        for name in jobs[0].needs
    )
    if not 0 < room_s < math.inf:
        return out, True  # the reservation starts at an unknown time: nothing ends before
    for entry in list(jobs[1 : BACKFILL_SCAN + 1]):
        if limit is not None and started + len(out) >= limit:
            return out, False
        limit_s = entry.job.spec.time_limit_s
        if limit_s is None or limit_s > room_s:
            continue  # would still run when the reservation starts
        start = s.try_place(entry, now_ms)
        if start is None:
            break  # the same shape with nothing in its way does not fit either
        out.append(start)
    return out, True


def blind(s: Scheduler, project: str, shape: tuple[object, ...], now_ms: int) -> bool:
    """Whether no job a pass looks at in one list (the head and the backfill's) may use the
    nodes of its pools' reservations: none ends before they start, none holds one."""
    jobs = s.by_project[project][shape]
    kept = [r for n in jobs[0].needs if (r := s.reservations.get(n)) is not None]
    if not kept:
        return False  # nothing to be blind to
    latest = max(r.start_ms for r in kept) - now_ms
    window = jobs[: BACKFILL_SCAN + 1]
    if any(s.queued.get(r.job_id) in window for r in kept):
        return False
    return all(e.limit_ms is None or e.limit_ms > latest for e in window)
