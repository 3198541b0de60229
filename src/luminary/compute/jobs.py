"""Jobs from Python: ``lm.jobs.submit(fn_or_cmd, gpus=0.5, …)`` and the handle it returns.

::

    import luminary as lm

    job = lm.jobs.submit(["python", "train.py"], project="cms-btag", gpus=0.5, memory="16G")
    for line in job.logs(follow=True):
        print(line, end="")
    job.wait()                      # the final Job; job.run_id is its run

    def train(lr): ...
    handle = lm.jobs.submit(train, 1e-3, project="cms-btag", gpus=0.25)
    value = handle.result()         # what train returned (or its exception, re-raised)

A callable travels pickled (with cloudpickle when installed) as a blob of the store; a list or
string is a command. On the embedded store, the first submit starts an agent for each local
pool that none serves (it exits after five idle minutes), and creates a pool ``local`` for
this machine if there is no pool at all. A job's own code may call :func:`on_preempt` to run
a checkpoint hook when it is preempted or cancelled.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from luminary._current import get_store
from luminary.compute.models import Agent, Job, JobSpec, JobState, Pool, Resources
from luminary.errors import InvalidArgumentError, InvalidStateError, LuminaryError, NotFoundError

if TYPE_CHECKING:
    from luminary.store import Store

__all__ = [
    "JobFailedError",
    "JobHandle",
    "ensure_agents",
    "get",
    "limit_gpu_memory",
    "list",
    "on_preempt",
    "submit",
]

_list = list
_Jobs = _list[Job]


class JobFailedError(LuminaryError):
    """A job's call raised, or the job failed or was cancelled before it returned."""

    code = "job_failed"


class JobHandle:
    """A submitted job: its state, logs, result; ``cancel()`` stops it."""

    def __init__(self, store: Store, job: Job) -> None:
        self._store = store
        self.job = job
        self.id = job.id
        self.run_id = job.run_id

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.job.state.value} {self.job.spec.label()!r}>"

    def refresh(self) -> Job:
        self.job = self._store.get_job(self.id)
        return self.job

    @property
    def state(self) -> JobState:
        return self.refresh().state

    def wait(self, timeout: float | None = None, poll_s: float = 0.1) -> Job:
        """Block until the job is done; InvalidStateError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (job := self.refresh()).state.done:
            if deadline is not None and time.monotonic() > deadline:
                msg = f"job {self.id} is still {job.state.value} after {timeout:g} s"
                raise InvalidStateError(msg)
            time.sleep(poll_s)
        return job

    def result(self, timeout: float | None = None) -> Any:
        """What the submitted callable returned; its exception is re-raised as
        :class:`JobFailedError` with the job's traceback."""
        job = self.wait(timeout)
        if job.spec.function is None:
            msg = f"job {self.id} runs a command, not a Python call; see .wait() and .logs()"
            raise InvalidStateError(msg)
        from luminary.compute._call import RESULT

        entries = [a for a in self._store.list_artifacts(job.run_id, RESULT) if a.path == RESULT]
        if not entries:
            msg = f"job {self.id} {job.state.value} without a result: {job.reason}"
            raise JobFailedError(msg)
        outcome = pickle.loads(self._store.blobs.read_bytes(entries[0].digest))
        if outcome[0] == "ok":
            return outcome[1]
        _, kind, message, trace = outcome
        msg = f"job {self.id} raised {kind}: {message}\n{trace}"
        raise JobFailedError(msg)

    def logs(self, follow: bool = False, poll_s: float = 0.2) -> Iterator[str]:
        """The job's output as text, stdout and stderr interleaved in time; with ``follow``,
        until the job ends."""
        cursor: dict[str, int] = {}
        while True:
            chunks = self._store.read_job_logs(self.id, cursor)
            for chunk in chunks:
                cursor[chunk.key] = chunk.seq
                yield chunk.data.decode("utf-8", errors="replace")
            if chunks:
                continue
            if not follow or self.refresh().state.done:
                # one last read: output written just before the end
                tail = self._store.read_job_logs(self.id, cursor)
                for chunk in tail:
                    cursor[chunk.key] = chunk.seq
                    yield chunk.data.decode("utf-8", errors="replace")
                if not tail:
                    return
                continue
            time.sleep(poll_s)

    def cancel(self, reason: str = "cancelled by the user") -> Job:
        self.job = self._store.cancel_job(self.id, reason)
        wake_agents(self._store)
        return self.job

    def why(self) -> _list[str]:
        return self._store.explain_job(self.id)


