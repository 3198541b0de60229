"""Faults in hyperparameter search: kill -9 of the driver, of a trial's worker (inline and
as a job), and of processes in the middle of writing trials. No completed trial is lost,
no trial number is given twice, and trials left running by a dead worker are failed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402
from luminary.store import SqlStore  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(textwrap.dedent(body))
    return path


def _spawn(script: Path, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LUMINARY_HOME": str(home), "LUMINARY_PROJECT": "faults"}
    return subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True)


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def _trials(home: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    try:
        st = lm.tune.storage("faults", store=store, heartbeat_s=1.0)
        try:
            return optuna.load_study(study_name=name, storage=st).get_trials(deepcopy=False)
        except KeyError:
            return []
    finally:
        store.close()


def _check_consistent(trials: list[optuna.trial.FrozenTrial]) -> None:
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(numbers))), numbers  # dense, never given twice
    for t in trials:
        if t.state.name == "COMPLETE":
            assert t.values is not None, t
            assert len(t.params) == 2, t


def test_kill_of_the_inline_worker_keeps_completed_trials_and_fails_the_running_one(
    tmp_path: Path, home: Path
) -> None:
    script = _script(
        tmp_path,
        """
        import time, optuna, luminary as lm
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        def objective(trial):
            x = trial.suggest_float("x", -1, 1)
            y = trial.suggest_int("y", 0, 3)
            for step in range(3):
                trial.report(x + step, step)
            if trial.number >= 5:
                time.sleep(600)  # the trial the kill finds running
            return x * x + y
        study = optuna.create_study(storage=lm.tune.storage(heartbeat_s=1), study_name="inl")
        study.optimize(objective, n_trials=100)
        """,
    )
    proc = _spawn(script, home)
    try:
        _wait_for(
            lambda: any(t.state.name == "RUNNING" and t.number == 5 for t in _trials(home, "inl")),
            what="trial 5 running",
        )
        time.sleep(1.5)  # its reports reach the store behind it (flush_s)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # A new process reading the study fails the orphan once its heartbeat is stale.
    _wait_for(
        lambda: [t.state.name for t in _trials(home, "inl")][5:] == ["FAIL"],
        timeout=30,
        what="the orphaned trial failed",
    )
    trials = _trials(home, "inl")
    _check_consistent(trials)
    assert [t.state.name for t in trials[:5]] == ["COMPLETE"] * 5
    assert trials[5].system_attrs["luminary:fail_reason"] == "heartbeat"
    x = trials[5].params["x"]  # its reports were written behind it before the kill
    assert trials[5].intermediate_values == {
        0: pytest.approx(x),
        1: pytest.approx(x + 1),
        2: pytest.approx(x + 2),
    }
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    try:
        run = store.get_run(store.get_trial(trials[5]._trial_id).run_id)
        assert run.status.value == "failed"
        assert run.tags["tune.state"] == "fail"
    finally:
        store.close()


def test_random_kills_while_writing_trials_lose_nothing_completed(
    tmp_path: Path, home: Path
) -> None:
    script = _script(
        tmp_path,
        """
        import optuna, luminary as lm
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        st = lm.tune.storage(heartbeat_s=1)
        study = optuna.create_study(storage=st, study_name="w", load_if_exists=True)
        for _ in range(10_000):
            t = study.ask()
            x = t.suggest_float("x", -1, 1)
            y = t.suggest_int("y", 0, 3)
            for s in range(3):
                t.report(x * s, s)
            study.tell(t, x * x + y)
            print(t.number, flush=True)
        """,
    )
    done: list[int] = []
    for kill in range(6):
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, "LUMINARY_HOME": str(home), "LUMINARY_PROJECT": "faults"},
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None
        for seen, line in enumerate(proc.stdout, start=1):
            done.append(int(line))  # kill at a different point of the write path each time
            if seen >= 20 + 7 * kill:
                break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    trials = _trials(home, "w")
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(numbers)))
    by_number = {t.number: t for t in trials}
    for n in done:  # every tell that returned is in the store, whole
        t = by_number[n]
        assert t.state.name == "COMPLETE"
        assert set(t.intermediate_values) == {0, 1, 2}
        assert t.values == [pytest.approx(t.params["x"] ** 2 + t.params["y"])]
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    try:
        for t in trials:
            run = store.get_run(store.get_trial(t._trial_id).run_id)
            assert run.tags["tune.trial"] == str(t.number)
            if t.state.name == "COMPLETE":
                assert run.status.value == "finished"
                assert run.metrics["value"] == pytest.approx(t.values[0])
                assert run.params["x"] == pytest.approx(t.params["x"])
    finally:
        store.close()


def test_kill_of_the_jobs_driver_and_of_a_trial_job_then_resume_completes_the_study(
    tmp_path: Path, home: Path
) -> None:
    marker = tmp_path / "kill-me"
    script = _script(
        tmp_path,
        f"""
        import os, time, optuna, luminary as lm
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        def objective(trial):
            x = trial.suggest_float("x", -1, 1)
            y = trial.suggest_int("y", 0, 3)
            if trial.number == 3:  # this trial's worker is killed by the test
                open({str(marker)!r}, "w").write(str(os.getpid()))
                time.sleep(600)
            time.sleep(0.3)
            return x * x + y
        lm.tune.optimize(objective, 10, study="jobs", parallel=2, progress=False)
        """,
    )
    driver = _spawn(script, home)
    try:
        _wait_for(lambda: marker.exists() and marker.read_text(), what="trial 3's worker")
        _wait_for(
            lambda: sum(t.state.name == "COMPLETE" for t in _trials(home, "jobs")) >= 3,
            what="three trials complete",
        )
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver dies; its jobs go on
        driver.wait()
    os.kill(int(marker.read_text()), signal.SIGKILL)  # and so does trial 3's worker
    store = SqlStore(f"sqlite:///{home / 'luminary.db'}", str(home / "blobs"))
    try:
        lm.set_store(store)
        study = lm.tune.resume("jobs", project="faults", progress=False)
    finally:
        lm.set_store(None)
    trials = study.get_trials(deepcopy=False)
    _check_consistent(trials)
    states = [t.state.name for t in trials]
    assert states[3] == "FAIL", states
    assert trials[3].system_attrs["luminary:fail_reason"] in ("its job ended", "heartbeat")
    # the plan asked for 10; the failed trial counts as one, as in Optuna's n_trials
    assert len(trials) == 10
    assert states.count("COMPLETE") == 9, states
    assert "RUNNING" not in states
    try:
        jobs = store.list_jobs("faults")
        runs = {store.get_trial(t._trial_id).run_id for t in trials}
        # each trial ran as a job whose run is the trial's run
        assert runs <= {j.run_id for j in jobs}
        assert all(j.state.done for j in jobs)
    finally:
        store.close()
