"""The scheduling policy: packing, gangs, fair share, priority, quotas, preemption, reports."""

from __future__ import annotations

import pytest

from luminary.compute._policy import Scheduler, never_fits
from luminary.compute.models import Job, JobSpec, JobState, NodePlacement, Pool, Quota, Resources
from luminary.errors import InvalidArgumentError, InvalidStateError, NotFoundError

HOUR_MS = 3_600_000
GPU = Pool("gpu", nodes=2, gpus=4, gpu_memory_mb=40960, cpus=32, memory_mb=262144)


def job(
    job_id: str,
    project: str = "cms-btag",
    *,
    gpus: float = 1,
    submitted_ms: int = 0,
    state: JobState = JobState.QUEUED,
    **spec: object,
) -> Job:
    resources = spec.pop("resources", Resources(gpus=gpus))
    return Job(
        job_id,
        f"run-{job_id}",
        JobSpec(project, command=("python", "train.py"), resources=resources, **spec),  # type: ignore[arg-type]
        state,
        None,
        submitted_ms,
    )


def started(s: Scheduler, now_ms: int = 0) -> dict[str, tuple[NodePlacement, ...]]:
    return {start.job_id: start.placement for start in s.step(now_ms).starts}


def test_two_halves_share_one_device_with_cuda_indices() -> None:
    s = Scheduler([GPU])
    s.enqueue(job("a", gpus=0.5))
    s.enqueue(job("b", gpus=0.5, submitted_ms=1))
    placed = started(s)
    assert placed["a"][0].node == placed["b"][0].node == "gpu-0"
    assert placed["a"][0].devices == placed["b"][0].devices == ((0, 0.5),)
    assert placed["a"][0].visible_devices == "0"
    assert placed["a"][0].gpu_memory_mb == 20480


def test_fraction_goes_to_the_fullest_device_it_fits() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("quarter", 0.25, "gpu-1", ((2, 0.25),)))
    s.add_active(_active("half", 0.5, "gpu-0", ((1, 0.5),)))
    s.enqueue(job("new", gpus=0.5))
    placed = started(s)
    # best fit: the device with 0.5 free (gpu-0 #1), not the one with 0.75 free
    assert placed["new"] == (NodePlacement("gpu-0", ((1, 0.5),), 20480),)


def _active(
    job_id: str,
    gpus: float,
    node: str,
    devices: tuple[tuple[int, float], ...],
    *,
    project: str = "cms-btag",
    start_ms: int = 0,
    **spec: object,
) -> Job:
    base = job(job_id, project, gpus=gpus, **spec)
    return Job(
        base.id,
        base.run_id,
        base.spec,
        JobState.RUNNING,
        None,
        0,
        attempt=1,
        pool="gpu",
        placement=(NodePlacement(node, devices),),
        started_ms=start_ms,
    )


def test_whole_gpus_take_whole_free_devices_and_fill_the_busier_node() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("two", 2, "gpu-1", ((0, 1.0), (1, 1.0))))
    s.enqueue(job("pair", gpus=2))
    placed = started(s)
    assert placed["pair"][0].node == "gpu-1"
    assert placed["pair"][0].devices == ((2, 1.0), (3, 1.0))
    assert placed["pair"][0].visible_devices == "2,3"


def test_memory_request_takes_its_fraction_of_the_device() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("big", 0.75, "gpu-0", ((0, 0.75),)))
    s.enqueue(job("mem", resources=Resources(gpu_memory_mb=10240)))  # 10 GiB of 40 = 0.25
    s.enqueue(job("mem2", resources=Resources(gpu_memory_mb=20480), submitted_ms=1))
    placed = started(s)
    assert placed["mem"][0].devices == ((0, 0.25),)
    assert placed["mem"][0].gpu_memory_mb == 10240
    assert placed["mem2"][0].devices[0][1] == 0.5
    assert placed["mem2"][0].devices[0] != (0, 0.5)  # device 0 is full now


def test_gang_starts_whole_or_not_at_all() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("small", 0.25, "gpu-1", ((3, 0.25),)))
    s.enqueue(job("gang", gpus=4, nodes=2))
    assert started(s) == {}
    s.remove("small", HOUR_MS)
    placed = started(s, HOUR_MS)
    assert [p.node for p in placed["gang"]] == ["gpu-0", "gpu-1"]
    assert all(p.devices == ((0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)) for p in placed["gang"])


def test_small_jobs_do_not_starve_a_waiting_gang() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("a", 4, "gpu-0", tuple((d, 1.0) for d in range(4)), time_limit_s=3600))
    s.enqueue(job("gang", gpus=4, nodes=2, submitted_ms=1))
    s.enqueue(job("long", gpus=1, submitted_ms=2, time_limit_s=7200))
    s.enqueue(job("short", gpus=1, submitted_ms=3, time_limit_s=600))
    placed = started(s, 10)
    # gpu-1 is free, but a job there would delay the gang past a's end; only one that ends
    # before that backfills
    assert "gang" not in placed
    assert "long" not in placed
    assert "short" in placed


