"""The job scheduler: a lab's day simulated against FIFO baselines, and the cost of a decision.

Parts (``--part``, repeatable; ``sim`` by default). Each part is a function in ``PARTS`` that
returns a dict of figures and a list of ``(target, passed)``:

- ``sim`` (below);
- ``local``: submit -> start on the local executor (``_local_overhead.py``), ``--n`` jobs;
- ``ray``: the Ray executor's task rate and placement-group rate against raw Ray doing the
  same, on a two-node local cluster (``_ray_overhead.py``);
- ``slurm``: submit -> start on a Slurm cluster started here, plain ``sbatch`` against the
  executor and against the whole path through the queue (``_slurm_overhead.py``);
- ``faults``: ``--kills`` random SIGKILLs of job commands, agents, the scheduler loop and Ray
  nodes while ``--fault-jobs`` jobs run on a local and a Ray pool
  (:mod:`luminary.testing.compute_faults`): no job may be lost or run twice at once.

``sim`` — a trace-driven, event-driven simulation (simulated clock, the real
:class:`luminary.compute._policy.Scheduler`) of one day on one pool of 16 nodes x 8 GPUs
(80 GiB each, 64 CPUs, 1 TiB per node). The trace (``--seed``) is shaped like Alibaba's PAI
2020 trace: mostly fractional and single-GPU jobs, few multi-GPU jobs and 2- or 4-node
gangs; log-normal (heavy-tailed) durations whose median grows with job size; Poisson
arrivals spread over 24 h. Four projects with weights 4:3:2:1 each submit work in proportion
to their weight, and the whole demand is ``--load`` (1.25) times the pool's GPU-hours, so every
project keeps a backlog for most of the day. Users' time limits are their job's duration times
1.1-3 (10 % give none). What the trace assumes: jobs run exactly their duration and never
fail; nobody cancels; no quotas (weights only, so no preemption); one pool.

The same trace runs through two baselines written here: strict FIFO first-fit (one queue in
submission order, the head starts on the first node and device with room, nothing passes a
head that does not fit: the ``fifo_*`` figures the targets name) and FIFO with skip-ahead
first-fit (the same order, but every job that fits starts, whatever waits before it; no
reservations, no fair share: ``fifo_skip_*``), so that the gain is not only over a queue that
idles behind its head. All runs go on until every job has finished; waits count every job.

Figures: ``utilisation`` (GPU-time held over capacity, from the first moment every project has
a job waiting to the 24 h mark, the *window*; ``all_backlogged_fraction`` says for how much of
the window every project had one: a project served first by fair share empties its queue now
and then), ``mean_wait_s``, ``fair_share_max_deviation`` (worst
``|delivered - entitled| / entitled`` over that window, entitled being the weight's share of
what was delivered, GPU-equivalent hours; the target), beside it the same over the whole day
from 0 h (``fair_share_from_start_deviation``: the cluster fills in the first hour, before
the window opens, and fair share counts that use) and over only the times in the window when
every project had a job waiting (``fair_share_backlogged_deviation``), ``sim_cpu_seconds``
(process CPU time of the Luminary run), ``decision_p99_us`` (the p99 CPU time of one decision,
measured separately on a full pool with exactly 1,000 queued jobs). A *decision* is one call
of ``Scheduler.step`` in the steady state: a running job has just ended and one job has just
arrived; the step decides what starts, where, and whether a reservation moves. Every step
counts, whatever it starts. CPU time of the thread, so that other processes on a shared
machine do not count; ``decision_p99_wall_us`` is the wall time, ``decision_event_p99_us``
the CPU time of the whole event (the end, the arrival and the step).

    .venv/bin/python benchmarks/scheduler.py [--part sim] [--jobs 10000] [--json out.json]
    .venv/bin/python benchmarks/scheduler.py --part sim --part local --part ray --part slurm \
        --part faults --json out.json
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import math
import os
import platform
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luminary.compute._policy import Scheduler
from luminary.compute.models import Job, JobSpec, JobState, Pool, Quota, Resources

DAY_MS = 24 * 3600 * 1000
POOL = Pool("gpu", nodes=16, gpus=8, gpu_memory_mb=81920, cpus=64, memory_mb=1 << 20)
PROJECTS = {"cms-btag": 4.0, "atlas-gnn": 3.0, "lhcb-pid": 2.0, "alice-fast": 1.0}
#: (share of jobs, gpus, gpu memory MiB, nodes, median minutes) — PAI-like: most jobs ask for
#: part of a GPU, few for many; bigger jobs run longer.
MIX = [
    (0.22, 0.25, 0, 1, 8),
    (0.08, 0.0, 20480, 1, 8),  # a memory request: 20 GiB of an 80 GiB device
    (0.20, 0.5, 0, 1, 10),
    (0.30, 1, 0, 1, 15),
    (0.08, 2, 0, 1, 30),
    (0.06, 4, 0, 1, 45),
    (0.035, 8, 0, 1, 60),
    (0.02, 8, 0, 2, 120),
    (0.005, 8, 0, 4, 120),
]
SIGMA = 1.3
TARGETS = {
    "sim_cpu_seconds": ("<=", 60.0),
    "decision_p99_us": ("<=", 200.0),
    "fair_share_max_deviation": ("<=", 0.05),
    "utilisation": (">=", 0.85),
    "wait_reduction_vs_fifo": (">=", 0.15),
}


@dataclass
class TraceJob:
    id: str
    project: str
    submit_ms: int
    duration_ms: int
    spec: JobSpec

    @property
    def gpus(self) -> float:
        r = self.spec.resources
        per_node = r.gpus or r.gpu_memory_mb / POOL.gpu_memory_mb
        return per_node * self.spec.nodes


def make_trace(jobs: int, seed: int, load: float) -> list[TraceJob]:
    rng = random.Random(seed)
    weights = sum(PROJECTS.values())
    raw = []
    for n in range(jobs):
        project = rng.choices(list(PROJECTS), weights=list(PROJECTS.values()))[0]
        _share, gpus, memory, nodes, median = rng.choices(MIX, weights=[m[0] for m in MIX])[0]
        minutes = min(24 * 60.0, max(1.0, rng.lognormvariate(math.log(median), SIGMA)))
        raw.append((n, project, gpus, memory, nodes, minutes, rng.uniform(1.1, 3.0), rng.random()))
    demand = sum(
        (g or mem / POOL.gpu_memory_mb) * nodes * minutes / 60
        for _, _, g, mem, nodes, minutes, _, _ in raw
    )
    scale = load * POOL.total_gpus * 24 / demand  # durations scaled so demand = load x capacity
    arrivals = sorted(rng.uniform(0, DAY_MS) for _ in range(jobs))
    trace = []
    for (n, project, gpus, memory, nodes, minutes, slack, r), at in zip(raw, arrivals, strict=True):
        duration_ms = max(60_000, int(minutes * scale * 60_000))
        limit = None if r < 0.1 else math.ceil(duration_ms * slack / 300_000) * 300.0
        cpus = max(1.0, 4 * (gpus or 0.25))
        spec = JobSpec(
            project,
            command=("python", "train.py"),
            resources=Resources(gpus=gpus, gpu_memory_mb=memory, cpus=cpus, memory_mb=16384),
            nodes=nodes,
            time_limit_s=limit,
            priority=1 if r > 0.95 else 0,
        )
        trace.append(TraceJob(f"j{n:05d}", project, int(at), duration_ms, spec))
    del weights
    return trace


# -- FIFO baselines -------------------------------------------------------------------------
class FifoFirstFit:
    """One queue in submission order; the head goes on the first node/device with room."""

    def __init__(self, pool: Pool) -> None:
        self.free = [[10_000] * pool.gpus for _ in range(pool.nodes)]
        self.cpus = [pool.cpus] * pool.nodes
        self.queue: list[TraceJob] = []
        self.head = 0
        self.held: dict[str, list[tuple[int, list[tuple[int, int]], float]]] = {}

    def add(self, job: TraceJob) -> None:
        self.queue.append(job)

    def _node(self, i: int, job: TraceJob) -> list[tuple[int, int]] | None:
        r = job.spec.resources
        if self.cpus[i] < r.cpus:
            return None
        row = self.free[i]
        if r.gpus >= 1:
            whole = [(d, 10_000) for d, f in enumerate(row) if f == 10_000][: int(r.gpus)]
            return whole if len(whole) == int(r.gpus) else None
        units = round(max(r.gpus, r.gpu_memory_mb / POOL.gpu_memory_mb) * 10_000)
        return next(([(d, units)] for d, f in enumerate(row) if f >= units), None)

    def _fit(self, job: TraceJob) -> list[tuple[int, list[tuple[int, int]], float]] | None:
        """First fit: the first nodes (and devices) with room, or None."""
        chosen = []
        for i in range(len(self.free)):
            devices = self._node(i, job)
            if devices is not None:
                chosen.append((i, devices, job.spec.resources.cpus))
                if len(chosen) == job.spec.nodes:
                    return chosen
        return None

    def _hold(self, job: TraceJob, chosen: list[tuple[int, list[tuple[int, int]], float]]) -> None:
        for i, devices, cpus in chosen:
            for d, u in devices:
                self.free[i][d] -= u
            self.cpus[i] -= cpus
        self.held[job.id] = chosen

    def step(self) -> list[TraceJob]:
        started = []
        while self.head < len(self.queue):
            job = self.queue[self.head]
            chosen = self._fit(job)
            if chosen is None:
                break  # nothing passes a head that does not fit
            self._hold(job, chosen)
            self.head += 1
            started.append(job)
        return started

    def finish(self, job: TraceJob) -> None:
        for i, devices, cpus in self.held.pop(job.id):
            for d, u in devices:
                self.free[i][d] += u
            self.cpus[i] += cpus


class FifoSkipAhead(FifoFirstFit):
    """Submission order, but a job that does not fit is passed over and every later job that
    fits starts (first fit, no reservations, no fair share): what a plain batch queue with
    backfill-by-anything does. Jobs of one shape fit alike, so the queue is kept per shape and
    a shape that found no room is not tried again in the same pass."""

    def __init__(self, pool: Pool) -> None:
        super().__init__(pool)
        self.by_shape: dict[tuple[float, int, float, int], deque[tuple[int, TraceJob]]] = {}
        self.seq = 0

    def add(self, job: TraceJob) -> None:
        r = job.spec.resources
        shape = (r.gpus, r.gpu_memory_mb, r.cpus, job.spec.nodes)
        self.seq += 1
        self.by_shape.setdefault(shape, deque()).append((self.seq, job))

    def step(self) -> list[TraceJob]:
        started = []
        heads = [(q[0][0], shape) for shape, q in self.by_shape.items() if q]
        heapq.heapify(heads)
        while heads:
            _, shape = heapq.heappop(heads)
            q = self.by_shape[shape]
            job = q[0][1]
            chosen = self._fit(job)
            if chosen is None:
                continue  # room only shrinks within a pass: the whole shape waits
            self._hold(job, chosen)
            q.popleft()
            started.append(job)
            if q:
                heapq.heappush(heads, (q[0][0], shape))
        return started


# -- the simulation -------------------------------------------------------------------------
def as_job(t: TraceJob) -> Job:
    return Job(t.id, t.id, t.spec, JobState.QUEUED, None, t.submit_ms)


def simulate(trace: list[TraceJob], policy: str) -> dict[str, Any]:
    """Run ``trace`` to the end; returns start times and queue-length history per project."""
    by_id = {t.id: t for t in trace}
    events: list[tuple[int, int, str]] = [(t.submit_ms, 1, t.id) for t in trace]  # 0 ends first
    heapq.heapify(events)
    start: dict[str, int] = {}
    queued = dict.fromkeys(PROJECTS, 0)
    backlog_all_from: int | None = None  # the first moment every project has a job waiting
    since: int | None = None
    backlogged_ms = 0
    sched = Scheduler([POOL], [Quota(p, weight=w) for p, w in PROJECTS.items()])
    fifo = FifoSkipAhead(POOL) if policy == "fifo-skip" else FifoFirstFit(POOL)
    steps = 0
    backlogged: list[tuple[int, int]] = []  # intervals in the window where every project waits
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, job_id = heapq.heappop(events)
            t = by_id[job_id]
            if kind == 1:
                queued[t.project] += 1
                if policy == "luminary":
                    sched.enqueue(as_job(t))
                else:
                    fifo.add(t)
            elif policy == "luminary":
                sched.remove(job_id, now)
            else:
                fifo.finish(t)
        if policy == "luminary":
            started = [by_id[s.job_id] for s in sched.step(now).starts]
        else:
            started = fifo.step()
        steps += 1
        for t in started:
            start[t.id] = now
            queued[t.project] -= 1
            heapq.heappush(events, (now + t.duration_ms, 0, t.id))
        everyone = all(queued.values())
        if backlog_all_from is None and everyone:
            backlog_all_from = now
        if backlog_all_from is not None and now <= DAY_MS:
            if everyone and since is None:
                since = now
            elif not everyone and since is not None:
                backlogged_ms += now - since
                backlogged.append((since, now))
                since = None
    if since is not None:
        backlogged_ms += DAY_MS - since
        backlogged.append((since, DAY_MS))
    lo = backlog_all_from or 0
    return {
        "start": start,
        "steps": steps,
        "window": (lo, DAY_MS),
        "backlogged_fraction": backlogged_ms / max(1, DAY_MS - lo),
        "backlogged": backlogged,
    }


def _deviation(trace: list[TraceJob], start: dict[str, int], spans: list[tuple[int, int]]) -> float:
    """Worst ``|delivered - entitled| / entitled`` over ``spans`` (GPU-time)."""
    delivered = dict.fromkeys(PROJECTS, 0.0)
    for t in trace:
        s, e = start[t.id], start[t.id] + t.duration_ms
        delivered[t.project] += t.gpus * sum(max(0, min(hi, e) - max(lo, s)) for lo, hi in spans)
    total, weights = sum(delivered.values()), sum(PROJECTS.values())
    if not total:
        return 0.0
    return max(
        abs(delivered[p] - total * w / weights) / (total * w / weights) for p, w in PROJECTS.items()
    )


def figures(trace: list[TraceJob], run: dict[str, Any]) -> dict[str, Any]:
    lo, hi = run["window"]
    delivered = dict.fromkeys(PROJECTS, 0.0)
    busy = 0.0
    for t in trace:
        s = run["start"][t.id]
        overlap = max(0, min(hi, s + t.duration_ms) - max(lo, s))
        busy += t.gpus * overlap
        delivered[t.project] += t.gpus * overlap / 3.6e6
    waits = [run["start"][t.id] - t.submit_ms for t in trace]
    return {
        "utilisation": busy / (POOL.total_gpus * (hi - lo)),
        "mean_wait_s": statistics.fmean(waits) / 1000,
        "fair_share_max_deviation": _deviation(trace, run["start"], [(lo, hi)]),
        "fair_share_from_start_deviation": _deviation(trace, run["start"], [(0, hi)]),
        "fair_share_backlogged_deviation": _deviation(trace, run["start"], run["backlogged"]),
        "window_h": (hi - lo) / 3.6e6,
        "backlogged_fraction": run["backlogged_fraction"],
        "delivered_gpu_h": {p: round(v, 1) for p, v in delivered.items()},
    }


def decision_p99_us(
    trace: list[TraceJob], queued: int, samples: int, seed: int
) -> tuple[float, float, float]:
    """p99 of one decision with ``queued`` jobs waiting on a full pool.

    A *decision* is one :meth:`Scheduler.step` in the steady state: a running job has just
    ended (``remove``) and one job has just arrived (``enqueue``); the step decides what
    starts (usually the job that fits the freed room), where, and whether a reservation moves.
    Every step counts, whatever it starts. Returns the p99 of the step's CPU time
    (``thread_time``: what the decision costs, whatever else the machine runs), of its wall
    time, and of the CPU time of the whole event (``remove`` + ``enqueue`` + ``step``), so that
    bookkeeping moved out of ``step`` still shows."""
    rng = random.Random(seed)
    sched = Scheduler([POOL], [Quota(p, weight=w) for p, w in PROJECTS.items()])
    pending = iter(trace)
    now = 0
    ends: list[tuple[int, str]] = []
    while len(sched.queued) < queued:
        sched.enqueue(as_job(next(pending)))
        for s in sched.step(now).starts:
            heapq.heappush(ends, (now + rng.randint(60_000, 3_600_000), s.job_id))
    cpu, wall, event = [], [], []
    for _ in range(samples):
        now, job_id = heapq.heappop(ends)
        e0 = time.thread_time_ns()
        sched.remove(job_id, now)
        sched.enqueue(as_job(next(pending)))
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        decision = sched.step(now)
        wall.append((time.perf_counter_ns() - t0) / 1000)
        c1 = time.thread_time_ns()
        cpu.append((c1 - c0) / 1000)
        event.append((c1 - e0) / 1000)
        for s in decision.starts:
            heapq.heappush(ends, (now + rng.randint(60_000, 3_600_000), s.job_id))
        while len(sched.queued) < queued:  # keep exactly ``queued`` waiting
            sched.enqueue(as_job(next(pending)))
    return tuple(sorted(v)[int(0.99 * (len(v) - 1))] for v in (cpu, wall, event))  # type: ignore[return-value]


def part_sim(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    trace = make_trace(args.jobs, args.seed, args.load)
    cpu0 = time.process_time()
    ours = simulate(trace, "luminary")
    cpu = time.process_time() - cpu0
    fifo = simulate(trace, "fifo")
    skip = simulate(trace, "fifo-skip")
    mine, base, ahead = figures(trace, ours), figures(trace, fifo), figures(trace, skip)
    extra = make_trace(6000, args.seed + 1, args.load)
    gc.freeze()  # the trace's objects are permanent: keep them out of collections
    p99, p99_wall, p99_event = decision_p99_us(extra, 1000, 2000, args.seed)
    out = {
        "jobs": len(trace),
        "seed": args.seed,
        "load": args.load,
        "sim_cpu_seconds": cpu,
        "decision_p99_us": p99,
        "decision_p99_wall_us": p99_wall,
        "decision_event_p99_us": p99_event,
        "utilisation": mine["utilisation"],
        "fifo_utilisation": base["utilisation"],
        "fifo_skip_utilisation": ahead["utilisation"],
        "mean_wait_s": mine["mean_wait_s"],
        "fifo_mean_wait_s": base["mean_wait_s"],
        "fifo_skip_mean_wait_s": ahead["mean_wait_s"],
        "wait_reduction_vs_fifo": 1 - mine["mean_wait_s"] / base["mean_wait_s"],
        "wait_reduction_vs_fifo_skip": 1 - mine["mean_wait_s"] / ahead["mean_wait_s"],
        "fair_share_max_deviation": mine["fair_share_max_deviation"],
        "fair_share_from_start_deviation": mine["fair_share_from_start_deviation"],
        "fair_share_backlogged_deviation": mine["fair_share_backlogged_deviation"],
        "fifo_fair_share_max_deviation": base["fair_share_max_deviation"],
        "fifo_skip_fair_share_max_deviation": ahead["fair_share_max_deviation"],
        "window_h": mine["window_h"],
        "fifo_window_h": base["window_h"],
        "all_backlogged_fraction": mine["backlogged_fraction"],
        "delivered_gpu_h": mine["delivered_gpu_h"],
        "passes": ours["steps"],
    }
    verdicts = []
    for key, (op, target) in TARGETS.items():
        ok = out[key] <= target if op == "<=" else out[key] >= target
        verdicts.append((f"{key} {op} {target:g}", ok))
    return out, verdicts


def part_local(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """Submit -> start on the local executor (``_local_overhead.py``)."""
    import _local_overhead  # this folder is on sys.path when the script runs

    out = _local_overhead.measure(args.n)
    return out, [("local submit->start p95 <= 50 ms", bool(out["pass"]))]


def part_ray(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """The Ray executor's task and placement-group rates against raw Ray (``_ray_overhead.py``)."""
    import _ray_overhead

    out = _ray_overhead.measure(args.ray_tasks, args.ray_groups)
    flat = {
        f"{kind}_{key}": value
        for kind in ("tasks", "groups")
        for key, value in out[kind].items()
        if isinstance(value, int | float)
    }
    verdicts = [
        ("Ray executor task rate within 1.2x raw Ray", out["tasks"]["ratio"] <= 1.2),
        ("Ray executor placement-group rate within 1.2x raw Ray", out["groups"]["ratio"] <= 1.2),
    ]
    return flat, verdicts


