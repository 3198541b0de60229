"""The code the Ray executor runs inside the cluster: the supervisor actor and the command task.

Why a supervisor: Ray ties a task to its owner, the process that submitted it; when the owner
dies, Ray kills its tasks. If the executor's process submitted the runners itself, killing that
process (an agent restart, an OOM kill) would kill every job it launched. So the executor
submits nothing itself: one detached actor per namespace, :class:`Supervisor`, pinned to the
head node (whose loss ends the cluster anyway), submits the runner tasks and owns them, keeps
their ObjectRefs and placement groups, and answers ``start``, ``start_gang``, ``poll`` and
``kill``. Executors come and go and find it again by name. Runners are plain tasks, not
actors, so Ray reuses its worker processes and a launch costs one actor call and one task.

:func:`run_command` is the task body: it runs the command as a child process with the job's
environment, the rank variables and ``CUDA_VISIBLE_DEVICES`` set to the devices Ray assigned,
and returns its exit status. Ray kills a worker's child processes when the worker ends (a
forced cancel, a lost raylet), so no orphan is left behind; the tests check both. (A
``preexec_fn`` asking for ``PR_SET_PDEATHSIG`` would do the same, but it forces Python to
``fork()`` the large worker process instead of ``vfork()``, which made each task about five
times slower on a two-core machine.)

Threads: the supervisor is a threaded actor (``max_concurrency``); one lock guards its maps.
Errors travel back as strings (``{"error": …}``) so the executor raises Luminary's own error.
This module imports nothing but the standard library at the top; Ray through ``_optional``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from luminary._optional import require

__all__ = ["SUPERVISOR_NAME", "Supervisor", "free_port", "node_address", "run_command"]

#: The supervisor's actor name (versioned: a new protocol never talks to an old supervisor).
SUPERVISOR_NAME = "luminary-executor-v1"
#: Outcomes kept after a ref has finished, so a repeated poll gives the same answer.
_FINISHED_KEPT = 10_000


def _ray() -> Any:
    return require("ray", "ray", "Running jobs on a Ray cluster")


def run_command(command: Sequence[str], env: Mapping[str, str], rank: int) -> int:
    """Run ``command`` with the worker's environment plus ``env``, ``LUMINARY_RANK`` and the
    devices Ray assigned to this task; its exit status (negative: killed by that signal)."""
    ray = _ray()

    gpu_ids = ",".join(str(i) for i in ray.get_gpu_ids())
    child_env = {**os.environ, **env, "LUMINARY_RANK": str(rank), "CUDA_VISIBLE_DEVICES": gpu_ids}
    with subprocess.Popen(list(command), env=child_env) as proc:
        return proc.wait()


def free_port() -> tuple[str, int]:
    """This node's id and a TCP port free on it now (for MASTER_PORT)."""
    ray = _ray()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    return str(ray.get_runtime_context().get_node_id()), port


def node_address(node_id: str) -> str:
    """The address the cluster knows ``node_id`` by (``ray start --node-ip-address``)."""
    ray = _ray()

    for node in ray.nodes():
        if node["NodeID"] == node_id:
            return str(node["NodeManagerAddress"])
    msg = f"node {node_id} is not in the cluster"
    raise LookupError(msg)


def _describe(exc: BaseException) -> str:
    """Why a runner task ended without an exit status: Ray's error, in Luminary's words."""
    rex = _ray().exceptions

    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, rex.TaskCancelledError):
        return "cancelled"
    lost = (rex.NodeDiedError, rex.WorkerCrashedError, rex.ActorDiedError, rex.OwnerDiedError)
    if isinstance(exc, lost) or ("node" in first.lower() and "died" in first.lower()):
        return f"node lost: {type(exc).__name__}: {first[:300]}"
    return f"failed in Ray: {type(exc).__name__}: {first[:300]}"


def _results(done: list[Any]) -> dict[Any, Any]:
    """The values of finished ObjectRefs, or the error each raised: one ``ray.get`` for all
    unless one of them failed."""
    ray = _ray()
    if not done:
        return {}
    try:
        return dict(zip(done, ray.get(done), strict=True))
    except Exception:  # noqa: BLE001 - one failed: read them one by one
        out: dict[Any, Any] = {}
        for ref in done:
            try:
                out[ref] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - Ray's errors become reasons
                out[ref] = exc
        return out


