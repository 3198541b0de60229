"""The Ray executor: a pool's jobs run as Ray tasks, gangs in STRICT_SPREAD placement groups.

Pool options (strings):

- ``address``: ``ray://host:port`` (Ray Client), ``host:port`` (the GCS of a cluster this
  machine can reach as a member would) or ``auto`` (the cluster started on this machine).
  Default ``auto``.
- ``namespace``: Ray namespace of the executor's supervisor; pools sharing a namespace share
  it. Default ``luminary``.
- ``placement_timeout``: seconds a gang may wait for its placement group (default 60); past it
  the group is removed and :meth:`RayExecutor.launch` raises. Never wait forever: a group that
  cannot be placed stays pending for good (ray-project/ray#27287).

Resources map onto Ray's: ``gpus`` to ``num_gpus`` (fractions allowed: two 0.5-GPU jobs share
one device), ``cpus`` to ``num_cpus``, ``memory_mb`` to ``memory`` in bytes, and a job asking
only for GPU memory gets that share of one of the pool's devices (``gpu_memory_mb``). A gang
gets one bundle ``{"GPU": g, "CPU": c}`` per node, STRICT_SPREAD so no two share a node; rank 0
finds a free port on its node for ``MASTER_ADDR``/``MASTER_PORT``. ``CUDA_VISIBLE_DEVICES`` is
what Ray assigned (``ray.get_gpu_ids()``).

Surviving the executor: runners are owned by a detached supervisor actor on the head node
(``_ray_remote.py`` says why), not by this process, so killing the executor's process, even
with SIGKILL, leaves every job running, and a new executor polls them by the same refs. A ref
is ``JOB.ATTEMPT.RANDOM`` for a one-node job (also its Ray task's name) or
``pg:<placement group id>`` for a gang.

Launching does not wait: a one-node job's launch sends the call to the supervisor and returns
(a round trip per job would cap the launch rate at the cluster's RPC latency under load); the
supervisor's answer is read by the next poll of the ref, which reports ``None`` until then, or
``"not started: …"`` if the supervisor refused. A launch is safe from the executor's death once
a poll of its ref has answered; a process killed between the two may leave a launch unsent,
and the ref then polls as unknown, which the queue's heartbeat check turns into a requeue.
:meth:`RayExecutor.close` waits for every answer before it disconnects. A gang's launch waits
for its placement (it may be refused).

Threads: one agent thread uses an executor (the interface's rule). The Ray connection is
per process; executors in one process share it and must name the same cluster.
Errors: :class:`~luminary.errors.BackendUnavailableError` when the cluster does not answer or
refuses a launch, with the address or the numbers and what to do.
"""

from __future__ import annotations

import math
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from luminary._optional import require
from luminary.compute._executor import Executor
from luminary.compute._ray_remote import SUPERVISOR_NAME, Supervisor
from luminary.compute.models import Job, JobSpec, Pool
from luminary.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    LuminaryError,
)

__all__ = ["RayExecutor"]

_MIB = 1 << 20
#: Seconds to wait for the cluster's GCS to accept a TCP connection before calling it down
#: (``ray.init`` itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0
#: Seconds a call to the supervisor may take (a gang's launch adds its placement timeout).
CALL_TIMEOUT_S = 60.0

_connection_lock = threading.Lock()
# The process's one Ray connection: whose address, how many executors use it, and whether an
# executor made it (only then does the last one to close shut it down).
_connection: dict[str, Any] = {"address": None, "users": 0, "ours": False}


def _ray(purpose: str) -> Any:
    return require("ray", "ray", purpose)


