"""``measure()``: the energy of a block or of each call of a function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from luminary.energy._sampler import DEFAULT_INTERVAL_S, Sampler
from luminary.energy.models import EnergyReport
from luminary.errors import InvalidArgumentError, InvalidStateError

__all__ = ["MeasuredFunction", "Measurement", "measure"]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class MeasuredFunction(Protocol[P, R_co]):
    """A function decorated with ``@measure()``: same signature and return value, and
    ``last_energy``, the report of its most recent call (None before the first)."""

    last_energy: EnergyReport | None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


class Measurement:
    """What :func:`measure` returns: a context manager and a decorator.

    As a context manager, ``m.report`` is the :class:`EnergyReport` once the block has ended
    (also when it raised). As a decorator, every call is measured on its own and its report
    is the wrapped function's ``last_energy`` (a coroutine function is measured from the first
    to the last step of the awaited call). The meters are chosen at entry and closed at exit.
    Not reentrant: a ``with`` block at a time; decorated functions may be called from several
    threads, each call with its own sampler.
    """

    def __init__(
        self,
        *,
        pids: Sequence[int] | None = None,
        interval_s: float | None = None,
        tdp_w: float | None = None,
    ) -> None:
        if interval_s is not None and not interval_s > 0:
            msg = f"interval_s={interval_s!r} is not valid; give a positive number of seconds"
            raise InvalidArgumentError(msg)
        if tdp_w is not None and not tdp_w > 0:
            msg = f"tdp_w={tdp_w!r} is not valid; give the CPU package's TDP in watts (> 0)"
            raise InvalidArgumentError(msg)
        self.pids = tuple(pids) if pids else None
        self.interval_s = DEFAULT_INTERVAL_S if interval_s is None else interval_s
        self.tdp_w = tdp_w
        self._sampler: Sampler | None = None
        self._report: EnergyReport | None = None

    def _new_sampler(self) -> Sampler:
        # The sampler makes the meters and closes them when it stops (or fails to start).
        return Sampler(interval_s=self.interval_s, pids=self.pids, tdp_w=self.tdp_w)

    @staticmethod
    def _finish(sampler: Sampler) -> EnergyReport:
        return sampler.stop()

    @property
    def report(self) -> EnergyReport:
        if self._report is None:
            msg = "no energy report yet: read m.report after the `with measure() as m:` block"
            raise InvalidStateError(msg)
        return self._report

    def __enter__(self) -> Measurement:
        if self._sampler is not None:
            msg = "this measurement is already running; use a new measure() per block"
            raise InvalidStateError(msg)
        sampler = self._new_sampler()
        sampler.start()
        self._report = None
        self._sampler = sampler
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            self._report = self._finish(sampler)

    def _fresh(self) -> Measurement:
        return Measurement(pids=self.pids, interval_s=self.interval_s, tdp_w=self.tdp_w)

    def __call__(self, fn: Callable[P, R]) -> MeasuredFunction[P, R]:
        if inspect.iscoroutinefunction(fn):
            async_fn = cast("Callable[P, Any]", fn)

            @functools.wraps(fn)
            async def measured_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                block = self._fresh()
                try:
                    with block:
                        return await async_fn(*args, **kwargs)
                finally:
                    result.last_energy = block._report

            result = cast("MeasuredFunction[P, R]", measured_async)
        else:

            @functools.wraps(fn)
            def measured(*args: P.args, **kwargs: P.kwargs) -> R:
                block = self._fresh()
                try:
                    with block:
                        return fn(*args, **kwargs)
                finally:
                    result.last_energy = block._report

            result = cast("MeasuredFunction[P, R]", measured)
        result.last_energy = None
        return result


def measure(
    *,
    pids: Sequence[int] | None = None,
    interval_s: float | None = None,
    tdp_w: float | None = None,
) -> Measurement:
    """Measure the energy of a block or of every call of a function.

    ::

        with lm.energy.measure() as m:
            train()
        print(m.report.total_joules, m.report.to_tags())

        @lm.energy.measure()
        def infer(batch): ...
        infer(batch)              # returns what infer returns
        infer.last_energy         # the EnergyReport of that call

    ``pids``: processes to account for (with their descendants; default this process).
    ``interval_s``: sampling period (default :data:`DEFAULT_INTERVAL_S`). ``tdp_w``: the CPU
    package's TDP for the estimate used when no CPU counter is readable (else
    ``LUMINARY_CPU_TDP_W``, the built-in table, or a documented default). Every device says
    its source; estimated figures are labelled so.
    """
    return Measurement(pids=pids, interval_s=interval_s, tdp_w=tdp_w)
