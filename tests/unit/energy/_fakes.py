"""Meters whose readings the tests script."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from luminary.energy import Meter, Reading
from luminary.errors import BackendUnavailableError


class FakeMeter(Meter):
    """``value(n)`` gives the n-th reading's value (joules for a counter, watts for power)."""

    def __init__(
        self,
        device: str = "gpu0",
        source: str = "nvml-counter",
        kind: Literal["counter", "power"] = "counter",
        value: Callable[[int], float] = float,
        utilization: float | None = None,
        fail_after: int | None = None,
        periodic: bool = True,
    ) -> None:
        self.device = device
        self.name = f"fake:{device}"
        self.source = source
        self.kind = kind
        self.periodic = periodic
        self._value = value
        self._utilization = utilization
        self._fail_after = fail_after
        self.reads = 0
        self.closed = False

    @property
    def detail(self) -> str:
        return f"fake {self.kind} meter"

    def read(self) -> Reading:
        if self._fail_after is not None and self.reads >= self._fail_after:
            raise BackendUnavailableError("the fake device went away")
        value = self._value(self.reads)
        self.reads += 1
        return Reading(time.monotonic(), value, self._utilization)

    def close(self) -> None:
        self.closed = True
