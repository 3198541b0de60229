"""NVML: against the real library where a GPU is present (skipped otherwise), and the choice
between counter and power sampling against a small fake ``pynvml`` that always runs."""

from __future__ import annotations

import sys
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from luminary.energy import NvmlMeter, Sampler, compare_counter_and_sampled_power
from luminary.energy._nvml import nvml_meters, nvml_status
from luminary.errors import BackendUnavailableError

# -- a real GPU ----------------------------------------------------------------------------


@pytest.fixture
def real_gpu() -> int:
    """The NVML index of a readable GPU, or skip."""
    try:
        import pynvml  # noqa: F401
    except ImportError:
        pytest.skip("nvidia-ml-py is not installed (pip install 'luminary[gpu]')")
    readable = [s for s in nvml_status() if s.readable]
    if not readable:
        reasons = "; ".join(s.reason for s in nvml_status())
        pytest.skip(f"no readable NVIDIA GPU here: {reasons}")
    return int(readable[0].device.removeprefix("gpu"))


def test_real_gpu_meter_reads_energy_or_power(real_gpu: int) -> None:
    meter = NvmlMeter(real_gpu)
    try:
        with Sampler([meter], interval_s=0.1) as sampler:
            time.sleep(1.0)
    finally:
        meter.close()
    [gpu] = sampler.report.devices
    assert gpu.source in ("nvml-counter", "nvml-power")
    assert not gpu.estimated
    assert gpu.joules > 0
    assert gpu.utilization is None or 0 <= gpu.utilization <= 100
    assert 0 < gpu.average_watts < 2000


def test_real_gpu_counter_and_sampled_power_helper_runs(real_gpu: int) -> None:
    probe_meter = NvmlMeter(real_gpu)
    probe_meter.close()
    if probe_meter.source != "nvml-counter":
        pytest.skip(f"GPU {real_gpu} has no NVML energy counter: {probe_meter.note}")
    result = compare_counter_and_sampled_power(
        real_gpu, 1.0, lambda: time.sleep(0.05), settle_s=0.5
    )
    assert result["counter_joules"] > 0
    assert result["sampled_joules"] > 0
    assert result["power_samples"] > 10


# -- a fake pynvml -------------------------------------------------------------------------


class _Error(Exception):
    def __init__(self, value: int = 999) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 12: "NVML Shared Library Not Found"}.get(self.value, "err")


class _NotSupported(_Error):
    def __init__(self) -> None:
        super().__init__(3)


def fake_pynvml(
    watts: tuple[float, ...] = (100.0, 60.0), counters: tuple[bool, ...] = (True, False)
) -> Any:
    """Two GPUs: gpu0 with an energy counter, gpu1 without; constant power each."""
    nv: Any = ModuleType("pynvml")
    nv.NVMLError = _Error
    nv.NVMLError_NotSupported = _NotSupported
    nv.inits = 0
    nv.fail_init = False
    born = time.monotonic()

    def init() -> None:
        if nv.fail_init:
            raise _Error(12)
        nv.inits += 1

    def shutdown() -> None:
        nv.inits -= 1

    def handle(index: int) -> SimpleNamespace:
        if not 0 <= index < len(watts):
            raise _Error(2)
        return SimpleNamespace(index=index)

    def energy(h: SimpleNamespace) -> int:
        if not counters[h.index]:
            raise _NotSupported()
        return int(1_000_000 + watts[h.index] * (time.monotonic() - born) * 1000)

    nv.nvmlInit = init
    nv.nvmlShutdown = shutdown
    nv.nvmlDeviceGetCount = lambda: len(watts)
    nv.nvmlDeviceGetHandleByIndex = handle
    nv.nvmlDeviceGetHandleByUUID = lambda uuid: handle(int(uuid.decode().rsplit("-", 1)[1]))
    nv.nvmlDeviceGetIndex = lambda h: h.index
    nv.nvmlDeviceGetName = lambda h: b"Fake GPU" if h.index == 0 else "Fake GPU"
    nv.nvmlDeviceGetTotalEnergyConsumption = energy
    nv.nvmlDeviceGetPowerUsage = lambda h: int(watts[h.index] * 1000)
    nv.nvmlDeviceGetUtilizationRates = lambda h: SimpleNamespace(gpu=75, memory=10)
    return nv


@pytest.fixture
def nv(monkeypatch: pytest.MonkeyPatch) -> Any:
    module = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return module


def test_counter_where_supported_power_sampling_otherwise(nv: Any) -> None:
    meters = [NvmlMeter(0), NvmlMeter(1)]
    with Sampler(meters, interval_s=0.02) as sampler:
        time.sleep(0.2)
    for meter in meters:
        meter.close()
    assert nv.inits == 0
    gpu0, gpu1 = sampler.report.devices
    assert (gpu0.source, gpu1.source) == ("nvml-counter", "nvml-power")
    assert gpu0.detail == "NVML total energy counter of GPU 0 (Fake GPU)"
    assert "energy counter unavailable (Not Supported)" in gpu1.detail
    duration = sampler.report.duration_s
    assert gpu0.joules == pytest.approx(100.0 * duration, rel=0.05)
    assert gpu1.joules == pytest.approx(60.0 * duration, rel=0.05)
    assert gpu0.utilization == pytest.approx(75.0)
    assert sampler.report.gpu_count == 2
    assert sampler.report.to_tags()["energy.measured"] == "all"


def test_status_lists_each_gpu(nv: Any) -> None:
    assert [(s.device, s.readable) for s in nvml_status()] == [("gpu0", True), ("gpu1", True)]
    assert nv.inits == 0


def test_no_driver_is_explained(nv: Any) -> None:
    nv.fail_init = True
    [status] = nvml_status()
    assert not status.readable
    assert "NVML Shared Library Not Found" in status.reason
    assert "driver" in status.fix
    assert nvml_meters() == []
    with pytest.raises(BackendUnavailableError, match="NVML did not start"):
        NvmlMeter(0)


@pytest.mark.parametrize(
    ("visible", "devices"),
    [
        (None, ["gpu0", "gpu1"]),
        ("1", ["gpu1"]),
        ("GPU-fake-0", ["gpu0"]),
        ("", []),
        ("0,x,1", ["gpu0"]),
    ],
)
def test_meters_follow_cuda_visible_devices(
    nv: Any, monkeypatch: pytest.MonkeyPatch, visible: str | None, devices: list[str]
) -> None:
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    meters = nvml_meters()
    assert [m.device for m in meters] == devices
    for meter in meters:
        meter.close()
    assert nv.inits == 0


def test_closed_meter_says_so(nv: Any) -> None:
    meter = NvmlMeter(0)
    meter.close()
    meter.close()
    with pytest.raises(BackendUnavailableError, match="is closed"):
        meter.read()


def test_counter_and_sampled_power_agree_on_steady_power(nv: Any) -> None:
    result = compare_counter_and_sampled_power(
        0, 0.15, lambda: time.sleep(0.01), period_s=0.005, settle_s=0.02
    )
    assert result["counter_joules"] == pytest.approx(100.0 * result["window_s"], rel=0.02)
    assert abs(result["relative_difference"]) < 0.05
    assert result["within_5_percent"] is True
    assert result["load_calls"] >= 5
    assert nv.inits == 0


def test_helper_refuses_a_gpu_without_counter(nv: Any) -> None:
    with pytest.raises(BackendUnavailableError, match="no energy counter"):
        compare_counter_and_sampled_power(1, 0.1, lambda: None)
    assert nv.inits == 0