def submit(
    target: Callable[..., Any] | Sequence[str] | str,
    *args: Any,
    project: str | None = None,
    gpus: float = 0.0,
    gpu_memory: int | str = 0,
    cpus: float = 1.0,
    memory: int | str = 0,
    nodes: int = 1,
    priority: int = 0,
    time_limit: float | str | None = None,
    retries: int = 0,
    preemptible: bool = False,
    grace: float = 30.0,
    inputs: Sequence[str] = (),
    pool: str | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run: str | None = None,
    store: Store | None = None,
    **kwargs: Any,
) -> JobHandle:
    """Queue a command (a list of arguments, or one string split like a shell would) or a
    Python call ``target(*args, **kwargs)``; see :class:`~luminary.compute.JobSpec` for the
    fields. Returns at once with a :class:`JobHandle`."""
    store = store or get_store()
    command: tuple[str, ...] = ()
    function = None
    if callable(target):
        from luminary.compute._call import dumps

        function = store.blobs.put_bytes(dumps((target, args, kwargs))).digest
    else:
        if args or kwargs:
            msg = "arguments after a command are not valid; put them in the command list"
            raise InvalidArgumentError(msg)
        if isinstance(target, str):
            import shlex

            command = tuple(shlex.split(target))
        else:
            command = tuple(target)
    spec = JobSpec(
        project=project or os.environ.get("LUMINARY_PROJECT") or "default",
        command=command,
        function=function,
        name=name,
        resources=Resources(gpus=gpus, gpu_memory_mb=gpu_memory, cpus=cpus, memory_mb=memory),  # type: ignore[arg-type]
        nodes=nodes,
        priority=priority,
        time_limit_s=time_limit,  # type: ignore[arg-type]
        retries=retries,
        preemptible=preemptible,
        grace_s=grace,
        inputs=tuple(inputs),
        pool=pool,
        env=dict(env or {}),
        workdir=workdir if workdir is not None else (os.getcwd() if command else None),
        params=dict(params or {}),
        tags=dict(tags or {}),
        parent_run=parent_run,
    )
    return submit_spec(spec, store=store)


#: What a command job takes from the submitter's environment (as ``sbatch --export`` would),
#: under whatever the spec's ``env`` sets: where to find programs and libraries, and the
#: software environment they belong to. Nothing else (no tokens, no passwords) is stored.
EXPORTED = (
    "PATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "LC_ALL",
)


def submit_spec(
    spec: JobSpec, *, store: Store | None = None, start_agents: bool = True
) -> JobHandle:
    """Queue a ready :class:`JobSpec` (from a YAML file, say), with the submitter's
    :data:`EXPORTED` variables under the spec's own ``env``. On an embedded store with no pool
    yet, a pool ``local`` describing this machine is made first; after the submit, agents are
    started for local pools that none serves (:func:`ensure_agents`)."""
    store = store or get_store()
    exported = {k: os.environ[k] for k in EXPORTED if k in os.environ}
    if exported:
        spec = spec.with_(env={**exported, **spec.env})
    embedded = "LUMINARY_URI" not in store.runner_environment()
    if start_agents and embedded and not store.list_pools():
        store.put_pool(machine_pool())
    from luminary._actor import current_actor

    job = store.submit_job(spec, user=current_actor())
    if start_agents:
        ensure_agents(store)
    wake_agents(store)
    return JobHandle(store, job)


def wake_agents(store: Store) -> None:
    """Have this machine's agents of an embedded store look at the queue now."""
    key = store.runner_environment().get("LUMINARY_DB")
    if key:
        from luminary.compute._wake import wake_all

        wake_all(key)


def get(job_id: str, *, store: Store | None = None) -> JobHandle:
    store = store or get_store()
    return JobHandle(store, store.get_job(job_id))