def test_fair_share_puts_yesterdays_heavy_user_behind() -> None:
    s = Scheduler([GPU], [Quota("cms-btag"), Quota("atlas-gnn")])
    s.set_usage({"cms-btag": 200.0, "atlas-gnn": 5.0}, as_of_ms=0)
    s.enqueue(job("cms", "cms-btag", gpus=4, nodes=2, submitted_ms=0))
    s.enqueue(job("atlas", "atlas-gnn", gpus=4, nodes=2, submitted_ms=5))
    assert list(started(s, 24 * HOUR_MS)) == ["atlas"]
    usage = s.usage(24 * HOUR_MS)
    assert usage["cms-btag"] == pytest.approx(100.0)  # one half-life later
    assert usage["atlas-gnn"] == pytest.approx(2.5)


def test_usage_accrues_while_jobs_run_and_decays() -> None:
    s = Scheduler([GPU], half_life_s=3600)
    s.add_active(_active("r", 2, "gpu-0", ((0, 1.0), (1, 1.0))))
    s.set_usage({}, as_of_ms=0)
    s.remove("r", HOUR_MS)
    after = s.usage(HOUR_MS)["cms-btag"]
    assert 1.4 < after < 2.0  # two GPU-hours, the first ones half decayed
    assert s.usage(2 * HOUR_MS)["cms-btag"] == pytest.approx(after / 2)


def test_weights_divide_the_order() -> None:
    s = Scheduler([GPU], [Quota("cms-btag", weight=4), Quota("atlas-gnn", weight=1)])
    s.set_usage({"cms-btag": 30.0, "atlas-gnn": 10.0}, as_of_ms=0)  # 7.5 vs 10 per weight
    s.enqueue(job("atlas", "atlas-gnn", gpus=4, nodes=2))
    s.enqueue(job("cms", "cms-btag", gpus=4, nodes=2, submitted_ms=9))
    assert list(started(s)) == ["cms"]


def test_priority_orders_within_a_project_then_fifo() -> None:
    s = Scheduler([GPU])
    s.enqueue(job("old", gpus=4, submitted_ms=1))
    s.enqueue(job("newer", gpus=4, submitted_ms=2))
    s.enqueue(job("urgent", gpus=4, submitted_ms=3, priority=5))
    assert set(started(s)) == {"urgent", "old"}


def test_cohort_borrows_idle_quota_and_lender_reclaims_preemptible_only() -> None:
    quotas = [
        Quota("cms-btag", gpus=4, cohort="lhc"),
        Quota("atlas-gnn", gpus=4, cohort="lhc"),
    ]
    s = Scheduler([GPU], quotas)
    s.enqueue(job("keep", "atlas-gnn", gpus=4, submitted_ms=0))
    s.enqueue(job("borrow", "atlas-gnn", gpus=4, submitted_ms=1, preemptible=True))
    assert set(started(s)) == {"keep", "borrow"}  # atlas borrows cms's idle 4 GPUs
    s.enqueue(job("lender", "cms-btag", gpus=4, submitted_ms=2))
    decision = s.step(10)
    assert decision.starts == ()
    assert [p.job_id for p in decision.preemptions] == ["borrow"]
    reason = decision.preemptions[0].reason
    assert "cms-btag" in reason
    assert "atlas-gnn" in reason
    assert "4" in reason
    assert s.step(20).preemptions == ()  # not preempted twice
    s.remove("borrow", 30)
    assert list(started(s, 40)) == ["lender"]


def test_non_preemptible_borrowers_are_not_preempted() -> None:
    quotas = [Quota("cms-btag", gpus=4, cohort="lhc"), Quota("atlas-gnn", gpus=4, cohort="lhc")]
    s = Scheduler([GPU], quotas)
    s.enqueue(job("a1", "atlas-gnn", gpus=4))
    s.enqueue(job("a2", "atlas-gnn", gpus=4, submitted_ms=1))
    started(s)
    s.enqueue(job("lender", "cms-btag", gpus=4, submitted_ms=2))
    assert s.step(10) == s.step(10).__class__()


def test_idle_quota_is_kept_from_other_cohorts_and_borrow_limits_hold() -> None:
    quotas = [
        Quota("cms-btag", gpus=6, cohort="lhc"),
        Quota("atlas-gnn", gpus=0, cohort="other", borrow_gpus=8),
        Quota("lhcb-pid", gpus=2, cohort="lhc", borrow_gpus=1),
    ]
    s = Scheduler([GPU], quotas)
    s.enqueue(job("atlas", "atlas-gnn", gpus=1))
    s.enqueue(job("lhcb", "lhcb-pid", gpus=4))
    assert started(s) == {}
    text = " ".join(s.explain("atlas", 0))
    assert "8 of them are the idle nominal quota" in text
    assert "nominal 2 plus the 1 it may borrow" in " ".join(s.explain("lhcb", 0))


