from __future__ import annotations

import asyncio
import time

import pytest

import luminary as lm
from luminary.energy import EnergyReport, measure
from luminary.errors import InvalidArgumentError, InvalidStateError

pytestmark = pytest.mark.usefixtures("no_rapl")


def _busy(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_context_manager_reports_after_the_block() -> None:
    with lm.energy.measure(interval_s=0.05, tdp_w=128.0) as m:
        _busy(0.2)
    report = m.report
    assert isinstance(report, EnergyReport)
    assert report.duration_s >= 0.2
    assert report.cpu_seconds >= 0.15
    cpu = report.device("cpu")
    assert cpu is not None
    assert cpu.estimated
    assert cpu.source == "estimate"
    assert "TDP 128 W" in cpu.detail
    assert "given: tdp_w=" in cpu.detail
    assert cpu.joules > 0
    assert report.any_estimated


def test_report_before_the_block_ends_is_an_error() -> None:
    with measure() as m, pytest.raises(InvalidStateError, match="after the"):
        _ = m.report


def test_block_that_raises_still_has_a_report() -> None:
    m = measure()
    with pytest.raises(KeyError), m:
        raise KeyError("boom")
    assert m.report.duration_s >= 0


def test_measurement_is_not_reentrant_but_reusable() -> None:
    m = measure()
    with m, pytest.raises(InvalidStateError, match="already running"), m:
        pass
    with m:
        pass
    assert m.report.duration_s >= 0


def test_decorator_returns_the_value_and_keeps_the_report() -> None:
    @lm.energy.measure(interval_s=0.05)
    def double(x: int) -> int:
        """Twice x."""
        _busy(0.05)
        return 2 * x

    assert double.last_energy is None
    assert double(21) == 42
    first = double.last_energy
    assert first is not None
    assert first.cpu_seconds > 0
    assert double.__name__ == "double"
    assert double.__doc__ == "Twice x."
    double(1)
    assert double.last_energy is not first


def test_decorated_function_that_raises_still_records_energy() -> None:
    @measure()
    def fail() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        fail()
    assert fail.last_energy is not None


def test_decorated_coroutine_is_measured_while_awaited() -> None:
    @measure(interval_s=0.05)
    async def wait(x: str) -> str:
        await asyncio.sleep(0.1)
        return x

    assert asyncio.run(wait("done")) == "done"
    assert wait.last_energy is not None
    assert wait.last_energy.duration_s >= 0.1


@pytest.mark.parametrize("kwargs", [{"interval_s": 0}, {"tdp_w": -1.0}])
def test_bad_arguments_fail_at_once(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgumentError):
        measure(**kwargs)
