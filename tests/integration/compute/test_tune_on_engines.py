"""A hyperparameter study whose trials run as jobs on Ray and on Slurm: the same
``lm.tune.optimize`` call as on this machine, with a pool of the engine named."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402
from luminary.compute import Pool  # noqa: E402
from luminary.compute._agent import AgentLoop  # noqa: E402
from luminary.store import SqlStore  # noqa: E402
from luminary.testing.ray_cluster import RayCluster  # noqa: E402
from luminary.testing.slurm import SlurmCluster  # noqa: E402


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SqlStore]:
    monkeypatch.setenv("LUMINARY_JOB_HEARTBEAT_S", "1")
    monkeypatch.setenv("LUMINARY_ENERGY", "0")
    s = SqlStore(f"sqlite:///{tmp_path / 'luminary.db'}", str(tmp_path / "blobs"))
    lm.set_store(s)
    yield s
    lm.set_store(None)
    s.close()


def _study_on(store: SqlStore, pool: str) -> optuna.Study:
    loop = AgentLoop(store, pool)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()

    def objective(trial: Any) -> float:  # nested: travels by value to the engine's node
        import os

        x = trial.suggest_float("x", -2, 2)
        trial.set_user_attr("node_run", os.environ.get("LUMINARY_RUN_ID"))
        for step in range(2):
            trial.report(x * x + 1 / (step + 1), step)
        return x * x

    try:
        return lm.tune.optimize(
            objective,
            3,
            study=f"on-{pool}",
            project="cms-btag",
            parallel=2,
            gpus=0.5,
            pool=pool,
            time_limit=600,
            progress=False,
        )
    finally:
        loop.stop()
        thread.join(timeout=60)


def _check(store: SqlStore, study: optuna.Study, pool: str) -> None:
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    jobs = {j.run_id: j for j in store.list_jobs("cms-btag")}
    for t in trials:
        run_id = store.get_trial(t._trial_id).run_id
        assert t.user_attrs["node_run"] == run_id  # the trial ran in its job, on the engine
        job = jobs[run_id]
        assert job.pool == pool
        assert job.spec.resources.gpus == 0.5
        run = store.get_run(run_id)
        assert run.metrics["resources/gpu_hours"] > 0
        assert len(lm.get_metric_history(run_id, "intermediate_value")) == 2


def test_trials_run_as_jobs_on_ray(store: SqlStore, ray_cluster: RayCluster) -> None:
    store.put_pool(
        Pool(
            "ray", executor="ray", nodes=2, gpus=2, cpus=2, options={"address": ray_cluster.address}
        )
    )
    _check(store, _study_on(store, "ray"), "ray")


def test_trials_run_as_jobs_on_slurm(store: SqlStore, slurm_cluster: SlurmCluster) -> None:
    store.put_pool(slurm_cluster.pool("slurm"))
    _check(store, _study_on(store, "slurm"), "slurm")