def test_explain_gives_numbers() -> None:
    s = Scheduler([GPU], [Quota("cms-btag"), Quota("atlas-gnn")])
    s.set_usage({"cms-btag": 10.0, "atlas-gnn": 2.0}, as_of_ms=0)
    s.add_active(_active("x", 0.5, "gpu-0", ((0, 0.5),), time_limit_s=840))
    for d in range(1, 4):
        s.add_active(_active(f"w{d}", 1, "gpu-0", ((d, 1.0),)))
    for d in range(4):
        s.add_active(_active(f"v{d}", 1, "gpu-1", ((d, 1.0),)))
    s.enqueue(job("ahead", "cms-btag", gpus=0.75, priority=3))
    s.enqueue(job("frac", "cms-btag", gpus=0.75, submitted_ms=1))
    s.enqueue(job("other", "atlas-gnn", gpus=0.75))
    started(s)
    text = "\n".join(s.explain("frac", 0))
    assert "over its share" in text
    assert "1 jobs of higher priority" in text
    assert "atlas-gnn (2.0 GPU-h per weight)" in text
    assert "largest free share of one device: 0.5" in text
    assert "frees in ~14 min" in text
    assert s.explain("x", 0)[0].startswith("job x is not waiting")
    assert "not in the queue" in s.explain("nope", 0)[0]


def test_gang_explain_names_the_nodes_it_needs() -> None:
    s = Scheduler([GPU])
    s.add_active(_active("x", 1, "gpu-1", ((0, 1.0),)))
    s.enqueue(job("gang", gpus=4, nodes=2))
    started(s)
    text = "\n".join(s.explain("gang", 0))
    assert "no pool has 8 GPUs free on 2 nodes at once (gang)" in text
    assert "pool 'gpu' has 1 node(s)" in text


def test_never_fits_names_each_pools_numbers() -> None:
    small = Pool("small", nodes=1, gpus=2, gpu_memory_mb=16384, cpus=8)
    spec = JobSpec("cms-btag", command=("x",), resources=Resources(gpus=4))
    why = never_fits(spec, [GPU, small])
    assert why is None
    spec = JobSpec("cms-btag", command=("x",), resources=Resources(gpus=8))
    why = never_fits(spec, [GPU, small])
    assert why is not None
    assert "pool 'gpu' has 4 per node" in why
    assert "pool 'small' has 2 per node" in why
    gang = JobSpec("cms-btag", command=("x",), resources=Resources(gpus=1), nodes=3)
    assert "3 nodes asked, pool 'gpu' has 2" in (never_fits(gang, [GPU]) or "")
    pinned = JobSpec("cms-btag", command=("x",), pool="gpv")
    assert "did you mean 'gpu'" in (never_fits(pinned, [GPU]) or "")


def test_shares_report_quota_and_borrowing() -> None:
    s = Scheduler([GPU], [Quota("cms-btag", gpus=2, weight=3, cohort="lhc"), Quota("atlas-gnn")])
    s.add_active(_active("r", 4, "gpu-0", tuple((d, 1.0) for d in range(4))))
    share = {p.project: p for p in s.shares(0)}
    assert share["cms-btag"].entitled == pytest.approx(0.75)
    assert share["cms-btag"].gpus_in_use == 4
    assert share["cms-btag"].borrowed_gpus == 2
    assert share["atlas-gnn"].weight == 1


def test_invalid_inputs() -> None:
    s = Scheduler([GPU])
    s.enqueue(job("a"))
    with pytest.raises(InvalidStateError, match="already"):
        s.enqueue(job("a"))
    with pytest.raises(InvalidStateError, match="running"):
        s.enqueue(job("b", state=JobState.RUNNING))
    with pytest.raises(NotFoundError, match="existing jobs: 'a'"):
        s.remove("b", 0)
    s.remove("a", 0)
    with pytest.raises(NotFoundError):
        s.remove("a", 0)
    s.add_active(_active("one", 1, "gpu-0", ((0, 1.0),)))
    with pytest.raises(InvalidStateError, match="has not the room"):
        s.add_active(_active("two", 0.5, "gpu-0", ((0, 0.5),)))
    with pytest.raises(InvalidArgumentError, match="not in pool 'gpu'"):
        s.add_active(_active("three", 1, "cpu-0", ((0, 1.0),)))


def test_limit_caps_the_starts_of_one_pass() -> None:
    s = Scheduler([GPU])
    for i in range(5):
        s.enqueue(job(f"j{i}", gpus=0.25, submitted_ms=i))
    assert len(s.step(0, limit=2).starts) == 2
    assert len(s.step(0).starts) == 3
