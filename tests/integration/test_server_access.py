"""Access control against a real team-mode server, as an attacker would try it: links to
objects of another project, blobs read by digest, a forged actor, id prefixes that would tell
a non-member that a run exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from luminary.auth import Role
from luminary.storage.blobs import hash_bytes
from luminary.store import SqlStore
from tests.integration.luminary_server import serve_in_thread
from tests.integration.test_server_auth import _NO_ORIGIN, Team, _error, team  # noqa: F401 - the fixture

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")


# -- the actor is the authenticated principal ----------------------------------------------
def test_a_forged_actor_in_the_request_is_never_recorded(team: Team) -> None:  # noqa: F811
    weights = b"wanda's weights"
    blob = team.send("PUT", f"/blobs/{hash_bytes(weights)}", "wanda", content=weights).json()
    version = {
        "project": "alpha",
        "digest": blob["digest"],
        "size": blob["size"],
        "format": "opaque",
        "filename": "m.bin",
        "actor": "mallory",
    }
    resp = team.send("POST", "/models/alpha-model/versions", "wanda", json=version)
    assert resp.status_code == 201, resp.text
    assert resp.json()["created_by"] == "wanda"
    moved = team.send(
        "PUT",
        "/models/alpha-model/aliases/staging",
        "wanda",
        json={"version": 2, "actor": "mallory"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["actor"] == "wanda"
    unset = team.send(
        "DELETE", "/models/alpha-model/aliases/staging", "wanda", params={"actor": "mallory"}
    )
    assert unset.json()["actor"] == "wanda"
    data = {
        "project": "alpha",
        "mode": "reference",
        "root": "/data",
        "manifest_digest": blob["digest"],
        "file_count": 0,
        "total_bytes": 0,
        "actor": "mallory",
    }
    added = team.send("POST", "/datasets/alpha-data/versions", "wanda", json=data)
    assert added.status_code == 201, added.text
    assert added.json()["created_by"] == "wanda"
    gone = team.send("DELETE", "/model-versions/alpha-model@2", "wanda", params={"actor": "m"})
    assert gone.status_code == 204, gone.text
    history = team.store.alias_history("alpha-model", "staging")
    assert [m.actor for m in history] == ["wanda", "wanda"]
    events = team.store.list_events(0, 1000)
    assert all(e.actor != "mallory" and e.actor != "m" for e in events)
    assert {e.actor for e in events if e.subject.startswith("alpha-")} >= {"wanda"}


def test_without_access_control_the_actor_is_the_servers_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINARY_USER", "lab-operator")
    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    blob = store.blobs.put_bytes(b"w")
    store.create_model_version(
        "m",
        project=store.create_project("p").name,
        digest=blob.digest,
        size=blob.size,
        format="onnx",
        filename="m.onnx",
        actor="lab-operator",
        **_NO_ORIGIN,
    )
    try:
        with serve_in_thread(store, tmp_path / "spool", auth=False) as url:
            resp = httpx.put(
                f"{url}/api/v1/models/m/aliases/production",
                json={"version": 1, "actor": "mallory"},
            )
            assert resp.status_code == 200, resp.text
        assert [m.actor for m in store.alias_history("m")] == ["lab-operator"]
    finally:
        store.close()


# -- ambiguous id prefixes -----------------------------------------------------------------
def _shared_prefix(site: Team) -> str:
    """A prefix (6+ characters) that the alpha run and two beta runs share."""
    for _ in range(3):  # ids start with the creation time: a prefix is shared unless a
        # 17-minute boundary falls between the runs, which a retry moves past
        ids = [site.runs["alpha"], site.runs["beta"], site.store.create_run("beta").id]
        prefix = os.path.commonprefix(ids)  # noqa: RUF071 - ids, character by character
        if len(prefix) >= 6:
            return prefix
        site.runs["alpha"] = site.store.create_run("alpha").id
        site.runs["beta"] = site.store.create_run("beta").id
    raise AssertionError("no shared prefix")


def test_an_ambiguous_prefix_lists_only_runs_the_caller_may_read(team: Team) -> None:  # noqa: F811
    team.store.ensure_user("nina")
    team.store.grant("nina", "gamma", Role.READER)
    team.tokens["nina"] = team.store.create_token("nina")[1]
    prefix = _shared_prefix(team)
    alpha_runs = [r.id for r in team.store.search_runs("alpha") if r.id.startswith(prefix)]
    beta_runs = [r.id for r in team.store.search_runs("beta") if r.id.startswith(prefix)]
    # someone with no role in any of the matches' projects cannot tell a run matched
    missing = prefix + "zzzzzzzzzzzzzzzzz"[: 16 - len(prefix)]
    hid = _error(team.get(f"/runs/{prefix}", "nina"), 404, "not_found")
    gone = _error(team.get(f"/runs/{missing}", "nina"), 404, "not_found")
    assert hid == gone.replace(missing, prefix)
    wrote = team.send("POST", f"/runs/{prefix}/tags", "nina", json={"tags": {"a": "b"}})
    _error(wrote, 404, "not_found")
    # a member sees the candidates in their projects, and nothing of the others
    msg = _error(team.get(f"/runs/{prefix}", "wanda"), 400, "ambiguous_id")
    assert all(i in msg for i in alpha_runs), msg
    assert not any(i in msg for i in beta_runs), msg
    assert "beta" not in msg
    # a server admin gets every candidate
    msg = _error(team.get(f"/runs/{prefix}", "root"), 400, "ambiguous_id")
    assert all(i in msg for i in alpha_runs + beta_runs), msg


# -- links and blobs across projects -------------------------------------------------------
def _copy_version(store: SqlStore, project: str, name: str, files: dict[str, bytes]) -> str:
    """A copy-mode dataset version whose files are blobs; its id."""
    lines = ["#luminary-manifest 1"]
    for path, data in sorted(files.items()):
        blob = store.blobs.put_bytes(data)
        lines.append(f"{blob.digest}\t{blob.size}\t{path}")
    manifest = store.blobs.put_bytes(("\n".join(lines) + "\n").encode())
    return store.create_dataset_version(
        name,
        project=project,
        mode="copy",
        root="/data",
        manifest_digest=manifest.digest,
        schema_digest=None,
        file_count=len(files),
        total_bytes=sum(len(b) for b in files.values()),
        message="",
        actor="root",
    ).id


def test_a_writer_cannot_link_or_read_another_projects_dataset(team: Team) -> None:  # noqa: F811
    secret = b"beta's private events"
    beta_version = _copy_version(team.store, "beta", "beta-files", {"events.root": secret})
    alpha_run = team.runs["alpha"]
    linked = team.send(
        "POST", f"/runs/{alpha_run}/inputs", "wanda", json={"version_ids": [beta_version]}
    )
    gone = team.send(
        "POST", f"/runs/{alpha_run}/inputs", "wanda", json={"version_ids": ["01nosuchversion0"]}
    )
    assert _error(linked, 404, "not_found") == _error(gone, 404, "not_found").replace(
        "01nosuchversion0", beta_version
    )
    assert team.store.run_inputs(alpha_run) == []
    # nor through the blob route, knowing the digests
    manifest = team.store.get_dataset_version("beta-files@1").manifest_digest
    for digest in (manifest, hash_bytes(secret)):
        for user in ("rita", "wanda"):
            resp = team.get(f"/blobs/{digest}", user)
            assert "no run, model or dataset" in _error(resp, 404, "not_found")
            assert team.send("POST", f"/blobs/{digest}/verify", user).status_code == 404
        for user in ("rita", "wanda"):  # a writer is not told either (uploading would)
            assert team.send("HEAD", f"/blobs/{digest}", user).status_code == 404
    # what alpha refers to stays readable for alpha's reader
    alpha_weights = team.store.get_model_version("alpha-model@1").digest
    assert team.get(f"/blobs/{alpha_weights}", "rita").content == b"weights"
    # bert, a reader of beta, links it to a beta run and reads every file through the route
    ok_link = team.send(
        "POST", f"/runs/{team.runs['beta']}/inputs", "bert", json={"version_ids": [beta_version]}
    )
    assert ok_link.status_code == 204, ok_link.text
    got = team.get(f"/blobs/{hash_bytes(secret)}", "bert")
    assert got.status_code == 200
    assert got.content == secret
    assert team.get(f"/blobs/{manifest}", "bert").status_code == 200


def test_a_ref_where_an_id_belongs_is_a_clear_404(team: Team) -> None:  # noqa: F811
    for user in ("root", "wanda"):
        resp = team.send(
            "POST",
            f"/runs/{team.runs['alpha']}/inputs",
            user,
            json={"version_ids": ["alpha-data@1"]},
        )
        msg = _error(resp, 404, "not_found")
        assert "alpha-data@1" in msg
        assert ".id" in msg
