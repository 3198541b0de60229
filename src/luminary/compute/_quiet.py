"""What the scheduler remembers between passes about queued jobs that could not start.

No I/O, not thread-safe (owned by one :class:`~luminary.compute._policy.Scheduler`). A
*head* is the first job, in order, of one project's jobs of one shape. A head is *quiet* when
a pass found that it could not start and that failing had no other effect (its pools already
held a reservation, no preemption was possible, the jobs behind it could not backfill). It
stays so, and later passes skip it without looking, until one of these happens:

* its list changes (a job of that project and shape arrives, starts or leaves): forgotten;
* a node gains room that fits its shape (a job ended there), or a reservation goes and its
  nodes open up: the shape is *revived* for the next pass, which looks at its heads again
  only while one of those nodes still has room for it (a start earlier in the same pass may
  have taken it) or while one of its pools holds no reservation (it may be the next to get
  one). Room on a node of a reservation does not count for a head that is *blind* to it:
  none of the jobs it and the backfill look at may use that node before the reservation
  starts (asked of the scheduler when it matters; time only makes it truer);
* a reservation is replaced: everything is forgotten.

A head left out still has the effect looking at it would have on the rest of the pass: its
shape counts as failed (no room) or as having room on reserved nodes only (``FAILED``,
``RESERVED``), as when it went quiet, for the projects after it (:meth:`QuietHeads.earlier`).

Why this is exact: within and between passes, room on a node only shrinks except where a job
ends (the node is marked in :attr:`PoolState.dirty`) or a reservation goes (its nodes are
revived); a reservation that is made only blocks more; time only shortens the room a backfill
has before a reservation's start. So a head that could not start, and whose nodes gained
nothing, still cannot, and skipping it decides the same as looking at it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Literal, Protocol

from luminary.compute._packing import Need, PoolState
from luminary.compute._reserve import BACKFILL_SCAN

__all__ = ["FAILED", "RESERVED", "Effect", "QuietHeads", "Shape"]

Shape = tuple[object, ...]
Effect = Literal["failed", "reserved"]
FAILED: Effect = "failed"
RESERVED: Effect = "reserved"


class _Reserved(Protocol):  # what a reservation looks like from here
    @property
    def nodes(self) -> frozenset[int]: ...


class QuietHeads:
    """Quiet heads per project and shape, and the shapes revived for the coming pass.

    ``blind(project, shape)`` answers whether none of the jobs a pass would look at in that
    list may use its pools' reserved nodes before the reservations start."""

    def __init__(
        self,
        states: Mapping[str, PoolState],
        reservations: Mapping[str, _Reserved],
        blind: Callable[[str, Shape], bool],
    ) -> None:
        self._states = states
        self._reservations = reservations
        self._blind = blind
        self._needs: dict[Shape, dict[str, Need]] = {}
        #: Per project, its quiet heads' shapes and effects (read by the pass's hot loop).
        self.memos: dict[str, dict[Shape, Effect]] = {}
        #: Shapes revived for this pass: (pool, nodes) that gained room for them.
        self.revived: dict[Shape, list[tuple[str, list[int]]]] = {}
        # Per revived shape until the next start: (room on a node not reserved, room on one).
        self._judged: dict[Shape, tuple[bool, bool]] = {}
        # Per shape until the next start: room somewhere, reservations aside.
        self._fits: dict[Shape, bool] = {}
        #: Set when a reservation went: heads a pass left out may be due again.
        self.reopened = False
        # Revived while a pass was under way: the projects it was done with look next pass.
        self._late: list[tuple[Shape, str, list[int]]] = []
        self._in_pass = False

    def __len__(self) -> int:
        return sum(len(m) for m in self.memos.values())

    def seen(self, shape: Shape, needs: dict[str, Need]) -> None:
        """Know the per-pool needs of ``shape`` (to tell which nodes could fit it)."""
        self._needs.setdefault(shape, needs)

    def add(self, project: str, shape: Shape, effect: Effect) -> None:
        self.memos.setdefault(project, {})[shape] = effect

    def arrived(self, project: str, shape: Shape, at: int) -> None:
        """A job joined the list at index ``at``. A head that found no room at all stays
        quiet unless the job is the new head; one with room on reserved nodes only, unless
        the job is among those a pass looks at (the head and the backfill's)."""
        memo = self.memos.get(project)
        effect = memo.get(shape) if memo is not None else None
        if effect is None or (effect == FAILED and at > 0) or at > BACKFILL_SCAN:
            return
        self.forget(project, shape)

    def forget(self, project: str, shape: Shape) -> None:
        memo = self.memos.get(project)
        if memo is not None:
            memo.pop(shape, None)

    def forget_all(self) -> None:
        self.memos.clear()
        self.revived.clear()
        self._judged.clear()
        self._fits.clear()

    def unreserved(self, pool: str, nodes: frozenset[int]) -> None:
        """A reservation went: every shape may fit on its nodes, or be the next to reserve."""
        for shape, needs in self._needs.items():
            if pool in needs:
                self.revived.setdefault(shape, []).append((pool, sorted(nodes)))
                if self._in_pass:
                    self._late.append((shape, pool, sorted(nodes)))
        self._judged.clear()
        self._fits.clear()
        self.reopened = True

    def begin_pass(self) -> None:
        """Revive the shapes that fit a node that gained room since the last pass, and those
        of a pool without a reservation (the first of them without room would reserve)."""
        self._in_pass = True
        for name, state in self._states.items():
            if name not in self._reservations and state.pool.enabled:
                for shape, needs in self._needs.items():
                    if name in needs:
                        self.revived.setdefault(shape, [])
            if not state.dirty:
                continue
            dirty = sorted(state.dirty)
            state.dirty.clear()
            for shape, needs in self._needs.items():
                need = needs.get(name)
                if need is None:
                    continue
                nodes = [i for i in dirty if state.fits_node(i, need)]
                if nodes:
                    self.revived.setdefault(shape, []).append((name, nodes))
        self._judged.clear()
        self._fits.clear()

    def started(self) -> None:
        """A job started: room shrank, so revived shapes are judged again."""
        self._judged.clear()
        self._fits.clear()

    def live(self) -> frozenset[Shape]:
        """The revived shapes for which something is open now (a pass looks at their heads;
        the others' quiet heads it leaves out, as if they had not been revived)."""
        out = []
        for shape in self.revived:
            judged = self._judged.get(shape)
            if judged is None:
                judged = self._judged[shape] = self._judge(shape)
            if judged != (False, False):
                out.append(shape)
        return frozenset(out)

    def effect(self, shape: Shape, effect: Effect) -> Effect:
        """What a quiet head does to the pass now: a head that had room on reserved nodes only
        has none at all once starts took that room."""
        if effect == FAILED:
            return FAILED  # nothing gained room for it (it would be revived)
        fits = self._fits.get(shape)
        if fits is None:
            fits = self._fits[shape] = any(
                self._states[n].pool.enabled and self._states[n].place(need) is not None
                for n, need in self._needs[shape].items()
            )
        return RESERVED if fits else FAILED

    def earlier(self, shape: Shape, done: Sequence[tuple[str, Collection[Shape]]]) -> Effect | None:
        """The effect on ``shape`` of the quiet heads the pass left out in the projects it is
        done with (``done``: each with the shapes revived when the pass came to it)."""
        found: Effect | None = None
        for project, revived in done:
            memo = self.memos.get(project)
            effect = memo.get(shape) if memo is not None else None
            if effect is not None and shape not in revived:
                if self.effect(shape, effect) == FAILED:
                    return FAILED
                found = RESERVED
        return found

    def verdict(self, project: str, shape: Shape) -> Effect | None:
        """For a head about to be looked at: its effect if it is still quiet (the pass skips
        it); None if it must be looked at (it is no longer quiet)."""
        memo = self.memos.get(project)
        effect = memo.get(shape) if memo is not None else None
        if memo is None or effect is None:
            return None
        if shape not in self.revived:
            return self.effect(shape, effect)
        judged = self._judged.get(shape)
        if judged is None:
            judged = self._judged[shape] = self._judge(shape)
        open_, hidden = judged
        if not open_ and not hidden:
            return self.effect(shape, effect)
        if not open_ and self._blind(project, shape):  # room on reserved nodes it cannot use
            memo[shape] = RESERVED
            return self.effect(shape, RESERVED)
        del memo[shape]
        return None

    def _judge(self, shape: Shape) -> tuple[bool, bool]:
        needs = self._needs[shape]
        if any(n not in self._reservations and self._states[n].pool.enabled for n in needs):
            return True, True  # it may be the first without room: it would reserve
        hidden = False
        for name, nodes in self.revived.get(shape, ()):
            state, need = self._states[name], needs[name]
            kept = res.nodes if (res := self._reservations.get(name)) else frozenset()
            for i in nodes:
                if state.fits_node(i, need):
                    if i not in kept:
                        return True, True
                    hidden = True
        return False, hidden

    def end_pass(self, *, cut: bool) -> None:
        """Close the pass; where ``limit`` cut it short, heads of revived shapes it did not
        reach are looked at next time unless nothing opened up for them after all."""
        self.reopened = False
        self._judged.clear()
        self._fits.clear()
        if cut:
            for shape in self.revived:
                if self._judge(shape) != (False, False):
                    for memo in self.memos.values():
                        memo.pop(shape, None)
        self.revived.clear()
        for shape, pool, nodes in self._late:
            self.revived.setdefault(shape, []).append((pool, nodes))
        self._late.clear()
        self._in_pass = False
