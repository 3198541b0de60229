"""The local executor: jobs on this machine, supervised by threads of the agent's process.

The queue has already placed the job on devices (``job.placement``): each rank's
:class:`~luminary.compute._supervise.Supervisor` starts the command with
``CUDA_VISIBLE_DEVICES`` naming them, so two 0.5-GPU jobs see the same device. Where NVIDIA's
MPS control daemon runs (``CUDA_MPS_PIPE_DIRECTORY`` set or its default pipe present), jobs
holding a fraction also get ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` for their share; MIG
devices are addressed by the UUIDs the pool's ``devices`` option lists (``MIG-…`` entries
replace the indices). A pool may declare logical GPUs on a machine without any: the command
still gets the indices, which is how the scheduler is exercised without hardware.

Supervising in-process (rather than through a runner process per job) is what makes a local
start take milliseconds; the price is that killing the agent kills its jobs (each command
has ``PR_SET_PDEATHSIG``), which the queue then requeues or fails within one heartbeat.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from luminary._net import free_port
from luminary.compute._executor import Executor
from luminary.compute._supervise import Supervisor
from luminary.compute.models import Job, Pool
from luminary.errors import InvalidStateError

if TYPE_CHECKING:
    from luminary.store import Store

__all__ = ["LocalExecutor"]

_MPS_PIPE = "/tmp/nvidia-mps"


def _mps_running(env: Mapping[str, str]) -> bool:
    pipe = env.get("CUDA_MPS_PIPE_DIRECTORY", _MPS_PIPE)
    return Path(pipe, "control").exists()


class LocalExecutor(Executor):
    """Runs each rank of a job in a supervising thread of this process (see the module)."""

    kind = "local"

    def __init__(
        self,
        pool: Pool,
        store: Store,
        *,
        heartbeat_s: float | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(pool)
        self.store = store
        self.heartbeat_s = heartbeat_s
        self.on_end = on_end
        self._runs: dict[str, list[tuple[threading.Thread, Supervisor]]] = {}
        self._lock = threading.Lock()

    def launch(self, job: Job, command: Sequence[str], env: Mapping[str, str]) -> str:
        del command  # supervised in-process: no runner process to start
        ref = f"local:{os.getpid()}:{job.id}:{job.attempt}"
        base = {**os.environ, **env}
        if job.spec.nodes > 1:
            base["MASTER_ADDR"] = "127.0.0.1"
            base["MASTER_PORT"] = str(free_port())
        devices = [d.strip() for d in self.pool.options.get("devices", "").split(",") if d.strip()]
        mps = _mps_running(base) and 0 < job.spec.resources.gpus < 1
        started = []
        for rank in range(job.spec.nodes):
            rank_env = {**base, "LUMINARY_RANK": str(rank)}
            if job.placement and rank < len(job.placement):
                indices = [i for i, _ in job.placement[rank].devices]
                if indices:
                    names = [devices[i] if i < len(devices) else str(i) for i in indices]
                    rank_env["CUDA_VISIBLE_DEVICES"] = ",".join(names)
            if mps:
                rank_env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(
                    max(1, round(job.spec.resources.gpus * 100))
                )
            node = (
                f"{socket.gethostname()}/{job.placement[rank].node}"
                if job.placement
                else socket.gethostname()
            )
            supervisor = Supervisor(
                self.store, job, rank, env=rank_env, node=node, heartbeat_s=self.heartbeat_s
            )
            thread = threading.Thread(
                target=self._run,
                args=(supervisor,),
                name=f"luminary-job-{job.id}-{rank}",
                daemon=True,
            )
            thread.start()
            started.append((thread, supervisor))
        with self._lock:
            self._runs[ref] = started
        return ref

    def _run(self, supervisor: Supervisor) -> None:
        try:
            with contextlib.suppress(InvalidStateError):  # stale or cancelled before it started
                supervisor.run()
        finally:
            if self.on_end is not None:
                self.on_end()

    def poll(self, refs: Sequence[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        with self._lock:
            for ref in refs:
                runs = self._runs.get(ref)
                if runs is None:
                    out[ref] = "unknown to this agent (it was restarted)"
                elif any(thread.is_alive() for thread, _ in runs):
                    out[ref] = None
                else:
                    out[ref] = "exited"
                    del self._runs[ref]
        return out

    def poke(self, ref: str) -> None:
        """Make the attempt's supervisors beat now (the queue changed for it)."""
        with self._lock:
            runs = self._runs.get(ref, [])
        for _, supervisor in runs:
            supervisor.poke()

    def kill(self, ref: str) -> None:
        with self._lock:
            runs = self._runs.get(ref, [])
        for _, supervisor in runs:
            supervisor.stop()

    def running(self) -> int:
        with self._lock:
            return sum(1 for runs in self._runs.values() for thread, _ in runs if thread.is_alive())

    def close(self) -> None:
        with self._lock:
            runs = [r for rs in self._runs.values() for r in rs]
        for _, supervisor in runs:
            supervisor.stop()
        for thread, _ in runs:
            thread.join(timeout=60)
