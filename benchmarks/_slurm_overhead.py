"""Submit-to-start latency on Slurm: plain ``sbatch`` against ``SlurmExecutor.launch``.

Starts a one-node cluster in a temporary folder (:mod:`luminary.testing.slurm`: Debian's
slurm-wlm and munge, as root) and, ``n`` times each and alternating so that drift in the
machine's load falls on both, submits a job whose command writes the wall clock when it
starts (``date +%s.%N``) and waits until it has, the three ways in a random order each round:

* ``sbatch`` — a two-line batch script submitted with ``sbatch --parsable`` and the same
  resources a Luminary job asks for (one task, one CPU);
* ``luminary`` — :meth:`SlurmExecutor.launch` of a job running the same command, which writes
  its own batch script (environment exports) and calls ``sbatch`` with its flags;
* ``queue`` — the whole path a user's ``luminary jobs submit`` takes: the job written to an
  embedded store's queue, an agent serving the Slurm pool woken, the scheduler's pass, the
  claim, ``sbatch``, then on the node ``python -m luminary.compute.runner`` opening the store,
  recording the start and starting the command.

Latency = start time written by the job minus the wall clock just before the submission. ``submit``
is the time the submitting call itself took. Target: Luminary's p50 within sbatch's + 0.5 s,
judged on the whole path (``queue``).

    .venv/bin/python benchmarks/_slurm_overhead.py [--n 20] [--json out.json]

``benchmarks/scheduler.py`` calls :func:`measure`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from luminary.compute import AgentLoop
from luminary.compute._slurm import SlurmExecutor
from luminary.compute.models import Job, JobSpec, JobState
from luminary.store import SqlStore
from luminary.testing.slurm import SlurmCluster, missing, start_cluster

TARGET_S = 0.5
WAIT_S = 120.0


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _summary(latencies: list[float], submits: list[float]) -> dict[str, float]:
    return {
        "p50_s": statistics.median(latencies),
        "p95_s": _percentile(latencies, 0.95),
        "min_s": min(latencies),
        "max_s": max(latencies),
        "submit_p50_s": statistics.median(submits),
    }


def _started_at(path: Path) -> float:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text().strip()
            if text:
                return float(text)
        time.sleep(0.005)
    msg = f"the job writing {path} did not start within {WAIT_S:g} s"
    raise TimeoutError(msg)


def _plain(cluster: SlurmCluster, work: Path, i: int) -> tuple[float, float]:
    out = work / f"plain-{i}"
    script = work / f"plain-{i}.sh"
    script.write_text(f"#!/bin/sh\nexec sh -c 'date +%s.%N > {out}'\n")
    t0 = time.time()
    done = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--nodes=1",
            "--ntasks-per-node=1",
            "--cpus-per-task=1",
            f"--output={work}/plain-{i}-%j.out",
            str(script),
        ],
        env=cluster.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    submit = time.time() - t0
    assert done.stdout.strip()
    return _started_at(out) - t0, submit


def _luminary(executor: SlurmExecutor, work: Path, i: int) -> tuple[float, float]:
    out = work / f"luminary-{i}"
    job = Job(
        id=f"bench{i:04d}",
        run_id=f"run{i:04d}",
        spec=JobSpec(project="bench", command=("sh", "-c", "date")),
        state=JobState.STARTING,
        user=None,
        submitted_ms=0,
        attempt=1,
    )
    env = {"LUMINARY_JOB_ID": job.id, "LUMINARY_RUN_ID": job.run_id}
    t0 = time.time()
    executor.launch(job, ["sh", "-c", f"date +%s.%N > {out}"], env)
    submit = time.time() - t0
    return _started_at(out) - t0, submit


def _queue(store: Any, work: Path, i: int) -> tuple[float, float]:
    from luminary.compute import Resources
    from luminary.compute.jobs import submit_spec

    out = work / f"queue-{i}"
    spec = JobSpec(
        project="bench",
        command=("sh", "-c", f"date +%s.%N > {out}"),
        resources=Resources(cpus=1),
        pool="bench",
    )
    t0 = time.time()
    submit_spec(spec, store=store, start_agents=False)
    submit = time.time() - t0
    return _started_at(out) - t0, submit


def measure(n: int = 20) -> dict[str, object]:
    """Start a cluster, run ``n`` jobs each way, stop it; the figures as a dict (seconds)."""
    why = missing()
    if why:
        return {"skipped": why}
    with tempfile.TemporaryDirectory(prefix="luminary-slurm-bench-") as tmp:
        cluster = start_cluster(Path(tmp) / "cluster")
        os.environ["SLURM_CONF"] = str(cluster.conf)
        store = SqlStore(f"sqlite:///{tmp}/luminary.db", f"{tmp}/blobs")
        store.put_pool(cluster.pool(name="bench"))
        agent = AgentLoop(store, "bench")
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        try:
            executor = SlurmExecutor(cluster.pool(name="bench"))
            work = Path(tmp) / "work"
            work.mkdir()
            _plain(cluster, work, -1)  # warm every path once: first submissions are slower
            _luminary(executor, work, -1)
            _queue(store, work, -1)
            plain: list[tuple[float, float]] = []
            ours: list[tuple[float, float]] = []
            queue: list[tuple[float, float]] = []
            order = random.Random(1)
            for i in range(n):
                # a random order each round: Slurm starts a job either at once or at its next
                # scheduling cycle (~1 s), and a fixed order would hand one way the quick slots
                ways = [
                    (plain, lambda i=i: _plain(cluster, work, i)),
                    (ours, lambda i=i: _luminary(executor, work, i)),
                    (queue, lambda i=i: _queue(store, work, i)),
                ]
                order.shuffle(ways)
                for samples, way in ways:
                    samples.append(way())
        finally:
            agent.stop()
            thread.join(timeout=60)
            store.close()
            cluster.stop()
    sbatch = _summary([p[0] for p in plain], [p[1] for p in plain])
    luminary = _summary([p[0] for p in ours], [p[1] for p in ours])
    whole = _summary([p[0] for p in queue], [p[1] for p in queue])
    diff = whole["p50_s"] - sbatch["p50_s"]
    return {
        "n": n,
        "sbatch": sbatch,
        "luminary": luminary,
        "queue": whole,
        "executor_p50_difference_s": luminary["p50_s"] - sbatch["p50_s"],
        "p50_difference_s": diff,
        "p95_difference_s": whole["p95_s"] - sbatch["p95_s"],
        "target_s": TARGET_S,
        "within_target": diff <= TARGET_S,
    }


def _print(result: dict[str, object]) -> None:
    if "skipped" in result:
        print(f"skipped: {result['skipped']}")
        return
    print(f"submit -> start latency on a one-node Slurm cluster, n={result['n']} each")
    print(f"{'':10} {'p50 s':>8} {'p95 s':>8} {'min s':>8} {'max s':>8} {'submit p50 s':>13}")
    for name in ("sbatch", "luminary", "queue"):
        row = result[name]
        assert isinstance(row, dict)
        print(
            f"{name:10} {row['p50_s']:8.3f} {row['p95_s']:8.3f} {row['min_s']:8.3f} "
            f"{row['max_s']:8.3f} {row['submit_p50_s']:13.3f}"
        )
    verdict = "within" if result["within_target"] else "OVER"
    print(
        f"difference: p50 {result['p50_difference_s']:+.3f} s, p95 "
        f"{result['p95_difference_s']:+.3f} s ({verdict} the {TARGET_S} s target)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="jobs per way (default 20)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = measure(args.n)
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if "skipped" not in result else 2


if __name__ == "__main__":
    sys.exit(main())
