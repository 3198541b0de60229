"""The queue page in a real browser, in team mode: a pool, two projects with quotas in one
cohort, jobs driven by hand through the store's agent and runner calls (as
:mod:`luminary.compute._agent` and :mod:`luminary.compute._supervise` drive them), and a day of
usage history. An admin sees every job; a reader of one project sees only its jobs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from luminary._clock import now_ms
from luminary._ids import new_id
from luminary.auth import Role
from luminary.compute import Agent, JobSpec, JobState, LogChunk, Pool, Quota, Resources, TaskReport
from luminary.storage import schema
from luminary.store import SqlStore
from luminary.tracking.models import ArtifactEntry
from tests.integration.luminary_server import serve_in_thread
from tests.integration.ui.test_browser import _coloured_pixels

CMS, ATLAS = "cms-btag", "atlas-hh"
HOUR_MS = 3_600_000


@dataclass
class Queue:
    url: str
    store: SqlStore
    tokens: dict[str, str]
    jobs: dict[str, str] = field(default_factory=dict)  # name -> job id


def _spec(project: str, name: str, gpus: float) -> JobSpec:
    return JobSpec(project, command=("python", "train.py"), name=name, resources=Resources(gpus))


def _seed_history(store: SqlStore, start_ms: int) -> None:
    """A day of samples, one every 10 minutes, as the scheduler writes them once a minute
    (nothing drives a day of scheduler passes in a test): cms-btag held 2 GPUs in the morning,
    atlas-hh 2 GPUs in the afternoon."""
    ids = {p: store.get_project(p).id for p in (CMS, ATLAS)}
    rows = []
    for i in range(144):
        at = start_ms + i * 600_000
        for project, busy, share in ((CMS, i < 72, 2 / 3), (ATLAS, i >= 72, 1 / 3)):
            rows.append(
                {
                    "at_ms": at,
                    "project_id": ids[project],
                    "gpus": 2.0 if busy else 0.0,
                    "cpus": 2.0 if busy else 0.0,
                    "share": share,
                    "usage": i / 10,
                    "queued": 0,
                }
            )
    with store.engine.begin() as conn:
        conn.execute(schema.compute_samples.insert(), rows)


def seed(store: SqlStore) -> dict[str, str]:
    """Pool ``gpu`` (4 GPUs); cms-btag (quota 2 GPUs, weight 2) and atlas-hh (quota 2, weight
    1) in cohort ``lhc``. ``train-a`` (cms) ran and succeeded with output, ``train-b`` (atlas)
    runs, ``train-c`` (cms, all 4 GPUs) waits."""
    store.put_pool(Pool("gpu", gpus=4, cpus=16, memory_mb=64000))
    store.set_quota(Quota(CMS, gpus=2, cpus=8, weight=2, cohort="lhc"))
    store.set_quota(Quota(ATLAS, gpus=2, cpus=8, weight=1, cohort="lhc"))
    _seed_history(store, now_ms() - 24 * HOUR_MS)
    a = store.submit_job(_spec(CMS, "train-a", 2), user="hana")
    b = store.submit_job(_spec(ATLAS, "train-b", 2), user="arno")
    now = now_ms()
    agent = Agent(new_id(), "gpu", "test-host", os.getpid(), now, now)
    claimed = store.claim_jobs("gpu", agent)
    assert {j.id for j in claimed} == {a.id, b.id}
    for job in claimed:
        store.job_launched(job.id, job.attempt, f"local:{job.id}")
        store.task_started(job.id, job.attempt, 0, "node-0")
    out = b"epoch 1 loss 0.52\nepoch 2 loss 0.31\n"
    store.append_job_logs(a.id, [LogChunk(1, 0, "stdout", 0, now_ms(), out)])
    store.append_job_logs(b.id, [LogChunk(1, 0, "stdout", 0, now_ms(), b"step 100 <b>\n")])
    blob = store.blobs.put_bytes(out)
    store.add_artifacts(
        a.run_id, [ArtifactEntry("logs/attempt-1/stdout.txt", blob.digest, blob.size)]
    )
    assert store.task_finished(a.id, 1, 0, TaskReport(0)).state is JobState.SUCCEEDED
    c = store.submit_job(_spec(CMS, "train-c", 4), user="hana")
    store.schedule()
    assert store.get_job(c.id).state is JobState.QUEUED
    return {"train-a": a.id, "train-b": b.id, "train-c": c.id}


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queue]:
    """Team mode: root is a server admin, hana a reader in cms-btag only."""
    tmp = tmp_path_factory.mktemp("queue")
    store = SqlStore(f"sqlite:///{tmp / 'luminary.db'}", str(tmp / "blobs"))
    try:
        store.ensure_user("root", is_admin=True)
        jobs = seed(store)
        store.ensure_user("hana")
        store.grant("hana", CMS, Role.READER)
        tokens = {u: store.create_token(u)[1] for u in ("root", "hana")}
        with serve_in_thread(store, tmp / "spool", auth=True) as url:
            yield Queue(url, store, tokens, jobs)
    finally:
        store.close()


def _login(page: Any, q: Queue, user: str, next_path: str) -> None:
    page.goto(f"{q.url}{next_path}")
    page.wait_for_url(re.compile(r"/login"))
    page.locator("input[name=token]").fill(q.tokens[user])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(next_path) + "$"))


def _cells(page: Any, selector: str) -> list[list[str]]:
    rows = page.locator(selector)
    return [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]


def test_the_queue_page_shows_pools_shares_usage_and_jobs(queue: Queue, page: Any) -> None:
    _login(page, queue, "root", "/queue")
    pools = _cells(page, "#pools tbody tr")
    assert [row[:4] for row in pools] == [["gpu", "local", "1", "4"]]
    shares = {row[0]: row for row in _cells(page, "#shares tbody tr")}
    assert set(shares) == {CMS, ATLAS}
    # project, weight, share, usage, GPUs, CPUs, quota GPUs, quota CPUs, borrowed GPUs, …
    assert shares[CMS][1:3] == ["2", "67%"]
    assert shares[ATLAS][1:3] == ["1", "33%"]
    assert shares[ATLAS][4] == "2"  # train-b holds 2 GPUs
    assert shares[CMS][4] == "0"
    assert shares[CMS][6] == "2"
    assert shares[CMS][10] == "1"  # train-c waits
    assert shares[CMS][11] == "lhc"
    # the plot: both projects' use (solid) and share (dashed), drawn
    plot = page.locator("#usage-plot")
    page.wait_for_function("() => document.querySelector('#usage-plot canvas') !== null")
    assert plot.get_attribute("data-series") == "4"
    assert int(plot.get_attribute("data-points") or 0) >= 144
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")
    assert _coloured_pixels(page) > 200
    legend = plot.inner_text()
    assert f"{CMS} GPUs" in legend
    assert f"{ATLAS} share" in legend
    # the jobs, newest first, with their states
    jobs = _cells(page, "#jobs tbody tr")
    ids = [queue.jobs[n] for n in ("train-c", "train-b", "train-a")]
    assert [row[0] for row in jobs] == ids
    assert [row[1] for row in jobs] == ["queued", "running", "succeeded"]
    state = page.locator(f"tr[data-job='{queue.jobs['train-a']}'] .state")
    assert "state-succeeded" in (state.get_attribute("class") or "")
    # a job's name leads to its run
    run_id = queue.store.get_job(queue.jobs["train-c"]).run_id
    link = page.locator(f"tr[data-job='{queue.jobs['train-c']}']").get_by_role(
        "link", name="train-c"
    )
    assert link.get_attribute("href") == f"/runs/{run_id}"


def test_a_waiting_job_says_why(queue: Queue, page: Any) -> None:
    _login(page, queue, "root", "/queue")
    page.get_by_role("link", name=queue.jobs["train-c"]).click()
    page.wait_for_url(re.compile(rf"/queue/jobs/{queue.jobs['train-c']}$"))
    why = page.locator("#why").inner_text()
    assert "no node of pool 'gpu' has 4 GPUs free" in why, why
    assert f"project {CMS} has weight 2 of 3" in why
    assert "Not placed yet" in page.locator("body").inner_text()


def test_a_job_page_shows_placement_and_output_and_its_run_links_back(
    queue: Queue, page: Any
) -> None:
    b = queue.jobs["train-b"]
    _login(page, queue, "root", f"/queue/jobs/{b}")
    rank, node, devices = _cells(page, "#placement tbody tr")[0][:3]
    assert (rank, node) == ("0", "gpu-0")  # the pool names its nodes
    assert re.fullmatch(r"\d \(1\), \d \(1\)", devices), devices  # two whole GPUs
    assert page.locator("#job-log pre").inner_text() == "step 100 <b>\n"
    assert page.locator("#job-log").get_attribute("hx-get") == f"/queue/jobs/{b}/log"
    a = queue.store.get_job(queue.jobs["train-a"])
    page.goto(f"{queue.url}/runs/{a.run_id}")
    job = page.locator("#run-job")
    assert "succeeded" in job.inner_text()
    assert job.get_by_role("link", name=a.id).get_attribute("href") == f"/queue/jobs/{a.id}"
    logs = page.locator("#run-logs a")
    assert logs.get_attribute("href") == f"/runs/{a.run_id}/artifacts/logs/attempt-1/stdout.txt"
    job.get_by_role("link", name="its output").click()
    page.wait_for_url(re.compile(rf"/queue/jobs/{a.id}"))
    assert "epoch 2 loss 0.31" in page.locator("#job-log").inner_text()


def test_filter_jobs_by_project_and_state(queue: Queue, page: Any) -> None:
    _login(page, queue, "root", "/queue")
    form = page.locator("#job-filter")
    form.locator("select[name=project]").select_option(CMS)
    form.locator("select[name=state]").select_option("queued")
    form.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"state=queued"))
    assert [row[0] for row in _cells(page, "#jobs tbody tr")] == [queue.jobs["train-c"]]


def test_a_reader_sees_only_the_jobs_of_their_projects(queue: Queue, page: Any) -> None:
    _login(page, queue, "hana", "/queue")
    jobs = _cells(page, "#jobs tbody tr")
    assert [row[0] for row in jobs] == [queue.jobs["train-c"], queue.jobs["train-a"]]
    assert {row[2] for row in jobs} == {CMS}
    assert queue.jobs["train-b"] not in page.locator("#jobs").inner_text()
    # the shares and pools are everyone's: atlas-hh's row is there, the agents' hosts are not
    assert {row[0] for row in _cells(page, "#shares tbody tr")} == {CMS, ATLAS}
    assert "test-host" not in page.locator("body").inner_text()
    hidden = page.goto(f"{queue.url}/queue/jobs/{queue.jobs['train-b']}")
    assert hidden is not None
    assert hidden.status == 404
    assert "train-b" not in page.locator("body").inner_text()
    other = page.goto(f"{queue.url}/queue?project={ATLAS}")
    assert other is not None
    assert other.status == 404
