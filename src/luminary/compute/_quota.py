"""Quotas for the scheduler: whether a project may take more now, and what it keeps for others.

No I/O, not thread-safe: functions over a :class:`~luminary.compute._policy.Scheduler` (its
``quotas``, ``in_use`` and pool states), called on the thread that owns it. The rules are in
``_policy``'s docstring (Quotas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary.compute._packing import UNITS

if TYPE_CHECKING:
    from luminary.compute._policy import Entry, Scheduler

__all__ = ["free_total", "kept_for_others", "quota_block"]

_EPS = 1e-9


def kept_for_others(s: Scheduler, project: str) -> tuple[float, float]:
    """Idle nominal GPUs and CPUs of projects that do not lend to ``project``."""
    cohort = s.quotas[project].cohort if project in s.quotas else None
    kept = [0.0, 0.0]
    for other, quota in s.quotas.items():
        if other == project or (cohort is not None and quota.cohort == cohort):
            continue
        use = s.in_use.get(other, (0.0, 0.0))
        kept[0] += max(0.0, quota.gpus - use[0])
        kept[1] += max(0.0, quota.cpus - use[1])
    return kept[0], kept[1]


def free_total(s: Scheduler) -> tuple[float, float]:
    gpus = cpus = 0.0
    for state in s.states.values():
        if state.pool.enabled:
            gpus += state.free_units / UNITS
            cpus += sum(state.mcpu) / 1000
    return gpus, cpus


def quota_block(s: Scheduler, entry: Entry) -> str | None:
    """Why ``entry``'s project may not take its resources now, or None."""
    project = entry.project
    quota = s.quotas.get(project)
    use = s.in_use.get(project, (0.0, 0.0))
    nominal = s.nominal(project)
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
    if not s._lent or (over[0] <= _EPS and over[1] <= _EPS):
        return None
    kept, free = kept_for_others(s, project), free_total(s)
    for k, unit in ((0, "GPUs"), (1, "CPUs")):
        # only where there is room but taking it eats into quota kept for others (with no
        # room at all, the job waits for capacity like any other, and may reserve it)
        fits = free[k] >= asks[k] - _EPS
        if asks[k] and over[k] > _EPS and fits and free[k] - asks[k] < kept[k] - _EPS:
            return (
                f"{free[k]:g} {unit} are free but {kept[k]:g} of them are the idle nominal "
                f"quota of projects that do not lend to {project}, which is over its own "
                f"quota of {nominal[k]:g} {unit}"
            )
    return None
