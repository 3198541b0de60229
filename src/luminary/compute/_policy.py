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

Decision cost. A *decision* is one :meth:`Scheduler.step`. Queued jobs are kept per project in
lists sorted by order, one per *shape* (pool pin, resources, nodes); a pass looks at the head
of each list, in order, and a shape that found no room is not tried again in the same pass
(room only shrinks within a pass). Where only a reservation stands in a shape's way, the next
``_reserve.BACKFILL_SCAN`` jobs of that shape are looked at for one whose time limit ends
before the reservation. A scheduler that lives on (the simulation; a long-running queue)
also remembers, between passes, the heads that could not start and had nothing else to do
(``_quiet``): later passes skip them until a job ends on a node that could fit them, a
reservation goes, or their list changes near its head, so a steady-state pass looks at the
few shapes the freed room could fit instead of every list. It remembers only in a scheduler
of one pool whose quotas are weights alone; with several pools, nominal quotas, borrowing
limits or cohorts it looks at every head each pass (a head held back by its quota has no
effect on the pass where one that failed does; that is not worked out yet). What it
remembers changes no decision: a pass decides exactly as one that looks at every head
(``tests/unit/compute/test_policy_memory.py``).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from luminary.compute._explain import ProjectShare, explain, never_fits, shares
from luminary.compute._fairshare import DEFAULT_HALF_LIFE_S, Usage, charge, cpus_per_gpu
from luminary.compute._packing import UNITS, Held, Need, PoolState, need_for
from luminary.compute._quiet import FAILED, RESERVED, Effect, QuietHeads, Shape
from luminary.compute._quota import kept_for_others, quota_block
from luminary.compute._reserve import Reservation, backfill, blind, reclaim, reserve
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
    limit_ms: float | None = None

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def project(self) -> str:
        return self.job.spec.project