class Supervisor:
    """Owns the runner tasks and placement groups of every job launched in one namespace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, list[Any]] = {}  # ref string -> ObjectRefs, rank order
        self._groups: dict[str, Any] = {}  # ref string -> placement group (gangs)
        self._cancelled: set[str] = set()
        self._finished: OrderedDict[str, str] = OrderedDict()
        ray = _ray()
        # Made once: each ray.remote() exports its function to the GCS anew.
        self._task = ray.remote(run_command)
        self._probe = ray.remote(free_port)

    def ping(self) -> str:
        return SUPERVISOR_NAME

    def start(
        self, key: str, command: Sequence[str], env: Mapping[str, str], options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Submit the one task of a one-node job under ``key`` (the executor's ref for it);
        ``{"ref": key}``, or ``{"error": …}`` for a key already in use."""
        self._sweep_groups()
        with self._lock:
            if key in self._refs or key in self._finished:
                return {"error": f"ref {key} was launched before"}
            self._refs[key] = [self._task.options(**options, name=key).remote(command, env, 0)]
        return {"ref": key}

    def start_many(
        self, launches: Sequence[tuple[str, Sequence[str], Mapping[str, str], Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """:meth:`start` for many one-node jobs in one call (what an agent claimed at once)."""
        return [self.start(key, command, env, options) for key, command, env, options in launches]

    def start_gang(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        options: Mapping[str, Any],
        nodes: int,
        bundle: Mapping[str, float],
        placement_timeout_s: float,
    ) -> dict[str, Any]:
        """Place a STRICT_SPREAD group of ``nodes`` bundles, waiting at most
        ``placement_timeout_s``, and submit one task per bundle; ``{"ref": "pg:…"}``, or
        ``{"error": "unplaced"}`` (the group is removed again) or another ``{"error": …}``."""
        ray = _ray()
        self._sweep_groups()
        task = self._task
        strategies = ray.util.scheduling_strategies
        group = ray.util.placement_group([dict(bundle)] * nodes, strategy="STRICT_SPREAD")
        ready, _ = ray.wait([group.ready()], timeout=placement_timeout_s)
        if not ready:
            ray.util.remove_placement_group(group)
            return {"error": "unplaced"}
        key = f"pg:{group.id.hex()}"

        def in_bundle(index: int) -> Any:
            return strategies.PlacementGroupSchedulingStrategy(
                placement_group=group, placement_group_bundle_index=index
            )

        probe = self._probe.options(num_cpus=0, scheduling_strategy=in_bundle(0))
        try:
            node_id, master_port = ray.get(probe.remote(), timeout=placement_timeout_s)
            master_addr = node_address(node_id)
        except Exception as exc:  # noqa: BLE001 - any Ray failure here means no gang
            ray.util.remove_placement_group(group)
            return {"error": f"rank 0's node did not answer: {_describe(exc)}"}
        gang_env = {**env, "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port)}
        refs = [
            task.options(
                **options, name=f"{key}.{rank}", scheduling_strategy=in_bundle(rank)
            ).remote(command, gang_env, rank)
            for rank in range(nodes)
        ]
        with self._lock:
            self._refs[key] = refs
            self._groups[key] = group
        return {"ref": key}

    def _sweep_groups(self) -> None:
        """Free the placement groups of gangs whose ranks have all ended, whether or not their
        executor polled them (it may have stopped): a group left standing holds its GPUs."""
        with self._lock:
            gangs = [key for key in self._groups if key in self._refs]
        if gangs:
            self.poll(gangs)

    def poll(self, keys: Sequence[str]) -> dict[str, str | None]:
        """``None`` while a ref's tasks may run, else why they ended; ``"unknown"`` for refs
        this supervisor never launched (or forgot long ago)."""
        ray = _ray()

        with self._lock:
            running = {k: list(self._refs[k]) for k in keys if k in self._refs}
        flat = [ref for refs in running.values() for ref in refs]
        done = ray.wait(flat, num_returns=len(flat), timeout=0)[0] if flat else []
        results = _results(done)
        out: dict[str, str | None] = {}
        for key in keys:
            if key in running:
                out[key] = self._outcome(key, running[key], results)
            else:
                with self._lock:
                    out[key] = self._finished.get(key, "unknown")
        return out

    def _outcome(self, key: str, refs: list[Any], results: dict[Any, Any]) -> str | None:
        reason: str | None = None
        codes: list[tuple[int, int]] = []
        for rank, ref in enumerate(refs):
            if ref not in results:
                continue
            if isinstance(results[ref], BaseException):
                reason = reason or _describe(results[ref])
            else:
                codes.append((rank, int(results[ref])))
        with self._lock:
            if key in self._cancelled:
                reason = "cancelled"
        if reason is None and len(codes) < len(refs):
            return None
        if reason is None:
            failed = [(rank, code) for rank, code in codes if code != 0]
            reason = "exited"
            if failed:
                rank, code = failed[0]
                how = f"killed by signal {-code}" if code < 0 else f"with status {code}"
                reason = f"exited {how}" + (f" (rank {rank})" if len(refs) > 1 else "")
        self._forget(key, reason, cancel=len(codes) < len(refs))
        return reason

    def kill(self, key: str) -> None:
        """Cancel every task of ``key`` (killing their workers) and free its group."""
        with self._lock:
            if key not in self._refs:
                return
            self._cancelled.add(key)
        self._stop(key)

    def _stop(self, key: str) -> None:
        ray = _ray()

        with self._lock:
            refs = self._refs.get(key, [])
            group = self._groups.pop(key, None)
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if group is not None:
            with contextlib.suppress(Exception):
                ray.util.remove_placement_group(group)

    def _forget(self, key: str, reason: str, *, cancel: bool) -> None:
        """Record ``key`` as finished; stop what is left of a gang that lost a rank."""
        if cancel:
            self._stop(key)
        else:
            with self._lock:
                group = self._groups.pop(key, None)
            if group is not None:
                with contextlib.suppress(Exception):
                    _ray().util.remove_placement_group(group)
        with self._lock:
            self._refs.pop(key, None)
            self._cancelled.discard(key)
            self._finished[key] = reason
            while len(self._finished) > _FINISHED_KEPT:
                self._finished.popitem(last=False)
