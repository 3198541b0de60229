"""Optuna's own algorithms, unchanged, on Luminary's storage: every sampler, the pruners on a
fidelity the user names, constraints, and the Pareto front of a multi-objective study."""

from __future__ import annotations

from typing import Any

import pytest

optuna = pytest.importorskip("optuna")

import luminary as lm  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _quadratic(trial: Any) -> float:
    x = trial.suggest_float("x", -4, 4)
    y = trial.suggest_float("y", -4, 4)
    return (x - 1) ** 2 + (y + 2) ** 2


def _samplers() -> list[tuple[str, Any, int]]:
    out: list[tuple[str, Any, int]] = [
        ("tpe", optuna.samplers.TPESampler(seed=1, n_startup_trials=8), 40),
        ("random", optuna.samplers.RandomSampler(seed=1), 40),
        ("cmaes", optuna.samplers.CmaEsSampler(seed=1, n_startup_trials=4), 40),
        ("nsga2", optuna.samplers.NSGAIISampler(seed=1, population_size=10), 40),
        (
            "grid",
            optuna.samplers.GridSampler({"x": [-1.0, 0.0, 1.0, 2.0], "y": [-3.0, -2.0, 0.0]}),
            12,
        ),
    ]
    try:
        import scipy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:  # GP needs torch and scipy (the dev extra installs both)
        return out
    out.append(("gp", optuna.samplers.GPSampler(seed=1, n_startup_trials=5), 15))
    return out


@pytest.mark.parametrize(("name", "sampler", "n"), _samplers(), ids=[s[0] for s in _samplers()])
def test_each_sampler_searches_on_luminary_storage(name: str, sampler: Any, n: int) -> None:
    study = optuna.create_study(storage=lm.tune.storage(), study_name=name, sampler=sampler)
    study.optimize(_quadratic, n_trials=n)
    again = lm.tune.load_study(name)  # a second process's view: every trial, the same best
    assert len(again.trials) == n
    assert again.best_value == study.best_value
    assert again.best_params == study.best_params
    if name == "grid":
        assert study.best_params == {"x": 1.0, "y": -2.0}
    else:
        assert study.best_value < 2.0  # every one of them finds the bowl
    runs = lm.search_runs(None, f"tags.tune.study = '{name}'")
    assert sum("tune.trial" in r.tags for r in runs) == n  # a run per trial, and the study's
    assert [r.tags.get("tune.role") for r in runs].count("study") == 1


@pytest.mark.parametrize(
    "pruner",
    [
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=27, reduction_factor=3),
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    ],
    ids=["asha", "hyperband", "median"],
)
def test_pruners_stop_poor_trials_on_the_named_fidelity(pruner: Any) -> None:
    epochs_run: list[int] = []

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        quality = abs(lr - 0.05)
        for epoch in range(27):  # the fidelity: epochs
            value = quality + 1.0 / (epoch + 1)
            trial.report(value, epoch)
            if trial.should_prune():
                epochs_run.append(epoch + 1)
                raise optuna.TrialPruned
        epochs_run.append(27)
        return value

    study = optuna.create_study(
        storage=lm.tune.storage(),
        study_name="prune",
        sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=pruner,
    )
    study.optimize(objective, n_trials=30)
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") >= 5, states
    assert sum(epochs_run) < 0.6 * 27 * 30  # pruning saved at least 40 % of the epochs
    pruned = next(t for t in lm.tune.load_study("prune").trials if t.state.name == "PRUNED")
    run = lm.get_store().get_run(lm.tune.trial_run_id(pruned))
    assert run.tags["tune.state"] == "pruned"
    assert len(lm.get_metric_history(run.id, "intermediate_value")) == len(
        pruned.intermediate_values
    )


def test_constraints_are_kept_and_respected() -> None:
    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -4, 4)
        trial.set_constraint("x_at_least_1", 1.0 - x)  # feasible when x >= 1
        return x * x

    sampler = optuna.samplers.TPESampler(seed=2, n_startup_trials=5)
    study = optuna.create_study(storage=lm.tune.storage(), study_name="con", sampler=sampler)
    study.optimize(objective, n_trials=30)
    again = lm.tune.load_study("con")
    kept = [t.system_attrs for t in again.trials]
    assert kept == [t.system_attrs for t in study.trials]  # constraints stored with the trials
    assert any("x_at_least_1" in str(k) for k in kept[0])
    feasible = [t for t in again.trials if 1.0 - t.params["x"] <= 0.0]
    assert len(feasible) > len(again.trials) // 2  # TPE learns where the feasible side is
    assert min(t.value for t in feasible) < 1.5


def test_multi_objective_keeps_the_pareto_front() -> None:
    def objective(trial: Any) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        return x, (1 - x) ** 2  # a pure trade-off: every trial is on the front

    study = optuna.create_study(
        storage=lm.tune.storage(),
        study_name="mo",
        directions=["minimize", "minimize"],
        sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=8),
    )
    study.set_metric_names(["background_eff", "signal_loss"])
    study.optimize(objective, n_trials=16)
    again = lm.tune.load_study("mo")
    front = again.best_trials
    assert {t.number for t in front} == {t.number for t in study.best_trials}
    assert len(front) >= 8
    run = lm.get_store().get_run(lm.tune.trial_run_id(front[0]))
    assert run.metrics["background_eff"] == pytest.approx(front[0].values[0])
    assert run.metrics["signal_loss"] == pytest.approx(front[0].values[1])
