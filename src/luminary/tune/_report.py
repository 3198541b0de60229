"""What a study's trials say, for people (``luminary tune show``, the web UI's study page),
without I/O and without Optuna: each trial's value with its seeds' standard error, the best
trial by :func:`~luminary.tune.select`'s rules, the Pareto front of a multi-objective study,
and what the trials used (joules, GPU-hours, CPU-hours) up to the best one and in all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from luminary.tune._noise import MEAN_ATTR, STDERR_ATTR, VALUES_ATTR, select
from luminary.tune.models import TrialRecord

__all__ = [
    "StudyCost",
    "best_record",
    "pareto_numbers",
    "run_cost",
    "study_cost",
    "trial_error",
    "trial_mean",
]

#: Metrics a trial's run records what it used with: jobs write hours, in-process trials the
#: energy meter's seconds.
JOULES = "energy/total_joules"
GPU_HOURS, GPU_SECONDS = "resources/gpu_hours", "resources/gpu_seconds"
CPU_HOURS, CPU_SECONDS = "resources/cpu_hours", "resources/cpu_seconds"


def trial_error(trial: TrialRecord) -> float | None:
    """The standard error of a trial repeated over seeds (``None``: not repeated, or once)."""
    if not trial.user_attrs.get(VALUES_ATTR):
        return None
    err = trial.user_attrs.get(STDERR_ATTR)
    if isinstance(err, bool) or not isinstance(err, (int, float)) or not math.isfinite(err):
        return None
    return float(err)


def trial_mean(trial: TrialRecord) -> float | None:
    mean = trial.user_attrs.get(MEAN_ATTR)
    if isinstance(mean, bool) or not isinstance(mean, (int, float)):
        return None
    return float(mean)


@dataclass(frozen=True)
class _StateName:
    name: str


@dataclass(frozen=True)
class _AsFrozen:
    """The fields of Optuna's ``FrozenTrial`` that :func:`select` reads."""

    record: TrialRecord

    @property
    def state(self) -> _StateName:
        return _StateName(self.record.state.upper())

    @property
    def values(self) -> tuple[float, ...] | None:
        return self.record.values

    @property
    def user_attrs(self) -> Mapping[str, Any]:
        return self.record.user_attrs

    @property
    def number(self) -> int:
        return self.record.number


def best_record(
    trials: Sequence[TrialRecord],
    directions: Sequence[str],
    *,
    rule: str = "lcb",
    z: float = 1.0,
) -> TrialRecord | None:
    """The best complete trial of a single-objective study by ``rule`` (as
    :func:`luminary.tune.best`), ``None`` when none is complete; raises
    :class:`~luminary.errors.InvalidArgumentError` for a bad rule or ``z``."""
    if len(directions) != 1:
        return None
    done = [_AsFrozen(t) for t in trials if t.state == "complete" and t.values]
    if not done:  # still refuse a bad rule or z
        select(
            [_AsFrozen(TrialRecord(0, 0, 0, "", "complete", (0.0,)))], maximize=True, rule=rule, z=z
        )
        return None
    chosen: _AsFrozen = select(done, maximize=directions[0] == "maximize", rule=rule, z=z)
    return chosen.record


def pareto_numbers(trials: Sequence[TrialRecord], directions: Sequence[str]) -> list[int]:
    """Numbers of the complete trials no other complete trial dominates (as good in every
    objective, better in one), in order."""
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    points = [
        (t.number, [s * v for s, v in zip(signs, t.values, strict=True)])
        for t in trials
        if t.state == "complete" and t.values and len(t.values) == len(signs)
    ]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return sorted(n for n, p in points if not any(dominates(q, p) for _, q in points))


@dataclass(frozen=True)
class StudyCost:
    """Joules, GPU-hours and CPU-hours of a set of trials' runs (``trials``: how many)."""

    trials: int = 0
    joules: float = 0.0
    gpu_hours: float = 0.0
    cpu_hours: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "joules": self.joules,
            "gpu_hours": self.gpu_hours,
            "cpu_hours": self.cpu_hours,
        }


def _number(metrics: Mapping[str, float], key: str) -> float | None:
    v = metrics.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return max(float(v), 0.0)


def run_cost(metrics: Mapping[str, float]) -> StudyCost:
    """What one trial's run used: a job's GPU- and CPU-hours when it recorded them, else the
    energy meter's GPU and CPU seconds."""
    gpu = _number(metrics, GPU_HOURS)
    if gpu is None:
        gpu = (_number(metrics, GPU_SECONDS) or 0.0) / 3600
    cpu = _number(metrics, CPU_HOURS)
    if cpu is None:
        cpu = (_number(metrics, CPU_SECONDS) or 0.0) / 3600
    return StudyCost(1, _number(metrics, JOULES) or 0.0, gpu, cpu)


def study_cost(
    trials: Sequence[TrialRecord],
    metrics: Mapping[str, Mapping[str, float]],
    up_to: int | None = None,
) -> StudyCost:
    """The sum of :func:`run_cost` over ``trials`` (numbers up to and including ``up_to``
    when given); ``metrics`` maps each trial's run id to its run's latest metrics."""
    total = StudyCost()
    for t in trials:
        if up_to is not None and t.number > up_to:
            continue
        c = run_cost(metrics.get(t.run_id, {}))
        total = StudyCost(
            total.trials + 1,
            total.joules + c.joules,
            total.gpu_hours + c.gpu_hours,
            total.cpu_hours + c.cpu_hours,
        )
    return total
