"""Access control on tune's routes against a real team-mode server: readers read, writers
write, and a caller with no role in a study's project is told it does not exist."""

from __future__ import annotations

from typing import Any

import pytest

from luminary.tune import TrialPatch
from tests.integration.test_server_auth import Team, _error, team  # noqa: F401 - the fixture

pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")


@pytest.fixture
def site(team: Team) -> Team:  # noqa: F811 - the fixture
    """A study with one running trial in alpha (wanda writes, rita reads; bert is in beta)."""
    study = team.store.create_study("alpha", "sweep", ["minimize"])
    trial = team.store.create_trial(study.id)
    team.ids = {"study": study.id, "trial": trial.id}  # type: ignore[attr-defined]
    return team


def _ids(site: Team) -> dict[str, int]:
    return site.ids  # type: ignore[attr-defined, no-any-return]


def _writes(study: int, trial: int) -> list[tuple[str, str, Any]]:
    return [
        ("POST", "/studies", {"project": "alpha", "name": "new", "directions": ["minimize"]}),
        ("DELETE", f"/studies/{study}", None),
        ("POST", f"/studies/{study}/attrs", {"user_attrs": {"a": 1}}),
        ("POST", f"/studies/{study}/trials", {}),
        ("POST", f"/trials/{trial}/patch", TrialPatch(state="fail").to_dict()),
        ("POST", "/trials/heartbeat", {"ids": [trial]}),
    ]


def _reads(study: int, trial: int) -> list[str]:
    return [
        f"/studies/{study}",
        f"/studies/{study}/trials",
        f"/studies/{study}/trials/number/0",
        f"/studies/{study}/stale?grace_ms=0",
        f"/trials/{trial}",
    ]


def test_a_reader_reads_but_cannot_write(site: Team) -> None:
    ids = _ids(site)
    for path in _reads(ids["study"], ids["trial"]):
        assert site.get(path, "rita").status_code == 200, path
    assert (
        site.get("/studies/lookup", "rita", params={"project": "alpha", "name": "sweep"}).json()[
            "id"
        ]
        == ids["study"]
    )
    for method, path, body in _writes(ids["study"], ids["trial"]):
        kw = {} if body is None else {"json": body}
        assert "reader" in _error(site.send(method, path, "rita", **kw), 403, "permission_denied")
    assert site.store.get_trial(ids["trial"]).state == "running"
    assert [s.study.name for s in site.store.list_studies("alpha")] == ["sweep"]


def test_no_role_answers_as_an_unknown_id(site: Team) -> None:
    ids = _ids(site)
    for path in _reads(ids["study"], ids["trial"]):
        message = _error(site.get(path, "bert"), 404, "not_found")
        assert "alpha" not in message
        unknown = (
            path.replace(str(ids["study"]), "999999", 1)
            if "/studies/" in path
            else (path.replace(str(ids["trial"]), "999999"))
        )
        assert _error(site.get(unknown, "bert"), 404, "not_found") == message.replace(
            str(ids["study"] if "/studies/" in path else ids["trial"]), "999999"
        )
    for method, path, body in _writes(ids["study"], ids["trial"]):
        kw = {} if body is None else {"json": body}
        _error(site.send(method, path, "bert", **kw), 404, "not_found")
    assert site.get("/studies", "bert").json() == []
    _error(site.get("/studies", "bert", params={"project": "alpha"}), 404, "not_found")
    assert site.store.get_trial(ids["trial"]).state == "running"


def test_a_writer_writes_and_lists_only_their_projects(site: Team) -> None:
    ids = _ids(site)
    site.store.create_study("beta", "theirs", ["maximize"])
    listed = site.get("/studies", "wanda").json()
    assert [s["study"]["name"] for s in listed] == ["sweep"]
    assert len(site.get("/studies", "root").json()) == 2
    created = site.send("POST", f"/studies/{ids['study']}/trials", "wanda", json={})
    assert created.status_code == 201, created.text
    done = TrialPatch(state="complete", values=(1.5,)).to_dict()
    resp = site.send("POST", f"/trials/{created.json()['id']}/patch", "wanda", json=done)
    assert resp.json() == {"ok": True}
    again = site.send("POST", f"/trials/{created.json()['id']}/patch", "wanda", json=done)
    assert "already complete" in _error(again, 409, "invalid_state")


def test_bad_input_is_a_400_naming_it(site: Team) -> None:
    ids = _ids(site)
    trials = f"/studies/{ids['study']}/trials"
    many = ",".join(["1"] * 10_001)
    assert "at most 10000" in _error(
        site.get(trials, "wanda", params={"ids": many}), 400, "invalid_argument"
    )
    assert "ids=" in _error(
        site.get(trials, "wanda", params={"ids": "1,x"}), 400, "invalid_argument"
    )
    _error(site.get(f"/studies/{2**63}", "wanda"), 400, "invalid_argument")
    _error(site.get("/trials/-1", "wanda"), 400, "invalid_argument")
    bad = site.send("POST", f"/trials/{ids['trial']}/patch", "wanda", json={"state": "done"})
    assert "trial state 'done'" in _error(bad, 400, "invalid_argument")
    shape = site.send("POST", f"/trials/{ids['trial']}/patch", "wanda", json={"params": {"x": 1}})
    assert "trial patch" in _error(shape, 400, "invalid_argument")
    beats = site.send("POST", "/trials/heartbeat", "wanda", json={"ids": list(range(10_001))})
    _error(beats, 400, "invalid_argument")
    assert site.store.get_trial(ids["trial"]).state == "running"