def _order(entry: Entry) -> tuple[int, int, int]:
    return entry.order


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
        self._cohorts = any(q.cohort is not None for q in quotas)  # reclaim is possible
        self._gated = self._lent or any(
            q.borrow_gpus is not None or q.borrow_cpus is not None for q in quotas
        )
        # What the pass may remember (see "Decision cost"): one pool, no quota but weights.
        self._remember = len(self.states) == 1 and not (self._gated or self._cohorts)
        self.quiet = QuietHeads(
            self.states, self.reservations, lambda p, shape: blind(self, p, shape, self._now)
        )
        self._now = 0  # the time of the pass under way
        # Per node, the active jobs on it as (expected end, units held there, id), by end.
        self.ends: dict[tuple[str, int], list[tuple[float, int, str]]] = {}
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
        limit_ms = spec.time_limit_s * 1000 if spec.time_limit_s is not None else None
        return Entry(
            job, order, shape, per_node * spec.nodes, r.cpus * spec.nodes, needs, limit_ms=limit_ms
        )

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
        jobs = lists.setdefault(entry.shape, [])
        at = bisect.bisect_right(jobs, entry.order, key=_order)
        jobs.insert(at, entry)
        self.quiet.seen(entry.shape, entry.needs)
        self.quiet.arrived(entry.project, entry.shape, at)

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
        for node, devices in held.nodes:
            self.on_node.setdefault((pool, node), set()).add(entry.id)
            mark = (entry.end_ms, sum(u for _, u in devices), entry.id)
            bisect.insort(self.ends.setdefault((pool, node), []), mark)
        use = self.in_use.setdefault(entry.project, [0.0, 0.0])
        use[0] += entry.gpus
        use[1] += entry.cpus
        self.usage_book.add_rate(entry.project, entry.rate, now_ms)

    def remove(self, job_id: str, now_ms: int) -> None:
        """Drop a queued job, or release an active one's resources and accrue its usage."""
        entry = self._known(job_id)
        self._unreserve(job_id)
        if job_id in self.queued:
            self._dequeue(entry)
            if not self.by_project[entry.project]:
                del self.by_project[entry.project]
            return
        del self.active[job_id]
        self.preempting.discard(job_id)
        assert entry.pool is not None
        assert entry.held is not None
        self.states[entry.pool].release(entry.held)
        for node, devices in entry.held.nodes:
            self.on_node[(entry.pool, node)].discard(job_id)
            ends = self.ends[(entry.pool, node)]
            del ends[bisect.bisect_left(ends, (entry.end_ms, sum(u for _, u in devices), job_id))]
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
        return kept_for_others(self, project)

    def quota_block(self, entry: Entry) -> str | None:
        """Why ``entry``'s project may not take its resources now, or None."""
        return quota_block(self, entry) if self._gated else None

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

    def try_place(self, entry: Entry, now_ms: int) -> Start | None:
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
            self._unreserve(entry.id)
            self._activate(entry, name, held, now_ms)
            return Start(entry.id, name, state.placement(chosen, need))
        return None

    def _fits_unreserved(self, entry: Entry) -> bool:
        return any(
            self.states[n].pool.enabled and self.states[n].place(need) is not None
            for n, need in entry.needs.items()
        )

    def _dequeue(self, entry: Entry) -> None:
        del self.queued[entry.id]
        lists = self.by_project[entry.project]
        jobs = lists[entry.shape]
        del jobs[bisect.bisect_left(jobs, entry.order, key=_order)]
        if not jobs:
            del lists[entry.shape]
        self.quiet.forget(entry.project, entry.shape)

    def _unreserve(self, job_id: str) -> None:
        for pool in [p for p, res in self.reservations.items() if res.job_id == job_id]:
            self.quiet.unreserved(pool, self.reservations.pop(pool).nodes)

    def reservations_changed(self) -> None:
        """Forget which heads could not start (a reservation was replaced)."""
        self.quiet.forget_all()

    def step(self, now_ms: int, *, limit: int | None = None) -> Decision:
        """Start what fits now, in order; reserve for the first job that does not fit; preempt
        borrowers where a project's nominal quota is held by them."""
        starts: list[Start] = []
        preemptions: list[Preemption] = []
        seen: dict[Effect, set[Shape]] = {FAILED: set(), RESERVED: set()}
        failed, reserved_only = seen[FAILED], seen[RESERVED]
        quiet = self.quiet
        self._now = now_ms
        if not self._remember:
            quiet.forget_all()  # look at every head, as a freshly built scheduler does
        quiet.begin_pass()
        memos, revived = quiet.memos, quiet.revived
        done: list[tuple[str, Collection[Shape]]] = []  # projects passed, shapes revived then
        projects = sorted(self.by_project, key=lambda p: (self.order_key(p, now_ms), p))
        for project in projects:
            lists = self.by_project.get(project, {})
            quiet.reopened = False
            memo = memos.get(project, {})
            shapes = lists.keys() - memo.keys()
            then = quiet.live() if revived else frozenset()
            if then:
                shapes |= then & lists.keys()
            heads = [(lists[shape][0].order, shape) for shape in shapes]
            heapq.heapify(heads)
            order: tuple[int, int, int] = (-(1 << 62), 0, 0)
            while (heads or quiet.reopened) and (limit is None or len(starts) < limit):
                if quiet.reopened:  # a reservation went: heads left out after this one are due
                    quiet.reopened = False
                    for later in list(memo):
                        if later in lists and later not in shapes and lists[later][0].order > order:
                            shapes.add(later)
                            heapq.heappush(heads, (lists[later][0].order, later))
                    if not heads:
                        break
                order, shape = heapq.heappop(heads)
                if done and shape not in failed:
                    left = quiet.earlier(shape, done)  # as if the heads left out were looked at
                    if left is not None:
                        seen[left].add(shape)
                if shape in failed:
                    continue
                effect = quiet.verdict(project, shape)
                if effect is not None:
                    seen[effect].add(shape)
                    continue
                jobs = lists[shape]
                entry = jobs[0]
                room = any(self.states[n].may_fit(need) for n, need in entry.needs.items())
                if not room and len(self.reservations) >= len(entry.needs):
                    failed.add(shape)  # no room for this shape, and nothing to reserve
                    quiet.add(project, shape, FAILED)
                    continue
                if self.quota_block(entry) is not None:
                    continue  # the same for every job of this shape in this project
                started = self.try_place(entry, now_ms) if room else None
                if started is not None:
                    starts.append(started)
                    quiet.started()
                    if shape in lists:
                        heapq.heappush(heads, (lists[shape][0].order, shape))
                    continue
                if room and (shape in reserved_only or self._fits_unreserved(entry)):
                    reserved_only.add(shape)  # only a reservation is in the way: backfill
                    more, whole = backfill(self, jobs, now_ms, limit, len(starts))
                    starts.extend(more)
                    if more:
                        quiet.started()
                    elif whole:
                        quiet.add(project, shape, RESERVED)
                    continue
                failed.add(shape)
                changed = len(preemptions)
                preemptions.extend(reclaim(self, entry, now_ms))
                reserve(self, entry, now_ms)
                if not self._cohorts and changed == len(preemptions):
                    # nothing to do for it until something changes
                    quiet.add(project, shape, FAILED)
            done.append((project, then))
        quiet.end_pass(cut=limit is not None and len(starts) >= limit)
        self.by_project = {p: lists for p, lists in self.by_project.items() if lists}
        return Decision(tuple(starts), tuple(preemptions))

    # -- reports ----------------------------------------------------------------------------
    def explain(self, job_id: str, now_ms: int) -> list[str]:
        """Why a queued job waits, in sentences with numbers."""
        return explain(self, job_id, now_ms)

    def shares(self, now_ms: int) -> list[ProjectShare]:
        """Per project: weight, entitled fraction, usage, resources in use, quota, borrowing."""
        return shares(self, now_ms)
