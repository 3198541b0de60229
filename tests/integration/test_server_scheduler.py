"""The team server is the queue's scheduler: with no agent claiming, its own passes still
requeue or fail a job whose runner stopped beating."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from luminary.compute import Agent, JobSpec, JobState, Pool
from luminary.store import SqlStore

fastapi = pytest.importorskip("fastapi", reason="the server extra is not installed")


def test_the_servers_passes_fail_a_job_whose_runner_went_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from luminary.server import create_app

    monkeypatch.setenv("LUMINARY_JOB_HEARTBEAT_S", "0.2")
    store = SqlStore(f"sqlite:///{tmp_path / 'l.db'}", str(tmp_path / "blobs"))
    store.put_pool(Pool("gpu", gpus=1, cpus=4))
    job = store.submit_job(JobSpec("alpha", command=("train",), retries=0))
    agent = Agent("agent-1", "gpu", "host", os.getpid(), 0, 0)
    (claimed,) = store.claim_jobs("gpu", agent)
    store.task_started(claimed.id, claimed.attempt, 0, "node-1")  # then never beats again
    app = create_app(store, auth=False, schedule_every_s=0.1)

    async def serve_a_while() -> None:  # the app's lifespan, as uvicorn runs it
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 30
            while store.get_job(job.id).state is JobState.RUNNING:
                assert time.monotonic() < deadline, "the server never reaped the silent job"
                await asyncio.sleep(0.05)

    asyncio.run(serve_a_while())
    done = store.get_job(job.id)
    assert done.state is JobState.FAILED
    assert "rank 0 on node-1 stopped answering" in done.reason
    store.close()
