"""What the Ray executor costs over raw Ray, doing the same work on the same cluster.

Two workloads, each run through :class:`luminary.compute._ray.RayExecutor` (``launch`` +
``poll`` until every job has ended) and through raw Ray (``ray.remote`` tasks whose body runs the
same subprocess, ``ray.wait`` until all are done):

- *tasks*: ``n_tasks`` one-node jobs of 1 CPU running ``true``, all submitted at once;
- *groups*: ``n_groups`` gangs, one after another, of 2 nodes x {1 GPU, 1 CPU} in a
  STRICT_SPREAD placement group: create the group, run ``true`` on both bundles, remove it.

The executor's extra work is its own design: each launch is one call to the supervisor actor
(which owns the tasks so that they outlive the executor's process), each poll one more, and a
gang also runs a small task in bundle 0 to find ``MASTER_ADDR``/``MASTER_PORT``. The ratio is
Luminary's wall time over raw Ray's (target: at most 1.2).

``measure()`` starts a local two-node cluster (``luminary.testing.ray_cluster``) unless given
an ``address``. Run as a script it prints the figures as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import ray

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute._ray import RayExecutor
from luminary.compute.models import Job, JobSpec, JobState, Pool, Resources
from luminary.testing.ray_cluster import ray_cluster

COMMAND = ["true"]
CLAIM = 64  # the most jobs one claim hands an agent (ComputeStore.claim_jobs' limit)
WARMUP = 8


def _job(resources: Resources, nodes: int = 1) -> Job:
    spec = JobSpec(project="bench", command=tuple(COMMAND), resources=resources, nodes=nodes)
    return Job(new_id(), new_id(), spec, JobState.STARTING, None, now_ms())


def _wait_all(executor: RayExecutor, refs: list[str]) -> None:
    pending = list(refs)
    while pending:
        reasons = executor.poll(pending)
        bad = {ref: why for ref, why in reasons.items() if why not in (None, "exited")}
        if bad:
            raise RuntimeError(f"jobs failed: {bad}")
        pending = [ref for ref in pending if reasons[ref] is None]
        if pending:
            time.sleep(0.02)


def _luminary_tasks(executor: RayExecutor, n: int) -> None:
    # as an agent does: what one claim hands it (at most CLAIM jobs) in one launch
    refs: list[str] = []
    for start in range(0, n, CLAIM):
        batch = [(_job(Resources(cpus=1)), COMMAND, {}) for _ in range(min(CLAIM, n - start))]
        for ref in executor.launch_many(batch):
            assert isinstance(ref, str), ref
            refs.append(ref)
    _wait_all(executor, refs)


def _luminary_groups(executor: RayExecutor, n: int) -> None:
    for _ in range(n):
        ref = executor.launch(_job(Resources(gpus=1, cpus=1), nodes=2), COMMAND, {})
        _wait_all(executor, [ref])


def _raw(n_tasks: int, n_groups: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """Raw Ray doing the same work (the task is defined here so that Ray ships it by value)."""

    def run(command: list[str]) -> int:
        return subprocess.run(command, check=False).returncode

    task = ray.remote(run)

    def tasks() -> None:
        refs = [task.options(num_cpus=1, max_retries=0).remote(COMMAND) for _ in range(n_tasks)]
        assert ray.get(refs) == [0] * n_tasks

    def groups() -> None:
        strategies = ray.util.scheduling_strategies
        for _ in range(n_groups):
            group = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * 2, strategy="STRICT_SPREAD")
            ray.get(group.ready(), timeout=60)
            refs = [
                task.options(
                    num_cpus=1,
                    num_gpus=1,
                    max_retries=0,
                    scheduling_strategy=strategies.PlacementGroupSchedulingStrategy(
                        placement_group=group, placement_group_bundle_index=i
                    ),
                ).remote(COMMAND)
                for i in range(2)
            ]
            assert ray.get(refs) == [0, 0]
            ray.util.remove_placement_group(group)

    return tasks, groups


def _timed(work: Callable[[], None]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _compare(n: int, luminary: Callable[[], None], raw: Callable[[], None]) -> dict[str, float]:
    # Alternate, best of three each, so that load elsewhere (and whatever state the cluster
    # gathers over a run) hits both alike.
    lum, ray_s = float("inf"), float("inf")
    for _ in range(3):
        ray_s = min(ray_s, _timed(raw))
        lum = min(lum, _timed(luminary))
    print(f"# {n}: Luminary {lum:.2f} s, Ray {ray_s:.2f} s", file=sys.stderr, flush=True)
    return {
        "n": n,
        "luminary_per_s": n / lum,
        "ray_per_s": n / ray_s,
        "luminary_s": lum,
        "ray_s": ray_s,
        "ratio": lum / ray_s,
    }


def _measure_on(address: str, n_tasks: int, n_groups: int) -> dict[str, Any]:
    pool = Pool(name="bench", executor="ray", options={"address": address})
    executor = RayExecutor(pool)
    try:
        raw_tasks, raw_groups = _raw(n_tasks, n_groups)
        _luminary_tasks(executor, WARMUP)  # connects, makes the supervisor, starts workers
        _raw(WARMUP, 1)[0]()
        tasks = _compare(n_tasks, lambda: _luminary_tasks(executor, n_tasks), raw_tasks)
        groups = _compare(n_groups, lambda: _luminary_groups(executor, n_groups), raw_groups)
    finally:
        executor.close()
    return {"ray_version": ray.__version__, "tasks": tasks, "groups": groups}


def measure(n_tasks: int = 200, n_groups: int = 50, address: str | None = None) -> dict[str, Any]:
    """Tasks/s and placement groups/s, Luminary's executor and raw Ray, and their ratio
    (Luminary's time over Ray's). Without ``address``, on a local two-node cluster of 2 CPUs
    and 2 logical GPUs per node, started and stopped here."""
    if address is not None:
        return _measure_on(address, n_tasks, n_groups)
    with ray_cluster(nodes=2, gpus=2, cpus=2) as cluster:
        return _measure_on(cluster.address, n_tasks, n_groups)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(measure(*args), indent=2))
