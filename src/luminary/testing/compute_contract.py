"""Compute's contract: pools, quotas and the job queue, run against every Store.

Subclass :class:`ComputeContract` next to the Store contract and give it the same ``store``
fixture (a fresh, empty :class:`~luminary.store.Store`). The agent and runner protocol is
driven by hand, as :mod:`luminary.compute._agent` and :mod:`luminary.compute._supervise` drive
it: an agent claims (which runs the scheduler), reports the launch; a runner starts, beats,
writes logs and finishes. Nothing waits on a clock: a heartbeat is made stale by running the
scheduler at a later ``now_ms``.
"""

from __future__ import annotations

import os

import pytest

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute import (
    Agent,
    Job,
    JobSpec,
    JobState,
    LogChunk,
    Pool,
    Quota,
    Resources,
    Signals,
    TaskReport,
)
from luminary.errors import InvalidArgumentError, InvalidStateError, NotFoundError
from luminary.storage.blobs import hash_bytes
from luminary.store import RunStatus, Store

__all__ = ["ComputeContract"]


def _spec(project: str = "cms-btag", **changes: object) -> JobSpec:
    base: dict[str, object] = {"command": ("python", "train.py"), "resources": Resources(gpus=1)}
    return JobSpec(project, **{**base, **changes})  # type: ignore[arg-type]


def _agent(pool: str) -> Agent:
    now = now_ms()
    return Agent(new_id(), pool, "test-host", os.getpid(), now, now)


