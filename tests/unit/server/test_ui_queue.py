"""The queue pages in-process (no browser): every part answers with the seeded queue, bad filters
are 400, a job of a project the reader has no role in is 404; the usage plot's data keeps peaks
when it groups samples, and a job's log tail keeps the end."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra (luminary[server]) is not installed")
pytest.importorskip("jinja2", reason="the server extra (luminary[server]) is not installed")

with warnings.catch_warnings():  # starlette warns that it prefers httpx2 to httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from luminary.auth import Role
from luminary.compute import JobSpec, LogChunk, Pool, Quota, Resources, UsageSample
from luminary.server import create_app
from luminary.server.ui._queue import log_tail, usage_plot
from luminary.store import SqlStore
from tests.unit.server.test_ui import _login

XSS = "<script>alert(1)</script>"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    s.put_pool(Pool("gpu", gpus=2, cpus=8))
    s.set_quota(Quota("alpha", gpus=1, weight=2))
    s.set_quota(Quota("beta", gpus=1, weight=1))
    try:
        yield s
    finally:
        s.close()


def _submit(store: SqlStore, project: str, name: str) -> str:
    spec = JobSpec(project, command=("echo", XSS), name=name, resources=Resources(gpus=1))
    return store.submit_job(spec, user="rita").id


def test_the_queue_page_and_a_job_page_answer(store: SqlStore, tmp_path: Path) -> None:
    job = _submit(store, "alpha", XSS)
    store.append_job_logs(job, [LogChunk(1, 0, "stdout", 0, 1, XSS.encode())])
    client = TestClient(
        create_app(store, tmp_dir=tmp_path, auth=False), base_url="http://127.0.0.1"
    )
    page = client.get("/queue")
    assert page.status_code == 200
    assert 'id="pools"' in page.text
    assert 'data-project="alpha"' in page.text
    assert 'data-project="beta"' in page.text
    assert f'data-job="{job}"' in page.text
    assert XSS not in page.text  # the name is escaped
    assert "No usage recorded" in page.text  # no scheduler pass ran yet
    assert client.get("/queue?state=queued").text.count("data-job=") == 1
    assert client.get("/queue?state=running").text.count("data-job=") == 0
    assert client.get("/queue?state=stuck").status_code == 400
    detail = client.get(f"/queue/jobs/{job}")
    assert detail.status_code == 200
    assert 'id="why"' in detail.text
    assert "&lt;script&gt;" in detail.text  # the log, escaped
    assert XSS not in detail.text
    assert client.get(f"/queue/jobs/{job}/log").text.count("&lt;script&gt;") == 1
    assert client.get("/queue/jobs/nope").status_code == 404
    run = store.get_job(job).run_id
    assert f'href="/queue/jobs/{job}"' in client.get(f"/runs/{run}").text
    assert 'href="/queue"' in client.get("/resources").text


def test_a_reader_sees_jobs_of_their_projects_only(store: SqlStore, tmp_path: Path) -> None:
    mine, theirs = _submit(store, "alpha", "mine"), _submit(store, "beta", "theirs")
    store.ensure_user("rita")
    store.grant("rita", "alpha", Role.READER)
    client = TestClient(create_app(store, tmp_dir=tmp_path, auth=True))
    assert client.get("/queue", follow_redirects=False).status_code == 303
    _login(client, store.create_token("rita")[1])
    page = client.get("/queue").text
    assert f'data-job="{mine}"' in page
    assert theirs not in page
    assert 'data-project="beta"' in page  # shares are everyone's
    assert client.get(f"/queue/jobs/{theirs}").status_code == 404
    assert client.get(f"/queue/jobs/{theirs}/log").status_code == 404
    assert client.get("/queue?project=beta").status_code == 404
    assert client.get(f"/queue/jobs/{mine}").status_code == 200


def _sample(at_ms: int, project: str, gpus: float, share: float = 0.5) -> UsageSample:
    return UsageSample(at_ms, project, gpus, gpus, share, 0.0, 0)


def test_usage_plot_groups_samples_and_keeps_peaks() -> None:
    samples = [_sample(i * 60_000, "alpha", 3.0 if i == 17 else 1.0) for i in range(100)]
    samples += [_sample(i * 60_000, "beta", 0.0, 0.25) for i in range(0, 100, 2)]
    plot = usage_plot(samples, "GPUs", 8.0, 10)
    assert len(plot["x"]) == 10
    alpha, beta = plot["projects"]
    assert (alpha["name"], beta["name"]) == ("alpha", "beta")
    assert max(alpha["used"]) == 3.0  # the one-minute peak survives the grouping
    assert alpha["used"].count(3.0) == 1
    assert set(alpha["share"]) == {4.0}  # half of 8 GPUs
    assert set(beta["share"]) == {2.0}
    assert plot["samples"] == 150
    whole = usage_plot(samples, "GPUs", 8.0, 1000)
    assert len(whole["x"]) == 100
    assert whole["projects"][1]["used"][1] is None  # beta has no sample at minute 1
    assert whole["x"][1] == 60.0  # seconds, as uPlot's time axis reads them


def test_log_tail_keeps_the_end(store: SqlStore) -> None:
    job = _submit(store, "alpha", "chatty")
    chunks = [LogChunk(1, 0, "stdout", i, i, f"line {i}\n".encode()) for i in range(2500)]
    store.append_job_logs(job, chunks)
    text, cut = log_tail(store, job, 100)
    assert cut
    assert text.endswith("line 2499\n")
    assert len(text) == 100
    whole, cut = log_tail(store, job, 1 << 20)
    assert not cut
    assert whole.startswith("line 0\n")
    assert whole.count("\n") == 2500
