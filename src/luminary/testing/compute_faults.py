"""Random kills against the job queue: no job is ever lost, none runs twice at once.

:func:`run` starts ``agents`` agent processes serving one local pool of an embedded store
(SQLite), plus a process that runs the scheduler in a loop, submits ``jobs`` short jobs with
retries, and then, ``kills`` times at random, SIGKILLs one of:

- a job's command (found by its marker file),
- an agent (the executor: its supervised jobs die with it; a new agent replaces it),
- the scheduler loop (mid-pass, perhaps; a new one replaces it),
- with a Ray cluster given, a Ray node (its raylet, SIGKILL; a new node replaces it): half
  the jobs then run on a Ray pool served by an agent of its own.

Each command appends ``start <job> <attempt>`` and ``end <job> <attempt>`` lines to its own
file. When every job has ended, the report counts jobs by final state and checks: every job
ended (none left queued or running: *lost*), each failure has a reason, no job succeeded
without its command completing, and no two attempts of one job overlapped in time (a job
requeued while its earlier attempt still ran). Used by ``benchmarks/scheduler.py --part
faults`` and the fault tests.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from luminary.testing.ray_cluster import RayCluster

__all__ = ["FaultReport", "run"]

_COMMAND = (
    "import os, sys, time, pathlib\n"
    "job, attempt = os.environ['LUMINARY_JOB_ID'], os.environ['LUMINARY_JOB_ATTEMPT']\n"
    "out = sys.argv[1]\n"
    "p = pathlib.Path(out, job)\n"
    "with p.open('a') as f: f.write(f'start {attempt} {time.time()} {os.getpid()}\\n')\n"
    "time.sleep(float(sys.argv[2]))\n"
    "with p.open('a') as f: f.write(f'end {attempt} {time.time()}\\n')\n"
)

_SCHEDULER = (
    "import time\n"
    "from luminary.store import get_store\n"
    "s = get_store()\n"
    "while True:\n"
    "    s.schedule()\n"
    "    time.sleep(0.05)\n"
)


@dataclass
class FaultReport:
    jobs: int
    kills: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)
    false_success: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unexplained or self.overlapping or self.false_success)

    def to_dict(self) -> dict[str, object]:
        return {
            "jobs": self.jobs,
            "kills": dict(self.kills),
            "kills_total": sum(self.kills.values()),
            "states": dict(self.states),
            "lost": len(self.lost),
            "unexplained_failures": len(self.unexplained),
            "overlapping_attempts": len(self.overlapping),
            "false_successes": len(self.false_success),
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
        }


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def run(
    home: Path,
    *,
    jobs: int = 60,
    kills: int = 100,
    agents: int = 2,
    seed: int = 1,
    heartbeat_s: float = 0.5,
    job_seconds: float = 1.0,
    timeout_s: float = 600.0,
    ray: RayCluster | None = None,
    node_kills: int = 5,
) -> FaultReport:
    """Run the experiment in ``home`` (a fresh folder) and return its report."""
    from luminary.compute import JobSpec, JobState, Pool, Resources
    from luminary.store import SqlStore

    rng = random.Random(seed)
    home.mkdir(parents=True, exist_ok=True)
    marks = home / "marks"
    marks.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "LUMINARY_HOME": str(home),
        "LUMINARY_DB": f"sqlite:///{home / 'luminary.db'}",
        "LUMINARY_BLOBS": str(home / "blobs"),
        "LUMINARY_JOB_HEARTBEAT_S": str(heartbeat_s),
        "LUMINARY_ENERGY": "0",
    }
    os.environ["LUMINARY_JOB_HEARTBEAT_S"] = str(heartbeat_s)
    store = SqlStore(env["LUMINARY_DB"], env["LUMINARY_BLOBS"])
    store.put_pool(Pool("local", gpus=4, cpus=8, memory_mb=16000))
    agent_argv = [sys.executable, "-m", "luminary.compute.agent", "local"]
    procs = {f"agent{i}": _spawn(agent_argv, env, home / f"agent{i}.log") for i in range(agents)}
    ray_argv = [sys.executable, "-m", "luminary.compute.agent", "ray"]
    if ray is not None:
        store.put_pool(
            Pool(
                "ray",
                executor="ray",
                nodes=len(ray.nodes),
                gpus=ray.gpus_per_node,
                cpus=ray.cpus_per_node,
                options={"address": ray.address},
            )
        )
        procs["agent-ray"] = _spawn(ray_argv, env, home / "agent-ray.log")
    procs["scheduler"] = _spawn([sys.executable, "-c", _SCHEDULER], env, home / "scheduler.log")
    report = FaultReport(jobs=jobs)
    started = time.monotonic()
    ids = []
    for i in range(jobs):
        spec = JobSpec(
            project=f"p{i % 3}",
            command=(
                sys.executable,
                "-c",
                _COMMAND,
                str(marks),
                f"{job_seconds * rng.uniform(0.5, 1.5):.2f}",
            ),
            resources=Resources(gpus=rng.choice([0.25, 0.5, 1.0]), cpus=0.5),
            retries=8,
            grace_s=0.2,
            pool=("ray" if ray is not None and i % 2 else "local"),
        )
        ids.append(store.submit_job(spec).id)
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.05, 0.4))
            targets = ["job", "job", "agent", "scheduler"]
            if ray is not None and report.kills["node"] < node_kills:
                targets.append("node")
            target = rng.choice(targets)
            if target == "job":
                pids = _running_commands(marks)
                if not pids:
                    target = "agent"
                else:
                    _kill(rng.choice(pids))
            if target == "node" and ray is not None:
                node = ray.nodes[-1]  # a worker node, never the head
                pid = node.raylet_pid()
                if pid is not None:
                    _kill(pid)
                ray.replace_node(node)
            if target == "agent":
                name = rng.choice([n for n in procs if n.startswith("agent")])
                _kill(procs[name].pid)
                procs[name].wait()
                argv = ray_argv if name == "agent-ray" else agent_argv
                procs[name] = _spawn(argv, env, home / f"{name}.log")
            elif target == "scheduler":
                _kill(procs["scheduler"].pid)
                procs["scheduler"].wait()
                procs["scheduler"] = _spawn(
                    [sys.executable, "-c", _SCHEDULER], env, home / "scheduler.log"
                )
            report.kills[target] += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(j.state.done for j in store.list_jobs(limit=jobs * 2)):
                break
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            _kill(proc.pid)
            proc.wait()
    report.seconds = time.monotonic() - started
    for job_id in ids:
        job = store.get_job(job_id)
        report.states[job.state.value] += 1
        if not job.state.done:
            report.lost.append(job_id)
        elif job.state is JobState.FAILED and not job.reason:
            report.unexplained.append(job_id)
        lines = (marks / job_id).read_text().splitlines() if (marks / job_id).exists() else []
        if job.state is JobState.SUCCEEDED and not any(line.startswith("end ") for line in lines):
            report.false_success.append(job_id)
        if _overlap(lines):
            report.overlapping.append(job_id)
    store.close()
    return report


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _running_commands(marks: Path) -> list[int]:
    pids = []
    for path in marks.iterdir():
        lines = path.read_text().splitlines()
        if lines and lines[-1].startswith("start "):
            pid = int(lines[-1].split()[3])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            pids.append(pid)
    return pids


def _overlap(lines: list[str]) -> bool:
    """Whether an attempt started while another attempt of the same job was still running
    (an attempt whose command was killed has no ``end``: it counts as over when the next
    starts only if its process is gone — which the kill guarantees before a requeue)."""
    spans: dict[str, list[float]] = {}
    for line in lines:
        kind, attempt, stamp = line.split()[:3]
        spans.setdefault(attempt, [math.inf, -math.inf])
        if kind == "start":
            spans[attempt][0] = float(stamp)
        else:
            spans[attempt][1] = float(stamp)
    ordered = sorted(spans.values())
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))
