"""Why a job waits: quota and capacity are told apart, and idle figures are not shown."""

from __future__ import annotations

from luminary.compute._policy import Scheduler
from luminary.compute.models import Pool, Quota
from tests.unit.compute.test_policy import job


def test_a_job_held_back_by_its_quota_is_not_said_to_start_next() -> None:
    s = Scheduler([Pool("gpu", gpus=1, cpus=8)], [Quota("cms", gpus=0.5), Quota("atlas", gpus=0.5)])
    s.enqueue(job("big", project="cms", gpus=1))
    assert s.step(0).starts == ()
    lines = s.explain("big", 0)
    assert any("0.5 of them are the idle nominal quota" in line for line in lines)
    assert "it would fit in pool 'gpu' now, but for its project's quota" in lines
    assert not any("starts at the next pass" in line for line in lines)


def test_a_job_waiting_for_room_is_not_blamed_on_quota() -> None:
    s = Scheduler(
        [Pool("gpu", gpus=1, cpus=8)],
        [Quota("cms", gpus=0.5, cohort="lhc"), Quota("atlas", gpus=0.5, cohort="lhc")],
    )
    s.enqueue(job("running", project="cms", gpus=1, time_limit_s=1200))
    assert [x.job_id for x in s.step(0).starts] == ["running"]
    s.enqueue(job("waiting", project="atlas", gpus=0.5))
    assert s.step(1000).starts == ()
    lines = s.explain("waiting", 1000)
    assert not any("quota" in line for line in lines), lines
    assert "no device in pool 'gpu' has 0.5 GPU free (largest free share of one device: 0)" in lines
    assert any(line.startswith("a 0.5 GPU slot frees in ~20 min") for line in lines)
    assert any("no project waiting or running has used the GPUs lately" in line for line in lines)
