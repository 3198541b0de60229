"""Real processes against one embedded home: concurrent writers, SIGKILL, exit hooks, and the
first-open migration race. Each child is a fresh interpreter running a small script."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

import luminary as lm
from luminary.storage.engine import HEAD_REVISION, current_revision
from luminary.storage.schema import metadata
from luminary.store import RunStatus, SqlStore, set_store
from tests._records import own

CHILD_TIMEOUT_S = 60

# A child waits for the parent's "go" file once it has imported everything and printed "ready",
# so the interesting part of every child starts at the same moment.
_WAIT_FOR_GO = """
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
"""


class Children:
    """Child processes started by a test; any left running are killed at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.procs: list[subprocess.Popen[str]] = []

    def script(self, name: str, body: str) -> Path:
        path = self.tmp / f"{name}.py"
        path.write_text(textwrap.dedent(body))
        return path

    def start(self, script: Path, *args: object) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(script), *(str(a) for a in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def start_together(self, script: Path, n: int, *args: object) -> list[tuple[int, str, str]]:
        """Start ``n`` copies (argv: go-file, index, *args), release them at once, and return
        each one's (exit code, stdout, stderr)."""
        go = self.tmp / f"go-{script.stem}"
        procs = [self.start(script, go, i, *args) for i in range(n)]
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
                pytest.fail(f"a child did not start: {line}{out}\n{err}")
        go.touch()
        self.released = time.monotonic()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
            results.append((proc.returncode, out, err))
        return results

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=CHILD_TIMEOUT_S)  # reaps it and closes its pipes


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    kids = Children(tmp_path)
    yield kids
    kids.kill_all()


def _integrity_ok(db: Path) -> None:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        con.close()


# -- many writers -------------------------------------------------------------------------
WRITERS = 8
STEPS = 10_000  # two metrics each: 20,000 points per process

_WRITER = (
    _WAIT_FOR_GO
    + """
import luminary as lm

idx, steps = int(sys.argv[2]), int(sys.argv[3])
with lm.start_run(
    project="stress", name=f"worker-{idx}", params={"worker": idx}, tags={"kind": "stress"}
) as run:
    for i in range(steps):
        run.log({"loss": idx * 1e6 + i, "acc": -float(i)})
        if i % 2500 == 2499:
            run.flush()
        if i == steps // 2:
            run.log_params({"half": i})
            run.set_tags({"phase": "second"})
print(run.id, flush=True)
"""
)