class ComputeContract:
    # -- helpers ---------------------------------------------------------------------------
    def _pool(self, store: Store, name: str = "gpu", **changes: object) -> Pool:
        base: dict[str, object] = {"gpus": 4, "cpus": 32, "memory_mb": 65536}
        return store.put_pool(Pool(name, **{**base, **changes}))  # type: ignore[arg-type]

    def _placed(self, store: Store, spec: JobSpec | None = None, pool: str = "gpu") -> Job:
        """Submit ``spec`` and claim it: the job as the agent receives it (``starting``)."""
        job = store.submit_job(spec or _spec(), user="alice")
        claimed = store.claim_jobs(pool, _agent(pool))
        assert [j.id for j in claimed] == [job.id]
        return claimed[0]

    def _running(self, store: Store, spec: JobSpec | None = None) -> Job:
        job = self._placed(store, spec)
        store.job_launched(job.id, job.attempt, f"local:{job.id}")
        return store.task_started(job.id, job.attempt, 0, "node-0")

    # -- pools and quotas ------------------------------------------------------------------
    def test_pool_round_trip_and_replace(self, store: Store) -> None:
        pool = self._pool(store, "gpu", options={"partition": "gpu"})
        assert store.get_pool("gpu") == pool
        self._pool(store, "cpu", gpus=0)
        assert [p.name for p in store.list_pools()] == ["cpu", "gpu"]
        bigger = self._pool(store, "gpu", gpus=8, enabled=False)
        assert store.get_pool("gpu") == bigger
        assert store.get_pool("gpu").gpus == 8
        assert store.get_pool("gpu").enabled is False

    def test_unknown_pool_names_the_nearest(self, store: Store) -> None:
        self._pool(store, "gpu-a100")
        with pytest.raises(NotFoundError, match="gpu-a100"):
            store.get_pool("gpu-a10")
        with pytest.raises(NotFoundError):
            store.remove_pool("gpu-a10")

    def test_removed_pool_is_gone(self, store: Store) -> None:
        self._pool(store)
        store.remove_pool("gpu")
        assert store.list_pools() == []
        with pytest.raises(NotFoundError):
            store.get_pool("gpu")

    def test_pool_with_placed_jobs_cannot_be_removed(self, store: Store) -> None:
        self._pool(store)
        self._placed(store)
        with pytest.raises(InvalidStateError, match="gpu"):
            store.remove_pool("gpu")
        assert store.get_pool("gpu").name == "gpu"

    def test_quota_round_trip(self, store: Store) -> None:
        quota = Quota("cms-btag", gpus=2, cpus=8, weight=2.0, cohort="cms", borrow_gpus=2)
        assert store.set_quota(quota) == quota
        assert store.list_quotas() == [quota]
        assert store.get_project("cms-btag").name == "cms-btag"  # created with its quota
        smaller = Quota("cms-btag", gpus=1)
        store.set_quota(smaller)
        assert store.list_quotas() == [smaller]
        store.remove_quota("cms-btag")
        assert store.list_quotas() == []
        with pytest.raises(NotFoundError, match="cms-btag"):
            store.remove_quota("cms-btag")

    # -- submitting ------------------------------------------------------------------------
    def test_submit_creates_a_queued_run_with_tags(self, store: Store) -> None:
        self._pool(store)
        spec = _spec(name="train", tags={"stage": "dev"}, params={"lr": 0.01})
        job = store.submit_job(spec, user="alice")
        assert job.state is JobState.QUEUED
        assert job.attempt == 0
        assert job.spec == spec
        run = store.get_run(job.run_id)
        assert run.status is RunStatus.QUEUED
        assert run.project == "cms-btag"
        assert run.name == "train"
        assert run.params == {"lr": 0.01}
        assert run.tags["stage"] == "dev"
        assert run.tags["luminary.job"] == job.id
        assert run.tags["job.gpus"] == "1"
        assert run.tags["job.command"] == "python train.py"

    def test_a_request_no_pool_could_run_is_refused_with_the_numbers(self, store: Store) -> None:
        self._pool(store, gpus=2)
        with pytest.raises(InvalidArgumentError, match=r"4 GPUs per node asked.*2"):
            store.submit_job(_spec(resources=Resources(gpus=4)))
        with pytest.raises(InvalidArgumentError, match="no pool 'tpu'"):
            store.submit_job(_spec(pool="tpu"))
        assert store.list_jobs() == []

    def test_inputs_are_recorded_on_the_run(self, store: Store) -> None:
        self._pool(store)
        store.create_project("cms-btag")
        version = store.create_dataset_version(
            "jets",
            project="cms-btag",
            mode="reference",
            root="/eos/jets",
            manifest_digest=hash_bytes(b"manifest"),
            schema_digest=None,
            file_count=1,
            total_bytes=10,
            message="",
            actor="alice",
        )
        job = store.submit_job(_spec(inputs=("jets@1",)))
        assert [v.id for v in store.run_inputs(job.run_id)] == [version.id]
        with pytest.raises(NotFoundError):
            store.submit_job(_spec(inputs=("jets@7",)))

    def test_job_is_found_by_id_prefix_and_run_id(self, store: Store) -> None:
        self._pool(store)
        job = store.submit_job(_spec())
        assert store.get_job(job.id) == job
        assert store.get_job(job.id[:12]).id == job.id
        assert store.get_job(job.run_id).id == job.id
        with pytest.raises(NotFoundError, match="no job"):
            store.get_job("zz" + job.id[2:])

    def test_list_jobs_filters_newest_first(self, store: Store) -> None:
        self._pool(store)
        self._pool(store, "cpu", gpus=0)
        first = store.submit_job(_spec())
        second = store.submit_job(_spec("atlas-gn2"))
        third = store.submit_job(_spec(resources=Resources(cpus=2), pool="cpu"))
        store.cancel_job(third.id)
        every = store.list_jobs()
        assert {j.id for j in every} == {first.id, second.id, third.id}
        keys = [(j.submitted_ms, j.id) for j in every]
        assert keys == sorted(keys, reverse=True)
        in_cms = [j.id for j in every if j.id != second.id]
        assert [j.id for j in store.list_jobs("cms-btag")] == in_cms
        queued = store.list_jobs(states=[JobState.QUEUED])
        assert [j.id for j in queued] == [j.id for j in every if j.id != third.id]
        assert [j.id for j in store.list_jobs(limit=1)] == [every[0].id]
        claimed = store.claim_jobs("gpu", _agent("gpu"))
        assert {j.id for j in claimed} == {first.id, second.id}
        assert {j.id for j in store.list_jobs(pool="gpu")} == {first.id, second.id}
        assert store.list_jobs(pool="cpu") == []
        with pytest.raises(NotFoundError):
            store.list_jobs("no-such-project")

    def test_cancelling_a_queued_job_ends_it_and_kills_its_run(self, store: Store) -> None:
        self._pool(store)
        job = store.submit_job(_spec())
        cancelled = store.cancel_job(job.id, "not needed")
        assert cancelled.state is JobState.CANCELLED
        assert cancelled.reason == "not needed"
        assert store.get_run(job.run_id).status is RunStatus.KILLED
        assert store.cancel_job(job.id).state is JobState.CANCELLED  # unchanged

    # -- agents and runners ----------------------------------------------------------------
    def test_an_agent_claims_a_placed_job_once(self, store: Store) -> None:
        self._pool(store)
        before = store.queue_version()
        job = store.submit_job(_spec())
        assert store.queue_version() != before
        agent = _agent("gpu")
        claimed = store.claim_jobs("gpu", agent)
        assert [j.id for j in claimed] == [job.id]
        got = claimed[0]
        assert got.state is JobState.STARTING
        assert got.attempt == 1
        assert got.pool == "gpu"
        assert len(got.placement) == 1
        assert sum(f for _, f in got.placement[0].devices) == 1.0
        assert store.claim_jobs("gpu", agent) == []
        assert store.claim_jobs("gpu", _agent("gpu")) == []
        assert agent.id in {a.id for a in store.list_agents()}

    def test_a_job_runs_to_success(self, store: Store) -> None:
        self._pool(store)
        job = self._placed(store)
        store.job_launched(job.id, job.attempt, "local:1234")
        running = store.task_started(job.id, job.attempt, 0, "node-0")
        assert running.state is JobState.RUNNING
        assert running.executor_ref == "local:1234"
        assert store.get_run(job.run_id).status is RunStatus.RUNNING
        assert store.task_heartbeat(job.id, job.attempt, 0) == Signals()
        assert any("running" in s for s in store.explain_job(job.id))
        done = store.task_finished(job.id, job.attempt, 0, TaskReport(0, cpu_s=1.5))
        assert done.state is JobState.SUCCEEDED
        assert done.exit_code == 0
        assert store.get_run(job.run_id).status is RunStatus.FINISHED

    def test_logs_are_stored_once_and_read_after_a_cursor(self, store: Store) -> None:
        self._pool(store)
        job = self._running(store)
        at = now_ms()
        out = [
            LogChunk(job.attempt, 0, "stdout", i, at + i, f"line {i}\n".encode()) for i in range(3)
        ]
        err = LogChunk(job.attempt, 0, "stderr", 0, at + 5, b"\x00\xffwarn\n")
        store.append_job_logs(job.id, [*out[:2], err])
        store.append_job_logs(job.id, [out[1], out[2]])  # a resent chunk, and a new one
        chunks = store.read_job_logs(job.id)
        assert chunks == [*out, err]
        cursor = {out[0].key: 1}
        assert store.read_job_logs(job.id, cursor) == [out[2], err]
        assert store.read_job_logs(job.id, {out[0].key: 2, err.key: 0}) == []
        assert store.read_job_logs(job.id, limit=2) == out[:2]
        with pytest.raises(InvalidArgumentError, match="stdout and stderr"):
            store.append_job_logs(job.id, [LogChunk(1, 0, "stdin", 0, at, b"x")])

    def test_a_failing_exit_with_retries_is_requeued_then_fails(self, store: Store) -> None:
        self._pool(store)
        job = self._running(store, _spec(retries=1))
        again = store.task_finished(job.id, 1, 0, TaskReport(3, "exited with 3"))
        assert again.state is JobState.QUEUED
        assert "retry 1 of 1" in again.reason
        assert store.get_run(job.run_id).status is RunStatus.QUEUED
        second = store.claim_jobs("gpu", _agent("gpu"))
        assert [(j.id, j.attempt) for j in second] == [(job.id, 2)]
        store.task_started(job.id, 2, 0, "node-1")
        failed = store.task_finished(job.id, 2, 0, TaskReport(3, "exited with 3"))
        assert failed.state is JobState.FAILED
        assert failed.exit_code == 3
        assert "exited with 3" in failed.reason
        assert store.get_run(job.run_id).status is RunStatus.FAILED

    def test_cancelling_a_running_job_stops_it_at_its_heartbeat(self, store: Store) -> None:
        self._pool(store)
        job = self._running(store)
        asked = store.cancel_job(job.id, "wrong data")
        assert asked.state is JobState.RUNNING
        assert asked.cancel_requested
        signals = store.task_heartbeat(job.id, job.attempt, 0)
        assert signals.stop
        assert not signals.preempt
        assert "wrong data" in signals.reason
        ended = store.task_finished(job.id, job.attempt, 0, TaskReport(-15, "stopped"))
        assert ended.state is JobState.CANCELLED
        assert store.get_run(job.run_id).status is RunStatus.KILLED

    def test_a_stale_attempt_may_not_start(self, store: Store) -> None:
        self._pool(store)
        job = self._placed(store, _spec(retries=2))
        store.job_lost(job.id, job.attempt, "executor refused it")
        again = store.claim_jobs("gpu", _agent("gpu"))
        assert [j.attempt for j in again] == [2]
        with pytest.raises(InvalidStateError, match="attempt 1"):
            store.task_started(job.id, 1, 0, "node-0")
        assert store.task_heartbeat(job.id, 1, 0).stop
        store.task_finished(job.id, 1, 0, TaskReport(0))  # changes nothing
        assert store.get_job(job.id).state is JobState.STARTING
        assert store.get_job(job.id).attempt == 2

    def test_a_lost_job_is_requeued_then_failed_with_the_reason(self, store: Store) -> None:
        self._pool(store)
        job = self._running(store, _spec(retries=1))
        requeued = store.job_lost(job.id, 1, "node-0 rebooted")
        assert requeued.state is JobState.QUEUED
        assert "node-0 rebooted" in requeued.reason
        second = store.claim_jobs("gpu", _agent("gpu"))[0]
        failed = store.job_lost(job.id, second.attempt, "node-1 rebooted")
        assert failed.state is JobState.FAILED
        assert "node-1 rebooted" in failed.reason
        assert store.get_run(job.run_id).status is RunStatus.FAILED
        assert store.job_lost(job.id, 1, "late report").state is JobState.FAILED  # unchanged

    def test_a_silent_runner_is_reaped_by_the_scheduler(self, store: Store) -> None:
        self._pool(store)
        job = self._running(store)
        store.schedule(now_ms=now_ms() + 600_000)
        lost = store.get_job(job.id)
        assert lost.state is JobState.FAILED
        assert "stopped answering" in lost.reason

    def test_explain_says_why_a_job_waits(self, store: Store) -> None:
        self._pool(store)
        job = store.submit_job(_spec())
        store.schedule()
        reasons = store.explain_job(job.id)
        assert reasons
        assert all(isinstance(s, str) and s for s in reasons)

    def test_shares_and_history_list_the_projects(self, store: Store) -> None:
        self._pool(store)
        store.set_quota(Quota("atlas-gn2", gpus=1, weight=3))
        self._placed(store)
        store.submit_job(_spec("atlas-gn2"))
        shares = {s.project: s for s in store.compute_shares()}
        assert {"cms-btag", "atlas-gn2"} <= shares.keys()
        assert shares["cms-btag"].gpus_in_use == 1.0
        assert shares["atlas-gn2"].weight == 3.0
        history = store.compute_history(0)
        assert "cms-btag" in {s.project for s in history}
        assert store.compute_history(now_ms() + 3_600_000) == []

    def test_runner_environment_opens_this_store(self, store: Store) -> None:
        env = store.runner_environment()
        assert {"LUMINARY_DB", "LUMINARY_URI"} & env.keys()

    def test_unknown_job_is_not_found(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="no job"):
            store.cancel_job("0000000000000000")
        with pytest.raises(NotFoundError):
            store.explain_job("0000000000000000")
        with pytest.raises(NotFoundError):
            store.read_job_logs("0000000000000000")