def part_slurm(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """Slurm submit -> start, whole path and executor, against plain sbatch."""
    import _slurm_overhead

    out = _slurm_overhead.measure(args.n)
    if "skipped" in out:
        return out, [("Slurm measured", False)]
    flat = {
        f"{way}_{key}": value
        for way in ("sbatch", "luminary", "queue")
        for key, value in out[way].items()
    }
    flat.update({k: v for k, v in out.items() if not isinstance(v, dict)})
    diff = out["p50_difference_s"]
    return flat, [("Slurm submit->start p50 within sbatch + 0.5 s (whole path)", diff <= 0.5)]


def part_faults(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, bool]]]:
    """Random SIGKILLs of commands, agents, the scheduler and Ray nodes: no job lost."""
    import tempfile

    from luminary.testing.compute_faults import run
    from luminary.testing.ray_cluster import ray_cluster

    with (
        tempfile.TemporaryDirectory(prefix="luminary-faults-") as tmp,
        ray_cluster(nodes=2, gpus=2, cpus=2) as cluster,
    ):
        report = run(Path(tmp), jobs=args.fault_jobs, kills=args.kills, seed=args.seed, ray=cluster)
    out = report.to_dict()
    flat = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in out.items()}
    return flat, [(f"{out['kills_total']} random kills: 0 jobs lost, none run twice", report.ok)]


