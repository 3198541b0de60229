"""The executor interface: how a pool starts, watches and stops a job's runners.

Luminary's queue decides *who* runs next and, on a local pool, on which devices; the executor
puts the job's runner processes where they go and tells whether they still live. One runner
per node of the job (``python -m luminary.compute.runner JOB --attempt N``) runs the command,
streams its output into the store, beats the job's heartbeat and records how it ended; the
executor only launches, polls and kills. So every executor gets the same tracking, logs,
energy and fault handling, and a job lost with its executor is found by its stale heartbeat.

Environment given to each runner, besides ``env``:

- ``LUMINARY_RANK``: the node's rank in the job (0 … nodes - 1). Where the engine starts the
  ranks itself (``srun``), the runner reads ``SLURM_PROCID`` instead.
- ``MASTER_ADDR``/``MASTER_PORT``: rank 0's address and a free port on it, for gangs (the
  runner turns these into ``RANK``, ``WORLD_SIZE``, ``NODE_RANK`` and ``LOCAL_RANK``).
- ``CUDA_VISIBLE_DEVICES``: the devices of the placement (local), or the engine's own (Ray and
  Slurm set it for the devices they assign).

Thread safety: an executor is used by one agent thread. Errors: ``launch`` raises
:class:`~luminary.errors.BackendUnavailableError` when the engine refuses or cannot be
reached; the job then goes back to the queue.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import ClassVar

from luminary.compute.models import Job, Pool
from luminary.errors import LuminaryError

__all__ = ["Executor"]


class Executor(abc.ABC):
    """Starts, polls and kills the runners of jobs placed on one :class:`Pool`."""

    #: The pool executor kind this class serves (``Pool.executor``).
    kind: ClassVar[str]

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def discover(self) -> Pool | None:
        """The pool as the engine reports it now (nodes, GPUs, CPUs, memory), or ``None`` where
        the declared pool is all there is to know."""
        return None

    @abc.abstractmethod
    def launch(self, job: Job, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Start ``command`` once per node of ``job`` (``job.spec.nodes``; on ``job.placement``
        where the queue placed it) with ``env`` plus the rank variables above, and return the
        engine's reference for the attempt (a process group id, a Ray id, a Slurm job id).
        Returns once the engine has accepted the work; never waits for it to run."""

    def launch_many(
        self, launches: Sequence[tuple[Job, Sequence[str], Mapping[str, str]]]
    ) -> list[str | BaseException]:
        """:meth:`launch` each ``(job, command, env)``; an engine that can take many at once
        (Ray) overrides this. Per launch: its reference, or the error that refused it."""
        out: list[str | BaseException] = []
        for job, command, env in launches:
            try:
                out.append(self.launch(job, command, env))
            except LuminaryError as exc:
                out.append(exc)
        return out

    @abc.abstractmethod
    def poll(self, refs: Sequence[str]) -> dict[str, str | None]:
        """For each reference from :meth:`launch`: ``None`` while any of its runners may still
        live, else why they are all gone (``"exited"``, ``"node lost"``, Slurm's state)."""

    @abc.abstractmethod
    def kill(self, ref: str) -> None:
        """Stop whatever is left of the attempt at once (SIGKILL or the engine's cancel).
        Graceful stops go through the runner, which the job's cancel or preempt flag tells."""

    def close(self) -> None:  # noqa: B027 - a hook: executors without connections keep it
        """Release connections to the engine; running work is left running."""
