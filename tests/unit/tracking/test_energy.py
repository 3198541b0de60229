"""Runs record the energy they used, per device, with where each figure came from."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app


def busy(seconds: float = 0.05) -> None:
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_a_run_records_energy_per_device_with_its_source() -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        busy()
    got = lm.get_run(run.id)
    assert run.energy is not None
    assert got.metrics["energy/total_joules"] == pytest.approx(run.energy.total_joules)
    assert got.metrics["energy/cpu_joules"] > 0  # it used the CPU
    assert got.metrics["resources/cpu_seconds"] >= 0.04
    assert got.metrics["resources/duration_seconds"] > 0
    source = got.tags["energy.cpu.source"]
    assert source in ("rapl", "estimate")
    assert got.tags["energy.measured"] == ("none" if source == "estimate" else "all")
    if source == "estimate":  # always labelled, with its constants
        assert run.energy.any_estimated
        assert " W " in got.tags["energy.cpu.detail"]


def test_energy_can_be_turned_off_per_run_and_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with lm.start_run(project="p", capture_env=False, energy=False) as off:
        busy(0.01)
    monkeypatch.setenv("LUMINARY_ENERGY", "0")
    with lm.start_run(project="p", capture_env=False) as env_off:
        busy(0.01)
    for run in (off, env_off):
        got = lm.get_run(run.id)
        assert run.energy is None
        assert not any(k.startswith("energy") for k in [*got.metrics, *got.tags])


def test_runs_get_shows_the_energy() -> None:
    with lm.start_run(project="p", capture_env=False) as run:
        busy()
    result = CliRunner().invoke(app, ["runs", "get", run.id])
    assert result.exit_code == 0, result.output
    assert "energy/cpu_joules" in result.output
    assert "energy.cpu.source" in result.output