def _probe(address: str) -> None:
    """Raise BackendUnavailableError unless ``host:port`` (or ``ray://host:port``) accepts TCP."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        msg = (
            f"address={address!r} is not valid; give 'auto', 'host:port' (the GCS port, "
            "6379 by default) or 'ray://host:port' (Ray Client, 10001 by default)"
        )
        raise InvalidArgumentError(msg)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        msg = (
            f"Ray cluster at {address!r} does not answer ({exc}); start it "
            f"(`ray start --head --port {port}`) or fix the pool's address option"
        )
        raise BackendUnavailableError(msg) from None


def gpus_of(spec: JobSpec, pool: Pool) -> float:
    """Ray's ``num_gpus`` for one node of ``spec``: its GPUs, or its GPU memory as a share of
    one of the pool's devices."""
    r = spec.resources
    if r.gpus or not r.gpu_memory_mb:
        return r.gpus
    if not pool.gpu_memory_mb:
        msg = (
            f"gpu_memory={r.gpu_memory_mb} MiB needs the device size: give pool {pool.name!r} "
            "gpu_memory_mb, or ask for a fraction of a GPU (gpus=0.5)"
        )
        raise InvalidArgumentError(msg)
    return min(1.0, math.ceil(r.gpu_memory_mb / pool.gpu_memory_mb * 10_000) / 10_000)