PARTS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, Any], list[tuple[str, bool]]]]] = {
    "sim": part_sim,
    "local": part_local,
    "ray": part_ray,
    "slurm": part_slurm,
    "faults": part_faults,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--part", action="append", choices=sorted(PARTS), help="default: sim")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--load", type=float, default=1.25, help="demand over capacity")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--n", type=int, default=50, help="jobs per way (local, slurm)")
    parser.add_argument("--ray-tasks", type=int, default=200)
    parser.add_argument("--ray-groups", type=int, default=50)
    parser.add_argument("--fault-jobs", type=int, default=150)
    parser.add_argument("--kills", type=int, default=100)
    args = parser.parse_args()
    print(
        f"# {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} logical CPUs · load {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, Any] = {}
    for part in args.part or ["sim"]:
        figures_, verdicts = PARTS[part](args)
        print(f"\n[{part}]")
        for key, value in figures_.items():
            shown = f"{value:.4g}" if isinstance(value, float) else value
            print(f"  {key:32} {shown}")
        for target, ok in verdicts:
            print(f"  {'PASS' if ok else 'FAIL'}  {target}")
        results[part] = {
            **figures_,
            "targets": {t: ("PASS" if ok else "FAIL") for t, ok in verdicts},
        }
    if args.json:
        flat = {k: v for part in results.values() for k, v in part.items() if k != "targets"}
        flat["targets"] = {t: v for part in results.values() for t, v in part["targets"].items()}
        args.json.write_text(json.dumps({**flat, "parts": results}, indent=2))


if __name__ == "__main__":
    main()
