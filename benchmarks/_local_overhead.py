"""Submit-to-start latency on the local executor, against starting the same command directly.

An embedded store in a temporary folder, one local pool (4 logical GPUs) served by an agent
process (``python -m luminary.compute.agent local``, as ``luminary pools serve`` or the
on-demand start runs it), and ``n`` jobs submitted one after another, each running
``date +%s.%N`` (the command writes the wall clock when it starts). Latency = that time minus
the wall clock just before the submit (``submit_spec``, the SDK's path): the queue write, the
agent woken, the scheduler
pass, the claim, the supervisor's bookkeeping and the fork/exec. For reference, in the same
run and alternating with the jobs, the same command started with ``subprocess.Popen``
directly (fork/exec alone). Target: Luminary's p95 ≤ 50 ms.

    .venv/bin/python benchmarks/_local_overhead.py [--n 50] [--json out.json]

``benchmarks/scheduler.py --part local`` calls :func:`measure`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_P95_S = 0.050
WAIT_S = 60.0


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _direct() -> float:
    t0 = time.time()
    out = subprocess.run(["date", "+%s.%N"], capture_output=True, text=True, check=True).stdout
    return float(out) - t0


def measure(n: int = 50) -> dict[str, object]:
    from luminary.compute import JobSpec, JobState, Pool, Resources
    from luminary.compute.jobs import submit_spec
    from luminary.store import SqlStore

    with tempfile.TemporaryDirectory(prefix="luminary-local-bench-") as tmp:
        home = Path(tmp)
        env = {
            **os.environ,
            "LUMINARY_HOME": str(home),
            "LUMINARY_DB": f"sqlite:///{home / 'luminary.db'}",
            "LUMINARY_BLOBS": str(home / "blobs"),
            "LUMINARY_ENERGY": "0",
        }
        store = SqlStore(env["LUMINARY_DB"], env["LUMINARY_BLOBS"])
        store.put_pool(Pool("local", gpus=4, cpus=8, memory_mb=16000))
        with (home / "agent.log").open("wb") as log:
            agent = subprocess.Popen(
                [sys.executable, "-m", "luminary.compute.agent", "local"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + WAIT_S
            while not store.list_agents():
                if time.monotonic() > deadline:
                    msg = f"the agent did not start; see {home / 'agent.log'}"
                    raise RuntimeError(msg)
                time.sleep(0.05)
            luminary, direct = [], []
            for i in range(n + 3):  # 3 warm-ups
                spec = JobSpec(
                    project="bench",
                    command=("date", "+%s.%N"),
                    resources=Resources(gpus=0.5, cpus=0.5),
                )
                t0 = time.time()
                job = submit_spec(spec, store=store, start_agents=False).job
                deadline = time.monotonic() + WAIT_S
                while not (found := store.get_job(job.id)).state.done:
                    if time.monotonic() > deadline:
                        msg = f"job {job.id} did not finish: {found.reason}"
                        raise RuntimeError(msg)
                    time.sleep(0.005)
                text = b"".join(c.data for c in store.read_job_logs(job.id)).decode()
                if found.state is not JobState.SUCCEEDED or not text.strip():
                    msg = f"job {job.id} {found.state.value}: {found.reason}"
                    raise RuntimeError(msg)
                if i >= 3:
                    luminary.append(float(text) - t0)
                    direct.append(_direct())
        finally:
            agent.terminate()
            agent.wait(timeout=30)
            store.close()
    p95 = _percentile(luminary, 0.95)
    return {
        "n": n,
        "luminary_p50_ms": round(statistics.median(luminary) * 1000, 1),
        "luminary_p95_ms": round(p95 * 1000, 1),
        "direct_p50_ms": round(statistics.median(direct) * 1000, 2),
        "direct_p95_ms": round(_percentile(direct, 0.95) * 1000, 2),
        "target_p95_ms": TARGET_P95_S * 1000,
        "pass": p95 <= TARGET_P95_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.n)
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
