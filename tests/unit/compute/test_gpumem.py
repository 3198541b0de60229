"""GPU memory limits: the limit a job gets, what frameworks are told, when the watchdog acts."""

from __future__ import annotations

from luminary._clock import now_ms
from luminary.compute import Job, JobSpec, JobState, Resources
from luminary.compute._gpumem import GpuMemoryWatch, limit_env, limit_mb, overrun


def _job(**resources: object) -> Job:
    spec = JobSpec(project="p", command=("true",), resources=Resources(**resources))  # type: ignore[arg-type]
    return Job("j", "r", spec, JobState.RUNNING, None, now_ms())


def test_a_memory_request_is_the_limit_whatever_the_device() -> None:
    assert limit_mb(_job(gpus=0.5, gpu_memory_mb=20_480), 81_920) == 20_480
    assert limit_mb(_job(gpu_memory_mb="20G"), 0) == 20_480


def test_a_fraction_of_a_known_device_is_a_limit_and_whole_devices_are_not() -> None:
    assert limit_mb(_job(gpus=0.25), 81_920) == 20_480
    assert limit_mb(_job(gpus=0.25), 0) is None  # size unknown: nothing to enforce
    assert limit_mb(_job(gpus=2), 81_920) is None


def test_frameworks_are_told_the_fraction() -> None:
    env = limit_env(20_480, 81_920)
    assert env["LUMINARY_GPU_MEMORY_MB"] == "20480"
    assert env["LUMINARY_GPU_MEMORY_FRACTION"] == "0.2500"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.2500"
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert limit_env(None, 81_920) == {}
    assert "LUMINARY_GPU_MEMORY_FRACTION" not in limit_env(1024, 0)


def test_the_watchdog_acts_past_the_tolerance_and_names_the_device() -> None:
    assert overrun({0: 20_000.0}, 20_480) is None
    assert overrun({0: 21_000.0}, 20_480) is None  # within 5 % (the CUDA context)
    why = overrun({0: 100.0, 1: 22_000.0}, 20_480)
    assert why == "GPU memory overrun: 22,000 MiB on device 1, 20,480 MiB asked"


def test_without_nvml_or_a_gpu_there_is_nothing_to_watch() -> None:
    watch = GpuMemoryWatch(["0"])
    try:
        if not watch.active:  # this machine: no driver or no nvidia-ml-py
            assert watch.usage({1, 2}) == {}
    finally:
        watch.close()
