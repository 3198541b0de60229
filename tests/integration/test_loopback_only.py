"""DNS rebinding: a server without access control (``luminary ui``, ``luminary server
--no-auth``) answers only requests addressed to a loopback host name, and refuses writes from a
page of another origin. Raw HTTP against a real server, the way a rebinding page would come."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.store import SqlStore
from tests.integration.luminary_server import serve_in_thread

httpx = pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")


@pytest.fixture
def no_login(tmp_path: Path) -> Iterator[tuple[str, SqlStore]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    store.create_project("p")
    try:
        with serve_in_thread(store, tmp_path / "spool", auth=False) as url:
            yield url, store
    finally:
        store.close()


def test_a_foreign_host_name_is_refused_before_any_route(no_login: tuple[str, SqlStore]) -> None:
    url, store = no_login
    port = url.rsplit(":", 1)[1]
    for path in ("/api/v1/projects", "/", "/projects/p"):
        resp = httpx.get(f"{url}{path}", headers={"host": f"evil.example:{port}"})
        assert resp.status_code == 403, (path, resp.text)
        assert "evil.example" in resp.json()["message"]
        assert "127.0.0.1" in resp.json()["message"]  # says how to open it
    made = httpx.post(
        f"{url}/api/v1/projects", json={"name": "pwned"}, headers={"host": "rebind.example"}
    )
    assert made.status_code == 403
    assert [p.name for p in store.list_projects()] == ["p"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        ok = httpx.get(f"{url}/api/v1/projects", headers={"host": host})
        assert ok.status_code == 200, (host, ok.text)


def test_a_write_from_a_foreign_origin_is_refused(no_login: tuple[str, SqlStore]) -> None:
    url, store = no_login
    for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
        resp = httpx.post(f"{url}/api/v1/projects", json={"name": "x"}, headers={"origin": origin})
        assert resp.status_code == 403, (origin, resp.text)
    assert [p.name for p in store.list_projects()] == ["p"]
    read = httpx.get(f"{url}/api/v1/projects", headers={"origin": "http://evil.example"})
    assert read.status_code == 200  # the browser's same-origin policy keeps the answer from it
    same = httpx.post(f"{url}/api/v1/projects", json={"name": "a"}, headers={"origin": url})
    assert same.status_code == 201, same.text
    plain = httpx.post(f"{url}/api/v1/projects", json={"name": "b"})  # the SDK sends none
    assert plain.status_code == 201, plain.text


def test_team_mode_answers_any_host_name(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    store.ensure_user("root", is_admin=True)
    token = store.create_token("root")[1]
    try:
        with serve_in_thread(store, tmp_path / "spool", auth=True) as url:
            resp = httpx.get(
                f"{url}/api/v1/projects",
                headers={"host": "luminary.lab.example", "authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 200, resp.text
    finally:
        store.close()
