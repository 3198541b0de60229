from __future__ import annotations

import time

import pytest

from luminary.energy import DEFAULT_INTERVAL_S, POWER_INTERVAL_S, Sampler
from luminary.errors import BackendUnavailableError, InvalidArgumentError, InvalidStateError

from ._fakes import FakeMeter


def test_default_interval_is_a_counter_period_that_sees_every_wrap() -> None:
    assert 0 < POWER_INTERVAL_S <= DEFAULT_INTERVAL_S <= 1.0


def test_counter_energy_is_last_minus_first_reading() -> None:
    meter = FakeMeter(value=lambda n: 100.0 + 2.0 * n)
    sampler = Sampler([meter], interval_s=0.01).start()
    time.sleep(0.1)
    report = sampler.stop()
    [gpu] = report.devices
    assert meter.reads >= 4  # read on the thread between start and stop
    assert gpu.joules == pytest.approx(2.0 * (meter.reads - 1))
    assert gpu.average_watts == pytest.approx(gpu.joules / report.duration_s)
    assert (gpu.source, gpu.estimated, gpu.detail) == ("nvml-counter", False, "fake counter meter")
    assert report.gpu_count == 1
    assert report.to_metrics()["resources/gpu_seconds"] == pytest.approx(report.duration_s)
    assert not meter.closed  # the caller's meters stay open


def test_power_is_integrated_with_the_trapezoid_rule() -> None:
    meter = FakeMeter(source="nvml-power", kind="power", value=lambda n: 50.0, utilization=40.0)
    with Sampler([meter], interval_s=0.02) as sampler:
        time.sleep(0.15)
    [gpu] = sampler.report.devices
    assert gpu.joules == pytest.approx(50.0 * sampler.report.duration_s, rel=0.02)
    assert gpu.utilization == pytest.approx(40.0)
    assert "sampled every 0.02 s" in gpu.detail
    assert sampler.report.to_metrics()["utilization/gpu0_percent"] == pytest.approx(40.0)


def test_power_meters_are_read_faster_than_counters() -> None:
    sampler = Sampler([FakeMeter(kind="power"), FakeMeter("cpu", "rapl")], interval_s=0.5)
    assert [sampler.period_s(m) for m in sampler.meters] == [0.5, POWER_INTERVAL_S]


def test_non_periodic_meter_is_read_only_at_start_and_stop() -> None:
    meter = FakeMeter("cpu", "estimate", periodic=False)
    with Sampler([meter], interval_s=0.01):
        time.sleep(0.05)
    assert meter.reads == 2


def test_devices_are_ordered_cpu_dram_then_gpus() -> None:
    meters = [FakeMeter("gpu10"), FakeMeter("gpu2"), FakeMeter("dram", "rapl"), FakeMeter("cpu")]
    with Sampler(meters, interval_s=0.01) as sampler:
        pass
    assert [d.device for d in sampler.report.devices] == ["cpu", "dram", "gpu2", "gpu10"]
    assert sampler.report.gpu_count == 2


def test_cpu_utilisation_comes_from_the_measured_processes() -> None:
    with Sampler([FakeMeter("cpu", "rapl")], interval_s=0.01) as sampler:
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
    report = sampler.report
    assert report.cpu_seconds >= 0.15
    [cpu] = report.devices
    allowed = sampler.processes.allowed_cpus()
    assert cpu.utilization == pytest.approx(
        100 * report.cpu_seconds / (report.duration_s * allowed)
    )


def test_a_meter_that_fails_midway_keeps_what_it_measured() -> None:
    failing = FakeMeter(value=lambda n: 10.0 * n, fail_after=3)
    healthy = FakeMeter("cpu", "rapl", value=lambda n: float(n))
    with Sampler([failing, healthy], interval_s=0.01) as sampler:
        time.sleep(0.1)
    report = sampler.report
    gpu = report.device("gpu0")
    assert gpu is not None
    assert gpu.joules == pytest.approx(20.0)
    assert "stopped after" in gpu.detail
    assert "the fake device went away" in gpu.detail
    cpu = report.device("cpu")
    assert cpu is not None
    assert cpu.joules > 2


def test_a_meter_bug_is_raised_by_stop() -> None:
    def broken(n: int) -> float:
        if n >= 1:
            raise ZeroDivisionError("bug in a meter")
        return 0.0

    sampler = Sampler([FakeMeter(value=broken)], interval_s=0.01).start()
    time.sleep(0.05)
    with pytest.raises(ZeroDivisionError, match="bug in a meter"):
        sampler.stop()


def test_a_meter_that_fails_at_start_raises() -> None:
    with pytest.raises(BackendUnavailableError):
        Sampler([FakeMeter(fail_after=0)]).start()


def test_lifecycle_errors_say_what_to_do() -> None:
    sampler = Sampler([FakeMeter()], interval_s=0.01)
    with pytest.raises(InvalidStateError, match="call start"):
        sampler.stop()
    with pytest.raises(InvalidStateError, match="call stop"):
        _ = sampler.report
    sampler.start()
    with pytest.raises(InvalidStateError, match="already started"):
        sampler.start()
    first = sampler.stop()
    assert sampler.stop() is first
    assert sampler.overhead_cpu_s >= 0


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="interval_s=0"):
        Sampler([FakeMeter()], interval_s=0)
    with pytest.raises(InvalidArgumentError, match="two meters for device 'gpu0'"):
        Sampler([FakeMeter(), FakeMeter()])


def test_sampler_without_meters_uses_this_machines_and_closes_them(no_rapl: None) -> None:
    with Sampler(interval_s=0.05) as sampler:
        pass
    cpu = sampler.report.device("cpu")
    assert cpu is not None
    assert (cpu.source, cpu.estimated) == ("estimate", True)


def test_empty_sampler_reports_no_devices() -> None:
    with Sampler([], interval_s=0.01) as sampler:
        pass
    assert sampler.report.devices == ()
    assert sampler.report.to_tags() == {"energy.measured": "none"}
