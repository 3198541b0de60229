from __future__ import annotations

import sys
from pathlib import Path

import pytest

from luminary.energy import default_meters, probe
from luminary.errors import InvalidArgumentError, MissingDependencyError

from .conftest import MakeZone


def test_probe_on_this_machine_explains_every_unreadable_source() -> None:
    statuses = probe()
    names = {s.name for s in statuses}
    assert {"rapl", "nvml", "estimate"} <= names
    assert any(s.name == "estimate" and s.device == "cpu" and s.readable for s in statuses)
    for status in statuses:
        if status.readable:
            assert (status.reason, status.fix) == ("", "")
        else:
            assert status.reason, status
            assert status.fix, status


def test_probe_reports_a_tree_without_counters(tmp_path: Path) -> None:
    rapl = [s for s in probe(tmp_path / "absent") if s.name == "rapl"]
    assert [(s.device, s.readable) for s in rapl] == [("", False)]
    assert str(tmp_path / "absent") in rapl[0].reason


def test_probe_lists_readable_rapl_devices(make_zone: MakeZone, powercap: Path) -> None:
    make_zone("intel-rapl:0", "package-0", 1)
    make_zone("intel-rapl:0:2", "dram", 1)
    rapl = [s for s in probe(powercap) if s.name == "rapl"]
    assert [(s.device, s.readable) for s in rapl] == [("cpu", True), ("dram", True)]


def test_probe_without_pynvml_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml now raises ImportError
    [nvml] = [s for s in probe() if s.name == "nvml"]
    assert (nvml.device, nvml.readable) == ("", False)
    assert "nvidia-ml-py" in nvml.reason
    assert nvml.fix == "pip install 'luminary[gpu]'"


def test_meters_without_pynvml_raise_missing_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    from luminary.energy import NvmlMeter

    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MissingDependencyError, match=r"luminary\[gpu\]"):
        NvmlMeter(0)


def test_default_meters_use_rapl_for_the_cpu_when_readable_and_never_both(
    make_zone: MakeZone, powercap: Path
) -> None:
    make_zone("intel-rapl:0", "package-0", 1)
    make_zone("intel-rapl:0:2", "dram", 1)
    meters = default_meters(powercap_root=powercap)
    try:
        cpu = [m for m in meters if m.device == "cpu"]
        assert [m.source for m in cpu] == ["rapl"]
        assert [m.device for m in meters][:2] == ["cpu", "dram"]
    finally:
        for meter in meters:
            meter.close()


def test_default_meters_refuse_a_bad_tdp() -> None:
    with pytest.raises(InvalidArgumentError, match="tdp_w=0"):
        default_meters(tdp_w=0)
