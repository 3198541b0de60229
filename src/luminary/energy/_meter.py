"""The meter interface: one device, one primitive (``read``).

A meter is either a *counter* (``read().value`` is cumulative energy in joules since the meter
was made: RAPL, the NVML energy counter, the CPU-time estimate) or a *power* meter
(``read().value`` is watts now: NVML power sampling). :class:`Track` turns a meter's readings
into joules and a mean utilisation; it does no I/O.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

__all__ = ["Meter", "Reading", "Track"]


@dataclass(frozen=True)
class Reading:
    """One reading of a meter.

    ``time_s`` is ``time.monotonic()`` just after the read. ``value`` is cumulative joules for
    a counter meter and watts for a power meter. ``utilization`` is the device's busy
    percentage over the recent past where the meter knows it (NVML), else None.
    """

    time_s: float
    value: float
    utilization: float | None = None


class Meter(abc.ABC):
    """Reads one device's energy or power.

    Subclasses set ``name`` (e.g. ``"rapl:cpu"``), ``device`` (``"cpu"``, ``"dram"``,
    ``"gpu0"``…), ``source`` (``"rapl"``, ``"nvml-counter"``, ``"nvml-power"``,
    ``"estimate"``), ``kind`` and ``detail``, and implement :meth:`read`.

    ``periodic`` says whether the meter must be read during the interval (RAPL, to see every
    counter wrap; power meters, to integrate; meters that report utilisation) or only at its
    start and end (a cumulative estimate). Not thread safe: one :class:`Sampler` drives a
    meter at a time. :meth:`read` raises :class:`~luminary.errors.BackendUnavailableError`
    when the hardware stops answering.
    """

    kind: Literal["counter", "power"] = "counter"
    name: str
    device: str
    source: str
    periodic: bool = True

    @property
    def estimated(self) -> bool:
        return self.source == "estimate"

    @property
    @abc.abstractmethod
    def detail(self) -> str:
        """How the figure is made, e.g. ``"intel-rapl:0 package counter"``."""

    @abc.abstractmethod
    def read(self) -> Reading:
        """Read the device now."""

    def close(self) -> None:  # noqa: B027 - optional hook; most meters hold nothing
        """Release what the meter holds (an NVML handle). Idempotent."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.detail}>"


class Track:
    """Joules and mean utilisation from one meter's successive readings (pure arithmetic).

    Counter meters: energy is the last value minus the first. Power meters: the trapezoid
    rule over the readings. Utilisation: each reading's value weighted by the time since the
    previous reading.
    """

    def __init__(self, kind: Literal["counter", "power"], first: Reading) -> None:
        self.kind = kind
        self.first = first
        self.last = first
        self.samples = 1
        self._power_joules = 0.0
        self._util_weighted = 0.0
        self._util_time = 0.0

    def add(self, reading: Reading) -> None:
        dt = reading.time_s - self.last.time_s
        if dt < 0:
            return
        if self.kind == "power":
            self._power_joules += 0.5 * (self.last.value + reading.value) * dt
        if reading.utilization is not None:
            self._util_weighted += reading.utilization * dt
            self._util_time += dt
        self.last = reading
        self.samples += 1

    @property
    def joules(self) -> float:
        if self.kind == "power":
            return self._power_joules
        return max(0.0, self.last.value - self.first.value)

    @property
    def utilization(self) -> float | None:
        if self._util_time <= 0:
            return None
        return self._util_weighted / self._util_time
