"""Fair-share accounting: decayed usage per project, in GPU-hours.

No I/O, not thread-safe. Usage decays exponentially with a half-life (Slurm's
``PriorityDecayHalfLife``): a GPU-hour used one half-life ago counts as half of one used now.
While a job runs its project accrues its *charge* continuously, so a project's usage at time
``t`` is

    U(t) = U(t0) * 2**(-(t - t0)/h)  +  rate * h/ln 2 * (1 - 2**(-(t - t0)/h))

for a constant charge ``rate`` (GPU-equivalents) between ``t0`` and ``t``.

The charge of a job is dominant-resource style, in GPU-equivalents per node summed over nodes:
``max(gpus, cpus / cpus_per_gpu)`` where ``gpus`` counts fractions and device-memory requests
as the fraction they hold, and ``cpus_per_gpu`` is the CPUs per GPU of the cluster's GPU pools
(all enabled pools' CPUs over their GPUs), or :data:`CPUS_PER_GPU_EQUIVALENT` where no pool
has GPUs. A CPU-only job on 16 CPUs of 64-CPU/8-GPU nodes is charged 2 GPU-hours per hour: it
keeps as much of a node from GPU work as two GPUs do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from luminary.compute.models import JobSpec, Pool

__all__ = [
    "CPUS_PER_GPU_EQUIVALENT",
    "DEFAULT_HALF_LIFE_S",
    "Usage",
    "charge",
    "cpus_per_gpu",
    "decayed",
]

#: Fair-share usage half-life: one day. A lab's rhythm is daily (jobs submitted in the working
#: day run overnight): yesterday's heavy use should still count half today, so the project that
#: filled the cluster yesterday waits behind the one that did not, while a burst from a week ago
#: weighs 1/128 and no longer holds a project back. Slurm's default is 7 days, tuned to
#: monthly allocations; Kueue's fair sharing has no memory at all.
DEFAULT_HALF_LIFE_S = 24 * 3600.0

#: CPUs that count as one GPU-equivalent when no pool has GPUs.
CPUS_PER_GPU_EQUIVALENT = 8.0

_MS_PER_HOUR = 3_600_000.0


def cpus_per_gpu(pools: Sequence[Pool]) -> float:
    """CPUs per GPU of the enabled GPU pools, or :data:`CPUS_PER_GPU_EQUIVALENT`."""
    gpu_pools = [p for p in pools if p.enabled and p.gpus]
    gpus = sum(p.total_gpus for p in gpu_pools)
    cpus = sum(p.total_cpus for p in gpu_pools)
    return cpus / gpus if gpus and cpus else CPUS_PER_GPU_EQUIVALENT


def charge(spec: JobSpec, gpus_per_node: float, ratio: float) -> float:
    """GPU-equivalents ``spec`` is charged while it runs, given the GPUs (fractions included)
    it holds per node and the cluster's CPUs per GPU."""
    return spec.nodes * max(gpus_per_node, spec.resources.cpus / ratio)


def decayed(usage: float, rate: float, dt_ms: float, half_life_s: float) -> float:
    """``usage`` decayed over ``dt_ms`` while accruing ``rate`` GPU-equivalents."""
    if dt_ms <= 0:
        return usage
    h = half_life_s * 1000.0
    factor: float = 2.0 ** (-dt_ms / h)
    return usage * factor + rate * (h / _MS_PER_HOUR) / math.log(2) * (1.0 - factor)


class Usage:
    """Decayed usage and the current charge rate of each project."""

    def __init__(self, half_life_s: float) -> None:
        if not half_life_s > 0 or not math.isfinite(half_life_s):
            from luminary.errors import InvalidArgumentError

            msg = f"half_life_s={half_life_s!r} is not valid; give a positive number of seconds"
            raise InvalidArgumentError(msg)
        self.half_life_s = half_life_s
        self.value: dict[str, float] = {}
        self.as_of: dict[str, int] = {}
        self.rate: dict[str, float] = {}
        self.base_ms = 0

    def set(self, usage: Mapping[str, float], as_of_ms: int) -> None:
        """Replace every project's usage by ``usage`` (0 for those missing) as of ``as_of_ms``."""
        self.base_ms = as_of_ms
        for project in set(self.value) | set(usage):
            self.value[project] = float(usage.get(project, 0.0))
            self.as_of[project] = as_of_ms

    def advance(self, project: str, now_ms: int) -> float:
        """The project's usage at ``now_ms``, kept (clocks only move forward)."""
        then = self.as_of.get(project, self.base_ms)
        value = self.value.get(project, 0.0)
        if now_ms > then:
            value = decayed(value, self.rate.get(project, 0.0), now_ms - then, self.half_life_s)
            self.value[project], self.as_of[project] = value, now_ms
        elif project not in self.as_of:
            self.value[project], self.as_of[project] = value, then
        return value

    def add_rate(self, project: str, rate: float, since_ms: int) -> None:
        """Start accruing ``rate`` from ``since_ms`` (or the project's clock, if later)."""
        self.advance(project, since_ms)
        self.rate[project] = self.rate.get(project, 0.0) + rate

    def remove_rate(self, project: str, rate: float, now_ms: int) -> None:
        self.advance(project, now_ms)
        left = self.rate.get(project, 0.0) - rate
        self.rate[project] = 0.0 if abs(left) < 1e-9 else left

    def peek(self, projects: Iterable[str], now_ms: int) -> dict[str, float]:
        """Usage at ``now_ms`` without keeping it."""
        out = {}
        for project in projects:
            then = self.as_of.get(project, self.base_ms)
            value = self.value.get(project, 0.0)
            rate = self.rate.get(project, 0.0)
            out[project] = decayed(value, rate, now_ms - then, self.half_life_s)
        return out
