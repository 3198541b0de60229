"""A real Ray cluster of several nodes on this machine, for tests and benchmarks.

:func:`ray_cluster` runs ``ray start --head`` and then ``ray start --address`` once per further
node, each with its own logical GPUs (``--num-gpus``; no device is needed), all on this
machine (Ray gives every node the machine's address: it turns 127.0.0.1 into it), every port
chosen free (so two clusters, or another user's Ray, can share the machine) and the
session files in a short temporary folder. It waits until every node is alive in the GCS, yields
a :class:`RayCluster`, and at the end stops exactly the processes it started: each
``ray start`` runs in its own process group, which its daemons (GCS, raylet, agents) keep;
workers die with their raylet. ``ray stop`` is not used: it stops every Ray on the machine.

The dashboard is off (``--include-dashboard=false``), so plain ``pip install ray`` (without
``ray[default]``) suffices; usage statistics are off. The GCS health check runs every 500 ms so
that a killed node is declared dead in about two seconds instead of about thirty.

Errors: :class:`RayClusterUnavailable` when the ``ray`` command is missing or the cluster does
not come up (its message carries the tail of the logs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

__all__ = ["RayCluster", "RayClusterUnavailable", "RayNode", "ray_cluster"]

#: Environment for the cluster's daemons: declare a lost node dead within about two seconds.
FAST_FAILURE_DETECTION = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "3",
    "RAY_health_check_initial_delay_ms": "0",
}
_PORT_FLAGS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


class RayClusterUnavailable(RuntimeError):
    """The ``ray`` command is missing, or the cluster did not start."""


@dataclass
class RayNode:
    """One node: the process group of its ``ray start`` and its raylet's port."""

    pgid: int
    node_manager_port: int

    def raylet_pid(self) -> int | None:
        """The raylet's process id, or ``None`` once it is gone."""
        for proc in psutil.process_iter(["name", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmdline = proc.info["cmdline"] or []
                if (
                    proc.info["name"] == "raylet"
                    and f"--node_manager_port={self.node_manager_port}" in cmdline
                ):
                    return int(proc.pid)
        return None


@dataclass
class RayCluster:
    """A running cluster: ``address`` (``127.0.0.1:PORT``, the GCS) for ``ray.init`` and the
    executor's ``address`` option; ``nodes[0]`` is the head. Not thread-safe."""

    address: str
    temp_dir: Path
    gpus_per_node: int
    cpus_per_node: int
    timeout: float = 120.0
    nodes: list[RayNode] = field(default_factory=list)

    def add_node(self) -> RayNode:
        """Start one more node (the head first) and wait until the GCS counts it alive."""
        head = not self.nodes
        ports = free_ports(len(_PORT_FLAGS))
        argv = [_ray_command(), "start", "--num-cpus", str(self.cpus_per_node)]
        argv += ["--num-gpus", str(self.gpus_per_node), "--disable-usage-stats"]
        for flag, port in zip(_PORT_FLAGS, ports, strict=True):
            argv += [flag, str(port)]
        if head:
            client_port, dashboard_port = free_ports(2)
            argv += ["--head", "--port", self.address.rpartition(":")[2]]
            argv += ["--temp-dir", str(self.temp_dir), "--include-dashboard=false"]
            argv += ["--dashboard-port", str(dashboard_port)]
            argv += ["--ray-client-server-port", str(client_port)]
        else:
            argv += ["--address", self.address]
        env = {**os.environ, **FAST_FAILURE_DETECTION}
        env.pop("RAY_ADDRESS", None)
        node = RayNode(_start_node(argv, env, self.temp_dir / "start.log", self.timeout), ports[0])
        self.nodes.append(node)
        self.wait_alive(len(self.nodes))
        return node

    def replace_node(self, node: RayNode) -> RayNode:
        """Kill what is left of ``node`` (after a test killed its raylet) and start another."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(node.pgid, signal.SIGKILL)
        self.nodes.remove(node)
        return self.add_node()

    def wait_alive(self, count: int) -> None:
        """Wait until exactly ``count`` nodes are alive (a killed one is declared dead)."""
        deadline = time.monotonic() + self.timeout
        while (alive := _alive_nodes(self.address)) != count:
            if time.monotonic() > deadline:
                msg = f"{alive} Ray nodes alive after {self.timeout:.0f} s, not {count}"
                raise RayClusterUnavailable(msg)
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM every node's process group, then SIGKILL what is left, workers included
        (they run in process groups of their own)."""
        workers: list[psutil.Process] = []
        for node in self.nodes:
            pid = node.raylet_pid()
            with contextlib.suppress(psutil.Error):
                workers += psutil.Process(pid).children(recursive=True) if pid else []
        for sig, pause in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 0.0)):
            for node in reversed(self.nodes):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node.pgid, sig)
            deadline = time.monotonic() + pause
            while time.monotonic() < deadline and any(_group_alive(n.pgid) for n in self.nodes):
                time.sleep(0.1)
        for proc in workers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (free when asked)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ray_command() -> str:
    beside = Path(sys.executable).parent / "ray"  # the venv's bin/, even when not activated
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        msg = "no `ray` command (pip install 'luminary[ray]')"
        raise RayClusterUnavailable(msg)
    return found


def _start_node(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> int:
    """Run one ``ray start`` in a new process group; its pid is the group's id."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        code = None
    if code != 0:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        msg = f"`{' '.join(argv[:3])} …` failed (status {code}):\n{tail}"
        raise RayClusterUnavailable(msg)
    return proc.pid


def _alive_nodes(address: str) -> int:
    """Alive nodes as the GCS reports them (``ray list nodes`` needs the dashboard)."""
    code = (
        "import ray, sys\n"
        f"ray.init(address={address!r}, log_to_driver=False, include_dashboard=False)\n"
        "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines and lines[-1].isdigit() else 0


@contextlib.contextmanager
def ray_cluster(
    nodes: int = 2, gpus: int = 2, cpus: int = 2, timeout: float = 120.0
) -> Iterator[RayCluster]:
    """Start a cluster of ``nodes`` nodes with ``gpus`` logical GPUs and ``cpus`` CPUs each,
    yield it, and stop it."""
    _ray_command()
    temp_dir = Path(tempfile.mkdtemp(prefix="lmray-", dir="/tmp"))  # unix sockets: keep it short
    (gcs_port,) = free_ports(1)
    cluster = RayCluster(f"127.0.0.1:{gcs_port}", temp_dir, gpus, cpus, timeout)
    try:
        for _ in range(nodes):
            cluster.add_node()
        yield cluster
    finally:
        cluster.stop()
