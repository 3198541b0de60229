"""The web pages, through the app in-process (no browser): every page answers for seeded data,
bad filters show where they fail, user text is escaped, forms need the CSRF token, alias moves
are recorded, team mode needs a login and hides other projects, charts are downsampled."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra (luminary[server]) is not installed")
pytest.importorskip("jinja2", reason="the server extra (luminary[server]) is not installed")

with warnings.catch_warnings():  # starlette warns that it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from luminary._actor import current_actor
from luminary.auth import Role
from luminary.datasets._manifest import FileEntry, ManifestWriter
from luminary.server import create_app
from luminary.server.ui._series import downsample
from luminary.store import SqlStore

XSS = "<script>alert(1)</script>"


def _csrf(client: TestClient, page: str = "/") -> str:
    html = client.get(page).text
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


def _manifest(store: SqlStore, entries: list[FileEntry]) -> tuple[str, int]:
    buf = io.BytesIO()
    with ManifestWriter(buf) as writer:
        writer.write_all(entries)
    blob = store.blobs.put_bytes(buf.getvalue())
    return blob.digest, writer.total_bytes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def seeded(store: SqlStore) -> dict[str, Any]:
    """Project alpha: two runs with a metric curve, an artifact, a model with two versions
    (production on 1), a dataset with two versions. Project beta: one run."""
    run = store.create_run("alpha", name=XSS, params={"lr": 0.1, "opt": "adam"})
    other = store.create_run("alpha", name="second", params={"lr": 0.2, "opt": "adam"})
    for base, r, scale in ((10, run, 1.0), (20, other, 2.0)):  # series ids are per store
        points = [(base + 1, i, 1000 + i, scale * i) for i in range(20)]
        store.write_metrics(r.id, [(base + 1, "val_auc")], points)
        store.write_metrics(r.id, [(base + 2, "energy/gpu_joules")], [(base + 2, 0, 1000, 42.0)])
    blob = store.blobs.put_bytes(b"weights!")
    from luminary.tracking.models import ArtifactEntry

    store.add_artifacts(run.id, [ArtifactEntry("model/w.bin", blob.digest, blob.size)])
    d1, b1 = _manifest(store, [FileEntry("a.root", 3, "0" * 64)])
    d2, b2 = _manifest(store, [FileEntry("a.root", 4, "1" * 64), FileEntry("b.root", 5, "2" * 64)])
    for digest, size in ((d1, b1), (d2, b2)):
        dv = store.create_dataset_version(
            "jets",
            project="alpha",
            mode="reference",
            root="/data",
            manifest_digest=digest,
            schema_digest=None,
            file_count=1,
            total_bytes=size,
            message="",
            actor="root",
        )
    store.add_run_inputs(run.id, [dv.id])
    for source in (run.id, None):
        store.create_model_version(
            "tagger",
            project="alpha",
            digest=blob.digest,
            size=blob.size,
            format="onnx",
            filename="m.onnx",
            signature={},
            metadata={},
            source_run_id=source,
            parent=None if source else "tagger@1",
            description="",
            actor="root",
        )
    store.set_alias("tagger", "production", 1, "root")
    beta = store.create_run("beta", name="beta-run")
    return {"run": run.id, "other": other.id, "beta": beta.id}


@pytest.fixture
def client(store: SqlStore, seeded: dict[str, Any], tmp_path: Path) -> TestClient:
    return TestClient(create_app(store, tmp_dir=tmp_path, auth=False), base_url="http://127.0.0.1")


def test_every_page_answers_with_its_content(client: TestClient, seeded: dict[str, Any]) -> None:
    run, other = seeded["run"], seeded["other"]
    expected = {
        "/": "alpha",
        "/projects/alpha": "second",
        "/projects/alpha?cols=params.lr,metrics.val_auc&sort=metrics.val_auc": "0.2",
        f"/runs/{run}": "model/w.bin",
        f"/compare?runs={run},{other}": '<tr class="differs"><td>lr</td>',
        "/models": "tagger",
        "/models/tagger": "production",
        "/models/tagger/versions/1/lineage": "<svg",
        "/datasets": "jets",
        "/datasets/jets?a=1&b=2": "1 added, 0 removed, 1 modified",
        "/resources": "memory",
        "/projects/alpha/energy": "kWh",
        "/ui/static/vendor/uPlot.iife.min.js": "uPlot",
        "/ui/static/vendor/htmx.min.js": "htmx",
    }
    for url, text in expected.items():
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.text[:500])
        assert text in answer.text, url


def test_runs_table_sorts_paginates_and_pages_work_without_js(
    client: TestClient, store: SqlStore
) -> None:
    for i in range(60):
        store.create_run("many", name=f"r{i:02d}", params={"i": i})
    first = client.get("/projects/many?sort=name&desc=false&cols=params.i").text
    assert first.index(">r00<") < first.index(">r01<")
    assert ">r50<" not in first
    assert 'rel="next"' in first
    second = client.get("/projects/many?sort=name&desc=false&page=2").text
    assert ">r50<" in second
    assert ">r59<" in second
    assert 'rel="prev"' in second


def test_artifact_downloads_and_chart_series(client: TestClient, seeded: dict[str, Any]) -> None:
    answer = client.get(f"/runs/{seeded['run']}/artifacts/model/w.bin")
    assert answer.status_code == 200
    assert answer.content == b"weights!"
    series = client.get(f"/runs/{seeded['run']}/series/val_auc?points=1000").json()
    assert series["values"] == [float(i) for i in range(20)]
    assert not series["downsampled"]
    assert client.get(f"/runs/{seeded['run']}/series/energy/gpu_joules").json()["values"] == [42.0]


def test_filter_syntax_error_shows_message_and_position(client: TestClient) -> None:
    answer = client.get("/projects/alpha", params={"filter": "metrics.val_auc >"})
    assert answer.status_code == 400
    assert 'id="error-position">17<' in answer.text
    assert "metrics.val_auc &gt;" in answer.text


def test_user_text_is_escaped(client: TestClient, seeded: dict[str, Any]) -> None:
    for url in ("/projects/alpha", f"/runs/{seeded['run']}", "/models/tagger/versions/1/lineage"):
        html = client.get(url).text
        assert XSS not in html, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, url


def test_post_without_csrf_token_is_refused(client: TestClient) -> None:
    _csrf(client, "/models/tagger")  # the browser has the cookie; the form will not repeat it
    answer = client.post("/models/tagger/aliases", data={"alias": "production", "version": "2"})
    assert answer.status_code == 403
    forged = client.post(
        "/models/tagger/aliases", data={"alias": "production", "version": "2", "csrf": "forged"}
    )
    assert forged.status_code == 403


def test_moving_an_alias_through_the_form_is_recorded(client: TestClient, store: SqlStore) -> None:
    token = _csrf(client, "/models/tagger")
    answer = client.post(
        "/models/tagger/aliases",
        data={"alias": "production", "version": "2", "csrf": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert store.get_model("tagger").aliases["production"] == 2
    history = client.get("/models/tagger").text.split('id="alias-history"')[1]
    me = re.escape(current_actor())  # with access control off: the server's own user
    assert re.search(rf"<td>production</td><td>1</td><td>2</td><td>{me}</td>", history)


def test_downsampling_keeps_extremes_and_says_so() -> None:
    steps = list(range(100_000))
    values = [float(i % 1000) for i in steps]
    values[54_321] = 1e9
    values[12_345] = -1e9
    out = downsample(steps, values, 500)
    assert out["downsampled"]
    assert out["total_points"] == 100_000
    assert len(out["steps"]) <= 500
    assert out["points"] == len(out["steps"])
    assert max(out["values"]) == 1e9
    assert min(out["values"]) == -1e9
    assert out["steps"][0] == 0
    assert out["steps"][-1] == 99_999
    assert out["steps"] == sorted(out["steps"])


@pytest.fixture
def team(store: SqlStore, seeded: dict[str, Any], tmp_path: Path) -> tuple[TestClient, str]:
    store.ensure_user("rita")
    store.grant("rita", "alpha", Role.READER)
    return TestClient(create_app(store, tmp_dir=tmp_path, auth=True)), store.create_token("rita")[1]


def _login(client: TestClient, token: str) -> None:
    csrf = _csrf(client, "/login")
    answer = client.post(
        "/login", data={"token": token, "csrf": csrf, "next": "/"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()


def test_team_mode_needs_a_login(team: tuple[TestClient, str]) -> None:
    client, _ = team
    answer = client.get("/projects/alpha", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/projects/alpha"
    csrf = _csrf(client, "/login")
    wrong = client.post("/login", data={"token": "nope", "csrf": csrf})
    assert wrong.status_code == 401


def test_a_reader_sees_only_their_projects(
    team: tuple[TestClient, str], seeded: dict[str, Any]
) -> None:
    client, token = team
    _login(client, token)
    home = client.get("/").text
    assert "alpha" in home
    assert "beta" not in home
    assert client.get("/projects/alpha").status_code == 200
    assert client.get("/projects/beta").status_code == 404
    assert client.get(f"/runs/{seeded['beta']}").status_code == 404
    assert client.get("/projects/beta/energy").status_code == 404
    assert 'id="move-alias"' not in client.get("/models/tagger").text
    csrf = _csrf(client, "/models/tagger")
    refused = client.post(
        "/models/tagger/aliases", data={"alias": "production", "version": "2", "csrf": csrf}
    )
    assert refused.status_code == 403
