from __future__ import annotations

import json

import pytest

from luminary.energy import DeviceEnergy, EnergyReport, SourceStatus


def _device(
    name: str, joules: float, source: str = "rapl", util: float | None = None
) -> DeviceEnergy:
    return DeviceEnergy(
        device=name,
        joules=joules,
        average_watts=joules / 10,
        source=source,
        estimated=source == "estimate",
        detail=f"{name} via {source}",
        utilization=util,
    )


def _report(*devices: DeviceEnergy, gpus: int = 0) -> EnergyReport:
    return EnergyReport(duration_s=10.0, devices=devices, cpu_seconds=7.5, gpu_count=gpus)


def test_totals_split_measured_from_estimated() -> None:
    report = _report(_device("cpu", 30.0, "estimate"), _device("gpu0", 500.0, "nvml-counter"))
    assert report.total_joules == 530.0
    assert report.measured_joules == 500.0
    assert report.estimated_joules == 30.0
    assert report.any_estimated
    assert not report.all_estimated
    assert report.to_tags()["energy.measured"] == "partial"


@pytest.mark.parametrize(
    ("sources", "measured"),
    [(("rapl", "rapl"), "all"), (("estimate",), "none"), ((), "none")],
)
def test_measured_tag(sources: tuple[str, ...], measured: str) -> None:
    report = _report(*(_device(f"d{i}", 1.0, s) for i, s in enumerate(sources)))
    assert report.to_tags()["energy.measured"] == measured
    assert report.all_estimated == (measured == "none" and bool(sources))


def test_metric_names() -> None:
    report = _report(
        _device("cpu", 30.0, "rapl", util=40.0), _device("gpu0", 500.0, "nvml-power"), gpus=1
    )
    assert report.to_metrics() == {
        "energy/cpu_joules": 30.0,
        "power/cpu_watts": 3.0,
        "utilization/cpu_percent": 40.0,
        "energy/gpu0_joules": 500.0,
        "power/gpu0_watts": 50.0,
        "energy/total_joules": 530.0,
        "resources/cpu_seconds": 7.5,
        "resources/gpu_seconds": 10.0,
        "resources/duration_seconds": 10.0,
    }


def test_tags_carry_source_and_detail_per_device() -> None:
    report = _report(_device("cpu", 1.0, "estimate"))
    assert report.to_tags() == {
        "energy.cpu.source": "estimate",
        "energy.cpu.detail": "cpu via estimate",
        "energy.measured": "none",
    }


def test_dict_round_trip_through_json() -> None:
    report = _report(_device("cpu", 1.0, "estimate", util=12.5), _device("dram", 2.0))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["estimated_joules"] == 1.0
    assert data["measured"] == "partial"
    assert EnergyReport.from_dict(data) == report
    assert report.device("dram") == report.devices[1]
    assert report.device("gpu7") is None


def test_source_status_to_dict() -> None:
    status = SourceStatus("rapl", "cpu", False, "permission denied reading x", "sudo chmod a+r x")
    assert status.to_dict() == {
        "name": "rapl",
        "device": "cpu",
        "readable": False,
        "reason": "permission denied reading x",
        "fix": "sudo chmod a+r x",
    }
