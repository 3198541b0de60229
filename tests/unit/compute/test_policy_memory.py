"""What a long-lived scheduler remembers between passes changes no decision: heads that could
not start are skipped only while nothing they could use opened up."""

from __future__ import annotations

import heapq
import random

from luminary.compute._policy import Scheduler
from luminary.compute.models import Job, JobSpec, JobState, NodePlacement, Pool, Quota, Resources

POOL = Pool("gpu", nodes=4, gpus=4, gpu_memory_mb=40960, cpus=32, memory_mb=262144)
HOUR_MS = 3_600_000


def job(job_id: str, project: str = "cms-btag", *, submitted_ms: int = 0, **spec: object) -> Job:
    resources = spec.pop("resources", Resources(gpus=1))
    return Job(
        job_id,
        f"run-{job_id}",
        JobSpec(project, command=("python", "train.py"), resources=resources, **spec),  # type: ignore[arg-type]
        JobState.QUEUED,
        None,
        submitted_ms,
    )


def running(job_id: str, node: str, gpus: int, *, limit_s: float | None = None) -> Job:
    base = job(job_id, resources=Resources(gpus=gpus), time_limit_s=limit_s)
    return Job(
        base.id,
        base.run_id,
        base.spec,
        JobState.RUNNING,
        None,
        0,
        attempt=1,
        pool="gpu",
        placement=(NodePlacement(node, tuple((d, 1.0) for d in range(gpus))),),
        started_ms=0,
    )


def full_pool(s: Scheduler, *, limit_s: float | None = None) -> None:
    for i in range(POOL.nodes):
        s.add_active(running(f"r{i}", f"gpu-{i}", 4, limit_s=limit_s))


def test_a_waiting_job_starts_once_a_job_ends_on_its_node() -> None:
    s = Scheduler([POOL])
    full_pool(s)
    s.enqueue(job("wait", resources=Resources(gpus=2)))
    for now in (1, 2, 3):  # passes with nothing to do: the head goes quiet
        assert s.step(now).starts == ()
    s.remove("r2", 4)
    starts = s.step(5).starts
    assert [(x.job_id, x.placement[0].node) for x in starts] == [("wait", "gpu-2")]


def test_a_short_job_arriving_behind_a_quiet_head_backfills() -> None:
    s = Scheduler([POOL])
    for i in range(POOL.nodes - 1):
        s.add_active(running(f"r{i}", f"gpu-{i}", 4, limit_s=3600))
    s.add_active(running("half", "gpu-3", 2, limit_s=3600))
    s.enqueue(job("gang", resources=Resources(gpus=4), nodes=2, submitted_ms=1))
    s.enqueue(job("long", resources=Resources(gpus=1), submitted_ms=2, time_limit_s=7200))
    for now in (10, 20):  # gpu-3 is reserved for the gang; "long" would outlast the wait
        assert s.step(now).starts == ()
    assert s.reservations["gpu"].job_id == "gang"
    s.enqueue(job("short", resources=Resources(gpus=1), submitted_ms=3, time_limit_s=600))
    assert [x.job_id for x in s.step(30).starts] == ["short"]


def test_the_next_job_without_room_reserves_when_the_holder_leaves() -> None:
    s = Scheduler([POOL])
    full_pool(s, limit_s=3600)
    s.enqueue(job("first", resources=Resources(gpus=4), nodes=2, submitted_ms=1))
    s.enqueue(job("second", resources=Resources(gpus=4), nodes=3, submitted_ms=2))
    for now in (10, 20):
        s.step(now)
    assert s.reservations["gpu"].job_id == "first"
    s.remove("first", 30)  # cancelled while it waited
    s.step(40)
    assert s.reservations["gpu"].job_id == "second"


def _random_jobs(rng: random.Random, count: int) -> list[tuple[Job, int]]:
    shapes = [
        Resources(gpus=0.25),
        Resources(gpus=0.5),
        Resources(gpu_memory_mb=20480),
        Resources(gpus=1),
        Resources(gpus=2),
        Resources(gpus=4),
        Resources(cpus=8),
    ]
    out = []
    at = 0
    for n in range(count):
        at += rng.randint(0, 600_000)
        nodes = 2 if rng.random() < 0.05 else 1
        resources = Resources(gpus=4) if nodes > 1 else rng.choice(shapes)
        limit = None if rng.random() < 0.2 else rng.choice([600, 1800, 3600, 7200])
        spec = {"nodes": nodes, "time_limit_s": limit, "priority": int(rng.random() < 0.1)}
        project = rng.choice(["cms-btag", "atlas-gnn", "lhcb-pid"])
        queued = job(f"j{n:04d}", project, submitted_ms=at, resources=resources, **spec)
        out.append((queued, rng.randint(60_000, 3 * HOUR_MS)))
    return out


def _run(jobs: list[tuple[Job, int]], *, forget: bool) -> list[object]:
    quotas = [Quota("cms-btag", weight=3), Quota("atlas-gnn", weight=2), Quota("lhcb-pid")]
    s = Scheduler([POOL], quotas)
    events = [(queued.submitted_ms, 1, n) for n, (queued, _) in enumerate(jobs)]
    heapq.heapify(events)
    index = {queued.id: n for n, (queued, _) in enumerate(jobs)}
    log: list[object] = []
    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, n = heapq.heappop(events)
            if kind == 1:
                s.enqueue(jobs[n][0])
            else:
                s.remove(jobs[n][0].id, now)
        if forget:
            s.reservations_changed()  # what it remembers about waiting heads goes
        decision = s.step(now)
        log.append(
            (now, decision, sorted((p, r.job_id, r.nodes) for p, r in s.reservations.items()))
        )
        for start in decision.starts:
            n = index[start.job_id]
            heapq.heappush(events, (now + jobs[n][1], 0, n))
    return log


def test_remembering_quiet_heads_decides_as_looking_at_every_head() -> None:
    for seed in range(3):
        jobs = _random_jobs(random.Random(seed), 400)
        remembered, forgotten = _run(jobs, forget=False), _run(jobs, forget=True)
        assert len(remembered) == len(forgotten)
        assert remembered == forgotten
