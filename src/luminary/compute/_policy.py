"""The scheduling policy: which queued jobs start now, where, and which borrowers to preempt.

Pure and in memory: no I/O, no clock (time comes in as ``now_ms``), not thread-safe (one
thread owns a :class:`Scheduler`). The SQL queue rebuilds one from its rows each pass
(``set_usage``, ``add_active``, ``enqueue``, then ``step``); the simulation benchmark keeps one
and drives it event by event. ``_packing`` places jobs on devices, ``_fairshare`` keeps decayed
usage, ``_explain`` turns the state into sentences.

Order. Projects go in fair-share order, lowest decayed usage per weight first (usage in
GPU-hours, half-life :data:`DEFAULT_HALF_LIFE_S`); within a project higher ``priority`` first,
then earlier ``submitted_ms``. A project without a :class:`Quota` row has weight 1.

Quotas. A project's nominal ``gpus``/``cpus`` are guaranteed: idle nominal quota of a project
is kept free for it, except from projects of its ``cohort``, which may borrow it (up to their
``borrow_gpus``/``borrow_cpus`` beyond their own nominal, where set). Capacity that is nobody's
nominal quota is open to every project. When a project asks for work within its nominal quota
and the room is held by borrowers of its cohort, preemptible borrowing jobs are preempted,
lowest priority and most recently started first, only as many as needed; non-preemptible
borrowers are never preempted. A job's GPU amount for quotas is its GPUs times nodes (a
device-memory request counts as its fraction of the largest device of the pools it may use).

Starvation. The first job in order that passes its quota but finds no room gets a reservation
in one pool (at most one per pool): the nodes that free up for it soonest, judged from the
active jobs' ``started_ms + time_limit_s``. Other jobs may start on reserved nodes only when
their own time limit ends before the reservation's start (EASY backfill); jobs without a time
limit never backfill there. The reservation lasts until its job starts or leaves the queue.

Decision cost. Queued jobs are kept per project in lists sorted by order, one per *shape*
(pool pin, resources, nodes); a shape that found no room is not tried again in the same pass
(room only shrinks within a pass), so a pass costs about the number of shapes, not of jobs.
Where only a reservation stands in a shape's way, the next :data:`BACKFILL_SCAN` jobs of that
shape are looked at for one whose time limit ends before the reservation.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from luminary.compute._explain import ProjectShare, explain, never_fits, shares
from luminary.compute._fairshare import DEFAULT_HALF_LIFE_S, Usage, charge, cpus_per_gpu
from luminary.compute._packing import UNITS, Held, Need, PoolState, need_for
from luminary.compute.models import Job, JobState, Placement, Pool, Quota
from luminary.errors import InvalidArgumentError, InvalidStateError, NotFoundError, nearest

__all__ = [
    "DEFAULT_HALF_LIFE_S",
    "Decision",
    "Preemption",
    "ProjectShare",
    "Scheduler",
    "Start",
    "never_fits",
]

_EPS = 1e-9
#: Jobs of one shape looked at for backfill behind a head that only a reservation blocks.
BACKFILL_SCAN = 32
#: Nodes beyond those it needs on which a reservation's start is worked out exactly.
RESERVE_CANDIDATES = 2


@dataclass(frozen=True)
class Start:
    """Start ``job_id`` in ``pool`` at ``placement`` (one entry per node, rank order)."""

    job_id: str
    pool: str
    placement: Placement


@dataclass(frozen=True)
class Preemption:
    """Stop ``job_id``; ``reason`` names the project that reclaims and why."""

    job_id: str
    reason: str


@dataclass(frozen=True)
class Decision:
    starts: tuple[Start, ...] = ()
    preemptions: tuple[Preemption, ...] = ()


@dataclass(slots=True, eq=False)
class Entry:
    """The scheduler's record of one job, queued or active."""

    job: Job
    order: tuple[int, int, int]
    shape: tuple[object, ...]
    gpus: float
    cpus: float
    needs: dict[str, Need]
    pool: str | None = None
    held: Held | None = None
    rate: float = 0.0
    started_ms: int = 0
    end_ms: float = math.inf

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def project(self) -> str:
        return self.job.spec.project


def _order(entry: Entry) -> tuple[int, int, int]:
    return entry.order


@dataclass(slots=True)
class Reservation:
    """Nodes of one pool kept for ``job_id`` from ``start_ms`` (``inf``: not known)."""

    job_id: str
    nodes: frozenset[int]
    start_ms: float
    preempting: frozenset[str] = field(default_factory=frozenset)


