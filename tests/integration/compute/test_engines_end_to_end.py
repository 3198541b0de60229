"""The same job spec through the whole path on Ray and on Slurm: submitted to the queue, placed
by the scheduler, launched by an agent through the engine, run by ``luminary.compute.runner``
on the node the engine chose, streaming its output, landing as a run with its resources."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.compute import JobSpec, JobState, Pool, Resources
from luminary.compute._agent import AgentLoop
from luminary.compute.jobs import JobHandle, submit_spec
from luminary.store import RunStatus, SqlStore
from luminary.testing.ray_cluster import RayCluster
from luminary.testing.slurm import SlurmCluster

WAIT = 180.0
SCRIPT = (
    "import os, time\n"
    "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], "
    "'run', os.environ['LUMINARY_RUN_ID'], flush=True)\n"
    "time.sleep(0.5)\n"
    "print('done', flush=True)\n"
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlStore]:
    monkeypatch.setenv("LUMINARY_JOB_HEARTBEAT_S", "1")
    monkeypatch.setenv("LUMINARY_ENERGY", "0")
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    yield s
    s.close()


def _serve(store: SqlStore, pool: str) -> tuple[AgentLoop, threading.Thread]:
    loop = AgentLoop(store, pool)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return loop, thread


def _run(store: SqlStore, pool: str, spec: JobSpec) -> JobHandle:
    loop, thread = _serve(store, pool)
    try:
        handle = submit_spec(spec, store=store, start_agents=False)
        handle.wait(WAIT)
    finally:
        loop.stop()
        thread.join(timeout=60)
    return handle


def _spec(pool: str, **kw: object) -> JobSpec:
    return JobSpec(
        project="cms-btag",
        command=("python", "-c", SCRIPT),
        resources=Resources(gpus=0.5, cpus=1),
        pool=pool,
        time_limit_s=600,
        **kw,  # type: ignore[arg-type]
    )


def _check_landed(store: SqlStore, handle: JobHandle, ranks: int = 1) -> None:
    job = handle.refresh()
    assert job.state is JobState.SUCCEEDED, job.reason
    text = "".join(handle.logs())
    for rank in range(ranks):
        assert f"rank {rank} of {ranks} run {job.run_id}" in text
    assert text.count("done") == ranks
    run = store.get_run(job.run_id)
    assert run.status is RunStatus.FINISHED
    key = "resources/gpu_hours" if ranks == 1 else "rank0/resources/gpu_hours"
    assert run.metrics[key] > 0
    assert job.executor_ref


def test_a_job_runs_on_ray_through_the_queue(store: SqlStore, ray_cluster: RayCluster) -> None:
    store.put_pool(
        Pool(
            "ray", executor="ray", nodes=2, gpus=2, cpus=2, options={"address": ray_cluster.address}
        )
    )
    handle = _run(store, "ray", _spec("ray"))
    _check_landed(store, handle)


def test_a_gang_runs_on_ray_through_the_queue(store: SqlStore, ray_cluster: RayCluster) -> None:
    store.put_pool(
        Pool(
            "ray", executor="ray", nodes=2, gpus=2, cpus=2, options={"address": ray_cluster.address}
        )
    )
    handle = _run(store, "ray", _spec("ray", nodes=2).with_(resources=Resources(gpus=1, cpus=1)))
    _check_landed(store, handle, ranks=2)


def test_a_job_runs_on_slurm_through_the_queue(
    store: SqlStore, slurm_cluster: SlurmCluster
) -> None:
    store.put_pool(slurm_cluster.pool("slurm"))
    handle = _run(store, "slurm", _spec("slurm"))
    _check_landed(store, handle)


def test_a_cancelled_slurm_job_stops_and_ends_cancelled(
    store: SqlStore, slurm_cluster: SlurmCluster
) -> None:
    store.put_pool(slurm_cluster.pool("slurm"))
    loop, thread = _serve(store, "slurm")
    try:
        spec = _spec("slurm").with_(
            command=("python", "-c", "import time; print('up', flush=True); time.sleep(120)")
        )
        handle = submit_spec(spec, store=store, start_agents=False)
        deadline = time.monotonic() + WAIT
        while "up" not in "".join(handle.logs()):
            assert time.monotonic() < deadline, handle.refresh().reason
            time.sleep(0.1)
        handle.cancel("not needed")
        job = handle.wait(WAIT)
    finally:
        loop.stop()
        thread.join(timeout=60)
    assert job.state is JobState.CANCELLED
    assert job.reason == "not needed"
