"""How the Ray executor turns a job's resources and a pool's options into Ray's terms.

No cluster is needed: these read only the executor's own translation."""

from __future__ import annotations

from typing import Any

import pytest

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute._ray import RayExecutor, gpus_of
from luminary.compute.models import Job, JobSpec, JobState, Pool, Resources
from luminary.errors import InvalidArgumentError
from tests._components import import_component


def ray_pool(gpu_memory_mb: int = 0, **options: str) -> Pool:
    return Pool(name="r", executor="ray", gpus=2, gpu_memory_mb=gpu_memory_mb, options=options)


def spec(**resources: Any) -> JobSpec:
    return JobSpec(project="p", command=("true",), resources=Resources(**resources))


def test_fractions_cpus_and_memory_map_to_ray_options_and_a_bundle() -> None:
    options, bundle = RayExecutor(ray_pool()).options_for(spec(gpus=0.5, cpus=2, memory_mb=1024))
    assert options == {"num_cpus": 2.0, "num_gpus": 0.5, "memory": 1 << 30, "max_retries": 0}
    assert bundle == {"CPU": 2.0, "GPU": 0.5, "memory": float(1 << 30)}


def test_a_cpu_only_job_asks_ray_for_no_gpu() -> None:
    options, bundle = RayExecutor(ray_pool()).options_for(spec(cpus=1))
    assert "num_gpus" not in options
    assert bundle == {"CPU": 1.0}


def test_gpu_memory_becomes_a_share_of_one_device() -> None:
    assert gpus_of(spec(gpu_memory_mb=20_000), ray_pool(gpu_memory_mb=80_000)) == 0.25
    assert gpus_of(spec(gpu_memory_mb=90_000), ray_pool(gpu_memory_mb=80_000)) == 1.0
    with pytest.raises(InvalidArgumentError, match="gpu_memory_mb"):
        gpus_of(spec(gpu_memory_mb=20_000), ray_pool())


@pytest.mark.parametrize("value", ["0", "-1", "soon", "100000"])
def test_a_bad_placement_timeout_is_refused_by_name(value: str) -> None:
    with pytest.raises(InvalidArgumentError, match="placement_timeout"):
        RayExecutor(ray_pool(placement_timeout=value))


def test_an_address_without_a_port_is_refused_before_ray_is_asked() -> None:
    import_component("ray", "ray")
    executor = RayExecutor(ray_pool(address="ray://head"))
    job = Job(new_id(), new_id(), spec(), JobState.STARTING, None, now_ms())
    with pytest.raises(InvalidArgumentError, match="ray://host:port"):
        executor.launch(job, ["true"], {})