def list(
    project: str | None = None,
    states: Sequence[JobState | str] | None = None,
    *,
    limit: int = 100,
    store: Store | None = None,
) -> _Jobs:
    store = store or get_store()
    wanted = None if states is None else [JobState(s) for s in states]
    return store.list_jobs(project, wanted, limit=limit)


def limit_gpu_memory() -> bool:
    """Inside a job that asked for GPU memory (or a fraction of a GPU): cap PyTorch's
    allocator at that share of each visible device, so that going over raises PyTorch's own
    out-of-memory error instead of starving the job sharing the device. Call it before the
    first allocation; Python-call jobs get it automatically. Returns whether a cap was set."""
    from luminary.compute._gpumem import apply_torch_limit

    return apply_torch_limit()


def on_preempt(hook: Callable[[], object], *, exit_code: int = 143) -> None:
    """Inside a job: run ``hook`` (save a checkpoint) when the job is preempted or cancelled
    (SIGTERM), then exit with ``exit_code``. The job is killed ``grace`` seconds after the
    SIGTERM whether the hook has finished or not; the grace is in
    ``LUMINARY_PREEMPT_GRACE_S``."""

    def _handler(signum: int, frame: object) -> None:
        del signum, frame
        try:
            hook()
        finally:
            sys.exit(exit_code)

    signal.signal(signal.SIGTERM, _handler)


# -- embedded: agents on demand ---------------------------------------------------------------
def ensure_agents(store: Store) -> _list[str]:
    """On an embedded store: make sure every enabled local pool has a live agent, starting a
    detached ``luminary pools serve POOL --idle-exit 300`` where none does. Returns the pools
    started. On a
    team server, agents are the operators' to run (``luminary pools serve``): nothing starts."""
    env = store.runner_environment()
    if "LUMINARY_URI" in env:
        return []
    pools = store.list_pools()
    from luminary._clock import now_ms
    from luminary.compute._pass import AGENT_STALE_MS

    live = {a.pool for a in store.list_agents() if _alive(a, now_ms() - AGENT_STALE_MS)}
    started = []
    for pool in pools:
        if pool.executor == "local" and pool.enabled and pool.name not in live:
            _spawn_agent(store, pool.name, env)
            started.append(pool.name)
    return started


def _alive(agent: Agent, cutoff_ms: int) -> bool:
    """A recent heartbeat, and (for an agent of this machine) a process that still exists."""
    import socket

    if agent.heartbeat_ms < cutoff_ms:
        return False
    if agent.host != socket.gethostname():
        return True
    try:
        os.kill(agent.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def machine_pool(name: str = "local") -> Pool:
    """A local pool describing this machine: its CPUs, memory and GPUs (through NVML)."""
    from luminary.compute import _inventory

    devices = _inventory._gpus().gpus
    memories = [d.memory_total_bytes for d in devices if d.memory_total_bytes]
    return Pool(
        name=name,
        executor="local",
        gpus=len(devices),
        gpu_memory_mb=min(memories) // (1 << 20) if memories else 0,
        cpus=float(_inventory._cpu().logical or 1),
        memory_mb=_inventory._memory().total_bytes // (1 << 20),
    )


def _spawn_agent(store: Store, pool: str, env: Mapping[str, str]) -> None:
    home = Path(os.environ.get("LUMINARY_HOME") or Path.home() / ".luminary")
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"agent-{pool}.log"
    with contextlib.suppress(OSError), log_path.open("ab") as out:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "luminary.compute.agent",
                pool,
                "--idle-exit",
                "300",
                "--detach",
            ],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    _wait_for_agent(store, pool)


def _wait_for_agent(store: Store, pool: str, timeout_s: float = 15.0) -> None:
    from luminary._clock import now_ms
    from luminary.compute._pass import AGENT_STALE_MS

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cutoff = now_ms() - AGENT_STALE_MS
        if any(a.pool == pool and _alive(a, cutoff) for a in store.list_agents()):
            return
        time.sleep(0.02)
    msg = f"the agent for pool {pool!r} did not start within {timeout_s:g} s; see its log"
    raise NotFoundError(msg)
