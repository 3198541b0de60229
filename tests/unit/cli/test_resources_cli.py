"""``luminary resources`` shows the shared compute next to this machine: pools, the queue and
each project's use against its share, in the table and in ``--output json``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import luminary as lm
from luminary.cli import app
from luminary.compute import JobSpec, Pool, Quota, Resources

runner = CliRunner()


def _resources(*extra: str) -> str:
    result = runner.invoke(app, ["resources", "--timeout", "0.1", *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_json_has_pools_queue_and_shares(home: Path) -> None:
    store = lm.get_store()
    store.put_pool(Pool("gpu", gpus=4, cpus=16))
    store.set_quota(Quota("cms-btag", gpus=2, weight=3, cohort="lhc"))
    spec = JobSpec("cms-btag", command=("python", "train.py"), resources=Resources(gpus=1))
    store.submit_job(spec, user="hana")
    store.submit_job(spec.with_(project="atlas-hh"), user="arno")
    data = json.loads(_resources("-o", "json"))
    assert {"host", "cpu", "store", "pools", "queue", "shares"} <= data.keys()
    assert "queue_note" not in data
    [pool] = data["pools"]
    assert (pool["name"], pool["gpus"], pool["cpus"]) == ("gpu", 4, 16.0)
    assert pool["agents"] == []  # nothing serves it
    assert data["queue"] == {"queued": 2, "starting": 0, "running": 0}
    shares = {s["project"]: s for s in data["shares"]}
    assert set(shares) == {"cms-btag", "atlas-hh"}
    assert shares["cms-btag"]["weight"] == 3.0
    assert shares["cms-btag"]["entitled"] == 0.75
    assert shares["cms-btag"]["nominal_gpus"] == 2.0
    assert shares["cms-btag"]["queued"] == 1
    assert shares["cms-btag"]["cohort"] == "lhc"


def test_table_shows_pools_queue_and_fair_share(home: Path) -> None:
    store = lm.get_store()
    store.put_pool(Pool("gpu", gpus=4, cpus=16))
    store.set_quota(Quota("cms-btag", gpus=2, weight=2))
    spec = JobSpec("cms-btag", command=("python", "train.py"), resources=Resources(gpus=1))
    store.submit_job(spec)
    text = _resources()
    assert "pools" in text
    assert "gpu" in text
    assert "queue: 1 queued · 0 starting · 0 running" in text
    assert "fair share" in text
    assert "cms-btag" in text


def test_a_home_without_a_store_is_not_created(home: Path) -> None:
    data = json.loads(_resources("-o", "json"))
    assert data["pools"] == []
    assert data["shares"] == []
    assert data["queue"] == {"queued": 0, "starting": 0, "running": 0}
    assert "no store yet" in data["queue_note"]
    assert not (home / "luminary.db").exists()
