"""Access control on compute's routes against a real team-mode server: who may submit, see,
cancel and run jobs, who may configure pools and act as an agent, and whose name a job
carries."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from luminary._clock import now_ms
from luminary.compute import Agent, JobSpec, JobState, Pool
from luminary.errors import NotFoundError, PermissionDeniedError
from luminary.store._rest import RestStore
from tests.integration.test_server_auth import Team, _error, team  # noqa: F401 - the fixture

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")

_SPEC: dict[str, Any] = {"command": ["python", "train.py"], "gpus": 1}


@pytest.fixture
def site(team: Team) -> Team:  # noqa: F811 - the fixture
    """The team, with one GPU pool, and one queued job in each project (submitted by its
    writer)."""
    team.store.put_pool(Pool("gpu", gpus=4, cpus=16))
    for user, project in (("wanda", "alpha"), ("bert", "beta")):
        resp = team.send("POST", "/jobs", user, json={"spec": {**_SPEC, "project": project}})
        assert resp.status_code == 201, resp.text
    return team


def _job(site: Team, project: str) -> str:
    return next(j.id for j in site.store.list_jobs(project))


@contextlib.contextmanager
def _client(site: Team, user: str) -> Iterator[RestStore]:
    """A REST store that authenticates as ``user``."""
    store = RestStore(site.url, token=site.tokens[user], retries=0)
    try:
        yield store
    finally:
        store.close()


# -- submitting ----------------------------------------------------------------------------
def test_a_reader_cannot_submit(site: Team) -> None:
    resp = site.send("POST", "/jobs", "rita", json={"spec": {**_SPEC, "project": "alpha"}})
    assert "reader" in _error(resp, 403, "permission_denied")
    other = site.send("POST", "/jobs", "wanda", json={"spec": {**_SPEC, "project": "beta"}})
    assert "no role" in _error(other, 404, "not_found")
    assert len(site.store.list_jobs("alpha")) == 1
    assert len(site.store.list_jobs("beta")) == 1


def test_the_user_recorded_is_the_tokens_user(site: Team) -> None:
    body = {"spec": {**_SPEC, "project": "alpha"}, "user": "mallory"}
    resp = site.send("POST", "/jobs", "wanda", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["user"] == "wanda"
    with _client(site, "wanda") as wanda:
        job = wanda.submit_job(JobSpec("alpha", command=("true",)), user="mallory")
    assert job.user == "wanda"
    assert {j.user for j in site.store.list_jobs("alpha")} == {"wanda"}


def test_inputs_must_be_readable_by_the_submitter(site: Team) -> None:
    theirs = {"spec": {**_SPEC, "project": "alpha", "inputs": ["beta-data@1"]}}
    _error(site.send("POST", "/jobs", "wanda", json=theirs), 404, "not_found")
    ours = {"spec": {**_SPEC, "project": "alpha", "inputs": ["alpha-data@1"]}}
    resp = site.send("POST", "/jobs", "wanda", json=ours)
    assert resp.status_code == 201, resp.text
    inputs = site.store.run_inputs(resp.json()["run_id"])
    assert [v.ref for v in inputs] == ["alpha-data@1"]


def test_a_bad_spec_is_a_400_naming_the_field(site: Team) -> None:
    bad = {"spec": {**_SPEC, "project": "alpha", "gpus": "lots"}}
    assert "gpus" in _error(site.send("POST", "/jobs", "wanda", json=bad), 400, "invalid_argument")
    huge = {"spec": {**_SPEC, "project": "alpha", "gpus": 64}}
    message = _error(site.send("POST", "/jobs", "wanda", json=huge), 400, "invalid_argument")
    assert "64 GPUs per node asked" in message


# -- seeing and cancelling -----------------------------------------------------------------
def test_a_writer_of_one_project_cannot_see_or_cancel_anothers_jobs(site: Team) -> None:
    beta_job = _job(site, "beta")
    for method, path in (
        ("GET", f"/jobs/{beta_job}"),
        ("GET", f"/jobs/{beta_job}/why"),
        ("GET", f"/jobs/{beta_job}/logs"),
        ("POST", f"/jobs/{beta_job}/cancel"),
    ):
        kw = {"json": {}} if method == "POST" else {}
        message = _error(site.send(method, path, "wanda", **kw), 404, "not_found")
        assert "beta" not in message
    unknown = _error(site.get("/jobs/0000000000000000", "wanda"), 404, "not_found")
    assert unknown.replace("0000000000000000", beta_job) == message
    assert site.store.get_job(beta_job).state is JobState.QUEUED
    listed = site.get("/jobs", "wanda").json()
    assert {j["spec"]["project"] for j in listed} == {"alpha"}
    _error(site.get("/jobs", "wanda", params={"project": "beta"}), 404, "not_found")
    with _client(site, "wanda") as wanda, pytest.raises(NotFoundError):
        wanda.cancel_job(beta_job)
    assert len(site.get("/jobs", "root").json()) == 2


def test_a_reader_sees_but_cannot_cancel(site: Team) -> None:
    alpha_job = _job(site, "alpha")
    assert site.get(f"/jobs/{alpha_job}", "rita").json()["id"] == alpha_job
    assert site.get(f"/jobs/{alpha_job}/why", "rita").status_code == 200
    _error(
        site.send("POST", f"/jobs/{alpha_job}/cancel", "rita", json={}), 403, "permission_denied"
    )
    cancelled = site.send("POST", f"/jobs/{alpha_job}/cancel", "wanda", json={"reason": "redo"})
    assert cancelled.json()["state"] == "cancelled"


# -- pools, quotas and agents --------------------------------------------------------------
def test_a_non_admin_cannot_configure_pools_or_act_as_an_agent(site: Team) -> None:
    job = _job(site, "alpha")
    agent = {"id": "a1", "pool": "gpu", "host": "h", "pid": 1, "started_ms": 1, "heartbeat_ms": 1}
    for method, path, body in (
        ("PUT", "/pools/mine", {"gpus": 8}),
        ("DELETE", "/pools/gpu", None),
        ("PUT", "/quotas/alpha", {"gpus": 4}),
        ("DELETE", "/quotas/alpha", None),
        ("POST", "/compute/claim", {"pool": "gpu", "agent": agent}),
        ("POST", "/compute/schedule", {}),
        ("GET", "/compute/agents", None),
        ("POST", f"/jobs/{job}/launched", {"attempt": 1, "executor_ref": "x"}),
        ("POST", f"/jobs/{job}/lost", {"attempt": 0, "reason": "x"}),
    ):
        kw = {} if body is None else {"json": body}
        _error(site.send(method, path, "wanda", **kw), 403, "permission_denied")
    assert [p.name for p in site.store.list_pools()] == ["gpu"]
    assert site.store.list_agents() == []
    assert site.store.get_job(job).state is JobState.QUEUED
    with _client(site, "wanda") as wanda:
        with pytest.raises(PermissionDeniedError):
            wanda.claim_jobs("gpu", Agent("a1", "gpu", "h", 1, now_ms(), now_ms()))
        assert [p.name for p in wanda.list_pools()] == ["gpu"]  # reads are open
        assert wanda.list_quotas() == []
        assert {s.project for s in wanda.compute_shares()} >= {"alpha", "beta"}
        assert wanda.queue_version() >= 1
    with _client(site, "root") as root:
        root.put_pool(Pool("cpu", cpus=8, options={"partition": "short"}))
        assert root.get_pool("cpu").options == {"partition": "short"}
        claimed = root.claim_jobs("gpu", Agent("a1", "gpu", "h", 1, now_ms(), now_ms()))
        assert len(claimed) == 2
        assert [a.id for a in root.list_agents()] == ["a1"]


# -- runners -------------------------------------------------------------------------------
def test_runner_calls_need_a_writer_in_the_jobs_project(site: Team) -> None:
    with _client(site, "root") as root:
        jobs = {j.project: j for j in root.claim_jobs("gpu", Agent("a", "gpu", "h", 1, 1, 1))}
    job = jobs["alpha"]
    started = f"/jobs/{job.id}/tasks/0/started"
    _error(
        site.send("POST", started, "rita", json={"attempt": 1, "node": "n"}),
        403,
        "permission_denied",
    )
    _error(site.send("POST", started, "bert", json={"attempt": 1, "node": "n"}), 404, "not_found")
    with _client(site, "wanda") as wanda:
        assert wanda.task_started(job.id, 1, 0, "node-0").state is JobState.RUNNING
        assert not wanda.task_heartbeat(job.id, 1, 0).stop
    data = base64.b64encode(b"hello\n").decode()
    chunk = [1, 0, "stdout", 0, now_ms(), data]
    logs = f"/jobs/{job.id}/logs"
    _error(site.send("POST", logs, "rita", json={"chunks": [chunk]}), 403, "permission_denied")
    assert site.send("POST", logs, "wanda", json={"chunks": [chunk]}).status_code == 204
    bad = site.send("POST", logs, "wanda", json={"chunks": [[1, 0, "stdout", 1, 0, "%%%"]]})
    assert "base64" in _error(bad, 400, "invalid_argument")
    read = site.get(logs, "rita", params={"after": '{"1/0/stdout": -1}'}).json()
    assert [base64.b64decode(c[5]) for c in read] == [b"hello\n"]
    _error(site.get(logs, "rita", params={"after": "[1]"}), 400, "invalid_argument")
    finished = f"/jobs/{job.id}/tasks/0/finished"
    body = {"attempt": 1, "report": {"exit_code": 0}}
    _error(site.send("POST", finished, "bert", json=body), 404, "not_found")
    assert site.send("POST", finished, "wanda", json=body).json()["state"] == "succeeded"


def test_anonymous_callers_are_refused(site: Team) -> None:
    for path in ("/jobs", "/pools", "/compute/shares", f"/jobs/{_job(site, 'alpha')}"):
        _error(site.get(path), 401, "unauthenticated")


def test_a_pool_body_is_checked(site: Team) -> None:
    resp = site.send("PUT", "/pools/big", "root", json={"gpus": 4, "gpu": 2})
    assert "did you mean" in _error(resp, 400, "invalid_argument")
    resp = site.send("PUT", "/pools/big", "root", json={"executor": "kubernetes"})
    assert "executor" in _error(resp, 400, "invalid_argument")
    ok = site.send("PUT", "/pools/big", "root", json={"gpus": 8, "name": "ignored"})
    assert ok.json()["name"] == "big"
