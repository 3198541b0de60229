"""A Slurm cluster on this machine, in a folder, for tests and benchmarks.

:func:`start_cluster` runs Debian's ``slurm-wlm`` (22.05) and ``munge`` as root: a private
``munged`` on its own socket and key, ``slurmctld``, and one ``slurmd`` per node (a one-node
cluster's node is named after the host; ``nodes=2`` gives ``host-1`` and ``host-2``, two
slurmd on this one machine, enough to run a gang through ``srun``). All run in the foreground
as child processes, with every file (configuration, state, spool, logs, placeholder devices)
under one folder and ports chosen free. Nothing outside the folder is touched, so several
clusters (a test session and a benchmark) can run at once, and :meth:`SlurmCluster.stop` ends
exactly the processes it started.

Each node has ``gpus`` logical GPUs (``Gres=gpu:4``) backed by placeholder device files:
character devices with /dev/null's numbers (slurmd refuses a plain file, and one file named
four times). Slurm does its GPU bookkeeping and sets ``CUDA_VISIBLE_DEVICES`` while no device
exists; each node also has ``gpus * shards_per_gpu`` ``shard`` gres for fractional requests.
A node declares at least ``cpus`` CPUs (``SlurmdParameters=config_overrides``; with
``proctrack/linuxproc`` and ``task/none`` nothing is bound, so this only lets small jobs run
side by side on a small machine) and ``DefMemPerCPU`` keeps a job without ``--mem`` from
holding a node's whole memory.

Errors: :class:`~luminary.errors.MissingDependencyError` when the Slurm or munge binaries are
missing or the caller is not root, :class:`~luminary.errors.BackendUnavailableError` (with the
daemons' logs) when the cluster does not come up. Not thread safe; one owner per cluster.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from luminary.compute.models import Pool
from luminary.errors import BackendUnavailableError, MissingDependencyError

__all__ = ["BINARIES", "SlurmCluster", "missing", "slurm_conf", "start_cluster"]

#: The commands a cluster needs, all from Debian's slurm-wlm and munge packages.
BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "srun", "munged")
INSTALL = "apt-get install slurm-wlm munge (as root)"
PARTITION = "debug"


def missing() -> str | None:
    """Why a cluster cannot start here (a missing binary, not root), or ``None``."""
    absent = [name for name in (*BINARIES, "mungekey") if shutil.which(name) is None]
    if absent:
        return f"{', '.join(absent)} not found on PATH; {INSTALL}"
    if os.geteuid() != 0:
        return "the test cluster runs slurmd, which needs root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _real_memory_mb() -> int:
    """The node's memory as ``slurmd -C`` would report it, less a margin it may not drop below."""
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return max(256, int(line.split()[1]) // 1024 - 256)
    return 1024


def node_names(host: str, count: int) -> list[str]:
    """The node names of a cluster on ``host``: the host itself for one node, else
    ``host-1`` … ``host-N`` (one ``slurmd`` each, all on this machine)."""
    return [host] if count == 1 else [f"{host}-{i}" for i in range(1, count + 1)]


def slurm_conf(
    root: Path,
    *,
    host: str,
    nodes: Sequence[str],
    cpus: int,
    memory_mb: int,
    gpus: int,
    shards_per_gpu: int,
    ctld_port: int,
    slurmd_ports: Sequence[int],
) -> dict[str, str]:
    """The configuration files (name → text) of a cluster of ``nodes`` on this machine
    (``host``), every file kept under ``root``."""
    gres = [f"gpu:{gpus}"] + ([f"shard:{gpus * shards_per_gpu}"] if shards_per_gpu else [])
    node_lines = "".join(
        f"NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs={cpus} "
        f"RealMemory={memory_mb} Gres={','.join(gres)} State=UNKNOWN\n"
        for name, port in zip(nodes, slurmd_ports, strict=True)
    )
    conf = f"""\
ClusterName=luminary
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_ports[0]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=64
GresTypes=gpu{",shard" if shards_per_gpu else ""}
SlurmdParameters=config_overrides
ReturnToService=2
EnforcePartLimits=ALL
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SlurmctldTimeout=10
SlurmdTimeout=10
InactiveLimit=0
MinJobAge=600
KillWait=2
MessageTimeout=10
Waittime=0
{node_lines}PartitionName={PARTITION} Nodes={",".join(nodes)} Default=YES MaxTime=INFINITE State=UP
"""
    gres_conf = ""
    for name in nodes:
        gres_conf += "".join(
            f"NodeName={name} Name=gpu File={root}/dev/{name}-gpu{i}\n" for i in range(gpus)
        )
        if shards_per_gpu:
            gres_conf += f"NodeName={name} Name=shard Count={gpus * shards_per_gpu}\n"
    return {
        "slurm.conf": conf,
        "gres.conf": gres_conf,
        "cgroup.conf": "CgroupPlugin=cgroup/v1\n",
    }


@dataclass
class SlurmCluster:
    """A running cluster: its folder, configuration and daemons. ``gpus``, ``cpus`` and
    ``memory_mb`` are per node."""

    root: Path
    host: str
    nodes: list[str]
    gpus: int
    cpus: int
    memory_mb: int
    shards_per_gpu: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    def env(self) -> dict[str, str]:
        """This process's environment pointed at the cluster (``SLURM_CONF``)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def pool(self, name: str = "slurm", **options: str) -> Pool:
        """A Slurm pool on this cluster: its partition, its configuration, a spool in the
        cluster's folder, plus ``options``."""
        base = {
            "partition": PARTITION,
            "conf": str(self.conf),
            "spool": str(self.root / "luminary"),
        }
        if self.shards_per_gpu:
            base["shards_per_gpu"] = str(self.shards_per_gpu)
        return Pool(
            name=name,
            executor="slurm",
            nodes=len(self.nodes),
            gpus=self.gpus,
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            options={**base, **options},
        )

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A Slurm command against this cluster (``scontrol``, ``squeue`` …); output as text."""
        return subprocess.run(
            args, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )

    def logs(self) -> str:
        """The tail of every daemon's log, for an error message."""
        parts = []
        for path in sorted((self.root / "log").glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """End the daemons this cluster started (slurmd, slurmctld, munged), in that order,
        after cancelling every job: a job's processes outlive slurmd unless cancelled."""
        ctld = self.processes.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            for args in (["--full", "--signal=KILL"], []):
                try:
                    self.run("scancel", *args, f"--partition={PARTITION}", timeout=10)
                except subprocess.TimeoutExpired:
                    break  # the controller hangs: stop the daemons all the same
        for name in [n for n in self.processes if n.startswith("slurmd")] + ["slurmctld", "munged"]:
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _device_file(path: Path) -> None:
    """A placeholder device for ``gres.conf``: slurmd wants a character or block device, so a
    node of /dev/null's numbers, or a link to /dev/null where ``mknod`` is not allowed."""
    if path.exists() or path.is_symlink():
        return
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        path.symlink_to("/dev/null")


def _spawn(args: list[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env)
        )


def start_cluster(
    root: str | os.PathLike[str],
    *,
    nodes: int = 1,
    gpus: int = 4,
    shards_per_gpu: int = 4,
    cpus: int = 8,
    timeout_s: float = 60.0,
) -> SlurmCluster:
    """Start a cluster of ``nodes`` nodes (one ``slurmd`` each, all on this machine) with its
    files under ``root`` (created), and wait until every node takes jobs (``sinfo`` shows it
    idle). Stop it with :meth:`SlurmCluster.stop`."""
    why = missing()
    if why:
        msg = f"a test Slurm cluster needs Slurm and munge: {why}"
        raise MissingDependencyError(msg)
    base = Path(root).resolve()
    for sub in ("etc", "state", "spool", "run", "log", "dev", "munge", "munge/key", "luminary"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "munge").chmod(0o755)
    (base / "munge" / "key").chmod(0o700)
    host = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(
        root=base,
        host=host,
        nodes=node_names(host, nodes),
        gpus=gpus,
        cpus=max(cpus, os.cpu_count() or 1),
        memory_mb=_real_memory_mb(),
        shards_per_gpu=shards_per_gpu,
    )
    for name in cluster.nodes:
        (base / "spool" / name).mkdir(exist_ok=True)
        for i in range(gpus):
            _device_file(base / "dev" / f"{name}-gpu{i}")
    files = slurm_conf(
        base,
        host=host,
        nodes=cluster.nodes,
        cpus=cluster.cpus,
        memory_mb=cluster.memory_mb,
        gpus=gpus,
        shards_per_gpu=shards_per_gpu,
        ctld_port=_free_port(),
        slurmd_ports=[_free_port() for _ in cluster.nodes],
    )
    for name, text in files.items():
        (base / "etc" / name).write_text(text)
    env = cluster.env()
    try:
        _start_daemons(cluster, env, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: SlurmCluster, env: Mapping[str, str], timeout_s: float) -> None:
    base = cluster.root
    key = base / "munge" / "key" / "munge.key"
    if not key.exists():
        subprocess.run(
            ["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True
        )
    munge = base / "munge"
    cluster.processes["munged"] = _spawn(
        [
            "munged",
            "--foreground",
            "--force",
            f"--socket={munge / 'munge.sock'}",
            f"--key-file={key}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={base / 'log' / 'munged.log'}",
        ],
        base / "log" / "munged.out",
        env,
    )
    _wait(cluster, lambda: (munge / "munge.sock").exists(), "munged to open its socket", 10)
    conf = str(cluster.conf)
    cluster.processes["slurmctld"] = _spawn(
        ["slurmctld", "-D", "-i", "-f", conf], base / "log" / "slurmctld.out", env
    )
    for name in cluster.nodes:
        cluster.processes[f"slurmd-{name}"] = _spawn(
            ["slurmd", "-D", "-f", conf, "-N", name], base / "log" / f"slurmd-{name}.out", env
        )

    def idle() -> bool:
        out = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", timeout=10)
        states = out.stdout.split()
        return out.returncode == 0 and len(states) == len(cluster.nodes) and set(states) == {"idle"}

    _wait(cluster, idle, "every node to be idle in sinfo", timeout_s)


def _wait(cluster: SlurmCluster, done: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                msg = (
                    f"{name} exited with status {proc.returncode} while waiting for {what}; "
                    f"logs under {cluster.root / 'log'}:\n{cluster.logs()}"
                )
                raise BackendUnavailableError(msg)
        if done():
            return
        time.sleep(0.2)
    msg = f"timed out after {timeout_s:g} s waiting for {what}:\n{cluster.logs()}"
    raise BackendUnavailableError(msg)
