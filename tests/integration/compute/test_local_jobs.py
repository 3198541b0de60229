"""Jobs on the local executor: real commands in real processes, an agent serving the pool, the
queue in a real SQLite store. Heartbeats are short (0.5 s) so that lost attempts show fast."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.compute import JobState, Pool, Quota
from luminary.compute._agent import AgentLoop
from luminary.compute.jobs import JobFailedError, JobHandle, submit
from luminary.errors import InvalidArgumentError
from luminary.store import RunStatus, SqlStore

PY = sys.executable
WAIT = 60.0


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlStore]:
    monkeypatch.setenv("LUMINARY_JOB_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("LUMINARY_ENERGY", "0")
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    s.put_pool(Pool("local", gpus=2, cpus=4, memory_mb=8000))
    yield s
    s.close()


@pytest.fixture
def agent(store: SqlStore) -> Iterator[AgentLoop]:
    loop = AgentLoop(store, "local")
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    _wait_for(lambda: store.list_agents())  # serving before the first submit
    yield loop
    loop.stop()
    thread.join(timeout=30)


def _submit(store: SqlStore, command: list[str], **kw: object) -> JobHandle:
    kw.setdefault("project", "cms-btag")
    return submit(command, store=store, **kw)  # type: ignore[arg-type]


def _wait_for(predicate: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_a_command_runs_as_a_run_with_its_output_and_resources(
    store: SqlStore, agent: AgentLoop
) -> None:
    script = (
        "import os; print('gpu', os.environ['CUDA_VISIBLE_DEVICES'], os.environ['LUMINARY_RUN_ID'])"
    )
    job = _submit(store, [PY, "-c", script], gpus=0.5, params={"lr": 0.001})
    done = job.wait(WAIT)
    assert done.state is JobState.SUCCEEDED
    assert done.exit_code == 0
    text = "".join(job.logs())
    assert text == f"gpu 0 {job.run_id}\n"
    run = store.get_run(job.run_id)
    assert run.status is RunStatus.FINISHED
    assert run.params["lr"] == 0.001
    assert run.tags["job.gpus"] == "0.5"
    assert run.tags["job.state"] == "succeeded"
    assert run.metrics["resources/gpu_hours"] > 0
    assert "resources/cpu_hours" in run.metrics
    paths = {a.path for a in store.list_artifacts(job.run_id)}
    assert paths == {"logs/attempt-1/stdout.txt"}


def test_two_half_gpu_jobs_share_one_device_at_once(
    store: SqlStore, agent: AgentLoop, tmp_path: Path
) -> None:
    # each job announces itself, then waits for the other: both finish only if they overlap
    script = (
        "import os, sys, time, pathlib\n"
        "me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
        "me.write_text(os.environ['CUDA_VISIBLE_DEVICES'])\n"
        "deadline = time.time() + 30\n"
        "while not other.exists():\n"
        "    assert time.time() < deadline, 'the other job never ran alongside'\n"
        "    time.sleep(0.02)\n"
    )
    a, b = tmp_path / "a", tmp_path / "b"
    ja = _submit(store, [PY, "-c", script, str(a), str(b)], gpus=0.5)
    jb = _submit(store, [PY, "-c", script, str(b), str(a)], gpus=0.5)
    assert ja.wait(WAIT).state is JobState.SUCCEEDED
    assert jb.wait(WAIT).state is JobState.SUCCEEDED
    assert a.read_text() == b.read_text() == "0"
    assert ja.job.placement[0].devices == ((0, 0.5),)


def test_whole_gpu_jobs_get_distinct_devices(
    store: SqlStore, agent: AgentLoop, tmp_path: Path
) -> None:
    script = (
        "import os, sys, time, pathlib\n"
        "pathlib.Path(sys.argv[1]).write_text(os.environ['CUDA_VISIBLE_DEVICES'])\n"
        "time.sleep(1)\n"
    )
    jobs = [_submit(store, [PY, "-c", script, str(tmp_path / f"d{i}")], gpus=1) for i in range(2)]
    for job in jobs:
        assert job.wait(WAIT).state is JobState.SUCCEEDED
    assert sorted((tmp_path / f"d{i}").read_text() for i in range(2)) == ["0", "1"]


def test_a_failing_command_is_retried_then_failed_with_its_exit_code(
    store: SqlStore, agent: AgentLoop
) -> None:
    job = _submit(store, [PY, "-c", "print('try'); raise SystemExit(3)"], retries=1)
    done = job.wait(WAIT)
    assert done.state is JobState.FAILED
    assert done.exit_code == 3
    assert done.attempt == 2
    assert "exited with 3" in done.reason
    assert store.get_run(job.run_id).status is RunStatus.FAILED
    paths = {a.path for a in store.list_artifacts(job.run_id)}
    assert {"logs/attempt-1/stdout.txt", "logs/attempt-2/stdout.txt"} <= paths


def test_the_time_limit_stops_a_job_with_the_reason(store: SqlStore, agent: AgentLoop) -> None:
    job = _submit(store, [PY, "-c", "import time; time.sleep(60)"], time_limit=1, grace=0.5)
    done = job.wait(WAIT)
    assert done.state is JobState.FAILED
    assert "time limit of 1 s exceeded" in done.reason


def test_cancel_runs_the_checkpoint_hook_and_ends_cancelled(
    store: SqlStore, agent: AgentLoop, tmp_path: Path
) -> None:
    marker = tmp_path / "checkpoint"
    script = (
        "import sys, time, pathlib\n"
        "import luminary as lm\n"
        f"lm.jobs.on_preempt(lambda: pathlib.Path({str(marker)!r}).write_text('saved'))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    job = _submit(store, [PY, "-c", script], grace=10)
    _wait_for(lambda: "ready" in "".join(job.logs()))
    job.cancel("enough")
    done = job.wait(WAIT)
    assert done.state is JobState.CANCELLED
    assert done.reason == "enough"
    assert marker.read_text() == "saved"
    assert store.get_run(job.run_id).status is RunStatus.KILLED


def test_a_python_call_returns_its_value_and_raises_its_error(
    store: SqlStore, agent: AgentLoop
) -> None:
    ok = submit(lambda x, y: {"sum": x + y}, 2, y=3, project="cms-btag", store=store)
    assert ok.result(WAIT) == {"sum": 5}

    def boom() -> None:
        raise ValueError("bad luminosity block")

    bad = submit(boom, project="cms-btag", store=store)
    with pytest.raises(JobFailedError, match="ValueError: bad luminosity block"):
        bad.result(WAIT)
    assert bad.job.state is JobState.FAILED


def test_a_killed_job_process_is_failed_with_the_signal(store: SqlStore, agent: AgentLoop) -> None:
    job = _submit(
        store, [PY, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
    )
    _wait_for(lambda: "".join(job.logs()).strip().isdigit())
    os.kill(int("".join(job.logs())), signal.SIGKILL)
    done = job.wait(WAIT)
    assert done.state is JobState.FAILED
    assert done.reason == "killed by SIGKILL"
    assert done.exit_code == -9


def test_a_gang_runs_every_rank_with_the_rendezvous(store: SqlStore, tmp_path: Path) -> None:
    store.put_pool(Pool("local", nodes=2, gpus=2, cpus=4, memory_mb=8000))  # two logical nodes
    loop = AgentLoop(store, "local")
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    _wait_for(lambda: store.list_agents())
    try:
        script = (
            "import os, sys, pathlib\n"
            "e = os.environ\n"
            "where = f\"{e['MASTER_ADDR']}:{e['MASTER_PORT']}\"\n"
            "pathlib.Path(sys.argv[1], e['RANK']).write_text("
            "f\"{e['WORLD_SIZE']} {where} {e['CUDA_VISIBLE_DEVICES']}\")\n"
        )
        job = _submit(store, [PY, "-c", script, str(tmp_path)], gpus=2, nodes=2)
        assert job.wait(WAIT).state is JobState.SUCCEEDED
    finally:
        loop.stop()
        thread.join(timeout=30)
    seen = {p.name: p.read_text() for p in tmp_path.iterdir() if p.name in ("0", "1")}
    assert set(seen) == {"0", "1"}
    assert seen["0"] == seen["1"]
    assert seen["0"].startswith("2 127.0.0.1:")
    assert seen["0"].endswith(" 0,1")
    paths = {a.path for a in store.list_artifacts(job.run_id)}
    assert "logs/attempt-1/rank-1/stdout.txt" not in paths  # no output, no artifact
    assert [p.node for p in job.refresh().placement] == ["local-0", "local-1"]


def test_a_request_no_pool_can_run_is_refused_with_the_numbers(store: SqlStore) -> None:
    with pytest.raises(InvalidArgumentError, match=r"8 GPUs per node asked.*'local' has 2"):
        _submit(store, ["true"], gpus=8)
    with pytest.raises(InvalidArgumentError, match="nodes"):
        _submit(store, ["true"], nodes=3)


def test_a_lender_reclaims_its_quota_by_preempting_a_borrower(
    store: SqlStore, agent: AgentLoop, tmp_path: Path
) -> None:
    store.set_quota(Quota("atlas", gpus=1, cohort="lhc"))
    store.set_quota(Quota("cms-btag", gpus=1, cohort="lhc"))
    marker = tmp_path / "preempted"
    borrower_script = (
        "import os, sys, time, pathlib\n"
        "import luminary as lm\n"
        "if os.environ['LUMINARY_JOB_ATTEMPT'] == '1':\n"
        f"    lm.jobs.on_preempt(lambda: pathlib.Path({str(marker)!r}).write_text('checkpoint'))\n"
        "    print('holding', flush=True)\n"
        "    time.sleep(60)\n"
        "print('resumed')\n"
    )
    # cms-btag takes both GPUs: one of its own quota, one borrowed from atlas
    own = _submit(store, [PY, "-c", "import time; time.sleep(2)"], gpus=1)
    borrowed = _submit(store, [PY, "-c", borrower_script], gpus=1, preemptible=True)
    _wait_for(lambda: "holding" in "".join(borrowed.logs()))
    lender = _submit(store, [PY, "-c", "print('atlas runs')"], project="atlas", gpus=1)
    assert lender.wait(WAIT).state is JobState.SUCCEEDED
    done = borrowed.wait(WAIT)
    assert done.state is JobState.SUCCEEDED
    assert done.attempt == 2
    assert marker.read_text() == "checkpoint"
    assert own.wait(WAIT).state is JobState.SUCCEEDED