class Scheduler:
    """In-memory queue and cluster state; see the module docstring for the policy.

    Raises :class:`NotFoundError` for unknown job ids, :class:`InvalidStateError` for a job
    enqueued twice or in the wrong state, :class:`InvalidArgumentError` for a placement that
    names nodes or devices the pool lacks.
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        quotas: Sequence[Quota] = (),
        *,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
    ) -> None:
        self.pools = {p.name: p for p in pools}
        self.states = {p.name: PoolState(p) for p in pools}
        self.quotas = {q.project: q for q in quotas}
        self.ratio = cpus_per_gpu(pools)
        self.usage_book = Usage(half_life_s)
        self.queued: dict[str, Entry] = {}
        self.active: dict[str, Entry] = {}
        self.by_project: dict[str, dict[tuple[object, ...], list[Entry]]] = {}
        self.on_node: dict[tuple[str, int], set[str]] = {}
        self.in_use: dict[str, list[float]] = {}
        self.reservations: dict[str, Reservation] = {}
        self.preempting: set[str] = set()
        self._seq = 0
        self._lent = any(q.gpus or q.cpus for q in quotas)  # any nominal quota to keep free
        gpu_memory = [p.gpu_memory_mb for p in pools if p.enabled and p.gpus and p.gpu_memory_mb]
        self._largest_device_mb = max(gpu_memory, default=0)

    # -- usage ------------------------------------------------------------------------------
    def weight(self, project: str) -> float:
        quota = self.quotas.get(project)
        return quota.weight if quota else 1.0

    def set_usage(self, usage: Mapping[str, float], as_of_ms: int) -> None:
        """Decayed usage per project in GPU-hours as of ``as_of_ms`` (projects not named: 0).
        Active jobs accrue from ``as_of_ms`` or their start, whichever is later."""
        self.usage_book.set(usage, as_of_ms)

    def usage(self, now_ms: int) -> dict[str, float]:
        projects = set(self.usage_book.value) | set(self.in_use) | set(self.by_project)
        return self.usage_book.peek(sorted(projects), now_ms)

    # -- the queue --------------------------------------------------------------------------
    def _entry(self, job: Job) -> Entry:
        spec, r = job.spec, job.spec.resources
        self._seq += 1
        candidates = [self.pools[spec.pool]] if spec.pool in self.pools else []
        if spec.pool is None:
            candidates = [p for p in self.pools.values() if p.fits(spec) is None]
        needs = {p.name: need_for(spec, p) for p in candidates if p.fits(spec) is None}
        per_node = r.gpus
        if not r.gpus and r.gpu_memory_mb:
            per_node = (
                min(1.0, r.gpu_memory_mb / self._largest_device_mb)
                if self._largest_device_mb
                else 1.0
            )
        shape = (spec.pool, r.gpus, r.gpu_memory_mb, r.cpus, r.memory_mb, spec.nodes)
        order = (-spec.priority, job.submitted_ms, self._seq)
        return Entry(job, order, shape, per_node * spec.nodes, r.cpus * spec.nodes, needs)

    def _known(self, job_id: str) -> Entry:
        entry = self.queued.get(job_id) or self.active.get(job_id)
        if entry is None:
            hint = nearest(job_id, [*self.queued, *self.active], "job")
            msg = f"no job {job_id!r} in the scheduler; {hint}"
            raise NotFoundError(msg)
        return entry

    def _check_new(self, job: Job, states: tuple[JobState, ...]) -> None:
        if job.id in self.queued or job.id in self.active:
            msg = f"job {job.id!r} is already in the scheduler; remove it first"
            raise InvalidStateError(msg)
        if job.state not in states:
            valid = " or ".join(s.value for s in states)
            msg = f"job {job.id!r} is {job.state.value}; only a {valid} job can be added here"
            raise InvalidStateError(msg)

    def enqueue(self, job: Job) -> None:
        """Add a queued job; it waits until :meth:`step` starts it or :meth:`remove`."""
        self._check_new(job, (JobState.QUEUED,))
        entry = self._entry(job)
        self.queued[job.id] = entry
        lists = self.by_project.setdefault(job.spec.project, {})
        bisect.insort(lists.setdefault(entry.shape, []), entry, key=_order)

    def add_active(self, job: Job) -> None:
        """Add a starting or running job that holds ``job.placement`` in ``job.pool``."""
        self._check_new(job, (JobState.STARTING, JobState.RUNNING))
        if job.pool not in self.states:
            hint = nearest(str(job.pool), self.states, "pool")
            msg = f"pool={job.pool!r} of job {job.id!r} is not a known pool; {hint}"
            raise InvalidArgumentError(msg)
        if not job.placement:
            msg = f"job {job.id!r} has no placement; an active job must say where it runs"
            raise InvalidArgumentError(msg)
        entry = self._entry(job)
        state = self.states[job.pool]
        held = state.held(job.placement, need_for(job.spec, state.pool))
        state.hold(held)
        started = job.started_ms if job.started_ms is not None else self.usage_book.base_ms
        self._activate(entry, job.pool, held, started)

    def _activate(self, entry: Entry, pool: str, held: Held, now_ms: int) -> None:
        spec = entry.job.spec
        gpus = sum(u for _, devices in held.nodes[:1] for _, u in devices) / UNITS
        entry.pool, entry.held, entry.started_ms = pool, held, now_ms
        entry.end_ms = now_ms + spec.time_limit_s * 1000 if spec.time_limit_s else math.inf
        entry.rate = charge(spec, gpus, self.ratio)
        self.active[entry.id] = entry
        for node, _ in held.nodes:
            self.on_node.setdefault((pool, node), set()).add(entry.id)
        use = self.in_use.setdefault(entry.project, [0.0, 0.0])
        use[0] += entry.gpus
        use[1] += entry.cpus
        self.usage_book.add_rate(entry.project, entry.rate, now_ms)

    def remove(self, job_id: str, now_ms: int) -> None:
        """Drop a queued job, or release an active one's resources and accrue its usage."""
        entry = self._known(job_id)
        for pool, res in list(self.reservations.items()):
            if res.job_id == job_id:
                del self.reservations[pool]
        if job_id in self.queued:
            del self.queued[job_id]
            lists = self.by_project[entry.project]
            jobs = lists[entry.shape]
            del jobs[bisect.bisect_left(jobs, entry.order, key=_order)]
            if not jobs:
                del lists[entry.shape]
            if not lists:
                del self.by_project[entry.project]
            return
        del self.active[job_id]
        self.preempting.discard(job_id)
        assert entry.pool is not None
        assert entry.held is not None
        self.states[entry.pool].release(entry.held)
        for node, _ in entry.held.nodes:
            self.on_node[(entry.pool, node)].discard(job_id)
        use = self.in_use[entry.project]
        use[0] = max(0.0, use[0] - entry.gpus)
        use[1] = max(0.0, use[1] - entry.cpus)
        self.usage_book.remove_rate(entry.project, entry.rate, now_ms)

    # -- quotas -----------------------------------------------------------------------------
    def nominal(self, project: str) -> tuple[float, float]:
        quota = self.quotas.get(project)
        return (quota.gpus, quota.cpus) if quota else (0.0, 0.0)

    def kept_for_others(self, project: str) -> tuple[float, float]:
        """Idle nominal GPUs and CPUs of projects that do not lend to ``project``."""
        cohort = self.quotas[project].cohort if project in self.quotas else None
        kept = [0.0, 0.0]
        for other, quota in self.quotas.items():
            if other == project or (cohort is not None and quota.cohort == cohort):
                continue
            use = self.in_use.get(other, (0.0, 0.0))
            kept[0] += max(0.0, quota.gpus - use[0])
            kept[1] += max(0.0, quota.cpus - use[1])
        return kept[0], kept[1]

    def free_total(self) -> tuple[float, float]:
        gpus = cpus = 0.0
        for state in self.states.values():
            if state.pool.enabled:
                gpus += state.free_units / UNITS
                cpus += sum(state.mcpu) / 1000
        return gpus, cpus

    def quota_block(self, entry: Entry) -> str | None:
        """Why ``entry``'s project may not take its resources now, or None."""
        project = entry.project
        quota = self.quotas.get(project)
        use = self.in_use.get(project, (0.0, 0.0))
        nominal = self.nominal(project)
        asks = (entry.gpus, entry.cpus)
        limits = (quota.borrow_gpus, quota.borrow_cpus) if quota else (None, None)
        over = [use[k] + asks[k] - nominal[k] for k in (0, 1)]
        for k, unit in ((0, "GPUs"), (1, "CPUs")):
            borrow = limits[k]
            if asks[k] and borrow is not None and over[k] > borrow + _EPS:
                return (
                    f"project {project} would hold {use[k] + asks[k]:g} {unit}, more than its "
                    f"nominal {nominal[k]:g} plus the {borrow:g} it may borrow"
                )
        if not self._lent or (over[0] <= _EPS and over[1] <= _EPS):
            return None
        kept, free = self.kept_for_others(project), self.free_total()
        for k, unit in ((0, "GPUs"), (1, "CPUs")):
            if asks[k] and over[k] > _EPS and free[k] - asks[k] < kept[k] - _EPS:
                return (
                    f"{free[k]:g} {unit} are free but {kept[k]:g} of them are the idle nominal "
                    f"quota of projects that do not lend to {project}"
                )
        return None

    # -- one pass ---------------------------------------------------------------------------
    def order_key(self, project: str, now_ms: int) -> float:
        return self.usage_book.advance(project, now_ms) / self.weight(project)

    def blocked_nodes(self, pool: str, entry: Entry, now_ms: int) -> frozenset[int]:
        res = self.reservations.get(pool)
        if res is None or res.job_id == entry.id:
            return frozenset()
        limit = entry.job.spec.time_limit_s
        if limit is not None and now_ms + limit * 1000 <= res.start_ms:
            return frozenset()
        return res.nodes

    def _try_place(self, entry: Entry, now_ms: int) -> Start | None:
        for name, need in entry.needs.items():
            state = self.states[name]
            if not state.pool.enabled or not state.may_fit(need):
                continue
            chosen = state.place(need, self.blocked_nodes(name, entry, now_ms))
            if chosen is None:
                continue
            held = Held(
                tuple((i, tuple(devices)) for i, devices in chosen), need.mcpu, need.memory_mb
            )
            state.hold(held)
            self._dequeue(entry)
            for pool, res in list(self.reservations.items()):
                if res.job_id == entry.id:
                    del self.reservations[pool]
            self._activate(entry, name, held, now_ms)
            return Start(entry.id, name, state.placement(chosen, need))
        return None

    def _fits_unreserved(self, entry: Entry) -> bool:
        return any(
            self.states[n].pool.enabled and self.states[n].place(need) is not None
            for n, need in entry.needs.items()
        )

    def _backfill(
        self, jobs: list[Entry], now_ms: int, limit: int | None, started: int
    ) -> list[Start]:
        """Start jobs of one shape whose time limits end before the reservation in the way."""
        out: list[Start] = []
        # Jobs of one shape may use the same pools: the longest time limit that ends in time.
        room_s = max(
            (res.start_ms - now_ms) / 1000 if (res := self.reservations.get(name)) else math.inf
            for name in jobs[0].needs
        )
        if not 0 < room_s < math.inf:
            return out  # the reservation starts at an unknown time: no limit ends before it
        for entry in list(jobs[1 : BACKFILL_SCAN + 1]):
            if limit is not None and started + len(out) >= limit:
                break
            limit_s = entry.job.spec.time_limit_s
            if limit_s is None or limit_s > room_s:
                continue  # would still run when the reservation starts
            start = self._try_place(entry, now_ms)
            if start is None:
                break  # the same shape with nothing in its way does not fit either
            out.append(start)
        return out

    def _dequeue(self, entry: Entry) -> None:
        del self.queued[entry.id]
        lists = self.by_project[entry.project]
        jobs = lists[entry.shape]
        del jobs[bisect.bisect_left(jobs, entry.order, key=_order)]
        if not jobs:
            del lists[entry.shape]

    def step(self, now_ms: int, *, limit: int | None = None) -> Decision:
        """Start what fits now, in order; reserve for the first job that does not fit; preempt
        borrowers where a project's nominal quota is held by them."""
        starts: list[Start] = []
        preemptions: list[Preemption] = []
        failed: set[tuple[object, ...]] = set()
        reserved_only: set[tuple[object, ...]] = set()
        projects = sorted(self.by_project, key=lambda p: (self.order_key(p, now_ms), p))
        for project in projects:
            lists = self.by_project.get(project, {})
            heads = [(jobs[0].order, shape) for shape, jobs in lists.items() if shape not in failed]
            heapq.heapify(heads)
            while heads and (limit is None or len(starts) < limit):
                _, shape = heapq.heappop(heads)
                if shape in failed:
                    continue
                entry = lists[shape][0]
                room = any(self.states[n].may_fit(need) for n, need in entry.needs.items())
                if not room and len(self.reservations) >= len(entry.needs):
                    failed.add(shape)  # no room for this shape, and nothing to reserve
                    continue
                if self.quota_block(entry) is not None:
                    continue  # the same for every job of this shape in this project
                started = self._try_place(entry, now_ms) if room else None
                if started is not None:
                    starts.append(started)
                    if shape in lists:
                        heapq.heappush(heads, (lists[shape][0].order, shape))
                    continue
                if room and (shape in reserved_only or self._fits_unreserved(entry)):
                    reserved_only.add(shape)  # only a reservation is in the way: backfill
                    starts.extend(self._backfill(lists[shape], now_ms, limit, len(starts)))
                    continue
                failed.add(shape)
                preemptions.extend(self._reclaim(entry, now_ms))
                self._reserve(entry, now_ms)
        self.by_project = {p: lists for p, lists in self.by_project.items() if lists}
        return Decision(tuple(starts), tuple(preemptions))

    # -- reservations and reclaim ------------------------------------------------------------
    def _reserve(self, entry: Entry, now_ms: int) -> None:
        if any(res.job_id == entry.id for res in self.reservations.values()):
            return
        best: tuple[float, str, frozenset[int]] | None = None
        for name, need in entry.needs.items():
            state = self.states[name]
            if name in self.reservations or not state.pool.enabled:
                continue
            # A cheap estimate first (when enough units free on the node, ignoring how they
            # lie on devices), then the exact search on the few most hopeful nodes only.
            wanted = need.whole * UNITS + need.units
            guesses = []
            for i in range(state.pool.nodes):
                ends = sorted(
                    (e.end_ms, e.gpus / e.job.spec.nodes)
                    for j in self.on_node.get((name, i), ())
                    if (e := self.active[j])
                )
                free, when = float(sum(state.free[i])), float(now_ms)
                for end, gpus in ends:
                    if free >= wanted:
                        break
                    free, when = free + gpus * UNITS, end
                guesses.append((when if free >= wanted else math.inf, -sum(state.free[i]), i))
            guesses.sort()
            ready = []
            for _, spare, i in guesses[: need.nodes + RESERVE_CANDIDATES]:
                holds = [
                    (self.active[j].end_ms, self.active[j].held)
                    for j in self.on_node.get((name, i), ())
                ]
                exact = state.node_ready(i, need, holds)  # type: ignore[arg-type]
                ready.append((math.inf if exact is None else max(exact, now_ms), spare, i))
            ready.sort()
            chosen = ready[: need.nodes]
            start = chosen[-1][0] if chosen else math.inf
            if len(chosen) == need.nodes and (best is None or start < best[0]):
                best = (start, name, frozenset(i for _, _, i in chosen))
        if best is not None:
            self.reservations[best[1]] = Reservation(entry.id, best[2], best[0])

    def _reclaim(self, entry: Entry, now_ms: int) -> list[Preemption]:
        """Preempt preemptible borrowers of the cohort when ``entry`` is within its nominal
        quota but finds no room; the freed nodes are reserved for it."""
        project = entry.project
        quota = self.quotas.get(project)
        if quota is None or quota.cohort is None:
            return []
        use, nominal = self.in_use.get(project, (0.0, 0.0)), self.nominal(project)
        k = 0 if entry.gpus else 1  # GPU jobs reclaim GPUs; CPU-only jobs reclaim CPUs
        if use[k] + (entry.gpus, entry.cpus)[k] > nominal[k] + _EPS:
            return []
        if any(r.job_id == entry.id and r.preempting for r in self.reservations.values()):
            return []
        victims = sorted(
            (
                e
                for e in self.active.values()
                if e.id not in self.preempting
                and e.job.spec.preemptible
                and e.project != project
                and e.project in self.quotas
                and self.quotas[e.project].cohort == quota.cohort
            ),
            key=lambda e: (e.job.spec.priority, -e.started_ms, e.id),
        )
        for name, need in entry.needs.items():
            state = self.states[name]
            borrowed = {
                p: self.in_use.get(p, (0.0, 0.0))[k] - self.nominal(p)[k]
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
                chosen = state.place(need, self.blocked_nodes(name, entry, now_ms))
                if chosen is not None:
                    break
            for victim in released:
                assert victim.held is not None
                state.hold(victim.held)
            if chosen is None:
                continue
            ids = frozenset(v.id for v in released)
            self.preempting |= ids
            self.reservations[name] = Reservation(
                entry.id, frozenset(i for i, _ in chosen), math.inf, ids
            )
            return [
                Preemption(
                    v.id,
                    f"project {project} reclaims its nominal quota ({nominal[0]:g} GPUs, "
                    f"{use[0]:g} in use, {entry.gpus:g} asked); project {v.project} borrows "
                    f"{self.in_use[v.project][0] - self.nominal(v.project)[0]:g} GPUs "
                    f"beyond its nominal {self.nominal(v.project)[0]:g}",
                )
                for v in released
            ]
        return []

    # -- reports ----------------------------------------------------------------------------
    def explain(self, job_id: str, now_ms: int) -> list[str]:
        """Why a queued job waits, in sentences with numbers."""
        return explain(self, job_id, now_ms)

    def shares(self, now_ms: int) -> list[ProjectShare]:
        """Per project: weight, entitled fraction, usage, resources in use, quota, borrowing."""
        return shares(self, now_ms)
