"""A running job keeps its run alive: the runner's heartbeat beats the run too, so tracking's
reaper (which marks runs silent past their stale time as killed) leaves it running."""

from __future__ import annotations

import os
import time
from pathlib import Path

from luminary.compute import Agent, JobSpec, Pool
from luminary.store import RunStatus, SqlStore


def test_a_long_job_s_run_stays_running_while_its_runner_beats(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'l.db'}", str(tmp_path / "b"), stale_after_s=0.3)
    try:
        store.put_pool(Pool("local", cpus=4))
        job = store.submit_job(JobSpec("cms-btag", command=("train",)))
        (claimed,) = store.claim_jobs("local", Agent("a", "local", "h", os.getpid(), 0, 0))
        store.task_started(claimed.id, claimed.attempt, 0, "node")
        for _ in range(4):  # past the run's stale time, beating as a runner does
            time.sleep(0.2)
            assert not store.task_heartbeat(claimed.id, claimed.attempt, 0).stop
            store.reap_stale_runs()
        assert store.get_run(job.run_id).status is RunStatus.RUNNING
    finally:
        store.close()
