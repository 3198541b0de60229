"""Device packing for the scheduler: what is free on each node of a pool, and where a job fits.

No I/O, not thread-safe (the :class:`~luminary.compute._policy.Scheduler` that owns the states
is used from one thread). A device is :data:`UNITS` integer units so that fractions add up
exactly (``3 x 0.3333`` fits one device). CPUs are kept in milli-CPUs for the same reason.

Placement rules (documented for users in ``_policy``):

* whole-GPU jobs take whole free devices, lowest indices first, on the node whose count of
  free devices is the smallest that fits (best fit: whole nodes stay whole for gangs);
* a fraction (or a device-memory request, as the fraction ``memory / device memory``) goes on
  the partly used device with the least room that still fits it; only when no partly used
  device fits does it open a free device, on the node with the fewest free devices;
* CPU-only jobs go on the node with the fewest CPUs left after them;
* a gang takes ``nodes`` distinct nodes, each chosen by the rules above, or nothing.

Node ``i`` of pool ``p`` is named ``f"{p}-{i}"``; executors map those names to their hosts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from luminary.compute.models import JobSpec, NodePlacement, Placement, Pool
from luminary.errors import InvalidArgumentError, InvalidStateError

__all__ = ["UNITS", "Need", "PoolState", "need_for"]

#: Units in one device: 10**FRACTION_DIGITS, so every valid fraction is a whole number of units.
UNITS = 10_000


@dataclass(frozen=True, slots=True)
class Need:
    """What one node of a job needs in one pool: ``whole`` devices or ``units`` of one device,
    milli-CPUs and MiB of memory, on each of ``nodes`` nodes."""

    whole: int
    units: int
    mcpu: int
    memory_mb: int
    nodes: int
    gpu_memory_mb: int

    @property
    def gpus(self) -> float:
        """GPUs per node (fractions included)."""
        return self.whole + self.units / UNITS

    def describe(self) -> str:
        gpus = f"{self.gpus:g} GPU" if self.whole or self.units else f"{self.mcpu / 1000:g} CPU"
        return f"{gpus} on {self.nodes} nodes at once (gang)" if self.nodes > 1 else gpus


def need_for(spec: JobSpec, pool: Pool) -> Need:
    """The per-node need of ``spec`` in ``pool``. A device-memory request becomes the fraction
    ``gpu_memory_mb / pool.gpu_memory_mb`` (rounded up to a unit; a whole device where the
    pool does not say its device memory); a fraction with a memory request takes the larger."""
    r = spec.resources
    whole, units = r.whole_gpus, 0
    if not whole and r.wants_gpu:
        units = round(r.gpus * UNITS)
        if r.gpu_memory_mb:
            by_memory = (
                math.ceil(r.gpu_memory_mb * UNITS / pool.gpu_memory_mb)
                if pool.gpu_memory_mb
                else UNITS
            )
            units = max(units, by_memory)
        if units >= UNITS:
            whole, units = 1, 0
    held = r.gpu_memory_mb or (
        round(units * pool.gpu_memory_mb / UNITS) if units else pool.gpu_memory_mb
    )
    return Need(
        whole, units, round(r.cpus * 1000), r.memory_mb, spec.nodes, held if whole or units else 0
    )


class PoolState:
    """Free capacity of one pool, per node and per device."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        n, g = pool.nodes, pool.gpus
        self.free: list[list[int]] = [[UNITS] * g for _ in range(n)]
        self.whole_free = [g] * n
        self.mcpu = [round(pool.cpus * 1000)] * n
        self.memory = [pool.memory_mb] * n
        self.names = [f"{pool.name}-{i}" for i in range(n)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.free_units = n * g * UNITS
        self._summary: tuple[int, int, int, int] | None = None
        # (need, blocked nodes) that found no node at ``epoch``; a release bumps the epoch and
        # marks its nodes in ``gained``, so a later search looks at those nodes only.
        self.nofit: dict[tuple[Need, frozenset[int]], int] = {}
        self.epoch = 0
        self.gained = [0] * n
        # Nodes that gained room since the scheduler last looked (it empties the set).
        self.dirty: set[int] = set()

    # -- quick necessary conditions -----------------------------------------------------------
    def summary(self) -> tuple[int, int, int, int]:
        """Largest count of free devices, free units on one device, milli-CPUs and memory on
        any one node: a job that exceeds one of them cannot fit anywhere in the pool."""
        if self._summary is None:
            best_units = max((max(row) for row in self.free if row), default=0)
            self._summary = (
                max(self.whole_free, default=0),
                best_units,
                max(self.mcpu, default=0),
                max(self.memory, default=0),
            )
        return self._summary

    def may_fit(self, need: Need) -> bool:
        whole, units, mcpu, memory = self.summary()
        return (
            need.whole <= whole
            and need.units <= units
            and need.mcpu <= mcpu
            and (not self.pool.memory_mb or need.memory_mb <= memory)
        )

    # -- placement -------------------------------------------------------------------------
    def fits_node(self, i: int, need: Need) -> bool:
        """Whether ``need`` fits node ``i`` as it is now (one node of a gang)."""
        return self._score(i, need) is not None

    def _score(self, i: int, need: Need) -> float | None:
        """How tightly ``need`` fits node ``i`` (lower is tighter), or None if it does not."""
        if self.mcpu[i] < need.mcpu or (self.pool.memory_mb and self.memory[i] < need.memory_mb):
            return None
        if need.whole:
            left = self.whole_free[i] - need.whole
            return None if left < 0 else float(left)
        if need.units:
            row = self.free[i]
            if max(row) < need.units:
                return None
            partial = [free for free in row if need.units <= free < UNITS]
            if partial:
                return (min(partial) - need.units) / UNITS
            return float(1 + self.whole_free[i])
        return (self.mcpu[i] - need.mcpu) / 1e6

    def _devices(self, i: int, need: Need) -> list[tuple[int, int]]:
        """The devices ``need`` takes on node ``i`` (which :meth:`_score` found it fits)."""
        row = self.free[i]
        if need.whole:
            return [(d, UNITS) for d, free in enumerate(row) if free == UNITS][: need.whole]
        if need.units:
            partial = [(free, d) for d, free in enumerate(row) if need.units <= free < UNITS]
            return [(min(partial)[1] if partial else row.index(UNITS), need.units)]
        return []

    def _node_fit(self, i: int, need: Need) -> tuple[float, list[tuple[int, int]]] | None:
        score = self._score(i, need)
        return None if score is None else (score, self._devices(i, need))

    def place(
        self, need: Need, blocked: frozenset[int] = frozenset()
    ) -> list[tuple[int, list[tuple[int, int]]]] | None:
        """Nodes and ``(device, units)`` for ``need`` avoiding ``blocked`` nodes, or None."""
        since = self.nofit.get((need, blocked)) if need.nodes == 1 else None
        nodes = range(len(self.free))
        if since is not None:  # only nodes that gained room since it last found none can fit
            nodes = [i for i in nodes if self.gained[i] > since]  # type: ignore[assignment]
        fits: list[tuple[float, int]] = []
        for i in nodes:
            if i in blocked:
                continue
            score = self._score(i, need)
            if score is not None:
                if score == 0 and need.nodes == 1:
                    return [(i, self._devices(i, need))]  # a perfect fit: nothing better
                fits.append((score, i))
        if len(fits) < need.nodes:
            self.nofit[(need, blocked)] = self.epoch
            return None
        fits.sort()
        return [(i, self._devices(i, need)) for _, i in fits[: need.nodes]]

    def placement(self, chosen: list[tuple[int, list[tuple[int, int]]]], need: Need) -> Placement:
        return tuple(
            NodePlacement(
                self.names[i],
                tuple((d, round(u / UNITS, 4)) for d, u in devices),
                need.gpu_memory_mb,
            )
            for i, devices in chosen
        )

    def node_ready(self, i: int, need: Need, holds: list[tuple[float, Held]]) -> float | None:
        """When node ``i`` could host ``need`` if the jobs in ``holds`` (``(end, held)``, their
        expected ends, ``inf`` where unknown) left in order of end; None if never."""
        if self._score(i, need) is not None:
            return 0.0
        row, mcpu, memory = list(self.free[i]), self.mcpu[i], self.memory[i]
        for end, held in sorted(holds, key=lambda h: h[0]):
            if math.isinf(end):
                return None
            for node, devices in held.nodes:
                if node == i:
                    for d, units in devices:
                        row[d] += units
            mcpu += held.mcpu
            memory += held.memory_mb
            if mcpu < need.mcpu or (self.pool.memory_mb and memory < need.memory_mb):
                continue
            if (
                (need.whole and row.count(UNITS) >= need.whole)
                or (not need.whole and need.units and max(row) >= need.units)
                or (not need.whole and not need.units)
            ):
                return end
        return None

    # -- holding and releasing ----------------------------------------------------------------
    def held(self, placement: Placement, need: Need) -> Held:
        """The holding that ``placement`` describes, checked against this pool."""
        nodes: list[tuple[int, tuple[tuple[int, int], ...]]] = []
        for np_ in placement:
            i = self.index.get(np_.node)
            if i is None:
                msg = (
                    f"node={np_.node!r} is not in pool {self.pool.name!r}; its nodes are "
                    f"{self.names[0]} to {self.names[-1]}"
                )
                raise InvalidArgumentError(msg)
            devices = tuple((d, round(f * UNITS)) for d, f in np_.devices)
            for d, _ in devices:
                if not 0 <= d < self.pool.gpus:
                    msg = f"device={d} is not on {np_.node}; it has {self.pool.gpus} devices"
                    raise InvalidArgumentError(msg)
            nodes.append((i, devices))
        return Held(tuple(nodes), need.mcpu, need.memory_mb)

    def hold(self, held: Held) -> None:
        for i, _ in held.nodes:
            row = self.free[i]
            if self.mcpu[i] < held.mcpu or any(row[d] < u for d, u in dict(held.nodes)[i]):
                msg = f"{self.names[i]} has not the room the placement claims"
                raise InvalidStateError(msg)
        for i, _ in held.nodes:
            self._change(held, i, -1)

    def release(self, held: Held) -> None:
        self.epoch += 1
        for i, _ in held.nodes:
            self._change(held, i, +1)
            self.gained[i] = self.epoch
            self.dirty.add(i)

    def _change(self, held: Held, node: int, sign: int) -> None:
        row = self.free[node]
        for i, devices in held.nodes:
            if i != node:
                continue
            for d, units in devices:
                before = row[d]
                row[d] = before + sign * units
                self.free_units += sign * units
                self.whole_free[node] += (row[d] == UNITS) - (before == UNITS)
        self.mcpu[node] += sign * held.mcpu
        self.memory[node] += sign * held.memory_mb
        self._summary = None


@dataclass(frozen=True, slots=True)
class Held:
    """What an active job holds in a pool: ``(node, ((device, units), …))`` per node, and the
    milli-CPUs and memory on each of those nodes."""

    nodes: tuple[tuple[int, tuple[tuple[int, int], ...]], ...]
    mcpu: int
    memory_mb: int
