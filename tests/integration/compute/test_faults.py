"""Random SIGKILLs of job commands, agents and the scheduler loop: no job lost, none doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from luminary.testing.compute_faults import run


@pytest.mark.slow
def test_random_kills_lose_no_job_and_never_run_one_twice_at_once(tmp_path: Path) -> None:
    report = run(tmp_path / "faults", jobs=20, kills=30, agents=2, seed=7, job_seconds=0.8)
    summary = report.to_dict()
    assert summary["kills_total"] == 30
    assert report.kills["agent"] > 0
    assert report.kills["scheduler"] > 0
    assert report.lost == [], summary
    assert report.overlapping == [], summary
    assert report.false_success == [], summary
    assert report.unexplained == [], summary
    assert sum(report.states.values()) == 20