class RayExecutor(Executor):
    """Runs a pool's jobs on a Ray cluster through the namespace's supervisor actor."""

    kind: ClassVar[str] = "ray"

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.address = pool.options.get("address", "auto")
        self.namespace = pool.options.get("namespace", "luminary")
        try:
            self.placement_timeout_s = float(pool.options.get("placement_timeout", "60"))
        except ValueError:
            self.placement_timeout_s = -1.0
        if not 0 < self.placement_timeout_s <= 86_400:
            msg = (
                f"placement_timeout={pool.options['placement_timeout']!r} is not valid; "
                "give seconds, more than 0 and at most 86400"
            )
            raise InvalidArgumentError(msg)
        self._supervisor: Any = None
        self._connected = False
        # One-node launches the supervisor has not answered yet: ref -> the call's ObjectRef.
        self._pending: dict[str, Any] = {}

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> Any:
        """The supervisor's handle, connecting to the cluster and creating it on first use."""
        if self._supervisor is not None:
            return self._supervisor
        ray = _ray("Running jobs on a Ray cluster")
        with _connection_lock:
            if not self._connected:
                if _connection["users"] and _connection["address"] != self.address:
                    msg = (
                        f"this process is connected to the Ray cluster at "
                        f"{_connection['address']!r}; pool {self.pool.name!r} names "
                        f"{self.address!r}, and Ray allows one cluster per process"
                    )
                    raise InvalidStateError(msg)
                if not _connection["users"]:
                    _connection["ours"] = not ray.is_initialized()
                if not ray.is_initialized():
                    _probe(self.address)
                    try:
                        ray.init(
                            address=self.address,
                            namespace=self.namespace,
                            log_to_driver=False,
                            ignore_reinit_error=True,
                            configure_logging=False,
                        )
                    except (ConnectionError, RuntimeError) as exc:
                        msg = (
                            f"cannot connect to the Ray cluster at {self.address!r}: {exc}; "
                            "check that it runs and that this Ray version matches the cluster's"
                        )
                        raise BackendUnavailableError(msg) from exc
                _connection["address"] = self.address
                _connection["users"] += 1
                self._connected = True
        self._supervisor = self._supervisor_handle(ray)
        return self._supervisor

    def _supervisor_handle(self, ray: Any) -> Any:
        head = [
            n["NodeID"]
            for n in ray.nodes()
            if n["Alive"] and "node:__internal_head__" in n["Resources"]
        ]
        options: dict[str, Any] = {
            "name": SUPERVISOR_NAME,
            "namespace": self.namespace,
            "lifetime": "detached",
            "get_if_exists": True,
            "num_cpus": 0,
            "max_concurrency": 64,
            "max_restarts": 0,
        }
        if head:
            options["scheduling_strategy"] = (
                ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(head[0], soft=False)
            )
        handle = ray.remote(Supervisor).options(**options).remote()
        self._call(handle.ping.remote(), CALL_TIMEOUT_S)
        return handle

    def _call(self, ref: Any, timeout: float) -> Any:
        ray = _ray("Running jobs on a Ray cluster")
        try:
            return ray.get(ref, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            msg = f"the Ray cluster at {self.address!r} did not answer within {timeout:.0f} s"
            raise BackendUnavailableError(msg) from None
        except ray.exceptions.RayError as exc:
            self._supervisor = None  # a new one is made (or found) on the next call
            msg = f"the Ray cluster at {self.address!r} failed the call: {exc}"
            raise BackendUnavailableError(msg) from exc

    # -- the interface ----------------------------------------------------------------------

    def options_for(self, spec: JobSpec) -> tuple[dict[str, Any], dict[str, float]]:
        """Ray task options and the gang bundle for one node of ``spec``."""
        gpus = gpus_of(spec, self.pool)
        options: dict[str, Any] = {"num_cpus": spec.resources.cpus, "max_retries": 0}
        bundle = {"CPU": spec.resources.cpus}
        if gpus:
            options["num_gpus"] = gpus
            bundle["GPU"] = gpus
        if spec.resources.memory_mb:
            options["memory"] = spec.resources.memory_mb * _MIB
            bundle["memory"] = float(spec.resources.memory_mb * _MIB)
        return options, {k: v for k, v in bundle.items() if v}

    def launch(self, job: Job, command: Sequence[str], env: Mapping[str, str]) -> str:
        """Hand the job to the supervisor. A one-node job's call is not waited for (its answer
        is read by the next :meth:`poll` of the ref); a gang's is, since its placement may be
        refused."""
        supervisor = self._connect()
        options, bundle = self.options_for(job.spec)
        nodes = job.spec.nodes
        if nodes == 1:
            ref = f"{job.id}.{job.attempt}.{secrets.token_hex(4)}"
            self._pending[ref] = (
                supervisor.start.remote(ref, list(command), dict(env), options),
                None,
            )
            return ref
        if not bundle:
            bundle = {"CPU": 0.001}  # a bundle needs some resource to hold a node
        answer = self._call(
            supervisor.start_gang.remote(
                list(command), dict(env), options, nodes, bundle, self.placement_timeout_s
            ),
            CALL_TIMEOUT_S + self.placement_timeout_s,
        )
        if "ref" in answer:
            return str(answer["ref"])
        if answer["error"] == "unplaced":
            msg = (
                f"job {job.id}: a gang of {nodes} nodes x {_describe_bundle(bundle)} could not "
                f"be placed within {self.placement_timeout_s:g} s on the Ray cluster at "
                f"{self.address!r}, which has {self._capacity()}; ask for fewer nodes or "
                "less per node, or wait for the cluster to free up"
            )
        else:
            msg = f"job {job.id}: {answer['error']}"
        raise BackendUnavailableError(msg)

    def launch_many(
        self, launches: Sequence[tuple[Job, Sequence[str], Mapping[str, str]]]
    ) -> list[str | BaseException]:
        """One supervisor call for all one-node jobs (the agent launches what it claimed at
        once); gangs one by one, since each waits for its placement."""
        supervisor = self._connect()
        out: list[str | BaseException | None] = [None] * len(launches)
        batch: list[tuple[str, list[str], dict[str, str], dict[str, Any]]] = []
        where: list[int] = []
        for i, (job, command, env) in enumerate(launches):
            if job.spec.nodes > 1:
                try:
                    out[i] = self.launch(job, command, env)
                except LuminaryError as exc:
                    out[i] = exc
                continue
            options, _ = self.options_for(job.spec)
            ref = f"{job.id}.{job.attempt}.{secrets.token_hex(4)}"
            batch.append((ref, list(command), dict(env), options))
            where.append(i)
            out[i] = ref
        if batch:
            ack = supervisor.start_many.remote(batch)
            for index, (ref, *_rest) in enumerate(batch):
                self._pending[ref] = (ack, index)
        return [x if x is not None else BackendUnavailableError("not launched") for x in out]

    def _settle(self, refs: Sequence[str], wait: float) -> dict[str, str | None]:
        """Read the supervisor's answers to launches of ``refs`` that have come (waiting up to
        ``wait`` seconds): ``None`` for a ref still unanswered, why it failed for one the
        supervisor refused; answered refs leave the pending map and are not in the result."""
        ray = _ray("Running jobs on a Ray cluster")
        pending = {ref: self._pending[ref] for ref in refs if ref in self._pending}
        if not pending:
            return {}
        acks = list(dict.fromkeys(ack for ack, _ in pending.values()))
        done = set(ray.wait(acks, num_returns=len(acks), timeout=wait)[0])
        out: dict[str, str | None] = {}
        for ref, (ack, index) in pending.items():
            if ack not in done:
                out[ref] = None
                continue
            del self._pending[ref]
            try:
                answer = ray.get(ack)
            except ray.exceptions.RayError as exc:
                self._supervisor = None
                out[ref] = f"not started: the Ray executor's supervisor failed: {exc}"
            else:
                if index is not None:
                    answer = answer[index]
                if "error" in answer:
                    out[ref] = f"not started: {answer['error']}"
        return out

    def poll(self, refs: Sequence[str]) -> dict[str, str | None]:
        if not refs:
            return {}
        supervisor = self._connect()
        settled = self._settle(refs, 0)
        ask = [ref for ref in refs if ref not in settled]
        answer: dict[str, str | None] = {}
        if ask:
            answer = self._call(supervisor.poll.remote(ask), CALL_TIMEOUT_S)
        answer.update(settled)
        return {
            ref: "unknown to this Ray executor" if answer[ref] == "unknown" else answer[ref]
            for ref in refs
        }

    def flush(self, timeout: float = CALL_TIMEOUT_S) -> None:
        """Wait (up to ``timeout`` seconds) until the supervisor has answered every launch, so
        that every job launched so far outlives this process."""
        if self._pending:
            self._settle(list(self._pending), timeout)

    def kill(self, ref: str) -> None:
        supervisor = self._connect()
        self._settle([ref], CALL_TIMEOUT_S)
        self._call(supervisor.kill.remote(ref), CALL_TIMEOUT_S)

    def discover(self) -> Pool | None:
        ray = _ray("Reading a Ray cluster's nodes")
        self._connect()
        alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        if not alive:
            return None
        return Pool(
            name=self.pool.name,
            executor=self.kind,
            nodes=len(alive),
            gpus=int(min(r.get("GPU", 0.0) for r in alive)),
            gpu_memory_mb=self.pool.gpu_memory_mb,
            cpus=min(r.get("CPU", 0.0) for r in alive),
            memory_mb=int(min(r.get("memory", 0.0) for r in alive) // _MIB),
            options=self.pool.options,
            enabled=self.pool.enabled,
        )

    def close(self) -> None:
        """Disconnect (the last executor of this process shuts the driver down); jobs keep
        running on the cluster, owned by the supervisor."""
        self.flush()  # the supervisor has every launch before this process lets go
        self._pending.clear()
        self._supervisor = None
        with _connection_lock:
            if not self._connected:
                return
            self._connected = False
            _connection["users"] -= 1
            if _connection["users"] == 0:
                _connection["address"] = None
                if _connection["ours"]:
                    _ray("Disconnecting from a Ray cluster").shutdown()

    def _capacity(self) -> str:
        ray = _ray("Reading a Ray cluster's nodes")
        alive = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        per_node = ", ".join(
            _describe_bundle({k: r.get(k, 0.0) for k in ("GPU", "CPU")}) for r in alive
        )
        return f"{len(alive)} alive node(s): {per_node or 'none'}"


def _describe_bundle(bundle: Mapping[str, float]) -> str:
    parts = [f"{bundle[k]:g} {k}" for k in ("GPU", "CPU") if k in bundle]
    if bundle.get("memory"):
        parts.append(f"{bundle['memory'] / _MIB:g} MiB")
    return "{" + ", ".join(parts) + "}"
