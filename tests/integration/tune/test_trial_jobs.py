"""Trials as jobs on the local pool: GPU fractions, pruned trials giving their slot to the next
trial at once, and the best trial's model registered with the study in its lineage."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402
from luminary.compute import Pool  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _gpu_pool() -> None:
    # one logical GPU: the local executor hands out fractions of it (CUDA_VISIBLE_DEVICES)
    lm.get_store().put_pool(Pool("local", gpus=1, cpus=4, memory_mb=8000))


def _fractional(trial: Any) -> float:
    x = trial.suggest_float("x", -1, 1)
    trial.set_user_attr("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_user_attr("window", [time.time(), time.time() + 1.5])
    time.sleep(1.5)
    return x * x


def test_trials_share_one_gpu_in_quarters() -> None:
    _gpu_pool()
    study = lm.tune.optimize(
        _fractional, 6, study="quarters", parallel=4, gpus=0.25, cpus=0.5, progress=False
    )
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert {t.user_attrs["cuda_visible_devices"] for t in trials} == {"0"}
    store = lm.get_store()
    jobs = {j.run_id: j for j in store.list_jobs("default")}
    for t in trials:
        job = jobs[store.get_trial(t._trial_id).run_id]  # the trial's run is its job's run
        assert job.spec.resources.gpus == 0.25
        assert job.spec.parent_run == store.get_study("default", "quarters").run_id
    windows = sorted(t.user_attrs["window"] for t in trials)
    overlaps = sum(1 for a, b in itertools.pairwise(windows) if b[0] < a[1])
    assert overlaps >= 1  # fractions let trials run side by side on the one GPU
    plan = study._storage.get_study_system_attrs(study._study_id)["luminary:plan"]
    assert plan["parallel"] == 4
    assert plan["resources"]["gpus"] == 0.25


def _slow_or_pruned(trial: Any) -> float:
    trial.suggest_float("x", 0, 1)
    if trial.number == 0:
        time.sleep(6)  # the long trial
        return 1.0
    trial.report(0.0, 0)
    raise optuna.TrialPruned  # every other trial stops at once


def test_a_pruned_trial_gives_its_slot_to_the_next_at_once() -> None:
    study = lm.tune.optimize(_slow_or_pruned, 4, study="slots", parallel=2, progress=False)
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED", "PRUNED"]
    long_end = trials[0].datetime_complete
    assert long_end is not None
    # trials 2 and 3 took the slot trial 1 freed while trial 0 was still running
    assert all(t.datetime_start < long_end for t in trials[1:]), [
        (t.number, t.datetime_start, t.datetime_complete) for t in trials
    ]
    for t in trials[1:]:
        run = lm.get_run(lm.tune.trial_run_id(t))
        assert run.tags["tune.state"] == "pruned"
        assert run.tags["job.state"] == "succeeded"  # a pruned trial is a job that ended well


def _with_model(trial: Any) -> float:
    import tempfile

    import onnx
    from onnx import TensorProto, helper

    scale = trial.suggest_float("scale", 0.1, 2.0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1], [scale])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, path)
        lm.log_artifact(path)  # into the trial's run, active while the objective runs
    return abs(scale - 1.0)


def test_register_best_puts_the_study_in_the_model_lineage() -> None:
    pytest.importorskip("onnx")
    study = lm.tune.optimize(
        _with_model,
        4,
        study="btag-scale",
        parallel=2,
        sampler=optuna.samplers.RandomSampler(seed=4),
        progress=False,
    )
    version = lm.tune.register_best(study, "scaler", alias="candidate")
    best = lm.tune.best(study)
    assert version.source_run_id == lm.tune.trial_run_id(best)
    assert "btag-scale" in version.description
    info = lm.lineage("scaler@candidate")
    assert info.trial is not None
    assert info.trial.study == "btag-scale"
    assert info.trial.trial == best.number
    assert info.trial.study_run_id == lm.get_store().get_study("default", "btag-scale").run_id
    assert info.run is not None
    assert info.run.params["scale"] == pytest.approx(best.params["scale"])
    assert info.run.metrics["resources/cpu_hours"] > 0  # the trial's job recorded its cost
