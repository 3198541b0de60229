"""The agent: serves one pool — claims the jobs the queue placed there, launches them through
the pool's executor, and watches them.

One loop, on one thread. It reads the queue's change counter every ``poll_s`` (a cheap read)
and claims when the counter moved or half a heartbeat passed (a claim also beats the agent's
heartbeat, runs the scheduler when it is due, and keeps its claimed-but-not-yet-running jobs
alive). Launched attempts are polled through the executor; one whose runners are gone
without reporting is given back to the queue (:meth:`~ComputeStore.job_lost`), which
requeues or fails it. ``idle_exit_s`` ends an agent that has had nothing to do for that long
(the embedded store starts one on demand).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.compute._executor import Executor
from luminary.compute._settings import job_heartbeat_s
from luminary.compute._wake import Waker
from luminary.compute.models import Agent, Job, JobState, Pool
from luminary.errors import LuminaryError
from luminary.names import check_name

if TYPE_CHECKING:
    from luminary.store import Store

__all__ = ["AgentLoop", "make_executor", "runner_command"]

log = logging.getLogger("luminary.compute")


def runner_command(job: Job) -> list[str]:
    """The command that runs one rank of ``job``'s current attempt on the node the engine
    chose (the rank comes from ``LUMINARY_RANK`` or ``SLURM_PROCID``)."""
    return [sys.executable, "-m", "luminary.compute.runner", job.id, "--attempt", str(job.attempt)]


def runner_env(store: Store) -> dict[str, str]:
    """What a runner on another node needs to reach this store, and nothing of this process's
    own environment (each engine passes its own)."""
    return dict(store.runner_environment())


def make_executor(
    pool: Pool,
    store: Store,
    *,
    heartbeat_s: float | None = None,
    on_end: Callable[[], None] | None = None,
) -> Executor:
    """The executor for ``pool``'s kind (Ray and Slurm need their extra or binaries)."""
    if pool.executor == "local":
        from luminary.compute._local import LocalExecutor

        return LocalExecutor(pool, store, heartbeat_s=heartbeat_s)
    if pool.executor == "ray":
        from luminary.compute._ray import RayExecutor

        return RayExecutor(pool)
    from luminary.compute._slurm import SlurmExecutor

    return SlurmExecutor(pool)


class AgentLoop:
    """Serves ``pool`` from this process until :meth:`stop` (or ``idle_exit_s`` of idleness)."""

    def __init__(
        self,
        store: Store,
        pool: str,
        *,
        executor: Executor | None = None,
        heartbeat_s: float | None = None,
        poll_s: float = 0.25,
        idle_exit_s: float | None = None,
    ) -> None:
        self.store = store
        self.pool_name = check_name("pool", pool)  # it names the agent's wake socket too
        self.heartbeat_s = job_heartbeat_s() if heartbeat_s is None else heartbeat_s
        self.poll_s = poll_s
        self.idle_exit_s = idle_exit_s
        self.agent = Agent(
            id=f"{socket.gethostname()[:40]}-{os.getpid()}-{new_id()[-6:]}",
            pool=pool,
            host=socket.gethostname(),
            pid=os.getpid(),
            started_ms=now_ms(),
            heartbeat_ms=now_ms(),
        )
        self._executor = executor
        self._launched: dict[str, tuple[str, int]] = {}  # ref -> (job id, attempt)
        self._stop = threading.Event()
        self._waker: Waker | None = None
        key = store.runner_environment().get("LUMINARY_DB")
        if key and sys.platform != "win32":
            self._waker = Waker(key, pool)

    @property
    def executor(self) -> Executor:
        if self._executor is None:
            pool = self.store.get_pool(self.pool_name)
            self._executor = make_executor(
                pool, self.store, heartbeat_s=self.heartbeat_s, on_end=self.wake
            )
        return self._executor

    def stop(self) -> None:
        self._stop.set()
        if self._waker is not None:
            self._waker.poke()

    def wake(self) -> None:
        """Look at the queue now (a local job ended, say)."""
        if self._waker is not None:
            self._waker.poke()

    def run(self) -> None:
        executor = self.executor
        env = runner_env(self.store)
        if executor.pool.gpu_memory_mb:
            env["LUMINARY_GPU_DEVICE_MB"] = str(executor.pool.gpu_memory_mb)
        seen = -1
        last_claim = 0.0
        idle_since = time.monotonic()
        woken = False
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                try:
                    # woken by a submit on this machine: claim at once; else only when the
                    # queue's counter moved (a cheap read), or to keep the heartbeat
                    version = seen if woken else self.store.queue_version()
                    if woken or version != seen or now - last_claim >= self.heartbeat_s / 2:
                        seen, last_claim = version, now
                        claimed = self.store.claim_jobs(self.pool_name, self.agent)
                        if claimed:
                            self._launch(executor, claimed, env)
                        self._relay(executor)
                    self._watch(executor)
                except LuminaryError as exc:
                    log.warning("agent %s: %s; retrying", self.agent.id, exc)
                    self._stop.wait(1.0)
                except Exception:  # an agent keeps serving: the queue is the truth
                    log.exception("agent %s: unexpected error; retrying", self.agent.id)
                    self._stop.wait(1.0)
                if self._launched:
                    idle_since = now
                elif self.idle_exit_s is not None and now - idle_since > self.idle_exit_s:
                    if not self._pending():
                        log.info(
                            "agent %s: idle for %.0f s, exiting", self.agent.id, self.idle_exit_s
                        )
                        return
                    idle_since = now
                if self._waker is not None:
                    woken = self._waker.wait(self.poll_s)
                else:
                    self._stop.wait(self.poll_s)
        finally:
            executor.close()
            if self._waker is not None:
                self._waker.close()

    def _pending(self) -> bool:
        jobs = self.store.list_jobs(states=[JobState.QUEUED, JobState.STARTING], limit=1)
        return bool(jobs)

    def _launch(self, executor: Executor, jobs: list[Job], env: dict[str, str]) -> None:
        """Launch what was claimed, in one call where the engine takes many (Ray)."""
        refs = executor.launch_many([(job, runner_command(job), env) for job in jobs])
        for job, ref in zip(jobs, refs, strict=True):
            if isinstance(ref, BaseException):
                self.store.job_lost(job.id, job.attempt, f"launch failed: {ref}")
                continue
            self._launched[ref] = (job.id, job.attempt)
            self.store.job_launched(job.id, job.attempt, ref)

    def _relay(self, executor: Executor) -> None:
        """Tell local supervisors at once when one of their jobs is asked to stop (the
        others learn at their next heartbeat)."""
        poke = getattr(executor, "poke", None)
        if poke is None or not self._launched:
            return
        mine = {job_id: ref for ref, (job_id, _) in self._launched.items()}
        for job in self.store.list_jobs(
            states=[JobState.STARTING, JobState.RUNNING], pool=self.pool_name, limit=100_000
        ):
            if job.id in mine and (job.cancel_requested or job.preempt_requested):
                poke(mine[job.id])

    def _watch(self, executor: Executor) -> None:
        if not self._launched:
            return
        for ref, gone in executor.poll(list(self._launched)).items():
            if gone is None:
                continue
            job_id, attempt = self._launched.pop(ref)
            job = self.store.get_job(job_id)
            if job.attempt == attempt and job.state.active:
                # the runners ended without reporting how (killed, node lost)
                self.store.job_lost(job_id, attempt, gone)
            elif job.state.active and job.cancel_requested:
                executor.kill(ref)
