"""Compute's storage interface: pools, quotas and the job queue, kept in the store.

The queue lives in the store so that it works embedded (one SQLite file, agents on this
machine) and in team mode (the server schedules; agents anywhere claim work over REST) with
the same code. Three kinds of callers use it:

- people and the SDK: pools, quotas, :meth:`submit_job`, :meth:`cancel_job`, :meth:`explain_job`;
- *agents*, one per pool being served: :meth:`claim_jobs` (which runs the scheduler when it is
  due), :meth:`job_launched`, :meth:`job_lost`;
- *runners*, one per node of a running job: :meth:`task_started`, :meth:`task_heartbeat`
  (answered with what the queue asks: stop, preempt), :meth:`append_job_logs`,
  :meth:`task_finished`.

Attempts are numbered; every runner and agent call names its attempt, and a call for an
attempt that is no longer current (the job was requeued meanwhile) changes nothing — the
runner is told to stop. Thread safety: implementations are safe to share between threads.
Errors: :class:`~luminary.errors.NotFoundError` for unknown jobs, pools and projects,
:class:`~luminary.errors.InvalidArgumentError` for bad specs and for requests no pool could
ever run (with the numbers), :class:`~luminary.errors.InvalidStateError` for changes a job's
state does not allow.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from luminary.compute.models import (
    Agent,
    Job,
    JobSpec,
    JobState,
    LogChunk,
    Pool,
    Quota,
    Signals,
    TaskReport,
)

if TYPE_CHECKING:
    from luminary.compute._policy import ProjectShare

__all__ = ["ComputeStore", "UsageSample"]


@dataclass(frozen=True)
class UsageSample:
    """One project's use of the compute at one time: GPUs and CPUs held, its entitled share
    (fraction of the GPUs), its decayed usage (GPU-hours) and its queued jobs."""

    at_ms: int
    project: str
    gpus: float
    cpus: float
    share: float
    usage: float
    queued: int

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


class ComputeStore(abc.ABC):
    """Pools, quotas and the job queue."""

    # -- pools and quotas ------------------------------------------------------------------
    @abc.abstractmethod
    def put_pool(self, pool: Pool) -> Pool:
        """Create ``pool``, or replace the one of that name (jobs running on it go on)."""

    @abc.abstractmethod
    def get_pool(self, name: str) -> Pool: ...

    @abc.abstractmethod
    def list_pools(self) -> list[Pool]: ...

    @abc.abstractmethod
    def remove_pool(self, name: str) -> None:
        """Remove a pool; refused (InvalidStateError) while jobs are placed on it."""

    @abc.abstractmethod
    def set_quota(self, quota: Quota) -> Quota:
        """Set a project's quota, weight and cohort (the project is created if missing)."""

    @abc.abstractmethod
    def list_quotas(self) -> list[Quota]: ...

    @abc.abstractmethod
    def remove_quota(self, project: str) -> None: ...

    # -- jobs ------------------------------------------------------------------------------
    @abc.abstractmethod
    def submit_job(self, spec: JobSpec, *, user: str | None = None) -> Job:
        """Queue ``spec`` and create its run (status ``queued``). Refused with the numbers when
        no pool could ever run it; dataset ``inputs`` are checked and recorded on the run."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job:
        """A job by id, by a unique prefix of it, or by its run's id."""

    @abc.abstractmethod
    def list_jobs(
        self,
        project: str | None = None,
        states: Collection[JobState] | None = None,
        *,
        pool: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest first."""

    @abc.abstractmethod
    def cancel_job(self, job_id: str, reason: str = "cancelled") -> Job:
        """Cancel a queued job at once; ask a running one to stop (its runner ends it). A
        finished job is returned unchanged."""

    @abc.abstractmethod
    def explain_job(self, job_id: str) -> list[str]:
        """Why a job waits (or what it is doing), in sentences with numbers."""

    @abc.abstractmethod
    def compute_shares(self) -> list[ProjectShare]:
        """Each project's weight, share, decayed usage and what it holds now."""

    @abc.abstractmethod
    def compute_history(self, since_ms: int) -> list[UsageSample]:
        """Samples of each project's use since ``since_ms``, oldest first (one a minute)."""

    # -- agents ----------------------------------------------------------------------------
    @abc.abstractmethod
    def runner_environment(self) -> dict[str, str]:
        """The variables with which a runner on another node opens this same store
        (``LUMINARY_DB``/``LUMINARY_BLOBS``, or ``LUMINARY_URI``/``LUMINARY_TOKEN``)."""

    @abc.abstractmethod
    def queue_version(self) -> int:
        """A counter that changes whenever the queue does (agents wake on it)."""

    @abc.abstractmethod
    def claim_jobs(self, pool: str, agent: Agent, *, limit: int = 64) -> list[Job]:
        """Beat ``agent``'s heartbeat, run the scheduler if it is due, and hand the agent the
        jobs placed on ``pool`` that no agent has launched yet (state ``starting``)."""

    @abc.abstractmethod
    def list_agents(self) -> list[Agent]: ...

    @abc.abstractmethod
    def job_launched(self, job_id: str, attempt: int, executor_ref: str) -> None:
        """The agent's executor accepted the attempt; ``executor_ref`` names it there."""

    @abc.abstractmethod
    def job_lost(self, job_id: str, attempt: int, reason: str) -> Job:
        """The attempt's runners are gone without reporting (or could not be launched):
        requeue the job if retries remain, else fail it with ``reason``."""

    @abc.abstractmethod
    def schedule(self, now_ms: int | None = None) -> int:
        """Run the scheduler now: reap attempts whose heartbeat stopped, place queued jobs,
        ask preemptible borrowers to make room. Returns the number of jobs placed."""

    # -- runners ---------------------------------------------------------------------------
    @abc.abstractmethod
    def task_started(self, job_id: str, attempt: int, rank: int, node: str) -> Job:
        """Rank ``rank`` of the attempt runs on ``node``. Raises InvalidStateError when the
        attempt is no longer current or the job was cancelled: the runner must not run it."""

    @abc.abstractmethod
    def task_heartbeat(self, job_id: str, attempt: int, rank: int) -> Signals:
        """Keep the attempt alive; the answer says whether to stop (and why)."""

    @abc.abstractmethod
    def append_job_logs(self, job_id: str, chunks: Sequence[LogChunk]) -> None:
        """Store output chunks; a chunk already stored (same attempt, rank, stream, seq) is
        skipped, so a retried write is stored once."""

    @abc.abstractmethod
    def read_job_logs(
        self, job_id: str, after: Mapping[str, int] | None = None, *, limit: int = 1000
    ) -> list[LogChunk]:
        """Chunks not yet seen: ``after`` maps :attr:`LogChunk.key` to the last ``seq`` read.
        Ordered by time, then attempt, rank and stream."""

    @abc.abstractmethod
    def task_finished(self, job_id: str, attempt: int, rank: int, report: TaskReport) -> Job:
        """Rank ``rank`` ended. When every rank has ended (or one failed) the job ends: it
        succeeds when all exited 0, is requeued when preempted or when retries remain, and
        fails otherwise; its run gets the final status, GPU-hours and CPU-hours."""
