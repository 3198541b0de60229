"""Access control in team mode, against a real server: tokens (401 and why), roles per project
(403 for a role too low, 404 without a role, with the not-found message), filtered listings,
the SDK's errors, and ``luminary server``'s refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import luminary as lm
from luminary.auth import Role
from luminary.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from luminary.registry.models import ModelVersion
from luminary.storage.blobs import Blob, hash_bytes
from luminary.store import SqlStore, Store, set_store
from tests.integration.luminary_server import serve_in_thread

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")

API = "/api/v1"
_NO_ORIGIN: dict[str, Any] = {
    "signature": {},
    "metadata": {},
    "source_run_id": None,
    "parent": None,
    "description": "",
}


@dataclass
class Team:
    url: str
    store: SqlStore
    tokens: dict[str, str]  # user -> secret
    runs: dict[str, str]  # project -> a run id in it

    def get(self, path: str, user: str | None = None, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{API}{path}", headers=self._auth(user), **kw)

    def send(self, method: str, path: str, user: str | None, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{API}{path}", headers=self._auth(user), **kw)

    def _auth(self, user: str | None) -> dict[str, str]:
        return {} if user is None else {"authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    """Projects alpha and beta; root (server admin), wanda (writer in alpha), rita (reader in
    alpha), bert (writer in beta). Each project has a run, a model and a dataset."""
    store = SqlStore(f"sqlite:///{tmp_path / 'server' / 'luminary.db'}", str(tmp_path / "blobs"))
    store.ensure_user("root", is_admin=True)
    for user, project, role in (
        ("wanda", "alpha", Role.WRITER),
        ("rita", "alpha", Role.READER),
        ("bert", "beta", Role.WRITER),
    ):
        store.ensure_user(user)
        store.grant(user, project, role)
    tokens = {u: store.create_token(u)[1] for u in ("root", "wanda", "rita", "bert")}
    runs = {}
    blob = store.blobs.put_bytes(b"weights")
    for project in ("alpha", "beta"):
        runs[project] = store.create_run(project, name=f"{project}-run").id
        store.create_model_version(
            f"{project}-model",
            project=project,
            digest=blob.digest,
            size=blob.size,
            format="onnx",
            filename="m.onnx",
            actor="root",
            **_NO_ORIGIN,
        )
        store.set_alias(f"{project}-model", "production", 1, "root")
        store.create_dataset_version(
            f"{project}-data",
            project=project,
            mode="reference",
            root=str(tmp_path),
            manifest_digest=blob.digest,
            file_count=0,
            total_bytes=0,
            schema_digest=None,
            message="",
            actor="root",
        )
    try:
        with serve_in_thread(store, tmp_path / "spool", auth=True) as url:
            yield Team(url, store, tokens, runs)
    finally:
        store.close()


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    return str(body["message"])


# -- authentication ------------------------------------------------------------------------
def test_anonymous_requests_are_401_and_health_stays_open(team: Team) -> None:
    for path in ("/projects", f"/runs/{team.runs['alpha']}", "/models", "/events"):
        resp = team.get(path)
        assert "LUMINARY_TOKEN" in _error(resp, 401, "unauthenticated")
        assert resp.headers["www-authenticate"].startswith("Bearer")
    put = httpx.put(f"{team.url}{API}/blobs/{hash_bytes(b'x')}", content=b"x")
    _error(put, 401, "unauthenticated")
    assert httpx.get(f"{team.url}/healthz").status_code == 200
    assert httpx.get(f"{team.url}/readyz").status_code == 200
    assert httpx.get(f"{team.url}{API}/openapi.json").status_code == 200


def test_bad_tokens_are_401_saying_what_is_wrong(team: Team) -> None:
    store = team.store

    def with_header(value: str) -> str:
        resp = httpx.get(f"{team.url}{API}/projects", headers={"authorization": value})
        return _error(resp, 401, "unauthenticated")

    assert "Bearer <token>" in with_header(f"Basic {team.tokens['root']}")
    assert "malformed" in with_header("Bearer not-a-token")
    real = team.tokens["root"]
    assert "not valid" in with_header(f"Bearer {real[:-4]}0000")
    assert "not valid" in with_header(f"Bearer lum_{'0' * 16}_{'0' * 64}")
    expiring, secret = store.create_token("wanda", expires_in_s=0.001)
    time.sleep(0.01)
    assert f"token {expiring.id} expired at" in with_header(f"Bearer {secret}")
    revoked, secret = store.create_token("wanda")
    store.revoke_token(revoked.id)
    assert f"token {revoked.id} was revoked" in with_header(f"Bearer {secret}")


def _register_blob(store: Store, name: str, project: str, blob: Blob, actor: str) -> ModelVersion:
    """A version of model ``name`` whose file is the stored ``blob`` (opaque bytes)."""
    return store.create_model_version(
        name,
        project=project,
        digest=blob.digest,
        size=blob.size,
        format="opaque",
        filename="model.bin",
        actor=actor,
        **_NO_ORIGIN,
    )


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_token_stops_working_within_the_cache_window(tmp_path: Path) -> None:
    from luminary.server._auth import Guard

    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    clock = _Clock()
    try:
        store.ensure_user("root", is_admin=True)
        token, secret = store.create_token("root")
        guard = Guard(store, enabled=True, cache_s=5.0, clock=clock)
        assert guard.authenticate(f"Bearer {secret}").user == "root"
        store.revoke_token(token.id)
        clock.now += 4.9
        assert guard.authenticate(f"Bearer {secret}").user == "root"  # cached principal
        clock.now += 0.1
        with pytest.raises(AuthenticationError, match="revoked"):
            guard.authenticate(f"Bearer {secret}")
    finally:
        store.close()


def test_a_blob_read_is_allowed_within_the_cache_window_only(tmp_path: Path) -> None:
    from luminary.server._auth import Guard

    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    clock = _Clock()
    try:
        store.ensure_user("rita")
        store.grant("rita", "alpha", Role.READER)
        _, secret = store.create_token("rita")
        blob = store.blobs.put_bytes(b"weights")
        _register_blob(store, "m", "alpha", blob, "root")
        guard = Guard(store, enabled=True, cache_s=5.0, clock=clock)
        rita = guard.authenticate(f"Bearer {secret}")
        guard.check_blob(rita, blob.digest)  # model m names it
        store.delete_model("m", "root")
        clock.now += 4.9
        guard.check_blob(rita, blob.digest)  # the answer is reused within the window
        clock.now += 0.1
        with pytest.raises(NotFoundError, match="no run, model or dataset"):
            guard.check_blob(rita, blob.digest)
    finally:
        store.close()


# -- roles -----------------------------------------------------------------------------------
def test_reader_reads_but_gets_403_on_writes(team: Team) -> None:
    run_id = team.runs["alpha"]
    assert team.get(f"/runs/{run_id}", "rita").json()["project"] == "alpha"
    assert team.get(f"/runs/{run_id}/metrics", "rita").status_code == 200
    assert team.get("/model-versions/alpha-model@production", "rita").status_code == 200
    assert team.get("/dataset-versions/alpha-data@1", "rita").status_code == 200
    batch = {"series": [[1, "loss"]], "points": [[1, 0, 1, 0.5]]}
    blob = team.store.blobs.put_bytes(b"more weights")
    for method, path, kw in (
        ("POST", f"/runs/{run_id}/metrics", {"json": batch}),
        ("PUT", "/models/alpha-model/aliases/staging", {"json": {"version": 1, "actor": "r"}}),
        ("DELETE", "/models/alpha-model/aliases/production", {"params": {"actor": "r"}}),
        (
            "POST",
            "/models/alpha-model/versions",
            {
                "json": {
                    "project": "alpha",
                    "digest": blob.digest,
                    "size": blob.size,
                    "format": "onnx",
                    "filename": "m.onnx",
                    "actor": "rita",
                }
            },
        ),
        ("DELETE", f"/runs/{run_id}", {}),
        ("POST", "/runs", {"json": {"project": "alpha"}}),
        ("PUT", f"/blobs/{hash_bytes(b'x')}", {"content": b"x"}),
    ):
        msg = _error(team.send(method, path, "rita", **kw), 403, "permission_denied")
        assert "rita is" in msg, (method, path, msg)
    assert team.store.get_model("alpha-model").aliases == {"production": 1}
    assert team.store.get_run(run_id).id == run_id


def test_no_role_is_404_with_the_message_of_a_missing_object(team: Team) -> None:
    beta_run = team.runs["beta"]
    for user in ("wanda", "rita"):
        for hidden, missing in (
            (f"/runs/{beta_run}", "/runs/01NOSUCHRUN0000000000000"),
            ("/projects/beta", "/projects/gamma"),
            ("/models/beta-model", "/models/no-model"),
            ("/model-versions/beta-model@1", "/model-versions/no-model@1"),
            ("/datasets/beta-data", "/datasets/no-data"),
            ("/dataset-versions/beta-data@1", "/dataset-versions/no-data@1"),
        ):
            hid = _error(team.get(hidden, user), 404, "not_found")
            gone = _error(team.get(missing, user), 404, "not_found")
            name = hidden.rsplit("/", 1)[1]
            assert hid == gone.replace(missing.rsplit("/", 1)[1], name), (hid, gone)
            assert "beta" not in gone
    # writes too: 404, not 403, and nothing changes
    batch = {"series": [[1, "loss"]], "points": [[1, 0, 1, 0.5]]}
    _error(team.send("POST", f"/runs/{beta_run}/metrics", "wanda", json=batch), 404, "not_found")
    _error(team.send("POST", "/runs", "wanda", json={"project": "beta"}), 404, "not_found")
    assert team.store.metric_series(beta_run) == {}


def test_listings_show_only_projects_with_a_role(team: Team) -> None:
    names = [p["name"] for p in team.get("/projects", "wanda").json()]
    assert names == ["alpha"]
    runs = team.get("/runs", "wanda").json()
    assert {r["project"] for r in runs} == {"alpha"}
    assert team.get("/runs/count", "wanda").json() == {"count": 1}
    within = team.get("/runs", "wanda", params={"within": ["beta"]}).json()
    assert within == []
    assert [m["name"] for m in team.get("/models", "wanda").json()] == ["alpha-model"]
    assert [d["name"] for d in team.get("/datasets", "wanda").json()] == ["alpha-data"]
    events = team.get("/events", "wanda").json()
    assert len(events) == 3  # alpha's model, alias and dataset version
    assert all(e["subject"].startswith("alpha-") for e in events)
    # a page of one still walks past the hidden events of beta to the next visible one
    team.store.set_alias("alpha-model", "staging", 1, "root")
    page = team.get("/events", "wanda", params={"after": events[-1]["seq"], "limit": 1}).json()
    assert [(e["kind"], e["payload"].get("alias")) for e in page] == [("alias.set", "staging")]
    _error(team.get("/runs", "wanda", params={"project": "beta"}), 404, "not_found")
    _error(team.get("/models", "wanda", params={"project": "beta"}), 404, "not_found")
    # the admin sees everything
    assert {p["name"] for p in team.get("/projects", "root").json()} == {"alpha", "beta"}
    assert team.get("/runs/count", "root").json() == {"count": 2}
    assert len(team.get("/models", "root").json()) == 2


def test_only_admins_create_projects(team: Team) -> None:
    for name in ("alpha", "new-project"):  # the same answer whether it exists or not
        msg = _error(
            team.send("POST", "/projects", "wanda", json={"name": name}), 403, "permission_denied"
        )
        assert "server admins" in msg
    assert team.send("POST", "/projects", "root", json={"name": "gamma"}).status_code == 201
    msg = _error(team.send("POST", "/runs", "wanda", json={"project": "delta"}), 404, "not_found")
    assert "luminary tokens create" in msg


# -- the SDK ---------------------------------------------------------------------------------
@pytest.fixture
def sdk_as(team: Team, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(user: str) -> None:
        _drop_store()
        monkeypatch.setenv("LUMINARY_URI", team.url)
        monkeypatch.setenv("LUMINARY_TOKEN", team.tokens[user])
        set_store(None)

    yield use
    _drop_store()


def _drop_store() -> None:
    from luminary import _current

    if _current._store is not None:
        _current._store.close()
    set_store(None)


def test_sdk_writer_logs_and_registers_and_sees_the_right_errors(
    team: Team, sdk_as: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_as("wanda")
    with lm.start_run("alpha", params={"lr": 0.1}, capture_env=False) as run:
        run.log({"loss": 0.5})
    assert len(team.store.get_metric_history(run.id, "loss")) == 1
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"\x00" * 64)
    store = lm.get_store()
    blob = store.blobs.put_file(weights)
    version = _register_blob(store, "alpha-model", "alpha", blob, "wanda")
    assert version.ref == "alpha-model@2"
    store.set_alias("alpha-model", "staging", 2, "wanda")
    with pytest.raises(NotFoundError, match="no role"):
        store.get_run(team.runs["beta"])
    with pytest.raises(NotFoundError):
        lm.start_run("beta", capture_env=False)
    assert {r.project for r in lm.search_runs(None)} == {"alpha"}

    sdk_as("rita")
    with pytest.raises(PermissionDeniedError, match="reader"):
        lm.get_store().set_alias("alpha-model", "production", 2, "rita")
    with pytest.raises(PermissionDeniedError):
        lm.get_store().delete_run(run.id)

    _drop_store()
    monkeypatch.setenv("LUMINARY_TOKEN", f"lum_{'0' * 16}_{'0' * 64}")
    with pytest.raises(AuthenticationError, match="not valid"):
        lm.get_store().list_projects()


# -- luminary server -------------------------------------------------------------------------
def _cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LUMINARY_HOME=str(home), COLUMNS="400")
    env.pop("LUMINARY_URI", None)
    env.pop("LUMINARY_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "luminary.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_server_refuses_team_mode_without_an_admin_token(tmp_path: Path) -> None:
    done = _cli(tmp_path / "home", "server", "--port", "0")
    assert done.returncode != 0
    text = " ".join((done.stdout + done.stderr).split())
    assert "luminary tokens create --user NAME --admin" in text, text


def test_server_refuses_no_auth_on_a_public_host(tmp_path: Path) -> None:
    done = _cli(tmp_path / "home", "server", "--port", "0", "--no-auth", "--host", "0.0.0.0")
    assert done.returncode != 0
    text = " ".join((done.stdout + done.stderr).split())
    assert "--no-auth" in text, text
    assert "loopback" in text, text


def test_loopback_check() -> None:
    from luminary._net import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org"))


def test_server_starts_in_team_mode_once_an_admin_token_exists(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = _cli(home, "tokens", "create", "--user", "ops", "--admin", "-o", "json")
    assert made.returncode == 0, made.stderr
    env = dict(os.environ, LUMINARY_HOME=str(home), PYTHONUNBUFFERED="1", COLUMNS="400")
    env.pop("LUMINARY_URI", None)
    env.pop("LUMINARY_DB", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "luminary.cli", "server", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert any("team mode: tokens required" in line for line in lines), lines
    finally:
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()