@pytest.mark.slow
def test_eight_processes_write_to_one_home_without_locking_errors(
    children: Children, home: Path
) -> None:
    lm.get_store()  # the home exists; the first-open race has its own test
    script = children.script("writer", _WRITER)
    results = children.start_together(script, WRITERS, STEPS)
    for code, out, err in results:
        assert code == 0, err
        assert err == ""  # no "database is locked", no retried write, no traceback
        assert len(out.split()) == 1
    runs = {r.name: r for r in lm.search_runs("stress", limit=None)}
    assert sorted(runs) == sorted(f"worker-{i}" for i in range(WRITERS))
    for idx in range(WRITERS):
        run = runs[f"worker-{idx}"]
        assert run.status is RunStatus.FINISHED
        assert run.params == {"worker": idx, "half": STEPS // 2}
        assert own(run.tags) == {"kind": "stress", "phase": "second"}
        loss = lm.get_metric_history(run.id, "loss")
        assert loss.steps == list(range(STEPS))
        assert loss.values == [idx * 1e6 + i for i in range(STEPS)]
        acc = lm.get_metric_history(run.id, "acc")
        assert acc.values == [-float(i) for i in range(STEPS)]
    _integrity_ok(home / "luminary.db")


# -- SIGKILL ------------------------------------------------------------------------------
FLUSHED = 5_000
STALE_AFTER_S = 60

_VICTIM = """
import sys, time
import luminary as lm

n = int(sys.argv[1])
run = lm.start_run(project="crash", name="victim")
for i in range(n):
    run.log({"loss": i / n}, step=i)
run.flush()
print("flushed", run.id, flush=True)
i = n
while True:  # points the parent never waits for; the writer thread flushes some of them
    run.log({"loss": i / n}, step=i)
    i += 1
    if i % 50 == 0:
        time.sleep(0.001)
"""


def test_sigkill_leaves_a_sound_store_and_a_killed_run(
    children: Children, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The victim beats every 0.2 s; this test's observer judges staleness after 60 s, and
    # once the victim is dead drives the clock past that instead of waiting on it, so a
    # loaded machine that delays a heartbeat cannot make a living run look killed.
    monkeypatch.setenv("LUMINARY_HEARTBEAT", "0.2")
    set_store(None)
    observer = SqlStore(
        f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"), stale_after_s=STALE_AFTER_S
    )
    victim = children.start(children.script("victim", _VICTIM), FLUSHED)
    assert victim.stdout is not None
    line = victim.stdout.readline().split()
    assert line[:1] == ["flushed"], victim.communicate(timeout=CHILD_TIMEOUT_S)
    run_id = line[1]
    try:
        first = observer.get_run(run_id).heartbeat_at
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        while (alive := observer.get_run(run_id)).heartbeat_at == first:  # it beats while alive
            assert time.monotonic() < deadline, "the victim's heartbeat never advanced"
            time.sleep(0.05)
        assert alive.status is RunStatus.RUNNING
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=CHILD_TIMEOUT_S)
        assert victim.returncode == -signal.SIGKILL

        _integrity_ok(home / "luminary.db")

        last = observer.get_run(run_id)
        assert last.status is RunStatus.RUNNING  # nobody has judged it yet
        assert last.heartbeat_at is not None
        last_beat_ms = round(last.heartbeat_at.timestamp() * 1000)
        # One tick before the staleness limit it is still running; one after, killed.
        assert observer.reap_stale_runs(now_ms=last_beat_ms + STALE_AFTER_S * 1000) == 0
        assert observer.get_run(run_id).status is RunStatus.RUNNING
        assert observer.reap_stale_runs(now_ms=last_beat_ms + STALE_AFTER_S * 1000 + 1) == 1
    finally:
        observer.close()
    set_store(None)
    run = lm.get_run(run_id)
    assert run.status is RunStatus.KILLED
    assert run.end_time == last.heartbeat_at  # it ended when it last showed life
    assert run.end_time >= run.start_time

    hist = lm.get_metric_history(run_id, "loss")
    assert len(hist) >= FLUSHED
    assert hist.steps == list(range(len(hist)))  # whole batches only: no holes, no repeats
    assert hist.values[:FLUSHED] == [i / FLUSHED for i in range(FLUSHED)]

    with lm.start_run(project="crash", capture_env=False) as after:  # still writable
        after.log({"loss": 1.0})
    assert lm.get_run(after.id).status is RunStatus.FINISHED
    assert lm.get_run(run_id).status is RunStatus.KILLED  # nothing revived it


# -- exit without a `with` block ----------------------------------------------------------
# An uncaught KeyboardInterrupt ends the process by SIGINT, or with code 1 where SIGINT was
# ignored when the interpreter started (e.g. under a shell's background job).
_EXITS = {
    "raises": ('raise RuntimeError("boom")', {1}, RunStatus.FAILED, "RuntimeError: boom"),
    "returns": ("pass", {0}, RunStatus.FINISHED, ""),
    "interrupted": (
        "raise KeyboardInterrupt",
        {-signal.SIGINT, 1},
        RunStatus.KILLED,
        "KeyboardInterrupt",
    ),
}


@pytest.mark.parametrize("how", sorted(_EXITS))
def test_open_run_is_ended_at_exit(children: Children, how: str) -> None:
    ending, codes, status, err_tail = _EXITS[how]
    script = children.script(
        "exiter",
        f"""
        import luminary as lm

        run = lm.start_run(project="exits")
        print(run.id, flush=True)
        run.log({{"x": 1.0}})  # not flushed: the exit hook writes it
        {ending}
        """,
    )
    proc = children.start(script)
    out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode in codes, err
    assert err.strip().endswith(err_tail)
    run = lm.get_run(out.strip())
    assert run.status is status
    assert run.end_time is not None
    assert own(run.metrics) == {"x": 1.0}
    assert lm.active_run() is None


# -- first open of a brand-new home -------------------------------------------------------
_OPENER = """
import sqlalchemy, alembic.command  # imported before the race, so the race is the open
import luminary as lm
import luminary.store._sql
""" + (
    _WAIT_FOR_GO
    + """
with lm.start_run(project="race", name=f"opener-{sys.argv[2]}", capture_env=False) as run:
    run.log({"x": 1.0})
"""
)


def test_concurrent_first_open_migrates_once(
    children: Children, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "brand" / "new" / "home"
    monkeypatch.setenv("LUMINARY_HOME", str(home))
    set_store(None)
    script = children.script("opener", _OPENER)
    for code, _out, err in children.start_together(script, WRITERS):
        assert code == 0, err
        assert err == ""
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    try:
        assert current_revision(store.engine) == HEAD_REVISION
        with store.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            tables = set(sa.inspect(conn).get_table_names())
        assert versions == [(HEAD_REVISION,)]
        assert tables == set(metadata.tables) | {"alembic_version"}
        runs = store.search_runs("race", limit=None)
        assert sorted(r.name for r in runs) == sorted(f"opener-{i}" for i in range(WRITERS))
        assert {r.status for r in runs} == {RunStatus.FINISHED}
        assert all(own(r.metrics) == {"x": 1.0} for r in runs)
    finally:
        store.close()
    _integrity_ok(home / "luminary.db")
    assert os.path.isdir(home / "blobs")
